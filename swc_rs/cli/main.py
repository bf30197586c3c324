"""The `swc-rs` command group."""

from __future__ import annotations

import click

from swc_rs import __version__
from swc_rs.cli.common import configure_logging, handle_errors, verbosity_options

__all__ = ["cli", "configure_logging", "handle_errors", "verbosity_options"]


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="swc-rs")
def cli() -> None:
    """swc-rs: soil-and-water-conservation remote-sensing supervision.

    Find disturbance patches (扰动图斑) between two dates of imagery, judge them
    against the approved responsibility ranges, and write a GeoPackage for
    supervisors and field teams.
    """


def _register() -> None:
    from swc_rs.cli import (
        batch,
        detect,
        erosion,
        erosion_trend,
        evaluate,
        export,
        report,
        sample,
        train,
        verify,
    )

    for module in (detect, batch, verify, report, export, train, sample, evaluate, erosion, erosion_trend):
        cli.add_command(getattr(module, module.__name__.rsplit(".", 1)[1]))


_register()
