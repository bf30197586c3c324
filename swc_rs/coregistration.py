"""Estimate the misregistration between the two dates by phase correlation."""

from __future__ import annotations

import logging

import numpy as np
from skimage.registration import phase_cross_correlation

log = logging.getLogger(__name__)


def estimate_shift(
    before_windows: list[np.ndarray],
    after_windows: list[np.ndarray],
    valid_windows: list[np.ndarray],
    *,
    upsample: int = 20,
    max_shift: float = 8.0,
    min_windows: int = 3,
    max_spread: float = 0.5,
) -> tuple[float, float, int]:
    """Median sub-pixel shift (rows, cols) that registers AFTER onto BEFORE.

    Parameters
    ----------
    before_windows, after_windows
        2-D float arrays (one band, e.g. NIR or red) of the same windows of both dates.
    valid_windows
        Boolean arrays, True where both dates have clear data; windows with less than
        90 % valid pixels are skipped.
    upsample
        Sub-pixel precision is 1/upsample px.
    max_shift
        Estimates larger than this (pixels) are discarded as unreliable.
    min_windows, max_spread
        A shift is only reported when at least ``min_windows`` windows agree, their
        median absolute deviation from the median being at most ``max_spread`` px:
        real change, not misregistration, is what makes windows disagree.

    Returns
    -------
    rows, cols : float
        Shift to apply to AFTER (positive rows move it down).
    used : int
        Number of windows that contributed.
    """
    shifts = []
    for before, after, valid in zip(before_windows, after_windows, valid_windows, strict=True):
        if valid.mean() < 0.9 or before.std() == 0 or after.std() == 0:
            continue
        b = np.where(valid, before, np.median(before[valid]))
        a = np.where(valid, after, np.median(after[valid]))
        # Gradient magnitude correlates better across dates than raw radiance.
        gb = np.hypot(*np.gradient(b))
        ga = np.hypot(*np.gradient(a))
        shift, error, _ = phase_cross_correlation(gb, ga, upsample_factor=upsample, normalization=None)
        if np.all(np.abs(shift) <= max_shift):
            shifts.append(shift)
    if len(shifts) < min_windows:
        log.info("shift not estimated: %d usable window(s), %d needed", len(shifts), min_windows)
        return 0.0, 0.0, 0
    shifts_arr = np.asarray(shifts)
    median = np.median(shifts_arr, axis=0)
    spread = np.median(np.abs(shifts_arr - median), axis=0)
    if np.any(spread > max_spread):
        log.info("windows disagree on the shift (spread %.2f/%.2f px); not corrected", *spread)
        return 0.0, 0.0, 0
    return float(median[0]), float(median[1]), len(shifts)
