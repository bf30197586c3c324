"""The scene-adaptive magnitude rule and relative radiometry (8-bit DN / display rasters)."""

import dataclasses

import numpy as np
import pandas as pd
import pytest

from swc_rs import codes
from swc_rs.change import (
    Normalisation,
    SceneLevels,
    calibrate_scene,
    candidate_mask,
    pixel_evidence,
    relative_candidate_mask,
    relative_cloud_shadow_mask,
    relative_radiometry,
    relative_window_mask,
    scene_magnitude_threshold,
)
from swc_rs.classify import FEATURES, rule_qtype
from swc_rs.config import ChangeConfig, ClassifyConfig
from swc_rs.errors import ConfigError

ROLES = ("blue", "green", "red", "nir")
RGB = ("blue", "green", "red")
GRASS = np.array([0.03, 0.06, 0.04, 0.30], np.float32)
DARK_ROOF = np.array([0.05, 0.05, 0.05, 0.06], np.float32)  # new asphalt-grey roof: not bright bare soil


def _field(values, shape=(40, 40), seed=0, noise=0.02):
    rng = np.random.default_rng(seed)
    values = np.asarray(values, np.float32)
    return values[:, None, None] * (1 + noise * rng.standard_normal((1, *shape))).astype(np.float32)


@pytest.mark.parametrize(("mode", "dtypes", "expected"), [
    ("auto", ("uint8", "uint8"), True),
    ("auto", ("uint16", "uint8"), True),
    ("auto", ("uint16", "uint16"), False),
    ("auto", ("float32", "float32"), False),
    ("reflectance", ("uint8", "uint8"), False),
    ("relative", ("uint16", "uint16"), True),
])
def test_relative_radiometry_follows_the_mode_and_the_data_type(mode, dtypes, expected):
    assert relative_radiometry(mode, dtypes) is expected


def test_unknown_radiometry_mode_is_a_config_error():
    with pytest.raises(ConfigError):
        relative_radiometry("dn", ("uint8", "uint8"))


def test_scene_threshold_splits_change_from_noise_but_not_below_the_floor():
    rng = np.random.default_rng(1)
    cfg = ChangeConfig()
    noise = np.abs(rng.normal(0, 0.6, 90_000))
    change = rng.normal(6.0, 0.8, 10_000)
    t = scene_magnitude_threshold(np.concatenate([noise, change]), cfg)
    assert 2.0 < t < 5.0
    # no change at all: Otsu splits the noise, the floor holds
    assert scene_magnitude_threshold(noise, cfg) == pytest.approx(cfg.magnitude_min)
    assert scene_magnitude_threshold(noise, dataclasses.replace(cfg, magnitude_min=0.0)) < cfg.magnitude_min


def test_dark_new_roof_is_found_only_by_the_adaptive_rule():
    cfg = ChangeConfig()
    before = _field(GRASS)
    after = _field(GRASS, seed=1)
    after[:, 10:30, 10:30] = DARK_ROOF[:, None, None]
    ev = pixel_evidence(before, after, ROLES, band_scale=np.full(4, 0.05, np.float32))
    valid = np.ones((40, 40), bool)
    none = np.zeros((40, 40), bool)
    assert not candidate_mask(ev, valid, none, cfg).any()  # too dark for "bare/built"
    mask = candidate_mask(ev, valid, none, cfg, threshold=2.0)
    assert mask[12:28, 12:28].all()
    assert not mask[:8].any()
    off = dataclasses.replace(cfg, adaptive_magnitude=False)
    assert not candidate_mask(ev, valid, none, off, threshold=2.0).any()


def test_adaptive_rule_leaves_greening_and_vegetated_after_states_out():
    cfg = ChangeConfig()
    soil = np.array([0.10, 0.12, 0.15, 0.20], np.float32)
    before = _field(soil)
    after = before.copy()
    after[:, :20] = GRASS[:, None, None]  # bare field greens up: large change, wrong way
    ev = pixel_evidence(before, after, ROLES, band_scale=np.full(4, 0.05, np.float32))
    valid = np.ones((40, 40), bool)
    assert ev.magnitude[:20].min() > 1.5
    assert not candidate_mask(ev, valid, np.zeros_like(valid), cfg, threshold=1.0).any()
    assert not relative_candidate_mask(ev, valid, 1.0, cfg).any()
    # the greening test is what keeps it out
    assert relative_candidate_mask(ev, valid, 1.0, dataclasses.replace(cfg, greening_max=10.0))[:20].all()


def test_relative_rule_uses_no_absolute_threshold():
    """Display values (0-1 of a stretched 8-bit mosaic): grass at 0.3, a new roof at 0.9.
    The absolute rule calls the bright roof a cloud-like or saturated surface; the
    relative rule only asks whether it changed more than the scene's threshold."""
    cfg = ChangeConfig()
    grass = np.array([0.25, 0.45, 0.30], np.float32)
    roof = np.array([0.85, 0.88, 0.90], np.float32)
    before = _field(grass, shape=(60, 60))
    after = _field(grass, shape=(60, 60), seed=2)
    after[:, 20:32, 20:32] = roof[:, None, None]
    ev = pixel_evidence(before, after, RGB, band_scale=np.full(3, 0.1, np.float32))
    valid = np.ones((60, 60), bool)
    mask = relative_candidate_mask(ev, valid, 3.0, cfg)
    assert mask[22:30, 22:30].all() and mask.sum() < 14 * 14


def test_relative_clouds_are_large_white_and_brighter_than_the_other_dates_ground():
    cfg = dataclasses.replace(ChangeConfig(), relative_clouds="both")
    grass = np.array([0.25, 0.45, 0.30], np.float32)
    before = _field(grass, shape=(80, 80))
    after = _field(grass, shape=(80, 80), seed=3)
    after[:, 0:30, 0:30] = 0.97  # cloud: 900 px
    after[:, 60:66, 60:66] = 0.97  # white roof: 36 px
    ev = pixel_evidence(before, after, RGB, band_scale=np.full(3, 0.1, np.float32))
    levels = SceneLevels(bright_high=(float(np.percentile(ev.bright_before, 99.5)), 1.0),
                         total_low=(0.0, 0.0))
    excluded = relative_cloud_shadow_mask(before, after, RGB, ev, levels, cfg, min_pixels=200)
    assert excluded[0:30, 0:30].all()
    assert not excluded[60:66, 60:66].any()
    norm = dataclasses.replace(Normalisation.identity(3), magnitude_threshold=3.0, levels=levels, relative=True)
    mask = relative_window_mask(before, after, np.ones((80, 80), bool), RGB, ev, norm, cfg, min_pixels=200)
    assert mask[61:65, 61:65].all() and not mask[0:30, 0:30].any()


def test_relative_clouds_are_not_masked_by_default_so_a_large_white_site_is_change():
    """Without reflectance a 900-px white block on one date is a cloud or a white roof /
    construction site alike; by default (``relative_clouds = "none"``) it is change on
    either date while a shadow is still masked; ``before`` masks the BEFORE one, ``both``
    both."""
    cfg = ChangeConfig()
    assert cfg.relative_clouds == "none"
    grass = np.array([0.25, 0.45, 0.30], np.float32)
    before = _field(grass, shape=(90, 90))
    after = _field(grass, shape=(90, 90), seed=3)
    after[:, 0:30, 0:30] = 0.97  # white new site (or cloud) on AFTER: 900 px
    before[:, 0:30, 60:90] = 0.97  # white site gone (or cloud) on BEFORE
    after[:, 60:90, 60:90] *= 0.3  # shadow
    ev = pixel_evidence(before, after, RGB, band_scale=np.full(3, 0.1, np.float32))
    levels = SceneLevels(bright_high=(float(np.percentile(ev.bright_before[40:, :50], 99.5)),
                                      float(np.percentile(ev.bright_after[40:, :50], 99.5))),
                         total_low=(float(np.percentile(before.mean(0), 0.5)), 0.0))
    excluded = relative_cloud_shadow_mask(before, after, RGB, ev, levels, cfg, min_pixels=200)
    assert not excluded[0:30, 0:30].any() and not excluded[0:30, 60:90].any()
    assert excluded[60:90, 60:90].all()
    norm = dataclasses.replace(Normalisation.identity(3), magnitude_threshold=3.0, levels=levels, relative=True)
    mask = relative_window_mask(before, after, np.ones((90, 90), bool), RGB, ev, norm, cfg, min_pixels=200)
    assert mask[2:28, 2:28].all() and not mask[62:88, 62:88].any()
    early = relative_cloud_shadow_mask(before, after, RGB, ev, levels, cfg, min_pixels=200, clouds_on="before")
    assert not early[0:30, 0:30].any() and early[0:30, 60:90].all()
    both = relative_cloud_shadow_mask(before, after, RGB, ev, levels,
                                      dataclasses.replace(cfg, relative_clouds="both"), min_pixels=200)
    assert both[0:30, 0:30].all() and both[0:30, 60:90].all()
    with pytest.raises(ConfigError):
        relative_cloud_shadow_mask(before, after, RGB, ev, levels, cfg, min_pixels=200, clouds_on="after")


def test_relative_shadow_is_darker_than_the_other_dates_darkest_ground():
    cfg = ChangeConfig()
    grass = np.array([0.25, 0.45, 0.30], np.float32)
    before = _field(grass, shape=(80, 80))
    after = _field(grass, shape=(80, 80), seed=4)
    after[:, 40:80, 40:80] *= 0.3  # shadow: every band darker, same hue
    ev = pixel_evidence(before, after, RGB, band_scale=np.full(3, 0.1, np.float32))
    levels = SceneLevels(bright_high=(1.0, 1.0), total_low=(float(np.percentile(before.mean(0), 0.5)), 0.0))
    excluded = relative_cloud_shadow_mask(before, after, RGB, ev, levels, cfg, min_pixels=200)
    assert excluded[40:80, 40:80].all()
    assert not excluded[:30, :30].any()


def test_calibrate_scene_fits_the_threshold_on_clear_pixels():
    cfg = ChangeConfig()
    before = _field(GRASS, shape=(100, 100), seed=5)
    after = _field(GRASS, shape=(100, 100), seed=6)
    after[:, 10:40, 10:40] = DARK_ROOF[:, None, None]
    valid = np.ones((100, 100), bool)
    norm = Normalisation.identity(4)
    norm = dataclasses.replace(norm, scale=np.full(4, 0.05, np.float32))
    out = calibrate_scene(lambda: [(before, after, valid)], ROLES, norm, cfg, relative=False, min_pixels=10_000)
    assert not out.relative and out.levels is None
    ev = pixel_evidence(before, after, ROLES, after, out.scale)
    assert ev.magnitude[:, 60:].max() < out.magnitude_threshold < ev.magnitude[15:35, 15:35].min()
    rel = calibrate_scene(lambda: [(before, after, valid)], ROLES, norm, cfg, relative=True, min_pixels=10_000)
    assert rel.relative and rel.levels is not None
    assert rel.to_dict()["radiometry"] == "relative"


def test_relative_calibration_leaves_clouds_of_both_dates_out_whatever_relative_clouds_says():
    """A large white cloud on BEFORE has a far larger magnitude than a new roof; were it in
    the calibration sample Otsu would split cloud from everything else and the roof would
    be missed. The windows may keep it (``relative_clouds = "none"``), the fit may not."""
    grass = np.array([0.25, 0.45, 0.30], np.float32)
    before = _field(grass, shape=(120, 120), seed=7)
    after = _field(grass, shape=(120, 120), seed=8)
    before[:, 0:40, 0:40] = 0.97  # cloud on BEFORE
    after[:, 80:100, 80:100] = np.array([0.30, 0.30, 0.32], np.float32)[:, None, None]  # grey roof
    valid = np.ones((120, 120), bool)
    norm = dataclasses.replace(Normalisation.identity(3), scale=np.full(3, 0.05, np.float32))
    cfg = dataclasses.replace(ChangeConfig(), cloud_buffer_px=0)
    thresholds = {}
    for mode in ("none", "both"):
        out = calibrate_scene(lambda: [(before, after, valid)], RGB, norm, dataclasses.replace(cfg, relative_clouds=mode),
                              relative=True, min_pixels=200)
        thresholds[mode] = out.magnitude_threshold
    ev = pixel_evidence(before, after, RGB, after, norm.scale)
    assert thresholds["none"] == pytest.approx(thresholds["both"])
    assert thresholds["none"] < ev.magnitude[82:98, 82:98].min()


def test_relative_typing_skips_the_absolute_non_project_rules():
    row = dict.fromkeys(FEATURES, 0.0)
    row.update(bright_after=0.05, bright_after_cv=0.02, redness_after=0.12, solidity=0.9, veg_after=0.1)
    feats = pd.DataFrame([row])
    qtype, _, _ = rule_qtype(feats, ClassifyConfig(), ChangeConfig())
    assert qtype[0] == codes.NOT_PROJECT  # dark and even: tillage, in reflectance
    qtype, _, _ = rule_qtype(feats, ClassifyConfig(), ChangeConfig(), relative=True)
    assert qtype[0] == codes.OTHER


def test_detect_finds_a_new_roof_on_a_display_stretched_8bit_rgb_pair(tmp_path):
    from swc_rs.pipeline import DetectRequest, detect
    from tests.conftest import make_scene, write_raster

    scene = make_scene(tmp_path)
    rng = np.random.default_rng(7)
    grass = np.array([80, 140, 95], np.float32)  # display values, not reflectance
    before = grass[:, None, None] * (1 + 0.04 * rng.standard_normal((1, 160, 160))).astype(np.float32)
    after = grass[:, None, None] * (1 + 0.04 * rng.standard_normal((1, 160, 160))).astype(np.float32)
    after[:, 50:80, 60:90] = np.array([230, 225, 220], np.float32)[:, None, None]  # bright new roof
    desc = ("red", "green", "blue")
    write_raster(scene.before, before[::-1], descriptions=desc, date="2026-10-01", dtype="uint8")
    write_raster(scene.after, after[::-1], descriptions=desc, date="2026-11-02", dtype="uint8")
    result = detect(DetectRequest(before=scene.before, after=scene.after, zones=scene.zones, projects=scene.projects))
    assert result.run_info["normalisation"]["radiometry"] == "relative"
    assert result.run_info["qtype_by"] == "rules"
    patches = result.patches.to_crs("EPSG:32648")
    assert len(patches) == 1
    assert patches.area.sum() == pytest.approx(30 * 30 * 4, rel=0.25)
    assert (patches["QTYPE"] != codes.NOT_PROJECT).all()
