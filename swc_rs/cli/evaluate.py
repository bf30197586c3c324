"""`swc-rs evaluate`: score a detector output against truth patches."""

from __future__ import annotations

import json
import logging
import os
import tempfile
from pathlib import Path

import click

from swc_rs import evaluate as scoring
from swc_rs.cli.common import SuggestingCommand, configure_logging, handle_errors, verbosity_options
from swc_rs.errors import InputFileError, OutputExistsError

log = logging.getLogger(__name__)

HELP = """Score a detector output against truth patches.

OUT is the GeoPackage written by `swc-rs detect` (layer disturbance_patches).
TRUTH is a truth GeoPackage from `swc-rs sample` (layer truth_patches, optional
layer confounders) or a field-verified output (disturbance_patches or
suspected_violations: rows not typed 非生产建设项目 are the truth). Areas are
computed in EPSG:4543 and reported in hm².

\b
Metrics:
  detections   OUT patches whose QTYPE is not 非生产建设项目
  match        area(d∩t) / min(area(d), area(t)) >= --min-overlap (many-to-many)
  optional     truth patches under --min-area hm²: a match counts for
               precision, a miss does not hurt recall
  precision    matched detections / detections
  recall       matched non-optional truth / non-optional truth
  F1           2PR / (P + R)
  BYD accuracy matched truth whose best match (highest IoU) has the same
               BYD (field verdicts compared as their 疑似 form); QTYPE likewise
  EAREA error  over matched truth with BYD 疑似超出防治责任范围: mean |ΔEAREA|
               (hm²) and (ΣEAREA_det − ΣEAREA_truth) / ΣEAREA_truth
  false alarms unmatched detections by the confounder KIND they overlap most
  missed as non-project
               non-optional truth missed, but found and typed 非生产建设项目
  recall by BYD
               recall of each truth BYD class

\b
Examples:
  $ swc-rs evaluate out/demo.gpkg data/sample_tiles/truth.gpkg
  $ swc-rs evaluate out/demo.gpkg data/sample_tiles/truth.gpkg --json > scores.json
  $ swc-rs evaluate out/2026-11.gpkg field/2026-11-verified.gpkg \\
        --truth-layer suspected_violations --min-overlap 0.3
"""


@click.command("evaluate", cls=SuggestingCommand, help=HELP, short_help="Patch precision / recall / F1, BYD accuracy.")
@click.argument("out", metavar="OUT.gpkg", type=click.Path(path_type=Path))
@click.argument("truth", metavar="TRUTH.gpkg", type=click.Path(path_type=Path))
@click.option(
    "--layer",
    "layer",
    default=None,
    metavar="NAME",
    help="Patch layer of OUT.gpkg [default: disturbance_patches, else suspected_violations].",
)
@click.option(
    "--truth-layer",
    default=None,
    metavar="NAME",
    help="Truth layer of TRUTH.gpkg [default: truth_patches, else disturbance_patches, "
    "else suspected_violations].",
)
@click.option(
    "--confounder-layer",
    default=None,
    metavar="NAME",
    help="Layer of TRUTH.gpkg with non-disturbance changes (field KIND) "
    "[default: confounders, when present].",
)
@click.option(
    "--min-overlap",
    type=click.FloatRange(0.0, 1.0, min_open=True),
    default=scoring.DEFAULT_MIN_OVERLAP,
    show_default=True,
    help="Match when area(d∩t) / min(area(d), area(t)) reaches this.",
)
@click.option(
    "--min-area",
    type=click.FloatRange(min=0.0),
    default=scoring.DEFAULT_MIN_AREA_HM2,
    show_default=True,
    help="Truth patches below this (hm²) are optional.",
)
@click.option("--json", "as_json", is_flag=True, help="Print only the JSON scores to stdout.")
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    metavar="FILE.json",
    help="Also write the JSON scores to this file.",
)
@click.option("--overwrite", is_flag=True, help="Replace an existing --output file.")
@verbosity_options
@handle_errors
def evaluate(
    out,
    truth,
    layer,
    truth_layer,
    confounder_layer,
    min_overlap,
    min_area,
    as_json,
    output,
    overwrite,
    verbose,
    quiet,
):
    configure_logging(verbose - quiet)
    if output is not None and output.exists() and not overwrite:
        raise OutputExistsError(
            "already exists", path=output, fix="pass --overwrite or choose another --output"
        )
    detections = _read_patches(out, layer, scoring.DETECTION_LAYERS, what="detections")
    truth_frame = _read_patches(truth, truth_layer, scoring.TRUTH_LAYERS, what="truth")
    confounders = _read_confounders(truth, confounder_layer)
    result = scoring.evaluate(
        detections, truth_frame, confounders, min_overlap=min_overlap, min_area_hm2=min_area
    )
    data = result.to_dict()
    text = json.dumps(data, ensure_ascii=False, indent=2)
    if output is not None:
        _write_atomically(output, text + "\n")
    if as_json:
        click.echo(text)
    else:
        _show(result, out, truth)


def _read_patches(path: Path, requested: str | None, preferred: tuple[str, ...], *, what: str):
    from swc_rs.vectors import AREA_CRS, list_layers, read_layer

    layers = list_layers(path)
    name = scoring.choose_layer(layers, preferred, requested)
    if name is None:
        if what == "detections":
            fix = "give the GeoPackage written by `swc-rs detect` first, or name the layer with --layer"
        else:
            fix = (
                "give the truth GeoPackage from `swc-rs sample` or a field-verified output, "
                "or name the layer with --truth-layer"
            )
        raise InputFileError(
            f"has no {what} layer ({' / '.join(preferred)}); layers: {', '.join(layers) or 'none'}",
            path=path,
            fix=fix,
        )
    if requested is None and name == "suspected_violations" and what == "detections":
        log.warning(
            "%s: no disturbance_patches layer; scoring suspected_violations only, so "
            "compliant patches are not counted as detections",
            path,
        )
    frame = read_layer(path, name, to_crs=AREA_CRS, what=what)
    scoring.check_fields(frame, scoring.REQUIRED_FIELDS, what=what, path=path, layer=name)
    return frame


def _read_confounders(path: Path, requested: str | None):
    from swc_rs.vectors import AREA_CRS, list_layers, read_layer

    name = requested
    if name is None:
        if scoring.CONFOUNDER_LAYER not in list_layers(path):
            return None
        name = scoring.CONFOUNDER_LAYER
    frame = read_layer(path, name, to_crs=AREA_CRS, what="confounders")
    scoring.check_fields(frame, ("KIND",), what="confounders", path=path, layer=name)
    return frame


def _write_atomically(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.1%}"


def _show(result: scoring.Evaluation, out: Path, truth: Path) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console()
    summary = Table(title=f"{out} vs {truth}", show_header=True)
    summary.add_column("metric")
    summary.add_column("value", justify="right")
    summary.add_column("detail")
    summary.add_row(
        "precision",
        _pct(result.precision),
        f"{result.detections_matched} of {result.detections} detections matched",
    )
    summary.add_row(
        "recall",
        _pct(result.recall),
        f"{result.truth_required_matched} of {result.truth_required} truth patches "
        f"(+{result.truth_optional_matched} of {result.truth_optional} optional "
        f"< {result.min_area_hm2:g} hm²)",
    )
    summary.add_row(
        "F1", _pct(result.f1), f"match: overlap ≥ {result.min_overlap:g} of the smaller"
    )
    summary.add_row(
        "BYD accuracy",
        _pct(result.byd_accuracy),
        f"{result.byd_correct} of {result.truth_matched} matched truth patches",
    )
    summary.add_row(
        "QTYPE accuracy",
        _pct(result.qtype_accuracy),
        f"{result.qtype_correct} of {result.truth_matched} matched truth patches",
    )
    if result.earea_mae_hm2 is not None:
        rel = (
            "n/a" if result.earea_relative_error is None else f"{result.earea_relative_error:+.1%}"
        )
        summary.add_row(
            "EAREA MAE",
            f"{result.earea_mae_hm2:.4f} hm²",
            f"{result.earea_pairs} overrun pair(s); summed EAREA error {rel}",
        )
    summary.add_row(
        "false alarms",
        str(result.false_alarms),
        ", ".join(f"{k} {v}" for k, v in result.false_alarms_by_confounder.items())
        + (", " if result.false_alarms_by_confounder else "")
        + f"unexplained {result.false_alarms_unexplained}",
    )
    summary.add_row(
        "missed as 非生产建设项目",
        str(result.missed_as_non_project),
        f"{result.non_project_patches} patches typed 非生产建设项目 (not detections)",
    )
    console.print(summary)

    if result.recall_by_byd:
        per_class = Table(title="Recall by truth BYD")
        per_class.add_column("truth BYD")
        per_class.add_column("truth", justify="right")
        per_class.add_column("matched", justify="right")
        per_class.add_column("recall", justify="right")
        for byd, row in result.recall_by_byd.items():
            per_class.add_row(
                byd or "—", str(row["truth"]), str(row["matched"]), _pct(row["recall"])
            )
        console.print(per_class)

    if result.byd_confusion:
        detected = sorted(
            {d for row in result.byd_confusion.values() for d in row}, key=scoring.code_order
        )
        confusion = Table(title="BYD: truth (rows) × detected (columns), matched patches")
        confusion.add_column("truth \\ detected")
        for value in detected:
            confusion.add_column(value or "—", justify="right")
        for t, row in result.byd_confusion.items():
            confusion.add_row(t or "—", *(str(row.get(d, 0)) for d in detected))
        console.print(confusion)
