"""swc-rs erosion-trend and the report's erosion section: designed years whose rates
are known by construction, the trend maths, bad input, headless Chromium."""

from __future__ import annotations

import math
import os
import re
import shutil
from pathlib import Path

import geopandas as gpd
import numpy as np
import pyogrio
import pytest
from click.testing import CliRunner

from swc_rs.cli.main import cli
from swc_rs.erosion.trend import linear_trend, read_trend, target_status
from tests.erosion_scene import N, write_scene
from tests.test_report import CHROMIUM, _chromium, _console, parse

DOCS = Path(__file__).resolve().parents[1] / "docs"
#: Year → forest rows on the east slope: the east county's rate is rows / N (N = 200),
#: the zone's 50 % + half of it, the west county's 100 % (tests/erosion_scene.py).
DESIGN = {2022: 40, 2024: 80, 2026: 88}
EAST = {y: 100.0 * r / N for y, r in DESIGN.items()}          # 20, 40, 44
ZONE = {y: 50.0 + 50.0 * r / N for y, r in DESIGN.items()}    # 60, 70, 72


def _erosion(paths, out, year=None):
    args = ["erosion", str(paths["dem"]), "--imagery", str(paths["imagery"]), "--landuse", str(paths["landuse"]),
            "--zones", str(paths["zones"]), "--counties", str(paths["counties"]), "--config", str(paths["config"]),
            "-o", str(out), "-q"]
    if year is not None:
        args += ["--year", str(year)]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    return out


@pytest.fixture(scope="module")
def years(tmp_path_factory) -> dict[int, Path]:
    """The designed scene's erosion output for each year of DESIGN."""
    folder = tmp_path_factory.mktemp("years")
    return {year: _erosion(write_scene(folder / f"in{year}", forest_rows=rows), folder / f"erosion_{year}.gpkg", year)
            for year, rows in DESIGN.items()}


@pytest.fixture(scope="module")
def trend_gpkg(years, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("trend") / "trend.gpkg"
    # Given out of order: the years are read from the files, not from the order.
    result = CliRunner().invoke(cli, ["erosion-trend", str(out), str(years[2026]), str(years[2022]), str(years[2024])])
    assert result.exit_code == 0, result.output
    assert "东县" in result.output and "2032" in result.output
    return out


# -- the maths ---------------------------------------------------------------------------------------------
def test_linear_trend_is_the_least_squares_slope():
    years, rates = [2020, 2021, 2023, 2026], [70.1, 70.9, 71.6, 73.9]
    assert linear_trend(years, rates) == pytest.approx(np.polyfit(years, rates, 1)[0])
    assert linear_trend([2022, 2024, 2026], [60.0, 70.0, 72.0]) == pytest.approx(3.0)
    assert linear_trend([2022, 2024, 2026], [60.0, None, 72.0]) == pytest.approx(3.0)  # a year without a rate
    assert math.isnan(linear_trend([2026], [72.0]))
    assert math.isnan(linear_trend([2024, 2026], [None, 72.0]))


def test_target_status_from_the_latest_rate_at_the_slope():
    # 72 % in 2026 rising 0.5 pp/year: 75.25 after 6.5 years → first met in 2033.
    assert target_status(2026, 72.0, 0.5, 75.25, 2035) == ("可达到", 2033)
    # The same pace is too slow for a nearer target year.
    assert target_status(2026, 72.0, 0.5, 75.25, 2030) == ("达不到", 2033)
    # A crossing that falls on a whole year is that year (no rounding up past it).
    assert target_status(2026, 72.0, 1.5, 75.0, 2035) == ("可达到", 2028)
    assert target_status(2026, 76.0, -1.0, 75.25, 2035) == ("已达到", 2026)
    assert target_status(2026, 72.0, 0.0, 75.25, 2035) == ("达不到", None)
    assert target_status(2026, 72.0, -0.3, 75.25, 2035) == ("达不到", None)
    assert target_status(2026, 72.0, float("nan"), 75.25, 2035) == ("无趋势", None)
    assert target_status(2026, float("nan"), 1.0, 75.25, 2035) == ("无趋势", None)


# -- the designed years ------------------------------------------------------------------------------------
def test_each_year_carries_its_year(years):
    counties = gpd.read_file(years[2024], layer="erosion_counties")
    assert list(counties["YEAR"]) == [2024, 2024]
    assert str(pyogrio.read_dataframe(years[2024], layer="run_info")["year"].iloc[0]) == "2024"
    assert counties.set_index("XZQMC").loc["东县", "SWC_RATE"] == pytest.approx(EAST[2024])


def test_trend_by_year_and_summary_match_the_design(trend_gpkg):
    by_year = pyogrio.read_dataframe(trend_gpkg, layer="trend_counties_by_year")
    east = by_year[by_year["XZQMC"] == "东县"].set_index("YEAR")
    assert list(east.index) == [2022, 2024, 2026]
    assert list(east["SWC_RATE"]) == pytest.approx([EAST[y] for y in DESIGN])
    assert math.isnan(east.loc[2022, "CHANGE_PP"])
    assert east.loc[2024, "CHANGE_PP"] == pytest.approx(EAST[2024] - EAST[2022])
    assert east.loc[2026, "CHANGE_PP"] == pytest.approx(EAST[2026] - EAST[2024])
    assert east.loc[2026, "PREV_YEAR"] == 2024
    assert list(east["GAP_2025"]) == pytest.approx([73.46 - EAST[y] for y in DESIGN])
    assert list(east["GAP_2035"]) == pytest.approx([75.25 - EAST[y] for y in DESIGN])

    counties = gpd.read_file(trend_gpkg, layer="trend_counties").set_index("XZQMC")
    slope = np.polyfit(list(DESIGN), [EAST[y] for y in DESIGN], 1)[0]
    assert slope == pytest.approx(6.0)
    e = counties.loc["东县"]
    assert e["SLOPE_PP_YR"] == pytest.approx(slope)
    assert e["RATE_LAST"] == pytest.approx(44.0) and e["CHANGE_PP"] == pytest.approx(24.0)
    # 44 % in 2026 + 6 pp/year: 75.25 % after 5.2 years → 2032; 73.46 % → 2031, after 2025.
    assert e["REACH_2035"] == 2032 and e["ON_TRACK_2035"] == "可达到"
    assert e["REACH_2025"] == 2031 and e["ON_TRACK_2025"] == "达不到"
    assert "2032" in e["X_TREND"]
    w = counties.loc["西县"]
    assert w["SLOPE_PP_YR"] == pytest.approx(0.0) and w["ON_TRACK_2035"] == "已达到" and w["REACH_2035"] == 2026
    assert counties.crs.to_epsg() == 4490 and counties.geometry.notna().all()

    zone = gpd.read_file(trend_gpkg, layer="trend_zones").iloc[0]
    assert zone["SLOPE_PP_YR"] == pytest.approx(np.polyfit(list(DESIGN), [ZONE[y] for y in DESIGN], 1)[0])
    assert zone["SLOPE_PP_YR"] == pytest.approx(3.0)
    assert zone["REACH_2035"] == 2028 and zone["REACH_2025"] == 2027  # (75.25 − 72) / 3 = 1.08 years
    zones_by_year = pyogrio.read_dataframe(trend_gpkg, layer="trend_zones_by_year").set_index("YEAR")
    assert list(zones_by_year["SWC_RATE"]) == pytest.approx([ZONE[y] for y in DESIGN])
    info = read_trend(trend_gpkg).run_info
    assert info["years"] == [2022, 2024, 2026] and info["targets"] == {"2025": 73.46, "2035": 75.25}
    assert [info["inputs"][i]["swc_rate_all"] for i in range(3)] == pytest.approx([ZONE[y] for y in DESIGN])


def test_trend_output_opens_styled_in_qgis(trend_gpkg):
    import sqlite3
    from contextlib import closing

    with closing(sqlite3.connect(trend_gpkg)) as db:
        styled = {r[0]: r[1] for r in db.execute("SELECT f_table_name, styleQML FROM layer_styles")}
        projects = db.execute("SELECT count(*) FROM qgis_projects").fetchone()[0]
    assert set(styled) == {"trend_counties", "trend_zones"} and projects == 1
    # Coloured by the last target's X_TRACK, with the Chinese aliases.
    assert 'attr="X_TRACK"' in styled["trend_counties"] and "线性趋势(百分点/年)" in styled["trend_counties"]
    counties = gpd.read_file(trend_gpkg, layer="trend_counties").set_index("XZQMC")
    assert list(counties["X_TRACK"]) == list(counties["ON_TRACK_2035"])


def test_targets_are_configuration(years, tmp_path):
    config = tmp_path / "targets.toml"
    config.write_text("[erosion]\ntargets = { 2030 = 74.0, 2035 = 90.0 }\n", encoding="utf-8")
    out = tmp_path / "trend.gpkg"
    result = CliRunner().invoke(cli, ["erosion-trend", str(out), *map(str, years.values()), "--config", str(config)])
    assert result.exit_code == 0, result.output
    east = gpd.read_file(out, layer="trend_counties").set_index("XZQMC").loc["东县"]
    assert east["GAP_2035"] == pytest.approx(90.0 - 44.0)
    assert east["REACH_2035"] == 2034  # (90 − 44) / 6 = 7.7 years
    assert east["REACH_2030"] == 2031 and east["ON_TRACK_2030"] == "达不到"  # (74 − 44) / 6 = 5 years
    assert east["GAP_2025"] == pytest.approx(73.46 - 44.0)  # the default 2025 target stays, merged


def test_partial_years_and_incomparable_grading_are_flagged(tmp_path):
    first = _erosion(write_scene(tmp_path / "a", extra_county=True, forest_rows=30), tmp_path / "a.gpkg", 2024)
    paths = write_scene(tmp_path / "b", extra_county=True, forest_rows=60)
    paths["config"].write_text("[erosion]\nr_value = 6000.0\nk_value = 0.005\ntolerable_t_km2 = 1000.0\n"
                               "grade_breaks_t_km2 = [1000.0, 2500.0, 5000.0, 8000.0, 15000.0]\n", encoding="utf-8")
    second = _erosion(paths, tmp_path / "b.gpkg", 2026)
    out = tmp_path / "t.gpkg"
    result = CliRunner().invoke(cli, ["erosion-trend", str(out), str(first), str(second)])
    assert result.exit_code == 0, result.output
    counties = gpd.read_file(out, layer="trend_counties").set_index("XZQMC")
    assert counties.loc["外县", "X_PARTIAL_YEARS"] == "2024,2026"  # half of it beyond the DEM, both years
    assert counties.loc["西县", "X_PARTIAL_YEARS"] == ""
    warnings = read_trend(out).run_info["warnings"]
    assert len(warnings) == 2 and "tolerable_t_km2" in warnings[0] and "not comparable" in warnings[0]
    _, body = _report(["--erosion", str(out)], tmp_path / "r.html")
    assert "not comparable" in body and "2024,2026" in body


# -- bad input ---------------------------------------------------------------------------------------------
def _fails(args, *needles):
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 2, result.output
    assert "Fix:" in result.output and "Traceback" not in result.output
    for needle in needles:
        assert needle in result.output, result.output
    return result


def test_duplicated_year_is_refused(years, tmp_path):
    copy = tmp_path / "again_2024.gpkg"
    shutil.copyfile(years[2024], copy)
    out = tmp_path / "t.gpkg"
    _fails(["erosion-trend", str(out), str(years[2022]), str(years[2024]), str(copy)],
           "again_2024.gpkg", "erosion_2024.gpkg", "2024", "one erosion output per year")
    _fails(["erosion-trend", str(out), str(years[2022]), str(years[2022])], "given twice")
    assert not out.exists()


def test_files_that_are_not_erosion_outputs_are_refused(years, trend_gpkg, tmp_path):
    out = tmp_path / "t.gpkg"
    text = tmp_path / "notes.gpkg"
    text.write_text("not a geopackage")
    _fails(["erosion-trend", str(out), str(years[2022]), str(text)], "notes.gpkg", "cannot open as a GeoPackage")
    _fails(["erosion-trend", str(out), str(years[2022]), str(tmp_path / "missing.gpkg")], "missing.gpkg",
           "does not exist")
    other = tmp_path / "other.gpkg"
    gpd.GeoDataFrame({"A": [1]}, geometry=gpd.points_from_xy([0], [0]), crs=4326).to_file(other, layer="patches")
    _fails(["erosion-trend", str(out), str(years[2022]), str(other)], "other.gpkg", "not a swc-rs erosion output")
    _fails(["erosion-trend", str(out), str(years[2022]), str(trend_gpkg)], "trend.gpkg", "not a swc-rs erosion output")
    _fails(["erosion-trend", str(out), str(years[2022])], "two or more years")
    assert not out.exists()


def test_an_output_without_year_is_refused(tmp_path):
    plain = _erosion(write_scene(tmp_path / "in"), tmp_path / "plain.gpkg")
    copy = tmp_path / "plain2.gpkg"
    shutil.copyfile(plain, copy)
    _fails(["erosion-trend", str(tmp_path / "t.gpkg"), str(plain), str(copy)], "plain.gpkg", "no monitoring year",
           "--year")
    paths = write_scene(tmp_path / "in")
    result = CliRunner().invoke(cli, ["erosion", str(paths["dem"]), "--zones", str(paths["zones"]), "--counties",
                                      str(paths["counties"]), "--imagery", str(paths["imagery"]), "-o",
                                      str(tmp_path / "o.gpkg"), "--year", "26"])
    assert result.exit_code == 2 and "--year" in result.output and not (tmp_path / "o.gpkg").exists()


def test_existing_trend_output_needs_overwrite(years, tmp_path):
    out = tmp_path / "t.gpkg"
    out.write_text("precious")
    _fails(["erosion-trend", str(out), str(years[2022]), str(years[2026])], "--overwrite")
    assert out.read_text() == "precious"
    result = CliRunner().invoke(cli, ["erosion-trend", str(out), str(years[2022]), str(years[2026]), "--overwrite", "-q"])
    assert result.exit_code == 0, result.output
    assert gpd.read_file(out, layer="trend_counties").set_index("XZQMC").loc["东县", "SLOPE_PP_YR"] == pytest.approx(6.0)


# -- the report's erosion section --------------------------------------------------------------------------
def _report(args, path):
    result = CliRunner().invoke(cli, ["report", *args, "-o", str(path)])
    assert result.exit_code == 0, result.output
    text = path.read_text(encoding="utf-8")
    parser = parse(text)
    assert parser.errors == [] and parser.stack == []
    assert not re.search(r"https?:", text, re.IGNORECASE)  # nothing to fetch
    assert all(u.startswith(("#", "data:")) for u in parser.urls), parser.urls
    return text, " ".join(parser.text)


def test_report_erosion_section_from_a_trend_or_from_the_years(years, trend_gpkg, tmp_path):
    text, body = _report(["--erosion", str(trend_gpkg)], tmp_path / "trend.html")
    assert 'id="erosion"' in text
    for needle in ("水土保持率", "西县", "东县", "Z1", "44.00", "100.00", "73.46", "75.25", "+6.00", "2032", "可达到",
                   "2022 %", "2026 %"):
        assert needle in body, needle
    assert text.count('class="chart"') == 4  # county and zone bars, county and zone trend lines
    assert 'aria-label="水土保持率分布图"' in text
    # Map colours: the west county meets every target, the east county none.
    assert text.count('class="county" fill="#1a9641"') == 1 and text.count('class="county" fill="#d7191c"') == 1
    # The same section straight from the years' outputs (trend computed for the report).
    text2, body2 = _report([f"--erosion={p}" for p in years.values()], tmp_path / "years.html")
    assert body2.split("由 swc-rs")[0] == body.split("由 swc-rs")[0]
    # One year: the rate and the map, no trend.
    text3, body3 = _report(["--erosion", str(years[2026])], tmp_path / "one.html")
    assert "44.00" in body3 and "无趋势" in body3 and text3.count('class="chart"') == 2


def test_report_with_detect_output_and_erosion(years, tmp_path):
    from tests.conftest import make_scene

    scene = make_scene(tmp_path, squares=((60, 35, 20), (100, 100, 30)))
    out = tmp_path / "out.gpkg"
    result = CliRunner().invoke(cli, ["detect", str(scene.before), str(scene.after), "--zones", str(scene.zones),
                                      "--projects", str(scene.projects), "-o", str(out), "--rules", "-q"])
    assert result.exit_code == 0, result.output
    text, body = _report([str(out), "--erosion", str(years[2022]), "--erosion", str(years[2026])], tmp_path / "r.html")
    assert 'id="inspection"' in text and 'id="erosion"' in text
    assert "+6.00" in body  # (44 − 20) / 4 years


def test_report_of_bad_erosion_input_is_a_clear_error(years, trend_gpkg, tmp_path):
    bad = tmp_path / "bad.gpkg"
    bad.write_text("not a geopackage")
    _fails(["report", "--erosion", str(bad), "-o", str(tmp_path / "r.html")], "bad.gpkg")
    _fails(["report", "--erosion", str(trend_gpkg), "--erosion", str(years[2022]), "-o", str(tmp_path / "r.html")],
           "erosion-trend output")
    _fails(["report", "-o", str(tmp_path / "r.html")], "nothing to report")
    assert not (tmp_path / "r.html").exists()


@pytest.mark.skipif(not CHROMIUM.exists(), reason="/usr/bin/chromium is absent (Debian package chromium); the browser test needs it")
def test_erosion_report_loads_in_headless_chromium(trend_gpkg, tmp_path):
    page = tmp_path / "erosion_report.html"
    _report(["--erosion", str(trend_gpkg)], page)
    done, shot = _chromium(page, tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    assert _console(done.stderr) == [], _console(done.stderr)
    assert shot.exists() and shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 10_000
    if os.environ.get("SWC_DOCS_SCREENSHOTS"):  # SWC_DOCS_SCREENSHOTS=1 pytest …: refresh docs/erosion_report.png
        shutil.copyfile(shot, DOCS / "erosion_report.png")
