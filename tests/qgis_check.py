"""Open an OUT.gpkg in real QGIS (PyQGIS) and check what supervisors will see.

Run by tests/test_qgis_client.py with Debian's /usr/bin/python3 (python3-qgis),
never imported by pytest:

    QT_QPA_PLATFORM=offscreen /usr/bin/python3 tests/qgis_check.py OUT.gpkg MAP.png

Checks that every map layer is valid with its default style (renderer type,
categories, labels, Chinese aliases, value-map drop-downs) applied from the
GeoPackage's layer_styles table, that the embedded project in qgis_projects loads
with every layer valid and suspected_violations on top, and that GDAL/QGIS raise no
warning about the GeoPackage itself; then renders the project's map to MAP.png.
Prints one JSON report on stdout; exit code 0 when every check passed, 1 otherwise.
"""

from __future__ import annotations

import json
import os
import sys

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from qgis.core import (  # noqa: E402
    Qgis,
    QgsApplication,
    QgsMapRendererParallelJob,
    QgsMapSettings,
    QgsProject,
    QgsRectangle,
    QgsVectorLayer,
)
from qgis.PyQt.QtCore import QSize  # noqa: E402
from qgis.PyQt.QtGui import QColor  # noqa: E402

EXPECTED = {
    "suspected_violations": ("categorizedSymbol", "X_COLOR", {"红", "黄", "绿"}),
    "disturbance_patches": ("categorizedSymbol", "QTYPE", {"弃土（渣）场", "取土（石）场", "其他扰动", "非生产建设项目"}),
    "projects": ("singleSymbol", None, None),
    "zones": ("categorizedSymbol", "ZONE_CODE", {"Z1", "Z2", "Z3", "Z4", "Z5"}),
}
ALIASES = {
    "suspected_violations": {"QDNM": "图斑编号", "QTYPE": "扰动类型", "BYD": "扰动合规性", "RST": "复核状态",
                             "X_COLOR": "风险等级", "EAREA": "超出防治责任范围面积(hm²)"},
    "disturbance_patches": {"QDNM": "图斑编号", "QAREA": "扰动面积(hm²)", "PRNM": "项目名称"},
    "projects": {"PRNM": "项目名称", "DPOZ": "建设单位"},
    "zones": {"ZONE_CODE": "分区代码", "ZONE_NAME": "分区名称"},
}
VALUE_MAPS = {
    "QTYPE": {"弃土（渣）场", "取土（石）场", "其他扰动", "非生产建设项目"},
    "BYD": {"合规", "疑似未批先建", "疑似超出防治责任范围", "疑似建设地点变更", "疑似未批先弃", "未批先建"},
    "QDCS": {"未开工", "停工", "施工", "完工", "已验收"},
    "QDTYPE": {"新增", "续建（范围扩大）", "完工"},
    "RST": {"未复核", "已复核", "无法核实"},
    "X_REASON": {"耕地翻耕", "云及阴影", "水位变化", "自然灾害", "其他"},
}
PROJECT_NAME = "swc-rs"


def value_map_values(layer, field: str) -> set[str]:
    setup = layer.editorWidgetSetup(layer.fields().indexOf(field))
    if setup.type() != "ValueMap":
        return set()
    entries = setup.config().get("map", [])
    if isinstance(entries, dict):
        return {str(v) for v in entries.values()}
    return {str(v) for entry in entries for v in entry.values()}


def check_layer(path: str, name: str, problems: list[str]) -> dict:
    layer = QgsVectorLayer(f"{path}|layername={name}", name, "ogr")
    report = {"valid": layer.isValid()}
    if not layer.isValid():
        problems.append(f"{name}: layer is not valid")
        return report
    report["features"] = layer.featureCount()
    renderer = layer.renderer()
    kind, attribute, categories = EXPECTED[name]
    report["renderer"] = renderer.type()
    if renderer.type() != kind:
        problems.append(f"{name}: renderer {renderer.type()} instead of {kind} (default style not applied?)")
    elif attribute:
        values = {str(c.value()) for c in renderer.categories()}
        report["categories"] = sorted(values)
        if renderer.classAttribute() != attribute or not categories <= values:
            problems.append(f"{name}: categories on {renderer.classAttribute()} {sorted(values)}")
    if name == "projects":
        report["labels"] = bool(layer.labelsEnabled())
        if not layer.labelsEnabled() or layer.labeling() is None:
            problems.append("projects: labels by PRNM not enabled")
        elif layer.labeling().settings().fieldName != "PRNM":
            problems.append(f"projects: labelled by {layer.labeling().settings().fieldName}")
    fields = layer.fields()
    aliases = {f.name(): layer.attributeAlias(i) for i, f in enumerate(fields)}
    for field, alias in ALIASES[name].items():
        if aliases.get(field) != alias:
            problems.append(f"{name}.{field}: alias {aliases.get(field)!r} instead of {alias!r}")
    report["aliases"] = {k: v for k, v in aliases.items() if v}
    if name in ("suspected_violations", "disturbance_patches"):
        for field, wanted in VALUE_MAPS.items():
            got = value_map_values(layer, field)
            if not wanted <= got:
                problems.append(f"{name}.{field}: value map {sorted(got)} lacks {sorted(wanted - got)}")
        report["value_maps"] = sorted(f for f in VALUE_MAPS if value_map_values(layer, f))
    return report


def render(project: QgsProject, png: str, problems: list[str]) -> dict:
    layers = project.layerTreeRoot().checkedLayers()
    vectors = [layer for layer in layers if isinstance(layer, QgsVectorLayer)]
    extent = QgsRectangle()
    for layer in vectors:
        if layer.featureCount():
            extent.combineExtentWith(layer.extent())
    if extent.isEmpty():
        extent = vectors[0].extent() if vectors else QgsRectangle(102.9, 29.9, 103.1, 30.1)
    extent.scale(1.08)
    settings = QgsMapSettings()
    settings.setLayers(layers)
    settings.setDestinationCrs(project.crs())
    settings.setExtent(extent)
    settings.setOutputSize(QSize(1400, 1100))
    settings.setBackgroundColor(QColor(255, 255, 255))
    settings.setFlag(QgsMapSettings.Antialiasing, True)
    settings.setFlag(QgsMapSettings.DrawLabeling, True)
    job = QgsMapRendererParallelJob(settings)
    job.start()
    job.waitForFinished()
    image = job.renderedImage()
    if image.isNull() or not image.save(png, "PNG"):
        problems.append(f"could not render the map to {png}")
    errors = [f"{e.layerID}: {e.message}" for e in job.errors()]
    problems.extend(f"rendering: {e}" for e in errors)
    return {"png": png, "layers": [layer.name() for layer in layers], "size": [image.width(), image.height()]}


def main(argv: list[str]) -> int:
    if len(argv) != 3:
        print(__doc__, file=sys.stderr)
        return 2
    path, png = os.path.abspath(argv[1]), os.path.abspath(argv[2])
    app = QgsApplication([], False)
    app.initQgis()
    messages: list[str] = []

    def collect(message, tag, level):
        if level >= Qgis.Warning:
            messages.append(f"[{tag}] {message}")

    QgsApplication.messageLog().messageReceived.connect(collect)
    problems: list[str] = []
    report: dict = {"qgis": Qgis.QGIS_VERSION, "layers": {}}
    for name in EXPECTED:
        report["layers"][name] = check_layer(path, name, problems)

    project = QgsProject.instance()
    uri = f"geopackage:{path}?projectName={PROJECT_NAME}"
    loaded = project.read(uri)
    report["project"] = {"uri": uri, "loaded": bool(loaded)}
    if not loaded:
        problems.append(f"the embedded project did not load: {project.error()}")
    else:
        layers = project.mapLayers().values()
        report["project"]["layers"] = sorted(layer.name() for layer in layers)
        report["project"]["invalid"] = [layer.name() for layer in layers if not layer.isValid()]
        problems.extend(f"project layer {n} is not valid" for n in report["project"]["invalid"])
        order = [node.layerId() for node in project.layerTreeRoot().findLayers()]
        report["project"]["order"] = order
        sources = {layer.id(): layer for layer in layers}
        vector_order = [sources[i].source().split("layername=")[-1] for i in order
                        if i in sources and isinstance(sources[i], QgsVectorLayer)]
        if vector_order[:4] != list(EXPECTED)[:2] + ["projects", "zones"]:
            problems.append(f"project layer order is {vector_order}")
        for layer in layers:
            if isinstance(layer, QgsVectorLayer) and layer.isValid():
                name = layer.source().split("layername=")[-1]
                if name in EXPECTED and layer.renderer().type() != EXPECTED[name][0]:
                    problems.append(f"project layer {name}: renderer {layer.renderer().type()}")
        report["render"] = render(project, png, problems)
    gpkg_words = ("geopackage", "gpkg", "user_version", "application_id", "layer_styles", "qgis_projects")
    report["messages"] = messages
    problems.extend(f"warning: {m}" for m in messages if any(w in m.lower() for w in gpkg_words))
    report["problems"] = problems
    print(json.dumps(report, ensure_ascii=False, indent=1))
    project.clear()
    app.exitQgis()
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
