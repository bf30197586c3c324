"""End to end on generated scenes, scored through `swc-rs evaluate` as users would.

Seeds 71 and 72 were not used to tune the detector or train its model (rules were
tuned on seeds 11–14 and 51–53, 61–62; the shipped model trained on seeds 1000–1047).
The targets are checked on the two seeds pooled (matched and total patches summed), so
that one patch more or less in a 15-patch scene does not decide the verdict.
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
def test_generated_scene_accuracy(tmp_path):
    """Recall, precision and BYD accuracy on seeds 71 + 72 with the default (learned)
    detector. Its outlines are looser than the rules' on generated scenes (EAREA +11–15 %
    on these seeds): a 合规 site can spill past its range into 疑似超出防治责任范围, so the
    BYD bar is 0.85 (27 of 31 on 2026-12-07; 0.95 with the rule detector before it)."""
    totals = {"detections": 0, "detections_matched": 0, "truth_required": 0, "truth_required_matched": 0,
              "truth_matched": 0, "byd_correct": 0}
    for seed in (71, 72):
        scene = tmp_path / f"scene{seed}"
        result = CliRunner().invoke(cli, ["sample", "-o", str(scene), "--seed", str(seed), "--size", "1024", "-q"])
        assert result.exit_code == 0, result.output
        scores = _evaluate(_detect(scene, tmp_path / f"out{seed}.gpkg"), scene / "truth.gpkg")
        for key in totals:
            totals[key] += scores[key]
    assert totals["truth_required_matched"] / totals["truth_required"] >= 0.9, totals  # recall
    assert totals["detections_matched"] / totals["detections"] >= 0.85, totals  # precision
    assert totals["byd_correct"] / totals["truth_matched"] >= 0.85, totals  # BYD accuracy


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


@pytest.mark.slow
def test_farming_stays_off_the_field_list_on_a_randomised_scene(tmp_path):
    """A look the typer never trained on (``swc-rs sample --style random``: other spectra,
    textures, parcel shapes, farming calendar with sowing, sensor), seeds 55 + 56 (the next
    unused evaluation seeds; 2026-12-07 with the shipped typer: 0 farming false alarms,
    precision 29/29, recall 28/30). Harvested, tilled and sown parcels must not become
    suspected violations. Seed 54 of ``benchmarks/eval_generated.py --style random`` still
    has 11 (docs/2026-12-07-learned-change-detector.md), so the bar is not zero by luck of
    the seeds alone: it allows one such false alarm per scene."""
    farming = recall_hits = recall_total = matched = detections = 0
    for seed in (55, 56):
        scene = tmp_path / f"random{seed}"
        result = CliRunner().invoke(cli, ["sample", "-o", str(scene), "--seed", str(seed), "--size", "1024",
                                          "--style", "random", "-q"])
        assert result.exit_code == 0, result.output
        scores = _evaluate(_detect(scene, tmp_path / f"random{seed}.gpkg"), scene / "truth.gpkg")
        farming += sum(scores["false_alarms_by_confounder"].get(k, 0) for k in ("tillage", "harvest", "sowing"))
        recall_hits += scores["truth_required_matched"]
        recall_total += scores["truth_required"]
        matched += scores["detections_matched"]
        detections += scores["detections"]
    assert farming <= 2, farming
    assert matched / detections >= 0.9, (matched, detections)  # precision
    assert recall_hits / recall_total >= 0.85, (recall_hits, recall_total)
