"""Accuracy of `swc-rs detect` on generated scenes: one row per seed, then the mean.

    $ .venv/bin/python benchmarks/eval_generated.py --seeds 51 52 53 [--size 1024] [--rules]
    $ .venv/bin/python benchmarks/eval_generated.py --seeds 51 52 53 --style random

`--style random` draws each seed's look (spectra, textures, parcels, farming calendar,
clouds, sensor) from wide distributions (`swc-rs sample --style random`): a look no
model was trained on. The `farming` column counts detections (not typed 非生产建设项目)
whose false alarm lies on a harvested, tilled or sown parcel: what must stay 0.

Scenes are generated once into .cache/scenes/ (ignored by git). Each seed runs the
real CLI (`swc-rs detect`, then `swc-rs evaluate --json`), so what is measured is
what users run. Seeds 0–99 are for evaluation; training uses other seeds.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


FARMING = ("tillage", "harvest", "sowing")


def scene(seed: int, size: int, cache: Path, style: str = "classic") -> Path:
    folder = cache / (f"seed{seed}_{size}" + ("" if style == "classic" else f"_{style}"))
    if not (folder / "truth.gpkg").exists():
        subprocess.run([str(BIN / "swc-rs"), "sample", "-o", str(folder), "--seed", str(seed), "--size", str(size), "-q", "-q",
                        "--overwrite", "--style", style], check=True)
    return folder


def run(seed: int, size: int, cache: Path, extra: list[str], style: str = "classic", tag: str = "") -> dict:
    folder = scene(seed, size, cache, style)
    out = folder / (f"out_{tag}.gpkg" if tag else "out_rules.gpkg" if "--rules" in extra else "out.gpkg")
    subprocess.run(
        [str(BIN / "swc-rs"), "detect", str(folder / "before.tif"), str(folder / "after.tif"),
         "--zones", str(folder / "zones.gpkg"), "--projects", str(folder / "projects.gpkg"),
         "--sensitive", str(folder / "sensitive.gpkg"), "-o", str(out), "--overwrite", "-q", *extra],
        check=True,
    )
    result = subprocess.run([str(BIN / "swc-rs"), "evaluate", str(out), str(folder / "truth.gpkg"), "--json", "-q"],
                            check=True, capture_output=True, text=True)
    d = json.loads(result.stdout)
    d["farming"] = sum(d["false_alarms_by_confounder"].get(k, 0) for k in FARMING)
    return d


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, nargs="+", default=[51, 52, 53])
    parser.add_argument("--size", type=int, default=1024)
    parser.add_argument("--cache", type=Path, default=ROOT / ".cache" / "scenes")
    parser.add_argument("--rules", action="store_true", help="rule-based QTYPE instead of the shipped model")
    parser.add_argument("--model", type=Path, default=None, help="this model file instead of the shipped one")
    parser.add_argument("--style", choices=["classic", "random"], default="classic", help="the scenes' look (swc-rs sample --style)")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)
    extra = ["--rules"] if args.rules else (["--model", str(args.model)] if args.model else [])
    keys = ("precision", "recall", "f1", "byd_accuracy", "qtype_accuracy", "earea_mae_hm2")
    rows = {}
    tag = args.model.stem if args.model else ""
    print(f"{'seed':>6} " + " ".join(f"{k:>15}" for k in keys) + f" {'truth':>6} {'false':>6} {'farming':>7}")
    for seed in args.seeds:
        d = run(seed, args.size, args.cache, extra, args.style, tag)
        rows[seed] = d
        print(f"{seed:>6} " + " ".join(f"{(d[k] if d[k] is not None else float('nan')):>15.3f}" for k in keys)
              + f" {d['truth']:>6} {d['false_alarms']:>6} {d['farming']:>7}")
    means = {k: statistics.mean(r[k] for r in rows.values() if r[k] is not None) for k in keys if any(r[k] is not None for r in rows.values())}
    print(f"{'mean':>6} " + " ".join(f"{means.get(k, float('nan')):>15.3f}" for k in keys))
    if args.json:
        args.json.write_text(json.dumps({"seeds": rows, "mean": means}, ensure_ascii=False, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
