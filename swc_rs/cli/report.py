"""`swc-rs report`: one self-contained HTML report of a detect output (and of erosion outputs)."""

from __future__ import annotations

from pathlib import Path

import click

from swc_rs.cli.common import SuggestingCommand, configure_logging, handle_errors, verbosity_options

_PATH = click.Path(path_type=Path, dir_okay=False)


@click.command(
    cls=SuggestingCommand,
    epilog="""\b
Example:
  $ swc-rs report out/demo.gpkg -o out/demo_report.html
  $ swc-rs report out/demo.gpkg --erosion out/trend.gpkg -o out/report.html
  $ swc-rs report --erosion out/e2024.gpkg --erosion out/e2026.gpkg -o out/erosion.html
"""
)
@click.argument("source", metavar="[OUT.gpkg]", type=_PATH, required=False)
@click.option("-o", "--output", "output", required=True, type=_PATH, help="Report file (.html).")
@click.option("--erosion", "erosion", type=_PATH, multiple=True,
              help="Add the erosion section: an `erosion-trend` output, or `erosion --year` outputs (repeat, one per year).")
@click.option("--config", "config_path", type=_PATH, default=None,
              help="Configuration with an [erosion] table: the targets the erosion outputs are judged by.")
@click.option("--overwrite", is_flag=True, help="Replace an existing report.")
@verbosity_options
@handle_errors
def report(source, output, erosion, config_path, overwrite, verbose, quiet):
    """Write a self-contained HTML report of OUT.gpkg (no network needed to view it).

    Totals by zone, colour and BYD; an overview map; the suspected patches ranked
    for inspection by a documented risk score (colour, area, confidence, sensitive
    areas); a card per patch with its outline and before/after chips; the developer
    watch list when present.

    With --erosion: the soil-and-water-conservation rate (水土保持率) per county and
    zone against the targets (bar chart, map, trend chart and tables); OUT.gpkg may
    then be left out for a report of the erosion section alone.
    """
    from swc_rs.erosion import load_erosion_config
    from swc_rs.errors import InputError
    from swc_rs.export.report import write_report

    configure_logging(verbose - quiet)
    if source is None and not erosion:
        raise InputError("nothing to report", fix="give the OUT.gpkg of swc-rs detect, and/or --erosion FILE")
    targets = load_erosion_config(config_path).targets if erosion else None
    path = write_report(source, output, overwrite=overwrite, erosion=erosion, targets=targets)
    if quiet == 0:
        click.echo(f"Wrote {path} ({path.stat().st_size / 1024:.0f} KiB)")
