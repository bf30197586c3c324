"""The PostgreSQL/PostGIS history store: the same results as the GeoPackage store, an
append-only audit trail enforced by the database, one transaction per import, and
concurrent importers that lose and duplicate nothing. A real server is started (see
``tests/pg_server.py``); where none can start the tests skip with the reason."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import geopandas as gpd
import pandas as pd
import pyogrio
import pytest
from click.testing import CliRunner

from swc_rs.cli.main import cli
from swc_rs.verification import RECORD_KEY, developer_watch_list, load_store
from tests import pg_server
from tests.conftest import make_scene

SWC_RS = Path(sys.executable).parent / "swc-rs"
A, B, C = (100, 100, 30), (20, 110, 25), (40, 70, 30)  # B, A outside the project; C overruns it


@pytest.fixture(scope="module")
def pg_url():
    try:
        with pg_server.server() as url:
            yield url
    except pg_server.Unavailable as why:
        pytest.skip(str(why))


@pytest.fixture
def store_url(pg_url):
    pg_server.reset(pg_url)
    yield pg_url
    pg_server.reset(pg_url)


def detect(scene, output, store, *extra):
    args = ["detect", str(scene.before), str(scene.after), "--zones", str(scene.zones), "--projects",
            str(scene.projects), "-o", str(output), "--rules", "--workers", "1", "-q", "--history", str(store), *extra]
    return CliRunner().invoke(cli, args)


def field_from(output: Path, path: Path, checker: str = "张三") -> Path:
    field = gpd.read_file(output, layer="suspected_violations")
    for name in ("ZPBH", "X_CLOSE"):
        field[name] = ""
    field["RST"], field["XCFHR"], field["DATE"], field["QDCS"] = "已复核", checker, "2026-11-20", "施工"
    field["BYD"] = [b.removeprefix("疑似") for b in field["BYD"]]
    field.loc[field.index[:1], "QTYPE"] = "非生产建设项目"  # the first one is a false alarm
    field.loc[field.index[:1], "X_REASON"] = "耕地翻耕"
    field.loc[field.index[:1], "BYD"] = "合规"
    field.to_file(path, layer="suspected_violations", engine="pyogrio")
    return path


def importing(field, store):
    return CliRunner().invoke(cli, ["verify", "import", str(field), "--store", str(store)])


def round_trip(folder: Path, store) -> dict:
    """detect --history, verify import (twice), detect --history again: what came out."""
    folder.mkdir(exist_ok=True)
    scene = make_scene(folder, squares=(A, B, C))
    first = folder / "first.gpkg"
    assert detect(scene, first, store).exit_code == 0
    field = field_from(first, folder / "field.gpkg")
    once = importing(field, store)
    assert once.exit_code == 0, once.output
    twice = importing(field, store)
    assert twice.exit_code == 0 and "0 new verification records" in twice.output, twice.output
    second = folder / "second.gpkg"
    result = detect(scene, second, store, "--period", "202612")
    assert result.exit_code == 0, result.output
    snapshot = load_store(store)
    patches = gpd.read_file(second, layer="disturbance_patches").sort_values("QDNM")
    return {
        "records": snapshot.verifications.drop(columns=["IMPORTED_AT", "SOURCE", "SOURCE_SHA256", "RECORD_ID"]).sort_values(
            [k for k in RECORD_KEY if k != "SOURCE_SHA256"]).reset_index(drop=True),
        "registered": sorted(snapshot.patches["QDNM"]),
        "second": patches[["QDNM", "QDTYPE", "BYD", "RST", "X_CARRY"]].reset_index(drop=True),
        "developers": developer_watch_list(snapshot)[["DPOZ", "N_CONFIRMED", "FLAG"]].reset_index(drop=True),
        "log": list(snapshot.log["EVENT"]),
        "info": pyogrio.read_dataframe(second, layer="run_info"),
    }


def test_same_round_trip_as_the_geopackage_store(store_url, tmp_path):
    gpkg = round_trip(tmp_path / "g", tmp_path / "g" / "history.gpkg")
    database = round_trip(tmp_path / "p", store_url)
    pd.testing.assert_frame_equal(gpkg["records"], database["records"])
    assert gpkg["registered"] == database["registered"] and len(database["registered"]) > 0
    pd.testing.assert_frame_equal(gpkg["second"], database["second"])
    pd.testing.assert_frame_equal(gpkg["developers"], database["developers"])
    assert gpkg["log"] == database["log"] == ["register", "import", "register"]
    assert len(database["records"]) > 0


def test_audit_trail_is_append_only_in_the_database(store_url, tmp_path):
    import psycopg

    round_trip(tmp_path, store_url)
    for statement in ('UPDATE verifications SET "NEW_VALUE" = \'x\'', "DELETE FROM verifications",
                      "TRUNCATE verifications", "DELETE FROM store_log", 'UPDATE patches SET "BYD" = \'合规\''):
        with psycopg.connect(store_url) as conn, pytest.raises(psycopg.Error, match="append-only"):
            conn.execute(statement)
    assert len(load_store(store_url).verifications) > 0


def test_a_refused_import_records_nothing(store_url, tmp_path):
    scene = make_scene(tmp_path, squares=(A, B, C))
    out = tmp_path / "out.gpkg"
    assert detect(scene, out, store_url).exit_code == 0
    field = field_from(out, tmp_path / "field.gpkg")
    bad = gpd.read_file(field, layer="suspected_violations")
    bad.loc[bad.index[-1], "BYD"] = "随便"
    bad.to_file(tmp_path / "bad.gpkg", layer="suspected_violations", engine="pyogrio")
    result = importing(tmp_path / "bad.gpkg", store_url)
    assert result.exit_code == 2 and "随便" in result.output
    assert len(load_store(store_url).verifications) == 0
    assert list(load_store(store_url).log["EVENT"]) == ["register"]


def test_a_password_is_never_recorded_or_printed(store_url, tmp_path):
    scene = make_scene(tmp_path, squares=(A,))
    with_password = store_url.replace("postgresql://swc@", "postgresql://swc:s3cret@")  # trust auth ignores it
    result = detect(scene, tmp_path / "out.gpkg", with_password)
    assert result.exit_code == 0, result.output
    info = pyogrio.read_dataframe(tmp_path / "out.gpkg", layer="run_info")
    assert "s3cret" not in json.dumps(info.astype(str).to_dict()) and "***" in info["history"][0]


def test_an_unreachable_database_is_one_message(tmp_path):
    scene = make_scene(tmp_path, squares=(A,))
    result = detect(scene, tmp_path / "out.gpkg", f"postgresql://nobody@/none?host={tmp_path}")
    assert result.exit_code == 2, result.output
    assert "cannot connect to the history database" in result.output and "Traceback" not in result.output


def concurrent_imports(store, folder: Path, registered: Path) -> tuple[int, int, int, int]:
    """4 processes, each importing two of 4 overlapping field files (each file twice, by
    two processes); returns (imports, records, lost, duplicated) against a serial run
    into a fresh GeoPackage store."""
    whole = gpd.read_file(registered, layer="suspected_violations")
    files = []
    for k in range(4):
        part = whole.iloc[[i % len(whole) for i in range(k, k + 3)]].copy()  # 3 of the rows, 2 shared with the next
        for name in ("ZPBH", "X_CLOSE"):
            part[name] = ""
        part["RST"], part["XCFHR"], part["DATE"], part["QDCS"] = "已复核", f"检查员{k}", "2026-11-20", "施工"
        part["BYD"] = [b.removeprefix("疑似") for b in part["BYD"]]
        path = folder / f"field_{k}.gpkg"
        part.to_file(path, layer="suspected_violations", engine="pyogrio")
        files.append(path)
    procs = [subprocess.Popen(["sh", "-c", f"'{SWC_RS}' verify import '{files[k]}' --store '{store}' -q && "
                                           f"'{SWC_RS}' verify import '{files[(k + 1) % 4]}' --store '{store}' -q"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE) for k in range(4)]
    for proc in procs:
        assert proc.wait(timeout=300) == 0, proc.stderr.read().decode()
    serial = folder / "serial.gpkg"
    shutil.copyfile(folder / "serial_base.gpkg", serial)
    for path in files:
        assert importing(path, serial).exit_code == 0
    got, want = load_store(store).verifications, load_store(serial).verifications
    keys = got[list(RECORD_KEY)].apply(tuple, axis=1)
    expected = set(want[list(RECORD_KEY)].apply(tuple, axis=1))
    assert got["RECORD_ID"].is_unique
    return 8, len(got), len(expected - set(keys)), int(keys.duplicated().sum())


@pytest.mark.parametrize("kind", ["geopackage", "postgresql"])
def test_four_concurrent_importers_lose_and_duplicate_nothing(store_url, tmp_path, kind):
    scene = make_scene(tmp_path, squares=(A, B, C, (120, 20, 25), (20, 20, 25)))
    gpkg_store = tmp_path / "history.gpkg"
    store = gpkg_store if kind == "geopackage" else store_url
    registered = tmp_path / "registered.gpkg"
    assert detect(scene, registered, store).exit_code == 0
    base = tmp_path / "serial_base.gpkg"
    assert detect(scene, tmp_path / "again.gpkg", base).exit_code == 0  # the same run registered in a fresh store
    imports, records, lost, duplicated = concurrent_imports(store, tmp_path, registered)
    print(f"{kind}: {imports} imports, {records} records, lost {lost}, duplicated {duplicated}")
    assert records > 0 and lost == 0 and duplicated == 0


def test_sigkill_of_verify_import_during_its_transaction_leaves_nothing(store_url, tmp_path):
    """The importer is killed while it holds the store's transaction (seen in pg_locks):
    the server rolls it back, and the next import records everything once."""
    import os
    import signal
    import time

    import psycopg

    scene = make_scene(tmp_path, squares=(A, B, C))
    out = tmp_path / "out.gpkg"
    assert detect(scene, out, store_url).exit_code == 0
    field = field_from(out, tmp_path / "field.gpkg")
    before = len(load_store(store_url).verifications)
    argv = [str(SWC_RS), "verify", "import", str(field), "--store", store_url]
    killed = False
    with psycopg.connect(store_url, autocommit=True) as watch:
        for _ in range(5):
            proc = subprocess.Popen(argv, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
            while proc.poll() is None:
                held = watch.execute("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted").fetchone()[0]
                if held:
                    os.killpg(proc.pid, signal.SIGKILL)
                    proc.wait()
                    killed = True
                    break
                time.sleep(0.001)
            if killed:
                break
            assert proc.returncode == 0, proc.stderr.read().decode()
            pg_server.reset(store_url)  # it finished first: start again from the registered run
            assert detect(scene, tmp_path / f"again{_}.gpkg", store_url).exit_code == 0
        assert killed, "the import always finished first"
        deadline = time.monotonic() + 30
        while watch.execute("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory'").fetchone()[0]:
            assert time.monotonic() < deadline, "the killed transaction still holds its lock"
            time.sleep(0.05)
    assert len(load_store(store_url).verifications) == before == 0
    again = importing(field, store_url)
    assert again.exit_code == 0, again.output
    records = len(load_store(store_url).verifications)
    assert records > 0
    assert importing(field, store_url).exit_code == 0 and len(load_store(store_url).verifications) == records
