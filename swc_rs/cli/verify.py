"""`swc-rs verify import`: field-verification results into the history store."""

from __future__ import annotations

from pathlib import Path

import click

from swc_rs.cli.common import SuggestingGroup, configure_logging, handle_errors, verbosity_options

_PATH = click.Path(path_type=Path, dir_okay=False)


@click.group(
    cls=SuggestingGroup,
    epilog="""\b
Example (the field team's edited copy of suspected_violations back into the store):
  $ swc-rs verify import field/202611_checked.gpkg --store history.gpkg --output out/202611.gpkg
""",
)
def verify() -> None:
    """Field verification (现场复核): bring field results back into the history store."""


@verify.command(
    "import",
    epilog="""\b
Example:
  $ swc-rs verify import field/202611_checked.gpkg --store history.gpkg --output out/202611.gpkg
""",
)
@click.argument("field_file", metavar="FIELD", type=_PATH)
@click.option("--store", "store", required=True, metavar="STORE",
              help="History store: a GeoPackage (HISTORY.gpkg, created when absent) or a PostgreSQL/PostGIS database "
                   "postgresql://user@host/db (tables made on first use; password from PGPASSWORD or ~/.pgpass).")
@click.option("--output", "outputs", multiple=True, type=_PATH,
              help="Detect output (OUT.gpkg) the field file was copied from, registered with the store first; repeatable. "
                   "Not needed when the run was made with detect --history.")
@click.option("--layer", default=None, help="Layer of FIELD (default: suspected_violations, or the only layer).")
@click.option("--watch-at", type=click.IntRange(1), default=1, show_default=True,
              help="Confirmed violations that put a developer (DPOZ) on the 重点关注名单.")
@click.option("--blacklist-at", type=click.IntRange(1), default=3, show_default=True,
              help="Confirmed violations that put a developer on the 黑名单.")
@click.option("--no-sensitive-blacklist", is_flag=True,
              help="Do not blacklist a developer for a single confirmed violation inside a sensitive area.")
@verbosity_options
@handle_errors
def import_(field_file, store, outputs, layer, watch_at, blacklist_at, no_sensitive_blacklist, verbose, quiet):
    """Validate FIELD and append its verdicts to the store's audit trail.

    FIELD is a copy of an output's suspected_violations layer edited in the field:
    RST (已复核 / 无法核实; 未复核 rows are ignored), BYD without 疑似 or 合规, QTYPE
    (非生产建设项目 with X_REASON for a false alarm), QDCS, NOTE, ZPBH, X_CLOSE (销号),
    XCFHR and DATE. Any value outside DOMAIN.md or unknown QDNM is reported (by QDNM
    and field) and nothing from the file is recorded (exit 2). Importing the same file
    again adds nothing.
    """
    from swc_rs.verification import WatchListConfig, import_field_results

    configure_logging(verbose - quiet)
    watch = WatchListConfig(watch_at=watch_at, blacklist_at=blacklist_at, blacklist_sensitive=not no_sensitive_blacklist)
    summary = import_field_results(field_file, store, outputs=outputs, layer=layer, watch=watch)
    if quiet:
        return
    click.echo(f"{'Updated' if summary.written else 'Unchanged'} {summary.store}")
    click.echo(f"  {summary.rows} rows in {summary.source}: {summary.checked} checked, {summary.ignored} ignored (未复核 or untouched)")
    click.echo(f"  {summary.new_records} new verification records, {summary.duplicate_records} already recorded")
    if summary.registered_patches:
        click.echo(f"  {summary.registered_patches} patches registered from {', '.join(map(str, outputs))}")
    flagged = summary.developers[summary.developers["FLAG"] != ""] if len(summary.developers) else summary.developers
    if len(flagged):
        click.echo("  developers: " + " · ".join(f"{r.DPOZ} {r.FLAG} ({r.N_CONFIRMED})" for r in flagged.itertuples()))
