"""`detect()`: compose the stages from two rasters to judged, typed patches.

rasters in → aligned pair (``raster``) → co-registration and normalisation
(``coregistration``, ``change``) → per-window evidence and candidate mask (``change``)
→ polygons merged across seams (``patches``) → object features and QTYPE
(``classify``) → compliance (``compliance``) → :class:`DetectResult`, which
``export.gpkg`` writes.
"""

from __future__ import annotations

import datetime as dt
import logging
import math
import platform
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pyproj
import shapely
from rasterio import features as rfeatures
from rasterio.windows import Window

from swc_rs import __version__, codes, compliance, indices
from swc_rs.change import (
    Normalisation,
    calibrate_scene,
    candidate_mask,
    clean_mask,
    cloud_shadow_mask,
    fit_normalisation,
    pixel_evidence,
    relative_radiometry,
    relative_window_mask,
)
from swc_rs.classify import rule_qtype
from swc_rs.config import DetectConfig
from swc_rs.coregistration import estimate_shift
from swc_rs.errors import SwcWarning, VectorInputError
from swc_rs.history import link_previous
from swc_rs.patches import merge_seams, polygonize_window, shape_metrics, to_map
from swc_rs.raster import RasterPair, expand_window, file_checksum, iter_windows, sample_windows
from swc_rs.vectors import AREA_CRS, EXCHANGE_CRS, read_layer, repair_geometries, warn_if_empty

log = logging.getLogger(__name__)

#: progress(stage, done, total)
Progress = Callable[[str, int, int], None]

PATCH_FIELDS = (
    "QDNM", "QTYPE", "QAREA", "EAREA", "QDCS", "QDTYPE", "BYD", "PRNM", "RST", "NOTE",
    "X_ZONE", "X_COLOR", "X_CONF", "X_T1", "X_T2", "X_RULE", "X_SHIFT", "X_SENS", "X_REASON",
)
PROJECT_FIELDS = ("PRNM", "DPOZ", "PRTYPE", "SEAA", "SADT", "DAREA", "PAPT", "PAREA", "NOTE")


@dataclass(frozen=True)
class DetectRequest:
    """The inputs of one detect run (paths as given by the user)."""

    before: Path
    after: Path
    zones: Path
    projects: Path
    sensitive: tuple[Path, ...] = ()
    sensor: str = "auto"
    band_map: dict[str, int] | None = None
    config: DetectConfig = field(default_factory=DetectConfig)
    model: Path | None = None
    zones_layer: str | None = None
    projects_layer: str | None = None
    #: Worker processes for the windows (0 = every core). The CLI defaults to 0; library
    #: callers opt in, since spawned workers re-import the caller's main module.
    workers: int = 1
    previous: Path | None = None
    #: History store (``detect --history``): verdicts applied, confirmed violations carried.
    history: Path | None = None


@dataclass
class DetectResult:
    """What a detect run produced, ready to export (all frames in EPSG:4490)."""

    patches: gpd.GeoDataFrame
    projects: gpd.GeoDataFrame
    zones: gpd.GeoDataFrame
    run_info: dict
    features: pd.DataFrame | None = None
    #: Extra non-spatial layers to write (e.g. ``developers`` with --history).
    tables: dict[str, pd.DataFrame] = field(default_factory=dict)

    @property
    def violations(self) -> gpd.GeoDataFrame:
        """Suspected (疑似) and field-confirmed violations (BYD without 疑似, except 合规)."""
        byd = self.patches["BYD"].fillna("")
        confirmed = byd.isin([v for v in codes.BYD_FIELD if v != codes.COMPLIANT])
        return self.patches[byd.str.startswith(codes.SUSPECTED_PREFIX) | confirmed].copy()


class _Clock:
    def __init__(self):
        self.timings: dict[str, float] = {}
        self._t = time.perf_counter()

    def lap(self, stage: str) -> None:
        now = time.perf_counter()
        self.timings[stage] = round(self.timings.get(stage, 0.0) + now - self._t, 3)
        self._t = now


def _noop(stage: str, done: int, total: int) -> None:
    return None


def _workers(requested: int) -> int:
    """Worker processes: ``requested``, or every core this process may use when 0."""
    import os

    if requested > 0:
        return requested
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


# -- inputs -------------------------------------------------------------------------
def read_zones(path: Path, layer: str | None, area_crs: str) -> gpd.GeoDataFrame:
    zones = read_layer(path, layer, to_crs=area_crs, what="zones")
    if "ZONE_CODE" not in zones.columns:
        raise VectorInputError(
            f"the zones layer has no ZONE_CODE field (fields: {', '.join(c for c in zones.columns if c != 'geometry') or 'none'})",
            path=path,
            fix="add a text field ZONE_CODE with Z1..Z5 (see zones/zones_illustrative.gpkg)",
        )
    if len(zones) == 0:
        raise VectorInputError("the zones layer is empty", path=path, fix="give the zone outlines (zones/zones_illustrative.gpkg)")
    zones = repair_geometries(zones, path=path, what="zone", name_field="ZONE_CODE")
    zones["ZONE_CODE"] = zones["ZONE_CODE"].astype(str)
    if "ZONE_NAME" not in zones.columns:
        zones["ZONE_NAME"] = ""
    return zones


def read_projects(path: Path, layer: str | None, area_crs: str) -> gpd.GeoDataFrame:
    projects = read_layer(path, layer, to_crs=area_crs, what="projects")
    if len(projects) and "PRNM" not in projects.columns:
        raise VectorInputError(
            f"the projects layer has no PRNM (项目名称) field (fields: {', '.join(c for c in projects.columns if c != 'geometry')})",
            path=path,
            fix="name the project-name field PRNM, as in the responsibility-range schema of DOMAIN.md",
        )
    warn_if_empty(projects, path=path, what="projects", consequence="every construction patch will be 疑似未批先建 (or 疑似未批先弃 for spoil sites)")
    projects = repair_geometries(projects, path=path, what="project", name_field="PRNM")
    if "PRNM" not in projects.columns:
        projects["PRNM"] = pd.Series(dtype=object)
    projects["PRNM"] = projects["PRNM"].fillna("").astype(str)
    return projects.reset_index(drop=True)


def read_sensitive(paths: Sequence[Path], area_crs: str) -> gpd.GeoDataFrame | None:
    frames = []
    for path in paths:
        frame = read_layer(path, None, to_crs=area_crs, what="sensitive areas")
        frame = repair_geometries(frame, path=path, what="sensitive area", name_field="NAME")
        if "NAME" not in frame.columns:
            frame["NAME"] = Path(path).stem
        frames.append(frame[[c for c in ("NAME", "KIND") if c in frame.columns] + ["geometry"]])
    if not frames:
        return None
    return gpd.GeoDataFrame(pd.concat(frames, ignore_index=True), crs=area_crs)


def choose_area_crs(pair: RasterPair, wanted: str = AREA_CRS) -> str:
    """EPSG:4543 where the scene lies in its area of use, else the scene's UTM zone (warned)."""
    lon_lat = pyproj.Transformer.from_crs(pair.grid.crs, "EPSG:4326", always_xy=True)
    left, bottom, right, top = pair.grid.bounds
    lon, lat = lon_lat.transform((left + right) / 2, (bottom + top) / 2)
    area = pyproj.CRS(wanted).area_of_use
    if area is None or (area.west - 1 <= lon <= area.east + 1 and area.south - 1 <= lat <= area.north + 1):
        return wanted
    zone = int((lon + 180) // 6) + 1
    epsg = (32600 if lat >= 0 else 32700) + zone
    warnings.warn(
        f"the scene ({lon:.2f}E, {lat:.2f}N) lies outside {wanted}'s area of use; areas are computed in EPSG:{epsg} instead",
        SwcWarning,
        stacklevel=2,
    )
    return f"EPSG:{epsg}"


def ground_pixel_size(pair: RasterPair) -> float:
    """Ground size of a pixel in metres (geodesic for geographic grids)."""
    return pair.pixel_m


# -- stages ---------------------------------------------------------------------------
def _calibrate(pair: RasterPair, config: DetectConfig) -> tuple[Normalisation, tuple[float, float], int]:
    """Estimate the shift (and correct it) and fit the radiometric normalisation on sample windows."""
    reg = config.registration
    size = min(reg.window_size, max(64, min(pair.grid.shape) // 2))
    windows = sample_windows(pair.grid, reg.windows, size)
    band = "nir" if "nir" in pair.roles else "red"
    k = pair.roles.index(band)
    shift, used = (0.0, 0.0), 0
    if reg.enabled:
        reads = [pair.read(w) for w in windows]
        rows, cols, used = estimate_shift(
            [b[k] for b, _, _ in reads], [a[k] for _, a, _ in reads], [v for _, _, v in reads],
            max_shift=reg.max_shift_px,
        )
        shift = (rows, cols)
        if math.hypot(rows, cols) > reg.min_shift_px:
            log.info("AFTER is shifted by %.2f rows, %.2f cols; resampling it onto BEFORE", rows, cols)
            pair.set_shift(rows, cols)
        else:
            log.info("misregistration %.2f px is below %.2f px; not corrected", math.hypot(rows, cols), reg.min_shift_px)
    bs, as_ = [], []
    per_window = max(1000, config.change.normalisation_sample // max(len(windows), 1))
    rng = np.random.default_rng(0)
    for w in windows:
        before, after, valid = pair.read(w)
        bright_b = indices.brightness(*(before[pair.roles.index(r)] for r in ("blue", "green", "red")))
        bright_a = indices.brightness(*(after[pair.roles.index(r)] for r in ("blue", "green", "red")))
        clear = valid & (bright_b < config.change.cloud_brightness) & (bright_a < config.change.cloud_brightness)
        idx = np.flatnonzero(clear.ravel())
        if len(idx) > per_window:
            idx = rng.choice(idx, per_window, replace=False)
        bs.append(before.reshape(len(pair.roles), -1)[:, idx])
        as_.append(after.reshape(len(pair.roles), -1)[:, idx])
    norm = fit_normalisation(np.concatenate(bs, axis=1), np.concatenate(as_, axis=1), pif_fraction=config.change.pif_fraction)
    log.info("radiometric normalisation: gain %s offset %s", norm.to_dict()["gain"], norm.to_dict()["offset"])
    relative = relative_radiometry(config.change.radiometry, pair.dtypes)
    if relative or config.change.adaptive_magnitude:  # scene-adaptive rule: threshold from the sample windows
        norm = calibrate_scene(lambda: (pair.read(w) for w in windows), pair.roles, norm, config.change, relative=relative,
                               min_pixels=int(config.change.cloud_min_area_m2 / pair.pixel_m**2))
        log.info("%s radiometry (%s): scene magnitude threshold %.3f", "relative" if relative else "reflectance",
                 "/".join(pair.dtypes), norm.magnitude_threshold)
    return norm, shift, used


def _window_polygons(pair: RasterPair, norm: Normalisation, config: DetectConfig, min_pixels: int, model, window: Window) -> list:
    """Candidate polygons (grid pixel coordinates) of one window's core."""
    halo = max(config.raster.halo, config.change.cloud_buffer_px + 2, config.change.closing_px + config.change.opening_px + 2,
               config.change.magnitude_smoothing_px + 2)
    outer, core = expand_window(window, halo, pair.grid)
    before, after, valid = pair.read(outer)
    after_norm = norm.apply(after)
    ev = pixel_evidence(before, after, pair.roles, after_norm, norm.scale)
    if norm.relative:  # not reflectance: the scene-adaptive rule alone
        mask = relative_window_mask(before, after_norm, valid, pair.roles, ev, norm, config.change,
                                    min_pixels=int(config.change.cloud_min_area_m2 / pair.pixel_m**2))
        mask = clean_mask(mask, opening_px=config.change.opening_px, closing_px=config.change.closing_px, min_pixels=min_pixels)
        return polygonize_window(mask[core], int(window.row_off), int(window.col_off))
    excluded = cloud_shadow_mask(before, after_norm, pair.roles, ev, config.change,
                                 min_pixels=int(config.change.cloud_min_area_m2 / pair.pixel_m**2))
    mask = None
    if model is not None:
        mask = model.pixel_mask(before, after_norm, valid, excluded, pair.roles, ev, config)
    if mask is None:
        mask = candidate_mask(ev, valid, excluded, config.change, norm.magnitude_threshold)
    mask = clean_mask(mask, opening_px=config.change.opening_px, closing_px=config.change.closing_px, min_pixels=min_pixels)
    return polygonize_window(mask[core], int(window.row_off), int(window.col_off))


# Per-process state of the window workers (each opens its own datasets).
_WORKER: dict = {}


def _init_worker(request: DetectRequest, shift: tuple[float, float], norm: Normalisation, min_pixels: int, pixel_model: bool) -> None:
    pair = RasterPair(request.before, request.after, sensor=request.sensor, band_map=request.band_map,
                      resampling=request.config.raster.resampling, gdal_cache_mb=request.config.raster.gdal_cache_mb)
    if shift != (0.0, 0.0):
        pair.set_shift(*shift)
    model = None
    if pixel_model and request.model is not None:
        from swc_rs.model import load_model

        model = load_model(request.model)
    _WORKER.update(pair=pair, norm=norm, config=request.config, min_pixels=min_pixels, model=model)


def _worker_polygons(window: Window) -> list:
    w = _WORKER
    return _window_polygons(w["pair"], w["norm"], w["config"], w["min_pixels"], w["model"], window)


def _find_patches(pair: RasterPair, norm: Normalisation, request: DetectRequest, min_pixels: int, progress: Progress, model=None, workers: int = 1):
    """Polygons of every candidate patch, merged across window seams (pixel coordinates).

    With ``workers`` > 1 the windows are shared among that many processes; the result
    does not depend on the number of workers.
    """
    config = request.config
    size = config.raster.window_size
    windows = list(iter_windows(pair.grid, size))
    polygons: list = []
    workers = max(1, min(workers, len(windows)))
    if workers == 1:
        for done, window in enumerate(windows, start=1):
            polygons.extend(_window_polygons(pair, norm, config, min_pixels, model, window))
            progress("detect", done, len(windows))
    else:
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        log.info("processing %d windows with %d worker processes", len(windows), workers)
        with ProcessPoolExecutor(
            max_workers=workers,
            mp_context=multiprocessing.get_context("spawn"),
            initializer=_init_worker,
            # Workers load the model only when it has pixel models (the patch typer runs here).
            initargs=(request, pair.shift, norm, min_pixels, bool(model is not None and model.families())),
        ) as pool:
            for done, result in enumerate(pool.map(_worker_polygons, windows), start=1):
                polygons.extend(result)
                progress("detect", done, len(windows))
    return merge_seams(polygons, size)


_FEATURE_COLUMNS = (
    "veg_before", "veg_after", "bright_before", "bright_after", "bright_after_cv", "redness_after",
    "bare_after", "water_before", "water_after", "magnitude", "candidate_frac", "ring_veg_before",
    "ring_bright_after", "texture_fine", "veg_after_std",
)


def patch_features(pair: RasterPair, norm: Normalisation, geoms_px: np.ndarray, metric: dict, config: DetectConfig, progress: Progress) -> pd.DataFrame:
    """Object features of every patch (see :data:`swc_rs.classify.FEATURES`).

    Patches are grouped by processing window; each group's bounding box (plus a ring of
    context) is read once and the statistics of all its patches are taken with labelled
    reductions, so memory follows the window, not the image.
    """
    from scipy import ndimage

    ring_px = 5
    n = len(geoms_px)
    out = np.zeros((n, len(_FEATURE_COLUMNS)), dtype=np.float64)
    if n:
        bounds = shapely.bounds(geoms_px)
        size = config.raster.window_size
        keys = (bounds[:, 1] // size).astype(int) * 1_000_000 + (bounds[:, 0] // size).astype(int)
        groups = [np.flatnonzero(keys == k) for k in np.unique(keys)]
        done = 0
        for members in groups:
            col0 = max(0, int(math.floor(bounds[members, 0].min())) - ring_px)
            row0 = max(0, int(math.floor(bounds[members, 1].min())) - ring_px)
            col1 = min(pair.grid.width, int(math.ceil(bounds[members, 2].max())) + ring_px)
            row1 = min(pair.grid.height, int(math.ceil(bounds[members, 3].max())) + ring_px)
            before, after, valid = pair.read(Window(col0, row0, col1 - col0, row1 - row0))
            ev = pixel_evidence(before, after, pair.roles, norm.apply(after), norm.scale)
            offset = np.array([col0, row0])
            local = list(shapely.transform(geoms_px[members], lambda xy, o=offset: xy - o))
            labels = rfeatures.rasterize(
                [(g, k + 1) for k, g in enumerate(local)], out_shape=valid.shape, fill=0, dtype="int32"
            )
            present = np.bincount(labels.ravel(), minlength=len(members) + 1)[1:] > 0
            for k in np.flatnonzero(~present):  # slivers thinner than a pixel centre
                touched = rfeatures.rasterize([(local[k], k + 1)], out_shape=valid.shape, fill=0, dtype="int32", all_touched=True)
                labels = np.where((labels == 0) & (touched > 0), touched, labels)
            ring = ndimage.maximum_filter(labels, size=2 * ring_px + 1)
            ring = np.where(labels == 0, ring, 0)
            labels = np.where(valid, labels, 0)
            ring = np.where(valid, ring, 0)
            # Reduce only over the pixels that belong to a patch or its ring.
            sel_in = np.flatnonzero(labels.ravel())
            sel_ring = np.flatnonzero(ring.ravel())
            lab_in, lab_ring = labels.ravel()[sel_in], ring.ravel()[sel_ring]
            count_in = np.maximum(np.bincount(lab_in, minlength=len(members) + 1)[1:], 1)
            count_ring = np.maximum(np.bincount(lab_ring, minlength=len(members) + 1)[1:], 1)
            cand = candidate_mask(ev, valid, np.zeros_like(valid), config.change).astype(np.float32)
            red = after[pair.roles.index("red")]
            blue = after[pair.roles.index("blue")]

            inner, around = (sel_in, lab_in, count_in), (sel_ring, lab_ring, count_ring)

            def mean(values, where=inner):
                sel, lab, count = where
                return np.bincount(lab, weights=values.ravel()[sel].astype(np.float64), minlength=len(count) + 1)[1:] / count

            bright_mean = mean(ev.bright_after)
            # Fine texture: mean absolute deviation from the 3×3 mean, relative to brightness
            # (lumpy spoil and benched rock are rough; cleared subsoil and fields are even).
            fine = np.abs(ev.bright_after - ndimage.uniform_filter(ev.bright_after, size=3))
            veg_sq = mean(ev.veg_after.astype(np.float64) ** 2)
            bright_sq = mean(ev.bright_after.astype(np.float64) ** 2)
            bright_std = np.sqrt(np.maximum(bright_sq - bright_mean**2, 0.0))
            columns = {
                "veg_before": mean(ev.veg_before),
                "veg_after": mean(ev.veg_after),
                "bright_before": mean(ev.bright_before),
                "bright_after": bright_mean,
                "bright_after_cv": bright_std / np.maximum(bright_mean, 1e-6),
                "redness_after": mean(indices.redness(red, blue)),
                "bare_after": mean(ev.bare_after),
                "water_before": mean((ev.water_before > config.change.water_ndwi).astype(np.float32)),
                "water_after": mean((ev.water_after > config.change.water_ndwi).astype(np.float32)),
                "magnitude": mean(ev.magnitude),
                "candidate_frac": mean(cand),
                "ring_veg_before": mean(ev.veg_before, around),
                "ring_bright_after": mean(ev.bright_after, around),
                "texture_fine": mean(fine) / np.maximum(bright_mean, 1e-6),
                "veg_after_std": np.sqrt(np.maximum(veg_sq - mean(ev.veg_after) ** 2, 0.0)),
            }
            out[members] = np.column_stack([columns[c] for c in _FEATURE_COLUMNS])
            done += len(members)
            progress("features", done, n)
    frame = pd.DataFrame(out, columns=list(_FEATURE_COLUMNS))
    for key in ("area_m2", "compactness", "solidity", "rectangularity", "elongation", "width_m"):
        frame[key] = metric[key]
    return frame


def _mean(values: np.ndarray, mask: np.ndarray) -> float:
    return float(values[mask].mean()) if mask.any() else 0.0


def _assign_zones(patches: gpd.GeoDataFrame, zones: gpd.GeoDataFrame) -> np.ndarray:
    """Zone of each patch: the zone holding its representative point (else the nearest)."""
    points = gpd.GeoDataFrame(geometry=patches.geometry.representative_point(), crs=patches.crs)
    joined = gpd.sjoin_nearest(points, zones[["ZONE_CODE", "geometry"]], how="left")
    joined = joined[~joined.index.duplicated(keep="first")]
    return joined["ZONE_CODE"].reindex(points.index).fillna("").astype(str).to_numpy()


def _period(config: DetectConfig, t2: dt.date | None) -> str:
    if config.compliance.period:
        return config.compliance.period
    if t2 is not None:
        return t2.strftime("%Y%m")
    today = dt.date.today().strftime("%Y%m")
    warnings.warn(
        f"AFTER has no acquisition date (tags ACQUISITION_DATE/TIFFTAG_DATETIME or a date in the file name); "
        f"patch ids use the current period {today} — set [compliance] period to override",
        SwcWarning,
        stacklevel=2,
    )
    return today


def detect(request: DetectRequest, progress: Progress | None = None) -> DetectResult:
    """Run the whole detection on two dates of imagery.

    Parameters
    ----------
    request
        Inputs and configuration.
    progress
        Optional callback ``progress(stage, done, total)``.

    Returns
    -------
    DetectResult
        Patches, project and zone summaries (EPSG:4490) and the run record.

    Raises
    ------
    InputError
        Any bad input (see :mod:`swc_rs.errors`); nothing has been written then.
    """
    progress = progress or _noop
    config = request.config
    clock = _Clock()
    started = dt.datetime.now(dt.timezone.utc)
    with RasterPair(request.before, request.after, sensor=request.sensor, band_map=request.band_map,
                    resampling=config.raster.resampling, gdal_cache_mb=config.raster.gdal_cache_mb) as pair:
        area_crs = choose_area_crs(pair)
        zones = read_zones(request.zones, request.zones_layer, area_crs)
        projects = read_projects(request.projects, request.projects_layer, area_crs)
        sensitive = read_sensitive(request.sensitive, area_crs)
        model = None
        if request.model is not None:
            from swc_rs.model import load_model

            model = load_model(request.model)
        history = None
        if request.history is not None:
            from swc_rs.verification import load_store

            history = load_store(request.history)
        clock.lap("read_inputs")

        pixel_m = ground_pixel_size(pair)
        min_pixels = max(1, int(config.smallest_min_area_hm2 * 10_000 / pixel_m**2))
        norm, shift, used = _calibrate(pair, config)
        clock.lap("calibrate")
        geoms_px = _find_patches(pair, norm, request, min_pixels, progress, model, workers=_workers(request.workers))
        clock.lap("detect")

        frame = gpd.GeoDataFrame(geometry=to_map(geoms_px, pair.grid.transform), crs=pair.grid.crs).to_crs(area_crs)
        frame["QAREA"] = np.round(frame.geometry.area.to_numpy() / 10_000, 4)
        frame["X_ZONE"] = _assign_zones(frame, zones) if len(frame) else np.array([], dtype=object)
        min_area = np.array([config.rules_for(z).min_area_hm2 for z in frame["X_ZONE"]])
        keep = frame["QAREA"].to_numpy() >= (min_area if len(frame) else 0)
        frame = frame[keep].reset_index(drop=True)
        geoms_px = np.asarray(geoms_px, dtype=object)[keep]
        metric = shape_metrics(frame.geometry.values)
        feats = patch_features(pair, norm, geoms_px, metric, config, progress)
        clock.lap("features")
        relative = norm.relative  # not reflectance: the model and absolute typing rules do not hold
        if model is not None and not relative:
            qtype, conf, reason = model.predict_patches(feats, roles=pair.roles, pixel_m=pixel_m)
        else:
            qtype, conf, reason = rule_qtype(feats, config.classify, config.change, relative=relative)
        frame["QTYPE"] = qtype
        frame["X_CONF"] = np.round(conf, 3)
        frame["X_REASON"] = ""
        frame["NOTE"] = [f"自动判读：疑似{r}" if r else "" for r in reason]
        t1, t2 = pair.dates
        judged = compliance.judge(frame, projects, sensitive, config, pixel_size_m=pixel_m)
        clock.lap("compliance")

        # Stable order (north-west first) and ids.
        period = _period(config, t2)
        cent = judged.geometry.representative_point()
        order = np.lexsort((np.round(cent.x.to_numpy(), 1), -np.round(cent.y.to_numpy(), 1)))
        judged = judged.iloc[order].reset_index(drop=True)
        feats = feats.iloc[order].reset_index(drop=True)
        previous = None
        if request.previous is not None:
            previous = read_layer(request.previous, "disturbance_patches", to_crs=area_crs, what="previous output")
            if "QDNM" not in previous.columns:
                raise VectorInputError("the previous output has no QDNM field", path=request.previous,
                                       fix="give a GeoPackage written by swc-rs detect")
        elif history is not None:
            previous = history.last_period_patches(period, area_crs)
        judged["QDNM"], judged["QDTYPE"] = link_previous(
            judged, previous, f"{config.compliance.admin_code}-{period}", config.history
        )
        judged["QDCS"] = ""
        judged["RST"] = codes.NOT_CHECKED
        judged["X_T1"] = t1.isoformat() if t1 else ""
        judged["X_T2"] = t2.isoformat() if t2 else ""
        judged["X_SHIFT"] = round(math.hypot(*shift), 2)
        judged["geometry"] = judged.geometry.apply(_multi)
        judged = judged[list(PATCH_FIELDS) + ["geometry"]]
        feats.insert(0, "QDNM", judged["QDNM"].to_numpy())
        tables: dict[str, pd.DataFrame] = {}
        applied = None
        if history is not None:
            from swc_rs.verification import apply_history, scene_extent

            applied = apply_history(judged, history, extent=scene_extent(pair.grid.bounds, pair.grid.crs, area_crs))
            judged = applied.patches
            tables["developers"] = applied.developers

        project_summary = compliance.summarise_projects(projects, judged)
        project_summary["geometry"] = project_summary.geometry.apply(_multi)
        zone_summary = compliance.summarise_zones(zones, judged)
        zone_summary["geometry"] = zone_summary.geometry.apply(_multi)
        clock.lap("summaries")

        run_info = {
            "started_utc": started.isoformat(timespec="seconds"),
            "swc_rs_version": __version__,
            "python": platform.python_version(),
            "before": str(request.before),
            "before_sha256": file_checksum(request.before),
            "after": str(request.after),
            "after_sha256": file_checksum(request.after),
            "zones": str(request.zones),
            "zones_sha256": file_checksum(request.zones),
            "projects": str(request.projects),
            "projects_sha256": file_checksum(request.projects),
            "previous": str(request.previous or ""),
            "sensitive": ";".join(str(p) for p in request.sensitive),
            "sensitive_sha256": ";".join(file_checksum(p) for p in request.sensitive),
            "date_before": t1.isoformat() if t1 else "",
            "date_after": t2.isoformat() if t2 else "",
            "period": period,
            "sensor": pair.sensor_name,
            "area_crs": area_crs,
            "pixel_size_m": round(pixel_m, 3),
            "shift_rows": round(shift[0], 3),
            "shift_cols": round(shift[1], 3),
            "shift_windows": used,
            "normalisation": norm.to_dict(),
            "model": str(request.model) if request.model else "rules",
            "model_id": getattr(model, "model_id", "rules"),
            "qtype_by": "model" if model is not None and not relative and model.applies_to(pair.roles, pixel_m) else "rules",
            "parameters": config.to_dict(),
            "workers": _workers(request.workers),
            "n_patches": int(len(judged)),
            "n_suspected": int(judged["BYD"].str.startswith(codes.SUSPECTED_PREFIX).sum()),
            "history": str(request.history or ""),
            **({"n_verified": applied.n_verified, "n_suppressed": applied.n_suppressed,
                "n_confirmed": applied.n_confirmed, "n_carried": applied.n_carried} if applied is not None else {}),
            **pair.describe(),
        }
    to = EXCHANGE_CRS
    clock.lap("finish")
    run_info["timings_s"] = clock.timings
    return DetectResult(
        patches=judged.to_crs(to),
        projects=project_summary.to_crs(to),
        zones=zone_summary.to_crs(to),
        run_info=run_info,
        features=feats,
        tables=tables,
    )


def _multi(geom):
    if geom is None or geom.geom_type == "MultiPolygon":
        return geom
    if geom.geom_type == "Polygon":
        return shapely.MultiPolygon([geom])
    parts = [p for p in shapely.get_parts(geom) if p.geom_type == "Polygon"]
    return shapely.MultiPolygon(parts)
