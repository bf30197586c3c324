"""Sensor/resolution variants of the labelled TRAINING pairs, for development only.

The evaluation set mixes band families (rgb / vnir+swir) and pixel sizes (0.5–30 m),
while the training pairs are all Sentinel-2 at 10 m. This writes, per training pair:

* ``<pair>_rgb``   red, green, blue only, uint8 with a per-band 1–99 % display stretch
                   (as aerial / Google Earth RGB is delivered)
* ``<pair>_vnir``  blue, green, red, nir (uint16, reflectance ×10000)
* ``<pair>_30mdn`` the same blocks as raw 8-bit DN (reflectance × 400 + 10, no stretch)
* ``<pair>_30m``   the six Landsat-like bands averaged over 3×3 blocks, uint8 display
                   stretch; label 1 where ≥ half the block changed, 0 where none did,
                   255 (not labelled) in between

Usage::

    $ swc-rs sample -o /tmp/gen/s1000 --seed 1000
    $ python benchmarks/make_dev_variants.py /work/shared/train/real /tmp/dev_variants [/tmp/gen/s1000 ...]
    $ python benchmarks/eval_real.py --data /tmp/dev_variants
"""

from __future__ import annotations

import csv
import sys
from pathlib import Path

import numpy as np
import rasterio

S2 = ("B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B11", "B12")


def stretch(stack: np.ndarray, ref: np.ndarray) -> np.ndarray:
    """uint8 1–255, per band linear between the 1st and 99th percentile of ``ref``."""
    out = np.empty(stack.shape, np.uint8)
    for b in range(stack.shape[0]):
        lo, hi = np.percentile(ref[b], [1, 99])
        out[b] = np.clip((stack[b] - lo) / max(hi - lo, 1e-6) * 254 + 1, 1, 255).astype(np.uint8)
    return out


def _write(path: Path, data: np.ndarray, profile: dict, names: tuple[str, ...]) -> None:
    prof = {**profile, "count": data.shape[0], "dtype": str(data.dtype), "height": data.shape[1],
            "width": data.shape[2], "compress": "deflate", "nodata": None}
    with rasterio.open(path, "w", **prof) as dst:
        dst.write(data)
        for i, name in enumerate(names, start=1):
            dst.set_band_description(i, name)


def make(src: Path, out: Path) -> list[dict]:
    rows = []
    for pair in sorted(p for p in src.iterdir() if (p / "label.tif").exists()):
        with rasterio.open(pair / "before.tif") as s:
            before, profile = s.read().astype(np.float64), s.profile
        with rasterio.open(pair / "after.tif") as s:
            after = s.read().astype(np.float64)
        with rasterio.open(pair / "label.tif") as s:
            label, lprof = s.read(), s.profile
        idx = {n: S2.index(n) for n in S2}
        both = np.concatenate([before, after], axis=2)
        # rgb, display-stretched uint8 (common stretch for both dates, like a mosaic)
        rgb = [idx["B04"], idx["B03"], idx["B02"]]
        for kind, bands, names in (("rgb", rgb, ("red", "green", "blue")),):
            d = out / f"{pair.name}_{kind}"
            d.mkdir(parents=True, exist_ok=True)
            _write(d / "before.tif", stretch(before[bands], both[bands]), profile, names)
            _write(d / "after.tif", stretch(after[bands], both[bands]), profile, names)
            _write(d / "label.tif", label, lprof, ("label",))
            rows.append({"pair": d.name, "dataset": f"dev variant {kind} of {pair.name}"})
        vnir = [idx["B02"], idx["B03"], idx["B04"], idx["B08"]]
        d = out / f"{pair.name}_vnir"
        d.mkdir(parents=True, exist_ok=True)
        _write(d / "before.tif", before[vnir].astype(np.uint16), profile, ("blue", "green", "red", "nir"))
        _write(d / "after.tif", after[vnir].astype(np.uint16), profile, ("blue", "green", "red", "nir"))
        _write(d / "label.tif", label, lprof, ("label",))
        rows.append({"pair": d.name, "dataset": f"dev variant vnir of {pair.name}"})
        # 30 m: 3x3 block means
        six = [idx[n] for n in ("B02", "B03", "B04", "B08", "B11", "B12")]
        h, w = (before.shape[1] // 3) * 3, (before.shape[2] // 3) * 3

        def agg(a, h=h, w=w):
            return a[:, :h, :w].reshape(a.shape[0], h // 3, 3, w // 3, 3).mean(axis=(2, 4))

        b30, a30 = agg(before[six]), agg(after[six])
        frac = agg((label == 1).astype(np.float64))[0]
        lab = np.full(frac.shape, 255, np.uint8)
        lab[frac >= 0.5] = 1
        lab[frac == 0] = 0
        lab[agg((label == 255).astype(np.float64))[0] > 0] = 255
        t = profile["transform"]
        prof30 = {**profile, "transform": rasterio.Affine(t.a * 3, t.b, t.c, t.d, t.e * 3, t.f)}
        both30 = np.concatenate([b30, a30], axis=2)
        d = out / f"{pair.name}_30m"
        d.mkdir(parents=True, exist_ok=True)
        names = ("blue", "green", "red", "nir", "swir1", "swir2")
        _write(d / "before.tif", stretch(b30, both30), prof30, names)
        _write(d / "after.tif", stretch(a30, both30), prof30, names)
        _write(d / "label.tif", lab[None], {**lprof, "transform": prof30["transform"]}, ("label",))
        rows.append({"pair": d.name, "dataset": f"dev variant 30m of {pair.name}"})
        # 30 m as raw 8-bit DN: a fixed linear gain and offset (no stretch), like archive Landsat TM
        d = out / f"{pair.name}_30mdn"
        d.mkdir(parents=True, exist_ok=True)
        _write(d / "before.tif", np.clip(b30 * 0.04 + 10, 1, 255).astype(np.uint8), prof30, names)
        _write(d / "after.tif", np.clip(a30 * 0.04 + 10, 1, 255).astype(np.uint8), prof30, names)
        _write(d / "label.tif", lab[None], {**lprof, "transform": prof30["transform"]}, ("label",))
        rows.append({"pair": d.name, "dataset": f"dev variant 30m raw DN of {pair.name}"})
    return rows




def add_generated(scene: Path, out: Path) -> list[dict]:
    """A generated scene (``swc-rs sample``) as a labelled pair: truth patches 1, elsewhere 0
    (confounders such as harvest and tillage included as 0), plus its RGB uint8 variant."""
    import geopandas as gpd
    from rasterio import features

    with rasterio.open(scene / "before.tif") as s:
        before, profile = s.read().astype(np.float64), s.profile
    with rasterio.open(scene / "after.tif") as s:
        after = s.read().astype(np.float64)
    truth = gpd.read_file(scene / "truth.gpkg", layer="truth_patches").to_crs(profile["crs"])
    label = features.rasterize(((g, 1) for g in truth.geometry), out_shape=before.shape[1:],
                               transform=profile["transform"], fill=0, dtype="uint8")[None]
    lprof = {**profile, "count": 1, "dtype": "uint8"}
    rows = []
    d = out / f"gen_{scene.name}"
    d.mkdir(parents=True, exist_ok=True)
    names = ("blue", "green", "red", "nir")
    _write(d / "before.tif", before.astype(profile["dtype"]), profile, names)
    _write(d / "after.tif", after.astype(profile["dtype"]), profile, names)
    _write(d / "label.tif", label, lprof, ("label",))
    rows.append({"pair": d.name, "dataset": f"generated {scene.name}"})
    rgb = [2, 1, 0]
    both = np.concatenate([before[rgb], after[rgb]], axis=2)
    d = out / f"gen_{scene.name}_rgb"
    d.mkdir(parents=True, exist_ok=True)
    _write(d / "before.tif", stretch(before[rgb], both), profile, ("red", "green", "blue"))
    _write(d / "after.tif", stretch(after[rgb], both), profile, ("red", "green", "blue"))
    _write(d / "label.tif", label, lprof, ("label",))
    rows.append({"pair": d.name, "dataset": f"generated {scene.name} rgb"})
    return rows


if __name__ == "__main__":
    source, target = Path(sys.argv[1]), Path(sys.argv[2])
    rows = make(source, target)
    for scene in sys.argv[3:]:  # optional generated scenes (swc-rs sample --seed >= 1000)
        rows += add_generated(Path(scene), target)
    with (target / "manifest.csv").open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=["pair", "dataset"])
        writer.writeheader()
        writer.writerows(rows)
