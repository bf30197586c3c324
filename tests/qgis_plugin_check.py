"""The QGIS plugin in real QGIS (PyQGIS): installed from the built zip, its provider's
algorithms run swc-rs on the bundled sample.

Run by tests/test_qgis_plugin.py with Debian's /usr/bin/python3 (python3-qgis), never
imported by pytest:

    QT_QPA_PLATFORM=offscreen /usr/bin/python3 tests/qgis_plugin_check.py PLUGIN.zip SWC_RS WORK \
        [--erosion SCENE] [--batch CONFIG.toml] [--shots SHOTS]

PLUGIN.zip is unzipped into WORK's profile plugin folder and loaded as QGIS loads
plugins (qgis.utils.findPlugins, loadPlugin, startProcessingPlugin); SWC_RS is set as
the provider's swc-rs executable. Checks, each one a field of the JSON report on stdout:

* detect, run as the Processing dialog runs it (a QgsProcessingAlgRunnerTask, then
  handleAlgorithmResults), on data/sample_tiles writes the GeoPackage; progress reached
  the feedback; every map layer of the output is in the project, valid, with the
  renderer of its default style in layer_styles, in one group with suspected_violations
  on top;
* a bad input (projects.gpkg given as the zones) raises QgsProcessingException with
  swc-rs's own message (file, problem, fix) and no traceback; an unknown executable too;
* cancelling (from another thread, once progress arrived) stops the run and leaves
  nothing in the output's folder;
* report, export (the red patches only) and verify import on the detect output;
* SCENE given (tests/erosion_scene.py's files): erosion writes its GeoPackage and COGs,
  and its layers load, the vector ones with their default styles;
* CONFIG.toml given (tests/test_batch.py's drawn city): batch 202611 assembles the month
  and its layers load with their default styles;
* SHOTS given: the detect dialog (processing's AlgorithmDialog, filled with the sample
  layers) grabbed to SHOTS/plugin_dialog.png.

Exit code 0 when every check passed, 1 otherwise.
"""

from __future__ import annotations

import csv
import json
import os
import sqlite3
import sys
import threading
import time
import traceback
import xml.etree.ElementTree as ET
import zipfile
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
sys.path.append("/usr/share/qgis/python/plugins")

from qgis.core import (  # noqa: E402
    Qgis,
    QgsApplication,
    QgsProcessingException,
    QgsProcessingFeedback,
    QgsProject,
    QgsRasterLayer,
    QgsVectorLayer,
)

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "data" / "sample_tiles"
PLUGIN = "swc_rs_processing"


class Feedback(QgsProcessingFeedback):
    """Records what the Processing dialog would show."""

    def __init__(self):
        super().__init__()
        self.progress: list[float] = []
        self.texts: list[str] = []
        self.lines: list[str] = []
        self.progressChanged.connect(self.progress.append)

    def setProgressText(self, text):
        self.texts.append(text)
        super().setProgressText(text)

    def pushInfo(self, info):
        self.lines.append(info)

    def pushConsoleInfo(self, info):
        self.lines.append(info)

    def pushWarning(self, warning):
        self.lines.append("WARNING " + warning)

    def pushCommandInfo(self, info):
        self.lines.append("$ " + info)


def install(zip_path: Path, work: Path, executable: str, report: dict) -> None:
    import qgis.utils
    from processing.core.Processing import Processing
    from processing.core.ProcessingConfig import ProcessingConfig

    plugins = work / "profile" / "python" / "plugins"
    plugins.mkdir(parents=True)
    with zipfile.ZipFile(zip_path) as archive:
        archive.extractall(plugins)
    sys.path.insert(0, str(plugins))
    qgis.utils.plugin_paths.insert(0, str(plugins))
    found = dict(qgis.utils.findPlugins(str(plugins)))
    meta = found[PLUGIN]
    report["metadata"] = {k: meta.get("general", k) for k in
                          ("name", "qgisMinimumVersion", "qgisMaximumVersion", "hasProcessingProvider", "version")}
    Processing.initialize()
    assert qgis.utils.loadPlugin(PLUGIN), "loadPlugin failed"
    assert qgis.utils.startProcessingPlugin(PLUGIN), "startProcessingPlugin failed"
    provider = QgsApplication.processingRegistry().providerById("swcrs")
    report["provider"] = {"name": provider.name(), "algorithms": sorted(a.id() for a in provider.algorithms()),
                          "plugin_file": sys.modules[PLUGIN].__file__}
    help_texts = {a.id(): a.shortHelpString() for a in provider.algorithms()}
    report["help_bilingual"] = sorted(k for k, v in help_texts.items()
                                      if any("\u4e00" <= c <= "\u9fff" for c in v) and " the " in v)
    ProcessingConfig.setSettingValue("SWCRS_EXECUTABLE", executable)


def styles_in(gpkg: Path) -> dict[str, str]:
    """layer name → renderer type of its default style in layer_styles."""
    with sqlite3.connect(gpkg) as db:
        rows = db.execute("SELECT f_table_name, styleQML FROM layer_styles WHERE useAsDefault").fetchall()
    out = {}
    for name, qml in rows:
        renderer = ET.fromstring(qml).find("renderer-v2")
        out[name] = renderer.get("type") if renderer is not None else ""
    return out


def detect_params(output: Path, **more) -> dict:
    params = {"BEFORE": str(SAMPLE / "before.tif"), "AFTER": str(SAMPLE / "after.tif"),
              "ZONES": str(SAMPLE / "zones.gpkg"), "PROJECTS": str(SAMPLE / "projects.gpkg"),
              "SENSITIVE": [str(SAMPLE / "sensitive.gpkg")], "SENSOR": 0, "OUTPUT": str(output)}
    params.update(more)
    return params


def run_as_the_dialog_does(algorithm_id: str, params: dict, feedback: Feedback) -> dict:
    """What processing's AlgorithmDialog does on Run: the algorithm in a
    QgsProcessingAlgRunnerTask on the task manager's thread, then handleAlgorithmResults
    on the main thread (loads the layers into the project)."""
    from processing.gui.Postprocessing import handleAlgorithmResults
    from processing.tools import dataobjects
    from qgis.core import QgsProcessingAlgRunnerTask
    from qgis.PyQt.QtWidgets import QApplication

    algorithm = QgsApplication.processingRegistry().createAlgorithmById(algorithm_id)
    context = dataobjects.createContext(feedback)
    done: dict = {}
    task = QgsProcessingAlgRunnerTask(algorithm, params, context, feedback)
    task.executed.connect(lambda ok, results: done.update(ok=ok, results=results))
    QgsApplication.taskManager().addTask(task)
    deadline = time.monotonic() + 600
    while "ok" not in done and time.monotonic() < deadline:
        QApplication.processEvents()
        time.sleep(0.05)
    if not done.get("ok"):
        raise RuntimeError(f"{algorithm_id} failed in its task: {feedback.lines[-6:]}")
    handleAlgorithmResults(algorithm, context, feedback, False, params)
    return done["results"]


def check_detect(work: Path, report: dict, problems: list[str]) -> Path:
    output = work / "detect" / "monthly.gpkg"
    feedback = Feedback()
    results = run_as_the_dialog_does("swcrs:detect", detect_params(output, WINDOW_SIZE=512), feedback)
    project = QgsProject.instance()
    layers = {layer.name(): layer for layer in project.mapLayers().values()}
    wanted = styles_in(output)
    got = {}
    for name, layer in layers.items():
        got[name] = {"valid": layer.isValid(), "renderer": layer.renderer().type(),
                     "features": layer.featureCount(), "source": layer.source()}
    group = project.layerTreeRoot().findGroup(output.name)
    order = [child.name() for child in group.children()] if group is not None else []
    report["detect"] = {"results": {k: str(v) for k, v in results.items()}, "exists": output.exists(),
                        "progress": feedback.progress, "progress_texts": feedback.texts, "layers": got,
                        "default_styles": wanted, "group_order": order, "log_tail": feedback.lines[-8:]}
    if not output.exists():
        problems.append("detect: no output GeoPackage")
    if not feedback.progress or max(feedback.progress) < 100 or not any(0 < p < 100 for p in feedback.progress):
        problems.append(f"detect: progress {feedback.progress} did not go through the run to 100")
    spatial = {n for n in wanted if QgsVectorLayer(f"{output}|layername={n}", n, "ogr").isSpatial()}
    if set(got) != spatial:
        problems.append(f"detect: project layers {sorted(got)} instead of the styled map layers {sorted(spatial)}")
    for name, info in got.items():
        if not info["valid"]:
            problems.append(f"detect: layer {name} is not valid")
        if info["renderer"] != wanted.get(name):
            problems.append(f"detect: layer {name} renderer {info['renderer']} instead of {wanted.get(name)} (its default style)")
    if order[:1] != ["suspected_violations"] or sorted(order) != sorted(got):
        problems.append(f"detect: the output's group holds {order}")
    if "projects" in layers and not layers["projects"].labelsEnabled():
        problems.append("detect: projects has no labels (its default style labels PRNM)")
    return output


def expect_error(algorithm: str, params: dict, must: list[str], report_key: str, report: dict,
                 problems: list[str]) -> None:
    import processing

    try:
        processing.run(algorithm, params, feedback=Feedback())
    except QgsProcessingException as err:
        message = str(err)
    else:
        message = ""
        problems.append(f"{report_key}: no QgsProcessingException")
    report[report_key] = message
    for word in must:
        if word not in message:
            problems.append(f"{report_key}: {word!r} not in the message {message!r}")
    if "Traceback" in message or 'File "' in message:
        problems.append(f"{report_key}: a traceback in the message")


def check_bad_input(work: Path, report: dict, problems: list[str]) -> None:
    from processing.core.ProcessingConfig import ProcessingConfig

    output = work / "bad" / "bad.gpkg"
    expect_error("swcrs:detect", detect_params(output, ZONES=str(SAMPLE / "projects.gpkg")),
                 ["projects.gpkg", "no ZONE_CODE field", "Fix:"], "bad_input", report, problems)
    if output.exists():
        problems.append("bad input: an output was written")
    configured = ProcessingConfig.getSetting("SWCRS_EXECUTABLE")
    not_a_program = work / "not-swc-rs.txt"  # the settings dialog only takes existing files
    not_a_program.write_text("not a program")
    ProcessingConfig.setSettingValue("SWCRS_EXECUTABLE", str(not_a_program))
    try:
        expect_error("swcrs:report", {"INPUT": str(SAMPLE / "zones.gpkg"), "OUTPUT": str(work / "r.html")},
                     ["not-swc-rs.txt", "cannot be run", "Providers"], "missing_executable", report, problems)
    finally:
        ProcessingConfig.setSettingValue("SWCRS_EXECUTABLE", configured)


def check_cancel(work: Path, report: dict, problems: list[str]) -> None:
    import processing

    folder = work / "cancel"
    output = folder / "cancelled.gpkg"
    feedback = Feedback()
    timer: list[threading.Timer] = []

    def on_progress(value):
        if not timer:  # the run is in its windows: cancel from another thread, as the dialog's button does
            timer.append(threading.Timer(0.3, feedback.cancel))
            timer[0].start()

    feedback.progressChanged.connect(on_progress)
    started = time.monotonic()
    try:
        processing.run("swcrs:detect", detect_params(output, WINDOW_SIZE=128), feedback=feedback)
    except QgsProcessingException as err:
        message = str(err)
    else:
        message = ""
    left = sorted(p.name for p in folder.iterdir()) if folder.exists() else []
    report["cancel"] = {"message": message, "cancelled": feedback.isCanceled(), "progress": feedback.progress,
                        "left_in_folder": left, "seconds": round(time.monotonic() - started, 1),
                        "log_tail": feedback.lines[-4:]}
    if not feedback.isCanceled() or "Cancelled" not in message:
        problems.append(f"cancel: the run was not cancelled ({message!r})")
    if left:
        problems.append(f"cancel: left {left} in the output's folder")
    if feedback.progress and max(feedback.progress) >= 100:
        problems.append("cancel: the run finished before the cancel reached it")


def check_report_export_verify(output: Path, work: Path, report: dict, problems: list[str]) -> None:
    import processing

    html = work / "report" / "report.html"
    results = processing.run("swcrs:report", {"INPUT": str(output), "OUTPUT": str(html)}, feedback=Feedback())
    report["report"] = {"results": {k: str(v) for k, v in results.items()},
                        "bytes": html.stat().st_size if html.exists() else 0}
    if not html.exists() or "<html" not in html.read_text(encoding="utf-8")[:2000].lower():
        problems.append("report: no HTML report")

    red = work / "export" / "red.csv"
    kmz = work / "export" / "red.kmz"
    results = processing.run("swcrs:export", {"INPUT": str(output), "COLOURS": [0], "CSV": str(red), "KML": str(kmz)},
                             feedback=Feedback())
    rows = list(csv.DictReader(red.read_text(encoding="utf-8-sig").splitlines())) if red.exists() else []
    violations = QgsVectorLayer(f"{output}|layername=suspected_violations", "v", "ogr")
    reds = sorted(f["QDNM"] for f in violations.getFeatures() if f["X_COLOR"] == "红")
    report["export"] = {"rows": len(rows), "red_in_output": len(reds), "kmz": kmz.exists()}
    if sorted(r["QDNM"] for r in rows) != reds or not reds or not kmz.exists():
        problems.append(f"export: {len(rows)} CSV rows for {len(reds)} red patches, KMZ {kmz.exists()}")
    expect_error("swcrs:export", {"INPUT": str(output)}, ["KMZ/KML"], "export_nothing", report, problems)

    store = work / "verify" / "history.gpkg"
    field = QgsProject.instance().mapLayersByName("suspected_violations")[0]  # the loaded layer, as an analyst picks it
    feedback = Feedback()
    results = processing.run("swcrs:verify", {"FIELD": field, "STORE": str(store), "OUTPUTS": [str(output)]},
                             feedback=feedback)
    report["verify"] = {"results": {k: str(v) for k, v in results.items()}, "store": store.exists(),
                        "log": [line for line in feedback.lines if not line.startswith("$")][-4:]}
    if not store.exists() or not any(line.startswith("Updated") for line in feedback.lines):
        problems.append(f"verify: the store was not written ({feedback.lines[-4:]})")


def check_erosion(scene: Path, work: Path, report: dict, problems: list[str]) -> None:
    import processing

    output = work / "erosion" / "erosion.gpkg"
    params = {"DEM": str(scene / "dem.tif"), "ZONES": str(scene / "zones.gpkg"), "COUNTIES": str(scene / "counties.gpkg"),
              "IMAGERY": str(scene / "image.tif"), "LANDUSE": str(scene / "landuse.gpkg"),
              "CONFIG": str(scene / "erosion.toml"), "YEAR": "2026", "OUTPUT": str(output)}
    before = set(QgsProject.instance().mapLayers())
    processing.runAndLoadResults("swcrs:erosion", params, feedback=Feedback())
    new = [layer for key, layer in QgsProject.instance().mapLayers().items() if key not in before]
    wanted = styles_in(output) if output.exists() else {}
    got = {layer.name(): {"valid": layer.isValid(),
                          "renderer": layer.renderer().type() if isinstance(layer, QgsVectorLayer) else "raster"}
           for layer in new}
    report["erosion"] = {"exists": output.exists(), "layers": got, "default_styles": wanted,
                         "files": sorted(p.name for p in output.parent.iterdir()) if output.parent.exists() else []}
    if {"erosion_counties", "erosion_zones", "erosion_grade", "erosion_modulus"} != set(got):
        problems.append(f"erosion: loaded {sorted(got)}")
    for name, info in got.items():
        if not info["valid"] or (name in wanted and info["renderer"] != wanted[name]):
            problems.append(f"erosion: layer {name} {info} (default style {wanted.get(name)})")


def check_batch(config: Path, report: dict, problems: list[str]) -> None:
    import processing

    before = set(QgsProject.instance().mapLayers())
    feedback = Feedback()
    results = processing.runAndLoadResults("swcrs:batch", {"CONFIG": str(config), "PERIOD": "202611", "WORKERS": 1},
                                           feedback=feedback)
    month = Path(str(results.get("OUTPUT") or ""))
    new = [layer for key, layer in QgsProject.instance().mapLayers().items() if key not in before]
    wanted = styles_in(month) if month.is_file() else {}
    got = {layer.name(): {"valid": layer.isValid(), "renderer": layer.renderer().type()} for layer in new}
    report["batch"] = {"results": {k: str(v) for k, v in results.items()}, "layers": got, "default_styles": wanted,
                       "progress_texts": feedback.texts}
    if not month.is_file() or month.name != "swc_202611.gpkg":
        problems.append(f"batch: month output {month}")
    if not got or "suspected_violations" not in got:
        problems.append(f"batch: loaded {sorted(got)}")
    for name, info in got.items():
        if not info["valid"] or info["renderer"] != wanted.get(name):
            problems.append(f"batch: layer {name} {info} (default style {wanted.get(name)})")


def shoot_dialog(shots: Path, report: dict, problems: list[str]) -> None:
    from processing.gui.AlgorithmDialog import AlgorithmDialog
    from qgis.PyQt.QtWidgets import QApplication

    project = QgsProject.instance()
    before = QgsRasterLayer(str(SAMPLE / "before.tif"), "before 2026-10-12")
    after = QgsRasterLayer(str(SAMPLE / "after.tif"), "after 2026-11-14")
    zones = QgsVectorLayer(str(SAMPLE / "zones.gpkg"), "zones 水土保持分区", "ogr")
    projects = QgsVectorLayer(str(SAMPLE / "projects.gpkg"), "projects 防治责任范围", "ogr")
    sensitive = QgsVectorLayer(str(SAMPLE / "sensitive.gpkg"), "sensitive 敏感区", "ogr")
    for layer in (before, after, zones, projects, sensitive):
        project.addMapLayer(layer)
    algorithm = QgsApplication.processingRegistry().createAlgorithmById("swcrs:detect")
    dialog = AlgorithmDialog(algorithm)
    dialog.setParameters({"BEFORE": before, "AFTER": after, "ZONES": zones, "PROJECTS": projects,
                          "SENSITIVE": [sensitive], "SENSOR": 1, "PERIOD": "202611",
                          "OUTPUT": "/data/2026-11/swc_202611.gpkg"})
    dialog.show()
    dialog.resize(1100, 840)  # after show(): the dialog restores its last geometry when shown
    for _ in range(20):
        QApplication.processEvents()
        time.sleep(0.02)
    shots.mkdir(parents=True, exist_ok=True)
    png = shots / "plugin_dialog.png"
    from qgis.PyQt.QtCore import Qt
    from qgis.PyQt.QtGui import QImage

    # 256 colours, no dithering: flat widgets and text stay crisp, the file ~50 KB instead of ~220 KB
    image = dialog.grab().toImage().convertToFormat(QImage.Format_Indexed8, Qt.AvoidDither | Qt.ThresholdDither)
    ok = image.save(str(png), "PNG", 0)  # 0: the smallest file
    report["dialog"] = {"png": str(png), "size": [image.width(), image.height()],
                        "bytes": png.stat().st_size if ok else 0, "title": dialog.windowTitle()}
    if not ok:
        problems.append(f"dialog: could not write {png}")
    dialog.close()


def main(argv: list[str]) -> int:
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("plugin", type=Path)
    parser.add_argument("executable")
    parser.add_argument("work", type=Path)
    parser.add_argument("--erosion", type=Path, default=None)
    parser.add_argument("--batch", type=Path, default=None)
    parser.add_argument("--shots", type=Path, default=None)
    args = parser.parse_args(argv[1:])
    zip_path, executable, work = args.plugin.resolve(), args.executable, args.work.resolve()
    shots = args.shots.resolve() if args.shots else None
    app = QgsApplication([], True)
    app.initQgis()
    report: dict = {"qgis": Qgis.QGIS_VERSION}
    problems: list[str] = []
    steps = [("install", lambda: install(zip_path, work, executable, report))]
    output_box: list[Path] = []
    steps += [("detect", lambda: output_box.append(check_detect(work, report, problems))),
              ("bad_input", lambda: check_bad_input(work, report, problems)),
              ("cancel", lambda: check_cancel(work, report, problems)),
              ("report_export_verify", lambda: check_report_export_verify(output_box[0], work, report, problems))]
    if args.erosion is not None:
        steps.append(("erosion", lambda: check_erosion(args.erosion.resolve(), work, report, problems)))
    if args.batch is not None:
        steps.append(("batch", lambda: check_batch(args.batch.resolve(), report, problems)))
    if shots is not None:
        steps.append(("dialog", lambda: shoot_dialog(shots, report, problems)))
    for name, step in steps:
        try:
            step()
        except Exception:  # noqa: BLE001 - reported, and the check fails
            problems.append(f"{name}: {traceback.format_exc()}")
            if name in ("install", "detect"):
                break
    report["problems"] = problems
    print(json.dumps(report, ensure_ascii=False, indent=1, default=str))
    QgsProject.instance().clear()
    app.exitQgis()
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
