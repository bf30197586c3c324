"""`detect()`: compose the stages from two rasters to judged, typed patches.

rasters in → aligned pair (``raster``) → co-registration and normalisation
(``coregistration``, ``change``) → per-window evidence and candidate mask (``change``)
→ polygons merged across seams (``patches``) → object features and QTYPE
(``classify``) → compliance (``compliance``) → :class:`DetectResult`, which
``export.gpkg`` writes.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
import math
import platform
import time
import warnings
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pyproj
import shapely
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
    relative_candidate_mask,
    relative_clear,
    relative_low_mask,
    relative_radiometry,
    relative_seeding,
    relative_seeds,
)
from swc_rs.classify import rule_qtype
from swc_rs.config import DetectConfig
from swc_rs.coregistration import estimate_shift
from swc_rs.errors import SwcWarning, VectorInputError
from swc_rs.history import link_previous
from swc_rs.patches import EIGHT, merge_seams, polygonize_labels, shape_metrics, to_map
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
    from swc_rs.workers import available_cores

    return requested if requested > 0 else available_cores()


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
    reads: list = []
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
    if not reads or pair.shift != (0.0, 0.0):  # (re)read on the corrected grid, once for both fits below
        reads = [pair.read(w) for w in windows]
    bs, as_ = [], []
    per_window = max(1000, config.change.normalisation_sample // max(len(windows), 1))
    rng = np.random.default_rng(0)
    for before, after, valid in reads:
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
        norm = calibrate_scene(lambda: iter(reads), pair.roles, norm, config.change, relative=relative,
                               min_pixels=int(config.change.cloud_min_area_m2 / pair.pixel_m**2))
        log.info("%s radiometry (%s): scene magnitude threshold %.3f", "relative" if relative else "reflectance",
                 "/".join(pair.dtypes), norm.magnitude_threshold)
    return norm, shift, used


#: Per-patch sums gathered in the window pass; the object features are their ratios
#: (see :func:`features_from_stats`). Additive, so the pieces of a patch cut by a
#: window seam add up to the patch. ``seeds``: under relative radiometry with seeding, its
#: seed pixels (:func:`swc_rs.change.relative_seeds`); a patch without any is dropped
#: once the seams are merged, so a patch is judged whole wherever the seams cut it.
STAT_COLUMNS = (
    "n", "veg_before", "veg_after", "veg_after_sq", "bright_before", "bright_after", "bright_after_sq",
    "redness_after", "bare_after", "water_before", "water_after", "magnitude", "candidate", "fine",
    "ring_n", "ring_veg_before", "ring_bright_after", "seeds",
)
#: Width in pixels of the ring around a patch whose BEFORE vegetation and AFTER brightness
#: describe its surroundings (ring_veg_before, ring_bright_after).
RING_PX = 5


def _window_patches(pair: RasterPair, norm: Normalisation, config: DetectConfig, min_pixels: int, model,
                    window: Window) -> tuple[list, np.ndarray]:
    """Candidate polygons (grid pixel coordinates) of one window's core and their sums.

    Returns the polygons (one per 8-connected component of the core's cleaned mask) and
    a ``(len(polygons), len(STAT_COLUMNS))`` float64 array of per-patch sums over the
    patch's valid pixels (and over its ring of :data:`RING_PX` pixels outside every
    candidate), taken from the evidence already in memory: the object features cost no
    second read of the images.
    """
    from scipy import ndimage

    halo = max(config.raster.halo, config.change.cloud_buffer_px + 2,
               config.change.closing_px + max(config.change.opening_px, config.change.relative_opening_px) + 2, RING_PX + 2,
               config.change.magnitude_smoothing_px + 2)
    outer, core = expand_window(window, halo, pair.grid)
    before, after, valid = pair.read(outer)
    after_norm = norm.apply(after)
    ev = pixel_evidence(before, after, pair.roles, after_norm, norm.scale, norm.whitening)
    mask = seeds = None
    if norm.relative:  # not reflectance: the scene-adaptive rule alone
        clear = relative_clear(before, after_norm, valid, pair.roles, ev, norm, config.change,
                               min_pixels=int(config.change.cloud_min_area_m2 / pair.pixel_m**2))
        if _seeded(norm, config):  # every region here; the patches are judged on their seeds once merged
            mask = relative_low_mask(ev, clear, norm.magnitude_threshold, config.change, norm.levels)
            seeds = relative_seeds(ev, clear, norm.magnitude_threshold, config.change, norm.levels)
        else:
            mask = relative_candidate_mask(ev, clear, norm.magnitude_threshold, config.change, norm.levels)
    else:
        excluded = cloud_shadow_mask(before, after_norm, pair.roles, ev, config.change,
                                     min_pixels=int(config.change.cloud_min_area_m2 / pair.pixel_m**2))
        if model is not None:
            mask = model.pixel_mask(before, after_norm, valid, excluded, pair.roles, ev, config)
    if mask is None:
        mask = candidate_mask(ev, valid, excluded, config.change, norm.magnitude_threshold)
    opening = config.change.relative_opening_px if norm.relative else config.change.opening_px
    mask = clean_mask(mask, opening_px=opening, closing_px=config.change.closing_px, min_pixels=min_pixels)
    core_mask = mask[core]
    if not core_mask.any():
        return [], np.zeros((0, len(STAT_COLUMNS)))
    core_labels, count = ndimage.label(core_mask, structure=EIGHT)
    polygons = polygonize_labels(core_labels, int(window.row_off), int(window.col_off))

    # Sums over the patches' bounding box plus the ring (reflect edges never reach a patch pixel).
    labels = np.zeros(mask.shape, dtype=np.int32)
    labels[core] = core_labels
    rows = np.flatnonzero(labels.any(axis=1))
    cols = np.flatnonzero(labels.any(axis=0))
    r0, r1 = max(0, rows[0] - RING_PX - 1), min(mask.shape[0], rows[-1] + RING_PX + 2)
    c0, c1 = max(0, cols[0] - RING_PX - 1), min(mask.shape[1], cols[-1] + RING_PX + 2)
    box = (slice(r0, r1), slice(c0, c1))
    labels = labels[box]
    ok = valid[box]
    ring = ndimage.maximum_filter(labels, size=2 * RING_PX + 1)
    ring = np.where(~mask[box] & ok, ring, 0)
    labels = np.where(ok, labels, 0)
    sel_in, sel_ring = np.flatnonzero(labels), np.flatnonzero(ring)
    lab_in, lab_ring = labels.ravel()[sel_in], ring.ravel()[sel_ring]

    def total(values, lab=lab_in):
        return np.bincount(lab, weights=np.asarray(values, dtype=np.float64), minlength=count + 1)[1:]

    width = mask.shape[1]
    box_w = c1 - c0
    flat_in = (sel_in // box_w + r0) * width + sel_in % box_w + c0  # the same pixels in the window
    flat_ring = (sel_ring // box_w + r0) * width + sel_ring % box_w + c0

    def at(values, flat=flat_in):  # the window's values at the selected pixels (1-D)
        return np.ravel(values)[flat]

    # Every per-pixel quantity is taken at the patches' (and rings') pixels only: a few
    # per cent of the box. The 1-D evidence holds the patch pixels of the box.
    ev_in = dataclasses.replace(ev, **{f.name: at(getattr(ev, f.name)) for f in dataclasses.fields(ev)
                                       if isinstance(getattr(ev, f.name), np.ndarray)})
    veg_after = ev_in.veg_after.astype(np.float64)
    bright_after = ev_in.bright_after.astype(np.float64)
    # Fine texture: mean absolute deviation from the 3×3 mean (lumpy spoil and benched
    # rock are rough; cleared subsoil and fields are even).
    box_bright = ev.bright_after[box]
    fine = np.abs(ev_in.bright_after - ndimage.uniform_filter(box_bright, size=3).ravel()[sel_in])
    water = config.change.water_ndwi
    everywhere = np.ones(len(sel_in), dtype=bool)
    candidate = candidate_mask(ev_in, everywhere, ~everywhere, config.change)
    red, blue = at(after[pair.roles.index("red")]), at(after[pair.roles.index("blue")])
    stats = np.column_stack([
        np.bincount(lab_in, minlength=count + 1)[1:].astype(np.float64),
        total(ev_in.veg_before),
        total(veg_after),
        total(veg_after**2),
        total(ev_in.bright_before),
        total(bright_after),
        total(bright_after**2),
        total(indices.redness(red, blue)),
        total(ev_in.bare_after),
        total(ev_in.water_before > water),
        total(ev_in.water_after > water),
        total(ev_in.magnitude),
        total(candidate),
        total(fine),
        np.bincount(lab_ring, minlength=count + 1)[1:].astype(np.float64),
        total(at(ev.veg_before, flat_ring), lab_ring),
        total(at(ev.bright_after, flat_ring), lab_ring),
        total(at(seeds)) if seeds is not None else np.zeros(count),
    ])
    return polygons, stats


def _seeded(norm: Normalisation, config: DetectConfig) -> bool:
    """Whether the relative rule's regions must hold a seed (see ``seeds`` in :data:`STAT_COLUMNS`)."""
    return norm.relative and relative_seeding(config.change) and bool(np.isfinite(norm.magnitude_threshold))


_FEATURE_COLUMNS = (
    "veg_before", "veg_after", "bright_before", "bright_after", "bright_after_cv", "redness_after",
    "bare_after", "water_before", "water_after", "magnitude", "candidate_frac", "ring_veg_before",
    "ring_bright_after", "texture_fine", "veg_after_std",
)


def features_from_stats(stats: np.ndarray, metric: dict) -> pd.DataFrame:
    """Object features (see :data:`swc_rs.classify.FEATURES`) from the per-patch sums.

    Means over the patch's valid pixels (and over its ring for ``ring_*``); a patch or
    ring without valid pixels gets 0.
    """
    col = {name: stats[:, i] for i, name in enumerate(STAT_COLUMNS)}
    n = np.maximum(col["n"], 1.0)
    ring_n = np.maximum(col["ring_n"], 1.0)

    def mean(name):
        return col[name] / n

    bright = mean("bright_after")
    veg_after = mean("veg_after")
    columns = {
        "veg_before": mean("veg_before"),
        "veg_after": veg_after,
        "bright_before": mean("bright_before"),
        "bright_after": bright,
        "bright_after_cv": np.sqrt(np.maximum(mean("bright_after_sq") - bright**2, 0.0)) / np.maximum(bright, 1e-6),
        "redness_after": mean("redness_after"),
        "bare_after": mean("bare_after"),
        "water_before": mean("water_before"),
        "water_after": mean("water_after"),
        "magnitude": mean("magnitude"),
        "candidate_frac": mean("candidate"),
        "ring_veg_before": col["ring_veg_before"] / ring_n,
        "ring_bright_after": col["ring_bright_after"] / ring_n,
        "texture_fine": mean("fine") / np.maximum(bright, 1e-6),
        "veg_after_std": np.sqrt(np.maximum(mean("veg_after_sq") - veg_after**2, 0.0)),
    }
    frame = pd.DataFrame({c: columns[c] for c in _FEATURE_COLUMNS})
    for key in ("area_m2", "compactness", "solidity", "rectangularity", "elongation", "width_m"):
        frame[key] = metric[key]
    return frame


# Per-process state of the window workers: each opens its own datasets once.
_WORKER: dict = {}


def _init_worker(request: DetectRequest) -> None:
    from swc_rs.workers import one_native_thread, reuse_freed_memory

    reuse_freed_memory()

    config = request.config
    if "pair" in _WORKER:
        _WORKER["pair"].close()
    _WORKER.clear()
    _WORKER.update(
        request=request,
        threads=one_native_thread(),  # the windows are the parallelism
        pair=RasterPair(request.before, request.after, sensor=request.sensor, band_map=request.band_map,
                        resampling=config.raster.resampling, gdal_cache_mb=config.raster.gdal_cache_mb),
    )


def _worker_window(job: tuple) -> tuple[list, np.ndarray]:
    request, window, norm, shift, min_pixels, pixel_model = job
    if _WORKER.get("request") != request:  # the first window of this run in this process
        _init_worker(request)
    w = _WORKER
    if w["pair"].shift != shift:
        w["pair"].set_shift(*shift)
    model = None
    if pixel_model:  # only models with pixel models are loaded here (the patch typer runs in the parent)
        if "model" not in w:
            from swc_rs.model import load_model

            w["model"] = load_model(w["request"].model)
            from swc_rs.workers import one_native_thread

            w["threads"] = one_native_thread()  # again: OpenMP came with the model
        model = w["model"]
    return _window_patches(w["pair"], norm, w["request"].config, min_pixels, model, window)


def _worker_calibrate(request: DetectRequest) -> tuple:
    """:func:`_calibrate` in a window worker: its result, the shift it set on the pair
    and the log records it wrote (logging is not set up in the worker)."""
    import logging

    if _WORKER.get("request") != request:
        _init_worker(request)
    records: list = []
    handler = logging.Handler(logging.DEBUG)
    handler.emit = records.append
    logger = logging.getLogger("swc_rs")
    level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    try:
        norm, shift, used = _calibrate(_WORKER["pair"], request.config)
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
    return norm, shift, used, _WORKER["pair"].shift, [(r.name, r.levelno, r.getMessage()) for r in records]


def _start_calibration(pair: RasterPair, request: DetectRequest, pool: _WindowPool) -> Callable:
    """A callable returning :func:`_calibrate`'s result, computed in a spawned window
    worker when there is one: there it runs beside this process's reading of the
    vectors and loading of the model (in one process they shared a GIL, leaving the
    other core idle). The shift it applied is applied to ``pair`` too. If the worker
    fails (or there is none), this process calibrates, and reports any problem."""
    if pool.executor is None:
        return lambda: _calibrate(pair, request.config)
    future = pool.executor.submit(_worker_calibrate, request)

    def result():
        try:
            norm, shift, used, applied, records = future.result()
        except Exception:  # noqa: BLE001 - calibrated here instead, where errors are reported properly
            log.debug("calibration in the worker failed; calibrating here", exc_info=True)
            return _calibrate(pair, request.config)
        for name, level, message in records:
            logging.getLogger(name).log(level, message)
        if applied != (0.0, 0.0):
            pair.set_shift(*applied)
        return norm, shift, used

    return result


class _WindowPool:
    """The window workers of one run on ``workers`` cores: this process and
    ``workers - 1`` spawned processes. ``executor``: processes started earlier
    (:func:`swc_rs.workers.start_workers` with :mod:`swc_rs.pipeline`; the caller shuts
    them down), else they are started here, early, so that their start-up (imports,
    opening the images) overlaps this process's reading of the inputs and its
    calibration. ``workers`` ≤ 1 runs every window in this process."""

    def __init__(self, request: DetectRequest, workers: int, pair: RasterPair, executor=None):
        windows = sum(1 for _ in iter_windows(pair.grid, request.config.raster.window_size))
        self.workers = workers = max(1, min(workers, windows))  # never more workers than windows
        self.executor = None
        self.owns_executor = False
        if workers > 1:
            from swc_rs.workers import start_workers

            self.owns_executor = executor is None
            self.executor = start_workers(workers - 1, module=__name__) if executor is None else executor

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        if self.owns_executor:
            self.executor.shutdown(wait=True, cancel_futures=True)


def _parent_threads(pool: _WindowPool, request: DetectRequest):
    """With window workers on every core, this process's own native thread pools (BLAS
    in the calibration) are limited to one thread: while the workers start up, spinning
    threads only steal their cores. The patch typer's OpenMP, loaded with the model, is
    limited where it predicts."""
    import contextlib

    if pool.workers <= 1:
        return contextlib.nullcontext()
    from swc_rs.workers import one_native_thread

    return one_native_thread()


def _find_patches(pair: RasterPair, norm: Normalisation, request: DetectRequest, min_pixels: int, progress: Progress,
                  model=None, pool: _WindowPool | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Polygons of every candidate patch, merged across window seams (pixel
    coordinates), and their sums (:data:`STAT_COLUMNS`).

    With a worker pool the windows are shared among its processes; the result does not
    depend on the number of workers.
    """
    config = request.config
    size = config.raster.window_size
    windows = list(iter_windows(pair.grid, size))
    polygons: list = []
    stats: list[np.ndarray] = [np.zeros((0, len(STAT_COLUMNS)))]
    if pool is None or pool.executor is None:
        finished = enumerate(_window_patches(pair, norm, config, min_pixels, model, window) for window in windows)
    else:
        log.info("processing %d windows on %d cores (this process and %d spawned)", len(windows), pool.workers,
                 pool.workers - 1)
        pixel_model = bool(model is not None and model.families())
        finished = _shared_windows(
            windows, lambda window: _window_patches(pair, norm, config, min_pixels, model, window),
            _worker_window, lambda window: (request, window, norm, pair.shift, min_pixels, pixel_model), pool)
    results: list = [None] * len(windows)
    for done, (index, result) in enumerate(finished, start=1):
        results[index] = result
        progress("detect", done, len(windows))
    for pieces, sums in results:  # in window order, whoever did them
        polygons.extend(pieces)
        stats.append(sums)
    geoms, owner = merge_seams(polygons, size, return_owner=True)
    merged = np.zeros((len(geoms), len(STAT_COLUMNS)))
    np.add.at(merged, owner, np.concatenate(stats))
    return geoms, merged


def _shared_windows(windows: list, run_here: Callable, remote: Callable, job: Callable, pool: _WindowPool):
    """``(index, result)`` of every window as it finishes, computed by this process
    (``run_here(window)``) and the pool's spawned workers (``remote(job(window))``)
    taking windows from one queue (:func:`swc_rs.workers.share_work`).

    This process works from the first window on, the workers from the last one back:
    each process goes through a region of neighbouring windows, so the image blocks
    under a halo it shares with the window before are still in its GDAL block cache
    (decoded once, not once per window). When the pool breaks (a worker died), this
    process does the windows that are left, the lost one included; any other error in
    a worker is raised here.
    """
    from concurrent.futures.process import BrokenProcessPool

    from swc_rs.workers import RETRY_HERE, share_work

    def lost(window, err: BaseException):
        if isinstance(err, BrokenProcessPool):
            return RETRY_HERE
        raise err

    return share_work(windows, run_here, lambda window: pool.executor.submit(remote, job(window)),
                      pool.workers - 1, on_lost=lost, remote_from_end=True)


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


def detect(request: DetectRequest, progress: Progress | None = None, executor=None) -> DetectResult:
    """Run the whole detection on two dates of imagery.

    Parameters
    ----------
    request
        Inputs and configuration.
    progress
        Optional callback ``progress(stage, done, total)``.
    executor
        Window worker processes started earlier (see :class:`_WindowPool`), else they
        are started here when the image has several windows and ``request.workers``
        allows more than one core.

    Returns
    -------
    DetectResult
        Patches, project and zone summaries (EPSG:4490) and the run record.

    Raises
    ------
    InputError
        Any bad input (see :mod:`swc_rs.errors`); nothing has been written then.
    """
    from swc_rs.workers import reuse_freed_memory

    progress = progress or _noop
    config = request.config
    reuse_freed_memory()  # a window's temporaries reuse the last window's memory
    clock = _Clock()
    started = dt.datetime.now(dt.UTC)
    with RasterPair(request.before, request.after, sensor=request.sensor, band_map=request.band_map,
                    resampling=config.raster.resampling, gdal_cache_mb=config.raster.gdal_cache_mb) as pair, \
            _WindowPool(request, _workers(request.workers), pair, executor) as pool, \
            _parent_threads(pool, request), \
            ThreadPoolExecutor(max_workers=2, thread_name_prefix="swc-rs-load") as loader:
        # The pair is calibrated in a window worker (when there is one), the model loads
        # and the inputs' checksums (for run_info) are taken in threads while the
        # vectors are read (hashing releases the GIL).
        calibration = _start_calibration(pair, request, pool)
        model_future = None
        if request.model is not None:
            from swc_rs.model import load_model, pixel_families_hint

            model_future = loader.submit(load_model, request.model)
        sums = {name: loader.submit(_checksums, paths) for name, paths in (
            ("before", [request.before]), ("after", [request.after]), ("zones", [request.zones]),
            ("projects", [request.projects]), ("sensitive", list(request.sensitive)))}
        area_crs = choose_area_crs(pair)
        zones = read_zones(request.zones, request.zones_layer, area_crs)
        projects = read_projects(request.projects, request.projects_layer, area_crs)
        sensitive = read_sensitive(request.sensitive, area_crs)
        history = None
        if request.history is not None:
            from swc_rs.verification import load_store

            history = load_store(request.history)
        clock.lap("read_inputs")

        pixel_m = ground_pixel_size(pair)
        min_pixels = max(1, int(config.smallest_min_area_hm2 * 10_000 / pixel_m**2))
        norm, shift, used = calibration()
        clock.lap("calibrate")
        # The windows wait for the model only if it has pixel models; a patch typer
        # alone (the shipped model) goes on loading beside them (~2 s with its imports).
        model = None
        if model_future is not None and pixel_families_hint(request.model) != []:
            model = model_future.result()
        clock.lap("model")
        geoms_px, stats = _find_patches(pair, norm, request, min_pixels, progress, model, pool)
        if model_future is not None and model is None:
            model = model_future.result()
            if model.families():  # the file's schema misled the hint: the windows again, with the pixel models
                log.warning("%s has pixel models its schema did not show; finding the patches again with them",
                            request.model)
                geoms_px, stats = _find_patches(pair, norm, request, min_pixels, progress, model, pool)
        if _seeded(norm, config):  # a region cut by a seam was kept in each window: judged whole now
            held = stats[:, STAT_COLUMNS.index("seeds")] > 0
            geoms_px, stats = geoms_px[held], stats[held]
        if pool.owns_executor:  # done with them: they wind down while the patches are judged
            pool.executor.shutdown(wait=False)  # (the caller's workers stay: detect's CLI has them make chips)
        clock.lap("detect")

        frame = gpd.GeoDataFrame(geometry=to_map(geoms_px, pair.grid.transform), crs=pair.grid.crs).to_crs(area_crs)
        frame["QAREA"] = np.round(frame.geometry.area.to_numpy() / 10_000, 4)
        frame["X_ZONE"] = _assign_zones(frame, zones) if len(frame) else np.array([], dtype=object)
        min_area = np.array([config.rules_for(z).min_area_hm2 for z in frame["X_ZONE"]])
        keep = frame["QAREA"].to_numpy() >= (min_area if len(frame) else 0)
        frame = frame[keep].reset_index(drop=True)
        metric = shape_metrics(frame.geometry.values)
        feats = features_from_stats(stats[keep], metric)
        clock.lap("features")
        relative = norm.relative  # not reflectance: the model and absolute typing rules do not hold
        if model is not None and not relative:
            from swc_rs.workers import one_native_thread

            with one_native_thread():  # a few thousand rows: threads cost more than they give
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
            "before_sha256": sums["before"].result(),
            "after": str(request.after),
            "after_sha256": sums["after"].result(),
            "zones": str(request.zones),
            "zones_sha256": sums["zones"].result(),
            "projects": str(request.projects),
            "projects_sha256": sums["projects"].result(),
            "previous": str(request.previous or ""),
            "sensitive": ";".join(str(p) for p in request.sensitive),
            "sensitive_sha256": sums["sensitive"].result(),
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


def _checksums(paths: list) -> str:
    return ";".join(file_checksum(p) for p in paths)


def _multi(geom):
    if geom is None or geom.geom_type == "MultiPolygon":
        return geom
    if geom.geom_type == "Polygon":
        return shapely.MultiPolygon([geom])
    parts = [p for p in shapely.get_parts(geom) if p.geom_type == "Polygon"]
    return shapely.MultiPolygon(parts)
