"""swc-rs erosion's terrain on an analytic cone: slope, S and slope length."""

from __future__ import annotations

import numpy as np
import pytest

from swc_rs.erosion import terrain
from swc_rs.erosion.config import ErosionConfig
from swc_rs.erosion.run import ls_factors

N, CELL = 201, 10.0


def cone(slope_deg: float) -> tuple[np.ndarray, np.ndarray]:
    """A cone of constant slope, apex at the centre; returns (z, r in m)."""
    y, x = np.mgrid[0:N, 0:N]
    r = np.hypot(y - N // 2, x - N // 2) * CELL
    return 1000.0 - np.tan(np.radians(slope_deg)) * r, r


@pytest.mark.parametrize("slope_deg, segment", [(20.0, (21.91, -0.96)), (7.0, (16.8, -0.50)), (3.0, (10.8, 0.03))])
def test_cone_slope_and_s_match_the_formula(slope_deg, segment):
    z, r = cone(slope_deg)
    lf, sf, slope = ls_factors(z, CELL, CELL, ErosionConfig())
    ring = (r >= 10 * CELL) & (r <= 90 * CELL)  # away from the apex and the edges
    assert np.abs(slope[ring] - slope_deg).max() < 0.05
    a, b = segment
    assert np.allclose(sf[ring], a * np.sin(np.radians(slope_deg)) + b, rtol=5e-3)


def test_cone_slope_length_grows_outward_in_proportion():
    """On a cone every contour receives the area inside it: the specific catchment area
    is r/2 in the continuum; per D8 cell with contour width D·x, the ring mean of λ is
    r/2 · mean(1/x) = 0.397 r. swc-rs's λ must grow in proportion to r, close to it."""
    z, r = cone(20.0)
    slope, x = terrain.slope_aspect(z, CELL, CELL)
    d8 = terrain.flow_directions(z, CELL, CELL)
    _, length_out = terrain.slope_lengths(d8, x, CELL, CELL, 1e9)
    edges = np.arange(10, 100, 10) * CELL
    ratios = []
    for lo, hi in zip(edges[:-1], edges[1:], strict=True):
        ring = (r >= lo) & (r < hi)
        ratios.append(length_out[ring].mean() / r[ring].mean())
    means = [length_out[(r >= lo) & (r < hi)].mean() for lo, hi in zip(edges[:-1], edges[1:], strict=True)]
    assert all(b > a for a, b in zip(means, means[1:], strict=False)), means
    assert max(ratios) / min(ratios) < 1.06, ratios
    continuum = 0.5 * (2 / np.pi) * np.sqrt(2) * np.log(np.tan(3 * np.pi / 8))  # r/2 · mean(1/x) over aspects
    assert 0.85 * continuum < np.mean(ratios) <= continuum, (ratios, continuum)
    lf, _, _ = ls_factors(z, CELL, CELL, ErosionConfig(max_slope_length_m=1e9))
    outer = (r >= 50 * CELL) & (r < 90 * CELL)
    inner = (r >= 10 * CELL) & (r < 30 * CELL)
    assert lf[outer].mean() > lf[inner].mean()


def test_windows_and_workers_give_the_whole_dem_result(tmp_path):
    """16 windows of 64 px (halo 62 px: 2 × the 300 m cap + 2 cells) in this process and a
    spawned worker give the per-county table of the one-window run, cell for cell."""
    import geopandas as gpd
    from click.testing import CliRunner

    from swc_rs.cli.main import cli
    from tests.erosion_scene import write_scene

    paths = write_scene(tmp_path / "in", extra_county=True)
    base = ["erosion", str(paths["dem"]), "--imagery", str(paths["imagery"]), "--landuse", str(paths["landuse"]),
            "--zones", str(paths["zones"]), "--counties", str(paths["counties"]), "--config", str(paths["config"])]
    tables = []
    for name, extra in (("one", ["--workers", "1"]), ("tiled", ["--window-size", "64", "--workers", "2"])):
        out = tmp_path / name / "e.gpkg"
        result = CliRunner().invoke(cli, base + extra + ["-o", str(out)])
        assert result.exit_code == 0, result.output
        tables.append(gpd.read_file(out, layer="erosion_counties").drop(columns="geometry"))
        assert np.isfinite(tables[-1]["MEAN_A"]).all()
    assert tables[0].equals(tables[1])


def test_cumulative_l_formula_and_its_check():
    """l_formula = "cumulative" gives (λ_out/22.13)^m on a plane; an unknown formula is refused."""
    from swc_rs.erosion.config import build_erosion_config
    from swc_rs.errors import ConfigError

    n = 40
    z = (n - 1 - np.arange(n))[:, None] * CELL * np.tan(np.radians(12.0)) + np.zeros((n, 30))
    lf, _, _ = ls_factors(z, CELL, CELL, build_erosion_config({"l_formula": "cumulative", "max_slope_length_m": 1e9}))
    assert np.allclose(lf[:, 10], (CELL * np.arange(1, n + 1) / 22.13) ** 0.5)
    with pytest.raises(ConfigError, match="l_formula"):
        build_erosion_config({"l_formula": "point"})
