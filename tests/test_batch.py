"""`swc-rs batch`: tiles in, one consistent month out; seams, history, resume, Dask, faults.

One small "city" is drawn in the test: a forest baseline (448×448 px at 2 m, UTM 48N)
and three monthly AFTER images with bare-soil rectangles, cut into four 256-px tiles
that overlap by 64 px. Patch S crosses both cuts (it has a piece in every tile).

| patch | 202611 | 202612 | 202701 |
|---|---|---|---|
| A | 30×30 | 40×40 (grew) | 40×40 |
| B | 40×40 | 28×28 (shrank) | gone (完工) |
| C | 30×30 | 30×30 | 30×30 |
| D | 30×30 | gone (完工) | — |
| E | — | 30×30 (new) | 30×30 |
| S | 40×140 across the cuts | same | same |
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pyogrio
import pytest
import shapely
from click.testing import CliRunner
from rasterio.transform import from_origin

from swc_rs import codes
from swc_rs.batch import (
    FINISHED_LAYER,
    CatalogConfig,
    load_batch,
    merge_tile_patches,
    previous_period,
    read_catalog,
    run_batch,
)
from swc_rs.cli.batch import batch as batch_command
from swc_rs.errors import ConfigError, OutputExistsError
from tests.conftest import SOIL, X0, Y0, forest, write_raster

SIZE = 448
TILE = 256
STARTS = (0, SIZE - TILE)  # 0 and 192: 64 px of overlap
PIXEL = 2.0
PERIODS = ("202611", "202612", "202701")
#: (row, col, height, width) of each patch per month
LAYOUT = {
    "202611": {"A": (30, 30, 30, 30), "B": (30, 330, 40, 40), "C": (330, 40, 30, 30), "D": (340, 340, 30, 30),
               "S": (200, 150, 40, 140)},
    "202612": {"A": (30, 30, 40, 40), "B": (30, 330, 28, 28), "C": (330, 40, 30, 30), "E": (100, 100, 30, 30),
               "S": (200, 150, 40, 140)},
    "202701": {"A": (30, 30, 40, 40), "C": (330, 40, 30, 30), "E": (100, 100, 30, 30), "S": (200, 150, 40, 140)},
}
DATES = {"202611": "2026-11-20", "202612": "2026-12-18", "202701": "2027-01-22"}


def _box(row, col, height, width):
    """Map polygon (EPSG:32648) of a pixel rectangle."""
    return shapely.box(X0 + col * PIXEL, Y0 - (row + height) * PIXEL, X0 + (col + width) * PIXEL, Y0 - row * PIXEL)


def _tile_ids():
    return [f"r{i}c{j}" for i in range(2) for j in range(2)]


def _write_tiles(folder: Path, name: str, image: np.ndarray, date: str) -> None:
    for i, r0 in enumerate(STARTS):
        for j, c0 in enumerate(STARTS):
            tile = folder / "tiles" / f"r{i}c{j}"
            tile.mkdir(parents=True, exist_ok=True)
            write_raster(tile / name, image[:, r0:r0 + TILE, c0:c0 + TILE],
                         transform=from_origin(X0 + c0 * PIXEL, Y0 - r0 * PIXEL, PIXEL, PIXEL), date=date)


def make_city(folder: Path) -> Path:
    """Write the drawn city's tiles (three months), zones and projects into ``folder``."""
    baseline = forest(SIZE, SIZE, 1)
    _write_tiles(folder, "before.tif", baseline, "2026-01-05")
    for k, period in enumerate(PERIODS):
        after = forest(SIZE, SIZE, 10 + k)
        for row, col, h, w in LAYOUT[period].values():
            after[:, row:row + h, col:col + w] = SOIL[:, None, None]
        _write_tiles(folder, f"after_{period}.tif", after, DATES[period])
    extent = shapely.box(X0, Y0 - SIZE * PIXEL, X0 + SIZE * PIXEL, Y0)
    gpd.GeoDataFrame({"ZONE_CODE": ["Z3"], "ZONE_NAME": ["雅安东部丘陵平坝人居环境维护保土减灾区"]},
                     geometry=[extent], crs="EPSG:32648").to_crs("EPSG:4543").to_file(folder / "zones.gpkg")
    # One approved range: all of A (合规) and the western half of S (S is 疑似超出).
    ranges = [_box(20, 20, 60, 60).union(_box(195, 140, 50, 80))]
    gpd.GeoDataFrame({"PRNM": ["测试公路"], "DPOZ": ["测试单位"], "DAREA": [5.0]}, geometry=ranges,
                     crs="EPSG:32648").to_crs("EPSG:4490").to_file(folder / "projects.gpkg")
    return folder


@pytest.fixture(scope="module")
def city(tmp_path_factory) -> Path:
    return make_city(tmp_path_factory.mktemp("city"))


def write_config(city: Path, folder: Path, *, catalog: str | None = None, extra: str = "") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    catalog = catalog or (f'before = "{city}/tiles/{{tile}}/before.tif"\n'
                          f'after = "{city}/tiles/{{tile}}/after_{{period}}.tif"')
    path = folder / "monthly.toml"
    path.write_text(f"""
[batch]
output = "out"
zones = "{city}/zones.gpkg"
projects = "{city}/projects.gpkg"
model = "rules"
workers = 1
{extra}

[batch.catalog]
{catalog}

[registration]      # the drawn tiles are co-registered exactly; nothing to estimate
enabled = false
""", encoding="utf-8")
    return path


def month(folder: Path, period: str, layer: str = "disturbance_patches") -> gpd.GeoDataFrame:
    return gpd.read_file(folder / "out" / period / f"swc_{period}.gpkg", layer=layer)


def patch_at(frame: gpd.GeoDataFrame, name: str, period: str):
    """The row of the patch whose rectangle ``name`` holds the representative point."""
    row, col, h, w = LAYOUT[period][name]
    target = gpd.GeoSeries([_box(row, col, h, w)], crs="EPSG:32648").to_crs(frame.crs).iloc[0]
    hits = frame[frame.geometry.intersects(target)]
    assert len(hits) == 1, f"{name}: {len(hits)} patches"
    return hits.iloc[0]


def same_month(a: gpd.GeoDataFrame, b: gpd.GeoDataFrame) -> None:
    cols = ["QDNM", "QDTYPE", "QTYPE", "QAREA", "EAREA", "BYD", "PRNM", "X_COLOR", "X_ZONE"]
    pd.testing.assert_frame_equal(pd.DataFrame(a[cols]), pd.DataFrame(b[cols]))
    assert all(shapely.equals_exact(a.geometry.values, b.geometry.values, tolerance=1e-9))


@pytest.fixture(scope="module")
def month1(city, tmp_path_factory) -> Path:
    """202611 run in this process (one worker): the reference of the equivalence tests."""
    folder = tmp_path_factory.mktemp("history")
    summary = run_batch(load_batch(write_config(city, folder), period="202611"))
    assert summary.exit_code == 0
    assert summary.count("done") == 4
    return folder


# -- configuration and catalogs ----------------------------------------------------------------
def test_catalog_pattern_csv_and_stac_agree(city, tmp_path):
    pattern = read_catalog(CatalogConfig(before="tiles/{tile}/before.tif", after="tiles/{tile}/after_{period}.tif"),
                           city, "202612")
    assert [t.tile_id for t in pattern] == _tile_ids()
    assert pattern[0].after == city / "tiles" / "r0c0" / "after_202612.tif"
    rows = ["tile_id,before,after"] + [f"{t.tile_id},{t.before},{t.after}" for t in pattern]
    (tmp_path / "tiles.csv").write_text("\n".join(rows), encoding="utf-8")
    assert read_catalog(CatalogConfig(csv="tiles.csv"), tmp_path, "202612") == pattern
    items = []
    for t in pattern:
        for when, href in (("2026-01-05T03:00:00Z", t.before), ("2026-12-18T03:00:00Z", t.after)):
            items.append({"type": "Feature", "stac_version": "1.0.0", "id": f"{t.tile_id}-{when[:10]}",
                          "properties": {"datetime": when, "grid:code": t.tile_id},
                          "assets": {"image": {"href": str(href), "roles": ["data"]}}})
    (tmp_path / "items.json").write_text(json.dumps({"type": "FeatureCollection", "features": items[::-1]}))
    assert read_catalog(CatalogConfig(stac="items.json"), tmp_path, "202612") == pattern


def test_config_errors_name_the_key(city, tmp_path):
    path = write_config(city, tmp_path, extra="wokers = 2")
    with pytest.raises(ConfigError, match="wokers"):
        load_batch(path, period="202611")
    path = write_config(city, tmp_path / "b")
    with pytest.raises(ConfigError, match="period"):
        load_batch(path)
    with pytest.raises(ConfigError, match="YYYYMM"):
        load_batch(path, period="2026-11")
    assert previous_period("202701") == "202612"


def test_merge_dissolves_overlaps_and_edges_counts_area_once():
    a = shapely.box(0, 0, 10, 10)
    b = shapely.box(8, 0, 20, 10)  # overlaps a (another tile)
    c = shapely.box(20, 0, 30, 10)  # shares an edge with b
    d = shapely.box(40, 0, 50, 10)  # alone
    e = shapely.box(0, 10.0000000001, 5, 20)  # touches a up to round-off, same tile as a: not joined
    pieces = gpd.GeoDataFrame({"_tile": ["t1", "t2", "t3", "t3", "t1"], "QTYPE": ["x"] * 5}, geometry=[a, b, c, d, e], crs="EPSG:4543")
    merged = merge_tile_patches(pieces, tolerance_m=0.5)
    assert len(merged) == 3
    assert merged.geometry.area.tolist() == pytest.approx([300, 100, 50])
    assert merged.geometry.iloc[0].geom_type == "Polygon"
    assert merged["_pieces"].tolist() == [3, 1, 1]


# -- the month --------------------------------------------------------------------------------
def test_patch_across_tile_edges_is_one_patch(month1):
    patches = month(month1, "202611")
    assert len(patches) == 5  # A, B, C, D and S
    assert patches["QDNM"].is_unique
    s = patch_at(patches, "S", "202611")
    true_area = 40 * 140 * PIXEL**2 / 10_000  # 2.24 hm²; the pieces in the 4 tiles sum to far more
    assert s.QAREA == pytest.approx(true_area, rel=0.08)
    assert shapely.get_num_geometries(s.geometry) == 1
    # Judged again on the merged patch: half of it lies outside the range.
    assert s.BYD == codes.OVERRUN
    assert 0.3 * s.QAREA < s.EAREA < 0.8 * s.QAREA
    assert patch_at(patches, "A", "202611").BYD == codes.COMPLIANT
    assert set(patches["QDTYPE"]) == {codes.NEW}
    summary = json.loads((month1 / "out" / "202611" / "swc_202611.summary.json").read_text(encoding="utf-8"))
    assert summary["tiles"] == {"total": 4, "done": 4, "skipped": 0, "failed": 0}
    assert summary["patches"]["total"] == 5 and summary["patches"]["by_BYD"][codes.OVERRUN] >= 1
    assert {"disturbance_patches", "suspected_violations", "projects", "zones", "run_info", FINISHED_LAYER} <= {
        n for n, _ in pyogrio.list_layers(month1 / "out" / "202611" / "swc_202611.gpkg")}


def test_month_has_evidence_chips_for_every_suspected_patch(month1):
    from swc_rs.export.chips import read_chips

    output = month1 / "out" / "202611" / "swc_202611.gpkg"
    suspected = gpd.read_file(output, layer="suspected_violations")
    assert len(suspected) >= 1
    chips = read_chips(output)
    assert sorted((c.QDNM, c.DATE_KIND) for c in chips) == sorted(
        (q, k) for q in suspected.QDNM for k in ("before", "after"))
    assert all(c.mime == "image/jpeg" and c.WIDTH > 0 for c in chips)


def test_month_project_names_the_month_file(month1):
    import sqlite3

    from swc_rs.export.project import read_qgs

    with sqlite3.connect(month1 / "out" / "202611" / "swc_202611.gpkg") as con:
        (content,) = con.execute("SELECT content FROM qgis_projects").fetchone()
    qgs = read_qgs(content)
    assert "./swc_202611.gpkg|layername=suspected_violations" in qgs
    assert ".assembling" not in qgs and ".tmp" not in qgs


def test_month_styles_every_map_layer_finished_patches_too(month1):
    import sqlite3

    from swc_rs.export.project import read_qgs

    with sqlite3.connect(month1 / "out" / "202611" / "swc_202611.gpkg") as con:
        styled = {r[0] for r in con.execute("SELECT f_table_name FROM layer_styles WHERE useAsDefault")}
        (content,) = con.execute("SELECT content FROM qgis_projects").fetchone()
    assert styled == {"suspected_violations", "disturbance_patches", FINISHED_LAYER, "projects", "zones"}
    assert f"./swc_202611.gpkg|layername={FINISHED_LAYER}" in read_qgs(content)


def test_three_months_keep_ids_and_type_changes(month1):
    config = month1 / "monthly.toml"
    for period in PERIODS[1:]:
        assert run_batch(load_batch(config, period=period)).exit_code == 0
    m1, m2, m3 = (month(month1, p) for p in PERIODS)
    ids = {name: patch_at(m1, name, "202611").QDNM for name in "ABCDS"}
    assert all(q.startswith("511800-202611-") for q in ids.values())
    expected = {"A": codes.QDTYPE[1], "B": codes.QDTYPE[2], "C": codes.QDTYPE[3], "S": codes.QDTYPE[3]}
    for name, qdtype in expected.items():
        row = patch_at(m2, name, "202612")
        assert (row.QDNM, row.QDTYPE) == (ids[name], qdtype), name
    e = patch_at(m2, "E", "202612")
    assert e.QDTYPE == codes.NEW and e.QDNM.startswith("511800-202612-")
    finished = month(month1, "202612", FINISHED_LAYER)
    assert finished["QDNM"].tolist() == [ids["D"]]
    assert finished["QDTYPE"].tolist() == [codes.QDTYPE[4]]
    # Third month: ids still the first month's; B finished; D is not reported twice.
    assert patch_at(m3, "C", "202701").QDNM == ids["C"]
    assert patch_at(m3, "E", "202701").QDNM == e.QDNM
    assert patch_at(m3, "A", "202701").QDTYPE == codes.QDTYPE[3]
    assert month(month1, "202701", FINISHED_LAYER)["QDNM"].tolist() == [ids["B"]]
    # Months sit side by side and are never overwritten.
    with pytest.raises(OutputExistsError):
        run_batch(load_batch(config, period="202612"))


def test_dask_local_cluster_equals_local(city, month1, tmp_path):
    from distributed import LocalCluster

    with LocalCluster(n_workers=1, threads_per_worker=1, processes=False, dashboard_address=None,
                      local_directory=str(tmp_path / "dask")) as cluster:
        plan = load_batch(write_config(city, tmp_path), period="202611")
        summary = run_batch(plan, scheduler=cluster.scheduler_address)
    assert summary.exit_code == 0 and summary.executor.startswith("dask")
    same_month(month(tmp_path, "202611"), month(month1, "202611"))


def test_killed_run_resumes_to_the_same_month(city, month1, tmp_path):
    config = write_config(city, tmp_path)
    tiles = tmp_path / "out" / "202611" / "tiles"
    command = [sys.executable, "-m", "swc_rs.cli.batch", str(config), "--period", "202611", "--workers", "2"]
    proc = subprocess.Popen(command, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    try:
        while not list(tiles.glob("r*.gpkg")):
            assert proc.poll() is None, proc.stderr.read().decode()
            assert time.monotonic() < deadline, "no tile committed in 120 s"
            time.sleep(0.02)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)  # the run and its worker processes, mid-run
        proc.wait()
    committed = sorted(p.stem for p in tiles.glob("r*.gpkg"))
    assert 1 <= len(committed) < 4
    assert not (tmp_path / "out" / "202611" / "swc_202611.gpkg").exists()
    # Without --resume the committed tiles are protected.
    refused = CliRunner().invoke(batch_command, [str(config), "--period", "202611"])
    assert refused.exit_code == 2 and "--resume" in refused.output
    resumed = subprocess.run(command + ["--resume"], capture_output=True, text=True, timeout=180)
    assert resumed.returncode == 0, resumed.stderr
    summary = json.loads((tmp_path / "out" / "202611" / "swc_202611.summary.json").read_text(encoding="utf-8"))
    assert summary["tiles"]["skipped"] == len(committed)
    assert summary["tiles"]["done"] == 4 - len(committed)
    same_month(month(tmp_path, "202611"), month(month1, "202611"))


@pytest.mark.parametrize("workers", [1, 2])
def test_failing_tiles_do_not_stop_the_month(city, tmp_path, workers):
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "corrupt.tif").write_bytes(b"II*\x00" + b"\x00" * 100)  # a truncated TIFF
    far = forest(64, 64, 3)
    write_raster(bad / "far.tif", far, transform=from_origin(X0 + 50_000, Y0, PIXEL, PIXEL), date="2026-11-20")
    good = city / "tiles" / "r0c0"
    (tmp_path / "tiles.csv").write_text(
        "tile_id,before,after\n"
        f"r0c0,{good}/before.tif,{good}/after_202611.tif\n"
        f"corrupt,{good}/before.tif,bad/corrupt.tif\n"
        f"no_overlap,{good}/before.tif,bad/far.tif\n", encoding="utf-8")
    config = write_config(city, tmp_path, catalog='csv = "tiles.csv"')
    result = CliRunner().invoke(batch_command, [str(config), "--period", "202611", "--workers", str(workers)])
    assert result.exit_code == 4, result.output
    assert "failed corrupt" in result.output and "failed no_overlap" in result.output
    summary = json.loads((tmp_path / "out" / "202611" / "swc_202611.summary.json").read_text(encoding="utf-8"))
    assert summary["tiles"] == {"total": 3, "done": 1, "skipped": 0, "failed": 2}
    assert {f["tile_id"] for f in summary["failed_tiles"]} == {"corrupt", "no_overlap"}
    assert all(f["error"] for f in summary["failed_tiles"])
    assert summary["exit_code"] == 4
    # The month is the good tile's detect result: one tile, nothing to merge.
    patches = month(tmp_path, "202611")
    alone = gpd.read_file(tmp_path / "out" / "202611" / "tiles" / "r0c0.gpkg", layer="disturbance_patches")
    assert len(patches) == 2  # A and the piece of S in r0c0
    same_month(patches, alone)


def test_tiles_run_with_one_native_thread():
    """--workers N means N cores: OpenMP/BLAS pools are limited to one thread per tile."""
    from types import SimpleNamespace

    from threadpoolctl import threadpool_info

    from swc_rs.batch import _one_thread

    task = SimpleNamespace(request=SimpleNamespace(model=Path("any.skops")))
    with _one_thread(task):
        pools = threadpool_info()
        assert pools and all(pool["num_threads"] == 1 for pool in pools)
        assert any(pool["user_api"] == "openmp" for pool in pools)  # scikit-learn's runtime is covered


def _tile_dies_in_a_spawned_worker(task):
    """Stands in for run_tile: a spawned worker process dies hard (as when the kernel's
    OOM killer takes it); this process does the tile."""
    from swc_rs.batch import TileOutcome

    if os.getpid() != int(os.environ["SWC_RS_TEST_PARENT"]):
        os._exit(9)
    time.sleep(0.3)
    return TileOutcome(task.tile.tile_id, "done")


def test_a_dead_worker_fails_its_tile_and_this_process_does_the_rest(monkeypatch):
    from swc_rs import batch as batch_module
    from swc_rs.batch import Tile, TileTask, _run_local

    monkeypatch.setenv("SWC_RS_TEST_PARENT", str(os.getpid()))
    monkeypatch.setattr(batch_module, "run_tile", _tile_dies_in_a_spawned_worker)
    tasks = [TileTask(Tile(f"t{i}", Path("b.tif"), Path("a.tif")), request=None, output=Path(f"t{i}.gpkg"))
             for i in range(12)]
    outcomes = list(_run_local(tasks, workers=2))
    assert sorted(o.tile_id for o in outcomes) == sorted(t.tile.tile_id for t in tasks)  # each tile once
    failed = [o for o in outcomes if o.status == "failed"]
    assert len(failed) == 1 and failed[0].error  # the tile the dead worker held
    assert sum(o.status == "done" for o in outcomes) == 11


def test_planned_workers_reads_the_option_then_the_configuration(tmp_path):
    from swc_rs.workers import available_cores, planned_workers

    config = tmp_path / "monthly.toml"
    config.write_text("[batch]\nworkers = 3\n", encoding="utf-8")
    assert planned_workers(config, 2) == 2  # --workers wins
    assert planned_workers(config, None) == 3
    assert planned_workers(config, 0) == available_cores()
    config.write_text("[batch]\noutput = 'out'\n", encoding="utf-8")
    assert planned_workers(config, None) == available_cores()  # 0 / absent: every core
    config.write_text("[batch\n", encoding="utf-8")
    assert planned_workers(config, None) == 1  # unreadable here: load_batch reports it
    assert planned_workers(tmp_path / "missing.toml", None) == 1


def test_one_native_thread_limits_blas_and_openmp_and_restores_them():
    import sklearn.ensemble  # noqa: F401  (OpenMP loaded, so "before" lists it)
    from threadpoolctl import threadpool_info

    from swc_rs.workers import one_native_thread

    before = {i["filepath"]: i["num_threads"] for i in threadpool_info()}
    with one_native_thread(openmp=True):
        inside = threadpool_info()
    assert {i["user_api"] for i in inside} >= {"blas", "openmp"}
    assert all(i["num_threads"] == 1 for i in inside)
    assert {i["filepath"]: i["num_threads"] for i in threadpool_info()} == before


def test_reuse_freed_memory_keeps_a_users_setting(monkeypatch):
    import sys

    from swc_rs.workers import reuse_freed_memory

    monkeypatch.setenv("MALLOC_MMAP_THRESHOLD_", "1048576")
    assert reuse_freed_memory() is False  # the user's allocator setting wins
    monkeypatch.delenv("MALLOC_MMAP_THRESHOLD_")
    assert reuse_freed_memory() is sys.platform.startswith("linux")  # glibc here (Debian CI)
