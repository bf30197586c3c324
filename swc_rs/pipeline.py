"""`detect()`: compose the stages from two rasters to judged, typed patches.

rasters in → aligned pair (``raster``) → co-registration and normalisation
(``coregistration``, ``change``) → per-window evidence and candidate mask (``change``)
→ polygons merged across seams (``patches``) → object features and QTYPE
(``classify``) → compliance (``compliance``) → :class:`DetectResult`, which
``export.gpkg`` writes. The work of one window (and of the calibration), done here and
in the spawned window workers, is in :mod:`swc_rs.windows`.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import math
import platform
import time
import warnings
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pyproj
import shapely

from swc_rs import __version__, codes, compliance
from swc_rs.change import Normalisation
from swc_rs.change.detectors import RulesDetector
from swc_rs.classify import rule_qtype
from swc_rs.config import DetectConfig
from swc_rs.crops import CropSpool
from swc_rs.errors import ModelError, SwcWarning, VectorInputError
from swc_rs.history import link_previous
from swc_rs.patches import merge_seams, shape_metrics, to_map
from swc_rs.raster import RasterPair, file_checksum, iter_windows, open_pair
from swc_rs.vectors import AREA_CRS, EXCHANGE_CRS, read_layer, repair_geometries, warn_if_empty
from swc_rs.windows import RING_PX as RING_PX  # re-exported: callers import them from here
from swc_rs.windows import STAT_COLUMNS as STAT_COLUMNS
from swc_rs.windows import DetectRequest as DetectRequest
from swc_rs.windows import _calibrate as _calibrate
from swc_rs.windows import _window_patches, _worker_calibrate, _worker_window

log = logging.getLogger(__name__)

#: progress(stage, done, total)
Progress = Callable[[str, int, int], None]

PATCH_FIELDS = (
    "QDNM", "QTYPE", "QAREA", "EAREA", "QDCS", "QDTYPE", "BYD", "PRNM", "RST", "NOTE",
    "X_ZONE", "X_COLOR", "X_CONF", "X_T1", "X_T2", "X_RULE", "X_SHIFT", "X_SENS", "X_REASON",
)
PROJECT_FIELDS = ("PRNM", "DPOZ", "PRTYPE", "SEAA", "SADT", "DAREA", "PAPT", "PAREA", "NOTE")


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
    #: The pixels around patches kept from the window pass for their evidence chips, by
    #: QDNM (:mod:`swc_rs.crops`), and the temporary folder that holds them (removed when
    #: this result is released, or by :meth:`release_crops`).
    chip_crops: dict = field(default_factory=dict, repr=False)
    crop_spool: CropSpool | None = field(default=None, repr=False)

    def release_crops(self) -> None:
        """Remove the chip crops' temporary folder (chips are then read from the images)."""
        if self.crop_spool is not None:
            self.crop_spool.close()
        self.chip_crops, self.crop_spool = {}, None

    @property
    def violations(self) -> gpd.GeoDataFrame:
        """Suspected (疑似) and field-confirmed violations (BYD without 疑似, except 合规)."""
        byd = self.patches["BYD"].fillna("")
        confirmed = byd.isin([v for v in codes.BYD_FIELD if v != codes.COMPLIANT])
        return self.patches[byd.str.startswith(codes.SUSPECTED_PREFIX) | confirmed].copy()


class _Clock:
    """Wall and CPU seconds of this process per stage (``run_info`` ``timings_s`` and
    ``timings_cpu_s``; the window workers' CPU is not in the latter): two clock reads a
    stage. ``benchmarks/profile_detect.py`` extends :meth:`lap` with the workers' CPU."""

    def __init__(self):
        self.timings: dict[str, float] = {}
        self.cpu: dict[str, float] = {}
        self._t = time.perf_counter()
        self._c = time.process_time()

    def lap(self, stage: str) -> None:
        now, cpu = time.perf_counter(), time.process_time()
        self.timings[stage] = round(self.timings.get(stage, 0.0) + now - self._t, 3)
        self.cpu[stage] = round(self.cpu.get(stage, 0.0) + cpu - self._c, 3)
        self._t, self._c = now, cpu


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
    if len(zones) == 0:
        raise VectorInputError("the zones layer has no polygon (its features are empty, points or lines)", path=path,
                               fix="give the zone outlines as polygons (zones/zones_illustrative.gpkg)")
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


def read_sensitive_layers(paths: Sequence[Path], area_crs: str) -> dict[Path, gpd.GeoDataFrame]:
    """Each sensitive layer (NAME, KIND), by path."""
    layers = {}
    for path in paths:
        frame = read_layer(path, None, to_crs=area_crs, what="sensitive areas")
        frame = repair_geometries(frame, path=path, what="sensitive area", name_field="NAME")
        if "NAME" not in frame.columns:
            frame["NAME"] = Path(path).stem
        layers[Path(path)] = frame[[c for c in ("NAME", "KIND") if c in frame.columns] + ["geometry"]]
    return layers


def merge_sensitive(layers: dict[Path, gpd.GeoDataFrame], area_crs: str) -> gpd.GeoDataFrame | None:
    """The sensitive layers as one frame (None when there are none)."""
    if not layers:
        return None
    return gpd.GeoDataFrame(pd.concat(list(layers.values()), ignore_index=True), crs=area_crs)


def read_sensitive(paths: Sequence[Path], area_crs: str) -> gpd.GeoDataFrame | None:
    return merge_sensitive(read_sensitive_layers(paths, area_crs), area_crs)


def read_landuse(path: Path, area_crs: str, config) -> gpd.GeoDataFrame:
    """The land-use layer with a first-level ``CLASS`` column (see :mod:`swc_rs.landuse`)."""
    from swc_rs.landuse import class_field, first_level

    frame = read_layer(path, None, to_crs=area_crs, what="land use")
    name = class_field(frame, config.field)
    if name is None:
        wanted = "DLMC or DLBM" if config.field == "auto" else config.field
        raise VectorInputError(f"the land-use layer has no {wanted} field (its fields: {', '.join(c for c in frame.columns if c != 'geometry') or 'none'})",
                               path=path, fix="give the land survey layer (三调 DLTB) or set [landuse] field to the field holding the classes")
    frame = repair_geometries(frame, path=path, what="land-use polygon", name_field=name)
    return gpd.GeoDataFrame({"CLASS": first_level(frame[name])}, geometry=frame.geometry.values, crs=area_crs)


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


def _start_calibration(pair: RasterPair, request: DetectRequest, pool: _WindowPool,
                       submitted: Future | None = None) -> Callable:
    """A callable returning :func:`_calibrate`'s result, computed in a spawned window
    worker when there is one: there it runs beside this process's reading of the
    vectors and loading of the model (in one process they shared a GIL, leaving the
    other core idle). ``submitted``: that job, already given to the pool's executor by
    the caller. The shift it applied is applied to ``pair`` too. If the worker fails (or
    there is none), this process calibrates, and reports any problem."""
    if pool.executor is None:
        return lambda: _calibrate(pair, request.config)
    future = submitted if submitted is not None else pool.executor.submit(_worker_calibrate, request)

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
    (:func:`swc_rs.workers.start_workers` with :mod:`swc_rs.windows`; the caller shuts
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
            self.executor = start_workers(workers - 1, module="swc_rs.windows") if executor is None else executor

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
                  model=None, pool: _WindowPool | None = None, spool: CropSpool | None = None,
                  first: Future | None = None, detector=None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Polygons of every candidate patch, merged across window seams (pixel
    coordinates), their sums (:data:`STAT_COLUMNS`) and their chip crops (written to
    ``spool``; None for a patch cut by a seam, or without a spool).

    With a worker pool the windows are shared among its processes (this one takes its
    first window once ``first``, work of its own, is done); the result does not depend
    on the number of workers. ``detector``: the learned change detector (None: the rules).
    """
    config = request.config
    size = config.raster.window_size
    windows = list(iter_windows(pair.grid, size))
    folder = str(spool.folder) if spool is not None else None
    polygons: list = []
    crops: list = []
    stats: list[np.ndarray] = [np.zeros((0, len(STAT_COLUMNS)))]
    if pool is None or pool.executor is None:
        finished = enumerate(_window_patches(pair, norm, config, min_pixels, model, window, folder, detector)
                             for window in windows)
    else:
        log.info("processing %d windows on %d cores (this process and %d spawned)", len(windows), pool.workers,
                 pool.workers - 1)
        pixel_model = bool(model is not None and model.families())

        def run_here(window):
            if first is not None:
                wait([first])  # its outcome is collected by the caller
            return _window_patches(pair, norm, config, min_pixels, model, window, folder, detector)

        detector_path = None if detector is None else str(detector.path)
        finished = _shared_windows(
            windows, run_here, _worker_window,
            lambda window: (request, window, norm, pair.shift, min_pixels, pixel_model, folder, detector_path), pool)
    results: list = [None] * len(windows)
    for done, (index, result) in enumerate(finished, start=1):
        results[index] = result
        progress("detect", done, len(windows))
    for pieces, sums, kept in results:  # in window order, whoever did them
        polygons.extend(pieces)
        stats.append(sums)
        crops.extend(kept)
    geoms, owner = merge_seams(polygons, size, return_owner=True)
    merged = np.zeros((len(geoms), len(STAT_COLUMNS)))
    np.add.at(merged, owner, np.concatenate(stats))
    # A patch keeps its piece's crop only when it is that one piece (not cut by a seam).
    pieces = np.empty(len(crops), dtype=object)
    pieces[:] = crops
    merged_crops = np.full(len(geoms), None, dtype=object)
    alone = np.bincount(owner, minlength=len(geoms))[owner] == 1
    merged_crops[owner[alone]] = pieces[alone]
    return geoms, merged, merged_crops


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


@contextlib.contextmanager
def recording_warnings(into: list[str]):
    """Record the text of every :class:`SwcWarning` raised inside (into ``into``), still
    showing it as before (the CLI logs it; a batch tile records it too)."""
    with warnings.catch_warnings():
        warnings.simplefilter("always", SwcWarning)
        shown = warnings.showwarning

        def tee(message, category, filename, lineno, file=None, line=None):
            if issubclass(category, SwcWarning):
                into.append(str(message))
            shown(message, category, filename, lineno, file, line)

        warnings.showwarning = tee
        yield into


def detect(request: DetectRequest, progress: Progress | None = None, executor=None,
           calibration: Future | None = None) -> DetectResult:
    """Run the whole detection on two dates of imagery.

    Every :class:`~swc_rs.errors.SwcWarning` raised on the way (inputs that need a
    second look, see :mod:`swc_rs.input_checks`; repaired geometries ...) is recorded in
    ``run_info["warnings"]``.

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
    calibration
        ``executor.submit(swc_rs.windows._worker_calibrate, request)``, when the caller
        started it early (the CLI does, before importing this module).

    Returns
    -------
    DetectResult
        Patches, project and zone summaries (EPSG:4490) and the run record.

    Raises
    ------
    InputError
        Any bad input (see :mod:`swc_rs.errors`, :mod:`swc_rs.input_checks`); nothing
        has been written then.
    """
    recorded: list[str] = []
    with recording_warnings(recorded):
        result = _detect(request, progress, executor, calibration)
    result.run_info["warnings"] = recorded
    return result


def _detect(request: DetectRequest, progress: Progress | None, executor, calibration: Future | None) -> DetectResult:
    from swc_rs import input_checks
    from swc_rs.workers import reuse_freed_memory

    progress = progress or _noop
    config = request.config
    reuse_freed_memory()  # a window's temporaries reuse the last window's memory
    clock = _Clock()
    started = dt.datetime.now(dt.UTC)
    with open_pair(request.before, request.after, sensor=request.sensor, band_map=request.band_map,
                   raster=config.raster) as pair, \
            _WindowPool(request, _workers(request.workers), pair, executor) as pool, \
            _parent_threads(pool, request), \
            ThreadPoolExecutor(max_workers=2, thread_name_prefix="swc-rs-load") as loader:
        # The pair is calibrated in a window worker (when there is one) while this
        # process reads the vectors and, in threads, takes the inputs' checksums (for
        # run_info; hashing releases the GIL) and loads the model.
        calibration = _start_calibration(pair, request, pool, submitted=calibration if executor is not None else None)
        model_future = None
        pixel_models = None
        if request.model is not None:
            from swc_rs.model import load_model, pixel_families_hint

            pixel_models = pixel_families_hint(request.model) != []
            model_future = loader.submit(load_model, request.model)
        sums = {name: loader.submit(_checksums, paths) for name, paths in (
            ("before", [request.before]), ("after", [request.after]), ("zones", [request.zones]),
            ("projects", [request.projects]), ("sensitive", list(request.sensitive)),
            ("landuse", [request.landuse] if request.landuse else []))}
        t1, t2 = pair.dates
        input_checks.check_dates(t1, t2, before=request.before, after=request.after,
                                 max_span_days=config.inputs.max_span_days)
        input_checks.check_extent(pair, config.smallest_min_area_hm2)
        input_checks.check_pixels(pair)
        area_crs = choose_area_crs(pair)
        zones = read_zones(request.zones, request.zones_layer, area_crs)
        projects = read_projects(request.projects, request.projects_layer, area_crs)
        sensitive_layers = read_sensitive_layers(request.sensitive, area_crs)
        input_checks.check_layers(input_checks.scene_outline(pair, area_crs), zones=zones, zones_path=request.zones,
                                  projects=projects, projects_path=request.projects, sensitive=sensitive_layers)
        sensitive = merge_sensitive(sensitive_layers, area_crs)
        landuse = read_landuse(request.landuse, area_crs, config.landuse) if request.landuse else None
        history = None
        if request.history is not None:
            from swc_rs.verification import load_store, store_name

            history = load_store(request.history)
        clock.lap("read_inputs")

        pixel_m = ground_pixel_size(pair)
        min_pixels = max(1, int(config.smallest_min_area_hm2 * 10_000 / pixel_m**2))
        norm, shift, used = calibration()
        clock.lap("calibrate")
        detector, detector_reason = _change_detector(request, pair, pixel_m, pool)
        clock.lap("change_model")
        # The windows wait for the model only if it has pixel models. A patch typer alone
        # (the shipped model; ~1.1 s of imports and loading) goes on loading while the
        # spawned workers start on the windows; this process joins them once it is
        # loaded: a window and an import sharing one GIL slowed each other down so much
        # that overlapping them here saved 0.2 s of the 1.1 (8192² bench scene).
        model = None
        if pixel_models:
            model = model_future.result()
        clock.lap("model")
        spool = CropSpool.create() if config.chips.spool_max_mb > 0 else None
        geoms_px, stats, crops = _find_patches(pair, norm, request, min_pixels, progress, model, pool, spool,
                                               first=model_future if model is None else None, detector=detector)
        if model_future is not None and model is None:
            model = model_future.result()
            if model.families():  # the file's schema misled the hint: the windows again, with the pixel models
                log.warning("%s has pixel models its schema did not show; finding the patches again with them",
                            request.model)
                geoms_px, stats, crops = _find_patches(pair, norm, request, min_pixels, progress, model, pool, spool,
                                                       detector=detector)
        if (detector or RulesDetector()).uses_seeds(norm, config):  # a region cut by a seam was kept in each window: judged whole now
            held = stats[:, STAT_COLUMNS.index("seeds")] > 0
            geoms_px, stats, crops = geoms_px[held], stats[held], crops[held]
        if pool.owns_executor:  # done with them: they wind down while the patches are judged
            pool.executor.shutdown(wait=False)
        elif pool.executor is not None:
            # The caller's workers stay (detect's CLI has them make chips): they import
            # that code while the patches are judged.
            from swc_rs.workers import warm_up

            warm_up(pool.executor, "geopandas", "swc_rs.export.chips")
        clock.lap("detect")

        frame = gpd.GeoDataFrame(geometry=to_map(geoms_px, pair.grid.transform), crs=pair.grid.crs).to_crs(area_crs)
        frame["QAREA"] = np.round(frame.geometry.area.to_numpy() / 10_000, 4)
        frame["X_ZONE"] = _assign_zones(frame, zones) if len(frame) else np.array([], dtype=object)
        min_area = np.array([config.rules_for(z).min_area_hm2 for z in frame["X_ZONE"]])
        keep = frame["QAREA"].to_numpy() >= (min_area if len(frame) else 0)
        frame = frame[keep].reset_index(drop=True)
        crops = crops[keep]
        metric = shape_metrics(frame.geometry.values)
        feats = features_from_stats(stats[keep], metric)
        clock.lap("features")
        relative = norm.relative  # not reflectance: the model and absolute typing rules do not hold
        _check_model_fits(request, model, pair, pixel_m)
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
        protected = None
        if landuse is not None:
            from swc_rs import landuse as land

            classes, shares = land.dominant_classes(frame, landuse)
            frame = land.apply_typing(frame, classes, shares, config.landuse)
            protected = land.protected(classes, shares, config.landuse)
        judged = compliance.judge(frame, projects, sensitive, config, pixel_size_m=pixel_m, protected=protected)
        clock.lap("compliance")

        # Stable order (north-west first) and ids.
        period = _period(config, t2)
        cent = judged.geometry.representative_point()
        order = np.lexsort((np.round(cent.x.to_numpy(), 1), -np.round(cent.y.to_numpy(), 1)))
        judged = judged.iloc[order].reset_index(drop=True)
        feats = feats.iloc[order].reset_index(drop=True)
        crops = crops[order]
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
        chip_crops = {str(q): ref for q, ref in zip(judged["QDNM"], crops, strict=True) if ref is not None}
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
            "landuse": str(request.landuse or ""),
            "landuse_sha256": sums["landuse"].result(),
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
            "change_detector": detector.family if detector is not None else "rules",
            "change_detector_reason": detector_reason,
            "change_model": str(detector.path) if detector is not None else "",
            "change_model_id": detector.model_id if detector is not None else "rules",
            "model": str(request.model) if request.model else "rules",
            "model_id": getattr(model, "model_id", "rules"),
            "qtype_by": "model" if model is not None and not relative and model.applies_to(pair.roles, pixel_m) else "rules",
            "parameters": config.to_dict(),
            "workers": _workers(request.workers),
            "n_patches": int(len(judged)),
            "n_suspected": int(judged["BYD"].str.startswith(codes.SUSPECTED_PREFIX).sum()),
            "history": store_name(request.history) if request.history is not None else "",
            **({"n_verified": applied.n_verified, "n_suppressed": applied.n_suppressed,
                "n_confirmed": applied.n_confirmed, "n_carried": applied.n_carried} if applied is not None else {}),
            **pair.describe(),
        }
    to = EXCHANGE_CRS
    clock.lap("finish")
    run_info["timings_s"] = clock.timings
    run_info["timings_cpu_s"] = clock.cpu
    return DetectResult(
        patches=judged.to_crs(to),
        projects=project_summary.to_crs(to),
        zones=zone_summary.to_crs(to),
        run_info=run_info,
        features=feats,
        tables=tables,
        chip_crops=chip_crops,
        crop_spool=spool,
    )


def _check_model_fits(request: DetectRequest, model, pair: RasterPair, pixel_m: float) -> None:
    """Refuse a patch model given explicitly (not the shipped default) that was not
    trained on imagery like this pair's: it would silently fall back to the rules."""
    from swc_rs.model import default_model_path

    if model is None or request.model is None or not model.applies_to(None, None):
        return
    if model.applies_to(pair.roles, pixel_m):
        return
    default = default_model_path()
    if default is not None and Path(request.model).resolve() == default.resolve():
        return
    domain = (model.bundle.get("patch") or {}).get("domain") or {}
    raise ModelError(
        f"the patch model was trained on {'/'.join(domain.get('families') or ['?'])} imagery of pixels up to "
        f"{domain.get('max_pixel_m', '?')} m; this pair has {', '.join(pair.roles)} at {pixel_m:.2f} m",
        path=request.model, fix="give a model trained on this sensor, or leave --model out (the rules type the patches)")


def _change_detector(request: DetectRequest, pair: RasterPair, pixel_m: float, pool: _WindowPool):
    """The learned change detector for this pair (None: the rules) and why (for run_info).

    With window workers every process runs windows on one core; alone, the network uses
    every core this process may use."""
    from swc_rs.change.learned import select_detector
    from swc_rs.workers import available_cores

    threads = 1 if pool.workers > 1 else available_cores()
    detector, reason = select_detector(request.change_model, pair.roles, pixel_m, threads,
                                       networks=tuple(request.config.change.networks.split()))
    log.info("change detector: %s", reason)
    return detector, reason


def _checksums(paths: list) -> str:
    return ";".join(file_checksum(p) for p in paths)


def _multi(geom):
    if geom is None or geom.geom_type == "MultiPolygon":
        return geom
    if geom.geom_type == "Polygon":
        return shapely.MultiPolygon([geom])
    parts = [p for p in shapely.get_parts(geom) if p.geom_type == "Polygon"]
    return shapely.MultiPolygon(parts)
