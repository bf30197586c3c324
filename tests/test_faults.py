"""Faults: a full disk while writing, SIGKILL while writing. Nothing partial, nothing lost.

After each fault: no partial or corrupt output (the target is the previous file, byte for
byte, or absent), the previous output and the history store are intact, and the next
run succeeds (and removes the temporary file the killed run could not).

The full disk is a small tmpfs where this process may mount one (root, outside a
restricted container), else the file-size limit ``RLIMIT_FSIZE`` of the command's process
(writes past it fail with EFBIG, as on a full disk).
"""

from __future__ import annotations

import contextlib
import os
import resource
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import geopandas as gpd
import pytest

from swc_rs.verification import load_store
from tests.conftest import make_scene

SQUARES = tuple((r, c, 24) for r in range(20, 480, 60) for c in range(20, 480, 60))  # 64 suspected patches


SWC_RS = Path(sys.executable).parent / "swc-rs"  # the console script of this environment


def swc(*args) -> list[str]:
    return [str(SWC_RS), *map(str, args)]


def detect_argv(scene, output, *extra):
    return swc("detect", scene.before, scene.after, "--zones", scene.zones, "--projects", scene.projects,
               "-o", output, "--rules", "--workers", "1", "-q", *extra)


def field_file(registered: Path, path: Path) -> Path:
    field = gpd.read_file(registered, layer="suspected_violations")
    for name in ("ZPBH", "X_CLOSE"):
        field[name] = ""
    field["RST"], field["XCFHR"], field["DATE"], field["BYD"], field["QDCS"] = "已复核", "张三", "2026-11-20", "未批先建", "施工"
    field.to_file(path, layer="suspected_violations", engine="pyogrio")
    return path


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """A 512² scene of 64 suspected patches, its output and a store that registered it."""
    folder = tmp_path_factory.mktemp("faults")
    scene = make_scene(folder, size=512, squares=SQUARES,
                       projects=gpd.GeoDataFrame({"PRNM": ["远处"]}, geometry=gpd.GeoSeries.from_wkt(
                           ["POLYGON((301000 3319000, 301010 3319000, 301010 3319010, 301000 3319000))"]), crs="EPSG:32648"))
    registered, store = folder / "registered.gpkg", folder / "history.gpkg"
    run = subprocess.run(detect_argv(scene, registered, "--history", store), capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    field = field_file(registered, folder / "field.gpkg")
    return scene, registered, store, field


def temporaries(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.name.startswith("."))


# -- a full disk -----------------------------------------------------------------------------------
@contextlib.contextmanager
def small_tmpfs(folder: Path, size_kb: int):
    folder.mkdir()
    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("a tmpfs needs root and mount(8)")
    made = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size_kb}k", "tmpfs", str(folder)], capture_output=True)
    if made.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({made.stderr.decode().strip()})")
    try:
        yield folder
    finally:
        subprocess.run(["umount", str(folder)], check=False)


def fill(folder: Path, leave_bytes: int) -> None:
    (folder / "filler").write_bytes(b"\0" * max(0, shutil.disk_usage(folder).free - leave_bytes))


def file_size_limited(limit: int):
    def limit_writes():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # writes past the limit fail with EFBIG instead
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
    return limit_writes


def assert_write_refused(run, target: Path, before: bytes | None):
    assert run.returncode == 1, run.stderr  # a fault, not bad input
    assert "Traceback" not in run.stderr
    assert "could not be written" in run.stderr and "nothing was replaced" in run.stderr, run.stderr
    assert (target.read_bytes() if target.exists() else None) == before
    assert not temporaries(target.parent)


@pytest.mark.parametrize("how", ["tmpfs", "rlimit"])
def test_disk_full_while_writing_the_output(world, tmp_path, how):
    scene, registered, _, _ = world
    folder = tmp_path / "out"
    with (small_tmpfs(folder, 16384) if how == "tmpfs" else contextlib.nullcontext(folder.mkdir())):
        output = folder / "out.gpkg"
        shutil.copyfile(registered, output)  # last month's output, to be replaced
        previous = output.read_bytes()
        if how == "tmpfs":
            fill(folder, 200_000)
            run = subprocess.run(detect_argv(scene, output, "--overwrite"), capture_output=True, text=True)
            assert "the disk is full" in run.stderr
        else:
            run = subprocess.run(detect_argv(scene, output, "--overwrite"), capture_output=True, text=True,
                                 preexec_fn=file_size_limited(200_000))
        assert_write_refused(run, output, previous)
        (folder / "filler").unlink(missing_ok=True)
        again = subprocess.run(detect_argv(scene, output, "--overwrite"), capture_output=True, text=True)
        assert again.returncode == 0, again.stderr
        assert len(gpd.read_file(output, layer="suspected_violations")) == 64


@pytest.mark.parametrize("how", ["tmpfs", "rlimit"])
def test_disk_full_while_writing_the_history(world, tmp_path, how):
    _, _, store0, field = world
    folder = tmp_path / "store"
    with (small_tmpfs(folder, 16384) if how == "tmpfs" else contextlib.nullcontext(folder.mkdir())):
        store = folder / "history.gpkg"
        shutil.copyfile(store0, store)
        previous = store.read_bytes()
        argv = swc("verify", "import", field, "--store", store)
        if how == "tmpfs":
            fill(folder, len(previous) + 20_000)  # room for the copy, not for the new records
            run = subprocess.run(argv, capture_output=True, text=True)
        else:
            run = subprocess.run(argv, capture_output=True, text=True, preexec_fn=file_size_limited(len(previous) + 4096))
        assert_write_refused(run, store, previous)
        assert len(load_store(store).verifications) == 0
        (folder / "filler").unlink(missing_ok=True)
        again = subprocess.run(argv, capture_output=True, text=True)
        assert again.returncode == 0, again.stderr
        assert len(load_store(store).verifications) > 0


# -- SIGKILL while writing ---------------------------------------------------------------------------
def kill_when(argv, folder: Path, prefix: str, reset, attempts: int = 5) -> bool:
    """Start ``argv`` and SIGKILL its process group the moment a temporary ``prefix``* file
    appears in ``folder``; True when it was killed so. An attempt that finished first is
    undone with ``reset()`` and tried again (False: every attempt finished first)."""
    for _ in range(attempts):
        proc = subprocess.Popen(argv, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        try:
            while proc.poll() is None:
                with contextlib.suppress(FileNotFoundError):
                    if any(e.name.startswith(prefix) for e in os.scandir(folder)):
                        os.killpg(proc.pid, signal.SIGKILL)
                        proc.wait()
                        return True
                time.sleep(0.001)
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        if proc.returncode != 0:
            pytest.fail(proc.stderr.read().decode())
        reset()
    return False


def test_sigkill_of_detect_while_writing(world, tmp_path):
    scene, registered, _, _ = world
    output = tmp_path / "out.gpkg"
    shutil.copyfile(registered, output)
    previous = output.read_bytes()

    assert kill_when(detect_argv(scene, output, "--overwrite"), tmp_path, ".out.",
                     reset=lambda: output.write_bytes(previous)), "detect always finished first"
    assert output.read_bytes() == previous  # the previous output, whole
    assert temporaries(tmp_path), "the killed run's temporary should be there, hidden"
    again = subprocess.run(detect_argv(scene, output, "--overwrite"), capture_output=True, text=True)
    assert again.returncode == 0, again.stderr
    assert not temporaries(tmp_path)  # the next run removed what the killed one left
    assert len(gpd.read_file(output, layer="suspected_violations")) == 64


def test_sigkill_of_verify_import_during_its_transaction(world, tmp_path):
    _, _, store0, field = world
    store = tmp_path / "history.gpkg"
    shutil.copyfile(store0, store)
    previous = store.read_bytes()
    assert kill_when(swc("verify", "import", field, "--store", store), tmp_path, ".history.",
                     reset=lambda: store.write_bytes(previous)), "verify import always finished first"
    assert store.read_bytes() == previous
    assert len(load_store(store).verifications) == 0
    again = subprocess.run(swc("verify", "import", field, "--store", store), capture_output=True, text=True)
    assert again.returncode == 0, again.stderr
    records = len(load_store(store).verifications)
    assert records > 0
    assert not [p for p in temporaries(tmp_path) if p.suffix == ".gpkg"]
    once_more = subprocess.run(swc("verify", "import", field, "--store", store), capture_output=True, text=True)
    assert once_more.returncode == 0 and len(load_store(store).verifications) == records  # nothing twice


def test_sigkill_of_batch_during_month_assembly(tmp_path):
    from tests.test_batch import make_city, write_config

    city = make_city(tmp_path / "city")
    config = write_config(city, tmp_path / "run")
    out = tmp_path / "run" / "out"
    first = subprocess.run(swc("batch", config, "--period", "202611"), capture_output=True, text=True)
    assert first.returncode == 0, first.stderr
    previous_month = (out / "202611" / "swc_202611.gpkg").read_bytes()
    month_dir = out / "202612"
    argv = swc("batch", config, "--period", "202612")
    assert kill_when(argv, month_dir, ".swc_202612.", reset=lambda: shutil.rmtree(month_dir)), \
        "the batch always finished first"
    assert not (month_dir / "swc_202612.gpkg").exists()
    assert (out / "202611" / "swc_202611.gpkg").read_bytes() == previous_month
    assert len(list((month_dir / "tiles").glob("r*.gpkg"))) == 4  # the committed tiles are kept
    again = subprocess.run(argv + ["--resume"], capture_output=True, text=True)
    assert again.returncode == 0, again.stderr
    assert len(gpd.read_file(month_dir / "swc_202612.gpkg", layer="disturbance_patches")) > 0
    assert not [p for p in temporaries(month_dir) if p.suffix == ".gpkg"]


# -- concurrent imports -------------------------------------------------------------------------------
def test_four_concurrent_importers_lose_and_duplicate_nothing(world, tmp_path):
    """4 processes at once, each importing two of 4 overlapping field files (every file
    twice, by two processes): the GeoPackage store serialises them with its lock and
    ends with exactly the records of the 4 files, once each."""
    _, registered, store0, _ = world
    store = tmp_path / "history.gpkg"
    shutil.copyfile(store0, store)
    whole = gpd.read_file(field_file(registered, tmp_path / "all.gpkg"), layer="suspected_violations")
    files = []
    for k in range(4):  # rows 16k … 16k + 23: each file shares 8 patches with the next
        part = whole.iloc[16 * k: 16 * k + 24].copy()
        part["XCFHR"] = f"检查员{k}"
        path = tmp_path / f"field_{k}.gpkg"
        part.to_file(path, layer="suspected_violations", engine="pyogrio")
        files.append(path)
    procs = [subprocess.Popen(["sh", "-c", f"{SWC_RS} verify import {files[k]} --store {store} -q && "
                                           f"{SWC_RS} verify import {files[(k + 1) % 4]} --store {store} -q"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE) for k in range(4)]
    for proc in procs:
        assert proc.wait(timeout=300) == 0, proc.stderr.read().decode()
    # The reference: the same files imported one after the other into a fresh copy.
    serial = tmp_path / "serial.gpkg"
    shutil.copyfile(store0, serial)
    for path in files:
        run = subprocess.run(swc("verify", "import", path, "--store", serial, "-q"), capture_output=True, text=True)
        assert run.returncode == 0, run.stderr
    from swc_rs.verification import RECORD_KEY

    got = load_store(store).verifications
    want = load_store(serial).verifications
    keys = got[list(RECORD_KEY)].apply(tuple, axis=1)
    expected = set(want[list(RECORD_KEY)].apply(tuple, axis=1))
    lost, duplicated = len(expected - set(keys)), int(keys.duplicated().sum())
    print(f"concurrent GeoPackage imports: 8 imports of 4 files, {len(got)} records, {len(expected)} expected, "
          f"lost {lost}, duplicated {duplicated}")
    assert lost == 0 and duplicated == 0 and len(got) == len(expected) > 0
    assert got["RECORD_ID"].is_unique
    events = load_store(store).log
    assert (events["EVENT"] == "import").sum() == 4  # a file imported a second time adds nothing, not even a log line
