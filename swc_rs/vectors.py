"""Read zones, responsibility ranges and sensitive layers: CRS, encoding, validity.

The only module (with ``raster`` and ``export``) that reads vector files. Every reader
returns a GeoDataFrame in the CRS it is asked for, with geometries made valid and each
repair reported by a :class:`~swc_rs.errors.RepairedGeometryWarning` naming the feature.
"""

from __future__ import annotations

import logging
import warnings
from pathlib import Path

import geopandas as gpd
import pyogrio
import shapely

from swc_rs.errors import (
    EmptyLayerWarning,
    InputFileError,
    RepairedGeometryWarning,
    VectorInputError,
)

log = logging.getLogger(__name__)

#: CRS of exchange (CGCS2000 geographic) and of area computations (3-degree GK CM 102E).
EXCHANGE_CRS = "EPSG:4490"
AREA_CRS = "EPSG:4543"


def list_layers(path: str | Path) -> list[str]:
    """Names of the layers in an OGR data source."""
    path = Path(path)
    _check_exists(path)
    try:
        return [str(name) for name, _ in pyogrio.list_layers(path)]
    except Exception as err:  # pyogrio raises DataSourceError and friends
        raise InputFileError(
            f"cannot open as a vector data source ({err})",
            path=path,
            fix="give a GeoPackage, shapefile or GeoJSON file that GDAL/OGR can read",
        ) from err


def read_layer(
    path: str | Path,
    layer: str | None = None,
    *,
    to_crs: str | None = None,
    what: str = "layer",
) -> gpd.GeoDataFrame:
    """Read one layer of an OGR data source.

    Parameters
    ----------
    path
        GeoPackage, shapefile, GeoJSON ... any OGR vector source.
    layer
        Layer name; the first layer when ``None``.
    to_crs
        Reproject to this CRS when given. A layer without a CRS is an error then.
    what
        What the layer is, for messages ("zones", "projects" ...).

    Raises
    ------
    InputFileError
        The file is missing, unreadable or has no such layer.
    VectorInputError
        The layer has no CRS but one is needed.
    """
    path = Path(path)
    layers = list_layers(path)
    if layer is not None and layer not in layers:
        raise InputFileError(
            f"has no layer {layer!r} (layers: {', '.join(layers) or 'none'})",
            path=path,
            fix=f"name one of the layers above for the {what}",
        )
    kwargs = {}
    if path.suffix.lower() == ".shp" and not path.with_suffix(".cpg").exists():
        kwargs["encoding"] = _guess_shapefile_encoding(path)
    try:
        frame = gpd.read_file(path, layer=layer, engine="pyogrio", **kwargs)
    except UnicodeDecodeError as err:
        raise InputFileError(
            f"the {what}' text is not UTF-8 ({err.reason} at byte {err.start}), and names in it would come out garbled",
            path=path,
            fix="save it as UTF-8 (QGIS: Export → Save Features As, Encoding UTF-8); for a shapefile a .cpg file "
                "naming its encoding (e.g. GBK) also works",
        ) from err
    except Exception as err:
        raise InputFileError(
            f"cannot read the {what} ({err})",
            path=path,
            fix="check that the file is a complete, readable vector data source",
        ) from err
    if to_crs is not None:
        if frame.crs is None:
            raise VectorInputError(
                f"the {what} layer has no coordinate reference system",
                path=path,
                fix="assign the CRS in QGIS (Layer → Set CRS) or ship the .prj next to the shapefile",
            )
        try:
            frame = frame.to_crs(to_crs)
        except Exception as err:  # pyproj raises ProjError, CRSError ...
            raise VectorInputError(
                f"the {what} layer's CRS ({frame.crs.name}) cannot be transformed to {to_crs} ({str(err)[:160]})",
                path=path, fix="reproject the layer to an Earth CRS (e.g. EPSG:4490 or EPSG:4543) in QGIS",
            ) from err
    return frame


def _check_exists(path: Path) -> None:
    if not path.exists():
        raise InputFileError(
            "file does not exist", path=path, fix="check the path and its spelling"
        )
    if path.is_dir() and path.suffix.lower() not in {".gdb"}:
        raise InputFileError(
            "is a folder, not a vector file", path=path, fix="name the file inside it"
        )


def _guess_shapefile_encoding(path: Path) -> str:
    """Shapefiles from Chinese desktop GIS often hold GBK text with no .cpg."""
    dbf = path.with_suffix(".dbf")
    if not dbf.exists():
        return "utf-8"
    raw = dbf.read_bytes()
    try:
        raw.decode("utf-8")
        return "utf-8"
    except UnicodeDecodeError:
        log.info("%s: no .cpg and not UTF-8; reading its text as GBK", path)
        return "gbk"


def repair_geometries(frame: gpd.GeoDataFrame, *, path: object, what: str, name_field: str | None = None) -> gpd.GeoDataFrame:
    """Make every geometry valid and polygonal, warning once per repaired feature; drop
    empty ones. Z and M values are dropped (areas are planar); the polygons of a
    geometry collection are kept; a feature with no polygon at all (a point, a line) is
    ignored with a warning."""
    frame = frame.copy()
    if len(frame):
        frame[frame.geometry.name] = shapely.force_2d(frame.geometry.values)
        kinds = shapely.get_type_id(frame.geometry.values)
        other = ~shapely.is_missing(frame.geometry.values) & ~shapely.is_empty(frame.geometry.values) & ~((kinds == 3) | (kinds == 6))
        for idx in frame.index[other]:
            geom = frame.geometry.loc[idx]
            kept = _polygonal(geom)
            warnings.warn(
                f"{path}: {what} feature {_feature_label(frame, idx, name_field)} is a {geom.geom_type}; "
                + ("its polygons are used" if not kept.is_empty else "it holds no polygon and is ignored"),
                RepairedGeometryWarning, stacklevel=2)
        if other.any():
            frame.loc[other, frame.geometry.name] = [_polygonal(g) for g in frame.geometry.values[other]]
    geoms = frame.geometry.values
    missing = shapely.is_missing(geoms) | shapely.is_empty(geoms)
    invalid = ~missing & ~shapely.is_valid(geoms)
    for idx in frame.index[invalid]:
        label = _feature_label(frame, idx, name_field)
        reason = shapely.is_valid_reason(frame.geometry.loc[idx])
        warnings.warn(
            f"{path}: {what} feature {label} has an invalid geometry ({reason}); repaired with make_valid",
            RepairedGeometryWarning,
            stacklevel=2,
        )
    if invalid.any():
        fixed = [_polygonal(g) for g in shapely.make_valid(geoms[invalid])]
        frame.loc[invalid, frame.geometry.name] = fixed
    for idx in frame.index[missing]:
        warnings.warn(
            f"{path}: {what} feature {_feature_label(frame, idx, name_field)} has no geometry; ignored",
            RepairedGeometryWarning,
            stacklevel=2,
        )
    frame = frame[~missing]
    return frame


def _polygonal(geom):
    """Keep the polygonal part of a make_valid result (it may add lines/points)."""
    if geom.geom_type in ("Polygon", "MultiPolygon"):
        return geom
    parts = [p for p in shapely.get_parts(geom) if p.geom_type in ("Polygon", "MultiPolygon")]
    return shapely.unary_union(parts) if parts else shapely.Polygon()


def _feature_label(frame: gpd.GeoDataFrame, idx, name_field: str | None) -> str:
    if name_field and name_field in frame.columns and frame.loc[idx, name_field]:
        return f"#{idx} ({frame.loc[idx, name_field]})"
    return f"#{idx}"


def warn_if_empty(frame: gpd.GeoDataFrame, *, path: object, what: str, consequence: str) -> None:
    if len(frame) == 0:
        warnings.warn(f"{path}: the {what} layer is empty; {consequence}", EmptyLayerWarning, stacklevel=2)
