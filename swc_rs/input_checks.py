"""Inputs that leave nothing to judge: refuse them (exit 2) or say so (warning + run_info).

A run over imagery with no data, or with layers that miss the imagery, would otherwise
give an ordinary-looking result ("0 patches", or patches judged against nothing). The
checks here are cheap in the usual case: a few small sample windows answer them, and
only when those windows find nothing does a check scan the grid window by window
(stopping at the first window that answers it).

Refused (:class:`~swc_rs.errors.RasterInputError` / :class:`~swc_rs.errors.VectorInputError`,
exit 2): a date with no valid pixel in the common extent; no pixel valid on both dates;
a common extent smaller than the smallest minimum patch area; a date whose every valid
pixel has the same values (a fill or a broken product); BEFORE dated after AFTER; zones
that miss the imagery entirely.

Warned (:class:`InputWarning`, recorded in ``run_info["warnings"]`` and printed in the
summary): dates more than ``[inputs] max_span_days`` apart, or the same date;
projects or a sensitive layer that miss the imagery entirely.
"""

from __future__ import annotations

import datetime as dt
import warnings
from collections.abc import Iterator
from pathlib import Path

import geopandas as gpd
import numpy as np
import shapely

from swc_rs.errors import RasterInputError, SwcWarning, VectorInputError
from swc_rs.raster import RasterPair, iter_windows, sample_windows

#: Side of the sample windows (px) tried before any scan of the grid.
SAMPLE_PX = 64
#: Number of sample windows.
SAMPLE_COUNT = 9
#: Window side (px) of the scan when the samples did not answer.
SCAN_PX = 1024


class InputWarning(SwcWarning):
    """The inputs let the run go on, but its result needs a second look (recorded in run_info)."""


def _windows(pair: RasterPair) -> Iterator:
    """The sample windows, then every window of the grid."""
    yield from sample_windows(pair.grid, SAMPLE_COUNT, SAMPLE_PX)
    yield from iter_windows(pair.grid, SCAN_PX)


def check_extent(pair: RasterPair, min_area_hm2: float) -> None:
    """Refuse a common extent smaller than the smallest patch that could be reported."""
    area_hm2 = pair.grid.width * pair.grid.height * pair.pixel_m**2 / 10_000
    if area_hm2 < min_area_hm2:
        raise RasterInputError(
            f"overlaps BEFORE ({pair.before_path}) by {pair.grid.width}×{pair.grid.height} pixels "
            f"({area_hm2:.4f} hm²), less than the smallest minimum patch area {min_area_hm2:g} hm²: no patch could be reported",
            path=pair.after_path, fix="give two images that share more of their area",
        )


def check_pixels(pair: RasterPair) -> None:
    """Refuse a date with no valid pixel in the common extent, no pixel valid on both
    dates, and a date whose valid pixels all hold the same values (constant raster).

    Reads only what it needs: usually the sample windows; a full windowed scan only
    when they find no valid or no differing pixel.
    """
    dates = (("BEFORE", pair.before_path, pair.read_before), ("AFTER", pair.after_path, pair.read_after))
    for name, path, read in dates:
        first: np.ndarray | None = None  # the values of the first valid pixel seen
        varies = False
        for window in _windows(pair):
            data, valid = read(window)
            if not valid.any():
                continue
            values = data[:, valid]
            if first is None:
                first = values[:, 0].copy()
            if (values != first[:, None]).any():
                varies = True
                break
        if first is None:
            raise RasterInputError(
                f"{name} has no valid pixel in the extent it shares with the other date (every pixel is nodata or 0 "
                f"in every band over {pair.grid.width}×{pair.grid.height} pixels)", path=path,
                fix="give an image with data there (check its nodata value with gdalinfo, or that the download is complete)")
        if not varies:
            raise RasterInputError(
                f"{name} holds the same values in every valid pixel ({', '.join(f'{v:.4g}' for v in first)}): "
                "a constant raster has nothing to compare", path=path,
                fix="give the real image (a fill value or a failed processing step wrote this one)")
    for window in _windows(pair):
        if pair.read(window)[2].any():
            return
    raise RasterInputError(
        f"no pixel has data on both dates: BEFORE ({pair.before_path}) and AFTER have data in different parts "
        "of their common extent", path=pair.after_path,
        fix="give two images whose data (not only their frames) overlap")


def check_dates(t1: dt.date | None, t2: dt.date | None, *, before: Path, after: Path, max_span_days: int) -> None:
    """Refuse BEFORE dated after AFTER; warn for the same date or a span over ``max_span_days``."""
    if t1 is None or t2 is None:
        return
    if t1 > t2:
        raise RasterInputError(
            f"BEFORE is dated {t1.isoformat()}, after AFTER ({after}, {t2.isoformat()}): the pair is in the wrong order",
            path=before, fix="give the earlier image first (BEFORE AFTER), or correct the ACQUISITION_DATE tag")
    if t1 == t2:
        warnings.warn(f"{before}: BEFORE and AFTER have the same date {t1.isoformat()}; changes between them are "
                      "differences of sensor or processing, not of the ground", InputWarning, stacklevel=2)
    elif (t2 - t1).days > max_span_days:
        warnings.warn(f"{after}: the dates are {(t2 - t1).days} days apart ({t1.isoformat()} → {t2.isoformat()}), more "
                      f"than [inputs] max_span_days = {max_span_days}: season and regrowth changes are found as "
                      "disturbance and a disturbance may have come and gone", InputWarning, stacklevel=2)


def scene_outline(pair: RasterPair, crs: str) -> shapely.Geometry:
    """The common extent as a polygon in ``crs``."""
    box = shapely.box(*pair.grid.bounds)
    return gpd.GeoSeries([shapely.segmentize(box, max(pair.grid.bounds[2] - pair.grid.bounds[0], 1) / 16)],
                         crs=pair.grid.crs).to_crs(crs).iloc[0]


def check_layers(outline: shapely.Geometry, *, zones: gpd.GeoDataFrame, zones_path: Path,
                 projects: gpd.GeoDataFrame, projects_path: Path,
                 sensitive: dict[Path, gpd.GeoDataFrame]) -> None:
    """Refuse zones that miss the imagery; warn for projects or sensitive layers that miss it.

    ``outline``: :func:`scene_outline` in the layers' CRS.
    """
    def touches(frame: gpd.GeoDataFrame) -> bool:
        return bool(len(frame)) and bool(frame.geometry.intersects(outline).any())

    if not touches(zones):
        raise VectorInputError(
            f"no zone touches the imagery (zones cover {_bounds(zones)}, the imagery {_bounds_of(outline)} in {zones.crs})",
            path=zones_path, fix="give the zones layer of the area the images show (zones/zones_illustrative.gpkg for Ya'an)")
    if len(projects) and not touches(projects):
        warnings.warn(f"{projects_path}: no approved project touches the imagery (projects cover {_bounds(projects)}, "
                      f"the imagery {_bounds_of(outline)}): every construction patch will be 疑似未批先建 — is it the "
                      "project list of this area?", InputWarning, stacklevel=2)
    for path, frame in sensitive.items():
        if len(frame) and not touches(frame):
            warnings.warn(f"{path}: no sensitive area of this layer touches the imagery; it has no effect on this run",
                          InputWarning, stacklevel=2)


def _bounds(frame: gpd.GeoDataFrame) -> str:
    return _format(frame.total_bounds) if len(frame) else "nothing"


def _bounds_of(geom) -> str:
    return _format(shapely.bounds(geom))


def _format(bounds) -> str:
    return "(" + ", ".join(f"{v:.0f}" for v in bounds) + ")"
