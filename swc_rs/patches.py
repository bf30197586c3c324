"""Mask → polygons: polygonise windows, merge patches across window seams, shape metrics.

Polygons are built in pixel coordinates (integers, exact), so the pieces of one patch
that meet at a window seam share their edge exactly and union cleanly; the grid's
transform maps them to the map at the end.
"""

from __future__ import annotations

import numpy as np
import shapely
from affine import Affine
from rasterio import features
from scipy import ndimage

#: 8-connectivity, as rasterio's polygoniser uses.
EIGHT = np.ones((3, 3), dtype=bool)


def polygonize_window(mask: np.ndarray, row_off: int, col_off: int) -> list[shapely.Polygon]:
    """Polygons (pixel coordinates of the whole grid) of the True cells of one window,
    one per 8-connected component."""
    if not mask.any():
        return []
    labels, _ = ndimage.label(mask, structure=EIGHT)
    return polygonize_labels(labels, row_off, col_off)


def polygonize_labels(labels: np.ndarray, row_off: int, col_off: int) -> list[shapely.Geometry]:
    """The polygon of each label 1..``labels.max()`` (8-connected components, e.g. from
    ``scipy.ndimage.label``), in pixel coordinates of the whole grid; item ``k`` is label
    ``k + 1``, so per-label statistics line up with the polygons."""
    count = int(labels.max()) if labels.size else 0
    polygons: list = [None] * count
    if count == 0:
        return polygons
    labels = labels.astype(np.int32, copy=False)
    # GDAL's polygonize scans every pixel it is given. A component never crosses a row
    # without labels, so each band of labelled rows is traced on its own, cut to its
    # columns: a third less work on a typical window, whose patches leave rows empty.
    edges = np.flatnonzero(np.diff(np.concatenate(([0], labels.any(axis=1).view(np.int8), [0]))))
    for top, bottom in zip(edges[::2], edges[1::2], strict=True):
        band = labels[top:bottom]
        cols = np.flatnonzero(band.any(axis=0))
        band = band[:, cols[0]:cols[-1] + 1]
        transform = Affine.translation(col_off + int(cols[0]), row_off + int(top))
        for geom, value in features.shapes(band, mask=band > 0, connectivity=8, transform=transform):
            k = int(value) - 1
            piece = shapely.geometry.shape(geom)
            polygons[k] = piece if polygons[k] is None else shapely.union(polygons[k], piece)
    return polygons


def merge_seams(polygons: list[shapely.Geometry], window_size: int, *, return_owner: bool = False):
    """Union the pieces of patches cut by window seams.

    Parameters
    ----------
    polygons
        Polygons in grid pixel coordinates, from :func:`polygonize_window` over a
        tiling of ``window_size`` windows.

    return_owner
        Also return, for every input polygon, the index of the patch it became part of.

    Returns
    -------
    ndarray of shapely geometries
        One (Multi)Polygon per patch. Pieces that touch only diagonally across a seam
        corner are joined as well, matching the 8-connectivity used inside windows.
    owner : ndarray of int, only with ``return_owner``
    """
    geoms = np.asarray(polygons, dtype=object)
    if len(geoms) == 0:
        return (geoms, np.zeros(0, dtype=np.intp)) if return_owner else geoms
    xmin, ymin, xmax, ymax = shapely.bounds(geoms).T
    on_seam = (
        (np.mod(xmin, window_size) == 0) & (xmin > 0)
        | (np.mod(ymin, window_size) == 0) & (ymin > 0)
        | (np.mod(xmax, window_size) == 0)
        | (np.mod(ymax, window_size) == 0)
    )
    idx = np.flatnonzero(on_seam)
    if len(idx) < 2:
        return (geoms, np.arange(len(geoms))) if return_owner else geoms
    # Imported here: the window workers import this module for polygonising, not this
    # (scipy.sparse.csgraph: 0.06 s of their start-up, which the calibration waits for).
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    seam_geoms = geoms[idx]
    tree = shapely.STRtree(seam_geoms)
    left, right = tree.query(seam_geoms, predicate="intersects")
    pairs = left != right
    graph = coo_matrix(
        (np.ones(pairs.sum()), (left[pairs], right[pairs])), shape=(len(idx), len(idx))
    )
    count, labels = connected_components(graph, directed=False)
    merged = [shapely.unary_union(seam_geoms[labels == k]) for k in range(count)]
    rest = geoms[~on_seam]
    out = np.concatenate([rest, np.asarray(merged, dtype=object)]) if len(rest) else np.asarray(merged, dtype=object)
    if not return_owner:
        return out
    owner = np.empty(len(geoms), dtype=np.intp)
    owner[~on_seam] = np.arange(len(rest))
    owner[idx] = len(rest) + labels
    return out, owner


def to_map(geoms: np.ndarray, transform: Affine) -> np.ndarray:
    """Pixel-coordinate geometries → map coordinates of the grid."""
    return affine(geoms, transform)


def affine(geoms: np.ndarray, transform: Affine) -> np.ndarray:
    """Apply an affine transform to an array of geometries (vectorised over coordinates)."""
    a, b, c, d, e, f = transform.a, transform.b, transform.c, transform.d, transform.e, transform.f

    def apply(xy: np.ndarray) -> np.ndarray:
        x, y = xy[:, 0], xy[:, 1]
        return np.column_stack([a * x + b * y + c, d * x + e * y + f])

    return shapely.transform(np.asarray(geoms, dtype=object), apply)


def shape_metrics(geoms: np.ndarray) -> dict[str, np.ndarray]:
    """Shape descriptors of polygons in a metric CRS.

    Returns arrays (one value per geometry): area (m²), perimeter (m), compactness
    4πA/P² (1 for a disc), solidity A/area(convex hull), rectangularity
    A/area(minimum rotated rectangle), elongation long/short side of that rectangle.
    """
    area = shapely.area(geoms)
    perimeter = shapely.length(geoms)
    hull = shapely.area(shapely.convex_hull(geoms))
    rect = shapely.oriented_envelope(geoms)
    rect_area = shapely.area(rect)
    coords = [np.asarray(r.exterior.coords) if r.geom_type == "Polygon" else None for r in rect]
    long_side = np.ones(len(geoms))
    short_side = np.ones(len(geoms))
    for i, c in enumerate(coords):
        if c is not None and len(c) >= 4:
            a = np.hypot(*(c[1] - c[0]))
            b = np.hypot(*(c[2] - c[1]))
            long_side[i], short_side[i] = max(a, b), max(min(a, b), 1e-6)
    with np.errstate(divide="ignore", invalid="ignore"):
        return {
            "area_m2": area,
            "perimeter_m": perimeter,
            "compactness": np.where(perimeter > 0, 4 * np.pi * area / perimeter**2, 0.0),
            "solidity": np.where(hull > 0, area / hull, 0.0),
            "rectangularity": np.where(rect_area > 0, area / rect_area, 0.0),
            "elongation": long_side / short_side,
            "width_m": short_side,
        }
