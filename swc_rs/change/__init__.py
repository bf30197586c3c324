"""Per-window change evidence and the candidate disturbance mask.

Stages, all on arrays of one window (``(bands, h, w)`` float32 reflectance in the
pair's role order):

1. :func:`fit_normalisation` — per-band linear map of AFTER onto BEFORE fitted on
   pseudo-invariant pixels, so a global gain/offset or a seasonal shift does not fire.
2. :func:`pixel_evidence` — indices of both dates and their differences.
3. :func:`cloud_shadow_mask` — clouds, haze at their edges and shadows on either date.
4. :func:`candidate_mask` — the disturbance rule: vegetation lost or bright bare/built
   surface gained, excluding water, clouds and shadows.
5. :func:`clean_mask` — morphology and removal of specks.

The scene-adaptive rule: the smoothed change magnitude above a threshold fitted on the
scene (:func:`calibrate_scene`, :func:`scene_magnitude_threshold`) also flags a pixel in
4 when it did not green and is not vegetated after (new roofs and pavement are not bare
soil). Rasters whose values are not reflectance (8-bit DN or display-stretched RGB; see
:func:`relative_radiometry`) use that rule alone, with clouds and shadows judged
against scene percentiles (:func:`relative_window_mask`).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from swc_rs import indices
from swc_rs.config import ChangeConfig


@dataclass(frozen=True)
class SceneLevels:
    """Scene percentiles that stand in for absolute cloud/shadow thresholds when the
    rasters are not reflectance (see :func:`relative_cloud_shadow_mask`).

    bright_high : (before, after)
        ``relative_cloud_percentile``-th percentile of each date's visible brightness.
    total_low : (before, after)
        ``100 - relative_cloud_percentile``-th percentile of each date's mean over all
        bands (AFTER radiometrically normalised).
    veg_after_median
        Median of AFTER's vegetation index (as delivered).
    """

    bright_high: tuple[float, float]
    total_low: tuple[float, float]
    #: Median of AFTER's vegetation index over the scene: without NIR, greening also needs
    #: an after-state greener than this (see :func:`relative_candidate_mask`).
    veg_after_median: float = float("-inf")


@dataclass(frozen=True)
class Normalisation:
    """AFTER' = gain × AFTER + offset, per band (role order of the pair)."""

    gain: np.ndarray
    offset: np.ndarray
    pif_count: int = 0
    #: Per-band spread of BEFORE over the scene sample, the unit of the change magnitude.
    scale: np.ndarray | None = None
    #: Scene threshold of the smoothed change magnitude (:func:`calibrate_scene`); None:
    #: the scene-adaptive rule is off.
    magnitude_threshold: float | None = None
    #: The rasters are not reflectance (:func:`relative_radiometry`): the windows use
    #: :func:`relative_window_mask` only.
    relative: bool = False
    #: Scene brightness levels for the relative cloud/shadow test (relative radiometry only).
    levels: SceneLevels | None = None
    #: Relative radiometry with ``relative_whitening``: ``(centre, whitening)`` of the
    #: difference vector in ``scale`` units (:func:`fit_whitening`); None: not whitened.
    whitening: tuple[np.ndarray, np.ndarray] | None = None
    #: Per-band scene statistics of each date as read (:class:`swc_rs.change.learned.SceneStats`),
    #: the learned detector's standardisation; None before calibration.
    scene: object | None = None

    @classmethod
    def identity(cls, bands: int) -> Normalisation:
        return cls(np.ones(bands, np.float32), np.zeros(bands, np.float32), 0, np.full(bands, 0.05, np.float32))

    def apply(self, after: np.ndarray) -> np.ndarray:
        out = after * np.asarray(self.gain, np.float32)[:, None, None]
        out += np.asarray(self.offset, np.float32)[:, None, None]
        return out.astype(np.float32, copy=False)

    def to_dict(self) -> dict:
        out = {"gain": [round(float(g), 5) for g in self.gain],
               "offset": [round(float(o), 5) for o in self.offset],
               "pif_count": int(self.pif_count)}
        if self.magnitude_threshold is not None:
            out["magnitude_threshold"] = round(float(self.magnitude_threshold), 4)
        out["radiometry"] = "relative" if self.relative else "reflectance"
        if self.whitening is not None:
            out["whitened"] = True
        return out


def fit_normalisation(
    before: np.ndarray, after: np.ndarray, *, pif_fraction: float = 0.3, iterations: int = 2
) -> Normalisation:
    """Relative radiometric normalisation on pseudo-invariant pixels (PIFs).

    1. PIF selection by rank: a global gain/offset (or any monotone radiometric change)
       keeps every pixel's rank within its band, while real change moves it. Pixels
       whose worst per-band rank difference between the dates is in the lowest
       ``pif_fraction`` are taken as invariant.
    2. Per band, the reduced-major-axis line through the PIFs (gain = σ_before /
       σ_after, offset matching the means), which unlike least squares is not shrunk
       towards zero by noise in AFTER.
    3. ``iterations`` rounds of trimming by standardised residual and refitting.

    Parameters
    ----------
    before, after
        ``(bands, n)`` float arrays of clear pixels sampled from both dates.

    Returns
    -------
    Normalisation
    """
    bands, n = before.shape
    if n < 100:
        return Normalisation.identity(bands)
    before = before.astype(np.float64)
    after = after.astype(np.float64)
    rank_b = np.argsort(np.argsort(before, axis=1), axis=1) / n
    rank_a = np.argsort(np.argsort(after, axis=1), axis=1) / n
    moved = np.abs(rank_b - rank_a).max(axis=0)
    keep = moved <= np.quantile(moved, pif_fraction)

    def fit(mask):
        sd_a = after[:, mask].std(axis=1)
        sd_b = before[:, mask].std(axis=1)
        gain = np.where(sd_a > 1e-9, sd_b / np.maximum(sd_a, 1e-9), 1.0)
        offset = before[:, mask].mean(axis=1) - gain * after[:, mask].mean(axis=1)
        return gain, offset

    gain, offset = fit(keep)
    for _ in range(iterations):
        resid = before - (gain[:, None] * after + offset[:, None])
        scale = resid[:, keep].std(axis=1) + 1e-9
        score = np.abs(resid / scale[:, None]).max(axis=0)
        keep = keep & (score <= 2.5)
        gain, offset = fit(keep)
    scale = np.maximum(before.std(axis=1), 1e-3)
    return Normalisation(gain.astype(np.float32), offset.astype(np.float32), int(keep.sum()), scale.astype(np.float32))


@dataclass
class Evidence:
    """Per-pixel indices of both dates (2-D float32 arrays of one window).

    The ``*_after`` states are computed on AFTER as delivered (the surface's own
    reflectance: is it bare, bright, water?), while ``veg_drop``, ``bright_rise`` and
    ``magnitude`` compare BEFORE with the radiometrically normalised AFTER, so that a
    global gain/offset or season does not read as change.
    """

    veg_before: np.ndarray
    veg_after: np.ndarray
    bright_before: np.ndarray
    bright_after: np.ndarray
    water_before: np.ndarray
    water_after: np.ndarray
    #: None when :func:`pixel_evidence` was asked for no bare-soil index (``bare=False``).
    bare_before: np.ndarray | None
    bare_after: np.ndarray | None
    veg_drop: np.ndarray
    bright_rise: np.ndarray
    magnitude: np.ndarray
    has_nir: bool


def _band(stack: np.ndarray, roles: tuple[str, ...], role: str):
    return stack[roles.index(role)] if role in roles else None


def _state(stack: np.ndarray, roles: tuple[str, ...], bare: bool = True, water: bool = True):
    """Vegetation, brightness, water and bare-soil indices of one date (None for the water
    index when ``water`` is False, for the bare-soil index when ``bare`` is False)."""
    blue, green, red = (_band(stack, roles, r) for r in ("blue", "green", "red"))
    nir, swir1 = _band(stack, roles, "nir"), _band(stack, roles, "swir1")
    veg = indices.ndvi(nir, red) if nir is not None else indices.visible_vegetation(green, red, blue)
    bright = indices.brightness(blue, green, red)
    wet = None
    if water:
        wet = indices.ndwi(green, nir) if nir is not None else indices.normalized_difference(blue, red) - 0.2
    return veg, bright, wet, indices.bare_soil_index(blue, red, nir, swir1) if bare else None


def pixel_evidence(
    before: np.ndarray,
    after: np.ndarray,
    roles: tuple[str, ...],
    after_normalised: np.ndarray | None = None,
    band_scale: np.ndarray | None = None,
    whitening: tuple[np.ndarray, np.ndarray] | None = None,
    *,
    bare: bool = True,
) -> Evidence:
    """Indices of both dates from whatever bands the sensor has.

    Vegetation is NDVI where NIR exists, else the visible VARI proxy; water is NDWI
    where NIR exists, else a blue-dominance proxy; bare is BSI (SWIR) or its
    visible/NIR proxy (see :func:`swc_rs.indices.bare_soil_index`).
    AFTER's state (vegetation, brightness, bare) is taken as delivered, except water,
    which is judged on ``after_normalised`` when given (NDWI is not gain-free).

    Parameters
    ----------
    before, after
        ``(bands, h, w)`` reflectance of the two dates, AFTER as delivered.
    after_normalised
        AFTER mapped onto BEFORE's radiometry; differences use it (AFTER when None).
    band_scale
        Per-band unit of the change magnitude (the scene's spread of BEFORE, so that
        every window uses the same unit); the window's own spread when None.
    whitening
        ``(centre, matrix)`` from :func:`fit_whitening`: the difference (in
        ``band_scale`` units) minus ``centre`` times ``matrix`` before the magnitude is
        taken, so that it counts the scene's no-change spreads (relative radiometry).
    bare
        Whether to compute the bare-soil indices (``bare_before``/``bare_after`` are
        None otherwise): no change rule reads them, only the pixel model's features and
        the patch statistics, which take them at the patches' pixels alone.

    A window is worked through in blocks of :data:`EVIDENCE_BLOCK_ROWS` rows, whose
    temporaries stay in a core's cache (the numbers are those of one pass over it all).
    """
    if band_scale is None:
        band_scale = np.maximum(before.std(axis=(1, 2)), 1e-3)
    rows = before.shape[1]
    if rows <= 2 * EVIDENCE_BLOCK_ROWS:
        return _evidence_block(before, after, roles, after_normalised, band_scale, whitening, bare)
    out: dict[str, np.ndarray] = {}
    for r0 in range(0, rows, EVIDENCE_BLOCK_ROWS):
        block = np.s_[:, r0:r0 + EVIDENCE_BLOCK_ROWS]
        part = _evidence_block(before[block], after[block], roles,
                               None if after_normalised is None else after_normalised[block], band_scale, whitening, bare)
        for f in dataclasses.fields(Evidence):
            value = getattr(part, f.name)
            if isinstance(value, np.ndarray):
                if f.name not in out:
                    out[f.name] = np.empty((rows, *value.shape[1:]), dtype=value.dtype)
                out[f.name][r0:r0 + len(value)] = value
    return Evidence(**{f.name: out.get(f.name) for f in dataclasses.fields(Evidence) if f.name != "has_nir"},
                    has_nir="nir" in roles)


#: Rows per block of :func:`pixel_evidence` (~0.27 MB per float32 array of a 1056-px
#: wide window: the block's temporaries fit a 2 MB L2 cache).
EVIDENCE_BLOCK_ROWS = 64


def _evidence_block(before, after, roles, after_normalised, band_scale, whitening, bare) -> Evidence:
    """:func:`pixel_evidence` of one block of rows (``band_scale`` given)."""
    norm = after if after_normalised is None else after_normalised
    vb, bb, wb, sb = _state(before, roles, bare=bare)
    # AFTER's water is taken from its normalised bands below when they are given.
    va, ba, wa, sa = _state(after, roles, bare=bare, water=after_normalised is None)
    if after_normalised is not None:
        # Water on AFTER is judged on its normalised bands: NDWI is not gain-free, and a
        # sensor whose green is brighter and NIR darker than BEFORE's (another satellite,
        # another calibration) would otherwise make bare soil "water" and exclude it.
        vn, bn, wa, _ = _state(norm, roles, bare=False)
    else:
        vn, bn = va, ba
    inv = (1.0 / np.asarray(band_scale, np.float32))[:, None, None]
    diff = np.subtract(norm, before, dtype=np.float32)
    diff *= inv  # in place: one pass over the window less (this is memory-bound)
    if whitening is not None:
        centre, matrix = whitening
        diff = np.einsum("kb,bij->kij", np.asarray(matrix, np.float32),
                         diff - np.asarray(centre, np.float32)[:, None, None])
    magnitude = np.einsum("bij,bij->ij", diff, diff)
    magnitude *= np.float32(1.0 / len(roles))
    np.sqrt(magnitude, out=magnitude)
    magnitude = magnitude.astype(np.float32, copy=False)
    return Evidence(vb, va, bb, ba, wb, wa, sb, sa, vb - vn, bn - bb, magnitude, has_nir="nir" in roles)


def cloud_shadow_mask(
    before: np.ndarray,
    after: np.ndarray,
    roles: tuple[str, ...],
    ev: Evidence,
    cfg: ChangeConfig,
    *,
    min_pixels: int = 1,
) -> np.ndarray:
    """True where either date is cloud, cloud-edge haze or shadow.

    Clouds are bright, white (low spread across the visible bands) and much brighter
    than the same ground on the other date (``cloud_contrast``); shadows darken
    every band of one date by the same factor, so the vegetation index holds while the
    brightness falls below ``shadow_ratio`` of the other date and the darker date is
    dark in absolute terms (``shadow_dark_max``). Both are large: components smaller
    than ``min_pixels`` are bright roofs or dark new surfaces, i.e. real change, and are
    kept (clouds also when smaller than ``cloud_min_pixels``, whatever the pixel size,
    unless ``min_pixels`` is 1: no size test). What remains is grown by the buffers (haze and penumbra at the edges).
    """
    # The rare tests (whiteness, the ratio of the dates, the vegetation index) are taken
    # only at the few pixels that pass the cheap ones (bright; dark).
    def clouds(stack, bright, other):
        cloud = (bright >= cfg.cloud_brightness) & (bright >= cfg.cloud_contrast * other)
        at = np.flatnonzero(cloud)
        if at.size:
            vis = [stack[roles.index(r)].ravel()[at] for r in ("blue", "green", "red")]
            cloud.ravel()[at] = indices.whiteness(*vis) <= cfg.cloud_whiteness
        return cloud

    cloud = clouds(before, ev.bright_before, ev.bright_after) | clouds(after, ev.bright_after, ev.bright_before)
    cloud = dilate(_drop_small(cloud, _cloud_pixels(min_pixels, cfg)), cfg.cloud_buffer_px)
    total_b = before.mean(axis=0)
    total_a = after.mean(axis=0)
    darker = np.minimum(total_a, total_b)
    shadow = darker < cfg.shadow_dark_max
    at = np.flatnonzero(shadow)
    if at.size:
        brighter = np.maximum(total_a.ravel()[at], total_b.ravel()[at])
        ratio = np.divide(darker.ravel()[at], brighter, out=np.ones_like(brighter), where=brighter > 0)
        veg_change = np.abs(ev.veg_after.ravel()[at] - ev.veg_before.ravel()[at])
        shadow.ravel()[at] = (ratio < cfg.shadow_ratio) & (veg_change < cfg.ndvi_drop)
    return cloud | dilate(_drop_small(shadow, min_pixels), cfg.shadow_buffer_px)


def _cloud_pixels(min_pixels: int, cfg: ChangeConfig) -> int:
    """Smallest cloud: ``min_pixels`` but at least ``cloud_min_pixels`` when a size test is
    asked for at all (``min_pixels`` > 1; 1 keeps every cloud pixel, as training does)."""
    return max(min_pixels, cfg.cloud_min_pixels) if min_pixels > 1 else min_pixels


def _drop_small(mask: np.ndarray, min_pixels: int) -> np.ndarray:
    """``mask`` without its 8-connected components smaller than ``min_pixels``."""
    if min_pixels <= 1 or not mask.any():
        return mask
    if np.count_nonzero(mask) < min_pixels:  # no component can be large enough
        return np.zeros_like(mask)
    return _sized_components(mask, min_pixels)


def _sized_components(mask: np.ndarray, min_pixels: int, *, keep_border: bool = False) -> np.ndarray:
    """``mask``'s 8-connected components of at least ``min_pixels`` (and, with
    ``keep_border``, every component touching the array's border).

    Only the mask's own pixels are visited after the labelling (a few per cent of a
    window): counting and selecting over every label of the window took twice as long.
    """
    labels, count = ndimage.label(mask, structure=np.ones((3, 3), bool))
    at = np.flatnonzero(mask)
    owner = labels.ravel()[at]
    keep = np.bincount(owner, minlength=count + 1) >= min_pixels
    if keep_border:
        keep[np.concatenate([labels[0], labels[-1], labels[:, 0], labels[:, -1]])] = True
    keep[0] = False
    if keep[1:].all():
        return mask
    out = np.zeros(mask.shape, dtype=bool)  # C order, as the flat indices (whatever the mask's layout)
    out.ravel()[at[keep[owner]]] = True
    return out


#: Up to this radius the square morphology runs as shifted boolean operations (a few
#: times faster than scipy's min/max filters); larger radii use the filters.
_SHIFT_RADIUS = 8


def _grow_by_shifts(mask: np.ndarray, radius: int, erode_: bool) -> np.ndarray:
    """Square dilation (or erosion, outside False) by ``radius`` as ``radius`` passes of
    the 3×3 square, each two separable passes of shifted ORs (ANDs)."""
    out = np.array(mask, dtype=bool, copy=True)
    op = np.logical_and if erode_ else np.logical_or
    for _ in range(radius):
        for axis in (0, 1):
            src = out.copy()
            lo = [slice(None)] * 2
            hi = [slice(None)] * 2
            lo[axis], hi[axis] = slice(1, None), slice(None, -1)
            op(out[tuple(lo)], src[tuple(hi)], out=out[tuple(lo)])
            op(out[tuple(hi)], src[tuple(lo)], out=out[tuple(hi)])
            if erode_:  # the outside counts as False
                edge = [slice(None)] * 2
                edge[axis] = 0
                out[tuple(edge)] = False
                edge[axis] = -1
                out[tuple(edge)] = False
    return out


def dilate(mask: np.ndarray, radius: int) -> np.ndarray:
    """Grow a mask by ``radius`` pixels (square neighbourhood; separable, fast)."""
    if radius <= 0 or not mask.any():
        return mask
    if radius <= _SHIFT_RADIUS:
        return _grow_by_shifts(mask, radius, erode_=False)
    return ndimage.maximum_filter(mask.view(np.uint8), size=2 * radius + 1) > 0


def erode(mask: np.ndarray, radius: int) -> np.ndarray:
    """Shrink a mask by ``radius`` pixels (square neighbourhood; outside counts as False)."""
    if radius <= 0:
        return mask
    if radius <= _SHIFT_RADIUS:
        return _grow_by_shifts(mask, radius, erode_=True)
    return ndimage.minimum_filter(mask.view(np.uint8), size=2 * radius + 1, mode="constant", cval=0) > 0


def candidate_mask(
    ev: Evidence, valid: np.ndarray, excluded: np.ndarray, cfg: ChangeConfig, threshold: float | None = None
) -> np.ndarray:
    """The per-pixel disturbance rule.

    A pixel is a candidate when, on clear land of both dates, the after-date surface
    is bare or built (vegetation index ≤ ``bare_ndvi_max`` and brightness ≥
    ``bare_brightness_min``) and the vegetation index fell by ``ndvi_drop``, or the
    visible brightness rose by ``brightness_rise``, or the whole spectrum changed by
    ``magnitude_min`` scene standard deviations.

    With a scene ``threshold`` (and ``adaptive_magnitude``), a pixel is also a candidate
    when its smoothed magnitude reaches it, it did not green up by ``greening_max`` and
    its after-state is not vegetated (vegetation index ≤ ``bare_ndvi_max``) — whatever
    its brightness: new roofs and pavement are not bright bare soil.
    """
    return _candidate_masks(ev, valid, excluded, cfg, (threshold,))[0]


def _candidate_masks(ev: Evidence, valid: np.ndarray, excluded: np.ndarray, cfg: ChangeConfig,
                     thresholds: tuple[float | None, ...]) -> list[np.ndarray]:
    """:func:`candidate_mask` at each scene threshold, the rest of the rule (and the
    smoothed magnitude) taken once."""
    bare_after = (ev.veg_after <= cfg.bare_ndvi_max) & (ev.bright_after >= cfg.bare_brightness_min)
    changed = (ev.veg_drop >= cfg.ndvi_drop) | (ev.bright_rise >= cfg.brightness_rise)
    if cfg.magnitude_min > 0:
        changed |= ev.magnitude >= cfg.magnitude_min
    water = (ev.water_before > cfg.water_ndwi) | (ev.water_after > cfg.water_ndwi)
    ground = valid & ~excluded & ~water
    rule = ground & bare_after & changed
    if not cfg.adaptive_magnitude or all(t is None for t in thresholds):
        return [rule] * len(thresholds)
    adaptive = ground & (ev.veg_after <= cfg.bare_ndvi_max) & ~(ev.veg_drop < -cfg.greening_max)
    smoothed = smoothed_magnitude(ev, cfg)
    return [rule if t is None else rule | (adaptive & (smoothed >= t)) for t in thresholds]


def hysteresis_masks(
    ev: Evidence, valid: np.ndarray, excluded: np.ndarray, cfg: ChangeConfig, threshold: float
) -> tuple[np.ndarray, np.ndarray]:
    """``(low, seeds)`` of the reflectance hysteresis (``hysteresis`` = f, 0 < f < 1).

    ``low`` is :func:`candidate_mask` with the scene-adaptive rule at ``f × threshold``;
    ``seeds`` is :func:`candidate_mask` at ``threshold`` after the opening
    (``opening_px``), i.e. the pixels the rule alone would keep. The detector keeps the
    patches of the cleaned ``low`` that hold a seed, judged once the window seams are
    merged, so a building or site the scene threshold found in part is completed
    through its weaker pixels, while weak change without a confident core stays out.
    """
    high, low = _candidate_masks(ev, valid, excluded, cfg, (threshold, cfg.hysteresis * threshold))
    if cfg.opening_px > 0:
        high = dilate(erode(high, cfg.opening_px), cfg.opening_px) & high
    return low, high


def fill_holes(mask: np.ndarray) -> np.ndarray:
    """``scipy.ndimage.binary_fill_holes`` (4-connected background), by one labelling:
    background components that do not touch the border are holes. Several times faster
    than the iterated erosion on large windows."""
    if not mask.any():
        return mask
    background, count = ndimage.label(~mask)
    outside = np.zeros(count + 1, dtype=bool)
    outside[np.concatenate([background[0], background[-1], background[:, 0], background[:, -1]])] = True
    outside[0] = True
    if outside.all():  # no hole: the common case, without a pass over every label
        return mask
    return mask | ~outside[background]


def clean_mask(mask: np.ndarray, *, opening_px: int, closing_px: int, min_pixels: int) -> np.ndarray:
    """Open (drop thin misregistration edges), close (join fragments), fill holes, drop specks.

    Components touching the array border are kept whatever their size: they may
    continue in the next window and are judged after the seams are merged.
    """
    out = mask
    if opening_px > 0:
        out = dilate(erode(out, opening_px), opening_px) & out
    if closing_px > 0:
        grown = dilate(out, closing_px)
        out = erode(grown, closing_px) | out
    out = fill_holes(out)
    if min_pixels > 1 and out.any():
        out = _sized_components(out, min_pixels, keep_border=True)
    return out


# -- relative radiometry ---------------------------------------------------------------
RADIOMETRY_MODES = ("auto", "reflectance", "relative")
#: :attr:`ChangeConfig.relative_clouds`: the dates whose (visible-test) clouds are masked.
RELATIVE_CLOUD_MODES = ("both", "before", "none")


def relative_radiometry(mode: str, dtypes: tuple[str, ...], ten_bit: bool = False) -> bool:
    """Whether the scene-adaptive (relative) rule applies.

    ``mode`` is :attr:`ChangeConfig.radiometry`; with ``auto`` the rule applies when any
    raster is 8-bit: 8 bits hold DN of an archive sensor or a display-stretched mosaic,
    never reflectance resolved to the 0.04 steps the absolute thresholds need. It also
    applies when ``ten_bit``: a 16-bit raster whose values never exceed 1023 holds raw
    10-bit DN (:meth:`swc_rs.raster.RasterPair.ten_bit_dates`), not reflectance.

    Raises
    ------
    ConfigError
        ``mode`` is not auto, reflectance or relative.
    """
    if mode not in RADIOMETRY_MODES:
        from swc_rs.errors import ConfigError

        raise ConfigError(f"[change] radiometry = {mode!r} is not known", fix="use auto, reflectance or relative")
    if mode == "auto":
        return ten_bit or any(str(d) in ("uint8", "int8") for d in dtypes)
    return mode == "relative"


def smoothed_magnitude(ev: Evidence, cfg: ChangeConfig) -> np.ndarray:
    """The change magnitude, mean-filtered over ``magnitude_smoothing_px``."""
    r = cfg.magnitude_smoothing_px
    if r <= 0:
        return ev.magnitude
    return ndimage.uniform_filter(ev.magnitude, size=2 * r + 1, mode="nearest")


def scene_magnitude_threshold(values: np.ndarray, cfg: ChangeConfig, *, noise_floor: bool = False) -> float:
    """Threshold of the smoothed change magnitude for a whole scene.

    Otsu's threshold (as in change-vector analysis; top 0.1 % clipped, see
    :func:`swc_rs.baselines.otsu_threshold`) of ``values``, the smoothed magnitudes of
    the scene's calibration sample, but never below ``magnitude_min``: a scene without
    change has a unimodal histogram whose Otsu split lies inside the noise. With
    ``noise_floor`` (relative radiometry) also never below ``median + magnitude_noise_sigmas
    × 1.4826 × MAD`` of ``values``: where change is rare, Otsu's split of two unequal
    classes falls inside the no-change tail, while the median and MAD describe the
    no-change majority whatever the change does.
    """
    from swc_rs.baselines import otsu_threshold

    values = np.asarray(values, dtype=np.float64)
    values = values[np.isfinite(values)]
    if values.size < 100:
        return float(max(cfg.magnitude_min, 0.0)) or float("inf")
    threshold = max(otsu_threshold(values), cfg.magnitude_min)
    if noise_floor and cfg.magnitude_noise_sigmas > 0:
        median = float(np.median(values))
        spread = 1.4826 * float(np.median(np.abs(values - median)))
        threshold = max(threshold, median + cfg.magnitude_noise_sigmas * spread)
    return float(threshold)


def fit_whitening(diffs: np.ndarray, *, iterations: int = 5) -> tuple[np.ndarray, np.ndarray]:
    """Robust centre and whitening matrix of no-change difference vectors.

    The weighted mean and covariance of ``diffs`` are re-estimated ``iterations`` times
    with weights ``P(chi2_bands > d²)`` of each vector's squared Mahalanobis distance
    ``d²`` (the re-weighting of IR-MAD, Nielsen 2007), so that changed pixels stop
    shaping them; each round the covariance is rescaled so that the median ``d²`` is
    chi-square's median (the weights alone would shrink it round by round). ``matrix @
    (diff - centre)`` then has about unit covariance over unchanged pixels.

    Parameters
    ----------
    diffs
        ``(bands, n)`` float difference vectors (after − before, in scene units) of clear
        pixels.

    Returns
    -------
    centre : ndarray, float32, shape (bands,)
    matrix : ndarray, float32, shape (bands, bands)
        Inverse of the Cholesky factor of the robust covariance; the identity when fewer
        than 100 vectors are given.
    """
    from scipy import linalg, special

    bands, n = diffs.shape
    if n < 100:
        return np.zeros(bands, np.float32), np.eye(bands, dtype=np.float32)
    x = np.asarray(diffs, dtype=np.float64)
    weights = np.ones(n)
    centre = np.zeros(bands)
    cov = np.eye(bands)
    median_chi2 = float(special.chdtri(bands, 0.5))  # chi-square median
    for _ in range(max(1, iterations)):
        total = weights.sum()
        if total <= 1e-9:
            break
        centre = x @ weights / total
        centred = x - centre[:, None]
        cov = (centred * weights) @ centred.T / total
        cov += np.eye(bands) * 1e-6 * max(np.trace(cov) / bands, 1e-12)
        white = linalg.solve_triangular(linalg.cholesky(cov, lower=True), centred, lower=True)
        distance = np.einsum("bn,bn->n", white, white)
        # Down-weighting the tails shrinks the covariance; rescale it so that the median
        # distance is chi-square's (consistent for Gaussian no-change, as in robust MCD).
        consistency = max(float(np.median(distance)) / median_chi2, 1e-12)
        cov *= consistency
        weights = special.chdtrc(bands, distance / consistency)  # chi-square survival function
    matrix = linalg.solve_triangular(linalg.cholesky(cov, lower=True), np.eye(bands), lower=True)
    return centre.astype(np.float32), matrix.astype(np.float32)


def scene_levels(windows, cfg: ChangeConfig) -> SceneLevels:
    """:class:`SceneLevels` of the scene from its sample windows: an iterable of
    ``(before, after_norm, ev, valid)`` (``(bands, h, w)`` stacks, their
    :class:`Evidence` and valid mask)."""
    q = cfg.relative_cloud_percentile
    parts: list[list[np.ndarray]] = [[], [], [], [], []]
    for before, after_norm, ev, valid in windows:
        for k, values in enumerate((ev.bright_before, ev.bright_after, before.mean(axis=0), after_norm.mean(axis=0),
                                    ev.veg_after)):
            parts[k].append(values[valid])

    def pct(k, qq):
        values = np.concatenate(parts[k]) if parts[k] else np.zeros(0)
        return float(np.percentile(values, qq)) if values.size else float("inf")

    median = pct(4, 50)
    return SceneLevels(bright_high=(pct(0, q), pct(1, q)), total_low=(pct(2, 100 - q), pct(3, 100 - q)),
                       veg_after_median=median if np.isfinite(median) else float("-inf"))


def relative_cloud_shadow_mask(
    before: np.ndarray, after_norm: np.ndarray, roles: tuple[str, ...], ev: Evidence,
    levels: SceneLevels, cfg: ChangeConfig, *, min_pixels: int = 1, clouds_on: str | None = None,
) -> np.ndarray:
    """Clouds and shadows on rasters that are not reflectance.

    As :func:`cloud_shadow_mask` (white, ``cloud_contrast`` times brighter than the other
    date, large; shadows darker by ``shadow_ratio`` with a steady vegetation index, large),
    but "bright" and "dark" are relative to the scene: a cloud top is brighter than all but
    the top ``100 - relative_cloud_percentile`` % of the OTHER date's ground, a shadow
    darker than all but its bottom share.

    ``clouds_on`` (default ``cfg.relative_clouds``): the dates whose clouds are masked,
    ``both``, ``before`` or ``none``. The scene calibration passes ``both`` (a cloud must
    not shape the threshold); the windows use the configured value.

    Raises
    ------
    ConfigError
        ``clouds_on`` is not both, before or none.
    """
    vis = ("blue", "green", "red")
    clouds_on = cfg.relative_clouds if clouds_on is None else clouds_on
    if clouds_on not in RELATIVE_CLOUD_MODES:
        from swc_rs.errors import ConfigError

        raise ConfigError(f"[change] relative_clouds = {clouds_on!r} is not known",
                          fix=f"use {', '.join(RELATIVE_CLOUD_MODES)}")

    def clouds(stack, bright, other, other_high):
        white = indices.whiteness(*(stack[roles.index(r)] for r in vis)) <= cfg.cloud_whiteness
        return (bright >= other_high) & (bright >= cfg.cloud_contrast * other) & white

    cloud = np.zeros(ev.bright_before.shape, bool)
    if clouds_on in ("both", "before"):
        cloud |= clouds(before, ev.bright_before, ev.bright_after, levels.bright_high[1])
    if clouds_on == "both":  # a white blob new on AFTER: a cloud or a new white roof / site
        cloud |= clouds(after_norm, ev.bright_after, ev.bright_before, levels.bright_high[0])
    cloud = dilate(_drop_small(cloud, _cloud_pixels(min_pixels, cfg)), cfg.cloud_buffer_px)
    total_b, total_a = before.mean(axis=0), after_norm.mean(axis=0)
    brighter = np.maximum(total_a, total_b)
    ratio = np.divide(np.minimum(total_a, total_b), brighter, out=np.ones_like(total_a), where=brighter > 0)
    dark = np.where(total_a < total_b, total_a <= levels.total_low[0], total_b <= levels.total_low[1])
    shadow = (ratio < cfg.shadow_ratio) & dark & (np.abs(ev.veg_after - ev.veg_before) < cfg.ndvi_drop)
    return cloud | dilate(_drop_small(shadow, min_pixels), cfg.shadow_buffer_px)


def _adaptive(ev: Evidence, threshold: float, cfg: ChangeConfig, green_after: float | None = None) -> np.ndarray:
    """Smoothed magnitude at or above ``threshold`` and no greening beyond ``greening_max``
    (with ``green_after``: greening only where AFTER's vegetation index also exceeds it)."""
    greening = ev.veg_drop < -cfg.greening_max
    if green_after is not None:
        greening &= ev.veg_after > green_after
    return (smoothed_magnitude(ev, cfg) >= threshold) & ~greening


def relative_candidate_mask(
    ev: Evidence, valid: np.ndarray, threshold: float, cfg: ChangeConfig, levels: SceneLevels | None = None
) -> np.ndarray:
    """The disturbance rule for rasters that are not reflectance.

    A pixel is a candidate when its smoothed change magnitude (z-units of the scene,
    after the radiometric normalisation) reaches the scene ``threshold`` and it did not
    green up by more than ``greening_max`` (crops and regrowth change as much as a new
    roof, but the wrong way). No absolute brightness, NDVI or water threshold is used:
    on DN or display values they do not mean what they say.

    Without NIR the vegetation index is the visible VARI, which also rises from brown
    soil to a grey or blue roof; with ``relative_greening_median`` greening there also
    needs an after-state greener than the scene's median (``levels.veg_after_median``),
    i.e. more vegetated than the typical ground of the scene.

    With ``relative_hysteresis`` = f > 0 the scene threshold only seeds the change: an
    8-connected region of pixels whose smoothed magnitude reaches ``f × threshold`` (and
    that pass the same greening test, on ``valid`` ground) is kept whole when it holds a
    seed (:func:`hysteresis`). A partly detected building or site is completed; weak
    isolated noise stays out. With ``relative_seed_factor`` = k > 1 the seeds need
    ``k × threshold`` instead: a region above the threshold is kept whole only when its
    peak reaches k times it (a minimum contrast per object, relative to the scene).

    The detector applies this per patch once the window seams are merged
    (:func:`relative_low_mask`, :func:`relative_seeds`), so a seam never cuts a region
    from its seeds.
    """
    if not relative_seeding(cfg) or not np.isfinite(threshold):
        return valid & _adaptive(ev, threshold, cfg, _green_after(ev, cfg, levels))
    return hysteresis(relative_low_mask(ev, valid, threshold, cfg, levels), relative_seeds(ev, valid, threshold, cfg, levels))


def _green_after(ev: Evidence, cfg: ChangeConfig, levels: SceneLevels | None) -> float | None:
    use = cfg.relative_greening_median and levels is not None and not ev.has_nir
    return levels.veg_after_median if use else None


def relative_seeding(cfg: ChangeConfig) -> bool:
    """Whether the relative rule keeps only regions holding a seed (``relative_hysteresis``
    on, or ``relative_seed_factor`` > 1)."""
    return 0 < cfg.relative_hysteresis < 1 or cfg.relative_seed_factor > 1


def relative_seeds(ev: Evidence, valid: np.ndarray, threshold: float, cfg: ChangeConfig,
                   levels: SceneLevels | None = None) -> np.ndarray:
    """The seed pixels of the relative rule: smoothed magnitude at least
    ``max(relative_seed_factor, 1) × threshold`` and no greening, on ``valid`` ground."""
    factor = max(cfg.relative_seed_factor, 1.0)
    return valid & _adaptive(ev, factor * threshold, cfg, _green_after(ev, cfg, levels))


def relative_low_mask(
    ev: Evidence, valid: np.ndarray, threshold: float, cfg: ChangeConfig, levels: SceneLevels | None = None,
) -> np.ndarray:
    """Every pixel the relative rule may keep: smoothed magnitude at least the threshold
    (``relative_hysteresis`` × it when on) and no greening. With seeding
    (:func:`relative_seeding`) the detector keeps the patches of this mask that hold a
    :func:`relative_seeds` pixel, judged once the window seams are merged: the per-object
    contrast test of :func:`relative_candidate_mask`, on whole patches."""
    fraction = cfg.relative_hysteresis if 0 < cfg.relative_hysteresis < 1 else 1.0
    return valid & _adaptive(ev, fraction * threshold, cfg, _green_after(ev, cfg, levels))


def hysteresis(low: np.ndarray, seeds: np.ndarray) -> np.ndarray:
    """The 8-connected components of ``low`` that contain a pixel of ``seeds`` (hysteresis
    thresholding: seeds at a high threshold, grown through pixels above a low one).
    ``seeds`` must lie inside ``low``."""
    if not seeds.any():
        return seeds.copy()
    labels, count = ndimage.label(low, structure=np.ones((3, 3), bool))
    keep = np.zeros(count + 1, bool)
    keep[np.unique(labels[seeds])] = True
    keep[0] = False
    return keep[labels]


def calibrate_scene(
    read_windows, roles: tuple[str, ...], norm: Normalisation, cfg: ChangeConfig, *, relative: bool, min_pixels: int
) -> Normalisation:
    """``norm`` with the scene-adaptive rule's threshold (and, for ``relative``
    radiometry, the :class:`SceneLevels`), fitted on the scene's sample windows.

    ``read_windows()`` returns a fresh iterable of ``(before, after, valid)`` as read (it
    is called twice for relative radiometry, so memory holds one window at a time). The
    threshold is :func:`scene_magnitude_threshold` of the smoothed magnitudes of the
    clear pixels (clouds, shadows and water left out), so a cloud cannot pull it up to
    its own level. ``min_pixels`` is the smallest cloud or shadow (pixels).
    """

    def windows(whitening=None):
        for before, after, valid in read_windows():
            after_norm = norm.apply(after)
            yield before, after_norm, pixel_evidence(before, after, roles, after_norm, norm.scale, whitening), valid

    def clear(before, after_norm, ev, valid):
        if relative:  # clouds of both dates out of the sample, whatever the windows mask
            excluded = relative_cloud_shadow_mask(before, after_norm, roles, ev, levels, cfg, min_pixels=min_pixels,
                                                  clouds_on="both")
        else:
            excluded = cloud_shadow_mask(before, after_norm, roles, ev, cfg, min_pixels=min_pixels)
            excluded = excluded | (ev.water_before > cfg.water_ndwi) | (ev.water_after > cfg.water_ndwi)
        return valid & ~excluded

    levels = scene_levels(windows(), cfg) if relative else None
    whitening = None
    if relative and cfg.relative_whitening:  # the scene's no-change covariance of the difference
        rng = np.random.default_rng(0)
        scale = (1.0 / np.asarray(norm.scale, np.float32))[:, None]
        diffs = []
        for before, after_norm, ev, valid in windows():
            idx = np.flatnonzero(clear(before, after_norm, ev, valid).ravel())
            if len(idx) > cfg.normalisation_sample:
                idx = rng.choice(idx, cfg.normalisation_sample, replace=False)
            bands = before.shape[0]
            diffs.append((after_norm.reshape(bands, -1)[:, idx] - before.reshape(bands, -1)[:, idx]) * scale)
        whitening = fit_whitening(np.concatenate(diffs, axis=1)) if diffs else None
    values = []
    for before, after_norm, ev, valid in windows(whitening):
        values.append(smoothed_magnitude(ev, cfg)[clear(before, after_norm, ev, valid)])
    threshold = scene_magnitude_threshold(np.concatenate(values) if values else np.zeros(0), cfg, noise_floor=relative)
    return dataclasses.replace(norm, magnitude_threshold=threshold, levels=levels, relative=relative,
                               whitening=whitening)


def relative_window_mask(
    before: np.ndarray, after_norm: np.ndarray, valid: np.ndarray, roles: tuple[str, ...], ev: Evidence,
    norm: Normalisation, cfg: ChangeConfig, *, min_pixels: int,
) -> np.ndarray:
    """Candidate mask of one window under relative radiometry (clouds and shadows out)."""
    return relative_candidate_mask(ev, relative_clear(before, after_norm, valid, roles, ev, norm, cfg, min_pixels=min_pixels),
                                   norm.magnitude_threshold, cfg, norm.levels)


def relative_clear(
    before: np.ndarray, after_norm: np.ndarray, valid: np.ndarray, roles: tuple[str, ...], ev: Evidence,
    norm: Normalisation, cfg: ChangeConfig, *, min_pixels: int,
) -> np.ndarray:
    """Valid ground of one window that is neither cloud nor shadow, under relative radiometry."""
    excluded = relative_cloud_shadow_mask(before, after_norm, roles, ev, norm.levels, cfg, min_pixels=min_pixels)
    return valid & ~excluded
