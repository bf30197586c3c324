"""`swc-rs sample`: write a seeded synthetic two-date scene with truth."""

from __future__ import annotations

import logging
import time
from pathlib import Path

import click

from swc_rs.cli.common import SuggestingCommand, configure_logging, handle_errors, verbosity_options
from swc_rs.cli.progress import progress_bar

log = logging.getLogger(__name__)

HELP = """Write a seeded synthetic two-date scene with truth into DIR.

The scene is a Ya'an-like 2 m, 4-band (blue, green, red, nir) pair in EPSG:32648
with the changes real pairs show (phenology, sun angle, gain/offset, a sub-pixel to
1.5 px misregistration, clouds and shadows, harvest and tillage, reservoir
draw-down) and disturbances whose expected desk verdicts cover every BYD class in
each 1024×1024 cell.

\b
Files: before.tif, after.tif, zones.gpkg (zones), projects.gpkg (projects),
sensitive.gpkg (sensitive_areas), truth.gpkg (truth_patches, confounders),
scene.json (seed, shift, gains); for swc-rs erosion dem.tif (10 m, the elevation
the images are shaded with), landuse.gpkg (地类 DLBM) and counties.gpkg.  The
same seed and size give identical rasters.

\b
Examples:
  $ swc-rs sample -o data/sample_tiles --seed 0 --size 1024
  $ swc-rs sample -o /tmp/bench --seed 7 --size 8192 --overwrite
  $ swc-rs sample -o /tmp/other --seed 5 --style random
  $ swc-rs detect /tmp/bench/before.tif /tmp/bench/after.tif \\
        --zones /tmp/bench/zones.gpkg --projects /tmp/bench/projects.gpkg -o /tmp/bench/out.gpkg
"""

_STAGES = {"plan": "generate", "render": "generate", "vectors": "generate"}


@click.command("sample", cls=SuggestingCommand, help=HELP, short_help="Synthetic two-date scene + truth.")
@click.option(
    "-o",
    "--output",
    "out_dir",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    metavar="DIR",
    help="Directory to write the scene into (created if missing).",
)
@click.option(
    "--seed",
    default=0,
    show_default=True,
    type=click.IntRange(min=0),
    help="Seed of the layout, spectra, shift and noise.",
)
@click.option(
    "--size",
    default=1024,
    show_default=True,
    type=click.IntRange(min=256),
    metavar="PX",
    help="Width and height in pixels (2 m); every 1024×1024 cell holds every BYD class.",
)
@click.option(
    "--style",
    default="classic",
    show_default=True,
    type=click.Choice(["classic", "random"]),
    help="classic: the default look. random: spectra, textures, parcel shapes and sizes, "
    "farming calendar, cloud kinds and sensor drawn from wide distributions by the seed "
    "(domain randomisation), to test models on a look they were not trained on.",
)
@click.option("--overwrite", is_flag=True, help="Replace scene files already in DIR.")
@verbosity_options
@handle_errors
def sample(
    out_dir: Path, seed: int, size: int, style: str, overwrite: bool, verbose: int, quiet: int
) -> None:
    configure_logging(verbose - quiet)
    from swc_rs.sample import generate_scene

    start = time.perf_counter()
    with progress_bar(enabled=quiet == 0) as update:
        files = generate_scene(
            out_dir,
            seed=seed,
            size=size,
            overwrite=overwrite,
            style=style,
            progress=lambda done, total, stage: update(_STAGES.get(stage, stage), done, total),
        )
    elapsed = time.perf_counter() - start
    if quiet > 1:
        return
    counts = files.counts
    click.echo(
        f"Wrote a synthetic {size}×{size} scene (seed {seed}, style {style}) to {files.directory} in {elapsed:.1f} s"
    )
    click.echo("  files    " + ", ".join(p.name for p in files.paths()))
    click.echo(
        f"  truth    {sum(counts['BYD'].values())} disturbances, {counts['projects']} projects, "
        f"{counts['sensitive_areas']} sensitive areas"
    )
    for title in ("BYD", "QTYPE", "confounders"):
        parts = [f"{k} {v}" for k, v in sorted(counts[title].items(), key=lambda kv: -kv[1])]
        click.echo(f"  {title:11s} " + (" · ".join(parts) if parts else "none"))
