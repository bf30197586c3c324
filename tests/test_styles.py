"""Styles, aliases, value maps and the QGIS project inside OUT.gpkg (checked with sqlite3)."""

import sqlite3
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from click.testing import CliRunner

from swc_rs import codes
from swc_rs.cli.main import cli
from swc_rs.export.project import PROJECT_NAME, read_qgs
from swc_rs.export.styles import DETECT_LAYERS, GPKG_APPLICATION_ID, GPKG_USER_VERSION, layer_qml
from tests.conftest import make_scene

#: One square inside the project's range (合规), one outside every range (疑似未批先建).
SQUARES = ((40, 40, 30), (105, 105, 30))


def detect_output(folder: Path) -> Path:
    scene = make_scene(folder, squares=SQUARES)
    output = folder / "out.gpkg"
    args = ["detect", str(scene.before), str(scene.after), "--zones", str(scene.zones),
            "--projects", str(scene.projects), "-o", str(output), "--rules", "-q", "--workers", "1"]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    return output


@pytest.fixture(scope="module")
def output(tmp_path_factory) -> Path:
    return detect_output(tmp_path_factory.mktemp("styles"))


def query(path, sql, *args):
    con = sqlite3.connect(path)
    try:
        return con.execute(sql, args).fetchall()
    finally:
        con.close()


def styles(path) -> dict[str, ET.Element]:
    rows = query(path, "SELECT f_table_name, f_geometry_column, styleQML, useAsDefault FROM layer_styles")
    geoms = dict(query(path, "SELECT table_name, column_name FROM gpkg_geometry_columns"))
    assert sorted(r[0] for r in rows) == sorted(DETECT_LAYERS)  # one style per layer
    for name, geometry, _, default in rows:
        assert geometry == geoms[name] and default == 1
    return {name: ET.fromstring(qml) for name, _, qml, _ in rows}


def categories(qml: ET.Element) -> tuple[str, set[str]]:
    renderer = qml.find("renderer-v2")
    return renderer.get("attr"), {c.get("value") for c in renderer.iter("category")}


def value_map(qml: ET.Element, field: str) -> list[str]:
    for node in qml.iter("field"):
        if node.get("name") == field and node.find("editWidget") is not None:
            widget = node.find("editWidget")
            if widget.get("type") != "ValueMap":
                return []
            return [o.get("value") for o in widget.iter("Option") if o.get("type") == "QString"]
    return []


def aliases(qml: ET.Element) -> dict[str, str]:
    return {a.get("field"): a.get("name") for a in qml.iter("alias")}


def test_geopackage_is_version_1_3(output):
    assert query(output, "PRAGMA application_id")[0][0] == GPKG_APPLICATION_ID == 0x47504B47
    assert query(output, "PRAGMA user_version")[0][0] == GPKG_USER_VERSION == 10300
    # the style and chip tables are declared, so GDAL and QGIS list them
    declared = {r[0] for r in query(output, "SELECT table_name FROM gpkg_contents WHERE data_type = 'attributes'")}
    assert {"layer_styles", "chips", "run_info"} <= declared


def test_renderers(output):
    qml = styles(output)
    assert qml["suspected_violations"].find("renderer-v2").get("type") == "categorizedSymbol"
    assert categories(qml["suspected_violations"]) == ("X_COLOR", set(codes.COLOURS))
    assert categories(qml["disturbance_patches"]) == ("QTYPE", set(codes.QTYPES))
    attr, zones = categories(qml["zones"])
    assert attr == "ZONE_CODE" and {"Z1", "Z2", "Z3", "Z4", "Z5"} <= zones
    projects = qml["projects"]
    assert projects.find("renderer-v2").get("type") == "singleSymbol"
    assert projects.get("labelsEnabled") == "1"
    assert projects.find("labeling/settings/text-style").get("fieldName") == "PRNM"
    # outlines only: the project fill has no brush
    fill = {p.get("k"): p.get("v") for p in projects.iter("prop")}
    assert fill["style"] == "no"
    red = {p.get("k"): p.get("v") for p in qml["suspected_violations"].find("renderer-v2/symbols/symbol").iter("prop")}
    assert red["color"].startswith("227,26,28")


def test_aliases(output):
    qml = styles(output)
    patch = aliases(qml["suspected_violations"])
    assert patch["QDNM"] == "图斑编号" and patch["QTYPE"] == "扰动类型"
    assert patch["QAREA"] == "扰动面积(hm²)" and patch["EAREA"] == "超出防治责任范围面积(hm²)"
    assert patch["QDCS"] == "建设状态" and patch["QDTYPE"] == "扰动变化类型" and patch["BYD"] == "扰动合规性"
    assert patch["PRNM"] == "项目名称" and patch["RST"] == "复核状态" and patch["NOTE"] == "备注"
    assert patch["X_COLOR"] == "风险等级"
    assert aliases(qml["disturbance_patches"]) == patch
    assert aliases(qml["projects"])["DPOZ"] == "建设单位"
    assert aliases(qml["zones"])["ZONE_CODE"] == "分区代码"


@pytest.mark.parametrize("layer", ["suspected_violations", "disturbance_patches"])
def test_value_maps(output, layer):
    qml = styles(output)[layer]
    assert value_map(qml, "QTYPE") == list(codes.QTYPES)
    byd = value_map(qml, "BYD")
    assert set(codes.BYD_DESK) <= set(byd) and set(codes.BYD_FIELD) <= set(byd)  # desk and field verdicts
    assert set(codes.QDCS) <= set(value_map(qml, "QDCS"))
    assert set(codes.QDTYPE) <= set(value_map(qml, "QDTYPE"))
    assert value_map(qml, "RST") == list(codes.RST)
    assert set(codes.X_REASON) <= set(value_map(qml, "X_REASON"))
    editable = {f.get("name"): f.get("editable") for f in qml.find("editable")}
    assert editable["QDNM"] == "0" and editable["RST"] == "1"


def test_embedded_project(output):
    rows = query(output, "SELECT name, metadata, content FROM qgis_projects")
    assert len(rows) == 1 and rows[0][0] == PROJECT_NAME
    qgs = ET.fromstring(read_qgs(rows[0][2]))
    assert qgs.tag == "qgis" and qgs.find("projectCrs/spatialrefsys/authid").text == "EPSG:4490"
    sources = [layer.findtext("datasource") for layer in qgs.iter("maplayer")]
    vectors = [s for s in sources if "|layername=" in s]
    assert vectors == [f"./{output.name}|layername={name}" for name in DETECT_LAYERS]
    rasters = [Path(s) for s in sources if "|layername=" not in s]
    assert len(rasters) == 2 and all(p.is_absolute() and p.exists() for p in rasters)
    assert {p.name for p in rasters} == {"before.tif", "after.tif"}
    tree = [node.get("id") for node in qgs.iter("layer-tree-layer")]
    assert tree[:4] == [f"{name}_swc_rs" for name in DETECT_LAYERS]  # suspected violations on top
    for layer in qgs.iter("maplayer"):
        if layer.get("type") == "raster":
            renderer = layer.find("pipe/rasterrenderer")
            assert (renderer.get("redBand"), renderer.get("greenBand"), renderer.get("blueBand")) == ("3", "2", "1")


def test_layer_qml_without_data():
    qml = ET.fromstring(layer_qml("suspected_violations", ["QDNM", "X_COLOR", "RST"]))
    assert [a.get("field") for a in qml.iter("alias")] == ["QDNM", "X_COLOR", "RST"]
    assert qml.get("version").startswith("3.22")


def test_missing_images_leave_out_rasters_and_chips(output, tmp_path, caplog):
    import shutil
    from types import SimpleNamespace

    import geopandas as gpd

    from swc_rs.export.chips import write_chips
    from swc_rs.export.project import project_images
    from swc_rs.export.styles import write_styles

    assert project_images({"before": str(tmp_path / "gone.tif"), "after": str(tmp_path / "gone2.tif")}) == []
    copy = tmp_path / "copy.gpkg"
    shutil.copy(output, copy)
    violations = gpd.read_file(output, layer="suspected_violations")
    result = SimpleNamespace(violations=violations, run_info={"before": str(tmp_path / "gone.tif"),
                                                              "after": str(tmp_path / "gone2.tif")})
    assert write_chips(copy, result) == 0
    assert write_styles(copy, images=False) == list(DETECT_LAYERS)
    qgs = ET.fromstring(read_qgs(query(copy, "SELECT content FROM qgis_projects")[0][0]))
    assert [m.get("type") for m in qgs.iter("maplayer")] == ["vector"] * 4
    assert len(query(copy, "SELECT * FROM layer_styles")) == 4  # rewritten, not duplicated
