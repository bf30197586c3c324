"""`swc-rs export`: field files from an output — KML/KMZ, CSV and evidence chips."""

from __future__ import annotations

import logging
from pathlib import Path

import click

from swc_rs.cli.common import SuggestingCommand, configure_logging, handle_errors, verbosity_options

log = logging.getLogger(__name__)

_FILE = click.Path(path_type=Path, dir_okay=False)


@click.command(
    cls=SuggestingCommand,
    epilog="""\b
Examples:
  $ swc-rs export out/demo.gpkg --kmz out/field.kmz --csv out/field.csv
  $ swc-rs export out/demo.gpkg --kml out/field.kml --chips out/chips --overwrite
  $ swc-rs export out/demo.gpkg --csv out/red.csv --colour 红        # the red patches only
"""
)
@click.argument("output", type=click.Path(path_type=Path, dir_okay=False))
@click.option("--kml", "--kmz", "kml", type=_FILE, default=None,
              help="KML (.kml) or KMZ (.kmz, with the chips) of the suspected patches, coloured 红/黄/绿, for 奥维 and other field apps.")
@click.option("--csv", "csv_path", type=_FILE, default=None,
              help="CSV of the suspected patches with JD/WD (lon/lat of a point inside each patch), UTF-8 for Excel.")
@click.option("--chips", "chips_dir", type=click.Path(path_type=Path, file_okay=False), default=None,
              help="Folder for the before/after evidence chips (<QDNM>_before.jpg, <QDNM>_after.jpg; .png with [chips] format = 'png').")
@click.option("--colour", "colours", multiple=True, type=click.Choice(["红", "黄", "绿", "red", "yellow", "green"]),
              help="Only the suspected patches of this risk colour (X_COLOR) and their chips; repeatable. Default: all.")
@click.option("--overwrite", is_flag=True, help="Replace existing files.")
@verbosity_options
@handle_errors
def export(output, kml, csv_path, chips_dir, colours, overwrite, verbose, quiet):
    """Write field files for the suspected patches of OUTPUT (a GeoPackage from detect)."""
    from swc_rs.export.kml import export_field

    configure_logging(verbose - quiet)
    if kml is None and csv_path is None and chips_dir is None:
        raise click.UsageError("nothing to export: give --kml/--kmz, --csv and/or --chips")
    names = {"red": "红", "yellow": "黄", "green": "绿"}
    colours = tuple(dict.fromkeys(names.get(c, c) for c in colours))
    written = export_field(output, kml=kml, csv_path=csv_path, chips_dir=chips_dir, overwrite=overwrite,
                           colours=colours or None)
    if quiet == 0:
        for kind, paths in written.items():
            where = paths[0].parent if kind == "chips" and paths else (paths[0] if paths else "")
            click.echo(f"{kind}: {len(paths)} file(s) → {where}")
