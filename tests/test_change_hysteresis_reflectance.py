"""Hysteresis of the scene-adaptive rule on reflectance rasters: ``[change] hysteresis``."""

import dataclasses

import numpy as np
from scipy import ndimage

from swc_rs.change import (
    Normalisation,
    candidate_mask,
    clean_mask,
    hysteresis,
    hysteresis_masks,
    pixel_evidence,
)
from swc_rs.config import ChangeConfig, DetectConfig
from swc_rs.windows import _seeded
from tests.conftest import detect_patches, make_scene, one_region_whole_across_seams, write_raster

VNIR = ("blue", "green", "red", "nir")


def _evidence(magnitude: np.ndarray):
    """A grey, unvegetated, dry surface on both dates whose change magnitude is ``magnitude``
    (no NDVI drop, no brightness rise: only the scene-adaptive rule can flag it)."""
    grey = np.full((4, *magnitude.shape), 0.15, np.float32)
    ev = pixel_evidence(grey, grey, VNIR, grey, np.full(4, 0.02, np.float32))
    return dataclasses.replace(ev, magnitude=magnitude.astype(np.float32))


def _scene():
    magnitude = np.zeros((40, 40), np.float32)
    magnitude[5:15, 5:15] = 1.2  # a site whose magnitude is mostly below the threshold ...
    magnitude[8:12, 8:12] = 2.0  # ... around a confident core
    magnitude[25:35, 25:35] = 1.2  # as weak, no core: noise, a seasonal field
    return magnitude


def _cfg(fraction):
    return dataclasses.replace(ChangeConfig(), magnitude_smoothing_px=0, hysteresis=fraction, opening_px=1)


def test_hysteresis_masks_seed_at_the_threshold_and_grow_through_its_fraction():
    ev = _evidence(_scene())
    valid = np.ones((40, 40), bool)
    none = np.zeros((40, 40), bool)
    cfg = _cfg(0.7)  # low threshold 0.7 × 1.5 = 1.05 < 1.2
    low, seeds = hysteresis_masks(ev, valid, none, cfg, 1.5)
    assert np.array_equal(seeds, candidate_mask(ev, valid, none, cfg, 1.5))  # the core, which the opening keeps
    assert seeds.sum() == 16
    assert np.array_equal(low, candidate_mask(ev, valid, none, cfg, 0.7 * 1.5))
    cleaned = clean_mask(low, opening_px=1, closing_px=1, min_pixels=9)
    grown = hysteresis(cleaned, seeds & cleaned)
    assert grown[5:15, 5:15].all()  # the whole site
    assert not grown[25:35, 25:35].any()  # no confident core: left out
    # 0.9 × 1.5 = 1.35 > 1.2: the low mask is the core alone
    low, _ = hysteresis_masks(ev, valid, none, _cfg(0.9), 1.5)
    assert low.sum() == 16


def test_hysteresis_grows_only_through_clear_dry_land_and_seeds_survive_the_opening():
    magnitude = _scene()
    magnitude[20, 20] = 3.0  # a lone strong pixel: the opening removes it, so it seeds nothing
    ev = _evidence(magnitude)
    valid = np.ones((40, 40), bool)
    excluded = np.zeros((40, 40), bool)
    excluded[5:15, 13] = True  # a shadow column cuts the site
    low, seeds = hysteresis_masks(ev, valid, excluded, _cfg(0.7), 1.5)
    assert not low[5:15, 13].any()
    assert not seeds[20, 20] and low[20, 20]
    grown = hysteresis(low, seeds)
    assert grown[5:15, 5:13].all() and not grown[5:15, 14:15].any()


def test_hysteresis_is_on_by_default_for_reflectance_only_with_a_finite_threshold():
    assert ChangeConfig().hysteresis == 0.7
    bands = 4
    norm = dataclasses.replace(Normalisation.identity(bands), magnitude_threshold=1.5)
    config = DetectConfig()
    assert _seeded(norm, config)
    assert not _seeded(dataclasses.replace(norm, magnitude_threshold=None), config)
    assert not _seeded(dataclasses.replace(norm, magnitude_threshold=float("inf")), config)
    off = dataclasses.replace(config, change=dataclasses.replace(config.change, hysteresis=0.0))
    assert not _seeded(norm, off)
    no_adaptive = dataclasses.replace(config, change=dataclasses.replace(config.change, adaptive_magnitude=False))
    assert not _seeded(norm, no_adaptive)


def _reflectance_pair(tmp_path):
    """uint16 reflectance × 10000, 256²: textured grey ground (the same on both dates), a
    weakly brightened region across the seam of 128-px windows (columns 40–200; below the
    rule's brightness rise, ~1.25 scene SDs) whose only confident core (columns 50–60) lies
    far outside the right window's halo."""
    rng = np.random.default_rng(5)
    field = ndimage.gaussian_filter(rng.standard_normal((256, 256)), 3)
    field /= field.std()
    level = np.array([0.10, 0.10, 0.10, 0.12])[:, None, None]
    before = level + 0.02 * field[None] + 0.001 * rng.standard_normal((4, 256, 256))
    after = level + 0.02 * field[None] + 0.001 * rng.standard_normal((4, 256, 256))
    after[:, 60:120, 40:200] += 0.025
    after[:, 80:95, 50:60] += 0.05
    write = dict(descriptions=VNIR, dtype="uint16")
    before_tif = write_raster(tmp_path / "before.tif", before * 10000, date="2026-10-01", **write)
    after_tif = write_raster(tmp_path / "after.tif", after * 10000, date="2026-11-02", **write)
    return before_tif, after_tif


def test_a_reflectance_region_across_a_seam_is_grown_whole_from_its_far_core(tmp_path):
    before_tif, after_tif = _reflectance_pair(tmp_path)
    (tmp_path / "vectors").mkdir()
    base = make_scene(tmp_path / "vectors", size=256)

    def patches(window: str, fraction: float):
        return detect_patches(tmp_path, before_tif, after_tif, base, window=window, change=f"hysteresis = {fraction}")

    whole = one_region_whole_across_seams(patches, 0.7)
    core = patches("1024", 0.0)  # off: the confident core alone
    assert len(core) == 1 and core.QAREA[0] < 0.2 * whole
