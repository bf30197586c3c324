"""Classic change-detection baselines on seeded synthetic two-date stacks."""

from __future__ import annotations

import numpy as np
import pytest

from swc_rs.baselines import (
    cva_change,
    cva_score,
    irmad,
    irmad_change,
    otsu_threshold,
    vegetation_loss_change,
    vegetation_loss_score,
    zscore_bands,
)
from swc_rs.errors import InputError

# Reflectance x 10000 of blue, green, red, nir for a few covers.
COVERS = np.array(
    [
        [250, 450, 280, 3300],  # forest
        [400, 700, 500, 2600],  # grass / crops
        [600, 800, 900, 1500],  # village
        [300, 400, 300, 200],  # water
    ],
    np.float64,
)
SOIL = np.array([1300, 1600, 2000, 2400], np.float64)
ROLES4 = {"blue": 0, "green": 1, "red": 2, "nir": 3}
SIZE = 64
SQUARE = (slice(20, 36), slice(28, 44))


def _scene(seed: int = 0, *, gain=1.0, offset=0.0, change=True, bands=4):
    """Patchwork of covers (8x8 blocks) under smooth illumination, 3 % noise per date.

    The 16x16 square sits on forest and turns to bare soil in AFTER; AFTER is then put
    through a per-band gain and offset (a different sensor calibration or season).
    """
    rng = np.random.default_rng(seed)
    classes = rng.integers(0, len(COVERS), size=(SIZE // 8, SIZE // 8))
    classes[2:5, 3:6] = 0  # forest under the square (rows 16-40, cols 24-48)
    classes = classes.repeat(8, 0).repeat(8, 1)
    rows, cols = np.mgrid[0:SIZE, 0:SIZE] / SIZE
    light = 1 + 0.15 * np.sin(2 * np.pi * (rows + 0.5 * cols + rng.random()))
    base = COVERS[classes].transpose(2, 0, 1)[:bands] * light
    before = base * (1 + 0.03 * rng.standard_normal(base.shape))
    after = base * (1 + 0.03 * rng.standard_normal(base.shape))
    if change:
        soil = SOIL[:bands, None, None] * light[SQUARE]
        after[:, SQUARE[0], SQUARE[1]] = soil * (1 + 0.03 * rng.standard_normal((bands, 16, 16)))
    gain = np.broadcast_to(np.asarray(gain, float), (bands,))[:, None, None]
    offset = np.broadcast_to(np.asarray(offset, float), (bands,))[:, None, None]
    after = after * gain + offset
    truth = np.zeros((SIZE, SIZE), bool)
    if change:
        truth[SQUARE] = True
    return before, after, truth


def _check_found(mask: np.ndarray, truth: np.ndarray):
    assert mask.dtype == bool and mask.shape == truth.shape
    assert mask[truth].mean() >= 0.9, f"found only {mask[truth].mean():.2f} of the square"
    assert mask[~truth].mean() <= 0.02, f"flagged {mask[~truth].mean():.3f} outside the square"


DETECTORS = {
    "cva": lambda b, a, v: cva_change(b, a, v),
    "irmad": lambda b, a, v: irmad_change(b, a, v),
    "ndvi": lambda b, a, v: vegetation_loss_change(b, a, v, roles=ROLES4),
    "exg": lambda b, a, v: vegetation_loss_change(b[:3], a[:3], v, roles={"blue": 0, "green": 1, "red": 2}),
}


@pytest.mark.parametrize("name", sorted(DETECTORS))
@pytest.mark.parametrize("gain, offset", [(1.0, 0.0), (1.35, 150.0), ([1.2, 0.9, 1.4, 0.8], [100, -50, 0, 300])])
def test_injected_square_found_and_gain_not_flagged(name, gain, offset):
    before, after, truth = _scene(1, gain=gain, offset=offset)
    mask = DETECTORS[name](before, after, np.ones(truth.shape, bool))
    _check_found(mask, truth)


@pytest.mark.parametrize("name", sorted(DETECTORS))
def test_invalid_pixels_are_never_flagged_and_nan_is_invalid(name):
    before, after, truth = _scene(2)
    valid = np.ones(truth.shape, bool)
    valid[:, :8] = False
    after[:, 60:, 60:] = np.nan
    mask = DETECTORS[name](before, after, valid)
    assert not mask[:, :8].any()
    assert not mask[60:, 60:].any()
    assert mask[truth].mean() >= 0.9


def test_otsu_picks_a_threshold_between_two_modes():
    rng = np.random.default_rng(3)
    values = np.concatenate([rng.normal(0.0, 1.0, 5000), rng.normal(10.0, 1.0, 500)])
    threshold = otsu_threshold(values)
    assert 3.0 < threshold < 7.0


def test_otsu_is_not_captured_by_a_few_extreme_values():
    rng = np.random.default_rng(4)
    values = np.concatenate([rng.normal(0.0, 1.0, 50_000), rng.normal(8.0, 1.0, 2_000), np.full(10, 500.0)])
    assert 2.0 < otsu_threshold(values) < 6.0


def test_otsu_ignores_nan_handles_constants_and_rejects_empty():
    rng = np.random.default_rng(5)
    values = np.concatenate([rng.normal(0.0, 1.0, 1000), rng.normal(10.0, 1.0, 200), [np.nan] * 50])
    assert 3.0 < otsu_threshold(values) < 7.0
    assert otsu_threshold(np.full(10, 2.5)) == 2.5
    with pytest.raises(InputError):
        otsu_threshold(np.array([np.nan, np.inf]))


def test_unchanged_pair_flags_little():
    before, after, _ = _scene(5, gain=1.1, offset=40.0, change=False)
    valid = np.ones(before.shape[1:], bool)
    # Otsu always splits, but pure noise should not produce a large mask under the rule.
    assert vegetation_loss_change(before, after, valid, roles=ROLES4).mean() < 0.35
    assert cva_change(before, after, valid).mean() < 0.35


def test_zscore_bands_over_valid_pixels_only():
    stack = np.arange(2 * 4 * 4, dtype=float).reshape(2, 4, 4)
    valid = np.zeros((4, 4), bool)
    valid[:2] = True
    z = zscore_bands(stack, valid)
    assert np.isnan(z[:, 2:]).all()
    np.testing.assert_allclose(z[:, valid].mean(axis=1), 0.0, atol=1e-12)
    np.testing.assert_allclose(z[:, valid].std(axis=1), 1.0)


def test_cva_score_is_invariant_to_per_band_gain_and_offset():
    before, after, _ = _scene(6)
    valid = np.ones(before.shape[1:], bool)
    transformed = after * np.array([1.3, 0.7, 2.0, 1.1])[:, None, None] + np.array([5, 100, -40, 0])[:, None, None]
    np.testing.assert_allclose(cva_score(before, after, valid), cva_score(before, transformed, valid), atol=1e-9)


def test_irmad_is_invariant_to_a_linear_transform_of_one_date():
    before, after, truth = _scene(7)
    valid = np.ones(truth.shape, bool)
    mixing = np.array([[1.5, 0.2, 0.0, 0.0], [0.0, 0.8, 0.1, 0.0], [0.3, 0.0, 2.0, 0.0], [0.0, 0.0, 0.2, 0.6]])
    transformed = np.einsum("ij,jhw->ihw", mixing, after) + np.array([10.0, -5.0, 100.0, 30.0])[:, None, None]
    first = irmad_change(before, after, valid)
    second = irmad_change(before, transformed, valid)
    assert np.mean(first != second) < 0.005
    a, b = irmad(before, after, valid), irmad(before, transformed, valid)
    np.testing.assert_allclose(a.correlations, b.correlations, atol=1e-4)


def test_irmad_reports_its_statistics():
    before, after, truth = _scene(8)
    valid = np.ones(truth.shape, bool)
    valid[0, 0] = False
    result = irmad(before, after, valid)
    assert np.isnan(result.chi2[0, 0]) and np.isnan(result.no_change_probability[0, 0])
    assert 1 <= result.iterations <= 30
    assert np.all((result.correlations >= 0) & (result.correlations <= 1))
    assert np.all(np.diff(result.correlations) >= -1e-12)
    # changed pixels are improbable under no change, unchanged ones mostly not
    assert np.nanmedian(result.no_change_probability[truth]) < 1e-6
    assert np.nanmedian(result.chi2[~truth & valid]) < np.nanmedian(result.chi2[truth])


def test_irmad_needs_enough_pixels():
    before, after, _ = _scene(9)
    valid = np.zeros(before.shape[1:], bool)
    valid[0, :5] = True
    with pytest.raises(InputError):
        irmad(before, after, valid)


def test_vegetation_rule_only_flags_loss_not_regrowth():
    before, after, truth = _scene(10)
    # swap the dates: the square now goes from bare soil to vegetation
    valid = np.ones(truth.shape, bool)
    score = vegetation_loss_score(after, before, valid, roles=ROLES4)
    forward = vegetation_loss_score(before, after, valid, roles=ROLES4)
    assert np.median(forward[truth]) > 3 * np.median(score[truth])


def test_vegetation_rule_needs_visible_roles():
    before, after, _ = _scene(11)
    with pytest.raises(InputError):
        vegetation_loss_change(before, after, None, roles={"red": 2, "nir": 3})
    with pytest.raises(InputError):
        vegetation_loss_change(before, after, None, roles={"blue": 0, "green": 1, "red": 7})


def test_mismatched_stacks_are_rejected():
    before, after, _ = _scene(12)
    with pytest.raises(InputError):
        cva_change(before, after[:3])
    with pytest.raises(InputError):
        cva_change(before, after, np.ones((3, 3), bool))
