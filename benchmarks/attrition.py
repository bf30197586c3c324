"""Stage attrition of labelled change through swc-rs detect (development pairs only).

For every pair of ``--data`` (same layout as ``eval_real.py``) this replays detect's
stages on the whole pair as one window and reports the share of labelled change pixels
(label 1, exact pixels, no tolerance) lost at each stage:

* mask      cloud/shadow (and, for reflectance, water) exclusion
* evidence  not flagged by the change rule (magnitude below the scene threshold, greening ...; with
            ``[change] hysteresis``, the regions grown from its seeds)
* opening   removed by the morphological opening
* min_area  removed with components below the eval's 3×3-pixel floor (closing/filling may add)
* qtype     in a patch typed 非生产建设项目 by detect (run as a subprocess, as eval_real does)

plus the recall/precision left after every stage and CVA's for comparison.

Usage::

    $ python benchmarks/attrition.py --data /tmp/dense_dev
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

import eval_real  # noqa: E402

from swc_rs import change as ch  # noqa: E402
from swc_rs.baselines import cva_change  # noqa: E402
from swc_rs.config import load_config  # noqa: E402
from swc_rs.pipeline import _calibrate  # noqa: E402
from swc_rs.raster import RasterPair  # noqa: E402
from swc_rs.windows import _seeded  # noqa: E402


def product_masks(pair: eval_real.Pair, change: dict[str, str] | None) -> tuple[np.ndarray, np.ndarray]:
    """(all patches, patches not typed 非生产建设项目) of detect on the pair, rasterised."""
    import subprocess

    import geopandas as gpd
    from rasterio import features

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        zones, projects = eval_real.write_product_inputs(pair, folder)
        config = eval_real.write_product_config(pair, folder, change)
        out = folder / "out.gpkg"
        subprocess.run([*eval_real._swc_rs_command(), "detect", str(pair.before_path), str(pair.after_path),
                        "--zones", str(zones), "--projects", str(projects), "-o", str(out), "--sensor", "auto",
                        "--config", str(config), "-q"], check=True, capture_output=True)
        patches = gpd.read_file(out, layer="disturbance_patches").to_crs(pair.crs)

    def burn(frame):
        if frame.empty:
            return np.zeros(pair.label.shape, bool)
        return features.rasterize(((g, 1) for g in frame.geometry), out_shape=pair.label.shape,
                                  transform=pair.transform, fill=0, dtype="uint8").astype(bool)

    return burn(patches), burn(patches[patches["QTYPE"].astype(str) != eval_real.NON_PROJECT])


def stages(pair: eval_real.Pair, change: dict[str, str] | None) -> dict[str, np.ndarray]:
    overrides = {"change": {k: _parse(v) for k, v in (change or {}).items()}}
    config = load_config(None, overrides)
    with RasterPair(pair.before_path, pair.after_path, sensor="auto") as rp:
        norm, _, _ = _calibrate(rp, config)
        from rasterio.windows import Window

        before, after, valid = rp.read(Window(0, 0, rp.grid.shape[1], rp.grid.shape[0]))
        roles, pixel_m = rp.roles, rp.pixel_m
    cfg = config.change
    after_norm = norm.apply(after)
    ev = ch.pixel_evidence(before, after, roles, after_norm, norm.scale, norm.whitening)
    cloud_px = int(cfg.cloud_min_area_m2 / pixel_m**2)
    if norm.relative:
        excluded = ch.relative_cloud_shadow_mask(before, after_norm, roles, ev, norm.levels, cfg, min_pixels=cloud_px)
        cand = ch.relative_candidate_mask(ev, valid & ~excluded, norm.magnitude_threshold, cfg, norm.levels)
        opening = cfg.relative_opening_px
    else:
        excluded = ch.cloud_shadow_mask(before, after_norm, roles, ev, cfg, min_pixels=cloud_px)
        excluded |= (ev.water_before > cfg.water_ndwi) | (ev.water_after > cfg.water_ndwi)
        cand = ch.candidate_mask(ev, valid, excluded, cfg, norm.magnitude_threshold)
        if _seeded(norm, config):  # [change] hysteresis: the rule's regions at the low threshold holding a seed
            low, seeds = ch.hysteresis_masks(ev, valid, excluded, cfg, norm.magnitude_threshold)
            cand = ch.hysteresis(low, seeds)
        opening = cfg.opening_px
    opened = ch.clean_mask(cand, opening_px=opening, closing_px=0, min_pixels=1) & cand
    cleaned = ch.clean_mask(cand, opening_px=opening, closing_px=cfg.closing_px, min_pixels=9)
    every, typed = product_masks(pair, change)
    return {"clear": valid & ~excluded, "evidence": cand, "opening": opened, "min_area": cleaned,
            "product_all": every, "product": typed, "cva": cva_change(pair.before, pair.after, pair.valid),
            "_relative": np.array(norm.relative), "_thr": np.array(norm.magnitude_threshold or np.nan)}


def _parse(value: str):
    import tomllib

    return tomllib.loads(f"x = {value}")["x"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--pair", action="append", default=None)
    parser.add_argument("--change", action="append", default=[], metavar="KEY=VALUE")
    args = parser.parse_args(argv)
    change = dict(item.split("=", 1) for item in args.change)
    manifest = eval_real._manifest(args.data)
    names = args.pair or eval_real.list_pairs(args.data)
    order = ("clear", "evidence", "opening", "min_area", "product_all", "product")
    lost_names = ("mask", "evidence", "opening", "min_area", "(detect)", "qtype")
    print("pair | rel | thr | change% | " + " | ".join(f"lost@{n}" for n in lost_names)
          + " | recall product | prec@evidence | prec product | recall CVA | prec CVA")
    totals = []
    for name in names:
        pair = eval_real.load_pair(args.data / name, manifest.get(name, {}).get("dataset", ""))
        s = stages(pair, change)
        pos = pair.label == 1
        neg = pair.label == 0
        n = max(int(pos.sum()), 1)
        kept = [float((s[k] & pos).sum()) / n for k in order]
        lost = [1.0 - kept[0]] + [kept[i - 1] - kept[i] for i in range(1, len(kept))]

        def prec(m, pos=pos, neg=neg):
            tp, fp = (m & pos).sum(), (m & neg).sum()
            return tp / max(tp + fp, 1)

        row = [name, "R" if bool(s["_relative"]) else "F", f"{float(s['_thr']):.2f}", f"{100 * pos.sum() / max((pos | neg).sum(), 1):.1f}",
               *(f"{v:.2f}" for v in lost), f"{kept[-1]:.2f}", f"{prec(s['evidence']):.2f}", f"{prec(s['product']):.2f}",
               f"{(s['cva'] & pos).sum() / n:.2f}", f"{prec(s['cva']):.2f}"]
        totals.append(lost + [kept[-1]])
        print(" | ".join(row), flush=True)
    mean = np.mean(totals, axis=0)
    print("mean | | | | " + " | ".join(f"{v:.2f}" for v in mean))
    return 0


if __name__ == "__main__":
    sys.exit(main())
