"""Field verification: `verify import`, the history store and `detect --history`."""

from __future__ import annotations

import hashlib
import shutil
import tempfile
from pathlib import Path

import geopandas as gpd
import pandas as pd
import pyogrio
import pytest
import shapely
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from swc_rs import codes
from swc_rs.cli.main import cli
from swc_rs.cli.verify import verify
from swc_rs.errors import InputFileError, VerificationError
from swc_rs.verification import (
    BLACKLIST,
    DESK_FIELDS,
    RECORD_KEY,
    WATCH,
    WatchListConfig,
    desk_patches,
    developer_watch_list,
    import_field_results,
    load_store,
    register_run,
    verified_labels,
)
from tests.conftest import X0, Y0, make_scene

if "verify" not in cli.commands:  # until main.py registers it
    cli.add_command(verify)

# Squares (row, col, side) of the scene: A and B lie outside the project (疑似未批先建),
# C overruns the project's range (疑似超出防治责任范围, developer 测试单位).
A, B, C = (100, 100, 30), (20, 110, 25), (40, 70, 30)


def detect(scene, output, *extra):
    args = ["detect", str(scene.before), str(scene.after), "--zones", str(scene.zones), "--projects", str(scene.projects),
            "-o", str(output), "--rules", "-q", *map(str, extra)]
    return CliRunner().invoke(cli, args)


def run_import(field, store, *extra):
    return CliRunner().invoke(cli, ["verify", "import", str(field), "--store", str(store), *map(str, extra)])


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def qdnm_at(frame: gpd.GeoDataFrame, row: int, col: int) -> str:
    """QDNM of the patch holding pixel (row, col) of the scene."""
    point = gpd.GeoSeries([shapely.Point(X0 + 2 * col + 1, Y0 - 2 * row - 1)], crs="EPSG:32648").to_crs(frame.crs).iloc[0]
    hits = frame[frame.geometry.contains(point)]
    assert len(hits) == 1, f"no single patch at {(row, col)}"
    return hits["QDNM"].iat[0]


def field_copy(output: Path, path: Path, edits: dict[str, dict]) -> Path:
    """A field team's copy of ``output``'s suspected_violations with ``edits`` by QDNM."""
    field = gpd.read_file(output, layer="suspected_violations")
    for name in ("XCFHR", "DATE", "ZPBH", "X_CLOSE"):
        if name not in field:
            field[name] = ""
    for qdnm, values in edits.items():
        for key, value in values.items():
            field.loc[field["QDNM"] == qdnm, key] = value
    field.to_file(path, layer="suspected_violations", engine="pyogrio")
    return path


@pytest.fixture(scope="module")
def period1(tmp_path_factory):
    """Period 202611 with A, B, C detected and registered with a store."""
    folder = tmp_path_factory.mktemp("period1")
    scene = make_scene(folder, squares=(A, B, C))
    out, store = folder / "out.gpkg", folder / "history.gpkg"
    result = detect(scene, out, "--history", store)
    assert result.exit_code == 0, result.output
    patches = gpd.read_file(out, layer="disturbance_patches")
    ids = {name: qdnm_at(patches, sq[0] + sq[2] // 2, sq[1] + sq[2] // 2) for name, sq in zip("ABC", (A, B, C), strict=True)}
    return folder, scene, out, store, ids


def copy_store(period1, tmp_path) -> Path:
    store = tmp_path / "history.gpkg"
    store.write_bytes(period1[3].read_bytes())
    return store


CHECKER = {"RST": "已复核", "XCFHR": "张三", "DATE": "2026-11-20"}


def good_edits(ids):
    return {
        ids["A"]: {**CHECKER, "QTYPE": codes.NOT_PROJECT, "X_REASON": "耕地翻耕"},
        ids["B"]: {**CHECKER, "BYD": "未批先建", "QDCS": "施工", "ZPBH": "IMG_0001"},
    }


# -- the store and the first detect ----------------------------------------------------
def test_detect_history_creates_and_registers_the_store(period1):
    folder, _, out, store, ids = period1
    layers = {name for name, _ in pyogrio.list_layers(store)}
    assert {"store_info", "patches", "verifications", "store_log", "developers"} <= layers
    patches = gpd.read_file(store, layer="patches")
    assert set(ids.values()) <= set(patches["QDNM"])
    assert set(patches["PERIOD"]) == {"202611"}
    c = patches[patches.QDNM == ids["C"]].iloc[0]
    assert c.BYD == codes.OVERRUN and c.DPOZ == "测试单位"
    assert "developers" in {name for name, _ in pyogrio.list_layers(out)}


def test_desk_fields_mirror_the_pipeline():
    from swc_rs.pipeline import PATCH_FIELDS

    assert DESK_FIELDS == PATCH_FIELDS


def test_a_store_is_never_overwritten_by_detect(period1, tmp_path):
    _, scene, _, _, _ = period1
    store = copy_store(period1, tmp_path)
    before = sha(store)
    result = detect(scene, store, "--overwrite")
    assert result.exit_code == 2 and "history store" in result.output
    assert sha(store) == before


def test_a_non_store_is_never_used_as_a_store(period1, tmp_path):
    _, scene, out, _, ids = period1
    field = field_copy(out, tmp_path / "field.gpkg", good_edits(ids))
    victim = tmp_path / "victim.gpkg"
    victim.write_bytes(out.read_bytes())
    before = sha(victim)
    result = run_import(field, victim)
    assert result.exit_code == 2 and "not a swc-rs history store" in result.output
    assert sha(victim) == before
    result = detect(scene, tmp_path / "o.gpkg", "--history", victim)
    assert result.exit_code == 2 and "not a swc-rs history store" in result.output
    assert sha(victim) == before and not (tmp_path / "o.gpkg").exists()


# -- import validation ---------------------------------------------------------------------
def test_bad_values_are_reported_by_qdnm_and_field_and_nothing_is_recorded(period1, tmp_path):
    _, _, out, _, ids = period1
    store = copy_store(period1, tmp_path)
    before = sha(store)
    field = field_copy(out, tmp_path / "bad.gpkg", {
        ids["A"]: {**CHECKER, "QTYPE": codes.NOT_PROJECT, "X_REASON": "外星人"},
        ids["B"]: {**CHECKER, "BYD": "疑似未批先建", "QDCS": "在建"},
    })
    result = run_import(field, store)
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    assert str(field) in result.output
    for qdnm, name in ((ids["A"], "X_REASON"), (ids["B"], "BYD"), (ids["B"], "QDCS")):
        assert f"QDNM {qdnm} field {name}" in result.output
    assert sha(store) == before


def test_problems_are_typed_and_complete(period1, tmp_path):
    _, _, out, _, ids = period1
    store = copy_store(period1, tmp_path)
    field = gpd.read_file(out, layer="suspected_violations")
    extra = field.iloc[[0]].copy()
    extra["QDNM"] = "511800-202611-999999"
    field = pd.concat([field, extra], ignore_index=True)
    field["RST"] = "已复核"
    field["XCFHR"] = ""
    field["DATE"] = "20.11.2026"
    field["BYD"] = "未批先建"
    field["QTYPE"] = "工地"
    field.loc[field.QDNM == ids["B"], "RST"] = "查过了"
    path = tmp_path / "bad.gpkg"
    gpd.GeoDataFrame(field, crs=field.crs).to_file(path, layer="suspected_violations")
    with pytest.raises(VerificationError) as info:
        import_field_results(path, store)
    found = {(p.qdnm, p.field) for p in info.value.problems}
    assert ("511800-202611-999999", "QDNM") in found
    assert (ids["B"], "RST") in found
    for name in ("XCFHR", "DATE", "QTYPE"):
        assert (ids["A"], name) in found
    assert load_store(store).verifications.empty


def test_unchecked_rows_are_ignored_even_with_bad_values(period1, tmp_path):
    _, _, out, _, ids = period1
    store = copy_store(period1, tmp_path)
    field = field_copy(out, tmp_path / "field.gpkg", {ids["A"]: {"RST": "未复核", "BYD": "胡乱", "QTYPE": "什么"}})
    result = run_import(field, store)
    assert result.exit_code == 0, result.output
    assert load_store(store).verifications.empty


def test_unknown_patches_need_their_output(period1, tmp_path):
    """A store that never saw the output rejects its QDNMs; --output registers it."""
    _, _, out, _, ids = period1
    store = tmp_path / "fresh.gpkg"
    field = field_copy(out, tmp_path / "field.gpkg", good_edits(ids))
    result = run_import(field, store)
    assert result.exit_code == 2 and "field QDNM" in result.output and "--output" in result.output
    assert not store.exists()
    result = run_import(field, store, "--output", out)
    assert result.exit_code == 0, result.output
    assert len(load_store(store).verifications) > 0


# -- the audit trail ---------------------------------------------------------------------------
def test_import_records_who_when_old_and_new_and_is_idempotent(period1, tmp_path):
    _, _, out, _, ids = period1
    store = copy_store(period1, tmp_path)
    field = field_copy(out, tmp_path / "field.gpkg", good_edits(ids))
    result = run_import(field, store)
    assert result.exit_code == 0, result.output
    records = load_store(store).verifications
    byd = records[(records.QDNM == ids["B"]) & (records.FIELD == "BYD")].iloc[0]
    assert (byd.OLD_VALUE, byd.NEW_VALUE, byd.XCFHR, byd.DATE) == (codes.UNAPPROVED, "未批先建", "张三", "2026-11-20")
    assert byd.SOURCE_SHA256 == sha(field) and byd.SOURCE.endswith("field.gpkg")
    rst = records[(records.QDNM == ids["A"]) & (records.FIELD == "RST")].iloc[0]
    assert (rst.OLD_VALUE, rst.NEW_VALUE) == ("未复核", "已复核")
    assert set(records[records.QDNM == ids["A"]].FIELD) == {"RST", "QTYPE", "X_REASON"}
    assert ids["C"] not in set(records.QDNM)  # untouched row
    before = sha(store)
    again = run_import(field, store)
    assert again.exit_code == 0 and "0 new verification records" in again.output
    assert sha(store) == before  # nothing new: the store is not even rewritten


def test_a_later_verdict_adds_a_record_and_never_rewrites_one(period1, tmp_path):
    _, _, out, _, ids = period1
    store = copy_store(period1, tmp_path)
    first = field_copy(out, tmp_path / "first.gpkg", good_edits(ids))
    assert run_import(first, store).exit_code == 0
    old = load_store(store).verifications
    later = field_copy(out, tmp_path / "later.gpkg", {
        ids["B"]: {"RST": "已复核", "XCFHR": "李四", "DATE": "2026-12-05", "BYD": "未批先建", "QDCS": "停工"},
    })
    assert run_import(later, store).exit_code == 0
    new = load_store(store).verifications
    assert len(new) > len(old)
    pd.testing.assert_frame_equal(new.iloc[: len(old)].reset_index(drop=True), old)  # never rewritten
    qdcs = new[(new.QDNM == ids["B"]) & (new.FIELD == "QDCS")]
    assert list(qdcs.NEW_VALUE) == ["施工", "停工"] and qdcs.OLD_VALUE.iat[1] == "施工"
    state = load_store(store).state()
    assert state.at[ids["B"], "QDCS"] == "停工" and state.at[ids["B"], "XCFHR"] == "李四"


# -- property: repeated imports never lose or duplicate records ---------------------------------
_VERDICTS = [
    {"RST": "已复核", "BYD": "未批先建"},
    {"RST": "已复核", "BYD": "合规", "QDCS": "完工"},
    {"RST": "已复核", "QTYPE": codes.NOT_PROJECT, "X_REASON": "云及阴影"},
    {"RST": "无法核实", "NOTE": "道路中断"},
    {"RST": "未复核"},
]


@pytest.fixture(scope="module")
def synthetic_output(tmp_path_factory):
    """A small registered 'detect output' without running detect: 4 patches."""
    folder = tmp_path_factory.mktemp("synthetic")
    geoms = [shapely.box(102.97 + 0.001 * i, 30.0, 102.9705 + 0.001 * i, 30.0005) for i in range(4)]
    patches = gpd.GeoDataFrame({name: [""] * 4 for name in DESK_FIELDS}, geometry=geoms, crs="EPSG:4490")
    patches["QDNM"] = [f"511800-202611-{i:06d}" for i in range(1, 5)]
    patches["QTYPE"], patches["BYD"], patches["RST"] = codes.OTHER, codes.UNAPPROVED, "未复核"
    for name in ("QAREA", "EAREA", "X_CONF", "X_SHIFT"):
        patches[name] = 0.2
    patches["PRNM"] = ["甲项目", "甲项目", "", ""]
    projects = pd.DataFrame({"PRNM": ["甲项目"], "DPOZ": ["甲公司"]})
    info = {"started_utc": "2026-11-30T00:00:00+00:00", "period": "202611", "before_sha256": "b", "after_sha256": "a"}
    source = folder / "out.gpkg"
    patches.to_file(source, layer="suspected_violations")
    return patches, projects, info, source


def _store_with(synthetic_output, folder: Path) -> Path:
    patches, projects, info, source = synthetic_output

    class Result:  # what register_run reads from a DetectResult
        pass

    result = Result()
    result.patches, result.projects, result.run_info = patches, projects, info
    store = folder / "history.gpkg"
    register_run(store, result, source)
    return store


@pytest.fixture(scope="module")
def synthetic_store(synthetic_output, tmp_path_factory) -> Path:
    """A store with the synthetic output registered (copied by the tests that use it)."""
    return _store_with(synthetic_output, tmp_path_factory.mktemp("synthetic_store"))


field_files = st.lists(
    st.lists(st.sampled_from(range(len(_VERDICTS))), min_size=4, max_size=4),  # a verdict per patch
    min_size=1, max_size=3,
)


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(files=field_files, order=st.lists(st.integers(0, 2), min_size=1, max_size=6))
def test_repeated_imports_never_lose_or_duplicate_records(synthetic_output, synthetic_store, files, order):
    patches = synthetic_output[0]
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        paths = []
        for k, verdicts in enumerate(files):
            field = patches.copy()
            field["XCFHR"], field["DATE"] = f"检查员{k}", f"2026-12-0{k + 1}"
            for row, v in enumerate(verdicts):
                for key, value in _VERDICTS[v].items():
                    field.loc[row, key] = value
            path = folder / f"field{k}.gpkg"
            field.to_file(path, layer="suspected_violations")
            paths.append(path)
        # What each file yields alone, on a fresh store.
        expected = set()
        for k, path in enumerate(paths):
            alone = shutil.copyfile(synthetic_store, folder / f"alone{k}.gpkg")
            import_field_results(path, alone)
            expected |= set(map(tuple, load_store(alone).verifications[list(RECORD_KEY)].to_numpy()))
        store = shutil.copyfile(synthetic_store, folder / "history.gpkg")
        sequence = [paths[i % len(paths)] for i in order] + paths  # duplicates, any order, every file at least once
        previous = None
        for path in sequence:
            import_field_results(path, store)
            records = load_store(store).verifications
            if previous is not None:  # append-only: earlier records untouched
                pd.testing.assert_frame_equal(records.iloc[: len(previous)].reset_index(drop=True), previous)
            previous = records
        keys = list(map(tuple, previous[list(RECORD_KEY)].to_numpy()))
        assert len(keys) == len(set(keys))  # no duplicates
        assert set(keys) == expected  # nothing lost, nothing invented
        assert list(previous.RECORD_ID) == list(range(1, len(previous) + 1))


# -- detect --history ---------------------------------------------------------------------------
def test_detect_history_suppresses_false_alarms_and_carries_confirmed_violations(period1, tmp_path):
    folder, scene, out, _, ids = period1
    store = copy_store(period1, tmp_path)
    field = field_copy(out, tmp_path / "field.gpkg", good_edits(ids))
    assert run_import(field, store).exit_code == 0
    # Next period: A (a confirmed false alarm) is still bare, B (a confirmed violation)
    # is not detected any more, C is still there.
    (tmp_path / "p2").mkdir()
    scene2 = make_scene(tmp_path / "p2", squares=(A, C))
    out2 = tmp_path / "out2.gpkg"
    result = detect(scene2, out2, "--history", store, "--period", "202612")
    assert result.exit_code == 0, result.output
    patches = gpd.read_file(out2, layer="disturbance_patches").set_index("QDNM")
    listed = gpd.read_file(out2, layer="suspected_violations").set_index("QDNM")
    # A keeps its id, stays a patch, verified as a false alarm, off the list.
    assert patches.at[ids["A"], "QTYPE"] == codes.NOT_PROJECT
    assert patches.at[ids["A"], "RST"] == "已复核" and patches.at[ids["A"], "X_REASON"] == "耕地翻耕"
    assert ids["A"] not in listed.index
    assert patches.at[ids["A"], "QDTYPE"] == "续建（范围不变）"  # QDTYPE against the last period
    # B is carried, confirmed, with its last geometry.
    assert ids["B"] in listed.index
    assert listed.at[ids["B"], "BYD"] == "未批先建" and listed.at[ids["B"], "X_CARRY"] == "202611"
    assert listed.at[ids["B"], "RST"] == "已复核" and listed.at[ids["B"], "QDCS"] == "施工"
    old = gpd.read_file(out, layer="disturbance_patches").set_index("QDNM")
    assert listed.geometry[ids["B"]].equals_exact(old.geometry[ids["B"]], 1e-9)
    # C is detected again, still suspected, unverified.
    assert listed.at[ids["C"], "BYD"] == codes.OVERRUN and listed.at[ids["C"], "RST"] == "未复核"
    # The run is registered under 202612, carried patch included.
    registered = gpd.read_file(store, layer="patches")
    assert set(registered[registered.PERIOD == "202612"].QDNM) >= {ids["A"], ids["B"], ids["C"]}
    # Close B out (销号): the next period no longer carries it; history keeps it.
    closing = field_copy(out2, tmp_path / "close.gpkg", {ids["B"]: {"RST": "已复核", "XCFHR": "王五", "DATE": "2027-01-10", "X_CLOSE": "销号"}})
    assert run_import(closing, store).exit_code == 0
    out3 = tmp_path / "out3.gpkg"
    assert detect(scene2, out3, "--history", store, "--period", "202701").exit_code == 0
    assert ids["B"] not in set(gpd.read_file(out3, layer="disturbance_patches").QDNM)
    assert load_store(store).state().at[ids["B"], "CLOSED"]
    # Verified patches are training labels.
    labels = verified_labels(store)
    assert set(labels.QDNM) == {ids["A"], ids["B"]}
    a = labels.set_index("QDNM").loc[ids["A"]]
    assert a.QTYPE == codes.NOT_PROJECT and a.X_REASON == "耕地翻耕" and a.BYD == ""
    assert labels.crs.to_epsg() == 4490 and labels.geometry.is_valid.all()


# -- developers -------------------------------------------------------------------------------------
def test_developer_flags_from_thresholds(period1, tmp_path):
    _, _, out, _, ids = period1
    store = copy_store(period1, tmp_path)
    assert developer_watch_list(store).empty
    field = field_copy(out, tmp_path / "field.gpkg", {
        ids["C"]: {**CHECKER, "BYD": "超出防治责任范围"},
        ids["B"]: {**CHECKER, "BYD": "未批先建", "DPOZ": "无证单位"},
    })
    field_frame = gpd.read_file(field)
    assert "DPOZ" in field_frame
    assert run_import(field, store).exit_code == 0
    table = developer_watch_list(store).set_index("DPOZ")
    assert table.at["测试单位", "N_CONFIRMED"] == 1 and table.at["测试单位", "FLAG"] == WATCH
    assert table.at["无证单位", "FLAG"] == WATCH
    stored = pyogrio.read_dataframe(store, layer="developers").set_index("DPOZ")
    assert stored.at["测试单位", "FLAG"] == WATCH
    strict = developer_watch_list(store, WatchListConfig(watch_at=1, blacklist_at=1)).set_index("DPOZ")
    assert strict.at["测试单位", "FLAG"] == BLACKLIST
    lenient = developer_watch_list(store, WatchListConfig(watch_at=2, blacklist_at=3)).set_index("DPOZ")
    assert lenient.at["测试单位", "FLAG"] == ""


def test_a_confirmed_violation_in_a_sensitive_area_blacklists(synthetic_output, tmp_path):
    patches, projects, info, source = synthetic_output
    patches = patches.copy()
    patches["X_SENS"] = ["生态保护红线", "", "", ""]

    class Result:
        pass

    result = Result()
    result.patches, result.projects, result.run_info = patches, projects, info
    store = tmp_path / "history.gpkg"
    register_run(store, result, source)
    field = patches.copy()
    field.loc[0, ["RST", "BYD", "XCFHR", "DATE"]] = ["已复核", "未批先建", "张三", "2026-12-01"]
    path = tmp_path / "field.gpkg"
    field.to_file(path, layer="suspected_violations")
    import_field_results(path, store)
    assert developer_watch_list(store).set_index("DPOZ").at["甲公司", "FLAG"] == BLACKLIST
    assert developer_watch_list(store, WatchListConfig(blacklist_sensitive=False)).set_index("DPOZ").at["甲公司", "FLAG"] == WATCH


def test_watch_list_thresholds_are_checked():
    with pytest.raises(ValueError):
        WatchListConfig(watch_at=3, blacklist_at=2)


def test_registering_the_same_run_twice_adds_nothing(synthetic_output, tmp_path):
    store = _store_with(synthetic_output, tmp_path)
    before = sha(store)
    patches, projects, info, source = synthetic_output
    assert len(desk_patches(patches, projects, info, source="x")) == 4

    class Result:
        pass

    result = Result()
    result.patches, result.projects, result.run_info = patches, projects, info
    assert register_run(store, result, source) == 0
    assert sha(store) == before


def test_field_file_must_not_be_the_store(period1, tmp_path):
    store = copy_store(period1, tmp_path)
    with pytest.raises(InputFileError):
        import_field_results(store, tmp_path / "other.gpkg")
