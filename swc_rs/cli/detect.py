"""`swc-rs detect`: two dates of imagery to the field-verification GeoPackage."""

from __future__ import annotations

import logging
from pathlib import Path

import click

from swc_rs.cli.common import SuggestingCommand, configure_logging, handle_errors, verbosity_options
from swc_rs.cli.progress import progress_bar
from swc_rs.cli.summary import print_detect_summary

log = logging.getLogger(__name__)

_PATH = click.Path(path_type=Path, dir_okay=False)


@click.command(
    cls=SuggestingCommand,
    epilog="""\b
Example:
  $ swc-rs detect data/sample_tiles/before.tif data/sample_tiles/after.tif \\
      --zones data/sample_tiles/zones.gpkg --projects data/sample_tiles/projects.gpkg \\
      --sensitive data/sample_tiles/sensitive.gpkg -o out/demo.gpkg
"""
)
@click.argument("before", type=_PATH)
@click.argument("after", type=_PATH)
@click.option("--zones", "zones", required=True, type=_PATH, help="SWC zones (ZONE_CODE Z1..Z5, ZONE_NAME); any OGR source and CRS.")
@click.option("--projects", "projects", required=True, type=_PATH, help="Approved responsibility ranges (PRNM, DPOZ, PRTYPE, SADT, DAREA ...).")
@click.option("-o", "--output", "output", required=True, type=_PATH, help="Output GeoPackage (EPSG:4490).")
@click.option("--sensitive", "sensitive", multiple=True, type=_PATH, help="Sensitive areas (red line, national park, water source); repeatable.")
@click.option("--landuse", "landuse", type=_PATH, default=None, help="Land survey layer (三调 DLTB: DLMC or DLBM; any CRS): unsure patches on farmland are typed 非生产建设项目, suspected violations on forest land red ([landuse] in the config).")
@click.option("--sensor", type=click.Choice(["auto", "gf", "s2", "landsat", "rgb"]), default="auto", show_default=True, help="Band layout; auto reads band descriptions.")
@click.option("--bands", "bands", default=None, help="Explicit band roles, e.g. blue=1,green=2,red=3,nir=4.")
@click.option("--config", "config_path", type=_PATH, default=None, help="Run configuration (pipelines/*.toml).")
@click.option("--model", "model", type=_PATH, default=None, help="Patch classifier (skops file); rules when absent.")
@click.option("--change-model", "change_model", type=_PATH, default=None, help="Learned change detector (ONNX with its .json card); default: the shipped network that fits the bands and pixel size, else the rules.")
@click.option("--rules", "rules", is_flag=True, help="Use the documented rules instead of the learned models: rule change detection and rule QTYPE.")
@click.option("--previous", "previous", type=_PATH, default=None, help="Last period's output: patches keep their QDNM and get QDTYPE against it.")
@click.option("--history", "history", default=None, metavar="STORE", help="History store (HISTORY.gpkg, created if absent, or a postgresql:// URL): field verdicts applied, confirmed violations carried until 销号, QDTYPE against its last period; this run is registered with it.")
@click.option("--period", default=None, help="Reporting period YYYYMM for patch ids (default: AFTER's date).")
@click.option("--window-size", type=click.IntRange(128, 16384), default=None, help="Processing window side in pixels (memory).")
@click.option("--workers", type=click.IntRange(0, 256), default=0, show_default=True, help="Cores for the windows: this process and N − 1 spawned worker processes; 0 = every available core.")
@click.option("--overwrite", is_flag=True, help="Replace an existing output.")
@click.option("--fail-on-violations", is_flag=True, help="Exit 3 when suspected violations are found.")
@verbosity_options
@handle_errors
def detect(before, after, zones, projects, output, sensitive, landuse, sensor, bands, config_path, model, change_model, rules, previous, history, period, window_size, workers, overwrite, fail_on_violations, verbose, quiet):
    """Find disturbance patches between BEFORE and AFTER and judge their compliance.

    AFTER is aligned onto BEFORE's grid over their common extent. The output holds
    disturbance_patches, suspected_violations (the field list), projects, zones and
    run_info.
    """

    from swc_rs.config import load_config

    configure_logging(verbose - quiet)
    overrides: dict = {"raster": {}, "compliance": {}}
    if window_size:
        overrides["raster"]["window_size"] = window_size
    if period:
        overrides["compliance"]["period"] = period
    config = load_config(config_path, overrides)
    refused = output.exists() and not overwrite  # said below, before any work
    executor = None if refused else _early_workers(before, config.raster.window_size, workers)
    try:
        request = _request(before, after, zones, projects, sensitive, sensor, bands, config, model, rules, previous,
                           history, workers, change_model, landuse)
        calibration = None
        if executor is not None:
            # The calibration starts in the worker as soon as it has its imports, while
            # this process imports the rest (and checks the output name).
            from swc_rs.windows import _worker_calibrate

            calibration = executor.submit(_worker_calibrate, request)
        _detect(request, output, overwrite, fail_on_violations, quiet, executor, calibration)
    finally:
        if executor is not None:
            executor.shutdown(wait=True, cancel_futures=True)


def _early_workers(before: Path, window_size: int, workers: int):
    """detect's spawned window workers, started before this process imports the rest, so
    that their start-up (~1.2 s of imports) runs beside it on the other cores. None when
    one core does the run or BEFORE is a single window (then nothing is started: a worker
    would only cost its start-up); also when BEFORE cannot be read here (detect says why)."""
    import warnings

    from swc_rs.workers import available_cores, start_workers

    cores = workers or available_cores()
    if cores <= 1:
        return None
    try:
        import rasterio

        with warnings.catch_warnings(), rasterio.open(before) as ds:
            warnings.simplefilter("ignore")
            windows = -(-ds.width // window_size) * -(-ds.height // window_size)
    except Exception:  # noqa: BLE001 - only a probe; detect reports unreadable inputs
        return None
    if windows < 2:
        return None
    return start_workers(min(cores, windows) - 1, module="swc_rs.windows")


def _request(before, after, zones, projects, sensitive, sensor, bands, config, model, rules, previous, history,
             workers, change_model=None, landuse=None):
    from swc_rs.sensors import parse_band_map
    from swc_rs.verification import store_location
    from swc_rs.windows import DetectRequest

    history = store_location(history) if history is not None else None

    if change_model is not None and not rules:  # refused before any work when damaged or unknown
        from swc_rs.change.learned import read_card

        read_card(change_model)

    return DetectRequest(
        before=before, after=after, zones=zones, projects=projects, sensitive=tuple(sensitive),
        sensor=sensor, band_map=parse_band_map(bands) if bands else None, config=config,
        model=None if rules else (model or _default_model()), workers=workers, previous=previous, history=history,
        change_model="rules" if rules else str(change_model or "auto"), landuse=landuse,
    )


def _detect(request, output, overwrite, fail_on_violations, quiet, executor, calibration) -> None:
    import sys

    from swc_rs.export.gpkg import check_output, write_result
    from swc_rs.pipeline import detect as run_detect

    history = request.history
    check_output(output, overwrite)
    if isinstance(history, Path) and history.resolve() == output.resolve():
        from swc_rs.errors import InputError

        raise InputError("the output and the history store are the same file", path=output,
                         fix="write the output to its own file; the store is only given with --history")
    with progress_bar(enabled=quiet == 0) as progress:
        result = run_detect(request, progress=progress, executor=executor, calibration=calibration)
    write_result(result, output, overwrite=overwrite, executor=executor)  # the window workers make chips too
    result.release_crops()  # the chips are written
    if history is not None:
        from swc_rs.verification import register_run

        register_run(history, result, output)
    if quiet == 0:
        print_detect_summary(result, output)
    if fail_on_violations and len(result.violations):
        sys.exit(3)


def _default_model() -> Path | None:
    from swc_rs.model import default_model_path

    return default_model_path()
