"""The 水土保持率 over several monitoring years: change, linear trend, and when the
targets would be reached at that trend.

Input: the OUT.gpkg of one ``swc-rs erosion --year YYYY`` run per year (each carries
its year in ``run_info`` and in a YEAR column). Output (:func:`compute_trend`): per
county and per zone

- a table by year: the year's rate (SWC_RATE), CHANGE_PP against the previous year
  given (PREV_YEAR), the gap to every target (GAP_2025, GAP_2035: target − rate, in
  percentage points, > 0 = still short), coverage (COVER_PCT, UNSEEN_PCT, X_PARTIAL);
- a summary: SLOPE_PP_YR, the ordinary least-squares slope of the rate on the year
  over every year with a rate (percentage points per year); REACH_<target year>, the
  first monitoring year whose rate would meet the target if the rate went on from the
  latest year's value at that slope (latest year + (target − latest rate) / slope,
  rounded up); ON_TRACK_<target year>: 已达到 (the latest rate meets it), 可达到 (REACH
  ≤ the target year), 达不到 (slope ≤ 0, or REACH after the target year), 无趋势 (one
  year with a rate only); X_TRACK is ON_TRACK of the last target (the QGIS style's
  colours) and X_TREND says it in words.

The targets are the ``[erosion] targets`` of the configuration (73.46 % for 2025 and
75.25 % for 2035 by default) and are applied to every year alike, whatever targets the
years' runs were given.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import math
from dataclasses import dataclass, field
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pyogrio

from swc_rs import __version__
from swc_rs.errors import InputFileError
from swc_rs.raster import file_checksum

log = logging.getLogger(__name__)

#: Layers of an erosion output and of a trend output.
YEAR_LAYERS = {"counties": "erosion_counties", "zones": "erosion_zones"}
TREND_LAYERS = {"counties": "trend_counties", "zones": "trend_zones",
                "counties_by_year": "trend_counties_by_year", "zones_by_year": "trend_zones_by_year"}
#: Fields naming a region in the tables (key first, then a label).
REGION_FIELDS = {"counties": ("XZQDM", "XZQMC"), "zones": ("ZONE_CODE", "ZONE_NAME")}
#: Fields of a year's table carried into the trend's by-year table.
CARRIED = ("LAND_HM2", "COVER_PCT", "UNSEEN_PCT", "ERODE_HM2", "SWC_RATE", "MEAN_A", "X_PARTIAL")

ON_TRACK = ("已达到", "可达到", "达不到", "无趋势")
_FIX_YEAR_OUTPUT = "give the OUT.gpkg written by swc-rs erosion --year YYYY (one per monitoring year)"


# -- the maths -------------------------------------------------------------------------------------
def linear_trend(years, rates) -> float:
    """Least-squares slope of ``rates`` (%) on ``years`` (pp/year); NaN with < 2 rates."""
    t = np.asarray(years, float)
    y = np.asarray(pd.to_numeric(pd.Series(list(rates), dtype=object), errors="coerce"), float)
    ok = np.isfinite(t) & np.isfinite(y)
    t, y = t[ok], y[ok]
    if len(t) < 2 or np.ptp(t) == 0:
        return float("nan")
    tc = t - t.mean()
    return float((tc * (y - y.mean())).sum() / (tc * tc).sum())


def target_status(last_year: int, last_rate, slope: float, target: float, target_year: int) -> tuple[str, int | None]:
    """(ON_TRACK value, REACH year) of one target from the latest year's rate and the slope.

    已达到 with the latest year when the latest rate meets the target; otherwise the first
    monitoring year at or above the target going on at ``slope`` from ``last_rate``
    (latest year + (target − rate) / slope, rounded up) and 可达到 when that is no later
    than ``target_year``, else 达不到; 达不到 with no year when the slope is ≤ 0; 无趋势
    without a slope (one year) or a rate.
    """
    if last_rate is None or not math.isfinite(last_rate):
        return "无趋势", None
    if last_rate >= target:
        return "已达到", int(last_year)
    if not math.isfinite(slope):
        return "无趋势", None
    if slope <= 0:
        return "达不到", None
    # The tolerance keeps a crossing that falls on a whole year on that year.
    reach = int(math.ceil(last_year + (target - last_rate) / slope - 1e-9))
    return ("可达到" if reach <= target_year else "达不到"), reach


def _target_years(targets: dict) -> list[tuple[str, int, float]]:
    out = []
    for key, value in sorted(targets.items()):
        try:
            year = int(str(key))
        except ValueError as err:
            from swc_rs.errors import ConfigError

            raise ConfigError(f"[erosion] targets key {key!r} is not a year", fix="use e.g. targets = { 2025 = 73.46, 2035 = 75.25 }") from err
        out.append((str(key), year, float(value)))
    return out


# -- reading the years ----------------------------------------------------------------------------------
@dataclass
class YearOutput:
    """One monitoring year: an erosion output's tables and run_info."""

    path: Path
    year: int
    counties: gpd.GeoDataFrame
    zones: gpd.GeoDataFrame
    run_info: dict


def _layers(path: Path, fix: str) -> set[str]:
    if not path.is_file():
        raise InputFileError("file does not exist", path=path, fix=fix)
    try:
        return {str(n) for n, _ in pyogrio.list_layers(path)}
    except Exception as err:
        raise InputFileError(f"cannot open as a GeoPackage ({err})", path=path, fix=fix) from err


def read_run_info(path: Path) -> dict:
    """run_info's single row, with its JSON fields decoded."""
    frame = pyogrio.read_dataframe(path, layer="run_info", read_geometry=False)
    info = frame.iloc[0].to_dict() if len(frame) else {}
    for key, value in list(info.items()):
        if isinstance(value, str) and value[:1] in "[{":
            try:
                info[key] = json.loads(value)
            except ValueError:
                pass
    return info


def read_year(path: str | Path) -> YearOutput:
    """Read one ``swc-rs erosion`` output and its monitoring year.

    Raises
    ------
    InputFileError
        Not a GeoPackage, not an erosion output, or no year (run without --year).
    """
    path = Path(path)
    layers = _layers(path, _FIX_YEAR_OUTPUT)
    missing = [name for name in (*YEAR_LAYERS.values(), "run_info") if name not in layers]
    if missing:
        raise InputFileError(f"is not a swc-rs erosion output (no {', '.join(missing)} layer)", path=path,
                             fix=_FIX_YEAR_OUTPUT)
    info = read_run_info(path)
    if info.get("command") not in (None, "erosion"):
        raise InputFileError(f"is a swc-rs {info.get('command')} output, not an erosion output", path=path,
                             fix=_FIX_YEAR_OUTPUT)
    frames = {kind: gpd.read_file(path, layer=layer, engine="pyogrio") for kind, layer in YEAR_LAYERS.items()}
    for kind, frame in frames.items():
        need = [REGION_FIELDS[kind][1 if kind == "counties" else 0], "SWC_RATE"]
        lacking = [f for f in need if f not in frame.columns]
        if lacking:
            raise InputFileError(f"layer {YEAR_LAYERS[kind]} has no {', '.join(lacking)} field", path=path,
                                 fix=_FIX_YEAR_OUTPUT)
    year = str(info.get("year") if info.get("year") is not None else "").strip()
    if year.endswith(".0"):
        year = year[:-2]
    if not year and "YEAR" in frames["counties"].columns and frames["counties"]["YEAR"].notna().any():
        year = str(int(frames["counties"]["YEAR"].dropna().iloc[0]))
    if not (year.isdigit() and 1900 <= int(year) <= 2200):
        raise InputFileError("the erosion output records no monitoring year (run without --year)", path=path,
                             fix="run swc-rs erosion again with --year YYYY, the year of its imagery and land use")
    return YearOutput(path, int(year), frames["counties"], frames["zones"], info)


def read_years(paths) -> list[YearOutput]:
    """Read every year's output; sorted by year.

    Raises
    ------
    InputFileError
        A file that is not an erosion output, the same file twice, or two outputs of one year.
    """
    outputs: list[YearOutput] = []
    seen_files: dict[Path, Path] = {}
    for p in paths:
        p = Path(p)
        real = p.resolve()
        if real in seen_files:
            raise InputFileError(f"is given twice (also as {seen_files[real]})", path=p,
                                 fix="give each year's erosion output once")
        seen_files[real] = p
        outputs.append(read_year(p))
    by_year: dict[int, YearOutput] = {}
    for out in outputs:
        if out.year in by_year:
            raise InputFileError(f"is of the year {out.year}, like {by_year[out.year].path}", path=out.path,
                                 fix=f"give one erosion output per year: drop one of the {out.year} outputs, or "
                                     "rerun the mislabelled one with the right --year")
        by_year[out.year] = out
    return [by_year[y] for y in sorted(by_year)]


# -- the trend ----------------------------------------------------------------------------------------------
@dataclass
class Trend:
    """Per-county and per-zone summaries (with the latest geometry) and by-year tables."""

    years: list[int]
    targets: dict[str, float]
    counties: gpd.GeoDataFrame
    zones: gpd.GeoDataFrame
    counties_by_year: pd.DataFrame
    zones_by_year: pd.DataFrame
    run_info: dict = field(default_factory=dict)


def _key_fields(kind: str, outputs: list[YearOutput]) -> tuple[str, list[str]]:
    """The field identifying a region in every year, and the label fields carried."""
    key, label = REGION_FIELDS[kind]
    frames = [getattr(o, kind) for o in outputs]
    if kind == "counties":
        if all("XZQDM" in f.columns and f["XZQDM"].notna().all() for f in frames):
            return "XZQDM", ["XZQDM", "XZQMC"]
        return "XZQMC", ["XZQMC"]
    return "ZONE_CODE", ["ZONE_CODE"] + (["ZONE_NAME"] if all("ZONE_NAME" in f.columns for f in frames) else [])


def _by_year(kind: str, outputs: list[YearOutput], targets) -> tuple[pd.DataFrame, str, list[str]]:
    key, labels = _key_fields(kind, outputs)
    rows = []
    for out in outputs:
        frame = getattr(out, kind)
        dup = frame[key].astype(str)[frame[key].astype(str).duplicated()]
        if len(dup):
            raise InputFileError(f"layer {YEAR_LAYERS[kind]} holds {key} {dup.iloc[0]} twice", path=out.path,
                                 fix=f"give each {kind[:-1]} once in the {kind} layer of the erosion run")
        for _, r in frame.iterrows():
            row = {name: (str(r[name]) if pd.notna(r[name]) else "") for name in labels}
            row["YEAR"] = out.year
            for name in CARRIED:
                row[name] = r[name] if name in frame.columns else None
            rows.append(row)
    table = pd.DataFrame(rows)
    table["SWC_RATE"] = pd.to_numeric(table["SWC_RATE"], errors="coerce")
    table = table.sort_values([key, "YEAR"], kind="stable").reset_index(drop=True)
    prev_year, change = [], []
    for _, group in table.groupby(key, sort=False):
        last_year, last_rate = None, float("nan")
        for _, r in group.iterrows():
            prev_year.append(last_year)
            change.append(round(r["SWC_RATE"] - last_rate, 2) if math.isfinite(last_rate) and pd.notna(r["SWC_RATE"])
                          else None)
            last_year, last_rate = r["YEAR"], (r["SWC_RATE"] if pd.notna(r["SWC_RATE"]) else float("nan"))
    table["PREV_YEAR"] = pd.array(prev_year, dtype="Int64")
    table["CHANGE_PP"] = pd.to_numeric(pd.Series(change, dtype=object), errors="coerce")
    for label, _, value in targets:
        table[f"GAP_{label}"] = (value - table["SWC_RATE"]).round(2)
    order = labels + ["YEAR", "SWC_RATE", "PREV_YEAR", "CHANGE_PP"] + [f"GAP_{label}" for label, _, _ in targets] + \
        [c for c in CARRIED if c != "SWC_RATE"]
    return table[order], key, labels


def _summary(kind: str, outputs: list[YearOutput], table: pd.DataFrame, key: str, labels: list[str],
             targets) -> gpd.GeoDataFrame:
    final_label, final_year, _ = targets[-1]
    geometry: dict[str, object] = {}
    crs = None
    for out in outputs:  # the latest year's outline of each region
        frame = getattr(out, kind)
        crs = frame.crs or crs
        geometry.update(zip(frame[key].astype(str), frame.geometry, strict=True))
    rows = []
    for region, group in table.groupby(key, sort=True):
        rated = group[group["SWC_RATE"].notna()]
        last = group.iloc[-1]
        row = {name: last[name] for name in labels}
        slope = linear_trend(rated["YEAR"], rated["SWC_RATE"])
        last_year = int(rated["YEAR"].iloc[-1]) if len(rated) else int(last["YEAR"])
        last_rate = float(rated["SWC_RATE"].iloc[-1]) if len(rated) else float("nan")
        first_rate = float(rated["SWC_RATE"].iloc[0]) if len(rated) else float("nan")
        row.update({
            "N_YEARS": int(len(rated)), "YEAR_FIRST": int(group["YEAR"].iloc[0]), "YEAR_LAST": last_year,
            "RATE_FIRST": round(first_rate, 2) if math.isfinite(first_rate) else None,
            "RATE_LAST": round(last_rate, 2) if math.isfinite(last_rate) else None,
            "CHANGE_PP": round(last_rate - first_rate, 2) if len(rated) >= 2 else None,
            "SLOPE_PP_YR": round(slope, 3) if math.isfinite(slope) else None,
        })
        status = {}
        for label, year, value in targets:
            state, reach = target_status(last_year, last_rate, slope, value, year)
            row[f"GAP_{label}"] = round(value - last_rate, 2) if math.isfinite(last_rate) else None
            row[f"REACH_{label}"] = reach
            row[f"ON_TRACK_{label}"] = state
            status[label] = (state, reach)
        state, reach = status[final_label]
        row["X_TRACK"] = state
        row["X_TREND"] = _trend_text(state, reach, slope, last_rate, final_label)
        partial = group.loc[group["X_PARTIAL"].astype(str) == "是", "YEAR"]
        row["X_PARTIAL_YEARS"] = ",".join(str(int(y)) for y in partial)
        row["geometry"] = geometry.get(str(region))
        rows.append(row)
    frame = gpd.GeoDataFrame(rows, geometry="geometry", crs=crs)
    for label, _, _ in targets:
        frame[f"REACH_{label}"] = pd.array(frame[f"REACH_{label}"], dtype="Int64")
    return frame


def _trend_text(state: str, reach: int | None, slope: float, rate: float, label: str) -> str:
    if state == "已达到":
        return f"已达{label}年目标"
    if state == "无趋势":
        return "仅一年有观测，无趋势" if math.isfinite(rate) else "无观测"
    if reach is None:
        return f"未改善（{slope:+.2f} 个百分点/年），按趋势达不到{label}年目标"
    if state == "可达到":
        return f"按趋势（{slope:+.2f} 个百分点/年）{reach}年达到{label}年目标"
    return f"按趋势（{slope:+.2f} 个百分点/年）{reach}年才达到，{label}年前达不到"


def _comparability(outputs: list[YearOutput]) -> list[str]:
    """Warnings when the years were graded with different numbers (rates not comparable)."""
    notes = []
    for name in ("tolerable_t_km2", "grade_breaks_t_km2"):
        values = {}
        for out in outputs:
            params = out.run_info.get("parameters")
            value = params.get(name) if isinstance(params, dict) else out.run_info.get(name)
            if value is not None:
                values[out.year] = json.dumps(value)
        if len(set(values.values())) > 1:
            notes.append(f"the years use different {name} ({', '.join(f'{y}: {v}' for y, v in values.items())}): "
                         "their rates are not comparable")
    return notes


def compute_trend(outputs: list[YearOutput], targets: dict[str, float]) -> Trend:
    """The trend of the years' rates per county and zone (see the module docstring)."""
    if not outputs:
        raise InputFileError("no erosion output given", fix=_FIX_YEAR_OUTPUT)
    target_list = _target_years(targets)
    tables, summaries = {}, {}
    for kind in ("counties", "zones"):
        table, key, labels = _by_year(kind, outputs, target_list)
        tables[kind] = table
        summaries[kind] = _summary(kind, outputs, table, key, labels, target_list)
    notes = _comparability(outputs)
    for note in notes:
        log.warning("%s", note)
    latest = outputs[-1].run_info
    run_info = {
        "command": "erosion-trend",
        "version": __version__,
        "run_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "years": [o.year for o in outputs],
        "inputs": [{"year": o.year, "path": str(o.path), "sha256": file_checksum(o.path),
                    "swc_rate_all": o.run_info.get("swc_rate_all")} for o in outputs],
        "targets": {label: value for label, _, value in target_list},
        "trend": "ordinary least-squares slope of SWC_RATE on YEAR (pp/year); REACH_<year> = first year at or above "
                 "the target going on from the latest rate at that slope",
        "tolerable_t_km2": latest.get("tolerable_t_km2"),
        "warnings": notes,
    }
    return Trend([o.year for o in outputs], {label: value for label, _, value in target_list}, summaries["counties"],
                 summaries["zones"], tables["counties"], tables["zones"], run_info)


# -- writing and reading a trend output --------------------------------------------------------------------
def write_trend(trend: Trend, path: str | Path, *, overwrite: bool = False) -> Path:
    """Write the trend GeoPackage atomically (trend_counties, trend_zones with geometry;
    trend_counties_by_year, trend_zones_by_year; run_info)."""
    import os
    import tempfile

    from swc_rs.export.gpkg import check_output, write_layer
    from swc_rs.export.styles import write_styles

    path = check_output(path, overwrite)
    fd, name = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=".gpkg", dir=path.parent)
    os.close(fd)
    tmp = Path(name)
    tmp.unlink()
    try:
        write_layer(trend.counties, tmp, TREND_LAYERS["counties"])
        write_layer(trend.zones, tmp, TREND_LAYERS["zones"])
        for kind in ("counties_by_year", "zones_by_year"):
            pyogrio.write_dataframe(getattr(trend, kind), tmp, layer=TREND_LAYERS[kind])
        info = {k: (json.dumps(v, ensure_ascii=False) if isinstance(v, (dict, list)) else v)
                for k, v in trend.run_info.items()}
        pyogrio.write_dataframe(pd.DataFrame([info]), tmp, layer="run_info")
        write_styles(tmp, path, images=False)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    log.info("wrote %s", path)
    return path


def is_trend_output(path: str | Path) -> bool:
    try:
        layers = {str(n) for n, _ in pyogrio.list_layers(Path(path))}
    except Exception:
        return False
    return TREND_LAYERS["counties_by_year"] in layers


def read_trend(path: str | Path) -> Trend:
    """Read a trend GeoPackage written by :func:`write_trend`."""
    path = Path(path)
    layers = _layers(path, "give the OUT.gpkg written by swc-rs erosion-trend")
    missing = [name for name in (*TREND_LAYERS.values(), "run_info") if name not in layers]
    if missing:
        raise InputFileError(f"is not a swc-rs erosion-trend output (no {', '.join(missing)} layer)", path=path,
                             fix="give the OUT.gpkg written by swc-rs erosion-trend")
    info = read_run_info(path)
    frames = {kind: gpd.read_file(path, layer=layer, engine="pyogrio") for kind, layer in TREND_LAYERS.items()
              if not kind.endswith("by_year")}
    tables = {kind: pyogrio.read_dataframe(path, layer=TREND_LAYERS[kind], read_geometry=False)
              for kind in ("counties_by_year", "zones_by_year")}
    years = [int(y) for y in info.get("years", sorted(tables["counties_by_year"]["YEAR"].unique()))]
    targets = {str(k): float(v) for k, v in (info.get("targets") or {}).items()}
    return Trend(years, targets, frames["counties"], frames["zones"], tables["counties_by_year"],
                 tables["zones_by_year"], info)


def load_erosion(paths, targets: dict[str, float]) -> Trend:
    """The report's erosion input: one erosion-trend output, or one or more erosion outputs
    (whose trend is computed here with ``targets``)."""
    paths = [Path(p) for p in paths]
    trends = [p for p in paths if is_trend_output(p)]
    if trends:
        if len(paths) > 1:
            raise InputFileError("is an erosion-trend output given with other erosion files", path=trends[0],
                                 fix="give either one erosion-trend output or the erosion outputs of the years")
        return read_trend(trends[0])
    return compute_trend(read_years(paths), targets)
