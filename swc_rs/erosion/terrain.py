"""Terrain on one DEM tile: slope, aspect, depression filling, D8 flow, slope length.

Depression filling (Wang & Liu 2006 priority flood) and flow accumulation are
pyflwdir's (Deltares, numba-compiled); see ``docs/erosion.md`` for why it was chosen
over pysheds, richdem, xarray-spatial, WhiteboxTools and GRASS. Flow directions are
the steepest descent (D8) on the filled DEM; on the flats the filling leaves, a cell
drains to the neighbour the priority flood reached it from, which always leads out.

All functions take a float DEM tile (NaN = nodata) and the cell size in metres.
"""

from __future__ import annotations

import numpy as np
import pyflwdir
from pyflwdir import dem as pyflwdir_dem

_NODATA = -9999.0
# pyflwdir's D8 codes (ESRI): E, SE, S, SW, W, NW, N, NE and their (drow, dcol).
_D8 = ((1, 0, 1), (2, 1, 1), (4, 1, 0), (8, 1, -1), (16, 0, -1), (32, -1, -1), (64, -1, 0), (128, -1, 1))


def slope_aspect(z: np.ndarray, dx: float, dy: float) -> tuple[np.ndarray, np.ndarray]:
    """Slope (degrees) and the contour-width factor x = |sin α| + |cos α| (Horn 1981).

    Third-order finite differences on the 3×3 neighbourhood; edges and nodata
    neighbours take the centre cell's value. ``x`` is 1 where the slope is zero.
    """
    valid = np.isfinite(z)
    zc = np.where(valid, z, 0.0)
    p = np.pad(zc, 1, mode="edge")
    pv = np.pad(valid, 1, mode="constant", constant_values=False)
    h, w = z.shape

    def at(dr, dc):
        sl = (slice(1 + dr, 1 + dr + h), slice(1 + dc, 1 + dc + w))
        return np.where(pv[sl], p[sl], zc)

    a, b, c = at(-1, -1), at(-1, 0), at(-1, 1)
    d, f = at(0, -1), at(0, 1)
    g, hh, i = at(1, -1), at(1, 0), at(1, 1)
    dzdx = ((c + 2 * f + i) - (a + 2 * d + g)) / (8.0 * dx)
    dzdy = ((g + 2 * hh + i) - (a + 2 * b + c)) / (8.0 * dy)
    grad = np.hypot(dzdx, dzdy)
    slope = np.degrees(np.arctan(grad))
    with np.errstate(divide="ignore", invalid="ignore"):
        x = np.where(grad > 0, (np.abs(dzdx) + np.abs(dzdy)) / grad, 1.0)
    slope[~valid] = np.nan
    return slope, x


def flow_directions(z: np.ndarray, dx: float, dy: float) -> np.ndarray:
    """D8 flow directions (pyflwdir codes, 247 nodata, 0 outlet) on the depression-filled DEM.

    Cells at the tile edge, and next to nodata, are outlets when no neighbour is lower.
    """
    valid = np.isfinite(z)
    elevation = np.where(valid, z, _NODATA).astype(np.float64)
    filled, flood = pyflwdir_dem.fill_depressions(elevation, nodata=_NODATA, outlets="edge")
    h, w = z.shape
    big = np.float64(np.finfo(np.float64).max)
    p = np.pad(np.where(valid, filled, big), 1, mode="constant", constant_values=big)
    best = np.zeros((h, w), np.float64)
    code = np.zeros((h, w), np.uint8)
    for value, dr, dc in _D8:
        neighbour = p[1 + dr:1 + dr + h, 1 + dc:1 + dc + w]
        drop = (filled - neighbour) / np.hypot(dr * dy, dc * dx)
        better = drop > best
        best[better] = drop[better]
        code[better] = value
    d8 = np.where(code > 0, code, flood).astype(np.uint8)
    # The flood reaches the edge cells from one another; an edge cell with no lower
    # neighbour drains out of the tile instead of along its edge.
    outside = np.pad(~valid, 1, mode="constant", constant_values=True)
    edge = np.zeros((h, w), bool)
    for _, dr, dc in _D8:
        edge |= outside[1 + dr:1 + dr + h, 1 + dc:1 + dc + w]
    d8[edge & (code == 0)] = 0
    d8[~valid] = 247
    return d8


def slope_lengths(d8: np.ndarray, x: np.ndarray, dx: float, dy: float, cap_m: float) -> tuple[np.ndarray, np.ndarray]:
    """Slope length (m) at each cell's upslope and downslope edge, both capped at ``cap_m``.

    λ_in = A_in / (D·x) and λ_out = (A_in + D²) / (D·x), with A_in the upslope
    contributing area (m²) draining into the cell (flow accumulation, the cell
    excluded), D the cell size and x the contour-width factor (Desmet & Govers 1996).
    """
    flw = pyflwdir.from_array(d8, ftype="d8", check_ftype=False)
    cells = flw.upstream_area(unit="cell").astype(np.float64)  # the cell itself included
    cell_area = dx * dy
    width = np.sqrt(cell_area) * x
    area_in = np.clip(cells - 1.0, 0.0, None) * cell_area
    length_in = np.minimum(area_in / width, cap_m)
    length_out = np.minimum((area_in + cell_area) / width, cap_m)
    nodata = d8 == 247
    length_in[nodata] = np.nan
    length_out[nodata] = np.nan
    return length_in, length_out
