"""One self-contained HTML report of a detect output, for supervisors.

``swc-rs report OUT.gpkg -o REPORT.html`` writes a single file that needs no network
to view: CSS, the small sorting script and every map are inline (SVG), and evidence
chips are embedded as ``data:`` URIs. It holds

1. the run (dates, sensor, period, model) and the headline numbers;
2. totals by zone, by colour (三色) and by BYD (count and hm²);
3. an overview map: zones, project ranges and patches coloured by X_COLOR;
4. a ranked inspection list of the suspected violations (the field list);
5. a card per suspected patch: attributes, the outline (with the project ranges it
   meets), and the before/after chips when the GeoPackage holds a ``chips`` table;
6. the developer watch list when the output holds a ``developers`` table.

Inspection risk score (0–100), see :class:`RiskScore`::

    score = colour points (红 50, 黄 25, otherwise 0)
          + 20 × min(QAREA / 2 hm², 1)          larger patches first
          + 15 × X_CONF                         surer detections first
          + 15 if the patch meets a sensitive area (X_SENS)

Ties are broken by EAREA, then QDNM. Every weight is a field of :class:`RiskScore`.
"""

from __future__ import annotations

import base64
import datetime as dt
import html
import logging
import os
import sqlite3
import tempfile
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pyogrio
import shapely

from swc_rs import __version__, codes
from swc_rs.errors import InputFileError, OutputExistsError

log = logging.getLogger(__name__)

COLOUR_HEX = {codes.RED: "#d7191c", codes.YELLOW: "#f2b600", codes.GREEN: "#1a9641"}
NOT_PROJECT_HEX = "#9e9e9e"
ZONE_HEX = ("#e8f1e4", "#e4ecf4", "#f4efe2", "#efe4f1", "#e2f2f1", "#f1e6e2")


@dataclass(frozen=True)
class RiskScore:
    """Weights of the inspection risk score (module docstring); the maximum is 100.

    Attributes
    ----------
    red, yellow : float
        Points for a red / yellow patch (default 50 / 25).
    area : float
        Points for a patch of ``area_full_hm2`` or more, linear below (default 20).
    area_full_hm2 : float
        Area that earns the full area points (default 2 hm²).
    confidence : float
        Points times X_CONF (0–1) (default 15).
    sensitive : float
        Points when the patch meets a sensitive area, X_SENS (default 15).
    """

    red: float = 50.0
    yellow: float = 25.0
    area: float = 20.0
    area_full_hm2: float = 2.0
    confidence: float = 15.0
    sensitive: float = 15.0

    def score(self, patches: pd.DataFrame) -> np.ndarray:
        """Risk score of each row (X_COLOR, QAREA, X_CONF, X_SENS), rounded to 0.1."""
        colour = patches["X_COLOR"].map({codes.RED: self.red, codes.YELLOW: self.yellow}).fillna(0.0).to_numpy(float)
        area = self.area * np.clip(_num(patches, "QAREA") / self.area_full_hm2, 0.0, 1.0)
        conf = self.confidence * np.clip(_num(patches, "X_CONF"), 0.0, 1.0)
        sens = self.sensitive * (patches.get("X_SENS", pd.Series("", index=patches.index)).fillna("").astype(str) != "").to_numpy()
        return np.round(colour + area + conf + sens, 1)


def _num(frame: pd.DataFrame, name: str) -> np.ndarray:
    if name not in frame:
        return np.zeros(len(frame))
    return pd.to_numeric(frame[name], errors="coerce").fillna(0.0).to_numpy(float)


def _text(value) -> str:
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return ""
    return str(value)


def _e(value) -> str:
    return html.escape(_text(value), quote=True)


# -- reading -----------------------------------------------------------------------------------
@dataclass
class ReportInput:
    """What the report shows, read from an OUT.gpkg."""

    path: Path
    patches: gpd.GeoDataFrame
    projects: gpd.GeoDataFrame | None
    zones: gpd.GeoDataFrame | None
    run_info: dict
    developers: pd.DataFrame | None
    chips: dict[tuple[str, str], str]


def read_output(path: str | Path) -> ReportInput:
    """Read the layers of a detect output the report needs.

    Raises
    ------
    InputFileError
        Not a readable GeoPackage, or no ``disturbance_patches`` layer.
    """
    path = Path(path)
    if not path.is_file():
        raise InputFileError("file does not exist", path=path, fix="give the OUT.gpkg written by swc-rs detect")
    try:
        layers = {str(n) for n, _ in pyogrio.list_layers(path)}
    except Exception as err:
        raise InputFileError(f"cannot open as a GeoPackage ({err})", path=path, fix="give the OUT.gpkg written by swc-rs detect") from err
    if "disturbance_patches" not in layers:
        raise InputFileError("is not a swc-rs detect output (no disturbance_patches layer)", path=path,
                             fix="give the OUT.gpkg written by swc-rs detect")

    def read(layer):
        return gpd.read_file(path, layer=layer, engine="pyogrio") if layer in layers else None

    info = {}
    if "run_info" in layers:
        frame = pyogrio.read_dataframe(path, layer="run_info")
        info = frame.iloc[0].to_dict() if len(frame) else {}
    developers = pyogrio.read_dataframe(path, layer="developers") if "developers" in layers else None
    return ReportInput(path, read("disturbance_patches"), read("projects"), read("zones"), info, developers, read_chips(path))


def read_chips(path: Path) -> dict[tuple[str, str], str]:
    """``{(QDNM, 'before'|'after'): data URI}`` from a ``chips`` table, if there is one.

    Accepts the column names of :mod:`swc_rs.export.chips` (QDNM, DATE_KIND, IMAGE; PNG in
    older files) and lenient variants (KIND, any BLOB column); PNG and JPEG blobs are
    embedded.
    """
    from swc_rs.export.chips import sniff_mime

    try:
        with closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as db:
            if not db.execute("SELECT 1 FROM sqlite_master WHERE type='table' AND name='chips'").fetchone():
                return {}
            cursor = db.execute("SELECT * FROM chips")
            names = [d[0] for d in cursor.description]
            rows = cursor.fetchall()
    except sqlite3.Error as err:
        log.warning("%s: cannot read the chips table (%s); the report shows outlines only", path, err)
        return {}
    lower = [n.lower() for n in names]
    try:
        q = lower.index("qdnm")
    except ValueError:
        return {}
    kind = next((lower.index(k) for k in ("date_kind", "kind", "chip_kind", "type") if k in lower), None)
    chips: dict[tuple[str, str], str] = {}
    for row in rows:
        blob = next((v for v in row if isinstance(v, (bytes, memoryview))), None)
        if blob is None or kind is None:
            continue
        blob = bytes(blob)
        mime = sniff_mime(blob)
        if mime:
            chips[(str(row[q]), str(row[kind]).lower())] = f"data:{mime};base64,{base64.b64encode(blob).decode('ascii')}"
    return chips


# -- numbers -------------------------------------------------------------------------------------
def suspected(patches: pd.DataFrame) -> pd.Series:
    """Rows on the field list: BYD 疑似… or a confirmed field verdict (not 合规)."""
    byd = patches["BYD"].fillna("").astype(str)
    confirmed = byd.isin([v for v in codes.BYD_FIELD if v != codes.COMPLIANT])
    return byd.str.startswith(codes.SUSPECTED_PREFIX) | confirmed


def totals(patches: pd.DataFrame, zones: pd.DataFrame | None) -> dict[str, pd.DataFrame]:
    """Counts and areas (hm²) by zone, colour and BYD.

    Returns
    -------
    dict with ``zone`` (ZONE_CODE, ZONE_NAME, N, N_SUSPECTED, N_红, N_黄, N_绿, A_SUSPECTED,
    A_ALL), ``colour`` (X_COLOR, N, AREA; construction patches) and ``byd`` (BYD, N,
    AREA; 非生产建设项目 as its own row).
    """
    p = patches.copy()
    p["_S"] = suspected(p).to_numpy()
    p["_A"] = _num(p, "QAREA")
    project = (p["QTYPE"].fillna("") != codes.NOT_PROJECT).to_numpy()
    names = {}
    if zones is not None and len(zones) and "ZONE_CODE" in zones:
        names = dict(zip(zones["ZONE_CODE"].astype(str), zones.get("ZONE_NAME", pd.Series("", index=zones.index)).fillna(""), strict=True))
    codes_ = sorted(set(names) | set(p["X_ZONE"].fillna("").astype(str)) - {""}) + ([""] if (p["X_ZONE"].fillna("") == "").any() else [])
    zone_rows = []
    for z in codes_:
        sel = p[p["X_ZONE"].fillna("").astype(str) == z]
        s = sel[sel["_S"]]
        row = {"ZONE_CODE": z or "—", "ZONE_NAME": names.get(z, ""), "N": len(sel), "N_SUSPECTED": len(s)}
        for colour in codes.COLOURS:
            row[f"N_{colour}"] = int(((sel["X_COLOR"] == colour) & (sel["QTYPE"] != codes.NOT_PROJECT)).sum())
        row["A_SUSPECTED"] = round(float(s["_A"].sum()), 4)
        row["A_ALL"] = round(float(sel["_A"].sum()), 4)
        zone_rows.append(row)
    colour_rows = [{"X_COLOR": c, "N": int(((p["X_COLOR"] == c) & project).sum()),
                    "AREA": round(float(p.loc[(p["X_COLOR"] == c) & project, "_A"].sum()), 4)} for c in codes.COLOURS]
    byd_values = [v for v in (*codes.BYD_DESK, *codes.BYD_FIELD[1:]) if (p.loc[project, "BYD"] == v).any() or v in codes.BYD_DESK]
    byd_rows = [{"BYD": v, "N": int(((p["BYD"] == v) & project).sum()), "AREA": round(float(p.loc[(p["BYD"] == v) & project, "_A"].sum()), 4)}
                for v in byd_values]
    byd_rows.append({"BYD": f"（{codes.NOT_PROJECT}）", "N": int((~project).sum()), "AREA": round(float(p.loc[~project, "_A"].sum()), 4)})
    return {"zone": pd.DataFrame(zone_rows), "colour": pd.DataFrame(colour_rows), "byd": pd.DataFrame(byd_rows)}


def inspection_list(patches: gpd.GeoDataFrame, weights: RiskScore = RiskScore()) -> gpd.GeoDataFrame:
    """Suspected patches ranked by risk (highest first), with SCORE and RANK columns."""
    sel = patches[suspected(patches)].copy()
    sel["SCORE"] = weights.score(sel)
    sel["_E"] = _num(sel, "EAREA")
    sel = sel.sort_values(["SCORE", "_E", "QDNM"], ascending=[False, False, True], kind="stable").drop(columns="_E")
    sel["RANK"] = np.arange(1, len(sel) + 1)
    return sel.reset_index(drop=True)


# -- SVG -----------------------------------------------------------------------------------------------
class _Frame:
    """Map coordinates (metres) to SVG coordinates for a bounding box."""

    def __init__(self, bounds, width: float, pad: float = 0.04):
        minx, miny, maxx, maxy = bounds
        span = max(maxx - minx, maxy - miny, 1.0)
        minx, maxx = minx - pad * span, maxx + pad * span
        miny, maxy = miny - pad * span, maxy + pad * span
        self.minx, self.maxy = minx, maxy
        self.scale = width / max(maxx - minx, 1e-9)
        self.width = width
        self.height = max((maxy - miny) * self.scale, 1.0)
        self.metres = (maxx - minx)

    def path(self, geom) -> str:
        if geom is None or geom.is_empty:
            return ""
        parts = []
        for poly in shapely.get_parts(geom):
            if poly.geom_type != "Polygon":
                continue
            for ring in (poly.exterior, *poly.interiors):
                xy = np.asarray(ring.coords)[:, :2]
                x = (xy[:, 0] - self.minx) * self.scale
                y = (self.maxy - xy[:, 1]) * self.scale
                pts = " ".join(f"{a:.1f},{b:.1f}" for a, b in zip(x, y, strict=True))
                parts.append(f"M{pts}Z")
        return "".join(parts)

    def point(self, geom) -> tuple[float, float]:
        p = geom.representative_point()
        return (p.x - self.minx) * self.scale, (self.maxy - p.y) * self.scale

    def scale_bar(self) -> str:
        """A scale bar (bottom left) of a round length ~ a fifth of the width."""
        target = self.metres / 5
        length = 10 ** np.floor(np.log10(max(target, 1e-9)))
        for step in (5, 2, 1):
            if step * length <= target:
                length *= step
                break
        px = length * self.scale
        label = f"{length / 1000:g} km" if length >= 1000 else f"{length:g} m"
        y = self.height - 10
        return (f'<g class="bar"><path d="M10,{y - 5:.1f}V{y:.1f}H{10 + px:.1f}V{y - 5:.1f}"/>'
                f'<text x="{10 + px / 2:.1f}" y="{y - 8:.1f}" text-anchor="middle">{label}</text></g>')


def _colour(row) -> str:
    if _text(row.get("QTYPE")) == codes.NOT_PROJECT:
        return NOT_PROJECT_HEX
    return COLOUR_HEX.get(_text(row.get("X_COLOR")), NOT_PROJECT_HEX)


def overview_svg(data: ReportInput, ranked: pd.DataFrame, crs: str, width: int = 900) -> str:
    """Zones, projects and patches (coloured by X_COLOR; suspected ones numbered by rank)."""
    patches = data.patches.to_crs(crs)
    projects = data.projects.to_crs(crs) if data.projects is not None and len(data.projects) else None
    zones = data.zones.to_crs(crs) if data.zones is not None and len(data.zones) else None
    focus = [f.total_bounds for f in (patches, projects) if f is not None and len(f)]
    if not focus and zones is not None:
        focus = [zones.total_bounds]
    if not focus:
        return '<p class="muted">没有可绘制的图层。</p>'
    b = np.array(focus)
    frame = _Frame((b[:, 0].min(), b[:, 1].min(), b[:, 2].max(), b[:, 3].max()), width, pad=0.06)
    tol = frame.metres / 2000
    out = [f'<svg class="map" viewBox="0 0 {frame.width:.0f} {frame.height:.0f}" role="img" aria-label="总览图">',
           f'<rect width="{frame.width:.0f}" height="{frame.height:.0f}" class="sea"/>']
    if zones is not None:
        view = shapely.box(frame.minx, frame.maxy - frame.height / frame.scale, frame.minx + frame.width / frame.scale, frame.maxy)
        for k, z in enumerate(zones.itertuples()):
            geom = shapely.intersection(z.geometry, view).simplify(tol)
            if geom.is_empty:
                continue
            code, name = _e(getattr(z, "ZONE_CODE", "")), _e(getattr(z, "ZONE_NAME", ""))
            out.append(f'<path class="zone" fill="{ZONE_HEX[k % len(ZONE_HEX)]}" d="{frame.path(geom)}"><title>{code} {name}</title></path>')
            x, y = frame.point(geom)
            out.append(f'<text class="zlabel" x="{x:.1f}" y="{y:.1f}">{code}</text>')
    if projects is not None:
        for pr in projects.itertuples():
            name = _e(getattr(pr, "PRNM", ""))
            out.append(f'<path class="project" d="{frame.path(pr.geometry.simplify(tol))}"><title>{name}</title></path>')
    rank = dict(zip(ranked["QDNM"], ranked["RANK"], strict=True)) if len(ranked) else {}
    for _, row in patches.iterrows():
        q = _text(row["QDNM"])
        title = _e(f"{q} {_text(row.get('QTYPE'))} {_text(row.get('BYD'))} {_num(pd.DataFrame([row]), 'QAREA')[0]:.4f} hm²")
        d = frame.path(row.geometry)
        if q in rank:
            out.append(f'<a href="#p-{_e(q)}"><path class="patch" fill="{_colour(row)}" d="{d}"><title>{title}</title></path></a>')
        else:
            out.append(f'<path class="patch other" fill="{_colour(row)}" d="{d}"><title>{title}</title></path>')
    for _, row in ranked.iterrows():
        x, y = frame.point(patches.loc[patches["QDNM"] == row["QDNM"]].geometry.iloc[0])
        out.append(f'<text class="rank" x="{x:.1f}" y="{y - 6:.1f}">{int(row["RANK"])}</text>')
    out.append(frame.scale_bar())
    out.append("</svg>")
    return "".join(out)


def outline_svg(geom, context: list[tuple[str, object]], colour: str, size: int = 260) -> str:
    """One patch (filled) with nearby project ranges / patches (outlined), padded by its size."""
    minx, miny, maxx, maxy = geom.bounds
    pad = max(maxx - minx, maxy - miny) * 0.5 + 10
    frame = _Frame((minx - pad, miny - pad, maxx + pad, maxy + pad), size, pad=0.0)
    view = shapely.box(minx - pad, miny - pad, maxx + pad, maxy + pad)
    out = [f'<svg class="outline" viewBox="0 0 {frame.width:.0f} {frame.height:.0f}" role="img" aria-label="图斑轮廓">',
           f'<rect width="{frame.width:.0f}" height="{frame.height:.0f}" class="paper"/>']
    for kind, other in context:
        clipped = shapely.intersection(other, view)
        if not clipped.is_empty:
            out.append(f'<path class="{kind}" d="{frame.path(clipped)}"/>')
    out.append(f'<path class="patch" fill="{colour}" d="{frame.path(geom)}"/>')
    out.append(frame.scale_bar())
    out.append("</svg>")
    return "".join(out)


# -- HTML ------------------------------------------------------------------------------------------------
_CSS = """
:root{--ink:#1f2933;--muted:#66788a;--line:#d9e2ec;--red:#d7191c;--yellow:#f2b600;--green:#1a9641}
*{box-sizing:border-box}
body{font-family:"Noto Sans CJK SC","Source Han Sans SC","Microsoft YaHei","PingFang SC",sans-serif;color:var(--ink);margin:0;background:#f5f7fa;line-height:1.45}
header{background:#12344d;color:#fff;padding:18px 28px}
header h1{margin:0 0 4px;font-size:22px}
header p{margin:0;color:#c7d6e3;font-size:13px}
main{padding:16px 28px;max-width:1280px}
section{background:#fff;border:1px solid var(--line);border-radius:6px;padding:14px 18px;margin:0 0 16px}
h2{font-size:17px;margin:0 0 10px}
table{border-collapse:collapse;font-size:13px;width:100%}
th,td{border-bottom:1px solid var(--line);padding:4px 8px;text-align:left;vertical-align:top}
td.nw{white-space:nowrap}
h3{font-size:14px;margin:0 0 6px}
.grid3 p.muted{font-size:12px}
th{background:#eef2f7;cursor:default;white-space:nowrap}
table.sortable th{cursor:pointer}
td.num,th.num{text-align:right;font-variant-numeric:tabular-nums}
.kpis{display:flex;gap:12px;flex-wrap:wrap}
.kpi{flex:1 1 140px;border:1px solid var(--line);border-radius:6px;padding:8px 12px;background:#fbfcfe}
.kpi b{display:block;font-size:22px}
.kpi span{color:var(--muted);font-size:12px}
.grid3{display:grid;grid-template-columns:2fr 1fr 1fr;gap:16px}
.dot{display:inline-block;width:11px;height:11px;border-radius:50%;vertical-align:-1px;margin-right:4px;border:1px solid #0003}
.muted{color:var(--muted)}
svg.map{width:100%;height:auto;border:1px solid var(--line);border-radius:4px}
svg .sea{fill:#fdfdfb}
svg .zone{stroke:#7a8b99;stroke-width:1;stroke-dasharray:4 3}
svg .zlabel{font-size:14px;fill:#7a8b99;font-weight:bold}
svg .project{fill:none;stroke:#1d4e89;stroke-width:1.6;stroke-dasharray:6 3}
svg .patch{stroke:#333;stroke-width:0.8;fill-rule:evenodd}
svg .patch.other{opacity:.55}
svg .rank{font-size:11px;font-weight:bold;fill:#111;stroke:#fff;stroke-width:3px;paint-order:stroke;text-anchor:middle}
svg .bar path{fill:none;stroke:#222;stroke-width:1.5}
svg .bar text{font-size:10px;fill:#222}
svg .paper{fill:#fdfdfb}
svg .neighbour{fill:#bbb;stroke:#888;stroke-width:.8;opacity:.6}
.legend{font-size:12px;color:var(--muted);margin-top:6px}
.legend span{margin-right:14px}
.cards{display:grid;grid-template-columns:repeat(auto-fill,minmax(560px,1fr));gap:14px}
.card{border:1px solid var(--line);border-left:6px solid #999;border-radius:6px;padding:10px 12px;background:#fff;page-break-inside:avoid}
.card.c-红{border-left-color:var(--red)} .card.c-黄{border-left-color:var(--yellow)} .card.c-绿{border-left-color:var(--green)}
.card h3{margin:0 0 6px;font-size:15px}
.card .body{display:flex;gap:12px;align-items:flex-start}
.card table{font-size:12px;width:auto;flex:1}
.card table th{background:none;color:var(--muted);font-weight:normal;padding:2px 8px 2px 0}
.card table td{padding:2px 0;word-break:break-all}
.card .body table{min-width:0}
.chips{display:flex;gap:6px;margin-top:8px}
.chips figure{margin:0;text-align:center;font-size:11px;color:var(--muted)}
.chips img{width:200px;height:auto;border:1px solid var(--line);image-rendering:auto}
svg.outline{width:200px;height:auto;border:1px solid var(--line);flex:none}
.badge{display:inline-block;padding:0 6px;border-radius:3px;color:#fff;font-size:12px;margin-left:6px}
.b-红{background:var(--red)} .b-黄{background:var(--yellow);color:#222} .b-绿{background:var(--green)}
.flag-黑名单{color:#fff;background:#222;padding:0 6px;border-radius:3px}
.flag-重点关注名单{color:#222;background:var(--yellow);padding:0 6px;border-radius:3px}
footer{color:var(--muted);font-size:12px;padding:0 28px 24px}
@media print{body{background:#fff}section{border:none}.cards{display:block}.card{margin-bottom:10px}}
"""

# Click a header of a .sortable table to sort by it (numbers numerically).
_JS = """
document.addEventListener('DOMContentLoaded', function () {
  document.querySelectorAll('table.sortable').forEach(function (table) {
    var heads = table.querySelectorAll('thead th');
    heads.forEach(function (th, col) {
      th.addEventListener('click', function () {
        var body = table.tBodies[0];
        var rows = Array.prototype.slice.call(body.rows);
        var up = th.getAttribute('data-dir') !== 'up';
        heads.forEach(function (h) { h.removeAttribute('data-dir'); });
        th.setAttribute('data-dir', up ? 'up' : 'down');
        rows.sort(function (a, b) {
          var x = a.cells[col].getAttribute('data-v') || a.cells[col].textContent;
          var y = b.cells[col].getAttribute('data-v') || b.cells[col].textContent;
          var nx = parseFloat(x), ny = parseFloat(y);
          var c = (!isNaN(nx) && !isNaN(ny)) ? nx - ny : x.localeCompare(y, 'zh');
          return up ? c : -c;
        });
        rows.forEach(function (r) { body.appendChild(r); });
      });
    });
  });
});
"""


def _table(columns: list[tuple[str, str, bool]], rows: list[dict], *, sortable: bool = False, total: dict | None = None) -> str:
    """columns: (key, header, numeric)."""
    head = "".join(f'<th class="num">{_e(h)}</th>' if num else f"<th>{_e(h)}</th>" for _, h, num in columns)
    body = []
    for row in rows:
        cells = []
        for key, _, num in columns:
            value = row.get(key, "")
            raw = value[1] if isinstance(value, tuple) else None
            shown = value[0] if isinstance(value, tuple) else _e(_fmt(value))
            attr = f' data-v="{_e(raw)}"' if raw is not None else ""
            nowrap = ' class="nw"' if isinstance(value, tuple) else ""
            cells.append(f'<td class="num"{attr}>{shown}</td>' if num else f"<td{nowrap}{attr}>{shown}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    foot = ""
    if total:
        foot = "<tfoot><tr>" + "".join(
            f'<th class="num">{_e(_fmt(total.get(k, "")))}</th>' if num else f"<th>{_e(_fmt(total.get(k, '')))}</th>"
            for k, _, num in columns) + "</tr></tfoot>"
    cls = ' class="sortable"' if sortable else ""
    return f"<table{cls}><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody>{foot}</table>"


def _fmt(value) -> str:
    if isinstance(value, (float, np.floating)):
        return f"{value:.4f}"
    return _text(value)


def _dot(colour: str) -> str:
    return f'<span class="dot" style="background:{COLOUR_HEX.get(colour, NOT_PROJECT_HEX)}"></span>{_e(colour)}'


def build_report(data: ReportInput, weights: RiskScore = RiskScore(), *, title: str | None = None,
                 erosion=None) -> str:
    """The report's HTML text (self-contained: no external reference).

    ``erosion``: a :class:`~swc_rs.erosion.trend.Trend` whose section
    (:mod:`swc_rs.export.erosion_report`) goes after the detect sections.
    """
    info = data.run_info
    crs = _text(info.get("area_crs")) or "EPSG:4543"
    patches = data.patches.copy()
    for name in ("QDNM", "QTYPE", "BYD", "X_COLOR", "X_ZONE", "X_SENS", "PRNM", "RST"):
        if name not in patches:
            patches[name] = ""
        patches[name] = patches[name].map(_text)
    ranked = inspection_list(patches, weights)
    tot = totals(patches, data.zones)
    metric = patches.to_crs(crs)
    projects_m = data.projects.to_crs(crs) if data.projects is not None and len(data.projects) else None
    period = _text(info.get("period"))
    title = title or f"扰动图斑遥感监管报告 {period}".strip()

    n_all, n_s = len(patches), len(ranked)
    area_s = float(_num(ranked, "QAREA").sum())
    n_red = int((ranked["X_COLOR"] == codes.RED).sum())
    n_checked = int((patches["RST"] != codes.NOT_CHECKED).sum())
    n_carried = int((patches.get("X_CARRY", pd.Series("", index=patches.index)).fillna("") != "").sum())
    kpis = [
        (n_all, "扰动图斑（全部）"),
        (n_s, "核查清单图斑（疑似及已确认未销号）"),
        (f"{area_s:.2f}", "待核查面积 hm²"),
        (n_red, "红色图斑"),
        (n_checked, "已复核/无法核实"),
    ] + ([(n_carried, "延续（未销号）")] if "X_CARRY" in patches else [])
    parts = [
        "<!DOCTYPE html>",
        '<html lang="zh-CN"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{_e(title)}</title><style>{_CSS}{_erosion_css(erosion)}</style></head><body>",
        f"<header><h1>{_e(title)}</h1><p>前时相 {_e(info.get('date_before') or '?')} → 后时相 {_e(info.get('date_after') or '?')}"
        f" · 传感器 {_e(info.get('sensor') or '?')} · 像元 {_e(info.get('pixel_size_m') or '?')} m"
        f" · 判读模型 {_e(info.get('model_id') or '?')} · swc-rs {_e(info.get('swc_rs_version') or __version__)}"
        f" · 数据 {_e(data.path.name)}</p></header><main>",
        '<section id="summary"><h2>概况</h2><div class="kpis">'
        + "".join(f'<div class="kpi"><b>{_e(v)}</b><span>{_e(k)}</span></div>' for v, k in kpis)
        + "</div></section>",
    ]
    # Totals.
    z = tot["zone"]
    zone_rows = [dict(r) for r in z.to_dict("records")]
    zone_total = {"ZONE_CODE": "合计", "N": int(z["N"].sum()) if len(z) else 0, "N_SUSPECTED": int(z["N_SUSPECTED"].sum()) if len(z) else 0,
                  **{f"N_{c}": int(z[f"N_{c}"].sum()) if len(z) else 0 for c in codes.COLOURS},
                  "A_SUSPECTED": float(z["A_SUSPECTED"].sum()) if len(z) else 0.0, "A_ALL": float(z["A_ALL"].sum()) if len(z) else 0.0}
    zone_table = _table([("ZONE_CODE", "分区", False), ("ZONE_NAME", "名称", False), ("N", "图斑", True),
                         ("N_SUSPECTED", "疑似", True), ("N_红", "红", True), ("N_黄", "黄", True), ("N_绿", "绿", True),
                         ("A_SUSPECTED", "疑似面积 hm²", True), ("A_ALL", "总面积 hm²", True)], zone_rows, total=zone_total)
    colour_rows = [{"X_COLOR": (_dot(r["X_COLOR"]), r["X_COLOR"]), "N": r["N"], "AREA": r["AREA"]} for r in tot["colour"].to_dict("records")]
    colour_table = _table([("X_COLOR", "三色", False), ("N", "图斑", True), ("AREA", "面积 hm²", True)], colour_rows,
                          total={"X_COLOR": "合计", "N": int(tot["colour"]["N"].sum()), "AREA": float(tot["colour"]["AREA"].sum())})
    byd_table = _table([("BYD", "扰动合规性 BYD", False), ("N", "图斑", True), ("AREA", "面积 hm²", True)], tot["byd"].to_dict("records"),
                       total={"BYD": "合计", "N": int(tot["byd"]["N"].sum()), "AREA": float(tot["byd"]["AREA"].sum())})
    parts.append(f'<section id="totals"><h2>统计</h2><div class="grid3"><div><h3>按分区</h3>{zone_table}</div>'
                 f'<div><h3>按三色</h3>{colour_table}<p class="muted">生产建设项目图斑（不含非生产建设项目）。</p></div>'
                 f"<div><h3>按合规性</h3>{byd_table}</div></div></section>")
    # Map.
    legend = "".join(f'<span><span class="dot" style="background:{hexv}"></span>{_e(c)}</span>' for c, hexv in COLOUR_HEX.items())
    legend += f'<span><span class="dot" style="background:{NOT_PROJECT_HEX}"></span>{codes.NOT_PROJECT}</span>'
    legend += "<span>虚线：防治责任范围 / 分区界线；数字：核查排序</span>"
    parts.append(f'<section id="map"><h2>总览图</h2>{overview_svg(data, ranked, crs)}<div class="legend">{legend}</div></section>')
    # Inspection list.
    rows = []
    for r in ranked.to_dict("records"):
        q = _text(r["QDNM"])
        rows.append({
            "RANK": r["RANK"], "QDNM": (f'<a href="#p-{_e(q)}">{_e(q)}</a>', q), "SCORE": (f"{r['SCORE']:.1f}", r["SCORE"]),
            "X_COLOR": (_dot(_text(r["X_COLOR"])), _text(r["X_COLOR"])), "BYD": r["BYD"], "QTYPE": r["QTYPE"],
            "QAREA": float(r.get("QAREA") or 0.0), "EAREA": float(r.get("EAREA") or 0.0), "X_CONF": (f"{float(r.get('X_CONF') or 0):.2f}", float(r.get("X_CONF") or 0)),
            "X_SENS": r.get("X_SENS", ""), "X_ZONE": r.get("X_ZONE", ""), "PRNM": r.get("PRNM", ""), "RST": r.get("RST", ""),
        })
    listing = _table([("RANK", "序", True), ("QDNM", "图斑编号", False), ("SCORE", "风险分", True), ("X_COLOR", "三色", False),
                      ("BYD", "合规性", False), ("QTYPE", "扰动类型", False), ("QAREA", "面积 hm²", True), ("EAREA", "超出 hm²", True),
                      ("X_CONF", "置信度", True), ("X_SENS", "敏感区", False), ("X_ZONE", "分区", False), ("PRNM", "项目", False),
                      ("RST", "复核", False)], rows, sortable=True)
    parts.append(f'<section id="inspection"><h2>核查清单（按风险排序，{n_s} 个）</h2>'
                 f'<p class="muted">风险分 = 三色（红 {weights.red:g}，黄 {weights.yellow:g}）+ {weights.area:g} × min(QAREA / {weights.area_full_hm2:g} hm², 1)'
                 f" + {weights.confidence:g} × 置信度 + {weights.sensitive:g}（涉及敏感区）；满分 100。点击表头排序。</p>"
                 f"{listing if n_s else '<p>本期无疑似违法违规图斑。</p>'}</section>")
    # Cards.
    cards = []
    by_id = metric.set_index("QDNM", drop=False)
    for r in ranked.to_dict("records"):
        q = _text(r["QDNM"])
        geom = by_id.geometry.loc[q]
        if isinstance(geom, gpd.GeoSeries):
            geom = geom.iloc[0]
        context = []
        view = geom.buffer(max(np.sqrt(max(geom.area, 1.0)), 20.0) * 2)
        if projects_m is not None:
            context += [("project", g) for g in projects_m.geometry if g is not None and g.intersects(view)]
        context += [("neighbour", g) for qq, g in zip(metric["QDNM"], metric.geometry, strict=True) if qq != q and g.intersects(view)]
        colour = _text(r["X_COLOR"])
        attrs = [("扰动类型 QTYPE", r.get("QTYPE")), ("合规性 BYD", r.get("BYD")), ("面积 QAREA", f"{float(r.get('QAREA') or 0):.4f} hm²"),
                 ("超出面积 EAREA", f"{float(r.get('EAREA') or 0):.4f} hm²"), ("项目 PRNM", r.get("PRNM")), ("分区", r.get("X_ZONE")),
                 ("变化类型 QDTYPE", r.get("QDTYPE")), ("敏感区", r.get("X_SENS")), ("置信度", f"{float(r.get('X_CONF') or 0):.2f}"),
                 ("判定依据", r.get("X_RULE")), ("复核状态 RST", r.get("RST")), ("时相", f"{_text(r.get('X_T1'))} → {_text(r.get('X_T2'))}"),
                 ("备注 NOTE", r.get("NOTE"))]
        if _text(r.get("X_CARRY")):
            attrs.append(("延续自", f"{_text(r.get('X_CARRY'))} 期（本期未检出）"))
        if _text(r.get("XCFHR")):
            attrs.append(("复核人/日期", f"{_text(r.get('XCFHR'))} {_text(r.get('DATE'))}"))
        table = "<table>" + "".join(f"<tr><th>{_e(k)}</th><td>{_e(v)}</td></tr>" for k, v in attrs if _text(v)) + "</table>"
        chips = [(label, data.chips[(q, kind)]) for kind, label in (("before", "前时相"), ("after", "后时相")) if (q, kind) in data.chips]
        chip_html = ('<div class="chips">' + "".join(f'<figure><img alt="{_e(label)} {_e(q)}" src="{uri}"><figcaption>{_e(label)}</figcaption></figure>'
                                                     for label, uri in chips) + "</div>") if chips else ""
        cards.append(f'<article class="card c-{_e(colour)}" id="p-{_e(q)}"><h3>{int(r["RANK"])}. {_e(q)}'
                     f'<span class="badge b-{_e(colour)}">{_e(colour)}</span> <span class="muted">风险分 {r["SCORE"]:.1f}</span></h3>'
                     f'<div class="body">{outline_svg(geom, context, COLOUR_HEX.get(colour, NOT_PROJECT_HEX))}{table}</div>{chip_html}</article>')
    if cards:
        parts.append(f'<section id="cards"><h2>图斑卡片</h2><div class="cards">{"".join(cards)}</div></section>')
    # Developers.
    if data.developers is not None and len(data.developers):
        dev_rows = [{**r, "FLAG": (f'<span class="flag-{_e(r.get("FLAG"))}">{_e(r.get("FLAG"))}</span>' if _text(r.get("FLAG")) else "", _text(r.get("FLAG")))}
                    for r in data.developers.to_dict("records")]
        parts.append('<section id="developers"><h2>建设单位重点关注名单 / 黑名单</h2>' + _table(
            [("DPOZ", "建设单位", False), ("N_CONFIRMED", "确认违法", True), ("N_OPEN", "未销号", True), ("N_SENSITIVE", "涉敏感区", True),
             ("AREA_HM2", "面积 hm²", True), ("FLAG", "名单", False), ("QDNM", "图斑", False)], dev_rows) + "</section>")
    if erosion is not None:
        from swc_rs.export.erosion_report import erosion_section

        parts.append(erosion_section(erosion))
    generated = dt.datetime.now().astimezone().isoformat(timespec="seconds")
    parts.append(f"</main><footer>由 swc-rs {_e(__version__)} 生成于 {_e(generated)}。所有结果均为“疑似”，以现场复核为准。"
                 f"面积在 {_e(crs)} 中计算（hm²）。</footer><script>{_JS}</script></body></html>")
    return "\n".join(parts)


def _erosion_css(erosion) -> str:
    if erosion is None:
        return ""
    from swc_rs.export.erosion_report import CSS

    return CSS


def build_erosion_report(erosion, *, title: str | None = None) -> str:
    """A report of the erosion section alone (no detect output given)."""
    from swc_rs.export.erosion_report import erosion_section

    years = "、".join(str(y) for y in erosion.years)
    title = title or f"水土保持率监测报告 {years}"
    generated = dt.datetime.now().astimezone().isoformat(timespec="seconds")
    return "\n".join([
        "<!DOCTYPE html>",
        '<html lang="zh-CN"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{_e(title)}</title><style>{_CSS}{_erosion_css(erosion)}</style></head><body>",
        f"<header><h1>{_e(title)}</h1><p>swc-rs {_e(__version__)} · 监测年份 {_e(years)}</p></header><main>",
        erosion_section(erosion),
        f"</main><footer>由 swc-rs {_e(__version__)} 生成于 {_e(generated)}。面积为各区县、分区的有效观测土地。</footer>"
        f"<script>{_JS}</script></body></html>",
    ])


def write_report(source: str | Path | None, output: str | Path, *, overwrite: bool = False,
                 weights: RiskScore = RiskScore(), erosion=(), targets: dict[str, float] | None = None) -> Path:
    """Write the report of the detect output ``source`` to ``output`` atomically.

    ``erosion``: erosion outputs (one per year) or one erosion-trend output; they add
    the erosion section (their trend is computed with ``targets``, the ``[erosion]``
    defaults when None). ``source`` may be None when ``erosion`` is given.

    Raises
    ------
    OutputExistsError
        ``output`` exists and ``overwrite`` is False.
    InputFileError
        ``source`` is not a detect output, an erosion file is not an erosion output,
        or ``output`` is not an .html file.
    """
    output = Path(output)
    if output.suffix.lower() not in (".html", ".htm"):
        raise InputFileError("the report must be an HTML file", path=output, fix="end the report name with .html")
    if output.exists() and not overwrite:
        raise OutputExistsError("the report already exists", path=output, fix="choose another name or add --overwrite")
    trend = None
    if erosion:
        from swc_rs.erosion.config import ErosionConfig
        from swc_rs.erosion.trend import load_erosion

        trend = load_erosion(list(erosion), targets if targets is not None else ErosionConfig().targets)
    if source is None:
        if trend is None:
            raise InputFileError("nothing to report", fix="give the OUT.gpkg of swc-rs detect and/or --erosion FILE")
        text = build_erosion_report(trend)
    else:
        text = build_report(read_output(source), weights, erosion=trend)
    output.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f".{output.stem}.", suffix=".html", dir=output.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        os.chmod(name, 0o644)
        os.replace(name, output)
    except BaseException:
        Path(name).unlink(missing_ok=True)
        raise
    log.info("wrote %s", output)
    return output
