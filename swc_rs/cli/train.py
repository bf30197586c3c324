"""`swc-rs train`: fit a disturbance model from labelled scenes and field verdicts."""

from __future__ import annotations

import logging
from pathlib import Path

import click

from swc_rs.cli.common import SuggestingCommand, configure_logging, handle_errors, verbosity_options

log = logging.getLogger(__name__)


@click.command(
    cls=SuggestingCommand,
    epilog="""\b
Examples:
  $ swc-rs sample -o out/scene_1000 --seed 1000 && swc-rs sample -o out/scene_1001 --seed 1001
  $ swc-rs train out/scene_1000 out/scene_1001/truth.gpkg -o models/my_model.skops
  $ swc-rs train out/verified_2026_11.gpkg --real ../shared/train/real/oscd_paris \\
      -o models/ya_an_2026_11.skops --overwrite
"""
)
@click.argument("labels", nargs=-1, type=click.Path(path_type=Path, exists=True))
@click.option("-o", "--output", "output", required=True, type=click.Path(path_type=Path, dir_okay=False),
              help="Model file to write (skops); a model card MODEL.md is written next to it.")
@click.option("--real", "real", multiple=True, type=click.Path(path_type=Path, exists=True, file_okay=False),
              help="Labelled real pair folder (before.tif, after.tif, label.tif); repeatable.")
@click.option("--config", "config_path", type=click.Path(path_type=Path, dir_okay=False), default=None,
              help="Run configuration (pipelines/*.toml) the model will be used with.")
@click.option("--no-cv", "no_cv", is_flag=True, help="Skip the leave-one-group-out threshold choice (threshold 0.5).")
@click.option("--no-patch-model", "no_patch_model", is_flag=True, help="Only the pixel model; QTYPE by the rules.")
@click.option("--seed", type=int, default=0, show_default=True, help="Random seed of sampling and fitting.")
@click.option("--overwrite", is_flag=True, help="Replace an existing model file.")
@verbosity_options
@handle_errors
def train(labels, output, real, config_path, no_cv, no_patch_model, seed, overwrite, verbose, quiet):
    """Train a disturbance model from LABELS and write it with its model card.

    LABELS are generated scenes (a folder with truth.gpkg next to before.tif and
    after.tif, or the truth.gpkg itself), field-verified `swc-rs detect` outputs
    (patches with RST 已复核; false alarms re-typed 非生产建设项目; the imagery paths are
    read from their run_info layer), or labelled pair folders (label.tif).
    """
    from swc_rs.config import load_config
    from swc_rs.errors import InputError, OutputExistsError
    from swc_rs.model import save_model
    from swc_rs.training import TrainOptions, label_source, real_source, write_card
    from swc_rs.training import train as run_train

    configure_logging(verbose - quiet)
    card_path = output.with_suffix(".md")
    for path in (output, card_path):
        if path.exists() and not overwrite:
            raise OutputExistsError("already exists", path=path, fix="pass --overwrite to replace it, or choose another -o")
    sources = [label_source(p) for p in labels] + [real_source(p) for p in real]
    if not sources:
        raise InputError("no training labels were given", fix="give LABELS (scene folders, truth.gpkg, verified outputs) or --real DIR")
    names = [s.name for s in sources]
    if len(set(names)) != len(names):  # two scene folders of the same name: make them distinct
        for i, s in enumerate(sources):
            s.name = f"{s.name}_{i}"
            s.group = s.name
    options = TrainOptions(seed=seed, patch_model=not no_patch_model, config=load_config(config_path, {}))
    bundle, card = run_train(sources, options, progress=lambda message: log.info("%s", message), cross_validate=not no_cv)
    save_model(bundle, card, output)
    from swc_rs.model import load_bundle

    _, saved_card = load_bundle(output)
    write_card(saved_card, card_path)
    if quiet == 0:
        click.echo(f"Wrote {output} ({output.stat().st_size / 1e6:.2f} MB, {bundle['model_id']}) and {card_path}")
