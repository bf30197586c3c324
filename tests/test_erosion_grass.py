"""swc-rs erosion's terrain and LS against GRASS GIS (r.slope.aspect, r.watershed).

Runs where GRASS is installed (.ci/run installs grass-core); skips with the reason
elsewhere. The DEM is a realistic hilly one (tests/grass_ref.py: 300 × 300 cells of
10 m, slopes 4–19°); "non-flat" is slope > 1°, the 2-cell frame is left out.

What agrees within 5 %: swc-rs's LS and the LS of the same formulas on GRASS's
terrain (r.slope.aspect slope and aspect, r.watershed -s flow accumulation). What
does not: r.watershed's own length_slope, a different quantity (its slope length
counts every step twice and its S is taken at the mean gradient of that doubled
path: tests/grass_ref.py and docs/erosion.md); the plane test pins that convention
down exactly, and the hills comparison is kept as a strict xfail with the measured gap.
"""

from __future__ import annotations

import numpy as np
import pyflwdir
import pytest

from swc_rs.erosion import factors, terrain
from swc_rs.erosion.config import ErosionConfig, build_erosion_config
from swc_rs.erosion.run import ls_factors
from tests.grass_ref import (
    GRASS,
    SKIP_REASON,
    grass_implied,
    grass_like_config,
    grass_ls_undoubled,
    grass_m,
    hills_dem,
    mccool_s,
    plane_dem,
    run_grass,
    write_dem,
)

pytestmark = pytest.mark.skipif(GRASS is None, reason=SKIP_REASON)

CELL = 10.0
CAP = 300.0
INNER = (slice(2, -2), slice(2, -2))
NO_STREAMS = "threshold=100000000"  # no stream cells: slope lengths run to the cap


def _median_rel(ours: np.ndarray, ref: np.ndarray, mask: np.ndarray) -> float:
    ok = mask & np.isfinite(ref) & (ref > 0.05) & np.isfinite(ours)
    return float(np.median(np.abs(ours[ok] - ref[ok]) / ref[ok]))


@pytest.fixture(scope="module")
def hills(tmp_path_factory):
    folder = tmp_path_factory.mktemp("grass_hills")
    z = hills_dem()
    dem = write_dem(folder / "hills.tif", z, CELL)
    out = run_grass(dem, folder, [
        "r.slope.aspect --q elevation=dem slope=slope aspect=aspect format=degrees precision=DCELL",
        f"r.watershed -s --q elevation=dem {NO_STREAMS} accumulation=acc",
        # max_slope_length = 2·cap + cell: r.watershed's doubled length is cut where the path reaches the cap
        f"r.watershed -s --q elevation=dem {NO_STREAMS} max_slope_length={2 * CAP + CELL} "
        "length_slope=ls slope_steepness=s",
    ], ["slope", "aspect", "acc", "ls", "s"])
    slope, x = terrain.slope_aspect(z, CELL, CELL)
    return {"z": z, "grass": out, "slope": slope, "x": x, "non_flat": slope[INNER] > 1.0}


def test_slope_matches_r_slope_aspect(hills):
    theirs = hills["grass"]["slope"][INNER]
    assert np.nanmax(np.abs(hills["slope"][INNER] - theirs)) < 1e-6


def test_flow_accumulation_matches_r_watershed(hills):
    d8 = terrain.flow_directions(hills["z"], CELL, CELL)
    ours = pyflwdir.from_array(d8, ftype="d8", check_ftype=False).upstream_area(unit="cell")[INNER]
    theirs = np.abs(hills["grass"]["acc"][INNER])  # negative: may take flow from outside the region
    same = np.isclose(ours, theirs)[hills["non_flat"]]
    assert same.mean() >= 0.95, f"only {100 * same.mean():.1f} % of non-flat cells have GRASS's upslope count"


def test_ls_matches_ls_on_grass_terrain_within_5_percent(hills):
    """swc-rs's LS (default CSLE configuration) vs the same L·S formulas on GRASS's
    slope, aspect (contour width) and SFD flow accumulation."""
    config = ErosionConfig()
    lf, sf, _ = ls_factors(hills["z"], CELL, CELL, config)
    g = hills["grass"]
    slope = g["slope"]
    alpha = np.radians(g["aspect"])
    x = np.where(slope > 0, np.abs(np.sin(alpha)) + np.abs(np.cos(alpha)), 1.0)
    area_in = np.clip(np.abs(g["acc"]) - 1.0, 0.0, None) * CELL * CELL
    length_in = np.minimum(area_in / (CELL * x), CAP)
    length_out = np.minimum((area_in + CELL * CELL) / (CELL * x), CAP)
    m = factors.length_exponent(slope, config.m_breaks_deg, config.m_values)
    ref = factors.length_factor(length_in, length_out, m) * factors.slope_factor(slope, config.s_breaks_deg,
                                                                                  config.s_coefficients)
    rel = _median_rel((lf * sf)[INNER], ref[INNER], hills["non_flat"])
    assert rel <= 0.05, f"median |relative difference| {100 * rel:.2f} %"


def test_r_watershed_length_slope_convention_on_a_plane(tmp_path):
    """On a 12° plane r.watershed's S and LS are those of λ_g = 2P + d and tan θ_g = Δz/λ_g
    (tests/grass_ref.py); with the doubling undone they are swc-rs's LS on r.watershed's
    conventions (McCool S, its m, cumulative L) within 2 % in the lower half: swc-rs
    measures λ from the top edge of row 0 to the cell's lower edge, r.watershed its path
    from the centre of row 1 (its edge row is not a path start) to the cell centre, two
    cells less."""
    rows, cols, deg = 120, 30, 12.0
    z = plane_dem(rows, cols, CELL, deg)
    dem = write_dem(tmp_path / "plane.tif", z, CELL)
    g = run_grass(dem, tmp_path, [f"r.watershed -s --q elevation=dem {NO_STREAMS} max_slope_length=1e9 "
                                  "length_slope=ls slope_steepness=s"], ["ls", "s"])
    col = cols // 2
    k = np.clip(np.arange(rows) - 1.0, 0.0, None)  # r.watershed starts the path at row 1 (row 0 is its edge)
    lam_g = 2.0 * k * CELL + CELL
    theta_g = np.degrees(np.arctan(k * CELL * np.tan(np.radians(deg)) / lam_g))
    expect_s = mccool_s(theta_g)
    expect_ls = (lam_g / 22.13) ** grass_m(theta_g) * expect_s
    body = slice(5, rows - 1)
    assert np.allclose(g["s"][body, col], expect_s[body], rtol=1e-3)
    assert np.allclose(g["ls"][body, col], expect_ls[body], rtol=1e-3)
    implied_theta, _ = grass_implied(g["ls"], g["s"])
    assert implied_theta[rows - 2, col] == pytest.approx(np.degrees(np.arctan(np.tan(np.radians(deg)) / 2)), rel=0.02)
    config = build_erosion_config(grass_like_config(1e9))
    lf, sf, _ = ls_factors(z, CELL, CELL, config)
    fixed = grass_ls_undoubled(g["ls"], g["s"], CELL, 1e9)
    lower = slice(rows // 2, rows - 1)
    assert np.allclose((lf * sf)[lower, col], fixed[lower, col], rtol=0.02)


@pytest.mark.xfail(strict=True, reason="r.watershed's length_slope is not the CSLE's LS: its slope length counts "
                   "every step twice and its S uses the mean gradient of that doubled path; even with the doubling "
                   "undone, flow-path length and path gradient differ from contributing area and local slope on "
                   "hills (measured 2026-12-07: median |rel| 24 %, docs/erosion.md)")
def test_ls_matches_r_watershed_length_slope_within_5_percent(hills):
    config = build_erosion_config(grass_like_config(CAP))
    lf, sf, _ = ls_factors(hills["z"], CELL, CELL, config)
    fixed = grass_ls_undoubled(hills["grass"]["ls"], hills["grass"]["s"], CELL, CAP)
    rel = _median_rel((lf * sf)[INNER], fixed[INNER], hills["non_flat"])
    assert rel <= 0.05, f"median |relative difference| {100 * rel:.1f} %"
