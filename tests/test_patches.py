import numpy as np
import pytest
import shapely
from affine import Affine
from hypothesis import given, settings
from hypothesis import strategies as st

from swc_rs.patches import merge_seams, polygonize_window, shape_metrics, to_map


def _tile_polygons(mask, size):
    polys = []
    for row in range(0, mask.shape[0], size):
        for col in range(0, mask.shape[1], size):
            polys.extend(polygonize_window(mask[row: row + size, col: col + size], row, col))
    return polys


def _random_mask(seed: int, side: int = 48, density: float = 0.08, rectangles: int = 4) -> np.ndarray:
    """Scattered specks plus a few rectangles, some of them across window seams."""
    rng = np.random.default_rng(seed)
    mask = rng.random((side, side)) < density
    for _ in range(rectangles):
        r, c = rng.integers(0, side - 8, 2)
        mask[r: r + rng.integers(2, 12), c: c + rng.integers(2, 12)] = True
    return mask


def test_patch_crossing_window_corner_comes_out_whole():
    mask = np.zeros((64, 64), bool)
    mask[20:45, 25:50] = True  # crosses the seams at 32 in both directions
    geoms = merge_seams(_tile_polygons(mask, 32), 32)
    assert len(geoms) == 1
    assert geoms[0].area == 25 * 25
    assert geoms[0].geom_type == "Polygon"


@settings(max_examples=40, deadline=None)
@given(st.integers(0, 2**32 - 1), st.sampled_from([8, 16, 24]))
def test_windowed_polygons_equal_whole_image_polygons(seed, size):
    mask = _random_mask(seed)
    whole = polygonize_window(mask, 0, 0)
    windowed = merge_seams(_tile_polygons(mask, size), size)
    assert sum(g.area for g in windowed) == mask.sum()
    assert shapely.union_all(windowed).equals(shapely.union_all(whole))
    # no piece is left split: each merged patch is one 8-connected component or more
    assert len(windowed) <= len(whole)


def test_to_map_applies_grid_transform():
    square = shapely.box(0, 0, 10, 10)
    out = to_map(np.array([square], dtype=object), Affine(2, 0, 1000, 0, -2, 5000))[0]
    assert out.bounds == (1000, 4980, 1020, 5000)


def test_shape_metrics_square_and_strip():
    geoms = np.array([shapely.box(0, 0, 100, 100), shapely.box(0, 0, 200, 10)], dtype=object)
    m = shape_metrics(geoms)
    assert m["area_m2"][0] == 10000
    assert m["rectangularity"][0] == 1.0
    assert m["elongation"][1] == 20.0
    assert m["compactness"][0] > m["compactness"][1]


@settings(max_examples=30, deadline=None)
@given(st.integers(0, 2**32 - 1), st.sampled_from([8, 16]))
def test_every_piece_is_owned_by_the_patch_it_became_part_of(seed, size):
    mask = _random_mask(seed, side=40, density=0.1, rectangles=3)
    pieces = _tile_polygons(mask, size)
    geoms, owner = merge_seams(pieces, size, return_owner=True)
    assert len(owner) == len(pieces) and set(owner) == set(range(len(geoms)))
    for piece, k in zip(pieces, owner, strict=True):
        # (8-connected pieces may touch themselves at a corner: compare their valid form)
        assert shapely.make_valid(geoms[k]).buffer(1e-9).covers(shapely.make_valid(piece))
    # areas add up per patch: the pieces' sums (e.g. the window pass's statistics) merge exactly
    summed = np.bincount(owner, weights=[p.area for p in pieces], minlength=len(geoms))
    assert summed == pytest.approx([g.area for g in geoms])


@settings(max_examples=40, deadline=None)
@given(st.integers(0, 2**32 - 1), st.sampled_from([0.01, 0.05, 0.2]), st.integers(0, 40), st.integers(0, 40))
def test_each_label_polygon_covers_exactly_its_pixels(seed, density, row_off, col_off):
    """Labels traced band by band (rows without labels split the work) come back whole:
    polygon k, burnt back into the grid, is exactly label k's pixels, in grid coordinates."""
    from rasterio.features import rasterize
    from scipy import ndimage

    from swc_rs.patches import EIGHT, polygonize_labels

    mask = _random_mask(seed, side=40, density=density, rectangles=2)
    mask[np.random.default_rng(seed).integers(0, 40, 6)] = False  # empty rows between bands
    labels, count = ndimage.label(mask, structure=EIGHT)
    polygons = polygonize_labels(labels, row_off, col_off)
    assert len(polygons) == count
    shape = (40 + row_off, 40 + col_off)
    for k, polygon in enumerate(polygons, start=1):
        burnt = rasterize([(polygon, 1)], out_shape=shape, dtype=np.uint8, all_touched=False)
        expected = np.zeros(shape, dtype=np.uint8)
        expected[row_off:, col_off:] = labels == k
        assert np.array_equal(burnt, expected), k
