"""Stable patch ids across periods and the change type (QDTYPE) against the last period.

A patch of this run that overlaps a patch of the previous output keeps that patch's
QDNM; its QDTYPE says whether it grew, shrank or stayed (by area, with the tolerance
of :class:`HistoryConfig`). Unmatched patches are 新增 and get new ids that continue
the previous output's sequence for the period.
"""

from __future__ import annotations

import re

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely

from swc_rs import codes
from swc_rs.config import HistoryConfig

_ID = re.compile(r"^(?P<prefix>\d+-\d{6})-(?P<seq>\d+)$")


def link_previous(current: gpd.GeoDataFrame, previous: gpd.GeoDataFrame | None, prefix: str, cfg: HistoryConfig) -> tuple[np.ndarray, np.ndarray]:
    """QDNM and QDTYPE for ``current`` (metric CRS) given the ``previous`` patches.

    Parameters
    ----------
    current
        This run's patches, in a metric CRS, sorted in their final order.
    previous
        The previous output's ``disturbance_patches`` in the same CRS (QDNM, QAREA), or None.
    prefix
        ``<admin code>-<period>`` of this run's new ids.

    Returns
    -------
    qdnm, qdtype : ndarray of str
    """
    n = len(current)
    qdnm = np.full(n, "", dtype=object)
    qdtype = np.full(n, codes.NEW, dtype=object)
    next_seq = 1
    if previous is not None and len(previous):
        prev_geoms = previous.geometry.values
        tree = shapely.STRtree(prev_geoms)
        cur_geoms = current.geometry.values
        cidx, pidx = tree.query(cur_geoms, predicate="intersects")
        if len(cidx):
            inter = shapely.area(shapely.intersection(cur_geoms[cidx], prev_geoms[pidx]))
            smaller = np.minimum(shapely.area(cur_geoms[cidx]), shapely.area(prev_geoms[pidx]))
            table = pd.DataFrame({"c": cidx, "p": pidx, "share": inter / np.maximum(smaller, 1e-9), "inter": inter})
            table = table[table.share >= cfg.min_overlap].sort_values("inter", ascending=False)
            used_prev: set[int] = set()
            for c, p in zip(table.c, table.p, strict=True):
                if qdnm[c] or p in used_prev:
                    continue
                used_prev.add(p)
                qdnm[c] = str(previous["QDNM"].iat[p])
                old, new = shapely.area(prev_geoms[p]), shapely.area(cur_geoms[c])
                change = (new - old) / max(old, 1e-9)
                qdtype[c] = (codes.QDTYPE[1] if change > cfg.area_tolerance
                             else codes.QDTYPE[2] if change < -cfg.area_tolerance else codes.QDTYPE[3])
        seqs = [int(m["seq"]) for m in (_ID.match(str(q)) for q in previous["QDNM"]) if m and m["prefix"] == prefix]
        next_seq = max(seqs, default=0) + 1
    for i in np.flatnonzero(qdnm == ""):
        qdnm[i] = f"{prefix}-{next_seq:06d}"
        next_seq += 1
    return qdnm, qdtype
