"""swc-rs erosion: analytic factors, a designed scene with a known rate, bad input."""

from __future__ import annotations

import geopandas as gpd
import numpy as np
import pytest
from click.testing import CliRunner

from swc_rs.cli.main import cli
from swc_rs.erosion import factors, terrain
from tests.erosion_scene import write_raster, write_scene


def test_plane_mean_length_factor_is_analytic():
    n, cell = 40, 10.0
    z = (n - 1 - np.arange(n))[:, None] * cell * np.tan(np.radians(12.0)) + np.zeros((n, 30))
    slope, x = terrain.slope_aspect(z, cell, cell)
    d8 = terrain.flow_directions(z, cell, cell)
    length_in, length_out = terrain.slope_lengths(d8, x, cell, cell, 1e9)
    assert np.allclose(slope[1:-1, 1:-1], 12.0)
    assert np.allclose(length_out[:, 10], cell * np.arange(1, n + 1))
    lf = factors.length_factor(length_in, length_out, factors.length_exponent(slope))
    assert lf[:, 10].mean() == pytest.approx((n * cell / 22.13) ** 0.5)


def test_slope_factor_segments():
    assert factors.slope_factor(np.array([3.0]))[0] == pytest.approx(10.8 * np.sin(np.radians(3)) + 0.03)
    assert factors.slope_factor(np.array([7.0]))[0] == pytest.approx(16.8 * np.sin(np.radians(7)) - 0.5)
    assert factors.slope_factor(np.array([25.0]))[0] == pytest.approx(21.91 * np.sin(np.radians(25)) - 0.96)
    assert list(factors.grade(np.array([499.0, 500.0, 2600.0, 16000.0]))) == [1, 2, 3, 6]


def _args(paths, out):
    return ["erosion", str(paths["dem"]), "--imagery", str(paths["imagery"]), "--landuse", str(paths["landuse"]),
            "--zones", str(paths["zones"]), "--counties", str(paths["counties"]),
            "--config", str(paths["config"]), "-o", str(out)]


def test_designed_scene_rate_by_construction(tmp_path):
    paths = write_scene(tmp_path / "in", extra_county=True)
    out = tmp_path / "out" / "e.gpkg"
    result = CliRunner().invoke(cli, _args(paths, out))
    assert result.exit_code == 0, result.output
    counties = gpd.read_file(out, layer="erosion_counties").set_index("XZQMC")
    assert counties.loc["西县", "SWC_RATE"] == pytest.approx(100.0)
    assert counties.loc["东县", "SWC_RATE"] == pytest.approx(0.0)
    assert counties.loc["外县", "COVER_PCT"] == pytest.approx(50.0)
    assert counties.loc["外县", "X_PARTIAL"] == "是"
    zones = gpd.read_file(out, layer="erosion_zones")
    assert zones.loc[0, "SWC_RATE"] == pytest.approx(50.0)
    assert (tmp_path / "out" / "e_modulus.tif").exists() and (tmp_path / "out" / "e_grade.tif").exists()
    again = CliRunner().invoke(cli, _args(paths, out))
    assert again.exit_code == 2 and "--overwrite" in again.output


@pytest.mark.parametrize("problem", ["no_crs", "outside", "r_range", "landuse_code"])
def test_bad_input_exits_2(tmp_path, problem):
    paths = write_scene(tmp_path / "in")
    if problem == "no_crs":
        write_raster(paths["dem"], np.full((50, 50), 1000.0, np.float32), crs=None)
    elif problem == "outside":
        zones = gpd.read_file(paths["zones"])
        zones.geometry = zones.geometry.translate(1e5, 0)
        zones.to_file(paths["zones"])
    elif problem == "r_range":
        paths["config"].write_text("[erosion]\nr_value = 90000.0\nk_value = 0.005\n", encoding="utf-8")
    else:
        land = gpd.read_file(paths["landuse"])
        land.loc[0, "DLBM"] = "9999"
        land.to_file(paths["landuse"])
    out = tmp_path / "out.gpkg"
    result = CliRunner().invoke(cli, _args(paths, out))
    assert result.exit_code == 2, result.output
    assert "Fix:" in result.output and "Traceback" not in result.output
    assert not out.exists()
