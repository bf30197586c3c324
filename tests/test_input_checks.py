"""Inputs that leave nothing to judge are refused (exit 2) or warned about (run_info + summary)."""

import json
import shutil

import geopandas as gpd
import numpy as np
import pyogrio
import pytest
import shapely
from click.testing import CliRunner
from rasterio.transform import from_origin

from swc_rs.cli.main import cli
from swc_rs.model import default_model_path
from tests.conftest import SOIL, X0, Y0, forest, make_scene, write_raster


def run(scene, *extra, before=None, after=None, zones=None, projects=None, rules=True):
    output = scene.folder / "out.gpkg"
    args = ["detect", str(before or scene.before), str(after or scene.after), "--zones", str(zones or scene.zones),
            "--projects", str(projects or scene.projects), "-o", str(output), "--workers", "1",
            *(["--rules"] if rules else []), *map(str, extra)]
    return CliRunner().invoke(cli, args), output


def refused(result, output, *words):
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    lines = [ln for ln in result.output.strip().splitlines() if ln.startswith("Error: ")]
    assert len(lines) == 1 and "Fix: " in lines[0], result.output
    for word in words:
        assert word in lines[0]
    assert not output.exists()
    assert not list(output.parent.glob(".out.*"))


def warned(result, output, *words) -> list[str]:
    assert result.exit_code == 0, result.output
    recorded = json.loads(pyogrio.read_dataframe(output, layer="run_info").warnings[0])
    assert any(all(w in text for w in words) for text in recorded), recorded
    assert "recorded in run_info" in result.output
    assert any(all(w in line for w in words) for line in result.output.splitlines() if line.strip().startswith("!"))
    return recorded


def far_layer(path, field, value):
    gpd.GeoDataFrame({field: [value]}, geometry=[shapely.box(0, 0, 100, 100)], crs="EPSG:32648").to_file(path)
    return path


def test_after_all_nodata_is_refused(scene):
    after = write_raster(scene.folder / "nodata.tif", np.zeros((4, 160, 160)), date="2026-11-02", nodata=0)
    refused(*run(scene, after=after), "nodata.tif", "AFTER has no valid pixel")


def test_before_all_nodata_is_refused(scene):
    before = write_raster(scene.folder / "nodata.tif", np.full((4, 160, 160), 7), date="2026-10-01", nodata=7)
    refused(*run(scene, before=before), "BEFORE has no valid pixel")


def test_no_pixel_valid_on_both_dates_is_refused(scene):
    """Each date has data, but in opposite halves of the common extent."""
    left, right = forest(160, 160, 1), forest(160, 160, 2)
    left[:, :, 80:] = 0
    right[:, :, :80] = 0
    before = write_raster(scene.folder / "left.tif", left, date="2026-10-01")
    after = write_raster(scene.folder / "right.tif", right, date="2026-11-02")
    refused(*run(scene, before=before, after=after), "no pixel has data on both dates")


def test_data_only_outside_sample_windows_is_found(scene):
    """The sample windows see only nodata; the scan finds the data and the run goes on."""
    after = forest(160, 160, 2)
    after[:, :, :] = 0
    after[:, 140:, 140:] = SOIL[:, None, None]
    after[:, 150:, 150:] *= 1.2
    path = write_raster(scene.folder / "corner.tif", after, date="2026-11-02")
    result, output = run(scene, after=path)
    assert result.exit_code == 0, result.output


def test_common_extent_below_minimum_patch_is_refused(scene):
    """8×8 px at 2 m is 0.0256 hm², below the 0.04 hm² minimum patch."""
    small = write_raster(scene.folder / "small.tif", forest(8, 8, 3), date="2026-11-02",
                         transform=from_origin(X0 + 40, Y0 - 40, 2, 2))
    refused(*run(scene, after=small), "small.tif", "smallest minimum patch area")


@pytest.mark.parametrize("which", ["before", "after"])
def test_constant_raster_is_refused(scene, which):
    const = write_raster(scene.folder / "const.tif", np.full((4, 160, 160), 1000.0),
                         date="2026-10-01" if which == "before" else "2026-11-02")
    refused(*run(scene, **{which: const}), "const.tif", "same values in every valid pixel")


def test_dates_in_wrong_order_are_refused(scene):
    late = write_raster(scene.folder / "late.tif", forest(160, 160, 1), date="2026-12-01")
    refused(*run(scene, before=late), "late.tif", "wrong order", "2026-12-01")


def test_dates_too_far_apart_are_warned(scene):
    old = write_raster(scene.folder / "old.tif", forest(160, 160, 1), date="2024-06-01")
    warned(*run(scene, before=old), "days apart", "max_span_days = 400")


def test_max_span_days_is_configurable(scene):
    old = write_raster(scene.folder / "old.tif", forest(160, 160, 1), date="2024-06-01")
    config = scene.folder / "span.toml"
    config.write_text("[inputs]\nmax_span_days = 1000\n", encoding="utf-8")
    result, output = run(scene, "--config", config, before=old)
    assert result.exit_code == 0, result.output
    assert json.loads(pyogrio.read_dataframe(output, layer="run_info").warnings[0]) == []
    output.unlink()
    config.write_text("[inputs]\nmax_span_days = 0\n", encoding="utf-8")
    refused(*run(scene, "--config", config, before=old), "max_span_days")


def test_same_date_is_warned(scene):
    same = write_raster(scene.folder / "same.tif", forest(160, 160, 1), date="2026-11-02")
    warned(*run(scene, before=same), "same date")


def test_zones_missing_the_imagery_are_refused(scene):
    zones = far_layer(scene.folder / "far_zones.gpkg", "ZONE_CODE", "Z3")
    refused(*run(scene, zones=zones), "far_zones.gpkg", "no zone touches the imagery")


def test_projects_missing_the_imagery_are_warned(scene):
    projects = far_layer(scene.folder / "far_projects.gpkg", "PRNM", "别处的项目")
    warned(*run(scene, projects=projects), "far_projects.gpkg", "no approved project touches the imagery")


def test_sensitive_layer_missing_the_imagery_is_warned(scene):
    sensitive = far_layer(scene.folder / "far_red_line.gpkg", "NAME", "别处的红线")
    warned(*run(scene, "--sensitive", sensitive), "far_red_line.gpkg", "no sensitive area")


def test_a_clean_run_records_no_warnings(scene):
    result, output = run(scene)
    assert result.exit_code == 0, result.output
    assert json.loads(pyogrio.read_dataframe(output, layer="run_info").warnings[0]) == []
    assert "recorded in run_info" not in result.output


def test_patch_model_that_does_not_fit_the_sensor_is_refused(tmp_path):
    """The shipped patch typer is for ≤ 5 m vnir imagery; a copy given with --model on a
    10 m pair is refused (the shipped default on such a pair falls back to the rules)."""
    if default_model_path() is None:
        pytest.skip("no shipped patch model in this checkout")
    scene = make_scene(tmp_path)
    for path, seed in ((scene.before, 1), (scene.after, 2)):
        data = forest(160, 160, seed)
        if path == scene.after:
            data[:, 40:70, 40:70] = SOIL[:, None, None]
        write_raster(path, data, date="2026-10-01" if seed == 1 else "2026-11-02",
                     transform=from_origin(X0, Y0, 10, 10))
    model = shutil.copy(default_model_path(), tmp_path / "my_model.skops")
    refused(*run(scene, "--model", model, rules=False), "my_model.skops", "10.00 m")
    result, _ = run(scene, rules=False)  # the shipped default: the rules type the patches
    assert result.exit_code == 0, result.output
