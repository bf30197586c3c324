"""End to end on generated scenes, scored through `swc-rs evaluate` as users would.

Seeds 61 and 62 were never looked at while the detector or its model were tuned
(tuning used seeds 1–20 and training seeds ≥ 1000).
"""

import json
from pathlib import Path

import geopandas as gpd
import pytest
from click.testing import CliRunner

from swc_rs import codes
from swc_rs.cli.main import cli

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "data" / "sample_tiles"


def _detect(folder: Path, output: Path, *extra: str):
    args = ["detect", str(folder / "before.tif"), str(folder / "after.tif"), "--zones", str(folder / "zones.gpkg"),
            "--projects", str(folder / "projects.gpkg"), "--sensitive", str(folder / "sensitive.gpkg"),
            "-o", str(output), "-q", *extra]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    return output


def _evaluate(output: Path, truth: Path) -> dict:
    result = CliRunner().invoke(cli, ["evaluate", str(output), str(truth), "--json", "-q"])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout[result.stdout.index("{"):])


@pytest.mark.slow
@pytest.mark.parametrize("seed", [61, 62])
def test_generated_scene_accuracy(tmp_path, seed):
    scene = tmp_path / "scene"
    result = CliRunner().invoke(cli, ["sample", "-o", str(scene), "--seed", str(seed), "--size", "1024", "-q"])
    assert result.exit_code == 0, result.output
    scores = _evaluate(_detect(scene, tmp_path / "out.gpkg"), scene / "truth.gpkg")
    assert scores["recall"] >= 0.9, scores
    assert scores["precision"] >= 0.85, scores
    assert scores["byd_accuracy"] >= 0.95, scores


@pytest.mark.slow
def test_demo_output_holds_every_byd_class_of_its_truth(tmp_path):
    output = _detect(SAMPLE, tmp_path / "demo.gpkg")
    truth = gpd.read_file(SAMPLE / "truth.gpkg", layer="truth_patches")
    patches = gpd.read_file(output, layer="disturbance_patches")
    violations = gpd.read_file(output, layer="suspected_violations")
    assert set(truth.BYD) <= set(patches.BYD)
    assert set(violations.BYD) == {b for b in patches.BYD if b.startswith(codes.SUSPECTED_PREFIX)}
    assert codes.NOT_PROJECT not in set(violations.QTYPE)
    assert set(violations.X_COLOR) <= {codes.RED, codes.YELLOW}
