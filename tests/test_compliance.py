import geopandas as gpd
import numpy as np
import pytest
import shapely
from hypothesis import given, settings
from hypothesis import strategies as st

from swc_rs import codes
from swc_rs.compliance import judge, summarise_projects
from swc_rs.config import load_config

CRS = "EPSG:4543"
CONFIG = load_config()


def _patches(geoms, qtypes=None, zone="Z3"):
    geoms = list(geoms)
    frame = gpd.GeoDataFrame(
        {"QTYPE": qtypes or [codes.OTHER] * len(geoms), "X_ZONE": [zone] * len(geoms)}, geometry=geoms, crs=CRS
    )
    frame["QAREA"] = frame.area / 10_000
    return frame


def _ranges(geoms, names=None, darea=None):
    geoms = list(geoms)
    return gpd.GeoDataFrame(
        {"PRNM": names or [f"P{i}" for i in range(len(geoms))], "DAREA": darea or [np.nan] * len(geoms)},
        geometry=geoms, crs=CRS,
    )


def test_rule1_inside_is_compliant_green():
    out = judge(_patches([shapely.box(10, 10, 90, 90)]), _ranges([shapely.box(0, 0, 100, 100)]), None, CONFIG, pixel_size_m=2)
    assert out.BYD[0] == codes.COMPLIANT and out.EAREA[0] == 0 and out.PRNM[0] == "P0" and out.X_COLOR[0] == codes.GREEN


def test_rule1_edge_tolerance_ignores_narrow_sliver():
    # 200 m × 2 m sliver outside = 0.04 hm², narrower than 2 px at 2 m
    patch = shapely.box(0, 0, 200, 102)
    out = judge(_patches([patch]), _ranges([shapely.box(-10, 0, 210, 100)]), None, CONFIG, pixel_size_m=2)
    assert out.BYD[0] == codes.COMPLIANT


def test_rule2_overrun_with_earea_and_red_when_large_share_of_darea():
    patch = shapely.box(50, 0, 250, 100)  # 2 hm², 1.5 hm² outside
    out = judge(_patches([patch]), _ranges([shapely.box(0, 0, 100, 100)], darea=[1.0]), None, CONFIG, pixel_size_m=2)
    assert out.BYD[0] == codes.OVERRUN
    assert out.EAREA[0] == pytest.approx(1.5)
    assert out.X_COLOR[0] == codes.RED  # 1.5 hm² ≥ 30 % of DAREA 1 hm²


def test_rule3_unapproved_and_spoil():
    patches = _patches([shapely.box(1000, 0, 1100, 100), shapely.box(2000, 0, 2030, 30)], [codes.OTHER, codes.SPOIL])
    out = judge(patches, _ranges([shapely.box(0, 0, 100, 100)]), None, CONFIG, pixel_size_m=2)
    assert list(out.BYD) == [codes.UNAPPROVED, codes.UNAPPROVED_SPOIL]
    assert out.X_COLOR[0] == codes.RED  # 1 hm² ≥ 0.5 hm²
    assert out.X_COLOR[1] == codes.RED  # spoil outside every range


def test_rule4_site_change_near_idle_range():
    patches = _patches([shapely.box(300, 0, 380, 80)])  # 200 m from the idle range
    out = judge(patches, _ranges([shapely.box(0, 0, 100, 100)], names=["闲置项目"]), None, CONFIG, pixel_size_m=2)
    assert out.BYD[0] == codes.SITE_CHANGE and out.PRNM[0] == "闲置项目" and out.X_COLOR[0] == codes.YELLOW


def test_rule4_not_when_range_is_disturbed():
    patches = _patches([shapely.box(10, 10, 90, 90), shapely.box(300, 0, 380, 80)])
    out = judge(patches, _ranges([shapely.box(0, 0, 100, 100)]), None, CONFIG, pixel_size_m=2)
    assert list(out.BYD) == [codes.COMPLIANT, codes.UNAPPROVED]


def test_rule5_not_project_has_no_verdict():
    out = judge(_patches([shapely.box(1000, 0, 1100, 100)], [codes.NOT_PROJECT]), _ranges([]), None, CONFIG, pixel_size_m=2)
    assert out.BYD[0] == "" and out.X_COLOR[0] == codes.GREEN


def test_sensitive_area_makes_small_violation_red():
    patches = _patches([shapely.box(1000, 0, 1020, 20)])  # 0.04 hm²: yellow by size
    sens = gpd.GeoDataFrame({"NAME": ["大熊猫国家公园"], "KIND": ["国家公园"]}, geometry=[shapely.box(990, -10, 1050, 50)], crs=CRS)
    out = judge(patches, _ranges([]), sens, CONFIG, pixel_size_m=2)
    assert out.X_COLOR[0] == codes.RED and "大熊猫国家公园" in out.X_SENS[0]
    plain = judge(patches, _ranges([]), None, CONFIG, pixel_size_m=2)
    assert plain.X_COLOR[0] == codes.YELLOW


def test_zone_rules_override_colour_threshold():
    patch = _patches([shapely.box(1000, 0, 1060, 60)], zone="Z1")  # 0.36 hm²
    assert judge(patch, _ranges([]), None, CONFIG, pixel_size_m=2).X_COLOR[0] == codes.RED  # Z1: red from 0.3 hm²
    patch3 = _patches([shapely.box(1000, 0, 1060, 60)], zone="Z3")
    assert judge(patch3, _ranges([]), None, CONFIG, pixel_size_m=2).X_COLOR[0] == codes.YELLOW


@settings(max_examples=60, deadline=None)
@given(st.floats(-150, 150), st.floats(-150, 150), st.floats(20, 200), st.floats(20, 200))
def test_qarea_is_inside_area_plus_earea(dx, dy, w, h):
    patch = shapely.box(dx, dy, dx + w, dy + h)
    rng = shapely.box(0, 0, 100, 100)
    out = judge(_patches([patch]), _ranges([rng]), None, CONFIG, pixel_size_m=2)
    inside = patch.intersection(rng).area / 10_000
    if out.BYD[0] == codes.COMPLIANT:
        # only a sliver within the tolerance may lie outside
        assert out.QAREA[0] - inside <= max(0.04, 0.05 * out.QAREA[0]) + 1e-9 or out.X_RULE[0].endswith("宽度）")
    else:
        assert out.QAREA[0] == pytest.approx(inside + out.EAREA[0], abs=1e-4)


@settings(max_examples=40, deadline=None)
@given(st.lists(st.tuples(st.floats(-300, 300), st.floats(-300, 300), st.floats(10, 250), st.floats(10, 250)),
                min_size=1, max_size=6))
def test_earea_is_the_area_outside_the_union_of_all_ranges(boxes):
    """Overlapping ranges: EAREA of an overrun is area(P \\ union of every range)."""
    ranges = [shapely.box(x, y, x + w, y + h) for x, y, w, h in boxes]
    patches = [shapely.box(-200, -200, 200, 200), shapely.box(-50, -50, 50, 50), shapely.box(250, -300, 400, -150)]
    out = judge(_patches(patches), _ranges(ranges), None, CONFIG, pixel_size_m=2)
    union = shapely.union_all(ranges)
    for i, patch in enumerate(patches):
        outside = patch.difference(union).area / 10_000
        if out.BYD[i] == codes.OVERRUN:
            assert out.EAREA[i] == pytest.approx(outside, abs=1e-4)
        elif out.BYD[i] == codes.COMPLIANT:
            assert outside <= max(0.04, 0.05 * out.QAREA[i]) + 1e-9 or out.X_RULE[i].endswith("宽度）")
        else:
            assert not patch.intersection(union).area > 0


def test_project_summary_takes_worst_colour():
    patches = _patches([shapely.box(10, 10, 90, 90), shapely.box(50, 0, 250, 100)])
    ranges = _ranges([shapely.box(0, 0, 100, 100)], darea=[1.0])
    judged = judge(patches, ranges, None, CONFIG, pixel_size_m=2)
    summary = summarise_projects(ranges, judged)
    assert summary.X_N_PATCH[0] == 2 and summary.X_COLOR[0] == codes.RED
