"""Patch typing (QTYPE) and confidence (X_CONF).

Without a model, :func:`rule_qtype` types patches from their object features with the
documented rules of :class:`~swc_rs.config.ClassifyConfig`. Each rule names the physical
reason it stands on, so that a supervisor can read why a patch was typed as it was.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from swc_rs import codes
from swc_rs.config import ChangeConfig, ClassifyConfig

#: Object features computed for every patch (see ``pipeline.features_from_stats``).
FEATURES = (
    "veg_before", "veg_after", "bright_before", "bright_after", "bright_after_cv",
    "redness_after", "bare_after", "water_before", "water_after", "magnitude",
    "candidate_frac", "ring_veg_before", "ring_bright_after", "texture_fine", "veg_after_std",
    "area_m2", "compactness", "solidity", "rectangularity", "elongation", "width_m",
)


def rule_qtype(
    feat: pd.DataFrame, cls: ClassifyConfig, change: ChangeConfig, *, relative: bool = False
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """QTYPE, X_CONF and the reason, from object features.

    Rules, first match wins:

    1. Water on either date over 30 % of the patch → 非生产建设项目 (water level).
    2. Still vegetated after (mean vegetation index above ``bare_ndvi_max``) →
       非生产建设项目 (season).
    3. Dark and even bare surface (after brightness below ``tillage_brightness_max``,
       brightness CV below ``tillage_texture_max``): moist tilled or harvested soil →
       非生产建设项目 (tillage).
    4. Grey (redness below ``quarry_redness_max``) and textured (benches, pit-wall
       shadows: brightness CV ≥ ``quarry_texture_min``) → 取土（石）场.
    5. Reddish-brown loose material (redness ≥ ``spoil_redness_min``), lumpy
       (CV ≥ ``spoil_texture_min``) and irregular (solidity < 0.85) → 弃土（渣）场.
    6. Otherwise → 其他扰动.

    With ``relative`` (rasters that are not reflectance, see
    :func:`swc_rs.change.relative_radiometry`) rules 1–3 are skipped: their absolute
    NDWI, vegetation-index and brightness thresholds do not hold on DN or display
    values (greening is already left out by the relative candidate rule).

    X_CONF for rules is a margin score in 0–1 (how far the deciding feature is from
    its threshold), not a calibrated probability; a model gives calibrated ones.
    """
    n = len(feat)
    qtype = np.full(n, codes.OTHER, dtype=object)
    reason = np.full(n, "", dtype=object)
    water = np.maximum(feat["water_before"], feat["water_after"]).to_numpy() > 0.3
    vegetated = feat["veg_after"].to_numpy() > change.bare_ndvi_max
    red = feat["redness_after"].to_numpy()
    cv = feat["bright_after_cv"].to_numpy()
    dark = (feat["bright_after"].to_numpy() < cls.tillage_brightness_max) & (cv < cls.tillage_texture_max)
    quarry = (red < cls.quarry_redness_max) & (cv >= cls.quarry_texture_min)
    spoil = (red >= cls.spoil_redness_min) & (cv >= cls.spoil_texture_min) & (feat["solidity"].to_numpy() < 0.85)
    if relative:
        water = vegetated = dark = np.zeros(n, bool)
    decided = np.zeros(n, bool)
    for mask, value, why in (
        (water, codes.NOT_PROJECT, "水位变化"),
        (vegetated, codes.NOT_PROJECT, "季节性植被变化"),
        (dark, codes.NOT_PROJECT, "耕地翻耕"),
        (quarry, codes.BORROW, ""),
        (spoil, codes.SPOIL, ""),
    ):
        take = mask & ~decided
        qtype[take] = value
        reason[take] = why
        decided |= take
    margin = np.abs(feat["bright_after"].to_numpy() - cls.tillage_brightness_max) / max(cls.tillage_brightness_max, 1e-6)
    conf = np.clip(0.5 + 0.5 * np.tanh(3 * margin), 0.0, 1.0)
    return qtype, conf.astype(float), reason
