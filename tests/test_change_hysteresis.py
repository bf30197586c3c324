"""Hysteresis of the relative (8-bit) scene threshold: ``relative_hysteresis``."""

import dataclasses

import numpy as np

from swc_rs.change import hysteresis, pixel_evidence, relative_candidate_mask
from swc_rs.config import ChangeConfig

RGB = ("blue", "green", "red")


def _evidence(magnitude: np.ndarray):
    grey = np.full((3, *magnitude.shape), 0.2, np.float32)
    ev = pixel_evidence(grey, grey, RGB, grey, np.full(3, 0.02, np.float32))
    return dataclasses.replace(ev, magnitude=magnitude.astype(np.float32))


def _scene():
    magnitude = np.zeros((40, 40), np.float32)
    magnitude[5:15, 5:15] = 2.0  # a building whose magnitude dips below the threshold ...
    magnitude[9:11, 9:11] = 4.0  # ... but that holds a seed
    magnitude[25:35, 25:35] = 2.0  # as weak, no seed: noise / a shadow edge
    magnitude[5:15, 16:20] = 2.0  # as weak, a column of zeros away from the building
    return magnitude


def test_hysteresis_keeps_components_of_the_low_mask_that_hold_a_seed():
    low = np.zeros((6, 6), bool)
    low[0:2, 0:2] = True
    low[2, 2] = True  # diagonal neighbour: 8-connected to the first block
    low[4:6, 4:6] = True
    seeds = np.zeros_like(low)
    seeds[0, 0] = True
    out = hysteresis(low, seeds)
    assert out[0:2, 0:2].all() and out[2, 2]
    assert not out[4:6, 4:6].any()
    assert not hysteresis(low, np.zeros_like(low)).any()


def test_relative_hysteresis_completes_a_seeded_object_and_leaves_weak_noise_out():
    ev = _evidence(_scene())
    valid = np.ones((40, 40), bool)
    off = dataclasses.replace(ChangeConfig(), magnitude_smoothing_px=0, relative_hysteresis=0.0,
                              relative_seed_factor=1.0)
    on = dataclasses.replace(off, relative_hysteresis=0.6)
    plain = relative_candidate_mask(ev, valid, 3.0, off)
    grown = relative_candidate_mask(ev, valid, 3.0, on)
    assert plain.sum() == 4  # the seed alone
    assert grown[5:15, 5:15].all()  # the whole building
    assert not grown[25:35, 25:35].any()  # no seed: not grown
    assert not grown[5:15, 16:20].any()  # not connected through the low mask
    # the low threshold is a fraction of the scene's: 0.6 × 3.0 = 1.8 < 2.0, 0.7 × 3.0 = 2.1 > 2.0
    assert relative_candidate_mask(ev, valid, 3.0, dataclasses.replace(off, relative_hysteresis=0.7)).sum() == 4


def test_relative_hysteresis_grows_only_through_valid_non_greening_ground():
    ev = _evidence(_scene())
    valid = np.ones((40, 40), bool)
    valid[5:15, 12] = False  # a masked column (cloud shadow, nodata) splits the building
    cfg = dataclasses.replace(ChangeConfig(), magnitude_smoothing_px=0, relative_hysteresis=0.6,
                              relative_seed_factor=1.0)
    grown = relative_candidate_mask(ev, valid, 3.0, cfg)
    assert grown[5:15, 5:12].all()
    assert not grown[5:15, 12:15].any()
    ev_green = dataclasses.replace(ev, veg_drop=np.where(np.arange(40)[None, :] >= 12, -1.0, 0.0).astype(np.float32)
                                   * np.ones((40, 1), np.float32))
    grown = relative_candidate_mask(ev_green, np.ones((40, 40), bool), 3.0, cfg)
    assert grown[5:15, 5:12].all() and not grown[:, 12:].any()  # greening is never grown into


def test_relative_hysteresis_is_off_and_the_seed_factor_on_by_default():
    assert ChangeConfig().relative_hysteresis == 0.0
    assert ChangeConfig().relative_seed_factor == 1.5


def test_relative_seed_factor_keeps_only_regions_whose_peak_reaches_k_times_the_threshold():
    magnitude = np.zeros((40, 40), np.float32)
    magnitude[5:15, 5:15] = 3.5  # above the threshold, with a strong core: kept whole
    magnitude[9:11, 9:11] = 8.0
    magnitude[25:35, 25:35] = 3.5  # above the threshold but weak everywhere: low contrast
    ev = _evidence(magnitude)
    valid = np.ones((40, 40), bool)
    base = dataclasses.replace(ChangeConfig(), magnitude_smoothing_px=0, relative_seed_factor=1.0)
    plain = relative_candidate_mask(ev, valid, 3.0, base)
    assert plain[5:15, 5:15].all() and plain[25:35, 25:35].all()
    strict = relative_candidate_mask(ev, valid, 3.0, dataclasses.replace(base, relative_seed_factor=1.5))
    assert strict[5:15, 5:15].all()  # the whole region, not only its core
    assert not strict[25:35, 25:35].any()
