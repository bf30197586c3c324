"""Compliance analysis (合规性分析): BYD, EAREA, PRNM, X_RULE, colours.

Works on GeoDataFrames in the area CRS (EPSG:4543, metres) and returns new frames;
reads and writes nothing. The rules are DOMAIN.md's:

1. P inside the union R of responsibility ranges, up to the edge tolerance → 合规.
2. P meets R and area(P \\ R) exceeds the tolerance → 疑似超出防治责任范围, EAREA = area(P \\ R).
3. P meets no range → 疑似未批先建; 疑似未批先弃 when P is a spoil site.
4. A range with no disturbance while a similar disturbance lies outside every range
   within the search radius → 疑似建设地点变更 (spoil sites keep rule 3: dumping
   without approval is its own violation).
5. Not construction (非生产建设项目) → no verdict, kept off the violation list.
"""

from __future__ import annotations

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely

from swc_rs import codes
from swc_rs.config import DetectConfig

HM2 = 10_000.0


def judge(
    patches: gpd.GeoDataFrame,
    ranges: gpd.GeoDataFrame,
    sensitive: gpd.GeoDataFrame | None,
    config: DetectConfig,
    *,
    pixel_size_m: float,
    protected: np.ndarray | None = None,
) -> gpd.GeoDataFrame:
    """Add BYD, EAREA, PRNM, X_RULE, X_COLOR and X_SENS to ``patches``.

    Parameters
    ----------
    patches
        Patches in a metric CRS with QTYPE, QAREA (hm²) and X_ZONE.
    ranges
        Responsibility ranges in the same CRS with PRNM and DAREA (hm²).
    sensitive
        Sensitive areas (NAME, KIND) or None.
    pixel_size_m
        Ground pixel size, for the "narrower than N pixels" tolerance.
    protected
        Optional bool per patch: it lies on protected land (``detect --landuse``,
        :func:`swc_rs.landuse.protected`); a suspected violation there is red.
    """
    out = patches.copy()
    n = len(out)
    byd = np.full(n, "", dtype=object)
    rule = np.full(n, "", dtype=object)
    prnm = np.full(n, "", dtype=object)
    earea = np.zeros(n)
    geoms = out.geometry.values
    project = (out["QTYPE"] != codes.NOT_PROJECT).to_numpy()
    rule[~project] = "规则5：非生产建设项目（耕作、季节、水位等自然变化），不作合规判定"

    ranges = ranges.reset_index(drop=True) if ranges is not None else gpd.GeoDataFrame({"PRNM": []}, geometry=[], crs=out.crs)
    # Largest overlap per patch → PRNM.
    best_range = np.full(n, -1)
    outside = np.array(geoms, dtype=object)
    if len(ranges) and n:
        tree = shapely.STRtree(ranges.geometry.values)
        pidx, ridx = tree.query(geoms, predicate="intersects")
        if len(pidx):
            areas = shapely.area(shapely.intersection(geoms[pidx], ranges.geometry.values[ridx]))
            table = pd.DataFrame({"p": pidx, "r": ridx, "a": areas})
            table = table[table.a > 0]
            best = table.sort_values("a", ascending=False).drop_duplicates("p")
            best_range[best.p.to_numpy()] = best.r.to_numpy()
            outside = _outside(geoms, ranges.geometry.values, table.p.to_numpy(), table.r.to_numpy(), outside)
    meets = best_range >= 0
    outside_area = shapely.area(outside)
    qarea = out["QAREA"].to_numpy(dtype=float)

    for i in np.flatnonzero(project):
        rules = config.rules_for(out["X_ZONE"].iat[i])
        if not meets[i]:
            spoil = out["QTYPE"].iat[i] == codes.SPOIL
            byd[i] = codes.UNAPPROVED_SPOIL if spoil else codes.UNAPPROVED
            rule[i] = "规则3：图斑与任何防治责任范围均不相交" + ("，且为弃土（渣）场" if spoil else "")
            earea[i] = qarea[i]
            continue
        prnm[i] = ranges["PRNM"].iat[best_range[i]] if "PRNM" in ranges else ""
        sliver = outside_area[i] / HM2
        narrow = _narrower_than(outside[i], rules.edge_tolerance_px * pixel_size_m)
        if (
            sliver < rules.edge_tolerance_hm2
            or sliver < rules.edge_tolerance_fraction * qarea[i]
            or narrow
        ):
            byd[i] = codes.COMPLIANT
            why = "面积" if sliver < rules.edge_tolerance_hm2 else ("比例" if sliver < rules.edge_tolerance_fraction * qarea[i] else "宽度")
            rule[i] = "规则1：位于防治责任范围内" + (f"（范围外 {sliver:.4f} hm² 在容差内：{why}）" if sliver > 0 else "")
        else:
            byd[i] = codes.OVERRUN
            earea[i] = sliver
            rule[i] = f"规则2：超出防治责任范围 {sliver:.4f} hm²（占图斑 {sliver / max(qarea[i], 1e-9):.0%}）"

    # Rule 3's EAREA: the whole patch lies outside every range.
    # Rule 4: idle ranges and similar disturbance nearby.
    if len(ranges) and n:
        disturbed = np.zeros(len(ranges))
        pj = np.flatnonzero(project)
        if len(pj):
            tree = shapely.STRtree(geoms[pj])
            ridx, pidx = tree.query(ranges.geometry.values, predicate="intersects")
            if len(ridx):
                inter = shapely.area(shapely.intersection(ranges.geometry.values[ridx], geoms[pj][pidx]))
                np.add.at(disturbed, ridx, inter)
        range_area = shapely.area(ranges.geometry.values)
        idle = disturbed < config.compliance.idle_fraction * np.maximum(range_area, 1e-9)
        candidates = np.flatnonzero(byd == codes.UNAPPROVED)
        if idle.any() and len(candidates):
            idle_idx = np.flatnonzero(idle)
            tree = shapely.STRtree(ranges.geometry.values[idle_idx])
            cidx, ridx = tree.query(
                geoms[candidates], predicate="dwithin", distance=config.compliance.search_radius_m
            )
            if len(cidx):
                dist = shapely.distance(geoms[candidates][cidx], ranges.geometry.values[idle_idx][ridx])
                table = pd.DataFrame({"c": cidx, "r": idle_idx[ridx], "d": dist}).sort_values("d").drop_duplicates("c")
                for c, r, d in table.itertuples(index=False):
                    i = candidates[c]
                    byd[i] = codes.SITE_CHANGE
                    prnm[i] = ranges["PRNM"].iat[r] if "PRNM" in ranges else ""
                    rule[i] = f"规则4：项目“{prnm[i]}”范围内无扰动，而本图斑位于其 {d:.0f} m 外、不在任何范围内"

    out["BYD"] = byd
    out["EAREA"] = np.round(earea, 4)
    out["PRNM"] = prnm
    out["X_RULE"] = rule
    out["X_SENS"] = _sensitive_hits(geoms, sensitive)
    out["X_COLOR"] = _colours(out, ranges, config)
    if protected is not None:
        raise_red = np.asarray(protected, bool) & out["BYD"].astype(str).str.startswith(codes.SUSPECTED_PREFIX).to_numpy()
        out.loc[raise_red, "X_COLOR"] = codes.RED
        out.loc[raise_red, "X_RULE"] = out.loc[raise_red, "X_RULE"] + "；地类为保护地类（landuse red_classes），定为红色"
    return out


def _outside(geoms: np.ndarray, ranges: np.ndarray, pidx: np.ndarray, ridx: np.ndarray, out: np.ndarray) -> np.ndarray:
    """P \\ R per patch, against the union of only the ranges it overlaps.

    Equal to ``difference(P, union of all ranges)``: a range P does not overlap
    removes nothing from it. Cutting each patch by its one or two neighbours instead
    of the city-wide union keeps this linear in the number of patches.
    """
    order = np.argsort(pidx, kind="stable")
    pidx, ridx = pidx[order], ridx[order]
    starts = np.flatnonzero(np.r_[True, pidx[1:] != pidx[:-1]])
    counts = np.diff(np.r_[starts, len(pidx)])
    single = starts[counts == 1]
    out[pidx[single]] = shapely.difference(geoms[pidx[single]], ranges[ridx[single]])
    for start, count in zip(starts[counts > 1], counts[counts > 1], strict=True):
        p = pidx[start]
        out[p] = shapely.difference(geoms[p], shapely.union_all(ranges[ridx[start:start + count]]))
    return out


def _narrower_than(geom, width_m: float) -> bool:
    """True when every part of ``geom`` vanishes under an inward buffer of width/2."""
    if geom is None or geom.is_empty or width_m <= 0:
        return geom is None or geom.is_empty
    # A sliver only a few nanometres wide (a patch edge along a range edge) makes GEOS
    # divide by zero while buffering it away; the answer (empty) is right, the
    # RuntimeWarning on the user's terminal is noise.
    with np.errstate(divide="ignore", invalid="ignore"):
        return shapely.buffer(geom, -width_m / 2.0).is_empty


def _sensitive_hits(geoms: np.ndarray, sensitive: gpd.GeoDataFrame | None) -> np.ndarray:
    hits = np.full(len(geoms), "", dtype=object)
    if sensitive is None or len(sensitive) == 0 or len(geoms) == 0:
        return hits
    names = (
        sensitive["NAME"].astype(str) if "NAME" in sensitive else pd.Series([f"敏感区{i + 1}" for i in range(len(sensitive))])
    ).to_numpy()
    kinds = sensitive["KIND"].astype(str).to_numpy() if "KIND" in sensitive else np.full(len(sensitive), "")
    tree = shapely.STRtree(sensitive.geometry.values)
    pidx, sidx = tree.query(geoms, predicate="intersects")
    for p, s in zip(pidx, sidx, strict=True):
        label = f"{names[s]}（{kinds[s]}）" if kinds[s] else names[s]
        hits[p] = f"{hits[p]}；{label}" if hits[p] else label
    return hits


def _colours(patches: pd.DataFrame, ranges: gpd.GeoDataFrame, config: DetectConfig) -> np.ndarray:
    """三色: per-zone thresholds; any suspected violation in a sensitive area is red."""
    darea = {}
    if len(ranges) and "PRNM" in ranges:
        values = ranges["DAREA"] if "DAREA" in ranges else pd.Series(np.nan, index=ranges.index)
        computed = shapely.area(ranges.geometry.values) / HM2
        for name, given, calc in zip(ranges["PRNM"], values, computed, strict=True):
            area = float(given) if pd.notna(given) and float(given) > 0 else float(calc)
            darea[name] = darea.get(name, 0.0) + area
    colours = np.full(len(patches), codes.GREEN, dtype=object)
    for i, row in enumerate(patches.itertuples(index=False)):
        byd = row.BYD
        if not byd or not byd.startswith(codes.SUSPECTED_PREFIX):
            continue
        rules = config.rules_for(row.X_ZONE)
        colour = codes.YELLOW
        if byd in (codes.UNAPPROVED, codes.UNAPPROVED_SPOIL) and row.QAREA >= rules.red_unapproved_hm2:
            colour = codes.RED
        if byd == codes.UNAPPROVED_SPOIL and rules.red_spoil_outside:
            colour = codes.RED
        if byd == codes.OVERRUN and row.EAREA >= rules.red_overrun_fraction * darea.get(row.PRNM, np.inf):
            colour = codes.RED
        if byd == codes.SITE_CHANGE:
            colour = rules.site_change_color
        if row.X_SENS:
            colour = codes.RED
        colours[i] = colour
    return colours


def summarise_projects(ranges: gpd.GeoDataFrame, patches: gpd.GeoDataFrame) -> gpd.GeoDataFrame:
    """Per-project summary: patch count, EAREA sum, worst colour (X_N_PATCH, X_EAREA, X_COLOR)."""
    out = ranges.copy()
    if len(out) == 0:
        for col in ("X_N_PATCH", "X_EAREA", "X_COLOR"):
            out[col] = pd.Series(dtype=object if col == "X_COLOR" else float)
        return out
    by = patches[patches["PRNM"] != ""].groupby("PRNM") if len(patches) else None
    count = by.size() if by is not None else pd.Series(dtype=int)
    esum = by["EAREA"].sum() if by is not None else pd.Series(dtype=float)
    worst = (
        by["X_COLOR"].agg(lambda c: max(c, key=lambda x: codes.COLOUR_RANK.get(x, 0))) if by is not None else pd.Series(dtype=object)
    )
    names = out["PRNM"] if "PRNM" in out else pd.Series([""] * len(out), index=out.index)
    out["X_N_PATCH"] = names.map(count).fillna(0).astype(int).to_numpy()
    out["X_EAREA"] = names.map(esum).fillna(0.0).round(4).to_numpy()
    out["X_COLOR"] = names.map(worst).fillna(codes.GREEN).to_numpy()
    return out


def summarise_zones(zones: gpd.GeoDataFrame, patches: gpd.GeoDataFrame) -> gpd.GeoDataFrame:
    """Per-zone counts and areas (hm²) by BYD and by colour."""
    out = zones.copy()
    codes_ = out["ZONE_CODE"].astype(str)
    for field, values in (("BYD", codes.BYD_DESK), ("X_COLOR", codes.COLOURS)):
        for value in values:
            sel = patches[(patches[field] == value) & (patches["QTYPE"] != codes.NOT_PROJECT)] if len(patches) else patches
            grouped = sel.groupby("X_ZONE")["QAREA"] if len(sel) else None
            out[f"N_{value}"] = codes_.map(grouped.size() if grouped is not None else {}).fillna(0).astype(int).to_numpy()
            out[f"A_{value}"] = codes_.map(grouped.sum() if grouped is not None else {}).fillna(0.0).round(4).to_numpy()
    n_all = patches.groupby("X_ZONE").size() if len(patches) else {}
    out["N_PATCH"] = codes_.map(n_all).fillna(0).astype(int).to_numpy()
    return out
