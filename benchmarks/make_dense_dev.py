"""A change-dense, high-resolution RGB dev set, for development only (never committed data).

The dev variants (``make_dev_variants.py``) are whole training cities where ~1 % of the
pixels changed; aerial / Google Earth tiles of new buildings are fine-pixelled, 8-bit RGB
and often 5–30 % changed. This writes such pairs from TRAINING material only:

* ``<city>_dense<k>``   the ``k``-th densest ``--crop`` × ``--crop`` window of labelled
                        change of a training city (OSCD, 10 m), red/green/blue as uint8
                        with a 1–99 % display stretch over both dates of the crop,
                        upsampled ``--zoom`` times (bilinear; label nearest), i.e. a
                        10/zoom m pixel, band descriptions red, green, blue
* ``gen_<seed>_dense<k>`` the ``k``-th densest ``--gen-crop`` window of disturbance of a
                        generated scene (``swc-rs sample --seed S``, seeds >= 1000), same
                        RGB uint8 stretch; label 1 inside the truth patches, 0 elsewhere
                        (harvest, tillage, clouds ... are 0)

Usage::

    $ swc-rs sample -o /tmp/gen/s1000 --seed 1000
    $ python benchmarks/make_dense_dev.py /work/shared/train/real /tmp/dense_dev --scene /tmp/gen/s1000
    $ python benchmarks/eval_real.py --data /tmp/dense_dev
"""

from __future__ import annotations

import argparse
import csv
import sys
from pathlib import Path

import numpy as np
import rasterio
from rasterio.windows import Window
from scipy import ndimage

sys.path.insert(0, str(Path(__file__).resolve().parent))
from make_dev_variants import S2, stretch  # noqa: E402  (its sibling in benchmarks/)

RGB_NAMES = ("red", "green", "blue")


def read_crop(folder: Path, bands: list[int], win: Window) -> tuple[np.ndarray, np.ndarray, object]:
    """BEFORE and AFTER (float64) of ``bands`` (0-based) in ``win``, and the window's transform."""
    with rasterio.open(folder / "before.tif") as s:
        before = s.read([b + 1 for b in bands], window=win).astype(np.float64)
        transform = s.window_transform(win)
    with rasterio.open(folder / "after.tif") as s:
        after = s.read([b + 1 for b in bands], window=win).astype(np.float64)
    return before, after, transform


def densest_windows(change: np.ndarray, size: int, count: int, min_frac: float = 0.02) -> list[tuple[int, int]]:
    """Top-left corners of up to ``count`` non-overlapping ``size`` windows with the most change."""
    h, w = change.shape
    if h < size or w < size:
        return []
    density = ndimage.uniform_filter(change.astype(np.float64), size=size, mode="constant")
    # centre -> top-left; keep windows fully inside
    half = size // 2
    valid = np.zeros_like(density, bool)
    valid[half:h - (size - half) + 1, half:w - (size - half) + 1] = True
    density = np.where(valid, density, -1.0)
    out = []
    for _ in range(count):
        r, c = np.unravel_index(int(np.argmax(density)), density.shape)
        if density[r, c] < min_frac:
            break
        out.append((int(r - half), int(c - half)))
        density[max(0, r - size):r + size, max(0, c - size):c + size] = -1.0
    return out


def write(path: Path, data: np.ndarray, profile: dict, names: tuple[str, ...]) -> None:
    prof = {**profile, "driver": "GTiff", "count": data.shape[0], "dtype": str(data.dtype),
            "height": data.shape[1], "width": data.shape[2], "compress": "deflate", "nodata": None}
    prof.pop("blockxsize", None)
    prof.pop("blockysize", None)
    prof.pop("tiled", None)
    with rasterio.open(path, "w", **prof) as dst:
        dst.write(data)
        for i, name in enumerate(names, start=1):
            dst.set_band_description(i, name)


def zoom_stack(stack: np.ndarray, zoom: int, order: int) -> np.ndarray:
    if zoom == 1:
        return stack
    return np.stack([ndimage.zoom(b, zoom, order=order, mode="nearest", grid_mode=True) for b in stack])


def city_pairs(src: Path, out: Path, *, crop: int, zoom: int, per_city: int) -> list[dict]:
    rows = []
    rgb = [S2.index("B04"), S2.index("B03"), S2.index("B02")]
    for city in sorted(p for p in src.iterdir() if (p / "label.tif").exists()):
        with rasterio.open(city / "label.tif") as s:
            label = s.read(1)
            profile = s.profile
        for k, (r0, c0) in enumerate(densest_windows(label == 1, crop, per_city)):
            before, after, transform = read_crop(city, rgb, Window(c0, r0, crop, crop))
            lab = label[r0:r0 + crop, c0:c0 + crop][None]
            both = np.concatenate([before, after], axis=2)
            b8, a8 = stretch(before, both), stretch(after, both)
            b8 = np.clip(zoom_stack(b8.astype(np.float64), zoom, 1), 1, 255).round().astype(np.uint8)
            a8 = np.clip(zoom_stack(a8.astype(np.float64), zoom, 1), 1, 255).round().astype(np.uint8)
            lab = zoom_stack(lab, zoom, 0).astype(np.uint8)
            t = transform
            prof = {**profile, "crs": profile["crs"],
                    "transform": rasterio.Affine(t.a / zoom, t.b, t.c, t.d, t.e / zoom, t.f)}
            d = out / f"{city.name}_dense{k}"
            d.mkdir(parents=True, exist_ok=True)
            write(d / "before.tif", b8, prof, RGB_NAMES)
            write(d / "after.tif", a8, prof, RGB_NAMES)
            write(d / "label.tif", lab, prof, ("label",))
            frac = float((lab == 1).sum() / max((lab != 255).sum(), 1))
            rows.append({"pair": d.name, "dataset": f"dense RGB uint8 crop x{zoom} of {city.name}",
                         "change_frac": f"{frac:.3f}"})
    return rows


def scene_pairs(scene: Path, out: Path, *, crop: int, per_scene: int) -> list[dict]:
    import geopandas as gpd
    from rasterio import features

    with rasterio.open(scene / "before.tif") as s:
        profile = s.profile
        descriptions = s.descriptions
        shape = s.shape
    truth = gpd.read_file(scene / "truth.gpkg", layer="truth_patches").to_crs(profile["crs"])
    label = features.rasterize(((g, 1) for g in truth.geometry), out_shape=shape,
                               transform=profile["transform"], fill=0, dtype="uint8")
    names = [d.lower() if d else "" for d in descriptions]
    order = [names.index(n) for n in RGB_NAMES] if all(n in names for n in RGB_NAMES) else [2, 1, 0]
    rows = []
    for k, (r0, c0) in enumerate(densest_windows(label == 1, crop, per_scene)):
        before, after, transform = read_crop(scene, order, Window(c0, r0, crop, crop))
        both = np.concatenate([before, after], axis=2)
        prof = {**profile, "transform": transform}
        d = out / f"gen_{scene.name}_dense{k}"
        d.mkdir(parents=True, exist_ok=True)
        write(d / "before.tif", stretch(before, both), prof, RGB_NAMES)
        write(d / "after.tif", stretch(after, both), prof, RGB_NAMES)
        lab = label[r0:r0 + crop, c0:c0 + crop][None]
        write(d / "label.tif", lab, prof, ("label",))
        rows.append({"pair": d.name, "dataset": f"dense RGB uint8 crop of generated {scene.name}",
                     "change_frac": f"{float(lab.mean()):.3f}"})
    return rows


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("source", type=Path, help="labelled training pairs (e.g. /work/shared/train/real)")
    parser.add_argument("target", type=Path, help="output folder (e.g. /tmp/dense_dev)")
    parser.add_argument("--scene", type=Path, action="append", default=[], help="generated scene (seed >= 1000)")
    parser.add_argument("--crop", type=int, default=64, help="city crop in source pixels (default 64)")
    parser.add_argument("--zoom", type=int, default=4, help="upsampling of city crops (default 4)")
    parser.add_argument("--per-city", type=int, default=2)
    parser.add_argument("--gen-crop", type=int, default=512)
    parser.add_argument("--per-scene", type=int, default=2)
    args = parser.parse_args(argv)
    args.target.mkdir(parents=True, exist_ok=True)
    rows = city_pairs(args.source, args.target, crop=args.crop, zoom=args.zoom, per_city=args.per_city)
    for scene in args.scene:
        rows += scene_pairs(scene, args.target, crop=args.gen_crop, per_scene=args.per_scene)
    with (args.target / "manifest.csv").open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=["pair", "dataset", "change_frac"])
        writer.writeheader()
        writer.writerows(rows)
    for row in rows:
        print(row["pair"], row["change_frac"])


if __name__ == "__main__":
    main()
