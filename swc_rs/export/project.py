"""A QGIS project stored inside OUT.gpkg (``qgis_projects``), ready to open.

QGIS keeps projects in a GeoPackage in a table ``qgis_projects(name, metadata,
content)`` whose ``content`` is the zipped project (.qgz) as hexadecimal text; it is
opened with Project → Open From → GeoPackage, or
``QgsProject.instance().read("geopackage:/path/out.gpkg?projectName=swc-rs")``.

The project holds the four map layers (suspected_violations on top, then
disturbance_patches, projects, zones) with the same styles as ``layer_styles``, and
the BEFORE/AFTER images as true-colour raster layers referenced by absolute path.
The GeoPackage layers are referenced relative to the GeoPackage, so the file can be
moved or mailed.
"""

from __future__ import annotations

import datetime as dt
import io
import json
import logging
import sqlite3
import warnings
import xml.etree.ElementTree as ET
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyproj

from swc_rs.export.styles import (
    LAYER_ORDER,
    LAYER_TITLES,
    QGIS_VERSION,
    attribute_fields,
    geometry_columns,
    layer_renderer,
    style_elements,
)

log = logging.getLogger(__name__)

PROJECT_NAME = "swc-rs"
MAP_CRS = "EPSG:4490"
TRUE_COLOUR = ("red", "green", "blue")


@dataclass(frozen=True)
class ImageLayer:
    """A true-colour raster layer of one date."""

    path: Path
    title: str
    crs: str
    bands: tuple[int, int, int]
    ranges: tuple[tuple[float, float], ...]
    visible: bool


# -- images ---------------------------------------------------------------------------
def image_layers(before: Path, after: Path, *, dates: tuple[str, str] = ("", ""), sensor: str = "auto",
                 shift: tuple[float, float] = (0.0, 0.0)) -> list[ImageLayer]:
    """AFTER and BEFORE as true-colour layers, stretched 2–95 % on a sample of the scene.

    Raises
    ------
    swc_rs.errors.InputError
        The images cannot be opened or have no red/green/blue bands.
    """
    from swc_rs.raster import RasterPair, sample_windows

    with RasterPair(before, after, sensor=sensor) as pair:
        missing = [r for r in TRUE_COLOUR if r not in pair.roles]
        if missing:
            from swc_rs.errors import RasterInputError

            raise RasterInputError(f"has no {', '.join(missing)} band for a true-colour view", path=before)
        pair.set_shift(*shift)
        index = [pair.roles.index(r) for r in TRUE_COLOUR]
        samples_b, samples_a = [], []
        for window in sample_windows(pair.grid, 9, 256):
            b, a, valid = pair.read(window)
            samples_b.append(b[index][:, valid])
            samples_a.append(a[index][:, valid])
        described = pair.describe()
        layers = []
        for kind, path, bands, samples, crs, date in (
            ("after", after, pair.after_bands, samples_a, described["after_crs"], dates[1]),
            ("before", before, pair.before_bands, samples_b, described["before_crs"], dates[0]),
        ):
            values = np.concatenate(samples, axis=1) if samples else np.zeros((3, 0), np.float32)
            ranges = []
            for role, row in zip(TRUE_COLOUR, values, strict=True):
                lo, hi = (np.percentile(row, [2, 95]) if row.size else (0.0, 0.3))
                ranges.append((float(bands.to_raw(role, lo)), float(bands.to_raw(role, max(hi, lo + 1e-6)))))
            title = ("后时相影像" if kind == "after" else "前时相影像") + (f" {date}" if date else "")
            layers.append(ImageLayer(
                path=Path(path).resolve(), title=title, crs=crs,
                bands=tuple(int(bands.profile.bands[r]) for r in TRUE_COLOUR),
                ranges=tuple(ranges), visible=kind == "after",
            ))
    return layers


# -- XML helpers ----------------------------------------------------------------------
def _spatialrefsys(parent: ET.Element, crs: str) -> None:
    crs_ = pyproj.CRS.from_user_input(crs)
    srs = ET.SubElement(parent, "spatialrefsys", nativeFormat="Wkt")
    ET.SubElement(srs, "wkt").text = crs_.to_wkt("WKT2_2019")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # PROJ strings are lossy; QGIS reads the WKT
        ET.SubElement(srs, "proj4").text = crs_.to_proj4() or ""
    authority = crs_.to_authority()
    ET.SubElement(srs, "srsid").text = "0"
    ET.SubElement(srs, "srid").text = authority[1] if authority else "0"
    ET.SubElement(srs, "authid").text = ":".join(authority) if authority else ""
    ET.SubElement(srs, "description").text = crs_.name
    ET.SubElement(srs, "projectionacronym").text = "longlat" if crs_.is_geographic else ""
    ET.SubElement(srs, "ellipsoidacronym").text = "EPSG:7019" if crs_.is_geographic else ""
    ET.SubElement(srs, "geographicflag").text = "true" if crs_.is_geographic else "false"


def _extent(parent: ET.Element, tag: str, bounds) -> None:
    extent = ET.SubElement(parent, tag)
    for key, value in zip(("xmin", "ymin", "xmax", "ymax"), bounds, strict=True):
        ET.SubElement(extent, key).text = repr(float(value))


def _layer_id(name: str) -> str:
    return f"{name}_swc_rs"


def vector_layer(con: sqlite3.Connection, layer: str, geometry: str, gpkg_name: str) -> ET.Element:
    fields = attribute_fields(con, layer, geometry)
    values = []
    if layer == "zones" and "ZONE_CODE" in fields:
        values = [r[0] for r in con.execute('SELECT DISTINCT "ZONE_CODE" FROM "zones"') if r[0]]
    _, labeling = layer_renderer(layer)
    element = ET.Element("maplayer", {
        "type": "vector", "geometry": "Polygon", "wkbType": "MultiPolygon", "styleCategories": "AllStyleCategories",
        "labelsEnabled": "1" if labeling is not None else "0", "hasScaleBasedVisibilityFlag": "0",
        "minScale": "100000000", "maxScale": "0", "readOnly": "0", "autoRefreshEnabled": "0",
        "autoRefreshTime": "0", "refreshOnNotifyEnabled": "0", "refreshOnNotifyMessage": "",
        "simplifyDrawingHints": "1", "simplifyAlgorithm": "0", "simplifyDrawingTol": "1",
        "simplifyLocal": "1", "simplifyMaxScale": "1", "symbologyReferenceScale": "-1",
    })
    bounds = con.execute("SELECT min_x, min_y, max_x, max_y FROM gpkg_contents WHERE table_name = ?", (layer,)).fetchone()
    if bounds and None not in bounds:
        _extent(element, "extent", bounds)
    ET.SubElement(element, "id").text = _layer_id(layer)
    ET.SubElement(element, "datasource").text = f"./{gpkg_name}|layername={layer}"
    ET.SubElement(element, "layername").text = LAYER_TITLES[layer]
    srs = ET.SubElement(element, "srs")
    _spatialrefsys(srs, MAP_CRS)
    ET.SubElement(element, "provider", encoding="UTF-8").text = "ogr"
    element.extend(style_elements(layer, fields, values))
    ET.SubElement(element, "blendMode").text = "0"
    ET.SubElement(element, "featureBlendMode").text = "0"
    ET.SubElement(element, "layerOpacity").text = "1"
    return element


def raster_layer(image: ImageLayer) -> ET.Element:
    element = ET.Element("maplayer", {"type": "raster", "styleCategories": "AllStyleCategories",
                                      "hasScaleBasedVisibilityFlag": "0", "minScale": "1e+08", "maxScale": "0",
                                      "autoRefreshEnabled": "0", "autoRefreshTime": "0",
                                      "refreshOnNotifyEnabled": "0", "refreshOnNotifyMessage": ""})
    ET.SubElement(element, "id").text = _layer_id(f"{'after' if image.visible else 'before'}_image")
    ET.SubElement(element, "datasource").text = str(image.path)
    ET.SubElement(element, "layername").text = image.title
    srs = ET.SubElement(element, "srs")
    _spatialrefsys(srs, image.crs)
    ET.SubElement(element, "provider").text = "gdal"
    pipe = ET.SubElement(element, "pipe")
    provider = ET.SubElement(pipe, "provider")
    ET.SubElement(provider, "resampling", enabled="false", zoomedInResamplingMethod="nearestNeighbour",
                  zoomedOutResamplingMethod="nearestNeighbour", maxOversampling="2")
    red, green, blue = image.bands
    renderer = ET.SubElement(pipe, "rasterrenderer", {"type": "multibandcolor", "redBand": str(red),
                                                       "greenBand": str(green), "blueBand": str(blue),
                                                       "opacity": "1", "alphaBand": "-1", "nodataColor": ""})
    ET.SubElement(renderer, "rasterTransparency")
    origin = ET.SubElement(renderer, "minMaxOrigin")
    for key, value in (("limits", "CumulativeCut"), ("extent", "WholeRaster"), ("statAccuracy", "Estimated"),
                       ("cumulativeCutLower", "0.02"), ("cumulativeCutUpper", "0.98"), ("stdDevFactor", "2")):
        ET.SubElement(origin, key).text = value
    for colour, (lo, hi) in zip(("red", "green", "blue"), image.ranges, strict=True):
        enhancement = ET.SubElement(renderer, f"{colour}ContrastEnhancement")
        ET.SubElement(enhancement, "minValue").text = repr(float(lo))
        ET.SubElement(enhancement, "maxValue").text = repr(float(hi))
        ET.SubElement(enhancement, "algorithm").text = "StretchToMinimumMaximum"
    ET.SubElement(pipe, "brightnesscontrast", brightness="0", contrast="0", gamma="1")
    ET.SubElement(pipe, "huesaturation", saturation="0", grayscaleMode="0", invertColors="0",
                  colorizeOn="0", colorizeRed="255", colorizeGreen="128", colorizeBlue="128", colorizeStrength="100")
    ET.SubElement(pipe, "rasterresampler", maxOversampling="2")
    ET.SubElement(pipe, "resamplingStage").text = "resamplingFilter"
    ET.SubElement(element, "blendMode").text = "0"
    return element


def project_xml(con: sqlite3.Connection, gpkg_name: str, images: list[ImageLayer], title: str) -> str:
    """The .qgs document of the project."""
    now = dt.datetime.now().replace(microsecond=0)
    root = ET.Element("qgis", {"projectname": title, "version": QGIS_VERSION, "saveUser": "swc-rs",
                               "saveUserFull": "swc-rs", "saveDateTime": now.isoformat()})
    ET.SubElement(root, "homePath", path="")
    ET.SubElement(root, "title").text = title
    ET.SubElement(root, "autotransaction", active="0")
    ET.SubElement(root, "evaluateDefaultValues", active="0")
    ET.SubElement(root, "trust", active="0")
    project_crs = ET.SubElement(root, "projectCrs")
    _spatialrefsys(project_crs, MAP_CRS)

    geoms = geometry_columns(con)
    vectors = [layer for layer in LAYER_ORDER if layer in geoms]
    tree = ET.SubElement(root, "layer-tree-group")
    ET.SubElement(tree, "customproperties")
    for layer in vectors:
        node = ET.SubElement(tree, "layer-tree-layer", {
            "id": _layer_id(layer), "name": LAYER_TITLES[layer], "source": f"./{gpkg_name}|layername={layer}",
            "providerKey": "ogr", "checked": "Qt::Checked", "expanded": "1", "legend_exp": ""})
        ET.SubElement(node, "customproperties")
    if images:
        group = ET.SubElement(tree, "layer-tree-group", name="影像", checked="Qt::Checked", expanded="1")
        ET.SubElement(group, "customproperties")
        for image in images:
            node = ET.SubElement(group, "layer-tree-layer", {
                "id": raster_layer(image).findtext("id"), "name": image.title, "source": str(image.path),
                "providerKey": "gdal", "checked": "Qt::Checked" if image.visible else "Qt::Unchecked",
                "expanded": "0", "legend_exp": ""})
            ET.SubElement(node, "customproperties")
    order = ET.SubElement(tree, "custom-order", enabled="0")
    layer_ids = [_layer_id(v) for v in vectors] + [raster_layer(i).findtext("id") for i in images]
    for layer_id in layer_ids:
        ET.SubElement(order, "item").text = layer_id

    ET.SubElement(root, "relations")
    canvas = ET.SubElement(root, "mapcanvas", name="theMapCanvas", annotationsVisible="1")
    ET.SubElement(canvas, "units").text = "degrees"
    marks = ",".join("?" * len(vectors))
    rows = con.execute(
        f"SELECT min(min_x), min(min_y), max(max_x), max(max_y) FROM gpkg_contents WHERE table_name IN ({marks})",
        vectors).fetchone() if vectors else None
    if rows and None not in rows:
        pad_x, pad_y = 0.05 * (rows[2] - rows[0]), 0.05 * (rows[3] - rows[1])
        _extent(canvas, "extent", (rows[0] - pad_x, rows[1] - pad_y, rows[2] + pad_x, rows[3] + pad_y))
    ET.SubElement(canvas, "rotation").text = "0"
    destination = ET.SubElement(canvas, "destinationsrs")
    _spatialrefsys(destination, MAP_CRS)
    ET.SubElement(canvas, "rendermaptile").text = "0"

    layers = ET.SubElement(root, "projectlayers")
    for layer in vectors:
        layers.append(vector_layer(con, layer, geoms[layer], gpkg_name))
    for image in images:
        layers.append(raster_layer(image))
    layer_order = ET.SubElement(root, "layerorder")
    for layer_id in layer_ids:
        ET.SubElement(layer_order, "layer", id=layer_id)

    properties = ET.SubElement(root, "properties")
    paths = ET.SubElement(properties, "Paths")
    ET.SubElement(paths, "Absolute", type="bool").text = "false"
    srs_properties = ET.SubElement(properties, "SpatialRefSys")
    ET.SubElement(srs_properties, "ProjectionsEnabled", type="int").text = "1"
    ET.SubElement(srs_properties, "ProjectCrs", type="QString").text = MAP_CRS
    ET.SubElement(root, "visibility-presets")
    ET.SubElement(root, "transformContext")
    body = ET.tostring(root, encoding="unicode")
    return "<!DOCTYPE qgis PUBLIC 'http://mrcc.com/qgis.dtd' 'SYSTEM'>\n" + body + "\n"


def qgz_bytes(qgs: str, name: str = PROJECT_NAME) -> bytes:
    """The zipped project (.qgz) holding ``name``.qgs."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr(f"{name}.qgs", qgs.encode("utf-8"))
    return buffer.getvalue()


def read_qgs(content: str | bytes) -> str:
    """The .qgs text of a ``qgis_projects.content`` value (hex text of a .qgz)."""
    raw = bytes.fromhex(content if isinstance(content, str) else content.decode("ascii"))
    with zipfile.ZipFile(io.BytesIO(raw)) as archive:
        name = next(n for n in archive.namelist() if n.endswith(".qgs"))
        return archive.read(name).decode("utf-8")


def _run_info(con: sqlite3.Connection) -> dict:
    try:
        cursor = con.execute("SELECT * FROM run_info ORDER BY rowid DESC LIMIT 1")
    except sqlite3.OperationalError:
        return {}
    row = cursor.fetchone()
    return dict(zip([d[0] for d in cursor.description], row, strict=True)) if row else {}


def project_images(info: dict) -> list[ImageLayer]:
    """The image layers of a run, or none (logged) when the images cannot be read now."""
    from swc_rs.errors import SwcError

    before, after = info.get("before"), info.get("after")
    if not before or not after:
        return []
    from swc_rs.raster import run_image_args

    try:
        return image_layers(Path(before), Path(after), **run_image_args(info))
    except (SwcError, OSError) as err:
        log.warning("the QGIS project leaves out the images: %s", err)
        return []


def write_project(con: sqlite3.Connection, target: Path, *, images: bool = True, name: str = PROJECT_NAME) -> None:
    """Store the project ``name`` in ``qgis_projects`` (replacing one of the same name)."""
    info = _run_info(con)
    layers = project_images(info) if images else []
    period = info.get("period") or ""
    title = f"水土保持遥感监管 {period}".strip()
    qgs = project_xml(con, Path(target).name, layers, title)
    content = qgz_bytes(qgs, name).hex()
    metadata = json.dumps({"last_modified_time": dt.datetime.now().replace(microsecond=0).isoformat(),
                           "last_modified_user": "swc-rs"})
    con.execute("CREATE TABLE IF NOT EXISTS qgis_projects(name TEXT PRIMARY KEY, metadata BLOB, content BLOB)")
    con.execute("INSERT OR REPLACE INTO qgis_projects (name, metadata, content) VALUES (?, ?, ?)",
                (name, metadata, content))
