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
from numba import njit
from pyflwdir import dem as pyflwdir_dem

_NODATA = -9999.0
# pyflwdir's D8 codes (ESRI): E, SE, S, SW, W, NW, N, NE and their (drow, dcol).
_D8 = ((1, 0, 1), (2, 1, 1), (4, 1, 0), (8, 1, -1), (16, 0, -1), (32, -1, -1), (64, -1, 0), (128, -1, 1))


@njit(cache=True)
def _neighbour(z, r, c, zc):
    """z[r, c], or the centre value ``zc`` outside the tile or at nodata."""
    h, w = z.shape
    if r < 0 or r >= h or c < 0 or c >= w:
        return zc
    v = z[r, c]
    return v if np.isfinite(v) else zc


@njit(cache=True)
def _horn(z, dx, dy, slope, x):
    h, w = z.shape
    for r in range(h):
        for c in range(w):
            zc = z[r, c]
            if not np.isfinite(zc):
                slope[r, c] = np.nan
                x[r, c] = 1.0
                continue
            a = _neighbour(z, r - 1, c - 1, zc)
            b = _neighbour(z, r - 1, c, zc)
            cc = _neighbour(z, r - 1, c + 1, zc)
            d = _neighbour(z, r, c - 1, zc)
            f = _neighbour(z, r, c + 1, zc)
            g = _neighbour(z, r + 1, c - 1, zc)
            hh = _neighbour(z, r + 1, c, zc)
            i = _neighbour(z, r + 1, c + 1, zc)
            dzdx = ((cc + 2 * f + i) - (a + 2 * d + g)) / (8.0 * dx)
            dzdy = ((g + 2 * hh + i) - (a + 2 * b + cc)) / (8.0 * dy)
            grad = np.hypot(dzdx, dzdy)
            slope[r, c] = np.degrees(np.arctan(grad))
            x[r, c] = (abs(dzdx) + abs(dzdy)) / grad if grad > 0 else 1.0


def slope_aspect(z: np.ndarray, dx: float, dy: float) -> tuple[np.ndarray, np.ndarray]:
    """Slope (degrees) and the contour-width factor x = |sin α| + |cos α| (Horn 1981).

    Third-order finite differences on the 3×3 neighbourhood; edges and nodata
    neighbours take the centre cell's value. ``x`` is 1 where the slope is zero.
    One compiled pass over the tile (numba).
    """
    z = np.ascontiguousarray(z, dtype=np.float64)
    slope = np.empty(z.shape, np.float64)
    x = np.empty(z.shape, np.float64)
    _horn(z, float(dx), float(dy), slope, x)
    return slope, x


_DR = np.array([d[1] for d in _D8], np.int64)
_DC = np.array([d[2] for d in _D8], np.int64)
_CODE = np.array([d[0] for d in _D8], np.uint8)


@njit(cache=True)
def _steepest(filled, valid, flood, dx, dy, dr, dc, codes, out):
    h, w = filled.shape
    dist = np.empty(8)
    for k in range(8):
        dist[k] = np.hypot(dr[k] * dy, dc[k] * dx)
    for r in range(h):
        for c in range(w):
            if not valid[r, c]:
                out[r, c] = 247
                continue
            best = 0.0
            code = np.uint8(0)
            edge = False
            z0 = filled[r, c]
            for k in range(8):
                rr, cc = r + dr[k], c + dc[k]
                if rr < 0 or rr >= h or cc < 0 or cc >= w or not valid[rr, cc]:
                    edge = True
                    continue
                drop = (z0 - filled[rr, cc]) / dist[k]
                if drop > best:
                    best = drop
                    code = codes[k]
            if code > 0:
                out[r, c] = code
            elif edge:
                out[r, c] = 0
            else:
                out[r, c] = flood[r, c]


def flow_directions(z: np.ndarray, dx: float, dy: float) -> np.ndarray:
    """D8 flow directions (pyflwdir codes, 247 nodata, 0 outlet) on the depression-filled DEM.

    Steepest descent (drop over distance) to one of the 8 neighbours; where no
    neighbour is lower (the flats the filling leaves), the cell drains to the
    neighbour the priority flood reached it from. Cells at the tile edge, and next
    to nodata, are outlets when no neighbour is lower: the flood reaches the edge
    cells from one another, and an edge cell drains out of the tile instead of along
    its edge.
    """
    valid = np.isfinite(z)
    elevation = np.where(valid, z, _NODATA).astype(np.float64)
    filled, flood = pyflwdir_dem.fill_depressions(elevation, nodata=_NODATA, outlets="edge")
    out = np.empty(z.shape, np.uint8)
    _steepest(filled, valid, flood, float(dx), float(dy), _DR, _DC, _CODE, out)
    return out


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
