"""The seeded synthetic scene generator (`swc-rs sample`)."""

from __future__ import annotations

import json

import geopandas as gpd
import numpy as np
import pytest
import rasterio
import shapely
from click.testing import CliRunner
from shapely.geometry import box

from swc_rs import sample as S
from swc_rs.cli.main import cli
from swc_rs.errors import InputError, OutputExistsError


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    out = tmp_path_factory.mktemp("scene") / "s"
    return S.generate_scene(out, seed=5, size=320)


@pytest.fixture(scope="module")
def full(tmp_path_factory):
    """One 1024×1024 cell: every BYD class must occur."""
    out = tmp_path_factory.mktemp("full") / "s"
    return S.generate_scene(out, seed=11, size=1024)


def read(path):
    with rasterio.open(path) as ds:
        return ds.read()


def test_rasters_have_the_promised_layout(small):
    for path, date in ((small.before, "2026-10-12"), (small.after, "2026-11-14")):
        with rasterio.open(path) as ds:
            assert ds.count == 4 and ds.dtypes == ("uint16",) * 4
            assert ds.descriptions == S.BANDS
            assert ds.crs.to_epsg() == 32648
            assert ds.res == (2.0, 2.0)
            assert (ds.width, ds.height) == (320, 320)
            assert ds.nodata is None
            assert ds.block_shapes[0] == (256, 256)
            assert ds.compression.name.lower() == "deflate"
            tags = ds.tags()
            assert tags["ACQUISITION_DATE"] == date
            assert tags["TIFFTAG_DATETIME"] == date.replace("-", ":") + " 03:25:00"
            lon, lat = rasterio.warp.transform(
                ds.crs, "EPSG:4326", [ds.bounds.left], [ds.bounds.top]
            )
            assert 102.8 < lon[0] < 103.1 and 29.9 < lat[0] < 30.15  # Ya'an
    info = json.loads(small.info.read_text(encoding="utf-8"))
    shift = np.hypot(info["after_shift_px"]["rows"], info["after_shift_px"]["cols"])
    assert 0.3 <= shift <= S.MAX_SHIFT_PX


def test_same_seed_same_rasters_other_seed_differs(tmp_path, small):
    again = S.generate_scene(tmp_path / "again", seed=5, size=320)
    for a, b in ((small.before, again.before), (small.after, again.after)):
        assert np.array_equal(read(a), read(b))
    assert small.before.read_bytes() == again.before.read_bytes()
    other = S.generate_scene(tmp_path / "other", seed=6, size=320)
    assert not np.array_equal(read(small.before), read(other.before))
    i5, i6 = (json.loads(f.info.read_text(encoding="utf-8")) for f in (small, other))
    assert i5["after_shift_px"] != i6["after_shift_px"] and i5["after_gain"] != i6["after_gain"]


def test_strips_agree_with_one_window():
    """The landscape is a function of coordinates: strips stitch without seams."""
    plan = S._Planner(3, 512)
    plan.plan()
    r = S._Renderer(plan)
    whole = r.render(100, 50, 64, 200)
    top = r.render(100, 50, 30, 200)
    bottom = r.render(130, 50, 34, 200)
    for date in (0, 1):
        assert np.allclose(
            np.concatenate([top[date], bottom[date]], axis=1), whole[date], rtol=1e-5, atol=1e-2
        )


def test_noise_grid_and_points_agree():
    g = S.grid_noise(-7, 13, 5, 6, 12.0, 42)
    rows, cols = np.mgrid[-7:-2, 13:19]
    assert np.allclose(g, S.point_noise(rows, cols, 12.0, 42), atol=1e-6)
    assert g.min() >= -1 and g.max() <= 1


def test_psf_kernel_moves_content_by_the_shift():
    line = np.zeros(41, np.float32)
    line[20] = 1
    from scipy import ndimage

    out = ndimage.correlate1d(line, S._psf_kernel(1.25), mode="constant")
    assert np.sum(np.arange(41) * out) / out.sum() == pytest.approx(21.25, abs=0.01)


def test_vector_layers_schema_and_crs(small):
    zones = gpd.read_file(small.zones, layer="zones")
    assert zones.crs.to_epsg() == 4543
    assert set(zones["ZONE_CODE"]) <= set(S.ZONE_NAMES) and "Z1" in set(zones["ZONE_CODE"])
    assert all(
        S.ZONE_NAMES[c] == n for c, n in zip(zones["ZONE_CODE"], zones["ZONE_NAME"], strict=False)
    )
    projects = gpd.read_file(small.projects, layer="projects")
    assert projects.crs.to_epsg() == 4490
    assert {"PRNM", "DPOZ", "PRTYPE", "SEAA", "SADT", "DAREA", "NOTE"} <= set(projects.columns)
    sens = gpd.read_file(small.sensitive, layer="sensitive_areas")
    assert sens.crs.to_epsg() == 4490 and set(sens["KIND"]) <= {
        "生态保护红线",
        "国家公园",
        "饮用水水源保护区",
    }
    truth = gpd.read_file(small.truth, layer="truth_patches")
    assert truth.crs.to_epsg() == 4490
    assert {"QTYPE", "BYD", "PRNM", "QAREA", "EAREA", "KIND", "X_ZONE"} <= set(truth.columns)
    conf = gpd.read_file(small.truth, layer="confounders")
    assert set(conf["KIND"]) <= set(S.CONFOUNDER_KINDS)


def test_zones_cover_the_scene(small):
    zones = gpd.read_file(small.zones, layer="zones").to_crs(S.SCENE_CRS)
    with rasterio.open(small.before) as ds:
        scene = box(*ds.bounds)
    covered = shapely.union_all(zones.geometry.values)
    assert scene.difference(covered).area < 1e-6
    assert (
        shapely.union_all(
            [
                a.intersection(b)
                for i, a in enumerate(zones.geometry)
                for b in zones.geometry[i + 1 :]
            ]
            or [box(0, 0, 0, 0)]
        ).area
        < 1.0
    )


@pytest.mark.slow
def test_full_cell_has_every_verdict_and_consistent_truth(full):
    truth = gpd.read_file(full.truth, layer="truth_patches")
    projects = gpd.read_file(full.projects, layer="projects")
    assert set(S.BYD_CLASSES) <= set(truth["BYD"])
    assert {S.SPOIL, S.PIT, S.OTHER} <= set(truth["QTYPE"])
    assert len(truth) >= 12
    assert S.check_verdicts(truth, projects) == []
    t = truth.to_crs(S.AREA_CRS)
    assert np.allclose(t.geometry.area / 10_000, truth["QAREA"], atol=2e-4)
    assert (truth["QAREA"] >= 0.04).all()
    over = truth[truth["BYD"] == S.OVERRUN]
    assert (over["EAREA"] >= 0.1).all() and (over["EAREA"] >= 0.2 * over["QAREA"]).all()
    assert (truth.loc[truth["BYD"] != S.OVERRUN, "EAREA"] == 0).all()
    conf = gpd.read_file(full.truth, layer="confounders")
    assert {"tillage", "harvest", "drawdown", "cloud", "cloud_shadow"} <= set(conf["KIND"])
    # Clouds and shadows never hide truth; patches are distinct.
    clouds = shapely.union_all(
        conf[conf["KIND"].isin(["cloud", "cloud_shadow"])].to_crs(S.AREA_CRS).geometry.values
    )
    assert not any(g.intersects(clouds) for g in t.geometry)
    gaps = [a.distance(b) for i, a in enumerate(t.geometry) for b in t.geometry[i + 1 :]]
    assert min(gaps) >= 20
    # A red-by-sensitivity case exists: a sensitive area overlaps an unapproved patch.
    sens = gpd.read_file(full.sensitive, layer="sensitive_areas").to_crs(S.AREA_CRS)
    unapproved = t[t["BYD"].isin([S.UNAPPROVED, S.UNAPPROVED_SPOIL])]
    assert any(s.intersects(g) for s in sens.geometry for g in unapproved.geometry)
    assert set(full.counts["BYD"]) == set(truth["BYD"])


def test_truth_matches_painted_pixels(small):
    """A disturbance changes the after image inside its truth footprint."""
    truth = gpd.read_file(small.truth, layer="truth_patches").to_crs(S.SCENE_CRS)
    if truth.empty:
        pytest.skip("no disturbance fits this small scene")
    before, after = read(small.before).astype(float), read(small.after).astype(float)
    with rasterio.open(small.before) as ds:
        mask = rasterio.features.rasterize(
            truth.geometry, out_shape=(ds.height, ds.width), transform=ds.transform
        )
    inner = mask.astype(bool)
    brightness = lambda a: a[:3].mean(axis=0)  # noqa: E731
    assert brightness(after)[inner].mean() > 1.5 * brightness(before)[inner].mean()


def test_rejects_bad_arguments(tmp_path):
    with pytest.raises(InputError):
        S.generate_scene(tmp_path / "x", size=100)
    with pytest.raises(InputError):
        S.generate_scene(tmp_path / "x", seed=-1, size=256)


def test_refuses_to_overwrite_without_flag(tmp_path):
    out = tmp_path / "scene"
    runner = CliRunner()
    first = runner.invoke(cli, ["sample", "-o", str(out), "--size", "256", "--seed", "1", "-q"])
    assert first.exit_code == 0, first.output
    before = (out / "before.tif").read_bytes()
    second = runner.invoke(cli, ["sample", "-o", str(out), "--size", "256", "--seed", "2"])
    assert second.exit_code == 2
    assert "--overwrite" in second.output
    assert (out / "before.tif").read_bytes() == before
    third = runner.invoke(
        cli, ["sample", "-o", str(out), "--size", "256", "--seed", "2", "--overwrite", "-q"]
    )
    assert third.exit_code == 0, third.output
    assert (out / "before.tif").read_bytes() != before
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".scene.tmp")]
    with pytest.raises(OutputExistsError):
        S.generate_scene(out, seed=3, size=256)


def test_cli_prints_a_summary(tmp_path):
    result = CliRunner().invoke(cli, ["sample", "-o", str(tmp_path / "s"), "--size", "256"])
    assert result.exit_code == 0, result.output
    assert "BYD" in result.output and "before.tif" in result.output


def test_illustrative_city_zones():
    zones = S.illustrative_city_zones()
    assert list(zones["ZONE_CODE"]) == ["Z1", "Z2", "Z3", "Z4", "Z5"]
    assert zones.crs.to_epsg() == 4543
    assert (zones["NOTE"] == S.ILLUSTRATIVE_NOTE).all()
    ll = zones.to_crs("EPSG:4490")
    minx, miny, maxx, maxy = ll.total_bounds
    assert 101.9 <= minx and maxx <= 103.4 and 28.8 <= miny and maxy <= 30.95
    assert 13_000 < zones.geometry.area.sum() / 1e6 < 19_000  # km², Ya'an is 15,046 km²
    union = shapely.union_all(zones.geometry.values)
    assert abs(union.area - zones.geometry.area.sum()) < 1e3  # no overlaps


@pytest.fixture(scope="module")
def randomised(tmp_path_factory):
    out = tmp_path_factory.mktemp("random") / "s"
    return S.generate_scene(out, seed=5, size=320, style="random")


def test_random_style_is_seeded_and_looks_other_than_classic(tmp_path, small, randomised):
    again = S.generate_scene(tmp_path / "again", seed=5, size=320, style="random")
    assert np.array_equal(read(randomised.after), read(again.after))
    assert not np.array_equal(read(small.before), read(randomised.before))
    info = json.loads(randomised.info.read_text(encoding="utf-8"))
    assert info["style"] == "random"
    drawn = info["style_parameters"]
    assert drawn["spectra"]["tilled"] != [round(x, 1) for x in S.SPECTRA["tilled"]]
    assert S.Style.random(5) == S.Style.random(5) and S.Style.random(5) != S.Style.random(6)
    assert json.loads(small.info.read_text(encoding="utf-8"))["style"] == "classic"


def test_random_styles_span_wide_distributions():
    styles = [S.Style.random(seed) for seed in range(40)]
    brightness = [s.spectra["tilled"][2] / S.SPECTRA["tilled"][2] for s in styles]
    assert min(brightness) < 0.9 and max(brightness) > 1.6  # darker and much brighter tilled soil
    assert min(s.parcel_rows_px[0] for s in styles) < 10 and max(s.parcel_rows_px[0] for s in styles) > 25
    assert any(s.sowing > 0.3 for s in styles) and any(s.haze > 0.5 for s in styles)
    assert min(s.clouds_per_cell[0] for s in styles) == 0


def test_random_style_truth_matches_painted_pixels(randomised):
    truth = gpd.read_file(randomised.truth, layer="truth_patches").to_crs("EPSG:32648")
    assert len(truth) > 0
    before, after = read(randomised.before).astype(float), read(randomised.after).astype(float)
    with rasterio.open(randomised.before) as ds:
        transform = ds.transform
    changed = 0
    for geom in truth.geometry:
        mask = rasterio.features.geometry_mask([geom.buffer(-4)], (320, 320), transform, invert=True)
        if mask.sum() < 20:
            continue
        changed += np.abs(after[:, mask] - before[:, mask]).mean() > 150
    assert changed >= 1


def test_sowing_is_a_confounder_of_some_random_style(tmp_path):
    kinds = set()
    for seed in range(6):
        scene = S.generate_scene(tmp_path / str(seed), seed=seed, size=512, style="random")
        kinds |= set(gpd.read_file(scene.truth, layer="confounders")["KIND"])
        if "sowing" in kinds:
            break
    assert "sowing" in kinds


def test_unknown_style_is_refused(tmp_path):
    result = CliRunner().invoke(cli, ["sample", "-o", str(tmp_path / "s"), "--size", "256", "--style", "cartoon"])
    assert result.exit_code == 2 and "cartoon" in result.output
    with pytest.raises(InputError, match="not known"):
        S.generate_scene(tmp_path / "x", size=256, style="cartoon")


def test_terrain_for_erosion(small, tmp_path):
    """dem.tif, landuse.gpkg and counties.gpkg fit the images and run through swc-rs erosion."""
    from pathlib import Path

    from swc_rs.erosion.config import ErosionConfig
    from swc_rs.erosion.run import landuse_class

    with rasterio.open(small.dem) as dem, rasterio.open(small.before) as img:
        assert dem.crs == img.crs and dem.res == (S.DEM_M, S.DEM_M)
        assert (dem.bounds.left, dem.bounds.top) == (img.bounds.left, img.bounds.top)
        assert (dem.width, dem.height) == (64, 64)  # 320 px of 2 m
        z = dem.read(1)
    assert np.isfinite(z).all() and abs(float(z.mean()) - S.DEM_BASE_M) < 640 and z.std() > 1.0
    land = gpd.read_file(small.landuse, layer="DLTB")
    table = ErosionConfig().landuse_codes
    assert all(landuse_class(code, table) is not None for code in land["DLBM"])
    scene = (320 * S.PIXEL_M) ** 2
    assert land.to_crs(S.SCENE_CRS).area.sum() == pytest.approx(scene, rel=1e-3)
    counties = gpd.read_file(small.counties)
    assert sorted(counties["XZQMC"]) == sorted(name for _, name in S.COUNTIES)
    assert counties.to_crs(S.SCENE_CRS).area.sum() == pytest.approx(scene, rel=1e-3)
    again = S.generate_scene(tmp_path / "again", seed=5, size=320)
    assert small.dem.read_bytes() == again.dem.read_bytes()
    out = tmp_path / "e" / "erosion.gpkg"
    config = Path(__file__).resolve().parent.parent / "pipelines" / "erosion_sample.toml"
    result = CliRunner().invoke(cli, ["erosion", str(small.dem), "--imagery", str(small.before), "--landuse",
                                      str(small.landuse), "--zones", str(small.zones), "--counties",
                                      str(small.counties), "--config", str(config), "-o", str(out)])
    assert result.exit_code == 0, result.output
    table = gpd.read_file(out, layer="erosion_counties")
    assert len(table) == 2 and (table["COVER_PCT"] > 99.5).all()
    assert ((table["SWC_RATE"] >= 0) & (table["SWC_RATE"] <= 100)).all()
