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
        frame = frame.to_crs(to_crs)
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
    """Make every geometry valid, warning once per repaired feature; drop empty ones."""
    frame = frame.copy()
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
