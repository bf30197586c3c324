"""Tallies per region and the soil-and-water-conservation rate (水土保持率).

rate = (land area − eroding area) / land area, eroding = modulus at or above the
tolerable loss (轻度 and worse, SL 190-2007), over the land that was seen: pixels
with a DEM, a land-use class and, where B depends on the cover, a clear view (no
cloud, shadow or imagery nodata). What was not seen is reported as its share, never
counted as either.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from swc_rs.erosion.factors import GRADES


@dataclass
class RegionTally:
    """Pixel counts of ``n`` regions (ids 1 … n; id 0 is outside every region)."""

    n: int
    covered: np.ndarray = field(init=False)   # DEM valid
    seen: np.ndarray = field(init=False)      # A computed
    grades: np.ndarray = field(init=False)    # (n + 1, 6)
    modulus_sum: np.ndarray = field(init=False)

    def __post_init__(self):
        self.covered = np.zeros(self.n + 1, np.int64)
        self.seen = np.zeros(self.n + 1, np.int64)
        self.grades = np.zeros((self.n + 1, len(GRADES)), np.int64)
        self.modulus_sum = np.zeros(self.n + 1, np.float64)

    def add(self, ids: np.ndarray, covered: np.ndarray, grade: np.ndarray, modulus: np.ndarray) -> None:
        """Add one window: region ``ids``, DEM-valid mask, grade (0 = not seen), modulus."""
        size = self.n + 1
        self.covered += np.bincount(ids[covered], minlength=size)
        seen = grade > 0
        self.seen += np.bincount(ids[seen], minlength=size)
        flat = ids[seen].astype(np.int64) * len(GRADES) + (grade[seen].astype(np.int64) - 1)
        self.grades += np.bincount(flat, minlength=size * len(GRADES)).reshape(size, len(GRADES))
        self.modulus_sum += np.bincount(ids[seen], weights=modulus[seen], minlength=size)

    def merge(self, other: RegionTally) -> None:
        self.covered += other.covered
        self.seen += other.seen
        self.grades += other.grades
        self.modulus_sum += other.modulus_sum


def target_label(rate: float, targets: dict[str, float]) -> str:
    """Which targets a rate meets, in words (达到2035年目标 / 达到2025年目标 / 未达2025年目标)."""
    if not np.isfinite(rate):
        return "无观测"
    met = [year for year, value in sorted(targets.items()) if rate >= value]
    if met:
        return f"达到{met[-1]}年目标"
    return f"未达{min(targets)}年目标"


def rate_table(tally: RegionTally, region_area_m2: np.ndarray, pixel_area_m2: float,
               targets: dict[str, float]) -> pd.DataFrame:
    """One row per region (ids 1 … n): areas by grade, 水土保持率, mean modulus, gaps.

    ``region_area_m2`` holds each region's own area (its polygon), so that a region the
    DEM or imagery covers in part says so (COVER_PCT < 100) instead of passing as whole.
    """
    to_hm2 = pixel_area_m2 / 10_000.0
    rows = []
    for i in range(1, tally.n + 1):
        seen = tally.seen[i]
        eroding = tally.grades[i, 1:].sum()
        rate = 100.0 * (seen - eroding) / seen if seen else float("nan")
        covered_m2 = tally.covered[i] * pixel_area_m2
        row = {
            "LAND_HM2": round(region_area_m2[i - 1] / 10_000.0, 4),
            "COVER_PCT": round(min(100.0, 100.0 * covered_m2 / region_area_m2[i - 1]) if region_area_m2[i - 1] else 0.0, 2),
            "SEEN_HM2": round(seen * to_hm2, 4),
            "UNSEEN_PCT": round(100.0 * (tally.covered[i] - seen) / tally.covered[i], 2) if tally.covered[i] else 100.0,
        }
        for g in range(len(GRADES)):
            row[f"G{g + 1}_HM2"] = round(tally.grades[i, g] * to_hm2, 4)
        row["ERODE_HM2"] = round(eroding * to_hm2, 4)
        row["SWC_RATE"] = round(rate, 2) if seen else None
        row["MEAN_A"] = round(tally.modulus_sum[i] / seen, 1) if seen else None
        for year, value in sorted(targets.items()):
            row[f"GAP_{year}"] = round(value - rate, 2) if seen else None
        row["X_TARGET"] = target_label(rate, targets)
        row["X_PARTIAL"] = "是" if row["COVER_PCT"] < 99.5 or row["UNSEEN_PCT"] > 0.5 else "否"
        rows.append(row)
    return pd.DataFrame(rows)


def overall_rate(tally: RegionTally) -> float:
    """水土保持率 (%) over every region's seen land together."""
    seen = tally.seen[1:].sum()
    eroding = tally.grades[1:, 1:].sum()
    return 100.0 * (seen - eroding) / seen if seen else float("nan")
