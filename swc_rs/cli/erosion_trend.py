"""`swc-rs erosion-trend`: the 水土保持率 per county and zone over several years' erosion outputs."""

from __future__ import annotations

import math
from pathlib import Path

import click

from swc_rs.cli.common import SuggestingCommand, configure_logging, handle_errors, verbosity_options

_PATH = click.Path(path_type=Path, dir_okay=False)


@click.command(
    "erosion-trend",
    cls=SuggestingCommand,
    epilog="""\b
Example (one erosion run per monitoring year, each with --year):
  $ swc-rs erosion dem.tif --imagery s2_2024.tif --landuse lu_2024.gpkg --zones zones.gpkg \
      --counties counties.gpkg --config pipelines/erosion.toml --year 2024 -o out/e2024.gpkg
  $ swc-rs erosion dem.tif --imagery s2_2026.tif --landuse lu_2026.gpkg --zones zones.gpkg \
      --counties counties.gpkg --config pipelines/erosion.toml --year 2026 -o out/e2026.gpkg
  $ swc-rs erosion-trend out/trend.gpkg out/e2024.gpkg out/e2026.gpkg
  $ swc-rs report --erosion out/trend.gpkg -o out/erosion_report.html
\b
Writes out/trend.gpkg: trend_counties and trend_zones (the latest outline, the slope
in percentage points per year, the year each target would be reached at that slope),
trend_counties_by_year and trend_zones_by_year (rate, change, gaps per year), run_info.
""",
)
@click.argument("output", metavar="OUT.gpkg", type=_PATH)
@click.argument("years", metavar="YEAR.gpkg...", nargs=-1, required=True, type=_PATH)
@click.option("--config", "config_path", type=_PATH, default=None,
              help="Configuration with an [erosion] table; its targets (default 2025: 73.46, 2035: 75.25) are used.")
@click.option("--overwrite", is_flag=True, help="Replace an existing output.")
@verbosity_options
@handle_errors
def erosion_trend(output, years, config_path, overwrite, verbose, quiet):
    """The soil-and-water-conservation rate (水土保持率) per county and zone over the
    years: the rate of each year, its change against the previous year given, the gap
    to the targets, the linear trend (percentage points per year, least squares) and
    the year each target would be reached at that trend (or 达不到: not on track).

    YEAR.gpkg: the outputs of `swc-rs erosion --year YYYY`, one per year, in any order.
    """
    from swc_rs.erosion import load_erosion_config
    from swc_rs.erosion.trend import compute_trend, read_years, write_trend
    from swc_rs.errors import InputError
    from swc_rs.export.gpkg import check_output

    configure_logging(verbose - quiet)
    config = load_erosion_config(config_path)
    check_output(output, overwrite)  # before any work
    if any(Path(p).resolve() == Path(output).resolve() for p in years):
        raise InputError("the output is also given as an input year", fix="write the trend to a new OUT.gpkg")
    outputs = read_years(years)
    if len(outputs) < 2:
        raise InputError(f"a trend needs two or more years; only {outputs[0].year} ({outputs[0].path}) was given",
                         fix="give the erosion outputs of two or more monitoring years")
    trend = compute_trend(outputs, config.targets)
    path = write_trend(trend, output, overwrite=overwrite)
    if quiet == 0:
        print_trend(trend, path)


def _f(value, spec: str, empty: str = "—") -> str:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return empty
    return empty if math.isnan(number) else format(number, spec)


def print_trend(trend, path) -> None:
    labels = sorted(trend.targets)
    final = labels[-1]
    click.echo(f"Wrote {path}: {len(trend.years)} years ({', '.join(map(str, trend.years))}); targets "
               + ", ".join(f"{y}: {trend.targets[y]} %" for y in labels))
    for kind, name in (("counties", "XZQMC"), ("zones", "ZONE_CODE")):
        summary = trend.counties if kind == "counties" else trend.zones
        click.echo(f"  {'区县' if kind == 'counties' else '分区':<8}" + "".join(f"{y:>9}" for y in trend.years)
                   + f"{'pp/年':>8}{'达标年' + final:>12}  {'趋势'}")
        by_year = trend.counties_by_year if kind == "counties" else trend.zones_by_year
        key = "XZQDM" if kind == "counties" and "XZQDM" in summary.columns else name
        for _, row in summary.iterrows():
            rates = by_year[by_year[key] == row[key]].set_index("YEAR")["SWC_RATE"]
            cells = "".join(f"{_f(rates.get(y), '.2f'):>9}" for y in trend.years)
            reach = row[f"REACH_{final}"]
            click.echo(f"  {str(row[name]):<8}{cells}{_f(row['SLOPE_PP_YR'], '+.2f'):>8}"
                       f"{_f(reach, '.0f'):>12}  {row['X_TREND']}")
