"""The land survey's land classes (地类) on the patches: typing and colouring hints.

``detect --landuse LAYER`` gives the third national land survey (三调) layer, or any
polygon layer with its classes. Each patch gets the class that covers most of it; then,
as configured in ``[landuse]`` (:class:`swc_rs.config.LanduseConfig`):

- **typing**: a patch typed 其他扰动 that lies mostly on farming land (耕地, 园地) and
  that the typer was not sure of is retyped 非生产建设项目 (farming: harvest, tillage,
  sowing), with the reason in NOTE. Spoil heaps and pits are never retyped, nor patches
  the typer was sure of: construction on farmland is exactly what must be found;
- **colouring**: a suspected violation that lies mostly on a protected class (林地 by
  default: occupation of forest land) is red.

Classes are read from ``DLMC`` (地类名称) or ``DLBM`` (地类编码); second-level names
and codes are folded to their first-level class (水田 → 耕地, 0301 → 林地), so a survey
layer can be given as it comes.
"""

from __future__ import annotations

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely

from swc_rs import codes
from swc_rs.config import LanduseConfig

#: First-level classes of 三调 (GB/T 21010-2017) by the first two digits of DLBM.
FIRST_LEVEL = {
    "01": "耕地", "02": "园地", "03": "林地", "04": "草地", "05": "商服用地",
    "06": "工矿仓储用地", "07": "住宅用地", "08": "公共管理与公共服务用地", "09": "特殊用地",
    "10": "交通运输用地", "11": "水域及水利设施用地", "12": "其他土地",
}
#: Second-level names (DLMC) folded to their first-level class.
SECOND_LEVEL = {
    **dict.fromkeys(("水田", "水浇地", "旱地"), "耕地"),
    **dict.fromkeys(("果园", "茶园", "橡胶园", "其他园地"), "园地"),
    **dict.fromkeys(("乔木林地", "竹林地", "红树林地", "森林沼泽", "灌木林地", "灌丛沼泽", "其他林地"), "林地"),
    **dict.fromkeys(("天然牧草地", "沼泽草地", "人工牧草地", "其他草地"), "草地"),
}
FIELDS = ("DLMC", "DLBM")


def class_field(frame: gpd.GeoDataFrame, wanted: str = "auto") -> str | None:
    """The field that holds the classes: ``wanted``, else DLMC, else DLBM; None if absent."""
    if wanted != "auto":
        return wanted if wanted in frame.columns else None
    return next((f for f in FIELDS if f in frame.columns), None)


def first_level(values: pd.Series) -> np.ndarray:
    """Fold DLMC names or DLBM codes to the first-level class (unknown names kept as given)."""
    out = []
    for v in values.astype(str).str.strip():
        if v[:2].isdigit():
            out.append(FIRST_LEVEL.get(v[:2], v))
        else:
            out.append(SECOND_LEVEL.get(v, v))
    return np.array(out, dtype=object)


def dominant_classes(patches: gpd.GeoDataFrame, landuse: gpd.GeoDataFrame) -> tuple[np.ndarray, np.ndarray]:
    """The land class covering most of each patch and the share it covers.

    Parameters
    ----------
    patches
        Patch polygons in a metric CRS.
    landuse
        Land-use polygons in the same CRS with a ``CLASS`` column (first-level names).

    Returns
    -------
    classes : ndarray of str, shape (n,)
        "" where no land-use polygon touches the patch.
    shares : ndarray of float, shape (n,)
        Share (0–1) of the patch's area under that class.
    """
    n = len(patches)
    classes, shares = np.full(n, "", dtype=object), np.zeros(n)
    if n == 0 or len(landuse) == 0:
        return classes, shares
    pidx, lidx = landuse.sindex.query(patches.geometry.values, predicate="intersects")
    if len(pidx) == 0:
        return classes, shares
    area = shapely.area(shapely.intersection(patches.geometry.values[pidx], landuse.geometry.values[lidx]))
    table = pd.DataFrame({"patch": pidx, "cls": landuse["CLASS"].to_numpy()[lidx], "area": area})
    by = table.groupby(["patch", "cls"], sort=False)["area"].sum().reset_index()
    best = by.loc[by.groupby("patch")["area"].idxmax()]
    total = shapely.area(patches.geometry.values)
    rows = best["patch"].to_numpy()
    classes[rows] = best["cls"].to_numpy()
    shares[rows] = np.minimum(best["area"].to_numpy() / np.maximum(total[rows], 1e-9), 1.0)
    return classes, shares


def apply_typing(frame: gpd.GeoDataFrame, classes: np.ndarray, shares: np.ndarray, config: LanduseConfig) -> gpd.GeoDataFrame:
    """Retype unsure 其他扰动 patches on farming land as 非生产建设项目; note every patch's class.

    ``frame`` needs QTYPE, X_CONF and NOTE; a copy is returned.
    """
    out = frame.copy()
    farming = (
        np.isin(classes, list(config.farming_classes))
        & (shares >= config.farming_share)
        & (out["QTYPE"].to_numpy() == codes.OTHER)
        & (out["X_CONF"].to_numpy() < config.farming_max_confidence)
    )
    notes = out["NOTE"].astype(str).to_numpy().copy()
    for i in np.flatnonzero(classes != ""):
        tag = f"地类：{classes[i]} {shares[i]:.0%}"
        if farming[i]:
            notes[i] = f"自动判读：疑似耕作（{tag}）"
        else:
            notes[i] = f"{notes[i]}；{tag}" if notes[i] else tag
    out["NOTE"] = notes
    out.loc[farming, "QTYPE"] = codes.NOT_PROJECT
    return out


def protected(classes: np.ndarray, shares: np.ndarray, config: LanduseConfig) -> np.ndarray:
    """Patches lying mostly (``red_share``) on a class of ``red_classes``."""
    return np.isin(classes, list(config.red_classes)) & (shares >= config.red_share)
