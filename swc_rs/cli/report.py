"""`swc-rs report`: one self-contained HTML report of a detect output."""

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
"""
)
@click.argument("source", metavar="OUT.gpkg", type=_PATH)
@click.option("-o", "--output", "output", required=True, type=_PATH, help="Report file (.html).")
@click.option("--overwrite", is_flag=True, help="Replace an existing report.")
@verbosity_options
@handle_errors
def report(source, output, overwrite, verbose, quiet):
    """Write a self-contained HTML report of OUT.gpkg (no network needed to view it).

    Totals by zone, colour and BYD; an overview map; the suspected patches ranked
    for inspection by a documented risk score (colour, area, confidence, sensitive
    areas); a card per patch with its outline and before/after chips; the developer
    watch list when present.
    """
    from swc_rs.export.report import write_report

    configure_logging(verbose - quiet)
    path = write_report(source, output, overwrite=overwrite)
    if quiet == 0:
        click.echo(f"Wrote {path} ({path.stat().st_size / 1024:.0f} KiB)")
