"""Score detected disturbance patches against truth: precision, recall, F1, BYD accuracy.

Pure library: takes GeoDataFrames, returns an :class:`Evaluation`; it never reads or
writes files, never prints. ``swc_rs.cli.evaluate`` reads the GeoPackages.

Definitions (all areas in EPSG:4543 metres, reported in hm² = m² / 10 000)
-------------------------------------------------------------------------
detections
    Detected patches whose QTYPE is not 非生产建设项目 — what the product claims is
    production-and-construction disturbance. Patches typed 非生产建设项目 are counted
    separately (``non_project_patches``) and never count as detections.
truth patches
    Truth rows whose QTYPE is not 非生产建设项目 (so a field-verified OUT.gpkg, where
    false alarms were re-typed 非生产建设项目, can serve as truth directly).
optional truth
    Truth patches smaller than ``min_area_hm2`` (default 0.04 hm², the minimum mapping
    unit). Matching one counts for precision; missing one does not hurt recall.
match
    Detection d and truth t match when
    ``area(d ∩ t) / min(area(d), area(t)) >= min_overlap`` (default 0.5). Matching is
    many-to-many: a truth patch split into two detections matches both.
best match
    For a matched truth patch, the matching detection with the highest
    intersection-over-union ``area(d ∩ t) / area(d ∪ t)`` (ties: larger intersection,
    then the earlier detection row). IoU rather than the raw overlap, so that a small
    fragment inside a large truth patch does not win over a good outline, and a
    large detection does not win a small truth patch from the fragment that fits it.
precision
    matched detections / detections.
recall
    matched non-optional truth patches / non-optional truth patches.
F1
    2·P·R / (P + R); 0 when P = R = 0.
BYD accuracy
    Share of matched truth patches (optional ones included) whose best match has the
    same BYD. Field verdicts without 疑似 (e.g. 超出防治责任范围) are compared as their
    desk form (疑似超出防治责任范围); a missing BYD is ``""``.
QTYPE accuracy
    The same over QTYPE.
EAREA error
    Over matched truth patches whose truth BYD is 疑似超出防治责任范围, paired with their
    best match: mean absolute error ``mean(|EAREA_det − EAREA_truth|)`` in hm², and the
    signed relative error of the sums ``(ΣEAREA_det − ΣEAREA_truth) / ΣEAREA_truth``.
false-alarm breakdown
    Unmatched detections, each assigned to the confounder KIND it overlaps most
    (positive intersection area); those overlapping no confounder are "unexplained".
missed as non-project
    Non-optional truth patches matched by no detection but matched (same rule) by a
    patch the product typed 非生产建设项目.
recall by BYD
    For each truth BYD class: non-optional truth patches, how many were matched, recall.

A ratio whose denominator is zero is ``None`` (JSON ``null``).
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING

import numpy as np
import shapely

from swc_rs.codes import BYD_DESK, COMPLIANT, NOT_PROJECT, OVERRUN, QTYPES, SUSPECTED_PREFIX
from swc_rs.errors import VectorInputError

if TYPE_CHECKING:  # imported where used: `swc-rs` starts without pandas/geopandas
    import geopandas as gpd
    import pandas as pd

log = logging.getLogger(__name__)

#: CRS in which every area is computed (CGCS2000 / 3-degree GK CM 102E, metres).
AREA_CRS = "EPSG:4543"
#: Default minimum overlap ratio area(d ∩ t) / min(area(d), area(t)) for a match.
DEFAULT_MIN_OVERLAP = 0.5
#: Default minimum mapping unit, hm²: smaller truth patches are optional.
DEFAULT_MIN_AREA_HM2 = 0.04
#: Fields a patch layer (detections or truth) must carry.
REQUIRED_FIELDS = ("QTYPE", "BYD")
#: Layer names searched, in order, when the user names none.
DETECTION_LAYERS = ("disturbance_patches", "suspected_violations")
TRUTH_LAYERS = ("truth_patches", "disturbance_patches", "suspected_violations")
CONFOUNDER_LAYER = "confounders"

M2_PER_HM2 = 10_000.0


@dataclass(frozen=True)
class Evaluation:
    """Scores of one detector output against truth; see the module docstring.

    Counts are ints, ratios floats in [0, 1] or ``None`` when undefined, areas hm².
    ``byd_confusion`` / ``qtype_confusion`` map truth value → detected value → count
    over matched truth patches and their best match. ``recall_by_byd`` maps a truth
    BYD to ``{"truth": n, "matched": m, "recall": m / n}``.
    """

    min_overlap: float
    min_area_hm2: float
    detections: int
    detections_matched: int
    non_project_patches: int
    truth: int
    truth_optional: int
    truth_required_matched: int
    truth_optional_matched: int
    precision: float | None
    recall: float | None
    f1: float | None
    byd_correct: int
    byd_accuracy: float | None
    byd_confusion: dict[str, dict[str, int]] = field(default_factory=dict)
    qtype_correct: int = 0
    qtype_accuracy: float | None = None
    qtype_confusion: dict[str, dict[str, int]] = field(default_factory=dict)
    earea_pairs: int = 0
    earea_mae_hm2: float | None = None
    earea_truth_sum_hm2: float | None = None
    earea_detected_sum_hm2: float | None = None
    earea_relative_error: float | None = None
    false_alarms: int = 0
    false_alarms_by_confounder: dict[str, int] = field(default_factory=dict)
    false_alarms_unexplained: int = 0
    missed_as_non_project: int = 0
    recall_by_byd: dict[str, dict[str, float | int | None]] = field(default_factory=dict)

    @property
    def truth_required(self) -> int:
        """Non-optional truth patches (the recall denominator)."""
        return self.truth - self.truth_optional

    @property
    def truth_matched(self) -> int:
        """Matched truth patches, optional ones included (the BYD-accuracy denominator)."""
        return self.truth_required_matched + self.truth_optional_matched

    def to_dict(self) -> dict:
        """Plain, JSON-serialisable dict (Python ints/floats/None, str keys)."""
        data = asdict(self)
        data["truth_required"] = self.truth_required
        data["truth_matched"] = self.truth_matched
        return _plain(data)


def evaluate(
    detections: gpd.GeoDataFrame,
    truth: gpd.GeoDataFrame,
    confounders: gpd.GeoDataFrame | None = None,
    *,
    min_overlap: float = DEFAULT_MIN_OVERLAP,
    min_area_hm2: float = DEFAULT_MIN_AREA_HM2,
) -> Evaluation:
    """Score detected patches against truth patches.

    Parameters
    ----------
    detections
        Detector output patches (layer ``disturbance_patches``) with QTYPE and BYD,
        optionally EAREA (hm²). Any CRS; reprojected to EPSG:4543 for areas.
        Rows typed 非生产建设项目 are not detections (see module docstring).
    truth
        Truth patches with QTYPE and BYD, optionally EAREA (hm²). Rows typed
        非生产建设项目 are dropped (a field-verified output can be used as truth).
    confounders
        Optional polygons of changes that are not disturbance, with a KIND field
        (tillage, harvest, drawdown, cloud, cloud_shadow ...).
    min_overlap
        Match threshold on ``area(d ∩ t) / min(area(d), area(t))``, in (0, 1].
    min_area_hm2
        Truth patches below this area (hm²) are optional.

    Returns
    -------
    Evaluation

    Raises
    ------
    VectorInputError
        A frame lacks QTYPE/BYD (or KIND for confounders), has no CRS, or a
        parameter is out of range.
    """
    if not 0.0 < min_overlap <= 1.0:
        raise VectorInputError(
            f"min_overlap was {min_overlap} but must be in (0, 1]",
            fix="give an overlap ratio such as 0.5",
        )
    if min_area_hm2 < 0:
        raise VectorInputError(
            f"min_area_hm2 was {min_area_hm2} but must be >= 0",
            fix="give a minimum mapping unit in hm², e.g. 0.04",
        )
    check_fields(detections, REQUIRED_FIELDS, what="detections")
    check_fields(truth, REQUIRED_FIELDS, what="truth")
    if confounders is not None:
        check_fields(confounders, ("KIND",), what="confounders")

    patches = _prepared(detections, what="detections")
    truth = _prepared(truth, what="truth")
    not_project = patches["QTYPE"] == NOT_PROJECT
    non_project = patches[not_project].reset_index(drop=True)
    dets = patches[~not_project].reset_index(drop=True)
    truth = truth[truth["QTYPE"] != NOT_PROJECT].reset_index(drop=True)

    truth_area = shapely.area(truth.geometry.values) / M2_PER_HM2
    optional = truth_area < min_area_hm2

    pairs = match_patches(dets, truth, min_overlap=min_overlap)
    det_matched = np.zeros(len(dets), dtype=bool)
    det_matched[pairs["detection"].to_numpy()] = True
    truth_matched = np.zeros(len(truth), dtype=bool)
    truth_matched[pairs["truth"].to_numpy()] = True

    n_det = len(dets)
    n_req = int((~optional).sum())
    req_matched = int((truth_matched & ~optional).sum())
    precision = _ratio(int(det_matched.sum()), n_det)
    recall = _ratio(req_matched, n_req)

    best = best_matches(pairs)  # one row per matched truth
    t_idx = best["truth"].to_numpy()
    d_idx = best["detection"].to_numpy()
    t_byd = truth["BYD"].to_numpy()[t_idx]
    d_byd = dets["BYD"].to_numpy()[d_idx]
    t_qtype = truth["QTYPE"].to_numpy()[t_idx]
    d_qtype = dets["QTYPE"].to_numpy()[d_idx]
    byd_correct = int((t_byd == d_byd).sum())
    qtype_correct = int((t_qtype == d_qtype).sum())

    # EAREA over matched overrun truth and their best match.
    overrun = t_byd == OVERRUN
    t_earea = truth["EAREA"].to_numpy(dtype=float)[t_idx][overrun]
    d_earea = dets["EAREA"].to_numpy(dtype=float)[d_idx][overrun]
    earea = _earea_errors(t_earea, d_earea)

    # False alarms: unmatched detections, by the confounder KIND they overlap most.
    unmatched = dets[~det_matched]
    by_kind = _confounder_kinds(unmatched, confounders)
    explained = sum(by_kind.values())

    # Truth missed as detections but found and typed 非生产建设项目.
    np_pairs = match_patches(non_project, truth, min_overlap=min_overlap)
    found_as_np = np.zeros(len(truth), dtype=bool)
    found_as_np[np_pairs["truth"].to_numpy()] = True
    missed_as_np = int((found_as_np & ~truth_matched & ~optional).sum())

    recall_by_byd = {}
    req_byd = truth["BYD"].to_numpy()[~optional]
    req_hit = truth_matched[~optional]
    for value in sorted(set(req_byd), key=code_order):
        mask = req_byd == value
        n, m = int(mask.sum()), int(req_hit[mask].sum())
        recall_by_byd[value] = {"truth": n, "matched": m, "recall": _ratio(m, n)}

    result = Evaluation(
        min_overlap=float(min_overlap),
        min_area_hm2=float(min_area_hm2),
        detections=n_det,
        detections_matched=int(det_matched.sum()),
        non_project_patches=len(non_project),
        truth=len(truth),
        truth_optional=int(optional.sum()),
        truth_required_matched=req_matched,
        truth_optional_matched=int((truth_matched & optional).sum()),
        precision=precision,
        recall=recall,
        f1=_f1(precision, recall),
        byd_correct=byd_correct,
        byd_accuracy=_ratio(byd_correct, len(best)),
        byd_confusion=_confusion(t_byd, d_byd),
        qtype_correct=qtype_correct,
        qtype_accuracy=_ratio(qtype_correct, len(best)),
        qtype_confusion=_confusion(t_qtype, d_qtype),
        earea_pairs=int(overrun.sum()),
        false_alarms=len(unmatched),
        false_alarms_by_confounder=by_kind,
        false_alarms_unexplained=len(unmatched) - explained,
        missed_as_non_project=missed_as_np,
        recall_by_byd=recall_by_byd,
        **earea,
    )
    log.info(
        "%d detections, %d truth patches (%d optional): precision %s, recall %s",
        n_det,
        len(truth),
        result.truth_optional,
        _fmt(precision),
        _fmt(recall),
    )
    return result


def match_patches(
    detections: gpd.GeoDataFrame, truth: gpd.GeoDataFrame, *, min_overlap: float
) -> pd.DataFrame:
    """All matching (detection, truth) pairs.

    Candidate pairs come from a spatial index (STRtree via ``sjoin``); intersection
    areas are computed vectorised. Both frames must share a metric CRS.

    Returns
    -------
    pandas.DataFrame
        Columns ``detection`` and ``truth`` (positional row numbers), ``overlap_m2``
        (area of the intersection, m²), ``ratio`` (overlap / smaller area) and ``iou``
        (overlap / area of the union), one row per pair with ``ratio >= min_overlap``.
    """
    import pandas as pd

    columns = {
        "detection": "int64",
        "truth": "int64",
        "overlap_m2": "float64",
        "ratio": "float64",
        "iou": "float64",
    }
    if len(detections) == 0 or len(truth) == 0:
        return pd.DataFrame({c: pd.Series(dtype=t) for c, t in columns.items()})
    d_geom = np.asarray(detections.geometry.values)
    t_geom = np.asarray(truth.geometry.values)
    tree = shapely.STRtree(t_geom)
    d_i, t_i = tree.query(d_geom, predicate="intersects")
    overlap = shapely.area(shapely.intersection(d_geom[d_i], t_geom[t_i]))
    d_area, t_area = shapely.area(d_geom[d_i]), shapely.area(t_geom[t_i])
    smaller = np.minimum(d_area, t_area)
    union = d_area + t_area - overlap
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(smaller > 0, overlap / smaller, 0.0)
        iou = np.where(union > 0, overlap / union, 0.0)
    keep = (overlap > 0) & (ratio >= min_overlap)
    return pd.DataFrame(
        {
            "detection": d_i[keep],
            "truth": t_i[keep],
            "overlap_m2": overlap[keep],
            "ratio": ratio[keep],
            "iou": iou[keep],
        }
    ).astype(columns)


def best_matches(pairs: pd.DataFrame) -> pd.DataFrame:
    """One row per matched truth patch: its matching detection with the highest IoU.

    Ties go to the larger intersection, then to the earlier detection row.
    """
    ordered = pairs.sort_values(
        ["truth", "iou", "overlap_m2", "detection"], ascending=[True, False, False, True]
    )
    return ordered.drop_duplicates("truth", keep="first").reset_index(drop=True)


def check_fields(
    frame: gpd.GeoDataFrame,
    fields: tuple[str, ...],
    *,
    what: str,
    path: object = None,
    layer: str | None = None,
) -> None:
    """Raise :class:`VectorInputError` naming the missing fields, if any."""
    missing = [name for name in fields if name not in frame.columns]
    if missing:
        where = f"layer {layer!r} " if layer else f"the {what} "
        raise VectorInputError(
            f"{where}lacks the field(s) {', '.join(missing)} "
            f"(fields: {', '.join(c for c in frame.columns if c != frame.geometry.name) or 'none'})",
            path=path,
            fix=f"give a {what} layer with {', '.join(fields)} as written by swc-rs"
            + (" detect" if what == "detections" else " sample, or a field-verified output"),
        )


def choose_layer(
    layers: list[str], preferred: tuple[str, ...], requested: str | None = None
) -> str | None:
    """The layer to read: ``requested`` if given, else the first of ``preferred`` present.

    Returns ``None`` when nothing fits (the caller reports it with the file name).
    A requested layer that does not exist is returned unchanged so that the reader
    reports it with the list of layers.
    """
    if requested is not None:
        return requested
    return next((name for name in preferred if name in layers), None)


def normalise_byd(value: object) -> str:
    """Desk form of a BYD value: field verdicts regain 疑似; missing → ``""``."""
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return ""
    text = str(value).strip()
    if text in ("", COMPLIANT) or text.startswith(SUSPECTED_PREFIX):
        return text
    return SUSPECTED_PREFIX + text


# -- helpers -------------------------------------------------------------------


def _prepared(frame: gpd.GeoDataFrame, *, what: str) -> gpd.GeoDataFrame:
    """Reproject to EPSG:4543, make geometries valid, drop empty ones, tidy codes."""
    import geopandas as gpd
    import pandas as pd

    if frame.crs is None:
        raise VectorInputError(
            f"the {what} layer has no coordinate reference system",
            fix="assign the CRS (e.g. EPSG:4490) before evaluating",
        )
    frame = frame.to_crs(AREA_CRS)
    geoms = np.asarray(frame.geometry.values)
    invalid = ~shapely.is_valid(geoms) & ~shapely.is_missing(geoms)
    if invalid.any():
        log.debug("%s: %d invalid geometries made valid", what, int(invalid.sum()))
        geoms = geoms.copy()
        geoms[invalid] = shapely.make_valid(geoms[invalid])
    keep = ~(shapely.is_missing(geoms) | shapely.is_empty(geoms)) & (shapely.area(geoms) > 0)
    if (~keep).any():
        log.info("%s: %d features without area ignored", what, int((~keep).sum()))
    out = gpd.GeoDataFrame(
        {
            "QTYPE": [_text(v) for v in frame["QTYPE"].to_numpy()[keep]],
            "BYD": [normalise_byd(v) for v in frame["BYD"].to_numpy()[keep]],
            "EAREA": pd.to_numeric(frame["EAREA"], errors="coerce").to_numpy(dtype=float)[keep]
            if "EAREA" in frame.columns
            else np.full(int(keep.sum()), np.nan),
        },
        geometry=geoms[keep],
        crs=AREA_CRS,
    )
    return out


def _confounder_kinds(
    unmatched: gpd.GeoDataFrame, confounders: gpd.GeoDataFrame | None
) -> dict[str, int]:
    import pandas as pd

    if confounders is None or len(confounders) == 0 or len(unmatched) == 0:
        return {}
    if confounders.crs is None:
        raise VectorInputError(
            "the confounders layer has no coordinate reference system",
            fix="assign the CRS (e.g. EPSG:4490) before evaluating",
        )
    conf = confounders.to_crs(AREA_CRS)
    c_geom = np.asarray(shapely.make_valid(np.asarray(conf.geometry.values)))
    kinds = np.array([_text(v) for v in conf["KIND"].to_numpy()], dtype=object)
    u_geom = np.asarray(unmatched.geometry.values)
    u_i, c_i = shapely.STRtree(c_geom).query(u_geom, predicate="intersects")
    overlap = shapely.area(shapely.intersection(u_geom[u_i], c_geom[c_i]))
    frame = pd.DataFrame({"u": u_i, "kind": kinds[c_i], "overlap": overlap})
    frame = frame[frame["overlap"] > 0]
    # Area per (detection, kind), then the kind with the most area per detection.
    per_kind = frame.groupby(["u", "kind"], as_index=False)["overlap"].sum()
    per_kind = per_kind.sort_values(["u", "overlap", "kind"], ascending=[True, False, True])
    top = per_kind.drop_duplicates("u", keep="first")
    counts = Counter(top["kind"])
    return {kind: int(counts[kind]) for kind in sorted(counts)}


def _earea_errors(truth: np.ndarray, detected: np.ndarray) -> dict:
    valid = ~(np.isnan(truth) | np.isnan(detected))
    if len(truth) and not valid.all():
        log.warning("%d overrun pairs lack EAREA; left out of the EAREA error", int((~valid).sum()))
    truth, detected = truth[valid], detected[valid]
    if len(truth) == 0:
        return {}
    t_sum, d_sum = float(truth.sum()), float(detected.sum())
    return {
        "earea_mae_hm2": float(np.abs(detected - truth).mean()),
        "earea_truth_sum_hm2": t_sum,
        "earea_detected_sum_hm2": d_sum,
        "earea_relative_error": (d_sum - t_sum) / t_sum if t_sum > 0 else None,
    }


def _confusion(truth: np.ndarray, detected: np.ndarray) -> dict[str, dict[str, int]]:
    table: dict[str, dict[str, int]] = {}
    counts = Counter(zip(truth, detected, strict=True))
    for t, d in sorted(counts, key=lambda pair: (code_order(pair[0]), code_order(pair[1]))):
        table.setdefault(t, {})[d] = int(counts[(t, d)])
    return table


def code_order(value: str) -> tuple[int, str]:
    """Sort key: the DOMAIN.md order of BYD and QTYPE values, then the rest."""
    known = BYD_DESK + QTYPES
    return (known.index(value), value) if value in known else (len(known), value)


def _text(value: object) -> str:
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return ""
    return str(value).strip()


def _ratio(numerator: int, denominator: int) -> float | None:
    return numerator / denominator if denominator else None


def _f1(precision: float | None, recall: float | None) -> float | None:
    if precision is None or recall is None:
        return None
    if precision + recall == 0:
        return 0.0
    return 2 * precision * recall / (precision + recall)


def _fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def _plain(value):
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (np.floating, float)):
        value = float(value)
        return None if np.isnan(value) else value
    return value
