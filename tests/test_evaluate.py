"""Tests of `swc_rs.evaluate` and `swc-rs evaluate` on tiny hand-made squares.

Squares are laid out in EPSG:4543 metres near Ya'an (x ≈ 540 km, y ≈ 3320 km) and
written to GeoPackages in EPSG:4490, as the real files are. A 100 m square is 1 hm².
"""

from __future__ import annotations

import json

import geopandas as gpd
import pytest
import shapely
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from swc_rs.codes import (
    BORROW,
    BYD_DESK,
    COMPLIANT,
    NOT_PROJECT,
    OTHER,
    OVERRUN,
    SPOIL,
    UNAPPROVED,
)
from swc_rs.errors import VectorInputError
from swc_rs.evaluate import Evaluation, evaluate, match_patches, normalise_byd

X0, Y0 = 540_000.0, 3_320_000.0


def square(x: float, y: float, side: float):
    return shapely.box(X0 + x, Y0 + y, X0 + x + side, Y0 + y + side)


def frame(rows: list[dict], crs: str = "EPSG:4543") -> gpd.GeoDataFrame:
    return gpd.GeoDataFrame(rows, geometry="geometry", crs="EPSG:4543").to_crs(crs)


def patch(geom, qtype=OTHER, byd=COMPLIANT, earea=0.0, **extra) -> dict:
    return {"QTYPE": qtype, "BYD": byd, "EAREA": earea, "geometry": geom, **extra}


@pytest.fixture
def truth() -> gpd.GeoDataFrame:
    return frame(
        [
            patch(square(0, 0, 100), OTHER, COMPLIANT),  # T1: found (BYD wrong)
            patch(square(300, 0, 100), SPOIL, OVERRUN, 0.3),  # T2: found twice (QTYPE wrong)
            patch(square(600, 0, 100), BORROW, UNAPPROVED),  # T3: only a 30 % overlap → missed
            patch(square(900, 0, 100), OTHER, UNAPPROVED),  # T4: found but typed 非生产建设项目
            patch(square(1200, 0, 10), OTHER, UNAPPROVED),  # T5: 0.01 hm², optional, found
            patch(square(1500, 0, 10), OTHER, UNAPPROVED),  # T6: 0.01 hm², optional, missed
        ]
    )


@pytest.fixture
def detections() -> gpd.GeoDataFrame:
    return frame(
        [
            patch(square(10, 10, 100), OTHER, UNAPPROVED),  # D1 ~ T1 (overlap 0.81)
            patch(square(300, 40, 100), OTHER, OVERRUN, 0.2),  # D2 ~ T2 (0.6), best match
            patch(square(380, 80, 20), OTHER, COMPLIANT),  # D2b inside T2 (1.0), smaller overlap
            patch(square(900, 0, 100), NOT_PROJECT, None),  # not a detection
            patch(square(1198, -2, 14), OTHER, UNAPPROVED),  # D5 ⊃ T5
            patch(square(2000, 0, 100)),  # D6 false alarm on a cloud
            patch(square(2300, 0, 100)),  # D7 false alarm, mostly tillage, a little cloud
            patch(square(2600, 0, 100)),  # D8 false alarm, unexplained
            patch(square(670, 0, 100)),  # D9 30 % of T3: false alarm, unexplained
        ],
        crs="EPSG:4490",
    )


@pytest.fixture
def confounders() -> gpd.GeoDataFrame:
    return frame(
        [
            {"KIND": "cloud", "geometry": square(1950, -50, 200)},
            {"KIND": "tillage", "geometry": square(2320, 0, 100)},
            {"KIND": "cloud", "geometry": square(2250, 0, 60)},
        ],
        crs="EPSG:4490",
    )


def test_scores_on_known_squares(detections, truth, confounders):
    result = evaluate(detections, truth, confounders)
    assert isinstance(result, Evaluation)
    assert result.detections == 8
    assert result.non_project_patches == 1
    assert result.detections_matched == 4  # D1, D2, D2b, D5
    assert result.truth == 6 and result.truth_optional == 2 and result.truth_required == 4
    assert result.truth_required_matched == 2  # T1, T2
    assert result.truth_optional_matched == 1  # T5
    assert result.precision == pytest.approx(0.5)
    assert result.recall == pytest.approx(0.5)
    assert result.f1 == pytest.approx(0.5)
    # BYD over matched truth T1, T2, T5 with best matches D1, D2, D5.
    assert result.byd_correct == 2
    assert result.byd_accuracy == pytest.approx(2 / 3)
    assert result.byd_confusion == {
        COMPLIANT: {UNAPPROVED: 1},
        UNAPPROVED: {UNAPPROVED: 1},
        OVERRUN: {OVERRUN: 1},
    }
    assert result.qtype_accuracy == pytest.approx(2 / 3)
    assert result.qtype_confusion[SPOIL] == {OTHER: 1}
    # EAREA: T2 0.3 hm² vs D2 0.2 hm².
    assert result.earea_pairs == 1
    assert result.earea_mae_hm2 == pytest.approx(0.1)
    assert result.earea_relative_error == pytest.approx(-1 / 3)
    assert result.false_alarms == 4
    assert result.false_alarms_by_confounder == {"cloud": 1, "tillage": 1}
    assert result.false_alarms_unexplained == 2
    assert result.missed_as_non_project == 1
    assert result.recall_by_byd == {
        COMPLIANT: {"truth": 1, "matched": 1, "recall": 1.0},
        UNAPPROVED: {"truth": 2, "matched": 0, "recall": 0.0},
        OVERRUN: {"truth": 1, "matched": 1, "recall": 1.0},
    }
    json.dumps(result.to_dict())  # serialisable


def test_min_overlap_decides_matches(detections, truth):
    loose = evaluate(detections, truth, min_overlap=0.25)  # D9 now matches T3
    assert loose.truth_required_matched == 3 and loose.detections_matched == 5
    strict = evaluate(detections, truth, min_overlap=0.7)  # D2 (0.6) no longer matches
    assert strict.detections_matched == 3  # D1, D2b, D5
    assert strict.truth_required_matched == 2  # T2 still matched, by D2b
    assert strict.byd_confusion[OVERRUN] == {COMPLIANT: 1}


def test_min_area_makes_small_truth_optional(detections, truth):
    counted = evaluate(detections, truth, min_area_hm2=0.0)
    assert counted.truth_optional == 0
    assert counted.recall == pytest.approx(3 / 6)  # T1, T2, T5 of six
    assert counted.precision == pytest.approx(0.5)  # precision does not change


def test_non_project_detections_are_not_detections(truth):
    only_non_project = frame([patch(square(0, 0, 100), NOT_PROJECT, "")])
    result = evaluate(only_non_project, truth)
    assert result.detections == 0 and result.non_project_patches == 1
    assert result.precision is None and result.f1 is None
    assert result.recall == 0.0
    assert result.missed_as_non_project == 1  # T1


def test_field_verified_truth(detections, truth):
    """Field verdicts drop 疑似 and false alarms become 非生产建设项目 rows."""
    verified = truth.copy()
    verified["BYD"] = [b.removeprefix("疑似") for b in verified["BYD"]]
    false_alarm = frame([patch(square(2600, 0, 100), NOT_PROJECT, "", X_REASON="云及阴影")])
    verified = gpd.GeoDataFrame(
        [*verified.to_dict("records"), *false_alarm.to_dict("records")],
        geometry="geometry",
        crs=truth.crs,
    )
    assert evaluate(detections, verified).to_dict() == evaluate(detections, truth).to_dict()


def test_matching_pairs_are_many_to_many(detections, truth):
    dets = detections.to_crs("EPSG:4543")
    dets = dets[dets["QTYPE"] != NOT_PROJECT].reset_index(drop=True)
    pairs = match_patches(dets, truth, min_overlap=0.5)
    ratios = {
        (d, t): r
        for d, t, r in zip(pairs["detection"], pairs["truth"], pairs["ratio"], strict=True)
    }
    assert sorted(ratios) == [(0, 0), (1, 1), (2, 1), (3, 4)]
    expected = {(0, 0): 0.81, (1, 1): 0.6, (2, 1): 1.0, (3, 4): 1.0}
    assert ratios == pytest.approx(expected, rel=1e-6)


def test_normalise_byd():
    assert normalise_byd("超出防治责任范围") == OVERRUN
    assert normalise_byd(OVERRUN) == OVERRUN
    assert normalise_byd(COMPLIANT) == COMPLIANT
    assert normalise_byd(None) == ""


def test_missing_fields_and_bad_parameters(truth):
    with pytest.raises(VectorInputError):
        evaluate(truth.drop(columns="BYD"), truth)
    with pytest.raises(VectorInputError):
        evaluate(truth, truth, min_overlap=0.0)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.dictionaries(
        keys=st.tuples(st.integers(0, 9), st.integers(0, 9)),
        values=st.tuples(st.floats(25.0, 190.0), st.sampled_from(BYD_DESK)),
        min_size=1,
        max_size=12,
    )
)
def test_truth_against_itself_is_perfect(cells):
    """Any set of disjoint squares (≥ 0.0625 hm²) scored against itself is perfect."""
    truth = frame(
        [patch(square(200 * i, 200 * j, side), OTHER, byd) for (i, j), (side, byd) in cells.items()]
    )
    result = evaluate(truth.to_crs("EPSG:4490"), truth)
    assert result.precision == result.recall == result.f1 == 1.0
    assert result.byd_accuracy == result.qtype_accuracy == 1.0
    assert result.false_alarms == 0


# -- command line --------------------------------------------------------------


@pytest.fixture
def files(tmp_path, detections, truth, confounders):
    out = tmp_path / "out.gpkg"
    detections.to_file(out, layer="disturbance_patches", engine="pyogrio")
    truth_path = tmp_path / "truth.gpkg"
    truth.to_crs("EPSG:4490").to_file(truth_path, layer="truth_patches", engine="pyogrio")
    confounders.to_file(truth_path, layer="confounders", engine="pyogrio")
    return out, truth_path


def run(*args):
    from swc_rs.cli.main import cli

    return CliRunner().invoke(cli, ["evaluate", *(str(a) for a in args)])


def test_cli_json(files, tmp_path):
    out, truth_path = files
    report = tmp_path / "scores.json"
    result = run(out, truth_path, "--json", "--output", report)
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["precision"] == pytest.approx(0.5)
    assert data["recall"] == pytest.approx(0.5)
    assert data["f1"] == pytest.approx(0.5)
    assert data["byd_accuracy"] == pytest.approx(2 / 3)
    assert data["false_alarms_by_confounder"] == {"cloud": 1, "tillage": 1}
    assert data["missed_as_non_project"] == 1
    assert json.loads(report.read_text(encoding="utf-8")) == data
    again = run(out, truth_path, "--json", "--output", report)
    assert again.exit_code == 2 and "--overwrite" in again.output


def test_cli_table(files):
    out, truth_path = files
    result = run(out, truth_path, "--min-overlap", "0.25")
    assert result.exit_code == 0, result.output
    assert "precision" in result.output and "62.5%" in result.output  # 5 of 8


def test_cli_missing_file(files, tmp_path):
    out, _ = files
    result = run(out, tmp_path / "nope.gpkg")
    assert result.exit_code == 2
    assert "nope.gpkg" in result.output and "does not exist" in result.output


def test_cli_no_suitable_layer(files, tmp_path):
    out, _ = files
    other = tmp_path / "roads.gpkg"
    frame([{"NAME": "G318", "geometry": square(0, 0, 10)}]).to_file(other, layer="roads")
    result = run(out, other)
    assert result.exit_code == 2
    assert "roads.gpkg" in result.output and "truth_patches" in result.output
    assert "--truth-layer" in result.output
    result = run(out, other, "--truth-layer", "roads")
    assert result.exit_code == 2 and "BYD" in result.output and "roads" in result.output


def test_cli_truth_is_verified_output(files):
    out, _ = files
    result = run(out, out, "--json")  # an output scored against itself
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["precision"] == data["recall"] == data["byd_accuracy"] == 1.0
