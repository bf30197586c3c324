"""`swc-rs erosion`: DEM, imagery, land use, R and K to soil loss and 水土保持率 per county and zone."""

from __future__ import annotations

from pathlib import Path

import click

from swc_rs.cli.common import SuggestingCommand, configure_logging, handle_errors, verbosity_options
from swc_rs.cli.progress import progress_bar

_PATH = click.Path(path_type=Path, dir_okay=False)


@click.command(
    cls=SuggestingCommand,
    epilog="""\b
Example (R and K per zone from the [erosion] table of the configuration):
  $ swc-rs erosion dem_10m.tif --imagery s2_2026.tif --landuse landuse_2026.gpkg \\
      --zones zones/zones_illustrative.gpkg --counties counties.gpkg \\
      --config pipelines/erosion.toml --year 2026 -o out/erosion.gpkg
\b
Writes out/erosion.gpkg (erosion_counties, erosion_zones, run_info, QGIS styles),
out/erosion_modulus.tif and out/erosion_grade.tif (COGs).
"""
)
@click.argument("dem", type=_PATH)
@click.option("--zones", "zones", required=True, type=_PATH, help="SWC zones (ZONE_CODE, ZONE_NAME); any OGR source and CRS.")
@click.option("--counties", "counties", required=True, type=_PATH, help="Counties (区县) with XZQMC or NAME (and XZQDM); any OGR source and CRS.")
@click.option("-o", "--output", "output", required=True, type=_PATH, help="Output GeoPackage (EPSG:4490); the COGs go beside it.")
@click.option("--imagery", type=_PATH, default=None, help="Multispectral image for NDVI → vegetation cover (any sensor detect reads).")
@click.option("--landuse", type=_PATH, default=None, help="Land use: a vector layer with 地类 codes (DLBM) or an integer raster; without it, land cover from the imagery (said in run_info).")
@click.option("--r", "r_factor", type=_PATH, default=None, help="Rainfall erosivity R raster, MJ·mm/(hm²·h·a); else [erosion] r_zones / r_value.")
@click.option("--k", "k_factor", type=_PATH, default=None, help="Soil erodibility K raster, t·hm²·h/(hm²·MJ·mm); else [erosion] k_zones / k_value.")
@click.option("--measures", type=_PATH, default=None, help="Engineering measures (terraces …) with a MEASURE field, for E.")
@click.option("--year", type=click.IntRange(1900, 2200), default=None,
              help="Monitoring year (e.g. 2026): recorded in run_info and as the YEAR column; `erosion-trend` needs it.")
@click.option("--sensor", type=click.Choice(["auto", "gf", "s2", "landsat", "rgb"]), default="auto", show_default=True, help="Band layout of the imagery.")
@click.option("--bands", "bands", default=None, help="Explicit band roles, e.g. blue=1,green=2,red=3,nir=4.")
@click.option("--config", "config_path", type=_PATH, default=None, help="Configuration with an [erosion] table (pipelines/erosion.toml).")
@click.option("--window-size", type=click.IntRange(64, 16384), default=None, help="Core side of a processing window (px).")
@click.option("--workers", type=click.IntRange(0, 256), default=0, show_default=True, help="Cores for the windows: this process and N − 1 spawned worker processes; 0 = every available core.")
@click.option("--overwrite", is_flag=True, help="Replace existing outputs.")
@verbosity_options
@handle_errors
def erosion(dem, zones, counties, output, imagery, landuse, r_factor, k_factor, measures, year, sensor, bands,
            config_path, window_size, workers, overwrite, verbose, quiet):
    """Soil loss by the CSLE (A = R·K·L·S·B·E·T) and the soil-and-water-conservation
    rate (水土保持率) per county and per zone, graded by SL 190-2007.

    DEM: any GDAL raster and CRS (a geographic one is warped to [erosion] work_crs).
    The rate is the share of the land seen whose modulus is below the tolerable
    500 t/(km²·a); what cloud, shadow or nodata hid is reported as UNSEEN_PCT, and a
    county the inputs cover in part says so in COVER_PCT.
    """
    from swc_rs.erosion import ErosionRequest, load_erosion_config
    from swc_rs.erosion import erosion as run_erosion
    from swc_rs.export.erosion import RasterSink, check_outputs, write_erosion
    from swc_rs.sensors import parse_band_map

    configure_logging(verbose - quiet)
    config = load_erosion_config(config_path, {"window_size": window_size} if window_size else None)
    check_outputs(output, overwrite)  # before any work
    request = ErosionRequest(dem=dem, zones=zones, counties=counties, imagery=imagery, landuse=landuse,
                             r=r_factor, k=k_factor, measures=measures, sensor=sensor,
                             band_map=parse_band_map(bands) if bands else None,
                             year=str(year) if year is not None else "")
    output.parent.mkdir(parents=True, exist_ok=True)
    sink = RasterSink(output)
    try:
        with progress_bar(quiet == 0) as progress:
            result = run_erosion(request, config, sink=sink, progress=lambda d, t: progress("erosion", d, t),
                                 workers=workers)
    except BaseException:
        sink.discard()
        raise
    paths = write_erosion(result, output, sink, overwrite=overwrite)
    if quiet == 0:
        print_erosion_summary(result, paths)


def print_erosion_summary(result, paths) -> None:
    info = result.run_info
    grid = result.grid
    click.echo(f"Wrote {paths['gpkg']}, {paths['modulus'].name}, {paths['grade'].name}")
    click.echo(f"  grid {grid.width}×{grid.height} px at {grid.res[0]:.1f} m; land use: {info['landuse_source']}")
    click.echo(f"  水土保持率 over all counties: {info['swc_rate_all']:.2f} % "
               f"(targets {', '.join(f'{y}: {v} %' for y, v in sorted(info['targets'].items()))})")
    years = sorted(info["targets"])
    header = f"  {'区县':<8}{'土地 hm²':>12}{'覆盖 %':>8}{'未观测 %':>9}{'水土流失 hm²':>13}{'水土保持率 %':>12}" \
             f"{'平均模数':>10}" + "".join(f"{'差距' + y:>9}" for y in years)
    click.echo(header)
    for _, row in result.counties.iterrows():
        rate = "—" if row["SWC_RATE"] is None or row["SWC_RATE"] != row["SWC_RATE"] else f"{row['SWC_RATE']:.2f}"
        mean = "—" if row["MEAN_A"] is None or row["MEAN_A"] != row["MEAN_A"] else f"{row['MEAN_A']:.0f}"
        gaps = "".join("{:>9}".format("—" if row[f"GAP_{y}"] is None or row[f"GAP_{y}"] != row[f"GAP_{y}"]
                                      else f"{row[f'GAP_{y}']:+.2f}") for y in years)
        click.echo(f"  {str(row['XZQMC']):<8}{row['LAND_HM2']:>12.1f}{row['COVER_PCT']:>8.1f}{row['UNSEEN_PCT']:>9.1f}"
                   f"{row['ERODE_HM2']:>13.1f}{rate:>12}{mean:>10}{gaps}")
