"""`detect --landuse`: the land survey's classes in typing and colouring."""

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import shapely
from click.testing import CliRunner

from swc_rs import codes
from swc_rs import landuse as L
from swc_rs.cli.main import cli
from swc_rs.config import LanduseConfig
from tests.conftest import X0, Y0, make_scene


def test_second_level_names_and_codes_fold_to_first_level():
    values = pd.Series(["水田", "0103", "乔木林地", "0301", "果园", "0601", "建设用地", " 旱地 "])
    assert list(L.first_level(values)) == ["耕地", "耕地", "林地", "林地", "园地", "工矿仓储用地", "建设用地", "耕地"]


def test_dominant_class_and_its_share():
    patches = gpd.GeoDataFrame(geometry=[shapely.box(0, 0, 10, 10), shapely.box(100, 100, 110, 110)], crs="EPSG:4543")
    land = gpd.GeoDataFrame({"CLASS": ["耕地", "林地", "耕地"]},
                            geometry=[shapely.box(0, 0, 7, 10), shapely.box(7, 0, 10, 10), shapely.box(-5, -5, 0, 0)],
                            crs="EPSG:4543")
    classes, shares = L.dominant_classes(patches, land)
    assert list(classes) == ["耕地", ""]
    assert shares[0] == pytest.approx(0.7) and shares[1] == 0


def frame(qtype, conf):
    return gpd.GeoDataFrame({"QTYPE": qtype, "X_CONF": conf, "NOTE": [""] * len(qtype)},
                            geometry=[shapely.box(i, 0, i + 1, 1) for i in range(len(qtype))], crs="EPSG:4543")


def test_only_unsure_other_disturbance_on_farmland_is_retyped():
    config = LanduseConfig()
    f = frame([codes.OTHER, codes.OTHER, codes.SPOIL, codes.OTHER, codes.OTHER], [0.6, 0.95, 0.5, 0.6, 0.6])
    classes = np.array(["耕地", "耕地", "耕地", "耕地", "林地"], dtype=object)
    shares = np.array([0.9, 0.9, 0.9, 0.5, 0.9])
    out = L.apply_typing(f, classes, shares, config)
    assert list(out.QTYPE) == [codes.NOT_PROJECT, codes.OTHER, codes.SPOIL, codes.OTHER, codes.OTHER]
    assert "疑似耕作" in out.NOTE[0] and "地类：林地 90%" in out.NOTE[4]
    assert list(L.protected(classes, shares, config)) == [False, False, False, False, True]
    strict = LanduseConfig(farming_max_confidence=0.99)
    assert L.apply_typing(f, classes, shares, strict).QTYPE[1] == codes.NOT_PROJECT


@pytest.fixture
def unapproved(tmp_path):
    """A bare square in AFTER with no approved project anywhere near: 疑似未批先建."""
    far = gpd.GeoDataFrame({"PRNM": ["远处项目"], "DPOZ": ["某单位"], "DAREA": [0.1]},
                           geometry=[shapely.box(X0 + 20_000, Y0 - 20_060, X0 + 20_060, Y0 - 20_000)], crs="EPSG:32648")
    return make_scene(tmp_path, projects=far)


def landuse_layer(path, name, field="DLMC", crs="EPSG:4490"):
    cover = shapely.box(X0 - 50, Y0 - 400, X0 + 400, Y0 + 50)
    gpd.GeoDataFrame({field: [name]}, geometry=[cover], crs="EPSG:32648").to_crs(crs).to_file(path, layer="DLTB")
    return path


def run(scene, *extra):
    out = scene.folder / "out.gpkg"
    args = ["detect", str(scene.before), str(scene.after), "--zones", str(scene.zones),
            "--projects", str(scene.projects), "-o", str(out), "--rules", "--overwrite", *map(str, extra)]
    result = CliRunner().invoke(cli, args)
    return result, out


def test_forest_land_makes_a_suspected_violation_red(unapproved):
    result, out = run(unapproved)
    assert result.exit_code == 0, result.output
    plain = gpd.read_file(out, layer="suspected_violations")
    assert len(plain) == 1 and plain.BYD[0] == codes.UNAPPROVED and plain.X_COLOR[0] != codes.RED
    result, out = run(unapproved, "--landuse", landuse_layer(unapproved.folder / "dltb.gpkg", "乔木林地"))
    assert result.exit_code == 0, result.output
    red = gpd.read_file(out, layer="suspected_violations")
    assert len(red) == 1 and red.X_COLOR[0] == codes.RED and "保护地类" in red.X_RULE[0]
    assert "地类：林地 100%" in red.NOTE[0]


def test_unsure_patch_on_farmland_leaves_the_field_list(unapproved, tmp_path):
    config = tmp_path / "run.toml"
    config.write_text("[landuse]\nfarming_max_confidence = 1.01\n", encoding="utf-8")  # every patch counts as unsure
    layer = landuse_layer(unapproved.folder / "dltb.gpkg", "0103", field="DLBM", crs="EPSG:4543")
    result, out = run(unapproved, "--landuse", layer, "--config", config)
    assert result.exit_code == 0, result.output
    patches = gpd.read_file(out, layer="disturbance_patches")
    assert list(patches.QTYPE) == [codes.NOT_PROJECT] and "疑似耕作" in patches.NOTE[0]
    assert len(gpd.read_file(out, layer="suspected_violations")) == 0


def test_landuse_without_class_field_is_bad_input(unapproved):
    layer = landuse_layer(unapproved.folder / "dltb.gpkg", "耕地", field="NAME")
    result, out = run(unapproved, "--landuse", layer)
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output and "dltb.gpkg" in result.output and "DLMC or DLBM" in result.output
    assert not out.exists()
