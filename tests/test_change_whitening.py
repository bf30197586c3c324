"""Relative radiometry in the scene's no-change units: the whitened difference and the
noise floor of the scene threshold."""

import dataclasses

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from swc_rs.change import (
    Normalisation,
    calibrate_scene,
    fit_whitening,
    pixel_evidence,
    scene_magnitude_threshold,
)
from swc_rs.config import ChangeConfig

RGB = ("blue", "green", "red")


def _correlated_noise(rng, n, bands=3, shared=0.9):
    """Difference vectors of unchanged pixels: a strong component shared by every band
    (haze, a colour cast) plus a little independent noise per band."""
    common = rng.standard_normal(n)
    return shared * common[None, :] + 0.2 * rng.standard_normal((bands, n))


@settings(max_examples=20, deadline=None)
@given(seed=st.integers(0, 10_000), share=st.floats(0.0, 0.1))
def test_whitening_gives_unchanged_pixels_unit_covariance_despite_outliers(seed, share):
    rng = np.random.default_rng(seed)
    noise = _correlated_noise(rng, 20_000)
    k = int(share * noise.shape[1])
    change = rng.normal(6.0, 1.0, (3, k)) * np.array([1.0, -1.0, 0.5])[:, None]
    centre, matrix = fit_whitening(np.concatenate([noise, change], axis=1))
    white = matrix @ (noise - centre[:, None])
    # the chi-square re-weighting leaves the unchanged pixels near unit covariance:
    # the change (up to 10 %) does not inflate it
    np.testing.assert_allclose(np.cov(white), np.eye(3), atol=0.25)


def test_whitening_falls_back_to_the_identity_on_a_tiny_sample():
    centre, matrix = fit_whitening(np.ones((3, 10)))
    np.testing.assert_array_equal(centre, 0)
    np.testing.assert_array_equal(matrix, np.eye(3))


def test_whitened_magnitude_discounts_the_shared_shift_not_the_odd_one():
    rng = np.random.default_rng(3)
    centre, matrix = fit_whitening(_correlated_noise(rng, 20_000))
    before = np.full((3, 2, 2), 0.3, np.float32)
    after = before.copy()
    after[:, 0, 0] += 0.2  # every band by the same amount: the scene's own haze direction
    after[0, 1, 1] += 0.2  # one band alone: unlike anything unchanged in this scene
    scale = np.full(3, 0.1, np.float32)
    plain = pixel_evidence(before, after, RGB, after, scale).magnitude
    white = pixel_evidence(before, after, RGB, after, scale, (centre, matrix)).magnitude
    assert plain[0, 0] > plain[1, 1]  # in band spreads the shared shift is the larger ...
    assert white[1, 1] > 3 * white[0, 0]  # ... in the scene's no-change units, the odd one


def test_noise_floor_keeps_the_threshold_above_the_no_change_tail_when_change_is_rare():
    rng = np.random.default_rng(1)
    cfg = dataclasses.replace(ChangeConfig(), magnitude_min=0.0, magnitude_noise_sigmas=5.0)
    noise = np.abs(rng.normal(0, 1.0, 99_000)) + rng.gamma(2.0, 0.5, 99_000)  # skewed no-change
    change = rng.normal(12.0, 1.0, 1_000)  # 1 % change
    values = np.concatenate([noise, change])
    median = np.median(values)
    mad = 1.4826 * np.median(np.abs(values - median))
    floored = scene_magnitude_threshold(values, cfg, noise_floor=True)
    assert floored >= median + cfg.magnitude_noise_sigmas * mad - 1e-9
    assert floored >= scene_magnitude_threshold(values, cfg)  # never lower than Otsu's split
    assert (noise >= floored).mean() < 0.005 and (change >= floored).mean() > 0.99
    off = dataclasses.replace(cfg, magnitude_noise_sigmas=0.0)
    assert scene_magnitude_threshold(values, off, noise_floor=True) == pytest.approx(scene_magnitude_threshold(values, off))


def test_calibrate_scene_whitens_only_relative_radiometry():
    rng = np.random.default_rng(7)
    before = (0.3 + 0.02 * rng.standard_normal((3, 120, 120))).astype(np.float32)
    after = before + (0.03 * rng.standard_normal((1, 120, 120))).astype(np.float32)  # shared noise
    after[:, 20:40, 20:40] += np.array([0.2, -0.1, 0.0], np.float32)[:, None, None]
    valid = np.ones((120, 120), bool)
    norm = dataclasses.replace(Normalisation.identity(3), scale=np.full(3, 0.02, np.float32))
    cfg = dataclasses.replace(ChangeConfig(), relative_whitening=True)
    rel = calibrate_scene(lambda: [(before, after, valid)], RGB, norm, cfg, relative=True, min_pixels=10_000)
    assert rel.whitening is not None and rel.to_dict()["whitened"]
    ev = pixel_evidence(before, after, RGB, after, rel.scale, rel.whitening)
    assert ev.magnitude[25:35, 25:35].min() > rel.magnitude_threshold > np.percentile(ev.magnitude[60:, 60:], 99)
    refl = calibrate_scene(lambda: [(before, after, valid)], RGB, norm, cfg, relative=False, min_pixels=10_000)
    assert refl.whitening is None
    off = calibrate_scene(lambda: [(before, after, valid)], RGB, norm, dataclasses.replace(cfg, relative_whitening=False),
                          relative=True, min_pixels=10_000)
    assert off.whitening is None


@pytest.mark.parametrize("relative", [False, True])
def test_a_cloud_smaller_than_cloud_min_pixels_is_kept_as_change(relative):
    """On a coarse grid the area floor is a few pixels; a 6×6 bright white blob (a new
    roof at 30 m) must not be masked as cloud, a 20×20 one still is."""
    from swc_rs.change import SceneLevels, cloud_shadow_mask, relative_cloud_shadow_mask

    rng = np.random.default_rng(2)
    before = (np.array([0.05, 0.08, 0.06], np.float32)[:, None, None]
              * (1 + 0.02 * rng.standard_normal((1, 80, 80)))).astype(np.float32)
    after = before.copy()
    after[:, 5:11, 5:11] = 0.6  # small white blob
    after[:, 40:60, 40:60] = 0.6  # large white blob
    cfg = dataclasses.replace(ChangeConfig(), cloud_min_pixels=100, cloud_buffer_px=0, relative_clouds="both")
    ev = pixel_evidence(before, after, RGB, after, np.full(3, 0.02, np.float32))
    if relative:
        levels = SceneLevels(bright_high=(0.2, 0.2), total_low=(0.0, 0.0))
        masked = relative_cloud_shadow_mask(before, after, RGB, ev, levels, cfg, min_pixels=5)
    else:
        masked = cloud_shadow_mask(before, after, RGB, ev, cfg, min_pixels=5)
    assert not masked[5:11, 5:11].any()
    assert masked[40:60, 40:60].all()


def test_without_nir_a_grey_roof_on_brown_soil_is_not_greening():
    """VARI rises from brown soil to a grey roof; without NIR that is greening only when
    the after-state is greener than the scene's median ground."""
    from swc_rs.change import SceneLevels, relative_candidate_mask

    soil = np.array([0.20, 0.25, 0.30], np.float32)  # blue, green, red: brown
    roof = np.array([0.32, 0.32, 0.32], np.float32)  # grey
    grass = np.array([0.05, 0.20, 0.08], np.float32)
    before = np.repeat(np.repeat(soil[:, None, None], 10, 1), 20, 2)
    after = before.copy()
    after[:, :, :10] = roof[:, None, None]
    after[:, :, 10:] = grass[:, None, None]
    ev = pixel_evidence(before, after, RGB, after, np.full(3, 0.02, np.float32))
    assert (ev.veg_drop < -ChangeConfig().greening_max).all()  # VARI rose everywhere
    cfg = dataclasses.replace(ChangeConfig(), relative_greening_median=True)
    valid = np.ones((10, 20), bool)
    levels = SceneLevels(bright_high=(1.0, 1.0), total_low=(0.0, 0.0), veg_after_median=0.05)
    mask = relative_candidate_mask(ev, valid, 1.0, cfg, levels)
    assert mask[:, :10].all()  # the roof: VARI after ~0, below the scene's median
    assert not mask[:, 10:].any()  # the grass: greener than the median, greening
    assert not relative_candidate_mask(ev, valid, 1.0, cfg).any()  # without the level: as before
    assert not relative_candidate_mask(ev, valid, 1.0, ChangeConfig(), levels).any()  # the default: off
