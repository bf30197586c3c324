"""The learned change detector: its ONNX export, its safety checks, its training and its seams."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import geopandas as gpd
import numpy as np
import pytest
from click.testing import CliRunner

from swc_rs.change import synth
from swc_rs.change.learned import SHIPPED, LearnedDetector, SceneStats, read_card, select_detector
from swc_rs.cli.main import cli
from swc_rs.errors import ModelError
from tests.conftest import make_scene

SAMPLE = Path(__file__).resolve().parents[1] / "data" / "sample_tiles"


def _stats(bands: int) -> SceneStats:
    zeros, ones = np.zeros(bands, np.float32), np.ones(bands, np.float32)
    return SceneStats(zeros, ones, zeros, ones)


@pytest.mark.parametrize("family", sorted(SHIPPED))
def test_shipped_networks_have_a_verified_card(family):
    card = read_card(SHIPPED[family])
    assert card["family"] == family
    assert card["halo_px"] % card["stride"] == 0
    assert SHIPPED[family].stat().st_size < 5_000_000  # the budget is 20 MB for every model together
    assert card["data_terms"], "the card names the training data's terms"


def test_the_onnx_network_equals_the_pytorch_network(tmp_path):
    torch = pytest.importorskip("torch", reason="torch is a training-only extra (pip install -e .[train])")
    from swc_rs.change.net import ChangeNet, export_onnx

    torch.manual_seed(0)
    net = ChangeNet(3)
    for module in net.modules():  # non-trivial batch-norm statistics, folded at export
        if isinstance(module, torch.nn.BatchNorm2d):
            module.running_mean.uniform_(-0.5, 0.5)
            module.running_var.uniform_(0.5, 2.0)
    net.eval()
    path = tmp_path / "net.onnx"
    export_onnx(net, path)
    import onnxruntime as ort

    rng = np.random.default_rng(1)
    before = rng.standard_normal((1, 3, 96, 128)).astype(np.float32)
    after = rng.standard_normal((1, 3, 96, 128)).astype(np.float32)
    with torch.no_grad():
        expected = net(torch.from_numpy(before), torch.from_numpy(after)).numpy()
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    got = session.run(None, {"before": before, "after": after})[0]
    assert got.shape == expected.shape == (1, 1, 96, 128)
    assert np.abs(got - expected).max() <= 1e-4


def test_the_networks_run_without_torch():
    code = (
        "import sys; sys.modules['torch'] = None\n"
        "import numpy as np\n"
        "from swc_rs.change.learned import LearnedDetector, SHIPPED, SceneStats\n"
        "d = LearnedDetector(SHIPPED['highres'])\n"
        "z, o = np.zeros(3, np.float32), np.ones(3, np.float32)\n"
        "p = d.probability(np.zeros((3, 40, 50), np.float32), np.zeros((3, 40, 50), np.float32),\n"
        "                  np.ones((40, 50), bool), ('red', 'green', 'blue'), SceneStats(z, o, z, o))\n"
        "assert p.shape == (40, 50) and np.isfinite(p).all()\n"
        "print('ok')\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr


def _copy_model(tmp_path: Path, family: str = "highres") -> Path:
    path = tmp_path / f"{family}.onnx"
    shutil.copy(SHIPPED[family], path)
    shutil.copy(SHIPPED[family].with_suffix(".json"), path.with_suffix(".json"))
    return path


def _detect(scene, tmp_path: Path, *args: str):
    out = tmp_path / "out.gpkg"
    result = CliRunner().invoke(cli, ["detect", str(scene.before), str(scene.after), "--zones", str(scene.zones),
                                      "--projects", str(scene.projects), "-o", str(out), "-q", *args])
    return result, out


def test_a_tampered_change_model_is_refused_with_exit_2(tmp_path):
    path = _copy_model(tmp_path)
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    scene = make_scene(tmp_path)
    result, out = _detect(scene, tmp_path, "--change-model", str(path))
    assert result.exit_code == 2
    assert "SHA-256" in result.output and str(path) in result.output
    assert not out.exists()


def test_an_unknown_change_model_is_refused_with_exit_2(tmp_path):
    path = _copy_model(tmp_path)
    card = json.loads(path.with_suffix(".json").read_text())
    card["family"] = "hyperspectral"
    path.with_suffix(".json").write_text(json.dumps(card))
    with pytest.raises(ModelError, match="unknown model family"):
        read_card(path)
    path.with_suffix(".json").unlink()
    scene = make_scene(tmp_path)
    result, out = _detect(scene, tmp_path, "--change-model", str(path))
    assert result.exit_code == 2 and "card" in result.output
    assert not out.exists()


def test_a_model_of_another_sensor_family_is_refused(tmp_path):
    path = _copy_model(tmp_path, "multispectral")
    with pytest.raises(ModelError, match="multispectral imagery"):
        select_detector(str(path), ("blue", "green", "red", "nir"), 2.0)


def test_the_detector_is_picked_by_bands_and_pixel_size():
    detector, reason = select_detector("auto", ("blue", "green", "red", "nir"), 2.0)
    assert detector is not None and detector.family == "highres"
    detector, _ = select_detector("auto", ("blue", "green", "red", "nir", "swir1", "swir2"), 10.0)
    assert detector is not None and detector.family == "multispectral"
    detector, reason = select_detector("auto", ("blue", "green", "red", "nir"), 16.0)
    assert detector is None and "rules used" in reason  # a 16 m GF-1 WFV scene: no network fits
    assert select_detector("rules", ("red", "green", "blue"), 0.5)[0] is None


def test_run_info_says_which_detector_ran(tmp_path):
    scene = make_scene(tmp_path)
    result, out = _detect(scene, tmp_path)
    assert result.exit_code == 0, result.output
    info = gpd.read_file(out, layer="run_info")
    assert info.change_detector[0] == "highres" and "network" in info.change_detector_reason[0]
    result, out = _detect(scene, tmp_path, "--rules", "--overwrite")
    assert result.exit_code == 0, result.output
    info = gpd.read_file(out, layer="run_info")
    assert info.change_detector[0] == "rules"


def test_window_seams_change_nothing_with_the_network():
    """P(change) of a window's core is the same whether read as one window or as tiles."""
    from swc_rs.config import DetectConfig
    from swc_rs.raster import expand_window, iter_windows, open_pair
    from swc_rs.windows import _calibrate

    detector = LearnedDetector(SHIPPED["highres"])
    config = DetectConfig()
    with open_pair(SAMPLE / "before.tif", SAMPLE / "after.tif", raster=config.raster) as pair:
        norm, _, _ = _calibrate(pair, config)
        (whole,) = list(iter_windows(pair.grid, 1024))
        before, after, valid = pair.read(whole)
        full = detector.probability(before, after, valid, pair.roles, norm.scene)
        for window in iter_windows(pair.grid, 256):
            outer, core = expand_window(window, detector.halo_px, pair.grid)
            before, after, valid = pair.read(outer)
            tile = detector.probability(before, after, valid, pair.roles, norm.scene)[core]
            rows = slice(int(window.row_off), int(window.row_off + window.height))
            cols = slice(int(window.col_off), int(window.col_off + window.width))
            assert np.abs(tile - full[rows, cols]).max() < 1e-4


def test_a_tiny_training_run_beats_chance(tmp_path):
    pytest.importorskip("torch", reason="torch is a training-only extra (pip install -e .[train])")
    from swc_rs.change import train

    rng = np.random.default_rng(0)
    bases = []
    for i in range(3):  # textured 'real' images to paste change into
        img = np.clip(0.2 + 0.05 * rng.standard_normal((3, 160, 160)), 0, 1).astype(np.float32)
        bases.append(train.Source(f"base{i}", "toy", img, None, None, 1.0))
    net, curve = train.train("highres", [], bases, steps=60, seed=0, report_every=20)
    test = []
    for i in range(4):
        img = np.clip(0.2 + 0.05 * rng.standard_normal((3, 128, 128)), 0, 1).astype(np.float32)
        after, mask = synth.paste_change(img, "highres", 1.0, rng, count=2)
        test.append(train.Source(f"test{i}", "toy", img, after, mask.astype(np.uint8), 1.0))
    scores = train.score_pairs(net, test)
    f1 = np.mean([s["net"] for s in scores.values()])
    prevalence = np.mean([t.label.mean() for t in test])
    assert curve[-1][1] < curve[0][1]  # it learnt something
    assert f1 > 2 * prevalence / (1 + prevalence)  # the F1 of marking every pixel changed


@pytest.mark.parametrize("family", sorted(synth.FAMILIES))
def test_pasted_change_is_where_the_label_says(family):
    rng = np.random.default_rng(3)
    bands = len(synth.FAMILIES[family])
    img = np.clip(0.15 + 0.02 * rng.standard_normal((bands, 96, 96)), 0, 1).astype(np.float32)
    after, label = synth.paste_change(img, family, 2.0 if family == "highres" else 10.0, rng, count=3)
    assert label.any() and after.shape == img.shape and np.isfinite(after).all()
    moved = np.abs(after - img).max(axis=0)
    assert moved[label].mean() > 5 * moved[~label].mean()  # the paint is under the label (shadows aside)


def test_scene_standardisation_removes_a_gain_and_offset_between_the_dates():
    rng = np.random.default_rng(4)
    img = rng.random((3, 64, 64)).astype(np.float32)
    same = synth.standardise(img * 1.7 + 0.2)
    assert np.abs(same - synth.standardise(img)).max() < 1e-4


def test_a_network_switched_off_in_the_configuration_leaves_its_imagery_to_the_rules(tmp_path):
    from swc_rs.config import load_config
    from swc_rs.errors import ConfigError

    s2 = ("blue", "green", "red", "nir", "swir1", "swir2")
    detector, reason = select_detector("auto", s2, 10.0, networks=("highres",))
    assert detector is None and "switched off" in reason
    config = tmp_path / "c.toml"
    config.write_text('[change]\nnetworks = "highres hyperspectral"\n')
    with pytest.raises(ConfigError, match="hyperspectral"):
        load_config(config)
