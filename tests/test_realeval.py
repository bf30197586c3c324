"""Tolerant pixel scores, and the eval-real harness on one small real pair."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import numpy as np
import pytest

from swc_rs.errors import InputError
from swc_rs.realeval import PixelScores, mean_scores, pixel_scores

REPO = Path(__file__).resolve().parents[1]
REAL = REPO / ".." / "shared" / "eval" / "real"
SMALL_PAIR = "levircd_test_55_0256_0000"


def _square(shape=(10, 10), rows=slice(3, 6), cols=slice(3, 6)) -> np.ndarray:
    out = np.zeros(shape, np.uint8)
    out[rows, cols] = 1
    return out


def test_exact_prediction_scores_one():
    label = _square()
    scores = pixel_scores(label.astype(bool), label)
    assert (scores.precision, scores.recall, scores.f1) == (1.0, 1.0, 1.0)
    assert scores.predicted == scores.labelled == 9 and scores.scored == 100


def test_one_pixel_shift_still_scores_one_but_not_without_tolerance():
    label = _square()
    shifted = np.roll(label, (1, 1), axis=(0, 1)).astype(bool)
    assert pixel_scores(shifted, label).f1 == 1.0
    strict = pixel_scores(shifted, label, tolerance=0)
    assert strict.precision == pytest.approx(4 / 9) and strict.recall == pytest.approx(4 / 9)


def test_two_pixel_shift_is_penalised_at_tolerance_one():
    label = _square()
    shifted = np.roll(label, 2, axis=1).astype(bool)  # columns 5..7 vs 3..5
    scores = pixel_scores(shifted, label)
    # predicted columns 5, 6 are within 1 px of column 5 (labelled) or 4; column 7 is not
    assert scores.precision == pytest.approx(6 / 9)
    # labelled columns 4, 5 are within 1 px of a prediction; column 3 is not
    assert scores.recall == pytest.approx(6 / 9)
    assert scores.f1 == pytest.approx(6 / 9)


def test_label_255_is_ignored_for_predictions_and_for_neighbourhoods():
    label = np.zeros((5, 8), np.uint8)
    label[:, 5:] = 255
    label[2, 1] = 1
    prediction = np.zeros((5, 8), bool)
    prediction[2, 1] = True
    prediction[:, 6:] = True  # all in unlabelled pixels: neither right nor wrong
    scores = pixel_scores(prediction, label)
    assert scores.predicted == 1 and scores.precision == 1.0 and scores.recall == 1.0
    assert scores.scored == 25

    # a prediction in a 255 pixel next to a labelled change does not vouch for it
    only_unlabelled = np.zeros((5, 8), bool)
    label2 = label.copy()
    label2[2, 4] = 1
    only_unlabelled[2, 5] = True
    scores = pixel_scores(only_unlabelled, label2)
    assert scores.predicted == 0 and scores.precision is None and scores.recall == 0.0 and scores.f1 == 0.0


def test_false_alarm_far_away_lowers_precision_only():
    label = _square()
    prediction = label.astype(bool).copy()
    prediction[9, 9] = True
    scores = pixel_scores(prediction, label)
    assert scores.precision == pytest.approx(9 / 10) and scores.recall == 1.0
    assert scores.f1 == pytest.approx(2 * 0.9 / 1.9)


def test_zero_denominators():
    empty = np.zeros((4, 4), np.uint8)
    nothing = pixel_scores(np.zeros((4, 4), bool), empty)
    assert nothing.precision is None and nothing.recall is None and nothing.f1 is None
    missed = pixel_scores(np.zeros((4, 4), bool), _square((4, 4), slice(1, 2), slice(1, 2)))
    assert missed.precision is None and missed.recall == 0.0 and missed.f1 == 0.0
    false_alarm = pixel_scores(np.ones((4, 4), bool), empty)
    assert false_alarm.precision == 0.0 and false_alarm.recall is None and false_alarm.f1 == 0.0


def test_bad_inputs_raise_input_error():
    label = _square()
    with pytest.raises(InputError):
        pixel_scores(np.zeros((9, 10), bool), label)
    with pytest.raises(InputError):
        pixel_scores(label.astype(bool), label, tolerance=-1)
    bad = label.copy()
    bad[0, 0] = 7
    with pytest.raises(InputError):
        pixel_scores(label.astype(bool), bad)


def test_mean_scores_skip_missing_values():
    a = PixelScores(0.5, 1.0, 2 / 3, 2, 1, 1, 1, 10, 1)
    b = PixelScores(None, 0.0, 0.0, 0, 0, 1, 0, 10, 1)
    means = mean_scores([a, b, None])
    assert means["precision"] == 0.5 and means["recall"] == 0.5 and means["f1"] == pytest.approx(1 / 3)
    assert mean_scores([None]) == {"precision": None, "recall": None, "f1": None}


# --------------------------------------------------------------------------- harness


def _harness():
    spec = importlib.util.spec_from_file_location("eval_real", REPO / "benchmarks" / "eval_real.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("eval_real", module)
    spec.loader.exec_module(module)
    return module


needs_real = pytest.mark.skipif(
    not (REAL / SMALL_PAIR / "label.tif").exists(),
    reason=f"real evaluation pairs not found at {REAL.resolve()} (../shared/eval/real next to the repo)",
)


@needs_real
def test_harness_loads_a_real_rgb_pair():
    harness = _harness()
    pair = harness.load_pair(REAL / SMALL_PAIR)
    assert pair.before.shape == pair.after.shape == (3, 256, 256)
    assert pair.roles == {"red": 0, "green": 1, "blue": 2}
    assert pair.sensor == "RGB" and pair.valid.all()
    assert set(np.unique(pair.label)) <= {0, 1, 255}
    assert SMALL_PAIR in harness.list_pairs(REAL)


@needs_real
def test_harness_no_product_scores_a_real_pair(tmp_path, capsys):
    harness = _harness()
    out = tmp_path / "eval.json"
    code = harness.main(["--data", str(REAL), "--pair", SMALL_PAIR, "--no-product", "--json", str(out)])
    assert code == 0
    printed = capsys.readouterr().out
    assert SMALL_PAIR in printed and "F1 CVA" in printed and "mean" in printed
    payload = json.loads(out.read_text(encoding="utf-8"))
    (entry,) = payload["pairs"]
    assert set(entry["methods"]) == {"cva", "irmad", "ndvi"}
    for result in entry["methods"].values():
        assert 0.0 <= result["f1"] <= 1.0
        assert 0.0 <= result["precision"] <= 1.0 and 0.0 <= result["recall"] <= 1.0
        assert result["labelled"] > 0


def test_harness_reports_a_missing_data_folder(tmp_path, capsys):
    harness = _harness()
    assert harness.main(["--data", str(tmp_path / "nowhere"), "--no-product"]) == 2
    assert "nowhere" in capsys.readouterr().err


@needs_real
def test_harness_product_failure_is_reported_not_fatal(tmp_path, monkeypatch, capsys):
    harness = _harness()
    monkeypatch.setattr(harness, "_swc_rs_command", lambda: [sys.executable, "-c", "import sys; sys.exit('boom: detector missing')"])
    code = harness.main(["--data", str(REAL), "--pair", SMALL_PAIR, "--product", "--json", str(tmp_path / "e.json")])
    assert code == 0
    printed = capsys.readouterr().out
    assert "error" in printed and "boom: detector missing" in printed
    entry = json.loads((tmp_path / "e.json").read_text(encoding="utf-8"))["pairs"][0]
    assert entry["methods"]["product"]["error"].endswith("boom: detector missing")
    assert entry["methods"]["cva"]["f1"] is not None


def test_dev_set_is_built_from_training_pairs_only(tmp_path):
    """`make eval-dev`'s set: the training city, its four variants and dense crops, and a
    generated scene's dense crop, all linked in one folder; nothing from the test pairs."""
    real = REPO.parent / "shared" / "train" / "real" / "oscd_paris"
    if not (real / "label.tif").exists():
        pytest.skip("needs ../shared/train/real next to the repository")
    source = tmp_path / "train"
    source.mkdir()
    (source / "oscd_paris").symlink_to(real, target_is_directory=True)
    spec = importlib.util.spec_from_file_location("make_dev_set", REPO / "benchmarks" / "make_dev_set.py")
    make_dev_set = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(make_dev_set)

    linked = make_dev_set.build(source, tmp_path / "dev", scene_size=512)
    names = sorted(p.name for p in linked)
    assert names[:1] == ["gen_scene_1000_dense0"]
    assert {"oscd_paris", "oscd_paris_rgb", "oscd_paris_vnir", "oscd_paris_30m", "oscd_paris_30mdn",
            "oscd_paris_dense0"} <= set(names)
    eval_real = REPO.parent / "shared" / "eval"
    for link in linked:
        target = link.resolve()
        assert not target.is_relative_to(eval_real.resolve()), target
        assert (target / "before.tif").exists() and (target / "label.tif").exists()
    pair = _harness().load_pair(tmp_path / "dev" / "all" / "oscd_paris_rgb")
    assert pair.before.shape[0] == 3 and set(np.unique(pair.label)) <= {0, 1, 255}
