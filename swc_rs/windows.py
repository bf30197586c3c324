"""The work of one processing window, and the window worker processes that do it.

Everything a spawned window worker needs, and nothing more: it imports this module
(rasterio, scipy, the change rules; ~0.6 s), not :mod:`swc_rs.pipeline` with its vector
stack (geopandas, pandas; ~0.85 s), so detect's calibration, which runs in a worker
while this process reads the vectors and loads the model, starts sooner.

- :class:`DetectRequest`: the inputs of a run (sent to the workers);
- :func:`_calibrate`: misregistration and radiometric normalisation from sample windows;
- :func:`_window_patches`: one window's candidate polygons and their per-patch sums;
- ``_worker_*``: those two in a worker process, with its datasets opened once.
"""

from __future__ import annotations

import dataclasses
import logging
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from rasterio.windows import Window

from swc_rs import indices
from swc_rs.change import (
    Normalisation,
    calibrate_scene,
    candidate_mask,
    clean_mask,
    fit_normalisation,
    pixel_evidence,
    relative_radiometry,
)
from swc_rs.change.detectors import RulesDetector, WindowData, seeded
from swc_rs.change.learned import LearnedDetector, scene_stats
from swc_rs.config import DetectConfig
from swc_rs.coregistration import estimate_shift
from swc_rs.crops import write_crops
from swc_rs.patches import EIGHT, polygonize_labels
from swc_rs.raster import RasterPair, expand_window, open_pair, sample_windows

log = logging.getLogger(__name__)


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
    history: Path | str | None = None  # a GeoPackage, or a postgresql:// URL
    #: Change detector: ``"auto"`` (the shipped network that fits the pair, else the
    #: rules), ``"rules"``, or the path of an ONNX change model (:mod:`swc_rs.change.learned`).
    change_model: str = "auto"
    #: The land survey's layer (``detect --landuse``): classes for typing and colouring.
    landuse: Path | None = None


def _calibrate(pair: RasterPair, config: DetectConfig) -> tuple[Normalisation, tuple[float, float], int]:
    """Estimate the shift (and correct it) and fit the radiometric normalisation on sample windows."""
    reg = config.registration
    size = min(reg.window_size, max(64, min(pair.grid.shape) // 2))
    windows = sample_windows(pair.grid, reg.windows, size)
    band = "nir" if "nir" in pair.roles else "red"
    k = pair.roles.index(band)
    shift, used = (0.0, 0.0), 0
    befores = [pair.read_before(w) for w in windows]  # BEFORE is read once, whatever AFTER's shift
    reads: list = []
    if reg.enabled:
        reads = _with_after(pair, windows, befores)
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
    if not reads or pair.shift != (0.0, 0.0):  # AFTER (re)read on the corrected grid, once for both fits below
        reads = _with_after(pair, windows, befores)
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
    ten_bit = pair.ten_bit_dates(reads)
    relative = relative_radiometry(config.change.radiometry, pair.dtypes, ten_bit=bool(ten_bit))
    if ten_bit and config.change.radiometry == "auto":
        # A log record, not a warning: calibration may run in a window worker, which relays its records.
        log.warning("%s: 16-bit values never exceed 1023 in %d sample windows, so they are read as raw 10-bit DN "
                    "(GF-1/2, ZY-3), not reflectance × 10000: changes are found by the scene-relative rule only and "
                    "patches are typed without the reflectance rules. For the full rules give reflectance, or set "
                    "[raster] scale and offset (raw × scale + offset = reflectance); [change] radiometry = "
                    '"reflectance" forces the reflectance reading', ", ".join(str(p) for p in ten_bit), len(reads))
    offset = pair.offset_dates(reads)
    if offset:
        log.warning("%s: even the darkest band's 1st percentile is a reflectance of 0.1 or more (read as value × %g), "
                    "so the values carry an offset the file does not declare (Sentinel-2 L2A from baseline 04.00 adds "
                    "1000; Landsat Collection 2 is scaled 0.0000275 with offset −0.2): vegetation, water and bare-soil "
                    "indices come out wrong. Set [raster] scale and offset (e.g. scale = 0.0001, offset = -0.1 for "
                    "Sentinel-2 L2A), or record them in the file with gdal_edit.py -scale/-offset",
                    ", ".join(str(p) for p in offset), pair.before_bands.scale)
    if relative or config.change.adaptive_magnitude:  # scene-adaptive rule: threshold from the sample windows
        norm = calibrate_scene(lambda: iter(reads), pair.roles, norm, config.change, relative=relative,
                               min_pixels=int(config.change.cloud_min_area_m2 / pair.pixel_m**2))
        log.info("%s radiometry (%s): scene magnitude threshold %.3f", "relative" if relative else "reflectance",
                 "/".join(pair.dtypes), norm.magnitude_threshold)
    norm = dataclasses.replace(norm, scene=scene_stats(reads, len(pair.roles)))
    return norm, shift, used


def _with_after(pair: RasterPair, windows: list, befores: list) -> list:
    """``(before, after, valid)`` of each window: BEFORE as read (``befores``), AFTER read
    now on the pair's current grid, valid where both dates have data."""
    reads = []
    for window, (before, bvalid) in zip(windows, befores, strict=True):
        after, avalid = pair.read_after(window)
        reads.append((before, after, bvalid & avalid))
    return reads


#: Per-patch sums gathered in the window pass; the object features are their ratios
#: (see :func:`swc_rs.pipeline.features_from_stats`). Additive, so the pieces of a patch
#: cut by a window seam add up to the patch. ``seeds``: under relative radiometry with
#: seeding, its seed pixels (:func:`swc_rs.change.relative_seeds`), on reflectance with
#: ``hysteresis`` those of :func:`swc_rs.change.hysteresis_masks`; a patch without any is
#: dropped once the seams are merged, so a patch is judged whole wherever the seams cut it.
STAT_COLUMNS = (
    "n", "veg_before", "veg_after", "veg_after_sq", "bright_before", "bright_after", "bright_after_sq",
    "redness_after", "bare_after", "water_before", "water_after", "magnitude", "candidate", "fine",
    "ring_n", "ring_veg_before", "ring_bright_after", "seeds",
)
#: Width in pixels of the ring around a patch whose BEFORE vegetation and AFTER brightness
#: describe its surroundings (ring_veg_before, ring_bright_after).
RING_PX = 5


def texture_px(texture_m: float, pixel_m: float) -> int:
    """Side in pixels of the fine-texture neighbourhood: the largest odd number of pixels
    within ``texture_m`` metres, clamped to 3–11 (within the ring margin of the box the
    sums are taken over, so its reflected edge never reaches a patch pixel)."""
    k = int(texture_m / max(pixel_m, 1e-9) + 1e-6)
    k -= 1 - k % 2
    return min(2 * RING_PX + 1, max(3, k))


def _window_patches(pair: RasterPair, norm: Normalisation, config: DetectConfig, min_pixels: int, model,
                    window: Window, spool: str | None = None,
                    detector: LearnedDetector | None = None) -> tuple[list, np.ndarray, list]:
    """Candidate polygons (grid pixel coordinates) of one window's core and their sums.

    Returns the polygons (one per 8-connected component of the core's cleaned mask), a
    ``(len(polygons), len(STAT_COLUMNS))`` float64 array of per-patch sums over the
    patch's valid pixels (and over its ring of :data:`RING_PX` pixels outside every
    candidate), taken from the evidence already in memory: the object features cost no
    second read of the images; and per polygon its chip crop (:mod:`swc_rs.crops`),
    written to a file in the folder ``spool`` (None without one, or where the chip
    window leaves the window's halo). ``detector``: the change detector
    (:mod:`swc_rs.change.detectors`); None: the rules (with ``model``'s pixel models).
    """
    from scipy import ndimage

    halo = max(config.raster.halo, config.change.cloud_buffer_px + 2,
               config.change.closing_px + max(config.change.opening_px, config.change.relative_opening_px) + 2, RING_PX + 2,
               config.change.magnitude_smoothing_px + 2)
    if detector is not None:  # a network's receptive field, a multiple of its stride (windows start at multiples of it)
        halo = max(halo, detector.halo_px)
    outer, core = expand_window(window, halo, pair.grid)
    before, after, valid = pair.read(outer)
    after_norm = norm.apply(after)
    # The bare-soil index only for a pixel model; the patch statistics take it at the patches' pixels.
    ev = pixel_evidence(before, after, pair.roles, after_norm, norm.scale, norm.whitening, bare=model is not None)
    detector = detector if detector is not None else RulesDetector(model)
    mask, seeds = detector.candidates(WindowData(before, after, after_norm, valid, ev, pair.roles, pair.pixel_m),
                                      norm, config)
    opening = config.change.relative_opening_px if norm.relative else config.change.opening_px
    mask = clean_mask(mask, opening_px=opening, closing_px=config.change.closing_px, min_pixels=min_pixels)
    core_mask = mask[core]
    if not core_mask.any():
        return [], np.zeros((0, len(STAT_COLUMNS))), []
    core_labels, count = ndimage.label(core_mask, structure=EIGHT)
    polygons = polygonize_labels(core_labels, int(window.row_off), int(window.col_off))
    crops: list = [None] * count
    if spool is not None:
        row_off, col_off = int(window.row_off), int(window.col_off)
        boxes = [None if box is None else (col_off + box[1].start, row_off + box[0].start,
                                           col_off + box[1].stop, row_off + box[0].stop)
                 for box in ndimage.find_objects(core_labels)]
        crops = write_crops(Path(spool) / f"r{row_off}_c{col_off}.crops", boxes, (int(outer.row_off), int(outer.col_off)),
                            before, after, valid, pair.roles, pair.grid.shape, config.chips)

    # Sums over the patches' bounding box plus the ring (reflect edges never reach a patch pixel).
    # 16-bit labels when they fit: the ring's maximum filter moves half the memory.
    labels = np.zeros(mask.shape, dtype=np.uint16 if count < np.iinfo(np.uint16).max else np.int32)
    labels[core] = core_labels
    rows = np.flatnonzero(core_mask.any(axis=1)) + core[0].start
    cols = np.flatnonzero(core_mask.any(axis=0)) + core[1].start
    r0, r1 = max(0, rows[0] - RING_PX - 1), min(mask.shape[0], rows[-1] + RING_PX + 2)
    c0, c1 = max(0, cols[0] - RING_PX - 1), min(mask.shape[1], cols[-1] + RING_PX + 2)
    box = (slice(r0, r1), slice(c0, c1))
    labels = labels[box]
    ok = valid[box]
    ring = ndimage.maximum_filter(labels, size=2 * RING_PX + 1)
    sel_in = np.flatnonzero((labels != 0) & ok)
    sel_ring = np.flatnonzero((ring != 0) & ~mask[box] & ok)
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
    # Fine texture: mean absolute deviation from the local mean over ~texture_m metres
    # (lumpy spoil and benched rock are rough; cleared subsoil and fields are even).
    box_bright = ev.bright_after[box]
    size = texture_px(config.classify.texture_m, pair.pixel_m)
    fine = np.abs(ev_in.bright_after - ndimage.uniform_filter(box_bright, size=size).ravel()[sel_in])
    water = config.change.water_ndwi
    everywhere = np.ones(len(sel_in), dtype=bool)
    candidate = candidate_mask(ev_in, everywhere, ~everywhere, config.change)
    red, blue = at(after[pair.roles.index("red")]), at(after[pair.roles.index("blue")])
    if ev_in.bare_after is None:
        nir, swir1 = (at(after[pair.roles.index(r)]) if r in pair.roles else None for r in ("nir", "swir1"))
        ev_in = dataclasses.replace(ev_in, bare_after=indices.bare_soil_index(blue, red, nir, swir1))
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
    return polygons, stats, crops


def _seeded(norm: Normalisation, config: DetectConfig) -> bool:
    """Whether the rules' patches must hold a seed (:func:`swc_rs.change.detectors.seeded`)."""
    return seeded(norm, config)


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
        pair=open_pair(request.before, request.after, sensor=request.sensor, band_map=request.band_map,
                       raster=config.raster),
    )


def worker_detector(path: str | None) -> LearnedDetector | None:
    """This process's learned detector of ``path`` (loaded once; one thread: the windows are the parallelism)."""
    if path is None:
        return None
    if _WORKER.get("detector_path") != path:
        _WORKER["detector"] = LearnedDetector(Path(path), threads=1)
        _WORKER["detector_path"] = path
    return _WORKER["detector"]


def _worker_window(job: tuple) -> tuple[list, np.ndarray, list]:
    request, window, norm, shift, min_pixels, pixel_model, spool, detector_path = job
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
    detector = worker_detector(detector_path)
    return _window_patches(w["pair"], norm, w["request"].config, min_pixels, model, window, spool, detector)


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
