"""`swc-rs batch`: the monthly city-wide job, many tiles in, one consistent month out."""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import click

from swc_rs.cli.common import SuggestingCommand, configure_logging, handle_errors, verbosity_options
from swc_rs.cli.progress import progress_bar

log = logging.getLogger(__name__)


@click.command(
    cls=SuggestingCommand,
    epilog="""\b
Examples:
  $ swc-rs batch pipelines/monthly.toml --period 202611
  $ swc-rs batch pipelines/monthly.toml --period 202611 --resume      # after a crash
  $ swc-rs batch pipelines/monthly.toml --scheduler tcp://10.0.0.5:8786

\b
Outputs (month folders side by side, never overwritten without --overwrite):
  OUTPUT/202611/swc_202611.gpkg          detect's layers + finished_patches (完工)
  OUTPUT/202611/swc_202611.summary.json  tiles done/skipped/failed, patches, timings
  OUTPUT/202611/tiles/<tile>.gpkg        per-tile results (what --resume skips)
Exit codes: 0 done; 2 bad configuration; 4 finished, but some tiles failed.
"""
)
@click.argument("config_path", metavar="CONFIG.toml", type=click.Path(path_type=Path, dir_okay=False))
@click.option("--period", default=None, help="Reporting month YYYYMM (overrides [batch] period).")
@click.option("--scheduler", default=None, metavar="ADDRESS",
              help="Dask distributed scheduler, e.g. tcp://HOST:8786; local worker processes when absent.")
@click.option("--workers", type=click.IntRange(0, 1024), default=None,
              help="Tiles at once on this machine (this process and N-1 spawned ones); 0 = every core. Overrides [batch] workers.")
@click.option("--resume", is_flag=True, help="Skip tiles committed by an interrupted run of the same configuration.")
@click.option("--overwrite", is_flag=True, help="Replace this month's output (with --resume: keep the committed tiles).")
@verbosity_options
@handle_errors
def batch(config_path, period, scheduler, workers, resume, overwrite, verbose, quiet):
    """Run detect over every tile of CONFIG.toml's catalog and assemble the month.

    Tiles run in parallel (local processes, or a Dask cluster with --scheduler); each
    tile's result is committed on its own, so a killed run continues with --resume.
    Patches cut by tile edges are merged, judged again, and get stable ids (QDNM) and
    change types (QDTYPE) against the previous month in the history folder.
    """
    from swc_rs.workers import planned_workers, start_workers

    # The spawned tile workers start first: their imports overlap this process's.
    pool = start_workers(planned_workers(config_path, workers) - 1) if scheduler is None else None
    try:
        from swc_rs.batch import load_batch, run_batch

        configure_logging(verbose - quiet)
        plan = load_batch(config_path, period=period, workers=workers)
        log.info("%s: %d tiles, output %s", plan.period, len(plan.tiles), plan.month_dir)
        with progress_bar(enabled=quiet == 0) as progress:
            summary = run_batch(plan, scheduler=scheduler, resume=resume, overwrite=overwrite, progress=progress,
                                local_pool=pool)
    finally:
        if pool is not None:  # unused (one tile left, a bad configuration) or already shut down
            pool.shutdown(wait=False, cancel_futures=True)
    if quiet == 0:
        _print_summary(summary)
    if summary.exit_code:
        sys.exit(summary.exit_code)


def _print_summary(summary) -> None:
    click.echo(
        f"{summary.period}: {summary.count('done')} tiles done, {summary.count('skipped')} skipped (committed earlier), "
        f"{summary.count('failed')} failed; {summary.timings_s['total']:.1f} s ({summary.executor})"
    )
    for outcome in summary.failed:
        click.echo(f"  failed {outcome.tile_id}: {outcome.error}")
    if summary.month_path:
        p = summary.patches
        colours = " · ".join(f"{k} {v}" for k, v in p["by_colour_suspected"].items()) or "none"
        click.echo(f"Wrote {summary.month_path}")
        click.echo(f"  {p['total']} patches ({p['area_hm2']:.2f} hm²), {p['suspected']} suspected ({colours}), "
                   f"{p['finished']} finished (完工) in finished_patches")
        click.echo("  BYD     " + (" · ".join(f"{k} {v}" for k, v in p["by_BYD"].items()) or "none"))
        click.echo("  QDTYPE  " + (" · ".join(f"{k} {v}" for k, v in p["by_QDTYPE"].items()) or "none"))
    else:
        click.echo("No month output: no tile succeeded.")
    click.echo(f"Summary {summary.summary_path}")


if __name__ == "__main__":  # python -m swc_rs.cli.batch, before the group registers the command
    batch()
