"""QGIS styles inside the GeoPackage: renderers, Chinese aliases and drop-downs.

QGIS reads a layer's default style from the ``layer_styles`` table of the GeoPackage
the layer lives in (the table its OGR provider creates on "Save as default"). Each of
the four map layers of OUT.gpkg gets one default style (QML, QGIS 3.22):

- ``suspected_violations``: categorised by X_COLOR (红 red, 黄 yellow, 绿 green);
- ``disturbance_patches``: categorised by QTYPE;
- ``projects``: outlines labelled by PRNM;
- ``zones``: categorised by ZONE_CODE.

Every style carries the Chinese field aliases of DOMAIN.md and value-map editor
widgets (drop-downs) for QTYPE, BYD, QDCS, QDTYPE, RST, X_REASON and X_COLOR, so an
edit in QGIS or QField can only pick a DOMAIN.md value.

The tables are written with :mod:`sqlite3`, mirroring what QGIS's OGR provider
creates, and registered in ``gpkg_contents`` as attribute tables.
"""

from __future__ import annotations

import datetime as dt
import logging
import sqlite3
import xml.etree.ElementTree as ET
from collections.abc import Iterable, Sequence
from pathlib import Path

from swc_rs import codes

log = logging.getLogger(__name__)

#: GeoPackage 1.3: ``PRAGMA application_id`` ("GPKG") and ``PRAGMA user_version``.
GPKG_APPLICATION_ID = 0x47504B47
GPKG_USER_VERSION = 10300

#: The QGIS version the styles and project are written for (Debian's).
QGIS_VERSION = "3.22.16-Białowieża"

STYLE_NAME = "swc-rs"

#: The map layers of a ``detect`` GeoPackage, top of the legend first.
DETECT_LAYERS = ("suspected_violations", "disturbance_patches", "projects", "zones")

#: The layer the monthly batch adds to detect's: last month's patches not seen again (完工).
BATCH_LAYERS = ("finished_patches",)

#: The map layers of an ``erosion`` GeoPackage.
EROSION_LAYERS = ("erosion_counties", "erosion_zones")

#: The map layers of an ``erosion-trend`` GeoPackage.
TREND_LAYERS = ("trend_counties", "trend_zones")

#: Every styled layer, top of the legend first; a file gets the ones it holds.
LAYER_ORDER = DETECT_LAYERS[:2] + BATCH_LAYERS + DETECT_LAYERS[2:] + EROSION_LAYERS + TREND_LAYERS

#: Legend names of the layers.
LAYER_TITLES = {
    "suspected_violations": "疑似违法违规图斑",
    "disturbance_patches": "扰动图斑",
    "finished_patches": "完工图斑",
    "projects": "防治责任范围",
    "zones": "水土保持分区",
    "erosion_counties": "区县水土保持率",
    "erosion_zones": "分区水土保持率",
    "trend_counties": "区县水土保持率趋势",
    "trend_zones": "分区水土保持率趋势",
}

#: Chinese aliases (DOMAIN.md / INTERFACE.md field codes).
ALIASES = {
    # patches
    "QDNM": "图斑编号",
    "QTYPE": "扰动类型",
    "QAREA": "扰动面积(hm²)",
    "EAREA": "超出防治责任范围面积(hm²)",
    "QDCS": "建设状态",
    "QDTYPE": "扰动变化类型",
    "BYD": "扰动合规性",
    "PRNM": "项目名称",
    "RST": "复核状态",
    "NOTE": "备注",
    "X_ZONE": "水土保持分区",
    "X_COLOR": "风险等级",
    "X_CONF": "判读置信度",
    "X_T1": "前时相日期",
    "X_T2": "后时相日期",
    "X_RULE": "合规判定依据",
    "X_SHIFT": "配准偏移(像元)",
    "X_SENS": "涉及敏感区",
    "X_REASON": "误判原因",
    # field verification
    "XZQY": "行政区域",
    "XXDZ": "详细地址",
    "JD": "经度",
    "WD": "纬度",
    "ZPBH": "照片编号",
    "XCFHR": "现场复核人",
    "DATE": "复核日期",
    # responsibility ranges
    "DPOZ": "建设单位",
    "PRTYPE": "项目类型",
    "SEAA": "审批机构",
    "SADT": "审批时间",
    "DAREA": "防治责任范围面积(hm²)",
    "PAPT": "组成部分",
    "PAREA": "组成部分面积(hm²)",
    "X_N_PATCH": "扰动图斑数",
    "X_EAREA": "超出防治责任范围面积合计(hm²)",
    # zones
    "ZONE_CODE": "分区代码",
    "ZONE_NAME": "分区名称",
    "N_PATCH": "扰动图斑数",
    # erosion (swc-rs erosion)
    "XZQMC": "区县名称",
    "XZQDM": "区县代码",
    "LAND_HM2": "土地面积(hm²)",
    "COVER_PCT": "数据覆盖比例(%)",
    "SEEN_HM2": "有效观测面积(hm²)",
    "UNSEEN_PCT": "未观测比例(云、阴影、无数据)(%)",
    "G1_HM2": "微度侵蚀面积(hm²)",
    "G2_HM2": "轻度侵蚀面积(hm²)",
    "G3_HM2": "中度侵蚀面积(hm²)",
    "G4_HM2": "强烈侵蚀面积(hm²)",
    "G5_HM2": "极强烈侵蚀面积(hm²)",
    "G6_HM2": "剧烈侵蚀面积(hm²)",
    "ERODE_HM2": "水土流失面积(hm²)",
    "SWC_RATE": "水土保持率(%)",
    "MEAN_A": "平均土壤侵蚀模数(t/(km²·a))",
    "GAP_2025": "距2025年目标(百分点)",
    "GAP_2035": "距2035年目标(百分点)",
    "X_TARGET": "目标达成情况",
    "X_PARTIAL": "部分覆盖或未观测",
    "YEAR": "监测年份",
    # erosion-trend
    "PREV_YEAR": "上期年份",
    "CHANGE_PP": "较上期变化(百分点)",
    "N_YEARS": "有观测年数",
    "YEAR_FIRST": "首年",
    "YEAR_LAST": "末年",
    "RATE_FIRST": "首年水土保持率(%)",
    "RATE_LAST": "末年水土保持率(%)",
    "SLOPE_PP_YR": "线性趋势(百分点/年)",
    "REACH_2025": "按趋势达到2025年目标的年份",
    "REACH_2035": "按趋势达到2035年目标的年份",
    "ON_TRACK_2025": "2025年目标",
    "ON_TRACK_2035": "2035年目标",
    "X_TRACK": "末期目标达成趋势",
    "X_TREND": "趋势判断",
    "X_PARTIAL_YEARS": "部分覆盖或未观测的年份",
}

#: Colours of the trend layers' X_TRACK (the last target: met, on track, not on track, no trend).
TRACK_RGB = {"已达到": (26, 152, 80), "可达到": (166, 217, 106), "达不到": (215, 48, 39), "无趋势": (190, 190, 190)}

#: Colours of the erosion layers' target categories (rate against the city plan's targets).
TARGET_RGB = {"met_late": (26, 152, 80), "met_early": (166, 217, 106), "missed": (215, 48, 39), "none": (190, 190, 190)}

#: What an empty text field means in a drop-down.
BLANK = "（未填写）"

#: Drop-down values (stored value == shown value, as the field apps store the text).
VALUE_MAPS: dict[str, tuple[str, ...]] = {
    "QTYPE": codes.QTYPES,
    "BYD": codes.BYD_DESK + tuple(v for v in codes.BYD_FIELD if v not in codes.BYD_DESK),
    "QDCS": codes.QDCS,
    "QDTYPE": codes.QDTYPE,
    "RST": codes.RST,
    "X_REASON": codes.X_REASON,
    "X_COLOR": codes.COLOURS,
}
#: Fields that are blank until the field team fills them.
BLANK_ALLOWED = ("QDCS", "X_REASON", "QDTYPE")

#: Fields nobody should edit in the field (the id that links the verdict back).
READ_ONLY = ("QDNM", "QAREA", "EAREA", "X_CONF", "X_T1", "X_T2", "X_RULE", "X_SHIFT", "X_ZONE")

COLOUR_RGB = {codes.RED: (227, 26, 28), codes.YELLOW: (255, 190, 0), codes.GREEN: (51, 160, 44)}
COLOUR_LABEL = {codes.RED: "红 · 中高风险，严格监管", codes.YELLOW: "黄 · 低风险，提前提醒", codes.GREEN: "绿 · 无风险"}
QTYPE_RGB = {
    codes.SPOIL: (166, 97, 26),
    codes.BORROW: (253, 141, 60),
    codes.OTHER: (117, 107, 177),
    codes.NOT_PROJECT: (150, 150, 150),
}
ZONE_RGB = {
    "Z1": (27, 158, 119),
    "Z2": (102, 166, 30),
    "Z3": (230, 171, 2),
    "Z4": (217, 95, 2),
    "Z5": (117, 112, 179),
}
PROJECT_RGB = (31, 120, 180)
#: Outline of the patches finished (完工) since last month: dark green, no fill.
FINISHED_RGB = (0, 109, 44)


# -- QML ------------------------------------------------------------------------------
def _rgba(rgb: Sequence[int], alpha: int = 255) -> str:
    return ",".join(str(int(v)) for v in (*rgb[:3], alpha))


def _options(parent: ET.Element, props: dict[str, str]) -> None:
    """Symbol-layer properties, both as ``<Option>`` map and legacy ``<prop>``."""
    option = ET.SubElement(parent, "Option", type="Map")
    for key, value in props.items():
        ET.SubElement(option, "Option", name=key, type="QString", value=value)
    for key, value in props.items():
        ET.SubElement(parent, "prop", k=key, v=value)


def fill_symbol(name: str, fill: Sequence[int] | None, outline: Sequence[int], *, fill_alpha: int = 150,
                outline_width: float = 0.4) -> ET.Element:
    """A QGIS fill symbol: solid (or no) brush, solid outline in millimetres."""
    symbol = ET.Element("symbol", {"type": "fill", "name": name, "alpha": "1", "clip_to_extent": "1",
                                   "force_rhr": "0", "is_animated": "0", "frame_rate": "10"})
    layer = ET.SubElement(symbol, "layer", {"class": "SimpleFill", "enabled": "1", "locked": "0", "pass": "0"})
    _options(layer, {
        "border_width_map_unit_scale": "3x:0,0,0,0,0,0",
        "color": _rgba(fill if fill is not None else (0, 0, 0), fill_alpha if fill is not None else 0),
        "joinstyle": "bevel",
        "offset": "0,0",
        "offset_map_unit_scale": "3x:0,0,0,0,0,0",
        "offset_unit": "MM",
        "outline_color": _rgba(outline),
        "outline_style": "solid",
        "outline_width": f"{outline_width:g}",
        "outline_width_unit": "MM",
        "style": "solid" if fill is not None else "no",
    })
    return symbol


def categorized_renderer(field: str, categories: Iterable[tuple[str, str, ET.Element]],
                         default: ET.Element) -> ET.Element:
    """``categorizedSymbol`` renderer on ``field``; ``categories`` are (value, label, symbol)."""
    renderer = ET.Element("renderer-v2", {"type": "categorizedSymbol", "attr": field, "symbollevels": "0",
                                          "forceraster": "0", "enableorderby": "0",
                                          "referencescale": "-1"})
    cats = ET.SubElement(renderer, "categories")
    symbols = ET.SubElement(renderer, "symbols")
    for i, (value, label, symbol) in enumerate(categories):
        ET.SubElement(cats, "category", {"render": "true", "symbol": str(i), "value": value, "label": label,
                                         "type": "string"})
        symbol.set("name", str(i))
        symbols.append(symbol)
    source = ET.SubElement(renderer, "source-symbol")
    default.set("name", "0")
    source.append(default)
    ET.SubElement(renderer, "rotation")
    ET.SubElement(renderer, "sizescale")
    return renderer


def single_renderer(symbol: ET.Element) -> ET.Element:
    renderer = ET.Element("renderer-v2", {"type": "singleSymbol", "symbollevels": "0", "forceraster": "0",
                                          "enableorderby": "0", "referencescale": "-1"})
    symbols = ET.SubElement(renderer, "symbols")
    symbol.set("name", "0")
    symbols.append(symbol)
    ET.SubElement(renderer, "rotation")
    ET.SubElement(renderer, "sizescale")
    return renderer


def label_settings(field: str, rgb: Sequence[int]) -> ET.Element:
    """Simple labelling of ``field`` over the polygon's centre, with a white halo."""
    labeling = ET.Element("labeling", type="simple")
    settings = ET.SubElement(labeling, "settings", calloutType="simple")
    style = ET.SubElement(settings, "text-style", {
        "fieldName": field, "isExpression": "0", "fontFamily": "Microsoft YaHei", "namedStyle": "Regular",
        "fontSize": "9", "fontSizeUnit": "Point", "fontWeight": "50", "fontItalic": "0",
        "textColor": _rgba(rgb), "textOpacity": "1", "multilineHeight": "1", "blendMode": "0",
        "previewBkgrdColor": "255,255,255,255", "allowHtml": "0", "capitalization": "0",
    })
    ET.SubElement(style, "families")
    ET.SubElement(style, "text-buffer", {
        "bufferDraw": "1", "bufferSize": "0.8", "bufferSizeUnits": "MM", "bufferColor": "255,255,255,255",
        "bufferOpacity": "1", "bufferNoFill": "1", "bufferJoinStyle": "128", "bufferBlendMode": "0",
    })
    ET.SubElement(settings, "text-format", {"wrapChar": "", "multilineAlign": "3", "autoWrapLength": "12",
                                            "useMaxLineLengthForAutoWrap": "1", "plussign": "0",
                                            "formatNumbers": "0", "decimals": "3", "reverseDirectionSymbol": "0",
                                            "leftDirectionSymbol": "<", "rightDirectionSymbol": ">",
                                            "placeDirectionSymbol": "0", "addDirectionSymbol": "0"})
    ET.SubElement(settings, "placement", {"placement": "1", "centroidWhole": "0", "centroidInside": "1",
                                          "fitInPolygonOnly": "0", "dist": "0", "distUnits": "MM",
                                          "priority": "5", "offsetType": "0", "quadOffset": "4",
                                          "overlapHandling": "PreventOverlap"})
    ET.SubElement(settings, "rendering", {"obstacle": "1", "obstacleType": "1", "obstacleFactor": "1",
                                          "scaleVisibility": "0", "drawLabels": "1", "upsidedownLabels": "0",
                                          "limitNumLabels": "0", "maxNumLabels": "2000", "mergeLines": "0",
                                          "displayAll": "0", "minFeatureSize": "0", "labelPerPart": "0",
                                          "fontLimitPixelSize": "0", "zIndex": "0"})
    return labeling


def _value_map(values: Sequence[str], blank: bool) -> ET.Element:
    widget = ET.Element("editWidget", type="ValueMap")
    config = ET.SubElement(widget, "config")
    top = ET.SubElement(config, "Option", type="Map")
    entries = ET.SubElement(top, "Option", name="map", type="List")
    pairs = ([(BLANK, "")] if blank else []) + [(v, v) for v in values]
    for shown, stored in pairs:
        entry = ET.SubElement(entries, "Option", type="Map")
        ET.SubElement(entry, "Option", name=shown, type="QString", value=stored)
    return widget


def _text_edit() -> ET.Element:
    widget = ET.Element("editWidget", type="TextEdit")
    config = ET.SubElement(widget, "config")
    top = ET.SubElement(config, "Option", type="Map")
    ET.SubElement(top, "Option", name="IsMultiline", type="bool", value="false")
    ET.SubElement(top, "Option", name="UseHtml", type="bool", value="false")
    return widget


def field_elements(root: ET.Element, fields: Sequence[str]) -> None:
    """``fieldConfiguration`` (value maps), ``aliases`` and ``editable`` for ``fields``."""
    configuration = ET.SubElement(root, "fieldConfiguration")
    for name in fields:
        field = ET.SubElement(configuration, "field", name=name, configurationFlags="None")
        if name in VALUE_MAPS:
            field.append(_value_map(VALUE_MAPS[name], name in BLANK_ALLOWED))
        else:
            field.append(_text_edit())
    aliases = ET.SubElement(root, "aliases")
    for i, name in enumerate(fields):
        ET.SubElement(aliases, "alias", field=name, index=str(i), name=ALIASES.get(name, _summary_alias(name)))
    editable = ET.SubElement(root, "editable")
    for name in fields:
        ET.SubElement(editable, "field", name=name, editable="0" if name in READ_ONLY else "1")


def _summary_alias(name: str) -> str:
    """Aliases of the per-zone summary fields N_<value> / A_<value>."""
    if name.startswith("N_") and len(name) > 2:
        return f"{name[2:]}图斑数"
    if name.startswith("A_") and len(name) > 2:
        return f"{name[2:]}面积(hm²)"
    return ""


def layer_renderer(layer: str, values: Sequence[str] = ()) -> tuple[ET.Element, ET.Element | None]:
    """The renderer (and labelling, if any) of one OUT.gpkg layer.

    ``values`` are the distinct category values present, added after the fixed ones.
    """
    if layer == "suspected_violations":
        cats = [(c, COLOUR_LABEL[c], fill_symbol("", COLOUR_RGB[c], COLOUR_RGB[c], outline_width=0.6))
                for c in codes.COLOURS]
        return categorized_renderer("X_COLOR", cats, fill_symbol("", (200, 200, 200), (120, 120, 120))), None
    if layer == "disturbance_patches":
        cats = [(q, q, fill_symbol("", QTYPE_RGB[q], QTYPE_RGB[q], fill_alpha=110)) for q in codes.QTYPES]
        return categorized_renderer("QTYPE", cats, fill_symbol("", (200, 200, 200), (120, 120, 120))), None
    if layer == "zones":
        codes_ = list(ZONE_RGB) + sorted(v for v in set(values) if v and v not in ZONE_RGB)
        cats = [(z, z, fill_symbol("", ZONE_RGB.get(z, (190, 190, 190)), ZONE_RGB.get(z, (120, 120, 120)),
                                   fill_alpha=25, outline_width=0.6)) for z in codes_]
        return categorized_renderer("ZONE_CODE", cats, fill_symbol("", (190, 190, 190), (120, 120, 120), fill_alpha=25)), None
    if layer in ("erosion_counties", "erosion_zones"):
        present = sorted(set(values))
        def colour(v):
            if v.startswith("达到"):
                return TARGET_RGB["met_late"] if v == max((p for p in present if p.startswith("达到")), default=v) \
                    else TARGET_RGB["met_early"]
            return TARGET_RGB["missed"] if v.startswith("未达") else TARGET_RGB["none"]
        cats = [(v, v, fill_symbol("", colour(v), (80, 80, 80), fill_alpha=140, outline_width=0.5)) for v in present]
        name = "XZQMC" if layer == "erosion_counties" else "ZONE_CODE"
        return (categorized_renderer("X_TARGET", cats, fill_symbol("", (190, 190, 190), (120, 120, 120))),
                label_settings(name, (40, 40, 40)))
    if layer in TREND_LAYERS:
        cats = [(v, v, fill_symbol("", rgb, (80, 80, 80), fill_alpha=140, outline_width=0.5))
                for v, rgb in TRACK_RGB.items()]
        name = "XZQMC" if layer == "trend_counties" else "ZONE_CODE"
        return (categorized_renderer("X_TRACK", cats, fill_symbol("", (190, 190, 190), (120, 120, 120))),
                label_settings(name, (40, 40, 40)))
    if layer == "finished_patches":  # outlines only: where last month's patches were
        return single_renderer(fill_symbol("", None, FINISHED_RGB, outline_width=0.6)), None
    if layer == "projects":
        return single_renderer(fill_symbol("", None, PROJECT_RGB, outline_width=0.7)), label_settings("PRNM", PROJECT_RGB)
    return single_renderer(fill_symbol("", (200, 200, 200), (120, 120, 120))), None


def style_elements(layer: str, fields: Sequence[str], values: Sequence[str] = ()) -> list[ET.Element]:
    """The style of ``layer`` as the children of a QML ``<qgis>`` (or a project ``<maplayer>``)."""
    holder = ET.Element("holder")
    renderer, labeling = layer_renderer(layer, values)
    holder.append(renderer)
    if labeling is not None:
        holder.append(labeling)
    field_elements(holder, fields)
    display = ET.SubElement(holder, "previewExpression")
    display.text = next((f'"{name}"' for name in ("QDNM", "PRNM", "ZONE_NAME", "XZQMC", "NAME") if name in fields),
                        '"ZONE_NAME"')
    ET.SubElement(holder, "layerGeometryType").text = "2"
    return list(holder)


def layer_qml(layer: str, fields: Sequence[str], values: Sequence[str] = ()) -> str:
    """A QGIS 3.22 QML document styling ``layer`` with the given attribute ``fields``.

    Parameters
    ----------
    layer
        One of :data:`LAYER_ORDER`.
    fields
        The layer's attribute fields in table order (no fid, no geometry).
    values
        Category values present in the data (used for zones beyond Z1..Z5).
    """
    _, labeling = layer_renderer(layer)
    root = ET.Element("qgis", {"version": QGIS_VERSION, "styleCategories": "AllStyleCategories",
                               "labelsEnabled": "1" if labeling is not None else "0",
                               "hasScaleBasedVisibilityFlag": "0", "minScale": "100000000", "maxScale": "0",
                               "readOnly": "0", "simplifyDrawingHints": "1", "simplifyAlgorithm": "0",
                               "simplifyDrawingTol": "1", "simplifyLocal": "1", "simplifyMaxScale": "1"})
    root.extend(style_elements(layer, fields, values))
    body = ET.tostring(root, encoding="unicode")
    return "<!DOCTYPE qgis PUBLIC 'http://mrcc.com/qgis.dtd' 'SYSTEM'>\n" + body + "\n"


# -- GeoPackage tables ------------------------------------------------------------------
def geometry_columns(con: sqlite3.Connection) -> dict[str, str]:
    """Layer name → geometry column name, from ``gpkg_geometry_columns``."""
    return dict(con.execute("SELECT table_name, column_name FROM gpkg_geometry_columns"))


def attribute_fields(con: sqlite3.Connection, table: str, geometry: str | None = None) -> list[str]:
    """Attribute fields of ``table`` in order, without its primary key and geometry."""
    rows = con.execute(f'PRAGMA table_info("{table}")').fetchall()
    return [r[1] for r in rows if not r[5] and r[1] != geometry]


def register_attributes_table(con: sqlite3.Connection, table: str, description: str = "") -> None:
    """Declare ``table`` in ``gpkg_contents`` as an attribute table (GDAL and QGIS list it)."""
    now = dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
    con.execute(
        "INSERT OR REPLACE INTO gpkg_contents (table_name, data_type, identifier, description, last_change) "
        "VALUES (?, 'attributes', ?, ?, ?)",
        (table, table, description, now),
    )


def set_gpkg_version(con: sqlite3.Connection) -> None:
    """Mark the file as GeoPackage 1.3 (QGIS 3.22's GDAL reads it without warnings)."""
    con.execute(f"PRAGMA application_id = {GPKG_APPLICATION_ID}")
    con.execute(f"PRAGMA user_version = {GPKG_USER_VERSION}")


def _create_layer_styles(con: sqlite3.Connection) -> None:
    con.execute(
        'CREATE TABLE IF NOT EXISTS "layer_styles" ('
        '"id" INTEGER PRIMARY KEY AUTOINCREMENT NOT NULL, '
        '"f_table_catalog" TEXT(256), "f_table_schema" TEXT(256), "f_table_name" TEXT(256), '
        '"f_geometry_column" TEXT(256), "styleName" TEXT(30), "styleQML" TEXT, "styleSLD" TEXT, '
        '"useAsDefault" BOOLEAN, "description" TEXT, "owner" TEXT(30), "ui" TEXT(30), '
        "\"update_time\" DATETIME DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ','now')))"
    )
    register_attributes_table(con, "layer_styles", "QGIS layer styles (swc-rs defaults)")


def write_layer_styles(con: sqlite3.Connection) -> list[str]:
    """One default style per map layer present; returns the styled layers."""
    _create_layer_styles(con)
    geoms = geometry_columns(con)
    styled = []
    for layer in LAYER_ORDER:
        if layer not in geoms:
            continue
        geometry = geoms[layer]
        fields = attribute_fields(con, layer, geometry)
        values: list[str] = []
        if layer == "zones" and "ZONE_CODE" in fields:
            values = [r[0] for r in con.execute('SELECT DISTINCT "ZONE_CODE" FROM "zones"') if r[0]]
        if layer.startswith("erosion_") and "X_TARGET" in fields:
            values = [r[0] for r in con.execute(f'SELECT DISTINCT "X_TARGET" FROM "{layer}"') if r[0]]
        con.execute(
            "UPDATE layer_styles SET useAsDefault = 0 WHERE f_table_schema = '' AND f_table_name = ? "
            "AND f_geometry_column = ?", (layer, geometry))
        con.execute(
            "DELETE FROM layer_styles WHERE f_table_schema = '' AND f_table_name = ? AND f_geometry_column = ? "
            "AND styleName = ?", (layer, geometry, STYLE_NAME))
        con.execute(
            "INSERT INTO layer_styles (f_table_catalog, f_table_schema, f_table_name, f_geometry_column, "
            "styleName, styleQML, styleSLD, useAsDefault, description, owner, ui) "
            "VALUES ('', '', ?, ?, ?, ?, '', 1, ?, '', NULL)",
            (layer, geometry, STYLE_NAME, layer_qml(layer, fields, values),
             f"swc-rs: {LAYER_TITLES[layer]}"),
        )
        styled.append(layer)
    return styled


def write_styles(gpkg: str | Path, target: str | Path | None = None, *, images: bool = True) -> list[str]:
    """Write the default styles and the QGIS project into ``gpkg``; mark it GeoPackage 1.3.

    Parameters
    ----------
    gpkg
        The GeoPackage to add to (typically the temporary file before its rename).
    target
        Where the GeoPackage will end up (its name is used by the project's layer
        sources, which are relative to the GeoPackage); ``gpkg`` when None.
    images
        Add the BEFORE/AFTER images of ``run_info`` to the project as raster layers.

    Returns
    -------
    list of str
        The layers that received a default style.
    """
    from swc_rs.export.project import write_project

    gpkg = Path(gpkg)
    con = sqlite3.connect(gpkg)
    try:
        with con:
            styled = write_layer_styles(con)
            write_project(con, Path(target) if target is not None else gpkg, images=images)
        set_gpkg_version(con)
    finally:
        con.close()
    log.debug("styled %s in %s", ", ".join(styled), gpkg)
    return styled
