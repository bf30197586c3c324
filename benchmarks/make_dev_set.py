"""The whole development set of ``make eval-dev``, from training material only.

Writes into TARGET (default ``.cache/dev``):

* ``variants/``  :mod:`make_dev_variants` of the labelled training cities (RGB 8-bit,
                 VNIR, 30 m stretched, 30 m raw DN);
* ``dense/``     :mod:`make_dense_dev` crops (change-dense, fine-pixel RGB) of the cities
                 and of generated scene seed 1000 (``scene_1000/``, made here if missing);
* ``all/``       one folder of links to the four Sentinel-2 cities as delivered and to
                 every pair above, without a manifest, for ``eval_real.py --data``.

Nothing here reads ``../shared/eval/real``: that is the test set. An existing TARGET
is rebuilt from scratch (the source pairs are small; ~20 s).

Usage::

    $ python benchmarks/make_dev_set.py ../shared/train/real .cache/dev
    $ python benchmarks/eval_real.py --data .cache/dev/all
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
GENERATED_SEED = 1000  # seeds 0-99 are reserved for tests and evaluation

sys.path.insert(0, str(HERE))
from eval_real import list_pairs  # noqa: E402  (its sibling in benchmarks/)


def _pairs(folder: Path) -> list[Path]:
    return [folder / name for name in list_pairs(folder)]


def build(source: Path, target: Path, *, scene_size: int = 1024) -> list[Path]:
    """Build the set; returns the pair folders linked under ``target / "all"``.

    ``scene_size``: side of the generated scene (px); its dense crops are 512 px.
    """
    scene = target / f"scene_{GENERATED_SEED}"
    if not (scene / "truth.gpkg").exists():
        scene.mkdir(parents=True, exist_ok=True)
        swc_rs = Path(sys.executable).parent / "swc-rs"  # the console script of this environment
        subprocess.run([str(swc_rs), "sample", "-o", str(scene), "--seed", str(GENERATED_SEED), "--size", str(scene_size),
                        "--overwrite"],
                       check=True, stdout=subprocess.DEVNULL)
    for name in ("variants", "dense", "all"):
        shutil.rmtree(target / name, ignore_errors=True)
    subprocess.run([sys.executable, str(HERE / "make_dev_variants.py"), str(source), str(target / "variants")],
                   check=True, stdout=subprocess.DEVNULL)
    subprocess.run([sys.executable, str(HERE / "make_dense_dev.py"), str(source), str(target / "dense"), "--scene", str(scene)],
                   check=True, stdout=subprocess.DEVNULL)
    every = target / "all"
    every.mkdir(parents=True)
    linked = []
    for pair in _pairs(source) + _pairs(target / "variants") + _pairs(target / "dense"):
        link = every / pair.name
        link.symlink_to(pair.resolve(), target_is_directory=True)
        linked.append(link)
    return linked


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("source", type=Path, nargs="?", default=REPO / ".." / "shared" / "train" / "real",
                        help="labelled training pairs (default: ../shared/train/real)")
    parser.add_argument("target", type=Path, nargs="?", default=REPO / ".cache" / "dev", help="output folder (default: .cache/dev)")
    args = parser.parse_args(argv)
    if not args.source.is_dir() or not _pairs(args.source):
        problem = "folder not found" if not args.source.is_dir() else "no labelled pair (<pair>/before.tif, after.tif, label.tif)"
        print(f"error: {args.source}: {problem}; give the labelled training cities (../shared/train/real)", file=sys.stderr)
        return 2
    linked = build(args.source, args.target)
    print(f"{len(linked)} development pairs in {args.target / 'all'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
