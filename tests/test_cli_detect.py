"""`swc-rs detect` from the command line: exit codes, messages, outputs."""

import os

import geopandas as gpd
import pyogrio
import pytest
import shapely
from click.testing import CliRunner
from rasterio.transform import from_origin

from swc_rs import codes
from swc_rs.cli.main import cli
from tests.conftest import (
    X0,
    Y0,
    detect_patches,
    forest,
    make_scene,
    one_region_whole_across_seams,
    write_raster,
)


def run(scene, *extra, output=None):
    output = output or scene.folder / "out.gpkg"
    args = ["detect", str(scene.before), str(scene.after), "--zones", str(scene.zones),
            "--projects", str(scene.projects), "-o", str(output), "--rules", *map(str, extra)]
    return CliRunner().invoke(cli, args), output


def assert_bad_input(result, output, *words):
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    assert result.output.startswith("Error: ")
    assert len(result.output.strip().splitlines()) == 1
    for word in words:
        assert word in result.output
    assert not output.exists()
    assert not list(output.parent.glob(".out.*"))  # no temporary left behind


def test_detect_writes_all_layers(scene):
    result, output = run(scene)
    assert result.exit_code == 0, result.output
    layers = {name for name, _ in pyogrio.list_layers(output)}
    assert {"disturbance_patches", "suspected_violations", "projects", "zones", "run_info"} <= layers
    patches = gpd.read_file(output, layer="disturbance_patches")
    assert patches.crs.to_epsg() == 4490
    assert len(patches) == 1
    assert patches.BYD[0] == codes.COMPLIANT and patches.PRNM[0] == "测试项目"
    assert patches.QAREA[0] == pytest.approx(0.36, abs=0.02)  # 30 × 30 px at 2 m
    assert patches.QDNM[0] == "511800-202611-000001"
    assert set(patches.geom_type) == {"MultiPolygon"}
    info = pyogrio.read_dataframe(output, layer="run_info")
    assert len(info.before_sha256[0]) == 64 and info.period[0] == "202611"


def test_existing_output_is_not_overwritten(scene):
    output = scene.folder / "out.gpkg"
    output.write_text("precious")
    result, _ = run(scene, output=output)
    assert result.exit_code == 2 and "--overwrite" in result.output
    assert output.read_text() == "precious"
    result, _ = run(scene, "--overwrite", output=output)
    assert result.exit_code == 0


def test_missing_file(scene):
    scene.before.unlink()
    result, output = run(scene)
    assert_bad_input(result, output, str(scene.before), "does not exist")


def test_unreadable_raster(scene):
    scene.after.write_bytes(b"not a tiff")
    result, output = run(scene)
    assert_bad_input(result, output, str(scene.after), "cannot be read")


def test_raster_without_crs(scene):
    write_raster(scene.before, forest(160, 160), crs=None)
    result, output = run(scene)
    assert_bad_input(result, output, str(scene.before), "coordinate reference system", "Fix:")


def test_rasters_that_do_not_overlap(scene):
    write_raster(scene.after, forest(160, 160), transform=from_origin(X0 + 50_000, Y0, 2, 2))
    result, output = run(scene)
    assert_bad_input(result, output, str(scene.after), "does not overlap")


def test_too_few_bands_for_sensor(scene):
    write_raster(scene.before, forest(160, 160)[:3], descriptions=None)
    write_raster(scene.after, forest(160, 160)[:3], descriptions=None)
    result, output = run(scene, "--sensor", "gf")
    assert_bad_input(result, output, str(scene.before), "band")


def test_zones_without_zone_code(scene):
    zones = gpd.read_file(scene.zones).drop(columns=["ZONE_CODE"])
    zones.to_file(scene.zones, layer="zones")
    result, output = run(scene)
    assert_bad_input(result, output, str(scene.zones), "ZONE_CODE")


def test_empty_projects_warns_and_everything_is_unapproved(tmp_path):
    empty = gpd.GeoDataFrame({"PRNM": []}, geometry=[], crs="EPSG:4490")
    scene = make_scene(tmp_path, projects=empty)
    result, output = run(scene)
    assert result.exit_code == 0, result.output
    assert "empty" in result.output and "疑似未批先建" in result.output
    patches = gpd.read_file(output, layer="disturbance_patches")
    assert list(patches.BYD) == [codes.UNAPPROVED]


def test_invalid_project_geometry_is_repaired_with_a_warning(tmp_path):
    bowtie = shapely.Polygon([(X0 + 60, Y0 - 60), (X0 + 160, Y0 - 180), (X0 + 160, Y0 - 60), (X0 + 60, Y0 - 180)])
    projects = gpd.GeoDataFrame({"PRNM": ["蝴蝶结项目"], "DAREA": [1.0]}, geometry=[bowtie], crs="EPSG:32648")
    scene = make_scene(tmp_path, projects=projects)
    result, output = run(scene)
    assert result.exit_code == 0, result.output
    assert "蝴蝶结项目" in result.output and "invalid geometry" in result.output
    assert output.exists()


def test_bad_band_map(scene):
    result, output = run(scene, "--bands", "blue=1,purple=2")
    assert_bad_input(result, output, "purple")


def test_fail_on_violations_exit_code(tmp_path):
    empty = gpd.GeoDataFrame({"PRNM": []}, geometry=[], crs="EPSG:4490")
    scene = make_scene(tmp_path, projects=empty)
    result, _ = run(scene, "--fail-on-violations")
    assert result.exit_code == 3


def test_patch_across_window_seams_is_one_patch_and_workers_agree(tmp_path):
    # a 40×40 px clearing across the seams of 128-px windows (rows and columns 108–148)
    scene = make_scene(tmp_path, size=256, squares=((108, 108, 40),))
    whole, _ = run(scene, "--window-size", "1024", output=tmp_path / "whole.gpkg")
    tiled, _ = run(scene, "--window-size", "128", "--workers", "1", output=tmp_path / "tiled.gpkg")
    parallel, _ = run(scene, "--window-size", "128", "--workers", "2", output=tmp_path / "parallel.gpkg")
    assert whole.exit_code == tiled.exit_code == parallel.exit_code == 0, (whole.output, tiled.output, parallel.output)
    frames = [gpd.read_file(tmp_path / f"{n}.gpkg", layer="disturbance_patches") for n in ("whole", "tiled", "parallel")]
    assert [len(f) for f in frames] == [1, 1, 1]
    assert frames[1].QAREA[0] == frames[0].QAREA[0] == pytest.approx(0.64, abs=0.02)
    metric = [f.to_crs("EPSG:4543").geometry[0] for f in frames]
    assert metric[1].symmetric_difference(metric[0]).area < 0.01  # m²: the same footprint
    assert metric[2].symmetric_difference(metric[1]).area < 0.01
    # The object features are summed over the pieces in the window pass: the patch cut
    # in four by the seams has the features of the whole one (its ring may count a few
    # pixels near the seams twice).
    feats = [pyogrio.read_dataframe(tmp_path / f"{n}.gpkg", layer="patch_features") for n in ("whole", "tiled", "parallel")]
    ring = ["ring_veg_before", "ring_bright_after"]
    inner = [c for c in feats[0].columns if c not in ring + ["QDNM"]]
    assert feats[1][inner].to_numpy() == pytest.approx(feats[0][inner].to_numpy(), rel=1e-5, abs=1e-9)
    assert feats[1][ring].to_numpy() == pytest.approx(feats[0][ring].to_numpy(), abs=0.01)
    assert feats[2][inner + ring].to_numpy() == pytest.approx(feats[1][inner + ring].to_numpy(), rel=1e-9, abs=1e-12)


def test_previous_output_keeps_ids_and_reports_growth(tmp_path):
    (tmp_path / "m1").mkdir()
    first = make_scene(tmp_path / "m1", squares=((40, 40, 30),))
    result, out1 = run(first, output=tmp_path / "m1.gpkg")
    assert result.exit_code == 0, result.output
    (tmp_path / "m2").mkdir()
    second = make_scene(tmp_path / "m2", squares=((40, 40, 40), (110, 110, 20)))
    result, out2 = run(second, "--previous", str(out1), "--period", "202612", output=tmp_path / "m2.gpkg")
    assert result.exit_code == 0, result.output
    before = gpd.read_file(out1, layer="disturbance_patches")
    after = gpd.read_file(out2, layer="disturbance_patches").sort_values("QAREA", ascending=False)
    assert after.QDNM.iloc[0] == before.QDNM[0]  # the same site keeps its id
    assert after.QDTYPE.iloc[0] == "续建（范围扩大）"
    assert after.QDTYPE.iloc[1] == "新增" and after.QDNM.iloc[1] == "511800-202612-000001"


def _window_dies_in_a_spawned_worker(item):
    """The window job of the test below: a spawned worker dies on its first window."""
    if os.getpid() != int(os.environ["SWC_RS_TEST_PARENT"]):
        os._exit(1)
    return item * 10


def test_windows_are_shared_with_this_process_and_survive_a_dead_worker(monkeypatch):
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor
    from types import SimpleNamespace

    from swc_rs.pipeline import _shared_windows

    monkeypatch.setenv("SWC_RS_TEST_PARENT", str(os.getpid()))
    with ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("spawn")) as executor:
        pool = SimpleNamespace(workers=2, executor=executor)
        finished = list(_shared_windows(list(range(40)), lambda i: i * 10, _window_dies_in_a_spawned_worker,
                                        lambda i: i, pool))
    assert sorted(finished) == [(i, i * 10) for i in range(40)]  # every window once, the lost one too


def _window_fails_in_a_spawned_worker(item):
    if os.getpid() != int(os.environ["SWC_RS_TEST_PARENT"]):
        raise ValueError(f"window {item} cannot be processed")
    return item


def test_an_error_in_a_window_worker_is_raised_not_hidden(monkeypatch):
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor
    from types import SimpleNamespace

    from swc_rs.pipeline import _shared_windows

    monkeypatch.setenv("SWC_RS_TEST_PARENT", str(os.getpid()))
    with ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("spawn")) as executor:
        pool = SimpleNamespace(workers=2, executor=executor)
        with pytest.raises(ValueError, match="cannot be processed"):
            list(_shared_windows(list(range(40)), lambda i: i, _window_fails_in_a_spawned_worker, lambda i: i, pool))


def test_calibration_in_a_window_worker_equals_calibration_here():
    from pathlib import Path
    from types import SimpleNamespace

    from swc_rs.config import load_config
    from swc_rs.pipeline import DetectRequest, _calibrate, _start_calibration
    from swc_rs.raster import RasterPair
    from swc_rs.workers import start_workers

    sample = Path(__file__).resolve().parents[1] / "data" / "sample_tiles"
    request = DetectRequest(before=sample / "before.tif", after=sample / "after.tif", zones=sample / "zones.gpkg",
                            projects=sample / "projects.gpkg", config=load_config(None))
    executor = start_workers(1, module="swc_rs.pipeline")
    try:
        with RasterPair(request.before, request.after) as here, RasterPair(request.before, request.after) as there:
            norm, shift, used = _calibrate(here, request.config)
            remote_norm, remote_shift, remote_used = _start_calibration(there, request, SimpleNamespace(executor=executor))()
            assert there.shift == here.shift != (0.0, 0.0)  # the sample's AFTER is shifted: applied here too
    finally:
        executor.shutdown(wait=True)
    assert (remote_shift, remote_used) == (shift, used)
    assert remote_norm.to_dict() == norm.to_dict()
    assert remote_norm.magnitude_threshold == norm.magnitude_threshold


def test_an_8bit_region_across_a_seam_is_judged_whole_on_its_far_peak(tmp_path):
    # RGB 8-bit (relative radiometry): a moderate change region across the seam of 128-px
    # windows (columns 40–200, ~2× the scene threshold) whose only strong pixels (~8×:
    # the peak a region needs with relative_seed_factor) lie at columns 50–60, far outside
    # the right window's halo. Cut by the seam, its right part used to be dropped.
    import numpy as np

    from tests.conftest import write_raster

    rng = np.random.default_rng(3)
    before = 100 + 2 * rng.standard_normal((3, 256, 256))
    after = 100 + 2 * rng.standard_normal((3, 256, 256))
    after[:, 60:120, 40:200] += 40
    after[:, 80:95, 50:60] += 120
    names = ("red", "green", "blue")
    before_tif = write_raster(tmp_path / "before.tif", before, descriptions=names, dtype="uint8", date="2026-10-01")
    after_tif = write_raster(tmp_path / "after.tif", after, descriptions=names, dtype="uint8", date="2026-11-02")
    (tmp_path / "vectors").mkdir()
    base = make_scene(tmp_path / "vectors", size=256)

    def patches(window: str, factor: float):
        return detect_patches(tmp_path, before_tif, after_tif, base, window=window, change=f"relative_seed_factor = {factor}")

    one_region_whole_across_seams(patches, 4.0)
    assert len(patches("1024", 10.0)) == len(patches("128", 10.0)) == 0  # no pixel reaches 10×: no patch


def test_raw_ten_bit_dn_is_read_relatively_with_a_warning_and_scale_restores_the_rules(tmp_path):
    import numpy as np
    import rasterio

    (tmp_path / "refl").mkdir()
    reflectance = make_scene(tmp_path / "refl")
    (tmp_path / "dn").mkdir()
    dn = make_scene(tmp_path / "dn")
    for name in ("before.tif", "after.tif"):  # GF-2-like raw 10-bit DN: reflectance × 2500 + 20
        with rasterio.open(reflectance.folder / name) as src, rasterio.open(dn.folder / name, "r+") as dst:
            dst.write(np.round(src.read() / 10000 * 2500 + 20).astype("uint16"))

    result, output = run(dn)
    assert result.exit_code == 0, result.output
    assert "raw 10-bit DN" in result.output and "[raster] scale" in result.output
    info = pyogrio.read_dataframe(output, layer="run_info")
    assert '"radiometry": "relative"' in info.normalisation[0]
    assert len(gpd.read_file(output, layer="disturbance_patches")) == 1  # the cleared square is still found

    config = tmp_path / "dn.toml"
    config.write_text("[raster]\nscale = 0.0004\noffset = -0.008\n", encoding="utf-8")
    scaled, scaled_out = run(dn, "--config", config, output=tmp_path / "scaled.gpkg")
    plain, plain_out = run(reflectance)
    assert scaled.exit_code == plain.exit_code == 0, scaled.output + plain.output
    assert "raw 10-bit DN" not in scaled.output
    a = gpd.read_file(scaled_out, layer="disturbance_patches")
    b = gpd.read_file(plain_out, layer="disturbance_patches")
    assert len(a) == len(b) == 1 and a.QAREA[0] == pytest.approx(b.QAREA[0], rel=0.02)
    assert a.QTYPE[0] == b.QTYPE[0]


def test_a_negative_raster_scale_is_refused(scene, tmp_path):
    config = tmp_path / "bad.toml"
    config.write_text("[raster]\nscale = -0.0001\n", encoding="utf-8")
    result, output = run(scene, "--config", config)
    assert_bad_input(result, output, "bad.toml", "[raster] scale")


def test_fine_texture_describes_the_same_ground_at_another_pixel_size(tmp_path):
    # A lumpy clearing (2 × 2 px = 4 m lumps at 2 m) read at 2 m and resampled to 0.8 m:
    # its texture_fine, taken over ~6 m of ground, stays about the same.
    import numpy as np
    import rasterio
    from rasterio.enums import Resampling
    from rasterio.transform import Affine
    from rasterio.warp import reproject

    from swc_rs.windows import texture_px

    assert [texture_px(6.0, m) for m in (0.5, 0.8, 1.0, 2.0, 4.0, 10.0)] == [11, 7, 5, 3, 3, 3]
    (tmp_path / "m2").mkdir()
    scene = make_scene(tmp_path / "m2", squares=((40, 40, 40),))
    with rasterio.open(scene.after, "r+") as ds:
        data = ds.read().astype(float)
        lumps = np.kron(np.random.default_rng(0).uniform(0.75, 1.25, (20, 20)), np.ones((2, 2)))
        data[:, 40:80, 40:80] *= lumps
        ds.write(data.astype("uint16"))
    (tmp_path / "m08").mkdir()
    fine = make_scene(tmp_path / "m08", squares=())
    for name in ("before.tif", "after.tif"):
        with rasterio.open(scene.folder / name) as src:
            target = np.zeros((src.count, src.height * 5 // 2, src.width * 5 // 2), "uint16")
            transform = src.transform * Affine.scale(0.4)
            reproject(src.read(), target, src_transform=src.transform, src_crs=src.crs, dst_transform=transform,
                      dst_crs=src.crs, resampling=Resampling.cubic)
            profile = {**src.profile, "width": target.shape[2], "height": target.shape[1], "transform": transform}
            tags = src.tags()
        with rasterio.open(fine.folder / name, "w", **profile) as dst:
            dst.write(target)
            dst.descriptions = ("blue", "green", "red", "nir")
            dst.update_tags(**tags)
    textures = []
    for s in (scene, fine):
        result, output = run(s)
        assert result.exit_code == 0, result.output
        features = pyogrio.read_dataframe(output, layer="patch_features")
        assert len(features) == 1
        textures.append(float(features.texture_fine[0]))
    assert textures[1] == pytest.approx(textures[0], rel=0.35), textures
