"""GRASS GIS as the reference for swc-rs erosion's terrain and LS (tests and benchmarks).

Runs GRASS 8 (Debian ``grass-core``) in a temporary location (``grass --tmp-location
EPSG:32648 --exec``) on a GeoTIFF DEM and reads its rasters back; builds the hilly
test DEM; and undoes, from r.watershed's own outputs, the slope-length convention
that keeps its LS from being the LS of the USLE/CSLE (see :func:`grass_implied`).

r.watershed's ``length_slope`` (raster/r.watershed/*/sg_factor.c, slope_len.c, as
of GRASS 8.2): for a cell k D8 steps below the top of its longest upslope flow path,

* slope length λ_g = 2·P_k + d, P_k the horizontal path length from the top and d the
  cell's own outflow step (each step is added twice: once when the cell is visited,
  once when its length is passed down), capped at ``max_slope_length`` (the height
  is scaled with it);
* gradient tan θ_g = (z_top − z)/λ_g: the mean gradient of the path over that doubled
  length, not the local slope — about half of it on a uniform slope;
* S = 10.8 sin θ_g + 0.03 where tan θ_g < 0.09, else 16.8 sin θ_g − 0.50 (McCool et
  al. 1987; no steep-slope segment);
* L = (λ_g/22.13)^m (the cumulative L of the whole path), m = β/(1+β) with
  β = 0.5·(sin θ/0.0896)/(3 sin^0.8 θ + 0.56) (McCool et al. 1989, low rill/interrill
  ratio, ``disturbed_land`` 0);
* a path stops at a stream cell (accumulation ≥ ``threshold``) or a blocking cell.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import numpy as np
import rasterio
from rasterio.transform import from_origin
from scipy import ndimage

GRASS = shutil.which("grass")
SKIP_REASON = ("GRASS GIS is not installed (apt-get install grass-core; .ci/run installs it): the LS reference "
               "comparison needs r.watershed")
CRS = "EPSG:32648"
TAN_MCCOOL = 0.09  # r.watershed's S switches segment at a 9 % gradient


def hills_dem(n: int = 300, cell: float = 10.0, seed: int = 3) -> np.ndarray:
    """A realistic hilly DEM (m): 14 gaussian hills on a tilted base plus smoothed noise.

    300 × 300 cells of 10 m: slopes 4–19° (5th–95th percentile), median 11°.
    """
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:n, 0:n] * cell
    z = np.full((n, n), 500.0)
    for _ in range(14):
        cx, cy = rng.uniform(0, n * cell, 2)
        s = rng.uniform(150, 600)
        z += rng.uniform(40, 180) * np.exp(-((x - cx) ** 2 + (y - cy) ** 2) / (2 * s * s))
    z += 0.02 * x + 0.01 * y
    z += ndimage.gaussian_filter(rng.normal(0, 6.0, (n, n)), 3)
    return z


def plane_dem(rows: int, cols: int, cell: float, slope_deg: float) -> np.ndarray:
    """A plane falling southwards (down the rows) at ``slope_deg``."""
    return 100.0 + (rows - 1 - np.arange(rows))[:, None] * cell * np.tan(np.radians(slope_deg)) + np.zeros((rows, cols))


def write_dem(path: Path, z: np.ndarray, cell: float) -> Path:
    with rasterio.open(path, "w", driver="GTiff", width=z.shape[1], height=z.shape[0], count=1, dtype="float64",
                       crs=CRS, transform=from_origin(300_000.0, 3_300_000.0, cell, cell)) as ds:
        ds.write(z, 1)
    return path


def run_grass(dem: Path, folder: Path, commands: list[str], outputs: list[str], timeout: int = 300) -> dict:
    """Import ``dem`` as map ``dem``, run ``commands`` (GRASS module lines), export ``outputs``.

    Returns {name: float64 array}. Raises RuntimeError with GRASS's messages on failure.
    """
    folder.mkdir(parents=True, exist_ok=True)
    lines = ["set -e", f"r.in.gdal --q input={dem} output=dem", "g.region raster=dem", *commands]
    lines += [f"r.out.gdal --q -f --overwrite input={name} output={folder / name}.tif format=GTiff type=Float64"
              for name in outputs]
    script = folder / "grass_job.sh"
    script.write_text("\n".join(lines) + "\n", encoding="utf-8")
    done = subprocess.run([GRASS, "--tmp-location", CRS, "--exec", "bash", str(script)], capture_output=True,
                          text=True, timeout=timeout, cwd=folder)
    missing = [name for name in outputs if not (folder / f"{name}.tif").exists()]
    if done.returncode != 0 or missing:
        raise RuntimeError(f"GRASS failed (exit {done.returncode}, missing {missing}):\n{done.stderr[-3000:]}")
    result = {}
    for name in outputs:
        with rasterio.open(folder / f"{name}.tif") as ds:
            result[name] = ds.read(1, masked=True).filled(np.nan).astype(np.float64)
    return result


def grass_m(theta_deg) -> np.ndarray:
    """r.watershed's slope-length exponent (McCool et al. 1989, β halved: low rill ratio)."""
    s = np.sin(np.radians(np.asarray(theta_deg, np.float64)))
    beta = 0.5 * (s / 0.0896) / (3.0 * s ** 0.8 + 0.56)
    return beta / (1.0 + beta)


def mccool_s(theta_deg) -> np.ndarray:
    t = np.radians(np.asarray(theta_deg, np.float64))
    return np.where(np.tan(t) < TAN_MCCOOL, 10.8 * np.sin(t) + 0.03, 16.8 * np.sin(t) - 0.50)


def grass_implied(ls: np.ndarray, s: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(θ_g in degrees, λ_g in m) that r.watershed used at each cell, from its S and LS.

    S is inverted per McCool segment (the one consistent with tan θ ⋚ 0.09), then
    λ_g = 22.13·(LS/S)^(1/m(θ_g)). NaN where S ≤ 0.03 (no gradient).
    """
    with np.errstate(invalid="ignore", divide="ignore"):
        sin_hi = (s + 0.50) / 16.8
        sin_lo = (s - 0.03) / 10.8
        steep = np.tan(np.arcsin(np.clip(sin_hi, 0.0, 1.0))) >= TAN_MCCOOL
        theta = np.degrees(np.arcsin(np.clip(np.where(steep, sin_hi, sin_lo), 0.0, 1.0)))
        lam = 22.13 * (ls / s) ** (1.0 / grass_m(theta))
    bad = ~(s > 0.0301)
    theta[bad] = np.nan
    lam[bad] = np.nan
    return theta, lam


def grass_ls_undoubled(ls: np.ndarray, s: np.ndarray, cell: float, cap: float) -> np.ndarray:
    """r.watershed's LS with its slope length counted once.

    From (θ_g, λ_g) of :func:`grass_implied`: the path length P = (λ_g − d)/2 (d = the
    cell size; a diagonal outflow step makes this 0.2 cell short), the path gradient
    tan θ_p = tan θ_g · λ_g / P, and LS = (min(P, cap)/22.13)^m(θ_p) · S(θ_p) with
    r.watershed's own m and S. Run r.watershed with max_slope_length ≥ 2·cap + d so
    that its cap does not cut P below ``cap``.
    """
    theta_g, lam_g = grass_implied(ls, s)
    with np.errstate(invalid="ignore", divide="ignore"):
        path = (lam_g - cell) / 2.0
        theta_p = np.degrees(np.arctan(np.tan(np.radians(theta_g)) * lam_g / path))
        out = (np.minimum(path, cap) / 22.13) ** grass_m(theta_p) * mccool_s(theta_p)
    out[~(path > 0)] = np.nan
    return out


def grass_like_config(cap: float) -> dict:
    """An [erosion] table that puts swc-rs on r.watershed's conventions where it has a key:
    McCool S with the segment switch at 9 % (no Liu 1994 steep segment), m from r.watershed's
    formula in 0.5° classes, the cumulative L, and the cap."""
    theta = np.arange(0.0, 80.0, 0.5)
    return {
        "s_breaks_deg": [float(np.degrees(np.arctan(TAN_MCCOOL)))],
        "s_coefficients": [[10.8, 0.03], [16.8, -0.50]],
        "m_breaks_deg": [float(t) for t in theta[1:] - 0.25],
        "m_values": [float(v) for v in grass_m(theta)],
        "l_formula": "cumulative",
        "max_slope_length_m": float(cap),
    }
