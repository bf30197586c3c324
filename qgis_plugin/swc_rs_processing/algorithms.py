"""The swc-rs Processing algorithms: each builds the command line of one swc-rs command
from typed parameters, runs it (runner.run) and opens what it wrote in the project."""

from __future__ import annotations

import json
import os
from pathlib import Path

from qgis.core import (
    QgsProcessing,
    QgsProcessingAlgorithm,
    QgsProcessingContext,
    QgsProcessingException,
    QgsProcessingLayerPostProcessorInterface,
    QgsProcessingOutputFile,
    QgsProcessingOutputString,
    QgsProcessingParameterBoolean,
    QgsProcessingParameterDefinition,
    QgsProcessingParameterEnum,
    QgsProcessingParameterFile,
    QgsProcessingParameterFileDestination,
    QgsProcessingParameterFolderDestination,
    QgsProcessingParameterMapLayer,
    QgsProcessingParameterMultipleLayers,
    QgsProcessingParameterNumber,
    QgsProcessingParameterRasterLayer,
    QgsProcessingParameterString,
    QgsProcessingParameterVectorLayer,
    QgsProcessingUtils,
    QgsProject,
    QgsProviderRegistry,
    QgsRasterLayer,
    QgsVectorFileWriter,
    QgsVectorLayer,
)
from qgis.PyQt.QtCore import QCoreApplication

from . import runner

SENSORS = ["auto", "gf", "s2", "landsat", "rgb"]
SENSOR_NAMES = ["自动（读波段描述）auto", "高分 GF (gf)", "哨兵-2 Sentinel-2 (s2)", "Landsat (landsat)", "RGB 三波段 (rgb)"]
COLOURS = ["红", "黄", "绿"]
COLOUR_NAMES = ["红 red", "黄 yellow", "绿 green"]
#: Where the layers of an output go in the group made for it, top first.
LAYER_ORDER = ("suspected_violations", "finished_patches", "disturbance_patches", "projects", "zones",
               "erosion_counties", "erosion_zones", "erosion_grade", "erosion_modulus")
POLYGONS = [QgsProcessing.TypeVectorPolygon]
#: Post-processors must outlive the algorithm run that made them (until the layers load).
_KEEP: dict[str, QgsProcessingLayerPostProcessorInterface] = {}


def _flag(name: str):
    """A parameter flag (Advanced, Optional) by its QGIS ≥ 3.36 name, else the 3.22 one."""
    try:
        from qgis.core import Qgis

        return getattr(Qgis.ProcessingParameterFlag, name)
    except AttributeError:
        return getattr(QgsProcessingParameterDefinition, f"Flag{name}")


def _advanced(param: QgsProcessingParameterDefinition) -> QgsProcessingParameterDefinition:
    param.setFlags(param.flags() | _flag("Advanced"))
    return param


def _optional(param: QgsProcessingParameterDefinition) -> bool:
    return bool(param.flags() & _flag("Optional"))


def _help(zh: str, en: str, example: str = "") -> str:
    text = f"<p>{zh}</p><p><i>{en}</i></p>"
    if example:
        text += f"<p>命令行 Command line:<br><code>{example}</code></p>"
    return text


class GroupPlacer(QgsProcessingLayerPostProcessorInterface):
    """On the main thread, after a layer of the output is in the project: its default
    style (layer_styles of the GeoPackage) applied again, and the layer moved into one
    group named after the output, in LAYER_ORDER."""

    def __init__(self, group: dict, name: str):
        super().__init__()
        self.group = group
        self.name = name

    def postProcessLayer(self, layer, context, feedback):
        _KEEP.pop(layer.id(), None)
        if isinstance(layer, QgsVectorLayer):
            layer.loadDefaultStyle()  # a Processing "default style" setting must not replace the layer's own
            layer.triggerRepaint()
        project = context.project() or QgsProject.instance()
        root = project.layerTreeRoot()
        node = root.findLayer(layer.id())
        if node is None:
            return
        group = self.group.get("node")
        if group is None:  # the run's first layer: a new group on top (an earlier run's keeps its own)
            group = root.insertGroup(0, self.group["title"])
            self.group["node"] = group
        rank = _rank(self.name)
        position = sum(1 for child in group.children() if _rank(getattr(child, "name", lambda: "")()) <= rank)
        clone = node.clone()
        group.insertChildNode(position, clone)
        node.parent().removeChildNode(node)


def _rank(name: str) -> int:
    return LAYER_ORDER.index(name) if name in LAYER_ORDER else len(LAYER_ORDER)


class SwcRsAlgorithm(QgsProcessingAlgorithm):
    """One swc-rs command. Subclasses define NAME, TITLE, HELP, ``initAlgorithm`` and
    ``arguments`` (the command line after ``swc-rs``, the outputs it writes)."""

    NAME = ""
    TITLE = ""
    GROUP = ("monthly", "月度监管 Monthly supervision")
    HELP = ""
    #: Exit codes that still mean a result (batch: 4, finished but some tiles failed).
    OK_CODES = (0,)

    def createInstance(self):
        return type(self)()

    def name(self):
        return self.NAME

    def displayName(self):
        return self.TITLE

    def group(self):
        return self.GROUP[1]

    def groupId(self):
        return self.GROUP[0]

    def shortHelpString(self):
        return self.HELP

    def tr(self, text):
        return QCoreApplication.translate("swcrs", text)

    # --- running ---------------------------------------------------------------------

    def arguments(self, parameters, context, feedback) -> tuple[list[str], list[str]]:
        raise NotImplementedError

    def processAlgorithm(self, parameters, context, feedback):
        from .provider import executable_setting

        try:
            executable = runner.find_executable(executable_setting())
        except runner.SwcRsError as err:
            raise QgsProcessingException(str(err)) from None
        args, outputs = self.arguments(parameters, context, feedback)
        argv = [executable, *args]
        feedback.pushCommandInfo(" ".join(_quote(a) for a in argv))
        for output in outputs:
            if output:
                Path(output).parent.mkdir(parents=True, exist_ok=True)
        try:
            stdout = runner.run(argv, feedback, outputs=outputs, ok_codes=self.OK_CODES)
        except runner.SwcRsError as err:
            raise QgsProcessingException(str(err)) from None
        return self.finish(parameters, context, feedback, stdout)

    def finish(self, parameters, context, feedback, stdout) -> dict:
        return {}

    # --- parameters to arguments -----------------------------------------------------

    def raster_path(self, parameters, name, context) -> str | None:
        layer = self.parameterAsRasterLayer(parameters, name, context)
        if layer is None:
            if _optional(self.parameterDefinition(name)):
                return None
            raise QgsProcessingException(f"{self.parameterDefinition(name).description()}: no raster layer given")
        return self._raster_source(layer, name)

    def _raster_source(self, layer, name) -> str:
        path = QgsProviderRegistry.instance().decodeUri(layer.providerType(), layer.source()).get("path") or ""
        if layer.providerType() != "gdal" or not os.path.isfile(path):
            raise QgsProcessingException(
                f"{layer.name()} ({self.parameterDefinition(name).description()}): not a raster file swc-rs can read "
                f"({layer.source()}). Fix: save it as a GeoTIFF (右键 → 导出 → 另存为 Export → Save As) and choose that file.")
        return path

    def vector_path(self, parameters, name, context, feedback) -> str | None:
        layer = self.parameterAsVectorLayer(parameters, name, context)
        if layer is None:
            if _optional(self.parameterDefinition(name)):
                return None
            raise QgsProcessingException(f"{self.parameterDefinition(name).description()}: no vector layer given")
        return self._vector_source(layer, name, context, feedback)[0]

    def _vector_source(self, layer, name, context, feedback, keep_layer_name=False) -> tuple[str, str]:
        """(path, layer name) of a vector layer as swc-rs reads it: the file itself when
        swc-rs would read that layer (its first, or the named one with ``keep_layer_name``),
        else a GeoPackage copy (a layer of a multi-layer file, a filter, a memory layer)."""
        parts = QgsProviderRegistry.instance().decodeUri(layer.providerType(), layer.source())
        path = parts.get("path") or ""
        layer_name = str(parts.get("layerName") or "")
        if layer.providerType() == "ogr" and os.path.isfile(path) and not layer.subsetString():
            if keep_layer_name or not layer_name:
                return path, layer_name
            first = QgsVectorLayer(path, "probe", "ogr").dataProvider().subLayers()
            if first and first[0].split("!!::!!")[1] == layer_name:
                return path, layer_name
        copy = QgsProcessingUtils.generateTempFilename(f"{name.lower()}.gpkg")
        options = QgsVectorFileWriter.SaveVectorOptions()
        options.driverName = "GPKG"
        options.layerName = layer_name or name.lower()
        options.fileEncoding = "UTF-8"
        writer = getattr(QgsVectorFileWriter, "writeAsVectorFormatV3", None)
        if writer is not None:
            result = writer(layer, copy, context.transformContext(), options)
        else:
            result = QgsVectorFileWriter.writeAsVectorFormatV2(layer, copy, context.transformContext(), options)
        if result[0] != QgsVectorFileWriter.NoError:
            raise QgsProcessingException(f"{layer.name()}: could not be copied for swc-rs ({result[1]}). "
                                         "Fix: save the layer as a GeoPackage and choose that file.")
        feedback.pushInfo(f"{layer.name()} → {copy}")
        return copy, options.layerName

    def multiple_vector_paths(self, parameters, name, context, feedback) -> list[str]:
        layers = self.parameterAsLayerList(parameters, name, context) or []
        return [self._vector_source(layer, name, context, feedback)[0] for layer in layers]

    def file_value(self, parameters, name, context) -> str:
        return (self.parameterAsFile(parameters, name, context) or "").strip()

    def string_value(self, parameters, name, context) -> str:
        return (self.parameterAsString(parameters, name, context) or "").strip()

    # --- loading outputs ---------------------------------------------------------------

    def load_outputs(self, context, feedback, gpkg: str, rasters=()) -> list[str]:
        """Every map layer of ``gpkg`` (with its default style from layer_styles) and the
        ``rasters``, loaded into the project when the algorithm completes, in one group."""
        probe = QgsVectorLayer(gpkg, "probe", "ogr")
        names = [entry.split("!!::!!")[1] for entry in probe.dataProvider().subLayers()] if probe.isValid() else []
        group = {"title": Path(gpkg).name}
        loaded = []
        for layer_name in names:
            layer = QgsVectorLayer(f"{gpkg}|layername={layer_name}", layer_name, "ogr")
            if not layer.isValid() or not layer.isSpatial():
                continue  # run_info, patch_features, chips: tables, no map layers
            loaded.append(self._to_load(layer, layer_name, group, context))
        for raster in rasters:
            if os.path.isfile(raster):
                stem = Path(raster).stem
                name = "erosion_" + stem.rsplit("_", 1)[-1]
                layer = QgsRasterLayer(raster, name, "gdal")
                if layer.isValid():
                    loaded.append(self._to_load(layer, name, group, context))
        feedback.pushInfo(f"{len(loaded)} 个图层将载入项目 layer(s) to load: {', '.join(n for n in loaded)}")
        return loaded

    def _to_load(self, layer, name, group, context) -> str:
        context.temporaryLayerStore().addMapLayer(layer)
        details = QgsProcessingContext.LayerDetails(name, context.project() or QgsProject.instance(), "OUTPUT")
        placer = GroupPlacer(group, name)
        _KEEP[layer.id()] = placer
        details.setPostProcessor(placer)
        context.addLayerToLoadOnCompletion(layer.id(), details)
        return name


def _quote(arg: str) -> str:
    return f'"{arg}"' if (" " in arg or not arg) else arg


def _bool(alg, parameters, name, context) -> bool:
    return bool(alg.parameterAsBoolean(parameters, name, context))


class DetectAlgorithm(SwcRsAlgorithm):
    NAME = "detect"
    TITLE = "检测扰动图斑 Detect disturbance patches (detect)"
    HELP = _help(
        "比较前后两期影像，提取扰动图斑，并与防治责任范围、水土保持分区和敏感区比对，判定合规性（BYD）和风险等级（红/黄/绿），"
        "输出供复核的 GeoPackage（disturbance_patches、suspected_violations、projects、zones、run_info，带默认样式）。"
        "完成后各图层载入当前项目。后时相影像会对齐到前时相的网格。",
        "Find disturbance patches between the BEFORE and AFTER images and judge them against the approved "
        "responsibility ranges, the SWC zones and the sensitive areas. Writes the field-verification GeoPackage "
        "(with its QGIS styles); its layers open in the current project.",
        "swc-rs detect before.tif after.tif --zones zones.gpkg --projects projects.gpkg -o out.gpkg")

    def initAlgorithm(self, config=None):
        self.addParameter(QgsProcessingParameterRasterLayer("BEFORE", "前时相影像 BEFORE image"))
        self.addParameter(QgsProcessingParameterRasterLayer("AFTER", "后时相影像 AFTER image"))
        self.addParameter(QgsProcessingParameterVectorLayer("ZONES", "水土保持分区 SWC zones (ZONE_CODE Z1–Z5)", POLYGONS))
        self.addParameter(QgsProcessingParameterVectorLayer(
            "PROJECTS", "防治责任范围 Approved responsibility ranges (PRNM, DPOZ …)", POLYGONS))
        self.addParameter(QgsProcessingParameterMultipleLayers(
            "SENSITIVE", "敏感区（生态红线、自然保护地、水源地）Sensitive areas", QgsProcessing.TypeVectorPolygon, optional=True))
        self.addParameter(QgsProcessingParameterEnum("SENSOR", "传感器波段布局 Sensor band layout", SENSOR_NAMES,
                                                     defaultValue=0))
        self.addParameter(QgsProcessingParameterVectorLayer(
            "LANDUSE", "三调地类图斑 Land survey (DLTB, DLMC/DLBM)", POLYGONS, optional=True))
        self.addParameter(QgsProcessingParameterString("PERIOD", "监测期 Period YYYYMM（默认：后时相日期 default: AFTER's date）",
                                                       optional=True))
        self.addParameter(_advanced(QgsProcessingParameterFile(
            "CONFIG", "运行配置 Run configuration (pipelines/*.toml)", fileFilter="TOML (*.toml)", optional=True)))
        self.addParameter(_advanced(QgsProcessingParameterString(
            "BANDS", "波段角色 Band roles, e.g. blue=1,green=2,red=3,nir=4", optional=True)))
        self.addParameter(_advanced(QgsProcessingParameterFile(
            "PREVIOUS", "上期输出 Last period's output (QDNM, QDTYPE)", fileFilter="GeoPackage (*.gpkg)", optional=True)))
        self.addParameter(_advanced(QgsProcessingParameterString(
            "HISTORY", "历史库 History store (HISTORY.gpkg or postgresql://…)", optional=True)))
        self.addParameter(_advanced(QgsProcessingParameterBoolean(
            "RULES", "使用规则而非学习模型 Rules instead of the learned models", defaultValue=False)))
        self.addParameter(_advanced(QgsProcessingParameterNumber(
            "WINDOW_SIZE", "处理窗口边长（像素，0 = 配置默认）Window side in pixels (0: the configuration's)",
            QgsProcessingParameterNumber.Integer, defaultValue=0, minValue=0, maxValue=16384)))
        self.addParameter(_advanced(QgsProcessingParameterNumber(
            "WORKERS", "使用的核数（0 = 全部）Cores (0: all)", QgsProcessingParameterNumber.Integer,
            defaultValue=0, minValue=0, maxValue=256)))
        self.addParameter(QgsProcessingParameterBoolean("OVERWRITE", "替换已有输出 Replace existing outputs",
                                                        defaultValue=False))
        self.addParameter(QgsProcessingParameterFileDestination("OUTPUT", "输出 GeoPackage Output",
                                                                "GeoPackage (*.gpkg)"))

    def arguments(self, parameters, context, feedback):
        output = self.parameterAsFileOutput(parameters, "OUTPUT", context)
        args = ["detect", self.raster_path(parameters, "BEFORE", context), self.raster_path(parameters, "AFTER", context),
                "--zones", self.vector_path(parameters, "ZONES", context, feedback),
                "--projects", self.vector_path(parameters, "PROJECTS", context, feedback),
                "-o", output, "--sensor", SENSORS[self.parameterAsEnum(parameters, "SENSOR", context)]]
        for path in self.multiple_vector_paths(parameters, "SENSITIVE", context, feedback):
            args += ["--sensitive", path]
        landuse = self.vector_path(parameters, "LANDUSE", context, feedback)
        if landuse:
            args += ["--landuse", landuse]
        for name, flag in (("PERIOD", "--period"), ("BANDS", "--bands"), ("HISTORY", "--history")):
            value = self.string_value(parameters, name, context)
            if value:
                args += [flag, value]
        for name, flag in (("CONFIG", "--config"), ("PREVIOUS", "--previous")):
            value = self.file_value(parameters, name, context)
            if value:
                args += [flag, value]
        window = self.parameterAsInt(parameters, "WINDOW_SIZE", context)
        if window:
            args += ["--window-size", str(window)]
        args += ["--workers", str(self.parameterAsInt(parameters, "WORKERS", context))]
        if _bool(self, parameters, "RULES", context):
            args.append("--rules")
        if _bool(self, parameters, "OVERWRITE", context):
            args.append("--overwrite")
        return args, [output]

    def finish(self, parameters, context, feedback, stdout):
        output = self.parameterAsFileOutput(parameters, "OUTPUT", context)
        self.load_outputs(context, feedback, output)
        return {"OUTPUT": output}


class BatchAlgorithm(SwcRsAlgorithm):
    NAME = "batch"
    TITLE = "月度批处理 Monthly batch (batch)"
    HELP = _help(
        "按配置文件（pipelines/monthly.toml）的影像目录，逐块运行检测并拼成当月成果："
        "OUTPUT/YYYYMM/swc_YYYYMM.gpkg（含 finished_patches 完工图斑）和 summary.json。"
        "每块结果单独提交，中断后勾选“续跑”即可跳过已完成的块。完成后当月成果载入当前项目。",
        "Run detect over every tile of the configuration's catalog and assemble the month "
        "(OUTPUT/YYYYMM/swc_YYYYMM.gpkg and its summary). Each tile is committed on its own: after an "
        "interruption tick Resume. The month's layers open in the current project. Exit code 4 (some tiles "
        "failed) is reported as a warning; the month is still loaded.",
        "swc-rs batch pipelines/monthly.toml --period 202611")
    OK_CODES = (0, 4)

    def initAlgorithm(self, config=None):
        self.addParameter(QgsProcessingParameterFile("CONFIG", "批处理配置 Batch configuration (CONFIG.toml)",
                                                     fileFilter="TOML (*.toml)"))
        self.addParameter(QgsProcessingParameterString("PERIOD", "监测月份 Reporting month YYYYMM", optional=True))
        self.addParameter(QgsProcessingParameterNumber(
            "WORKERS", "同时处理的块数（-1 = 配置值，0 = 全部核）Tiles at once (-1: the configuration's, 0: every core)",
            QgsProcessingParameterNumber.Integer, defaultValue=-1, minValue=-1, maxValue=1024))
        self.addParameter(QgsProcessingParameterBoolean("RESUME", "续跑（跳过已提交的块）Resume (skip committed tiles)",
                                                        defaultValue=False))
        self.addParameter(QgsProcessingParameterBoolean("OVERWRITE", "替换已有输出 Replace existing outputs",
                                                        defaultValue=False))
        self.addParameter(_advanced(QgsProcessingParameterString(
            "SCHEDULER", "Dask 调度器 Dask scheduler (tcp://HOST:8786)", optional=True)))
        self.addOutput(QgsProcessingOutputFile("OUTPUT", "当月成果 Month output"))
        self.addOutput(QgsProcessingOutputFile("SUMMARY", "汇总 Summary (JSON)"))

    def arguments(self, parameters, context, feedback):
        args = ["batch", self.file_value(parameters, "CONFIG", context)]
        period = self.string_value(parameters, "PERIOD", context)
        if period:
            args += ["--period", period]
        workers = self.parameterAsInt(parameters, "WORKERS", context)
        if workers >= 0:
            args += ["--workers", str(workers)]
        scheduler = self.string_value(parameters, "SCHEDULER", context)
        if scheduler:
            args += ["--scheduler", scheduler]
        for name, flag in (("RESUME", "--resume"), ("OVERWRITE", "--overwrite")):
            if _bool(self, parameters, name, context):
                args.append(flag)
        return args, []  # the month folder is known once it runs; swc-rs removes its temporaries itself

    def finish(self, parameters, context, feedback, stdout):
        summary = next((line[len("Summary "):].strip() for line in stdout if line.startswith("Summary ")), "")
        month = ""
        if summary and os.path.isfile(summary):
            with open(summary, encoding="utf-8") as handle:
                month = json.load(handle).get("month_output") or ""
        if month:
            self.load_outputs(context, feedback, month)
        return {"OUTPUT": month, "SUMMARY": summary}


class ReportAlgorithm(SwcRsAlgorithm):
    NAME = "report"
    TITLE = "生成监管报告 HTML report (report)"
    HELP = _help(
        "由检测成果生成一个独立的 HTML 报告（无需联网即可查看）：按分区、风险等级和合规性统计，总览图，"
        "按风险排序的疑似违规图斑及其前后对比影像，重点关注/黑名单（如有）。报告在“结果查看器”中打开。",
        "Write a self-contained HTML report of a detect output: totals by zone, colour and BYD, an overview "
        "map, the suspected patches ranked for inspection with their before/after chips, the developer watch "
        "list. Opens from the Results Viewer.",
        "swc-rs report out.gpkg -o report.html")

    def initAlgorithm(self, config=None):
        self.addParameter(QgsProcessingParameterFile("INPUT", "检测成果 Detect output (OUT.gpkg)",
                                                     fileFilter="GeoPackage (*.gpkg)"))
        self.addParameter(QgsProcessingParameterBoolean("OVERWRITE", "替换已有输出 Replace existing outputs",
                                                        defaultValue=False))
        self.addParameter(QgsProcessingParameterFileDestination("OUTPUT", "报告 Report", "HTML (*.html)"))

    def arguments(self, parameters, context, feedback):
        output = self.parameterAsFileOutput(parameters, "OUTPUT", context)
        args = ["report", self.file_value(parameters, "INPUT", context), "-o", output]
        if _bool(self, parameters, "OVERWRITE", context):
            args.append("--overwrite")
        return args, [output]

    def finish(self, parameters, context, feedback, stdout):
        return {"OUTPUT": self.parameterAsFileOutput(parameters, "OUTPUT", context)}


class ExportAlgorithm(SwcRsAlgorithm):
    NAME = "export"
    TITLE = "导出外业文件 Field files (export)"
    HELP = _help(
        "把检测成果中的疑似违规图斑导出为外业核查文件：KMZ/KML（红/黄/绿着色，可导入奥维等外业软件，KMZ 内含前后对比影像）、"
        "CSV（含图斑内一点的经纬度 JD/WD，UTF-8，可用 Excel 打开）和前后对比影像文件夹。可只导出选定的风险等级。",
        "Write field files for the suspected patches of a detect output: KMZ/KML coloured 红/黄/绿 for field "
        "apps (the KMZ carries the before/after chips), a CSV with a point inside each patch (JD/WD, UTF-8 for "
        "Excel), and a folder of the chips. Optionally only some risk colours.",
        "swc-rs export out.gpkg --kmz field.kmz --csv field.csv --colour 红")

    def initAlgorithm(self, config=None):
        self.addParameter(QgsProcessingParameterFile("INPUT", "检测成果 Detect output (OUT.gpkg)",
                                                     fileFilter="GeoPackage (*.gpkg)"))
        self.addParameter(QgsProcessingParameterEnum("COLOURS", "风险等级（不选 = 全部）Risk colours (none: all)",
                                                     COLOUR_NAMES, allowMultiple=True, optional=True))
        self.addParameter(QgsProcessingParameterBoolean("OVERWRITE", "替换已有输出 Replace existing outputs",
                                                        defaultValue=False))
        self.addParameter(QgsProcessingParameterFileDestination(
            "KML", "KMZ / KML", "KMZ (*.kmz);;KML (*.kml)", optional=True, createByDefault=True))
        self.addParameter(QgsProcessingParameterFileDestination(
            "CSV", "CSV 表格 CSV table", "CSV (*.csv)", optional=True, createByDefault=False))
        self.addParameter(QgsProcessingParameterFolderDestination(
            "CHIPS", "前后对比影像文件夹 Chips folder", optional=True, createByDefault=False))

    def checkParameterValues(self, parameters, context):
        ok, message = super().checkParameterValues(parameters, context)
        if ok and not any(self._target(parameters, name, context) for name in ("KML", "CSV", "CHIPS")):
            return False, "请至少选择一种输出：KMZ/KML、CSV 或影像文件夹。Choose at least one output: KMZ/KML, CSV or the chips folder."
        return ok, message

    def _target(self, parameters, name, context) -> str:
        if name == "CHIPS":
            return self.parameterAsString(parameters, name, context) if parameters.get(name) else ""
        return self.parameterAsFileOutput(parameters, name, context) if parameters.get(name) else ""

    def arguments(self, parameters, context, feedback):
        args = ["export", self.file_value(parameters, "INPUT", context)]
        outputs = []
        for name, flag in (("KML", "--kml"), ("CSV", "--csv"), ("CHIPS", "--chips")):
            target = self._target(parameters, name, context)
            if target:
                args += [flag, target]
                outputs.append(target)
        for index in self.parameterAsEnums(parameters, "COLOURS", context) or []:
            args += ["--colour", COLOURS[index]]
        if _bool(self, parameters, "OVERWRITE", context):
            args.append("--overwrite")
        return args, outputs

    def finish(self, parameters, context, feedback, stdout):
        return {name: self._target(parameters, name, context) for name in ("KML", "CSV", "CHIPS")}


class VerifyImportAlgorithm(SwcRsAlgorithm):
    NAME = "verify"
    TITLE = "导入现场复核结果 Import field verification (verify import)"
    GROUP = ("monthly", "月度监管 Monthly supervision")
    HELP = _help(
        "校验外业复核后的 suspected_violations 图层（RST 已复核/无法核实，BYD 去掉“疑似”或为合规，QTYPE、QDCS、NOTE、"
        "ZPBH、X_CLOSE 销号、XCFHR、DATE），并写入历史库的复核记录；同一文件重复导入不会重复记录。"
        "任何不符合规定的取值都会按图斑编号和字段列出，整个文件不入库。",
        "Validate the field-edited suspected_violations layer and append its verdicts to the history store's "
        "audit trail (importing the same file again adds nothing). A value outside the code lists is reported by "
        "QDNM and field, and nothing from the file is recorded.",
        "swc-rs verify import field.gpkg --store history.gpkg --output out.gpkg")

    def initAlgorithm(self, config=None):
        self.addParameter(QgsProcessingParameterVectorLayer(
            "FIELD", "外业复核图层 Field-checked layer (suspected_violations)", POLYGONS))
        self.addParameter(QgsProcessingParameterString(
            "STORE", "历史库 History store (HISTORY.gpkg, created when absent, or postgresql://…)"))
        self.addParameter(QgsProcessingParameterMultipleLayers(
            "OUTPUTS", "对应的检测成果 Detect output(s) the field file came from (OUT.gpkg)", QgsProcessing.TypeFile,
            optional=True))
        self.addParameter(_advanced(QgsProcessingParameterNumber(
            "WATCH_AT", "列入重点关注名单的确认违规数 Confirmed violations for the 重点关注名单",
            QgsProcessingParameterNumber.Integer, defaultValue=1, minValue=1)))
        self.addParameter(_advanced(QgsProcessingParameterNumber(
            "BLACKLIST_AT", "列入黑名单的确认违规数 Confirmed violations for the 黑名单",
            QgsProcessingParameterNumber.Integer, defaultValue=3, minValue=1)))
        self.addParameter(_advanced(QgsProcessingParameterBoolean(
            "NO_SENSITIVE_BLACKLIST", "敏感区内单次违规不列入黑名单 No blacklisting for one violation in a sensitive area",
            defaultValue=False)))
        self.addOutput(QgsProcessingOutputString("STORE", "历史库 History store"))

    def arguments(self, parameters, context, feedback):
        layer = self.parameterAsVectorLayer(parameters, "FIELD", context)
        path, layer_name = self._vector_source(layer, "FIELD", context, feedback, keep_layer_name=True)
        args = ["verify", "import", path, "--store", self.string_value(parameters, "STORE", context)]
        if layer_name:
            args += ["--layer", layer_name]
        for output in self.parameterAsFileList(parameters, "OUTPUTS", context) or []:
            args += ["--output", output]
        args += ["--watch-at", str(self.parameterAsInt(parameters, "WATCH_AT", context)),
                 "--blacklist-at", str(self.parameterAsInt(parameters, "BLACKLIST_AT", context))]
        if _bool(self, parameters, "NO_SENSITIVE_BLACKLIST", context):
            args.append("--no-sensitive-blacklist")
        store = self.string_value(parameters, "STORE", context)
        return args, [] if store.startswith("postgresql:") else [store]

    def finish(self, parameters, context, feedback, stdout):
        return {"STORE": self.string_value(parameters, "STORE", context)}


class ErosionAlgorithm(SwcRsAlgorithm):
    NAME = "erosion"
    TITLE = "土壤侵蚀与水土保持率 Soil erosion and 水土保持率 (erosion)"
    GROUP = ("annual", "年度监测 Annual monitoring")
    HELP = _help(
        "按中国土壤流失方程（CSLE，A = R·K·L·S·B·E·T）计算土壤侵蚀模数，依 SL 190-2007 分级，并按区县和分区统计"
        "水土保持率（模数低于容许值 500 t/(km²·a) 的面积占比）。输出 GeoPackage（erosion_counties、erosion_zones）和"
        "侵蚀模数、侵蚀强度两幅 COG，完成后载入当前项目。",
        "Soil loss by the CSLE and the soil-and-water-conservation rate (水土保持率) per county and per zone, "
        "graded by SL 190-2007. Writes a GeoPackage (erosion_counties, erosion_zones) and the modulus and grade "
        "COGs beside it; they open in the current project.",
        "swc-rs erosion dem.tif --zones zones.gpkg --counties counties.gpkg --config pipelines/erosion.toml -o erosion.gpkg")

    def initAlgorithm(self, config=None):
        self.addParameter(QgsProcessingParameterRasterLayer("DEM", "数字高程模型 DEM"))
        self.addParameter(QgsProcessingParameterVectorLayer("ZONES", "水土保持分区 SWC zones", POLYGONS))
        self.addParameter(QgsProcessingParameterVectorLayer("COUNTIES", "区县 Counties (XZQMC or NAME)", POLYGONS))
        self.addParameter(QgsProcessingParameterRasterLayer(
            "IMAGERY", "多光谱影像（植被覆盖度）Multispectral image (vegetation cover)", optional=True))
        self.addParameter(QgsProcessingParameterMapLayer(
            "LANDUSE", "土地利用（矢量 DLBM 或整型栅格）Land use (vector with DLBM or an integer raster)", optional=True))
        self.addParameter(QgsProcessingParameterString("YEAR", "监测年份 Monitoring year", optional=True))
        self.addParameter(QgsProcessingParameterEnum("SENSOR", "影像传感器 Sensor band layout", SENSOR_NAMES,
                                                     defaultValue=0))
        self.addParameter(QgsProcessingParameterFile(
            "CONFIG", "侵蚀配置 Configuration with [erosion] (pipelines/erosion.toml)", fileFilter="TOML (*.toml)",
            optional=True))
        self.addParameter(_advanced(QgsProcessingParameterRasterLayer(
            "R", "降雨侵蚀力 R raster, MJ·mm/(hm²·h·a)", optional=True)))
        self.addParameter(_advanced(QgsProcessingParameterRasterLayer(
            "K", "土壤可蚀性 K raster, t·hm²·h/(hm²·MJ·mm)", optional=True)))
        self.addParameter(_advanced(QgsProcessingParameterVectorLayer(
            "MEASURES", "工程措施（MEASURE 字段）Engineering measures", POLYGONS, optional=True)))
        self.addParameter(_advanced(QgsProcessingParameterString("BANDS", "波段角色 Band roles", optional=True)))
        self.addParameter(_advanced(QgsProcessingParameterNumber(
            "WINDOW_SIZE", "处理窗口边长（像素，0 = 配置默认）Window side in pixels (0: the configuration's)",
            QgsProcessingParameterNumber.Integer, defaultValue=0, minValue=0, maxValue=16384)))
        self.addParameter(QgsProcessingParameterBoolean("OVERWRITE", "替换已有输出 Replace existing outputs",
                                                        defaultValue=False))
        self.addParameter(QgsProcessingParameterFileDestination("OUTPUT", "输出 GeoPackage Output",
                                                                "GeoPackage (*.gpkg)"))

    def _rasters(self, output: str) -> list[str]:
        gpkg = Path(output)
        return [str(gpkg.with_name(f"{gpkg.stem}_grade.tif")), str(gpkg.with_name(f"{gpkg.stem}_modulus.tif"))]

    def arguments(self, parameters, context, feedback):
        output = self.parameterAsFileOutput(parameters, "OUTPUT", context)
        args = ["erosion", self.raster_path(parameters, "DEM", context),
                "--zones", self.vector_path(parameters, "ZONES", context, feedback),
                "--counties", self.vector_path(parameters, "COUNTIES", context, feedback),
                "-o", output, "--sensor", SENSORS[self.parameterAsEnum(parameters, "SENSOR", context)]]
        for name, flag in (("IMAGERY", "--imagery"), ("R", "--r"), ("K", "--k")):
            value = self.raster_path(parameters, name, context)
            if value:
                args += [flag, value]
        measures = self.vector_path(parameters, "MEASURES", context, feedback)
        if measures:
            args += ["--measures", measures]
        landuse = self.parameterAsLayer(parameters, "LANDUSE", context)
        if landuse is not None:
            path = (self._raster_source(landuse, "LANDUSE") if isinstance(landuse, QgsRasterLayer)
                    else self._vector_source(landuse, "LANDUSE", context, feedback)[0])
            args += ["--landuse", path]
        for name, flag in (("YEAR", "--year"), ("BANDS", "--bands")):
            value = self.string_value(parameters, name, context)
            if value:
                args += [flag, value]
        config = self.file_value(parameters, "CONFIG", context)
        if config:
            args += ["--config", config]
        window = self.parameterAsInt(parameters, "WINDOW_SIZE", context)
        if window:
            args += ["--window-size", str(window)]
        if _bool(self, parameters, "OVERWRITE", context):
            args.append("--overwrite")
        return args, [output, *self._rasters(output)]

    def finish(self, parameters, context, feedback, stdout):
        output = self.parameterAsFileOutput(parameters, "OUTPUT", context)
        self.load_outputs(context, feedback, output, rasters=self._rasters(output))
        return {"OUTPUT": output}


ALGORITHMS = (DetectAlgorithm, BatchAlgorithm, ReportAlgorithm, ExportAlgorithm, VerifyImportAlgorithm,
              ErosionAlgorithm)
