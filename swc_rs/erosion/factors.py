"""The CSLE factors, pure numpy: A = R · K · L · S · B · E · T (Liu Baoyu et al. 2002).

Every function takes arrays and the :class:`~swc_rs.erosion.config.ErosionConfig`
numbers, and returns arrays; none reads a file. Slopes are in degrees, lengths in
metres, A in t/(hm²·a) (× 100 for the modulus in t/(km²·a)).
"""

from __future__ import annotations

import numpy as np
from numba import njit

from swc_rs.erosion.config import CLASSES, ErosionConfig

#: SL 190-2007 grade names, grade 1 (微度) … 6 (剧烈); 0 is "not seen".
GRADES = ("微度", "轻度", "中度", "强烈", "极强烈", "剧烈")


def slope_factor(theta_deg: np.ndarray, breaks_deg=(5.0, 10.0),
                 coefficients=((10.8, 0.03), (16.8, -0.50), (21.91, -0.96))) -> np.ndarray:
    """Slope steepness factor S = a·sin θ + b, piecewise by slope class.

    Defaults: McCool et al. (1987) for θ < 5° (10.8 sin θ + 0.03) and 5–10°
    (16.8 sin θ − 0.50), and Liu, Nearing & Risse (1994) for steep slopes θ ≥ 10°
    (21.91 sin θ − 0.96), as in the CSLE. ``theta_deg``: float array, degrees.
    """
    theta = np.asarray(theta_deg, dtype=np.float64)
    cls = np.searchsorted(np.asarray(breaks_deg, np.float64), theta, side="right")
    a = np.asarray([c[0] for c in coefficients], np.float64)[cls]
    b = np.asarray([c[1] for c in coefficients], np.float64)[cls]
    return a * np.sin(np.radians(theta)) + b


def length_exponent(theta_deg: np.ndarray, breaks_deg=(1.0, 3.0, 5.0), values=(0.2, 0.3, 0.4, 0.5)) -> np.ndarray:
    """Slope-length exponent m by slope class: 0.2 (θ ≤ 1°), 0.3 (≤ 3°), 0.4 (≤ 5°), 0.5 (> 5°)."""
    theta = np.asarray(theta_deg, dtype=np.float64)
    cls = np.searchsorted(np.asarray(breaks_deg, np.float64), theta, side="left")
    return np.asarray(values, np.float64)[cls]


@njit(cache=True)
def _segment_l(lin, lout, m, out):
    for i in range(lin.size):
        a, b, e = lin.flat[i], lout.flat[i], m.flat[i]
        if b - a > 1e-9:
            out.flat[i] = (b ** (e + 1.0) - a ** (e + 1.0)) / ((b - a) * 22.13 ** e)
        else:
            out.flat[i] = (b / 22.13) ** e


def length_factor(length_in: np.ndarray, length_out: np.ndarray, m: np.ndarray) -> np.ndarray:
    """Slope length factor of a cell as a slope segment (Foster & Wischmeier 1974).

    L = (λ_out^(m+1) − λ_in^(m+1)) / ((λ_out − λ_in) · 22.13^m), with λ_in and λ_out the
    slope length (m) at the cell's upslope and downslope edge. With λ from the upslope
    contributing area per unit contour width this is Desmet & Govers (1996); the
    area-weighted mean of L down a uniform slope of length λ is (λ/22.13)^m. Where the
    cap has made λ_in = λ_out, L = (λ/22.13)^m. (One compiled pass, numba.)
    """
    lin, lout, m = np.broadcast_arrays(np.asarray(length_in, np.float64), np.asarray(length_out, np.float64),
                                       np.asarray(m, np.float64))
    out = np.empty(lin.shape, np.float64)
    _segment_l(np.ascontiguousarray(lin), np.ascontiguousarray(lout), np.ascontiguousarray(m), out)
    return out


def cumulative_length_factor(length_out: np.ndarray, m: np.ndarray) -> np.ndarray:
    """L = (λ/22.13)^m at the cell's downslope edge: the L of the whole slope from the
    divide down to the cell (Wischmeier & Smith 1978), the convention of GRASS
    r.watershed and of USLE hand tables, not the cell's own share of the slope."""
    return (np.asarray(length_out, np.float64) / 22.13) ** np.asarray(m, np.float64)


def vegetation_cover(ndvi: np.ndarray, ndvi_soil: float = 0.05, ndvi_veg: float = 0.80) -> np.ndarray:
    """Fractional vegetation cover by the dimidiate pixel model, clipped to 0–1.

    FVC = (NDVI − NDVI_soil) / (NDVI_veg − NDVI_soil) (Gutman & Ignatov 1998).
    """
    return np.clip((np.asarray(ndvi, np.float64) - ndvi_soil) / (ndvi_veg - ndvi_soil), 0.0, 1.0)


class FactorTables:
    """The land-use × cover tables of a configuration as lookup arrays by class index.

    Class index 0 is "unknown"; 1 … len(CLASSES) follow :data:`CLASSES`.
    """

    def __init__(self, config: ErosionConfig):
        n = len(CLASSES) + 1
        self.graded = np.zeros(n, bool)        # B depends on the cover class
        self.b = np.ones((n, 5), np.float64)   # B by class and cover class
        self.e = np.ones(n, np.float64)
        self.t = np.ones(n, np.float64)
        for i, name in enumerate(CLASSES, start=1):
            if name in config.b_cover:
                self.graded[i] = True
                self.b[i] = config.b_cover[name]
            else:
                self.b[i] = config.b_fixed[name]
            self.e[i] = config.e_landuse[name]
            self.t[i] = config.t_landuse[name]
        self.fvc_breaks = np.asarray(config.fvc_breaks, np.float64)

    def biological(self, cls: np.ndarray, fvc: np.ndarray) -> np.ndarray:
        """B of each pixel from its class index and cover (NaN cover only matters where graded)."""
        cover = np.searchsorted(self.fvc_breaks, np.nan_to_num(fvc, nan=0.0), side="right")
        return self.b[cls, cover]

    def needs_cover(self, cls: np.ndarray) -> np.ndarray:
        return self.graded[cls]


def grade(modulus_t_km2: np.ndarray, breaks_t_km2=(500.0, 2500.0, 5000.0, 8000.0, 15000.0)) -> np.ndarray:
    """SL 190-2007 grade 1 (微度, below the tolerance) … 6 (剧烈) of a modulus in t/(km²·a)."""
    return (np.searchsorted(np.asarray(breaks_t_km2, np.float64), modulus_t_km2, side="right") + 1).astype(np.uint8)
