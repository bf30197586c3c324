"""The `swc-rs` command group."""

from __future__ import annotations

import json

import click

from swc_rs import __version__
from swc_rs.cli.common import SuggestingGroup, configure_logging, handle_errors, verbosity_options

__all__ = ["cli", "configure_logging", "handle_errors", "verbosity_options"]


def version_text() -> str:
    """``swc-rs --version``: the package version and the shipped models' ids.

    The ids are the ones ``run_info`` records (``change_model_id``, the typer's
    ``model_id``): the change networks by family and the first 12 hex digits of their
    SHA-256 (from their ``.json`` cards, checked against the files), the patch typer by
    the id on its card.
    """
    from swc_rs.change.learned import SHIPPED, _sha256
    from swc_rs.config import ChangeConfig
    from swc_rs.model import card_hint, default_model_path

    lines = [f"swc-rs {__version__}", "shipped models:"]
    enabled = set(ChangeConfig().networks.split())
    for family, path in SHIPPED.items():
        try:
            card = json.loads(path.with_suffix(".json").read_text(encoding="utf-8"))
            digest = str(card["onnx_sha256"])
        except (OSError, ValueError, KeyError):
            lines.append(f"  change network {family}: missing ({path.name} or its card cannot be read)")
            continue
        low, high = card.get("res_m", ("?", "?"))
        state = "on by default" if family in enabled else "off by default, [change] networks"
        check = "" if path.is_file() and _sha256(path) == digest else "; THE FILE DIFFERS FROM ITS CARD, it will be refused"
        lines.append(f"  change network {family}-{digest[:12]} ({', '.join(card.get('roles', []))}; "
                     f"{low}–{high} m; {state}{check})")
    typer = default_model_path()
    card = card_hint(typer) if typer else None
    if card and card.get("model_id"):
        lines.append(f"  patch typer (QTYPE) {card['model_id']} (created {card.get('created', '?')}, "
                     f"sha256 {str(card.get('sha256', ''))[:12]}; {typer.name})")
    else:
        lines.append("  patch typer (QTYPE): none shipped (the documented rules type the patches)")
    return "\n".join(lines)


def _print_version(ctx: click.Context, _param: click.Parameter, value: bool) -> None:
    if not value or ctx.resilient_parsing:
        return
    click.echo(version_text())
    ctx.exit()


@click.group(
    cls=SuggestingGroup,
    context_settings={"help_option_names": ["-h", "--help"]},
    epilog="""\b
Example (the sample scene; `swc-rs COMMAND --help` shows each command's):
  $ swc-rs sample -o out/sample --seed 0
  $ swc-rs detect out/sample/before.tif out/sample/after.tif \\
      --zones out/sample/zones.gpkg --projects out/sample/projects.gpkg -o out/sample.gpkg
  $ swc-rs report out/sample.gpkg -o out/sample.html
\b
Exit codes: 0 done; 1 unexpected failure (a bug: run again with -v); 2 bad usage
or input (one message: file, problem, fix; nothing written); 3 suspected violations
found (detect --fail-on-violations); 4 batch finished but some tiles failed.
""",
)
@click.option("--version", is_flag=True, expose_value=False, is_eager=True, callback=_print_version,
              help="Show the version and the shipped models' ids, then exit.")
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
