"""The field list for field apps: KML/KMZ placemarks and a CSV of points.

Field apps such as 奥维互动地图 (Ovital), 两步路 or Google Earth open KML/KMZ: every
suspected patch becomes a placemark coloured by its risk (红/黄/绿) with its outline,
a pin inside it, and the key attributes in the description. A KMZ also carries the
before/after chips, shown in the description. The CSV gives one row per patch with
JD/WD (经度/纬度, CGCS2000 ≈ WGS84 at field accuracy) of a point inside the patch.
"""

from __future__ import annotations

import csv
import html
import io
import os
import tempfile
import xml.etree.ElementTree as ET
import zipfile
from pathlib import Path

import geopandas as gpd
import shapely

from swc_rs import codes
from swc_rs.errors import InputFileError, OutputExistsError
from swc_rs.export.styles import ALIASES

KML_NS = "http://www.opengis.net/kml/2.2"
#: KML colours are aabbggrr.
KML_COLOURS = {codes.RED: ("ff1c1ae3", "661c1ae3"), codes.YELLOW: ("ff00beff", "6600beff"),
               codes.GREEN: ("ff2ca033", "662ca033")}
STYLE_IDS = {codes.RED: "red", codes.YELLOW: "yellow", codes.GREEN: "green"}
PIN_ICONS = {codes.RED: "http://maps.google.com/mapfiles/kml/paddle/red-circle.png",
             codes.YELLOW: "http://maps.google.com/mapfiles/kml/paddle/ylw-circle.png",
             codes.GREEN: "http://maps.google.com/mapfiles/kml/paddle/grn-circle.png"}
#: Attributes shown in a placemark's description and written to the CSV, in order.
KEY_FIELDS = ("QDNM", "X_COLOR", "BYD", "QTYPE", "QAREA", "EAREA", "PRNM", "X_ZONE", "X_SENS", "X_RULE",
              "QDTYPE", "RST", "X_T1", "X_T2", "NOTE")
CSV_FIELDS = ("QDNM", "JD", "WD", "X_COLOR", "BYD", "QTYPE", "QAREA", "EAREA", "PRNM", "X_ZONE", "X_SENS",
              "QDTYPE", "RST", "X_T1", "X_T2", "X_RULE", "NOTE")


def check_target(path: str | Path, suffixes: tuple[str, ...], overwrite: bool, what: str) -> Path:
    """Refuse an existing file without ``overwrite`` and a wrong suffix.

    Raises
    ------
    InputFileError, OutputExistsError
    """
    path = Path(path)
    if path.suffix.lower() not in suffixes:
        raise InputFileError(f"the {what} output must end with {' or '.join(suffixes)}", path=path,
                             fix=f"name it e.g. field{suffixes[0]}")
    if path.exists() and not overwrite:
        raise OutputExistsError("the output already exists", path=path, fix="choose another name or add --overwrite")
    return path


def _atomic_write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=path.suffix, dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def field_points(frame: gpd.GeoDataFrame) -> gpd.GeoSeries:
    """A point inside each patch (its representative point), in lon/lat."""
    return frame.to_crs("EPSG:4490").geometry.representative_point()


def _text(value) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return "" if value != value else f"{value:.4f}".rstrip("0").rstrip(".")
    return str(value)


def _description(row, point, chips: dict[str, str]) -> str:
    lines = [f"<tr><td>{html.escape(ALIASES.get(f, f))}</td><td>{html.escape(_text(row.get(f)))}</td></tr>"
             for f in KEY_FIELDS if f in row]
    lines.append(f"<tr><td>经度 / 纬度</td><td>{point.x:.6f}, {point.y:.6f}</td></tr>")
    body = "<table border=\"1\" cellpadding=\"2\">" + "".join(lines) + "</table>"
    qdnm = str(row.get("QDNM", ""))
    images = [f'<p>{label}<br/><img src="{chips[(qdnm, kind)]}" width="240"/></p>'
              for kind, label in (("before", "前时相"), ("after", "后时相")) if (qdnm, kind) in chips]
    return body + "".join(images)


def _coords(ring) -> str:
    return " ".join(f"{x:.7f},{y:.7f},0" for x, y in ring.coords)


def kml_document(frame: gpd.GeoDataFrame, *, name: str = "疑似违法违规图斑",
                 chips: dict | None = None) -> bytes:
    """KML 2.2 of the patches in ``frame``: a coloured placemark per patch.

    Parameters
    ----------
    frame
        Patches with the INTERFACE.md fields (any CRS; written in lon/lat).
    chips
        (QDNM, "before"/"after") → image path inside a KMZ, shown in descriptions.
    """
    ET.register_namespace("", KML_NS)
    k = f"{{{KML_NS}}}"
    chips = chips or {}
    lonlat = frame.to_crs("EPSG:4490")
    points = field_points(lonlat)
    root = ET.Element(f"{k}kml")
    doc = ET.SubElement(root, f"{k}Document")
    ET.SubElement(doc, f"{k}name").text = name
    for colour, (line, fill) in KML_COLOURS.items():
        style = ET.SubElement(doc, f"{k}Style", id=STYLE_IDS[colour])
        icon_style = ET.SubElement(style, f"{k}IconStyle")
        ET.SubElement(icon_style, f"{k}color").text = line
        icon = ET.SubElement(icon_style, f"{k}Icon")
        ET.SubElement(icon, f"{k}href").text = PIN_ICONS[colour]
        line_style = ET.SubElement(style, f"{k}LineStyle")
        ET.SubElement(line_style, f"{k}color").text = line
        ET.SubElement(line_style, f"{k}width").text = "2.5"
        poly_style = ET.SubElement(style, f"{k}PolyStyle")
        ET.SubElement(poly_style, f"{k}color").text = fill
    folder = ET.SubElement(doc, f"{k}Folder")
    ET.SubElement(folder, f"{k}name").text = name
    for (_, row), point in zip(lonlat.iterrows(), points, strict=True):
        colour = row.get("X_COLOR") if row.get("X_COLOR") in STYLE_IDS else codes.YELLOW
        mark = ET.SubElement(folder, f"{k}Placemark")
        ET.SubElement(mark, f"{k}name").text = _text(row.get("QDNM"))
        ET.SubElement(mark, f"{k}description").text = _description(row, point, chips)
        ET.SubElement(mark, f"{k}styleUrl").text = f"#{STYLE_IDS[colour]}"
        data = ET.SubElement(mark, f"{k}ExtendedData")
        for field in KEY_FIELDS:
            if field in row:
                item = ET.SubElement(data, f"{k}Data", name=field)
                ET.SubElement(item, f"{k}displayName").text = ALIASES.get(field, field)
                ET.SubElement(item, f"{k}value").text = _text(row.get(field))
        multi = ET.SubElement(mark, f"{k}MultiGeometry")
        pin = ET.SubElement(multi, f"{k}Point")
        ET.SubElement(pin, f"{k}coordinates").text = f"{point.x:.7f},{point.y:.7f},0"
        geom = row.geometry
        for polygon in (shapely.get_parts(geom) if geom is not None else []):
            poly = ET.SubElement(multi, f"{k}Polygon")
            ET.SubElement(poly, f"{k}tessellate").text = "1"
            outer = ET.SubElement(ET.SubElement(poly, f"{k}outerBoundaryIs"), f"{k}LinearRing")
            ET.SubElement(outer, f"{k}coordinates").text = _coords(polygon.exterior)
            for interior in polygon.interiors:
                inner = ET.SubElement(ET.SubElement(poly, f"{k}innerBoundaryIs"), f"{k}LinearRing")
                ET.SubElement(inner, f"{k}coordinates").text = _coords(interior)
    return b'<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="utf-8", xml_declaration=False)


def write_kml(frame: gpd.GeoDataFrame, path: str | Path, *, overwrite: bool = False, chips=()) -> Path:
    """Write ``frame`` as .kml, or as .kmz (doc.kml plus the chips under files/).

    Raises
    ------
    InputFileError, OutputExistsError
    """
    path = check_target(path, (".kml", ".kmz"), overwrite, "KML")
    if path.suffix.lower() == ".kml":
        _atomic_write(path, kml_document(frame))
        return path
    inside = {(c.QDNM, c.DATE_KIND): f"files/{c.filename}" for c in chips}
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("doc.kml", kml_document(frame, chips=inside))  # doc.kml first, as readers expect
        for chip in chips:
            archive.writestr(inside[(chip.QDNM, chip.DATE_KIND)], chip.IMAGE)
    _atomic_write(path, buffer.getvalue())
    return path


def write_csv(frame: gpd.GeoDataFrame, path: str | Path, *, overwrite: bool = False) -> Path:
    """One row per patch with JD/WD (lon/lat, 6 decimals) of a point inside it.

    Written as UTF-8 with a byte-order mark so that Excel shows the Chinese text.

    Raises
    ------
    InputFileError, OutputExistsError
    """
    path = check_target(path, (".csv",), overwrite, "CSV")
    points = field_points(frame)
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(CSV_FIELDS)
    for (_, row), point in zip(frame.iterrows(), points, strict=True):
        values = {"JD": f"{point.x:.6f}", "WD": f"{point.y:.6f}"}
        writer.writerow([values.get(f, _text(row.get(f))) for f in CSV_FIELDS])
    _atomic_write(path, buffer.getvalue().encode("utf-8-sig"))
    return path


def export_field(gpkg: str | Path, *, kml: str | Path | None = None, csv_path: str | Path | None = None,
                 chips_dir: str | Path | None = None, overwrite: bool = False,
                 colours: tuple[str, ...] | None = None) -> dict[str, list[Path]]:
    """Write the field files of an OUT.gpkg's suspected_violations: KML/KMZ, CSV, chip folder.

    Every target is checked before anything is written, so a refused target leaves
    all others untouched. ``colours`` (红, 黄, 绿): only the patches of these X_COLOR
    values and their chips; all when None or empty.

    Raises
    ------
    InputFileError
        ``gpkg`` is missing or not an swc-rs output; a target has the wrong suffix.
    OutputExistsError
        A target exists and ``overwrite`` is False.
    """
    import pyogrio

    from swc_rs.export.chips import chips_for_output, export_chips

    gpkg = Path(gpkg)
    if not gpkg.exists():
        raise InputFileError("does not exist", path=gpkg, fix="give an output of swc-rs detect")
    try:
        layers = {name for name, _ in pyogrio.list_layers(gpkg)}
    except Exception as err:  # GDAL's own error types
        raise InputFileError(f"cannot be read as a GeoPackage ({err})", path=gpkg,
                             fix="give an output of swc-rs detect") from err
    if "suspected_violations" not in layers:
        raise InputFileError("has no suspected_violations layer", path=gpkg, fix="give an output of swc-rs detect")
    if kml is not None:
        check_target(kml, (".kml", ".kmz"), overwrite, "KML")
    if csv_path is not None:
        check_target(csv_path, (".csv",), overwrite, "CSV")
    frame = gpd.read_file(gpkg, layer="suspected_violations")
    if colours:
        frame = frame[frame["X_COLOR"].isin(colours)]
    written: dict[str, list[Path]] = {}
    wants_chips = chips_dir is not None or (kml is not None and Path(kml).suffix.lower() == ".kmz")
    chips = chips_for_output(gpkg) if wants_chips else []
    if colours:
        kept = set(frame["QDNM"])
        chips = [chip for chip in chips if chip.QDNM in kept]
    if chips_dir is not None:
        written["chips"] = export_chips(gpkg, chips_dir, overwrite=overwrite, chips=chips)
    if kml is not None:
        written["kml"] = [write_kml(frame, kml, overwrite=overwrite, chips=chips)]
    if csv_path is not None:
        written["csv"] = [write_csv(frame, csv_path, overwrite=overwrite)]
    return written
