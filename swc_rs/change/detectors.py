"""The change stage's one interface: a detector turns one window's inputs into its candidate mask.

Two detectors implement it, and the window pass (:func:`swc_rs.windows._window_patches`)
does not branch on which one runs:

* :class:`RulesDetector` — the documented rules of :mod:`swc_rs.change` (scene-adaptive
  magnitude rule with hysteresis on reflectance, the relative rule otherwise, or the
  pixel model of an experimental patch-typer file);
* :class:`swc_rs.change.learned.LearnedDetector` — the learned network.

``candidates(window, norm, config) -> (mask, seeds)``: the boolean candidate mask of the
window (with its halo) and the seeds a patch must hold to be kept once the window seams
are merged (``None``: no seeding). Both leave clouds, shadows and nodata out the same way
(:func:`clear_ground`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from swc_rs.change import (
    Evidence,
    Normalisation,
    candidate_mask,
    cloud_shadow_mask,
    hysteresis_masks,
    relative_candidate_mask,
    relative_clear,
    relative_low_mask,
    relative_seeding,
    relative_seeds,
)
from swc_rs.config import DetectConfig


@dataclass
class WindowData:
    """One window with its halo, as every detector sees it.

    ``before``/``after``: reflectance as read (AFTER not normalised), ``after_norm``:
    AFTER radiometrically normalised to BEFORE, ``valid``: data on both dates, ``ev``: the
    rules' per-pixel evidence, ``roles``: the band roles, ``pixel_m``: ground pixel size.
    """

    before: np.ndarray
    after: np.ndarray
    after_norm: np.ndarray
    valid: np.ndarray
    ev: Evidence
    roles: tuple[str, ...]
    pixel_m: float


def _cloud_shadow(w: WindowData, config: DetectConfig) -> np.ndarray:
    return cloud_shadow_mask(w.before, w.after_norm, w.roles, w.ev, config.change,
                             min_pixels=int(config.change.cloud_min_area_m2 / w.pixel_m**2))


def clear_ground(w: WindowData, norm: Normalisation, config: DetectConfig) -> np.ndarray:
    """Valid pixels outside clouds and shadows (and their buffers) on either date."""
    if norm.relative:
        return relative_clear(w.before, w.after_norm, w.valid, w.roles, w.ev, norm, config.change,
                              min_pixels=int(config.change.cloud_min_area_m2 / w.pixel_m**2))
    return w.valid & ~_cloud_shadow(w, config)


def seeded(norm: Normalisation, config: DetectConfig) -> bool:
    """Whether the rules' patches must hold a seed: the relative rule with seeding, or
    reflectance with ``hysteresis`` (and the scene-adaptive rule on)."""
    threshold = norm.magnitude_threshold
    if threshold is None or not np.isfinite(threshold):
        return False
    if norm.relative:
        return relative_seeding(config.change)
    return 0 < config.change.hysteresis < 1 and config.change.adaptive_magnitude


class RulesDetector:
    """The documented rules (``--rules``, and where no network fits the imagery).

    ``model``: a patch-typer file with pixel models (``make model-pixel``), whose mask
    replaces the reflectance rule where it has a model for the band family.
    """

    name = "rules"
    halo_px = 0
    model_id = "rules"

    def __init__(self, model=None):
        self.model = model

    def uses_seeds(self, norm: Normalisation, config: DetectConfig) -> bool:
        """Whether a patch is kept only when it holds a seed (see :func:`seeded`)."""
        return seeded(norm, config)

    def candidates(self, w: WindowData, norm: Normalisation, config: DetectConfig):
        threshold = norm.magnitude_threshold
        if norm.relative:
            clear = clear_ground(w, norm, config)
            if seeded(norm, config):  # every region here; the patches are judged on their seeds once merged
                return (relative_low_mask(w.ev, clear, threshold, config.change, norm.levels),
                        relative_seeds(w.ev, clear, threshold, config.change, norm.levels))
            return relative_candidate_mask(w.ev, clear, threshold, config.change, norm.levels), None
        excluded = _cloud_shadow(w, config)
        if self.model is not None:
            mask = self.model.pixel_mask(w.before, w.after_norm, w.valid, excluded, w.roles, w.ev, config)
            if mask is not None:
                return mask, mask  # a pixel model's mask is not grown: every patch of it holds seeds
        if seeded(norm, config):  # every region above the low threshold; judged on its seeds once merged
            return hysteresis_masks(w.ev, w.valid, excluded, config.change, threshold)
        return candidate_mask(w.ev, w.valid, excluded, config.change, threshold), None
