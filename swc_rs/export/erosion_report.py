"""The erosion section of `swc-rs report`: 水土保持率 against the targets, per county and zone.

Shown from a :class:`~swc_rs.erosion.trend.Trend` (one erosion-trend output, or the
erosion outputs of one or more years): the headline numbers of the latest year; a bar
chart of the rate per county (and per zone) with the target lines (73.46 % for 2025,
75.25 % for 2035 by default); a line chart of the rate over the years with each
region's trend carried on (dashed) to the year it would meet the last target; a map of
the counties coloured by the rate against the targets; the latest year's table and
the trend table (slope, the year each target is reached at that slope, on track or
not). Everything is inline SVG and HTML: nothing is fetched.
"""

from __future__ import annotations

import html
import math

import numpy as np
import pandas as pd

from swc_rs.erosion.trend import Trend

#: Colours of a rate against the targets: every target met, some met, none, no rate.
STATUS_HEX = {"all": "#1a9641", "some": "#a6d96a", "none": "#d7191c", "nodata": "#bdbdbd"}
#: Line colours of the regions in the trend chart (cycled).
LINE_HEX = ("#1f78b4", "#e66101", "#33a02c", "#6a3d9a", "#b15928", "#e7298a", "#525252", "#01665e", "#a6761d",
            "#8c510a")

CSS = """
svg.chart{width:100%;height:auto;border:1px solid var(--line);border-radius:4px;background:#fff}
svg.chart .axis{stroke:#888;stroke-width:1}
svg.chart .grid{stroke:#e3e8ee;stroke-width:1}
svg.chart text{font-size:11px;fill:#333}
svg.chart .target{stroke-width:1.6;stroke-dasharray:6 4}
svg.chart .t0{stroke:#e08a00} svg.chart .t1{stroke:#12344d}
svg.chart text.tl0{fill:#e08a00;font-weight:bold} svg.chart text.tl1{fill:#12344d;font-weight:bold}
svg.chart .proj{stroke-dasharray:4 4;fill:none;stroke-width:1.5}
svg.chart .obs{fill:none;stroke-width:2}
svg .county{stroke:#fff;stroke-width:1.2;fill-rule:evenodd}
svg .clabel{font-size:14px;fill:#111;stroke:#fff;stroke-width:3px;paint-order:stroke;text-anchor:middle}
.grid2{display:grid;grid-template-columns:1fr 1fr;gap:16px;margin-bottom:12px}
svg.emap{max-height:460px}
.wide{overflow-x:auto;margin-bottom:12px}
.wide td.tr{min-width:230px}
.st-已达到{color:var(--green);font-weight:bold} .st-可达到{color:#5a8f00} .st-达不到{color:var(--red);font-weight:bold}
"""


def _e(value) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)) or value is pd.NA:
        return ""
    return html.escape(str(value), quote=True)


def _num(value) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return float("nan")
    return number


def _f(value, spec: str = ".2f") -> str:
    number = _num(value)
    return "—" if math.isnan(number) else format(number, spec)


def status(rate, targets: dict[str, float]) -> str:
    """all / some / none / nodata: which of the targets a rate meets."""
    rate = _num(rate)
    if math.isnan(rate):
        return "nodata"
    met = sum(rate >= v for v in targets.values())
    return "all" if met == len(targets) else ("some" if met else "none")


def _status_words(targets: dict[str, float]) -> dict[str, str]:
    labels = sorted(targets)
    return {"all": f"达到{labels[-1]}年目标（≥ {targets[labels[-1]]:g} %）",
            "some": f"达到{labels[0]}年目标，未达{labels[-1]}年目标",
            "none": f"未达{labels[0]}年目标（< {targets[labels[0]]:g} %）", "nodata": "无观测"}


def _names(frame: pd.DataFrame, kind: str) -> pd.Series:
    if kind == "counties":
        return frame["XZQMC"].astype(str)
    return frame["ZONE_CODE"].astype(str) + (" " + frame["ZONE_NAME"].fillna("").astype(str)
                                             if "ZONE_NAME" in frame else "")


def _key(frame: pd.DataFrame, kind: str) -> str:
    return ("XZQDM" if "XZQDM" in frame.columns else "XZQMC") if kind == "counties" else "ZONE_CODE"


# -- charts ----------------------------------------------------------------------------------------------
def bar_chart(names: list[str], rates: list[float], targets: dict[str, float], *, label: str, width: int = 560) -> str:
    """Horizontal bars of the rate (0–100 %) per region, with a line per target."""
    left, right, top, row = 120, 56, 26, 26
    height = top + row * len(names) + 30
    plot = width - left - right

    def x(v: float) -> float:
        return left + plot * max(0.0, min(100.0, v)) / 100.0

    out = [f'<svg class="chart" viewBox="0 0 {width} {height}" role="img" aria-label="{_e(label)}">']
    for tick in range(0, 101, 20):
        out.append(f'<line class="grid" x1="{x(tick):.1f}" y1="{top - 6}" x2="{x(tick):.1f}" y2="{height - 24}"/>'
                   f'<text x="{x(tick):.1f}" y="{height - 10}" text-anchor="middle">{tick} %</text>')
    for i, (name, rate) in enumerate(zip(names, rates, strict=True)):
        y = top + i * row
        colour = STATUS_HEX[status(rate, targets)]
        out.append(f'<text x="{left - 6}" y="{y + row / 2 + 4:.1f}" text-anchor="end">{_e(name)}</text>')
        if math.isnan(_num(rate)):
            out.append(f'<text x="{left + 4}" y="{y + row / 2 + 4:.1f}" class="muted">无观测</text>')
            continue
        out.append(f'<rect x="{left}" y="{y + 4}" width="{x(rate) - left:.1f}" height="{row - 8}" fill="{colour}">'
                   f"<title>{_e(name)} {rate:.2f} %</title></rect>"
                   f'<text x="{x(rate) + 4:.1f}" y="{y + row / 2 + 4:.1f}">{rate:.2f}</text>')
    for k, (year, value) in enumerate(sorted(targets.items())):
        cls = f"t{min(k, 1)}"
        out.append(f'<line class="target {cls}" x1="{x(value):.1f}" y1="{top - 8}" x2="{x(value):.1f}" y2="{height - 24}"/>'
                   f'<text class="tl{min(k, 1)}" x="{x(value):.1f}" y="{12 + 10 * (k % 2)}" '
                   f'text-anchor="{"end" if k == 0 else "start"}">{_e(year)}年目标 {value:g} %</text>')
    out.append(f'<line class="axis" x1="{left}" y1="{top - 6}" x2="{left}" y2="{height - 24}"/></svg>')
    return "".join(out)


def trend_chart(trend: Trend, kind: str, *, width: int = 900, height: int = 340) -> str:
    """The rate over the years per region, its trend carried on (dashed) and the targets."""
    table = trend.counties_by_year if kind == "counties" else trend.zones_by_year
    summary = trend.counties if kind == "counties" else trend.zones
    key = _key(summary, kind)
    labels = sorted(trend.targets)
    final_year = int(labels[-1])
    years = [int(y) for y in trend.years]
    x_lo, x_hi = min(years + [int(labels[0])]), max(years + [final_year])
    rates = pd.to_numeric(table["SWC_RATE"], errors="coerce").dropna().tolist()
    values = rates + list(trend.targets.values())
    y_lo = max(0.0, math.floor((min(values) - 3) / 5) * 5)
    y_hi = min(100.0, math.ceil((max(values) + 3) / 5) * 5)
    left, right, top, bottom = 48, 150, 16, 30
    pw, ph = width - left - right, height - top - bottom

    def x(t: float) -> float:
        return left + pw * (t - x_lo) / max(x_hi - x_lo, 1)

    def y(v: float) -> float:
        v = max(y_lo, min(y_hi, v))
        return top + ph * (1 - (v - y_lo) / max(y_hi - y_lo, 1e-9))

    out = [f'<svg class="chart" viewBox="0 0 {width} {height}" role="img" aria-label="水土保持率变化趋势">']
    step = 5 if y_hi - y_lo > 20 else (2 if y_hi - y_lo > 8 else 1)
    for v in np.arange(math.ceil(y_lo / step) * step, y_hi + 1e-9, step):
        out.append(f'<line class="grid" x1="{left}" y1="{y(v):.1f}" x2="{left + pw}" y2="{y(v):.1f}"/>'
                   f'<text x="{left - 6}" y="{y(v) + 4:.1f}" text-anchor="end">{v:g}</text>')
    span = x_hi - x_lo
    tick = 1 if span <= 12 else (2 if span <= 24 else 5)
    for t in range(x_lo, x_hi + 1):
        if (t - x_lo) % tick == 0 or t in years or str(t) in trend.targets:
            out.append(f'<text x="{x(t):.1f}" y="{height - 10}" text-anchor="middle">{t}</text>')
    for k, label in enumerate(labels):
        value = trend.targets[label]
        out.append(f'<line class="target t{min(k, 1)}" x1="{left}" y1="{y(value):.1f}" x2="{left + pw}" y2="{y(value):.1f}"/>'
                   f'<line class="target t{min(k, 1)}" x1="{x(int(label)):.1f}" y1="{top}" x2="{x(int(label)):.1f}" '
                   f'y2="{top + ph}" opacity=".35"/>'
                   f'<text class="tl{min(k, 1)}" x="{left + 4}" y="{y(value) + (-4 if k else 12):.1f}">'
                   f"{_e(label)}年目标 {value:g} %</text>")
    legend_y = top + 6
    for i, (_, row) in enumerate(summary.iterrows()):
        colour = LINE_HEX[i % len(LINE_HEX)]
        series = table[table[key].astype(str) == str(row[key])].copy()
        series["SWC_RATE"] = pd.to_numeric(series["SWC_RATE"], errors="coerce")
        series = series.dropna(subset=["SWC_RATE"]).sort_values("YEAR")
        name = _names(pd.DataFrame([row]), kind).iloc[0]
        if series.empty:
            continue
        pts = " ".join(f"{x(int(t)):.1f},{y(v):.1f}" for t, v in zip(series["YEAR"], series["SWC_RATE"], strict=True))
        out.append(f'<polyline class="obs" stroke="{colour}" points="{pts}"/>')
        for t, v in zip(series["YEAR"], series["SWC_RATE"], strict=True):
            out.append(f'<circle cx="{x(int(t)):.1f}" cy="{y(v):.1f}" r="3.5" fill="{colour}"><title>{_e(name)} {int(t)}: '
                       f"{v:.2f} %</title></circle>")
        slope = _num(row.get("SLOPE_PP_YR"))
        last_t, last_v = int(series["YEAR"].iloc[-1]), float(series["SWC_RATE"].iloc[-1])
        if math.isfinite(slope) and last_t < x_hi:
            end_t = x_hi
            reach = _num(row.get(f"REACH_{labels[-1]}"))
            if math.isfinite(reach) and last_t < reach < x_hi:
                end_t = int(reach)
            out.append(f'<line class="proj" stroke="{colour}" x1="{x(last_t):.1f}" y1="{y(last_v):.1f}" '
                       f'x2="{x(end_t):.1f}" y2="{y(last_v + slope * (end_t - last_t)):.1f}"/>')
        out.append(f'<rect x="{left + pw + 12}" y="{legend_y - 8}" width="14" height="4" fill="{colour}"/>'
                   f'<text x="{left + pw + 30}" y="{legend_y - 3}">{_e(name)}</text>')
        legend_y += 16
    out.append(f'<text x="{left + pw + 12}" y="{legend_y + 8}" class="muted">虚线：按线性趋势外推</text>')
    out.append(f'<line class="axis" x1="{left}" y1="{top + ph}" x2="{left + pw}" y2="{top + ph}"/>'
               f'<line class="axis" x1="{left}" y1="{top}" x2="{left}" y2="{top + ph}"/></svg>')
    return "".join(out)


def rate_map(summary, targets: dict[str, float], kind: str, *, width: int = 560) -> str:
    """The regions (latest outline) coloured by the latest rate against the targets."""
    from swc_rs.export.report import _Frame

    frame = summary[summary.geometry.notna() & ~summary.geometry.is_empty]
    if frame.empty or frame.crs is None:
        return '<p class="muted">没有可绘制的区域。</p>'
    metric = frame.to_crs(frame.estimate_utm_crs()) if frame.crs.is_geographic else frame
    view = _Frame(metric.total_bounds, width, pad=0.05)
    tol = view.metres / 1500
    out = [f'<svg class="map emap" viewBox="0 0 {view.width:.0f} {view.height:.0f}" role="img" aria-label="水土保持率分布图">',
           f'<rect width="{view.width:.0f}" height="{view.height:.0f}" class="sea"/>']
    names = _names(metric, kind)
    labels = []
    for name, (_, row) in zip(names, metric.iterrows(), strict=True):
        rate = row.get("RATE_LAST")
        colour = STATUS_HEX[status(rate, targets)]
        geom = row.geometry.simplify(tol)
        out.append(f'<path class="county" fill="{colour}" d="{view.path(geom)}"><title>{_e(name)} {_f(rate)} %'
                   f"（{_e(row.get('YEAR_LAST'))}年）</title></path>")
        px, py = view.point(row.geometry)
        labels.append(f'<text class="clabel" x="{px:.1f}" y="{py:.1f}">{_e(name)} {_f(rate)} %</text>')
    out += labels
    out.append(view.scale_bar())
    out.append("</svg>")
    return "".join(out)


# -- tables ------------------------------------------------------------------------------------------------
class Wide(str):
    """A text cell shown with room (the trend in words)."""


def _html_table(columns: list[tuple[str, bool]], rows: list[list], *, sortable: bool = True) -> str:
    """columns: (header, numeric); a cell is text or (html, sort value)."""
    head = "".join(f'<th class="num">{_e(h)}</th>' if num else f"<th>{_e(h)}</th>" for h, num in columns)
    body = []
    for row in rows:
        cells = []
        for (_, num), cell in zip(columns, row, strict=True):
            shown, raw = cell if isinstance(cell, tuple) else (_e(cell), None)
            attr = f' data-v="{_e(raw)}"' if raw is not None else ""
            wide = ' class="tr"' if isinstance(cell, Wide) else ""
            cells.append(f'<td class="num"{attr}>{shown}</td>' if num else f"<td{wide}{attr}>{shown}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    cls = ' class="sortable"' if sortable else ""
    return f'<div class="wide"><table{cls}><thead><tr>{head}</tr></thead><tbody>{"".join(body)}</tbody></table></div>'


def _n(value, spec: str = ".2f") -> tuple[str, object]:
    number = _num(value)
    return (_f(number, spec), "" if math.isnan(number) else number)


def latest_table(trend: Trend, kind: str) -> str:
    """The latest year's rate, areas and gaps per region."""
    table = trend.counties_by_year if kind == "counties" else trend.zones_by_year
    summary = trend.counties if kind == "counties" else trend.zones
    key = _key(summary, kind)
    labels = sorted(trend.targets)
    words = _status_words(trend.targets)
    rows = []
    for name, (_, s) in zip(_names(summary, kind), summary.iterrows(), strict=True):
        r = table[(table[key].astype(str) == str(s[key])) & (table["YEAR"].astype(int) == int(s["YEAR_LAST"]))]
        if r.empty:
            continue
        r = r.iloc[0]
        st = status(r["SWC_RATE"], trend.targets)
        rows.append([name, _n(r["YEAR"], ".0f"), _n(r.get("LAND_HM2"), ".1f"), _n(r.get("COVER_PCT"), ".1f"),
                     _n(r.get("UNSEEN_PCT"), ".1f"), _n(r.get("ERODE_HM2"), ".1f"), _n(r["SWC_RATE"]),
                     _n(r.get("MEAN_A"), ".0f"), *[_n(r[f"GAP_{y}"], "+.2f") for y in labels],
                     (f'<span class="dot" style="background:{STATUS_HEX[st]}"></span>{_e(words[st])}', st),
                     r.get("X_PARTIAL") or ""])
    return _html_table([("区县" if kind == "counties" else "分区", False), ("年份", True), ("土地面积 hm²", True),
                        ("覆盖 %", True), ("未观测 %", True), ("水土流失面积 hm²", True), ("水土保持率 %", True),
                        ("平均侵蚀模数 t/(km²·a)", True), *[(f"距{y}年目标 百分点", True) for y in labels],
                        ("目标", False), ("部分覆盖", False)], rows)


def trend_table(trend: Trend, kind: str) -> str:
    """Rate by year, change, slope, and when each target is reached at the slope."""
    table = trend.counties_by_year if kind == "counties" else trend.zones_by_year
    summary = trend.counties if kind == "counties" else trend.zones
    key = _key(summary, kind)
    labels = sorted(trend.targets)
    years = [int(y) for y in trend.years]
    rows = []
    for name, (_, s) in zip(_names(summary, kind), summary.iterrows(), strict=True):
        mine = table[table[key].astype(str) == str(s[key])]
        by = dict(zip(mine["YEAR"].astype(int), pd.to_numeric(mine["SWC_RATE"], errors="coerce"), strict=True))
        change = dict(zip(mine["YEAR"].astype(int), pd.to_numeric(mine["CHANGE_PP"], errors="coerce"), strict=True))
        cells = []
        for y in years:
            rate, delta = _num(by.get(y)), _num(change.get(y))
            shown = _f(rate) + (f' <span class="muted">({delta:+.2f})</span>' if math.isfinite(delta) else "")
            cells.append((shown, "" if math.isnan(rate) else rate))
        targets = []
        for y in labels:
            state = _e(s.get(f"ON_TRACK_{y}"))
            targets += [_n(s.get(f"REACH_{y}"), ".0f"), (f'<span class="st-{state}">{state}</span>', state)]
        rows.append([name, *cells, _n(s.get("SLOPE_PP_YR"), "+.2f"), *targets, Wide(s.get("X_TREND") or ""),
                     s.get("X_PARTIAL_YEARS") or ""])
    columns = [("区县" if kind == "counties" else "分区", False), *[(f"{y} %（较上期）", True) for y in years],
               ("趋势 百分点/年", True)]
    for y in labels:
        columns += [(f"{y}目标 达标年", True), (f"{y}目标", False)]
    columns += [("趋势判断", False), ("部分覆盖年份", False)]
    return _html_table(columns, rows)


def erosion_section(trend: Trend) -> str:
    """The report's erosion section (HTML)."""
    labels = sorted(trend.targets)
    last = trend.years[-1]
    counties, zones = trend.counties, trend.zones
    county_rates = [(_names(counties, "counties").iloc[i], _num(r["RATE_LAST"])) for i, (_, r) in enumerate(counties.iterrows())]
    zone_rates = [(_names(zones, "zones").iloc[i], _num(r["RATE_LAST"])) for i, (_, r) in enumerate(zones.iterrows())]
    overall = None
    for item in trend.run_info.get("inputs") or []:
        if isinstance(item, dict) and int(item.get("year", 0)) == int(last):
            overall = item.get("swc_rate_all")
    n = len(county_rates)
    met = {y: sum(_num(r) >= trend.targets[y] for _, r in county_rates) for y in labels}
    kpis = [(f"{_f(overall)} %" if overall is not None else "—", f"{last}年全部区县水土保持率")] + \
        [(f"{met[y]} / {n}", f"达到{y}年目标（{trend.targets[y]:g} %）的区县") for y in labels]
    if len(trend.years) > 1:
        on = sum(str(s) in ("已达到", "可达到") for s in counties[f"ON_TRACK_{labels[-1]}"])
        kpis.append((f"{on} / {n}", f"按趋势{labels[-1]}年前可达标的区县"))
    words = _status_words(trend.targets)
    legend = "".join(f'<span><span class="dot" style="background:{STATUS_HEX[k]}"></span>{_e(v)}</span>' for k, v in words.items())
    years_text = "、".join(str(y) for y in trend.years)
    parts = [
        '<section id="erosion"><h2>水土保持率（土壤侵蚀动态监测）</h2>',
        f'<p class="muted">监测年份 {years_text}；水土保持率 = 轻度及以上侵蚀以外的土地占有效观测土地的比例'
        f'（CSLE 模型，SL 190-2007 分级）。目标：' + "，".join(f"{y}年 {trend.targets[y]:g} %" for y in labels) + "。</p>",
        '<div class="kpis">' + "".join(f'<div class="kpi"><b>{_e(v)}</b><span>{_e(k)}</span></div>' for v, k in kpis) + "</div>",
        f'<div class="grid2"><div><h3>{last}年各区县水土保持率</h3>'
        + bar_chart([a for a, _ in county_rates], [b for _, b in county_rates], trend.targets, label="各区县水土保持率")
        + f'</div><div><h3>{last}年区县水土保持率分布图</h3>' + rate_map(counties, trend.targets, "counties")
        + f'<div class="legend">{legend}</div></div></div>',
    ]
    if len(trend.years) > 1:
        parts.append("<h3>各区县水土保持率变化趋势</h3>" + trend_chart(trend, "counties"))
    parts.append(f"<h3>{last}年各区县</h3>" + latest_table(trend, "counties"))
    parts.append("<h3>各区县趋势</h3>" + trend_table(trend, "counties")
                 + '<p class="muted">趋势为各年水土保持率对年份的最小二乘斜率；达标年份 = 最近一年的水土保持率按该斜率'
                   "增长首次达到目标的监测年份（向上取整）；斜率 ≤ 0 即“达不到”。</p>")
    parts.append(f'<div class="grid2"><div><h3>{last}年各分区水土保持率</h3>'
                 + bar_chart([a for a, _ in zone_rates], [b for _, b in zone_rates], trend.targets, label="各分区水土保持率")
                 + "</div><div>" + (f"<h3>各分区水土保持率变化趋势</h3>{trend_chart(trend, 'zones')}"
                                    if len(trend.years) > 1 else "") + "</div></div>")
    parts.append(f"<h3>{last}年各分区</h3>" + latest_table(trend, "zones"))
    parts.append("<h3>各分区趋势</h3>" + trend_table(trend, "zones"))
    for note in trend.run_info.get("warnings") or []:
        parts.append(f'<p class="muted">注意：{_e(note)}</p>')
    parts.append("</section>")
    return "".join(parts)
