import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from swc_rs.change import (
    candidate_mask,
    clean_mask,
    cloud_shadow_mask,
    fit_normalisation,
    pixel_evidence,
)
from swc_rs.config import ChangeConfig

ROLES = ("blue", "green", "red", "nir")


def test_normalisation_undoes_known_gain_and_offset():
    rng = np.random.default_rng(0)
    before = rng.uniform(0.02, 0.4, size=(4, 20000)).astype(np.float32)
    gain = np.array([1.12, 0.9, 1.05, 0.87], np.float32)
    offset = np.array([0.01, -0.008, 0.004, 0.02], np.float32)
    after = before * gain[:, None] + offset[:, None]
    # 10 % of pixels really changed: they must not bias the fit
    after[:, :2000] = rng.uniform(0.1, 0.5, size=(4, 2000))
    norm = fit_normalisation(before, after)
    np.testing.assert_allclose(norm.gain, 1 / gain, rtol=0.01)
    restored = norm.apply(after[:, None, 2000:])[:, 0]
    np.testing.assert_allclose(restored, before[:, 2000:], atol=2e-3)


def _stack(values, shape=(20, 20)):
    return np.broadcast_to(np.asarray(values, np.float32)[:, None, None], (4, *shape)).copy()


def test_clearing_is_candidate_but_gain_change_is_not():
    cfg = ChangeConfig()
    before = _stack([0.025, 0.045, 0.028, 0.33])
    after = before * 1.1
    after[:, 5:15, 5:15] = np.array([0.13, 0.16, 0.20, 0.24])[:, None, None]
    ev = pixel_evidence(before, after, ROLES)
    valid = np.ones((20, 20), bool)
    mask = candidate_mask(ev, valid, cloud_shadow_mask(before, after, ROLES, ev, cfg), cfg)
    assert mask[5:15, 5:15].all()
    assert mask.sum() == 100


def test_water_level_change_is_not_candidate():
    cfg = ChangeConfig()
    before = _stack([0.045, 0.055, 0.035, 0.015])  # water
    after = _stack([0.07, 0.085, 0.095, 0.12])  # exposed wet mud
    ev = pixel_evidence(before, after, ROLES)
    mask = candidate_mask(ev, np.ones((20, 20), bool), np.zeros((20, 20), bool), cfg)
    assert not mask.any()


def test_cloud_and_shadow_are_masked():
    cfg = ChangeConfig()
    before = _stack([0.025, 0.045, 0.028, 0.33])
    after = before.copy()
    after[:, :8] = 0.6  # cloud
    after[:, 14:] *= 0.45  # shadow
    ev = pixel_evidence(before, after, ROLES)
    excluded = cloud_shadow_mask(before, after, ROLES, ev, cfg)
    assert excluded[:8].all() and excluded[14:].all()
    mask = candidate_mask(ev, np.ones((20, 20), bool), excluded, cfg)
    assert not mask.any()


@pytest.mark.parametrize("opening", [0, 1])
def test_clean_mask_drops_specks_but_keeps_border_pieces(opening):
    mask = np.zeros((30, 30), bool)
    mask[10:20, 10:20] = True  # a patch
    mask[2, 2] = True  # a speck
    mask[25:30, 0:3] = True  # small, but touches the border: may continue next window
    out = clean_mask(mask, opening_px=opening, closing_px=1, min_pixels=20)
    assert out[10:20, 10:20].all()
    assert not out[2, 2]
    assert out[27:30, 0:2].any()


@settings(max_examples=40, deadline=None)
@given(st.integers(0, 2**32 - 1), st.floats(0.3, 0.7))
def test_fill_holes_matches_scipy(seed, density):
    from scipy import ndimage

    from swc_rs.change import fill_holes

    rng = np.random.default_rng(seed)
    mask = ndimage.binary_opening(rng.random((50, 60)) < density)
    assert (fill_holes(mask) == ndimage.binary_fill_holes(mask)).all()


@settings(max_examples=60, deadline=None)
@given(st.integers(0, 2**32 - 1), st.floats(0.05, 0.6), st.integers(2, 30), st.booleans())
def test_components_by_size_match_scipy_labelling(seed, density, min_pixels, keep_border):
    """Specks (clouds, shadows, patches below the minimum area) are dropped exactly as a
    labelling and a size count over the whole array say; border pieces stay when asked."""
    from scipy import ndimage

    from swc_rs.change import _drop_small, _sized_components

    rng = np.random.default_rng(seed)
    mask = rng.random(tuple(rng.integers(2, 50, 2))) < density
    labels, count = ndimage.label(mask, structure=np.ones((3, 3), bool))
    sizes = np.bincount(labels.ravel(), minlength=count + 1)
    keep = sizes >= min_pixels
    if keep_border:
        keep[np.concatenate([labels[0], labels[-1], labels[:, 0], labels[:, -1]])] = True
    keep[0] = False
    assert (_sized_components(mask, min_pixels, keep_border=keep_border) == keep[labels]).all()
    transposed = np.asfortranarray(mask.T)  # another memory layout: the same components
    assert (_sized_components(transposed, min_pixels, keep_border=keep_border) == keep[labels].T).all()
    if not keep_border:
        assert (_drop_small(mask, min_pixels) == keep[labels]).all()


@settings(max_examples=60, deadline=None)
@given(st.integers(0, 2**32 - 1), st.integers(1, 10), st.floats(0.0, 0.6))
def test_square_morphology_matches_scipy_filters(seed, radius, density):
    from scipy import ndimage

    from swc_rs.change import dilate, erode

    rng = np.random.default_rng(seed)
    mask = rng.random(tuple(rng.integers(1, 40, 2))) < density
    size = 2 * radius + 1
    assert (dilate(mask, radius) == (ndimage.maximum_filter(mask.view(np.uint8), size=size) > 0)).all()
    assert (erode(mask, radius) == (ndimage.minimum_filter(mask.view(np.uint8), size=size, mode="constant", cval=0) > 0)).all()


def test_a_clearing_seen_by_another_sensor_is_not_taken_for_water():
    # AFTER from a sensor with a brighter green and a darker NIR than BEFORE's: a fresh
    # clearing's delivered NDWI crosses the water level, its normalised one does not.
    cfg = ChangeConfig()
    gain = np.array([1.5, 1.4, 1.3, 0.8], np.float32)[:, None, None]
    offset = np.array([0.04, 0.03, 0.02, -0.01], np.float32)[:, None, None]
    before = _stack([0.025, 0.045, 0.028, 0.33])
    truth = before.copy()
    truth[:, 5:15, 5:15] = np.array([0.10, 0.14, 0.17, 0.19])[:, None, None]
    delivered = truth * gain + offset
    ev = pixel_evidence(before, delivered, ROLES, after_normalised=(delivered - offset) / gain)
    assert (ev.water_after[5:15, 5:15] < cfg.water_ndwi).all()
    naive = pixel_evidence(before, delivered, ROLES)  # without the normalised bands: "water"
    assert (naive.water_after[5:15, 5:15] > cfg.water_ndwi).all()
    valid = np.ones((20, 20), bool)
    water = (ev.water_before > cfg.water_ndwi) | (ev.water_after > cfg.water_ndwi)
    mask = candidate_mask(ev, valid, water, cfg)
    assert mask[5:15, 5:15].all()


@pytest.mark.parametrize("roles", [("blue", "green", "red", "nir"), ("blue", "green", "red"),
                                   ("blue", "green", "red", "nir", "swir1", "swir2")])
def test_evidence_in_row_blocks_equals_one_pass_over_the_window(roles):
    """A window is worked through in blocks of rows (cache-sized); every index, across
    the block edges, is the number one pass over the whole window gives."""
    import dataclasses

    from swc_rs import change

    rng = np.random.default_rng(11)
    rows = 3 * change.EVIDENCE_BLOCK_ROWS + 17
    before = rng.uniform(0.01, 0.5, (len(roles), rows, 90)).astype(np.float32)
    after = rng.uniform(0.01, 0.5, (len(roles), rows, 90)).astype(np.float32)
    normalised = after * np.float32(0.9) + np.float32(0.01)
    scale = np.maximum(before.std(axis=(1, 2)), 1e-3)
    whole = change._evidence_block(before, after, roles, normalised, scale, None, True)
    blocked = change.pixel_evidence(before, after, roles, normalised, scale)
    for f in dataclasses.fields(whole):
        np.testing.assert_array_equal(getattr(blocked, f.name), getattr(whole, f.name), err_msg=f.name)
    # without a scene scale, the window's own spread: taken over the whole window, not per block
    assert np.array_equal(change.pixel_evidence(before, after, roles).magnitude,
                          change._evidence_block(before, after, roles, None, scale, None, True).magnitude)
