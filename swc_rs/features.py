"""Per-pixel features of one window for the learned disturbance mask.

Pure numpy/scipy on the arrays of one processing window, exactly as
``pipeline._find_patches`` sees them: ``before``/``after`` float32 reflectance
``(len(roles), h, w)`` with AFTER already radiometrically normalised, and the
:class:`swc_rs.change.Evidence` computed from them.

Every feature has one definition for every band set. Where a sensor lacks a band the
evidence already falls back to a proxy (vegetation: NDVI, else the visible VARI proxy;
water: NDWI, else blue dominance; bare: BSI with SWIR, else its visible/NIR form), so
the *values* differ between band-set families and :mod:`swc_rs.model` keeps one pixel
model per family (:func:`band_family`): ``rgb`` (no NIR), ``vnir`` (NIR, no SWIR) and
``vnir+swir``.

Features (float32, one row per pixel)
-------------------------------------
veg_before, veg_after, veg_drop
    Vegetation index of both dates and its fall.
bright_before, bright_after, bright_rise
    Visible brightness (mean of blue, green, red reflectance) and its rise.
bright_log_ratio
    ln((after + 0.01) / (before + 0.01)): relative brightening, gain-free.
bare_before, bare_after, water_before, water_after
    Bare-soil and water indices of both dates.
magnitude
    Change-vector magnitude with every band scaled by its BEFORE standard deviation.
magnitude_z
    ``magnitude`` as a robust z-score within the window ((m − median) / (1.4826·MAD)):
    how exceptional the change is *here*, whatever the sensor's noise.
spectral_angle
    Angle (radians) between the BEFORE and AFTER band vectors: a change of colour,
    insensitive to illumination.
magnitude_mean3, magnitude_mean9
    Local means of ``magnitude`` over 3×3 and 9×9 pixels (context: a change is a patch,
    noise is a speck).
veg_drop_mean5
    Local mean of the vegetation fall over 5×5.
texture_before, texture_after
    Local standard deviation of brightness over 5×5 on each date (built-up areas and
    construction sites are textured).
veg_context_before
    Local mean of the BEFORE vegetation index over 15×15 (fields, forest or town).
excluded, water_flag
    1 where ``change.cloud_shadow_mask`` flags cloud or shadow / where either date is
    water, else 0. Features, not hard masks as in the rules: on the real training
    cities that mask also covers 75–95 % of the labelled new building (bright white
    roofs, uniform darkening), and a hard mask cut leave-one-city-out F1 from ~0.36
    to ~0.05. The price: a held-out generated scene with a large hazy cloud loses
    precision (see MODEL_CARD.md).
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from swc_rs.change import Evidence

FEATURE_NAMES = (
    "veg_before", "veg_after", "veg_drop",
    "bright_before", "bright_after", "bright_rise", "bright_log_ratio",
    "bare_before", "bare_after", "water_before", "water_after",
    "magnitude", "magnitude_z", "spectral_angle",
    "magnitude_mean3", "magnitude_mean9", "veg_drop_mean5",
    "texture_before", "texture_after", "veg_context_before",
    "excluded", "water_flag",
)

FAMILIES = ("rgb", "vnir", "vnir+swir")

#: Pixels sampled to estimate the window's median and MAD of the magnitude.
_Z_SAMPLE = 65_536


def band_family(roles: tuple[str, ...] | list[str]) -> str:
    """The band-set family of a pair: ``rgb``, ``vnir`` or ``vnir+swir``."""
    roles = set(roles)
    if "nir" not in roles:
        return "rgb"
    if "swir1" in roles:
        return "vnir+swir"
    return "vnir"


def _local_mean(image: np.ndarray, size: int) -> np.ndarray:
    return ndimage.uniform_filter(image, size=size, mode="reflect")


def _local_std(image: np.ndarray, size: int) -> np.ndarray:
    mean = ndimage.uniform_filter(image, size=size, mode="reflect")
    sq = ndimage.uniform_filter(image * image, size=size, mode="reflect")
    return np.sqrt(np.maximum(sq - mean * mean, 0.0))


def robust_z(values: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """(values − median) / (1.4826·MAD) with median and MAD over (a sample of) valid pixels."""
    flat = values[valid] if valid.any() else values.ravel()
    if flat.size > _Z_SAMPLE:
        flat = flat[:: flat.size // _Z_SAMPLE + 1]
    if flat.size == 0:
        return np.zeros_like(values)
    med = float(np.median(flat))
    mad = float(np.median(np.abs(flat - med))) * 1.4826
    return ((values - med) / max(mad, 1e-3)).astype(np.float32)


def pixel_features(before: np.ndarray, after: np.ndarray, valid: np.ndarray, roles: tuple[str, ...], ev: Evidence,
                   excluded: np.ndarray, water: np.ndarray) -> np.ndarray:
    """The feature stack of one window.

    Parameters
    ----------
    before, after : ndarray, float32, shape (bands, h, w)
        Reflectance in ``roles`` order; AFTER normalised onto BEFORE.
    valid : ndarray, bool, shape (h, w)
        Both dates have data.
    roles : tuple of str
        Band roles of the stacks.
    ev : Evidence
        ``change.pixel_evidence(before, after, roles)``.
    excluded, water : ndarray, bool, shape (h, w)
        ``change.cloud_shadow_mask`` of the window; water on either date
        (index above ``ChangeConfig.water_ndwi``).

    Returns
    -------
    ndarray, float32, shape (len(FEATURE_NAMES), h, w)
        Finite everywhere (invalid pixels get 0).
    """
    f32 = np.float32
    veg_drop = (ev.veg_before - ev.veg_after).astype(f32)
    bright_rise = (ev.bright_after - ev.bright_before).astype(f32)
    log_ratio = np.log((np.maximum(ev.bright_after, 0) + f32(0.01)) / (np.maximum(ev.bright_before, 0) + f32(0.01))).astype(f32)
    magnitude = np.where(valid, ev.magnitude, 0).astype(f32)
    dot = (before * after).sum(axis=0)
    norms = np.sqrt((before * before).sum(axis=0) * (after * after).sum(axis=0))
    cosang = np.divide(dot, norms, out=np.ones_like(dot), where=norms > 1e-9)
    angle = np.arccos(np.clip(cosang, -1.0, 1.0)).astype(f32)
    stack = np.stack([
        ev.veg_before, ev.veg_after, veg_drop,
        ev.bright_before, ev.bright_after, bright_rise, log_ratio,
        ev.bare_before, ev.bare_after, ev.water_before, ev.water_after,
        magnitude, robust_z(magnitude, valid), angle,
        _local_mean(magnitude, 3), _local_mean(magnitude, 9), _local_mean(veg_drop, 5),
        _local_std(ev.bright_before.astype(f32), 5), _local_std(ev.bright_after.astype(f32), 5),
        _local_mean(ev.veg_before.astype(f32), 15),
        excluded.astype(f32), water.astype(f32),
    ]).astype(f32, copy=False)
    stack[:, ~valid] = 0
    np.nan_to_num(stack, copy=False, nan=0.0, posinf=0.0, neginf=0.0)
    return stack


def gate_mask(stack: np.ndarray, valid: np.ndarray, gate_z: float) -> np.ndarray:
    """Cheap first stage of the cascade: pixels whose change is worth the classifier's time.

    A pixel passes when both dates have data and its change magnitude, as a robust
    z-score within the window, reaches ``gate_z``.
    """
    z = stack[FEATURE_NAMES.index("magnitude_z")]
    return valid & (z >= gate_z)
