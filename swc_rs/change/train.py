"""Training of the learned change detector (PyTorch, a training-only extra: ``pip install -e .[train]``).

``make model`` runs::

    python -m swc_rs.change.train --family highres --out swc_rs/data/change_highres.onnx
    python -m swc_rs.change.train --family multispectral --out swc_rs/data/change_multispectral.onnx

and ``--lodo`` trains one model per held-out dataset and scores it on that dataset
(the honest estimate for a new sensor or city). Every sample is drawn from a seeded
generator and the network from a seeded initialisation, so the same command gives the
same model on the same machine.

A batch mixes two kinds of samples (:func:`draw_sample`):

* real labelled pairs (``../shared/train/highres`` or ``../shared/train/real``), cropped,
  rescaled across the family's pixel sizes, flipped and rotated, each date augmented on
  its own (gain, offset, gamma, haze, blur, noise, JPEG), AFTER misregistered by up to
  2 px;
* synthetic change on real single-date images (both dates of every pair, the unlabelled
  cities): construction-like objects pasted into a copy of the image, their mask the
  label, with tillage, harvest and seasonal vegetation applied as *no change*
  (:mod:`swc_rs.change.synth`).

SZTAKI AirChange labels also mark fresh plough-land and tree plantings, which are not
disturbance for swc-rs: labelled pixels that are green vegetation in AFTER (plantings)
are not scored (label 255), and the SZTAKI pairs are drawn half as often as the others.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import logging
import math
import platform
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import rasterio

from swc_rs.change import synth

log = logging.getLogger(__name__)

REPO = Path(__file__).resolve().parents[2]
SHARED = REPO.parent / "shared" / "train"
GENERATED = REPO / ".cache" / "cd" / "generated"
CROP = 128
CONTEXT = 1.5  # statistics are taken over a region CONTEXT× the crop's side, like a scene's
S2_BANDS = {"B02": "blue", "B03": "green", "B04": "red", "B08": "nir", "B11": "swir1", "B12": "swir2"}
#: Pixel sizes (m) each family is trained across, by rescaling its sources.
RES_RANGE = {"highres": (0.3, 4.0), "multispectral": (10.0, 30.0)}
#: Training steps of the shipped models (batch 16 of 128²) and of each leave-one-out fold.
STEPS = {"highres": 3000, "multispectral": 1500}
LODO_STEPS = {"highres": 500, "multispectral": 500}
BATCH = 16
TERMS = {
    "sztaki": "SZTAKI AirChange: free for scientific use (Benedek & Szirányi, IEEE TGRS 47(10) 2009)",
    "whucd": "WHU-CD: academic use (Ji, Wei, Lu, IEEE TGRS 57(1) 2019)",
    "levircd": "LEVIR-CD: academic / non-commercial research use (Chen & Shi, Remote Sensing 12(10) 2020)",
    "dsifn": "DSIFN: scientific research use (Zhang et al., ISPRS J. 166 2020)",
    "oscd": "OSCD: labels CC BY-NC-SA 4.0, imagery modified Copernicus Sentinel data (Caye Daudt et al., IGARSS 2018)",
    "generated": "swc-rs sample scenes (seeds 1000-1011): generated here, no third-party terms",
}


@dataclass
class Source:
    """One labelled pair or one single-date image to paste change into."""

    name: str
    dataset: str
    before: np.ndarray  # float32 (bands, h, w), family band order
    after: np.ndarray | None
    label: np.ndarray | None  # uint8 0/1/255
    res_m: float


def _read(path: Path, family: str) -> np.ndarray:
    with rasterio.open(path) as ds:
        data = ds.read().astype(np.float32)
        names = [d or "" for d in ds.descriptions]
        dtype = ds.dtypes[0]
    if family == "highres":
        index = [names.index(r) if r in names else i for i, r in enumerate(synth.FAMILIES[family])]
    else:
        by_role = {S2_BANDS.get(n, n): i for i, n in enumerate(names)}
        index = [by_role[r] for r in synth.FAMILIES[family]]
    scale = 1 / 255 if dtype == "uint8" else 1 / 10000
    return data[index] * scale


def _dataset_key(name: str) -> str:
    return name.split("_")[0]


def load_sources(family: str, root: Path = SHARED, generated: Path | None = None) -> tuple[list[Source], list[Source]]:
    """(labelled pairs, single-date bases) of a family, read from ``root``; for the
    high-resolution family also the generated scenes (made in ``generated``)."""
    labelled, bases = [], []
    if family == "highres" and generated is not None:
        labelled.extend(generated_sources(generated))
    if family == "highres":
        folders = [(root / "highres", True)]
    else:
        folders = [(root / "real", True), (root / "unlabelled", False)]
    for folder, has_labels in folders:
        manifest = {row["pair"]: row for row in csv.DictReader((folder / "manifest.csv").open())}
        for name in sorted(manifest):
            pair = folder / name
            before, after = _read(pair / "before.tif", family), _read(pair / "after.tif", family)
            h = min(before.shape[1], after.shape[1])
            w = min(before.shape[2], after.shape[2])
            before, after = before[:, :h, :w], after[:, :h, :w]
            res = float(manifest[name].get("res_m") or 10.0)
            key = name if family == "multispectral" else _dataset_key(name)
            if has_labels and (pair / "label.tif").exists():
                with rasterio.open(pair / "label.tif") as ds:
                    label = ds.read(1)[:h, :w].copy()
                if key == "sztaki":  # plantings are labelled change there: not scored
                    label[(label == 1) & synth.vegetation(after, family)] = 255
                labelled.append(Source(name, key, before, after, label, res))
            for date, img in (("before", before), ("after", after)):
                bases.append(Source(f"{name}:{date}", key, img, None, None, res))
    return labelled, bases


#: Generated scenes (``swc-rs sample``) in the high-resolution model's training data:
#: one source among several (seeds 1000+, never the test or evaluation seeds).
GENERATED_SEEDS = tuple(range(1000, 1012))


def generated_sources(folder: Path, seeds=GENERATED_SEEDS, size: int = 1024) -> list[Source]:
    """Labelled pairs from ``swc-rs sample`` scenes (made in ``folder`` when missing):
    their disturbances are change (1), everything else — tillage, harvest, water level,
    clouds — no change (0)."""
    import geopandas as gpd
    from rasterio import features

    from swc_rs.sample import generate_scene

    out = []
    for seed in seeds:
        scene = folder / f"s{seed}"
        if not (scene / "truth.gpkg").exists():
            generate_scene(scene, seed=seed, size=size, overwrite=True)
        before, after = _read(scene / "before.tif", "highres"), _read(scene / "after.tif", "highres")
        with rasterio.open(scene / "before.tif") as ds:
            transform, crs, shape, res = ds.transform, ds.crs, ds.shape, abs(ds.transform.a)
        truth = gpd.read_file(scene / "truth.gpkg", layer="truth_patches").to_crs(crs)
        label = features.rasterize(((g, 1) for g in truth.geometry if g is not None and not g.is_empty),
                                   out_shape=shape, transform=transform, fill=0, dtype="uint8")
        out.append(Source(f"generated_{seed}", "generated", before, after, label, res))
    return out


def _zoom(img: np.ndarray, factor: float) -> np.ndarray:
    """``(bands, h, w)`` resampled by ``factor`` (Pillow's bilinear, anti-aliased when shrinking)."""
    if abs(factor - 1) < 1e-3:
        return img
    from PIL import Image

    h, w = img.shape[1:]
    size = (max(1, round(w * factor)), max(1, round(h * factor)))
    return np.stack([np.asarray(Image.fromarray(band).resize(size, Image.BILINEAR)) for band in img])


def _region(source: Source, rng: np.random.Generator, family: str, side: int):
    """A random square region of ``source`` rescaled to ``side`` pixels: (arrays, factor, res)."""
    lo, hi = RES_RANGE[family]
    target = math.exp(rng.uniform(math.log(lo), math.log(hi)))
    factor = float(np.clip(source.res_m / target, 0.4, 2.5))
    h, w = source.before.shape[1:]
    size = int(math.ceil(side / factor))
    if size > min(h, w):
        size = min(h, w)
        factor = side / size
    r0, c0 = int(rng.integers(0, h - size + 1)), int(rng.integers(0, w - size + 1))
    if source.label is not None and rng.random() < 0.5:  # centred on change half of the time
        changed = np.argwhere(source.label == 1)
        if len(changed):
            r, c = changed[rng.integers(len(changed))]
            r0 = int(np.clip(r - size // 2, 0, h - size))
            c0 = int(np.clip(c - size // 2, 0, w - size))
    cut = (slice(None), slice(r0, r0 + size), slice(c0, c0 + size))
    arrays = [source.before[cut], None if source.after is None else source.after[cut],
              None if source.label is None else source.label[r0:r0 + size, c0:c0 + size]]
    out = [None if a is None else _zoom(a, side / size) for a in arrays[:2]]
    if arrays[2] is not None:
        lab = arrays[2]
        ignore = _zoom((lab == 255)[None].astype(np.float32), side / size)[0] > 0.5
        change = _zoom((lab == 1)[None].astype(np.float32), side / size)[0] > 0.5
        label = np.where(ignore, 255, change.astype(np.uint8)).astype(np.uint8)
        out.append(label)
    else:
        out.append(None)
    return out, source.res_m / (side / size)


def _fit(arrays: list, side: int) -> list:
    """Pad (reflect) or crop every array to ``side`` × ``side``."""
    fitted = []
    for a in arrays:
        if a is None:
            fitted.append(None)
            continue
        h, w = a.shape[-2:]
        pad = [(0, 0)] * (a.ndim - 2) + [(0, max(0, side - h)), (0, max(0, side - w))]
        a = np.pad(a, pad, mode="reflect" if a.dtype != np.uint8 else "edge")
        fitted.append(a[..., :side, :side])
    return fitted


def draw_sample(labelled: list[Source], bases: list[Source], family: str, rng: np.random.Generator,
                real_share: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One training sample: standardised BEFORE and AFTER ``(bands, CROP, CROP)`` and the label."""
    side = int(CROP * CONTEXT)
    jpeg = family == "highres"
    if labelled and rng.random() < real_share:
        weights = np.array([0.5 if s.dataset == "sztaki" else 1.0 for s in labelled])
        datasets = sorted({s.dataset for s in labelled})
        dataset = datasets[rng.integers(len(datasets))]
        chosen = [i for i, s in enumerate(labelled) if s.dataset == dataset]
        w = weights[chosen] * np.array([s.before.shape[1] * s.before.shape[2] for s in (labelled[i] for i in chosen)])
        source = labelled[chosen[rng.choice(len(chosen), p=w / w.sum())]]
        if source.dataset == "sztaki" and rng.random() < 0.5:
            source = labelled[rng.integers(len(labelled))]
        (before, after, label), res = _region(source, rng, family, side)
        if rng.random() < 0.2:
            after = synth.seasonal(after, family, rng)
    else:
        source = bases[rng.integers(len(bases))]
        (before, _, _), res = _region(source, rng, family, side)
        after = before.copy()
        if rng.random() < 0.3:
            after = synth.tillage(after, family, res, rng)
        if rng.random() < 0.4:
            after = synth.seasonal(after, family, rng)
        if rng.random() < 0.85:
            after, mask = synth.paste_change(after, family, res, rng)
        else:
            mask = np.zeros(before.shape[1:], bool)
        label = mask.astype(np.uint8)
    before, after, label = _fit([before, after, label], side)
    k = int(rng.integers(4))
    flip = rng.random() < 0.5
    before, after, label = (np.rot90(a, k, axes=(-2, -1)) for a in (before, after, label))
    if flip:
        before, after, label = (a[..., ::-1] for a in (before, after, label))
    before = synth.photometric(np.ascontiguousarray(before), rng, jpeg=jpeg)
    after = synth.photometric(np.ascontiguousarray(after), rng, jpeg=jpeg)
    if rng.random() < 0.5:
        after = synth.misregister(after, rng, 2.0)
    before, after = synth.standardise(before), synth.standardise(after)
    o = (side - CROP) // 2
    cut = (slice(o, o + CROP), slice(o, o + CROP))
    return before[(slice(None), *cut)].copy(), after[(slice(None), *cut)].copy(), np.ascontiguousarray(label[cut])


def train(family: str, labelled: list[Source], bases: list[Source], *, steps: int, seed: int = 0,
          report_every: int = 200):
    """Train a :class:`~swc_rs.change.net.ChangeNet`; returns it (eval mode) and the loss curve."""
    import os

    import torch
    import torch.nn.functional as F

    from swc_rs.change.net import ChangeNet

    torch.manual_seed(seed)
    torch.set_num_threads(int(os.environ.get("SWC_TRAIN_THREADS", "2")))
    rng = np.random.default_rng(seed)
    net = ChangeNet(len(synth.FAMILIES[family]))
    opt = torch.optim.AdamW(net.parameters(), lr=2e-3, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=3e-3, total_steps=steps, pct_start=0.1)
    real_share = 0.5 if family == "highres" else 0.35
    curve = []
    started = time.perf_counter()
    running = 0.0
    net.train()
    for step in range(1, steps + 1):
        batch = [draw_sample(labelled, bases, family, rng, real_share) for _ in range(BATCH)]
        b = torch.from_numpy(np.stack([s[0] for s in batch]))
        a = torch.from_numpy(np.stack([s[1] for s in batch]))
        y = torch.from_numpy(np.stack([s[2] for s in batch])[:, None].astype(np.float32))
        scored = (y != 255).float()
        target = (y == 1).float()
        logit = net(b, a)
        bce = F.binary_cross_entropy_with_logits(logit, target, weight=scored * (1 + target), reduction="sum")
        bce = bce / scored.sum().clamp(min=1)
        prob = torch.sigmoid(logit) * scored
        dice = 1 - (2 * (prob * target).sum() + 1) / (prob.sum() + (target * scored).sum() + 1)
        loss = bce + 0.5 * dice
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        running += loss.item()
        if step % report_every == 0 or step == steps:
            n = report_every if step % report_every == 0 else step % report_every
            curve.append((step, round(running / n, 4)))
            log.info("%s step %d/%d loss %.4f (%.0f s)", family, step, steps, running / n, time.perf_counter() - started)
            running = 0.0
    return net.eval(), curve


def predict(net, before: np.ndarray, after: np.ndarray) -> np.ndarray:
    """P(change) of a whole image pair with its own statistics (torch; for validation)."""
    import torch

    from swc_rs.change.net import STRIDE

    h, w = before.shape[1:]
    ph, pw = (-h) % STRIDE, (-w) % STRIDE
    b = np.pad(synth.standardise(before), ((0, 0), (0, ph), (0, pw)), mode="reflect")
    a = np.pad(synth.standardise(after), ((0, 0), (0, ph), (0, pw)), mode="reflect")
    with torch.no_grad():
        logit = net(torch.from_numpy(b[None]), torch.from_numpy(a[None]))[0, 0].numpy()
    return 1 / (1 + np.exp(-logit[:h, :w]))


def score_pairs(net, pairs: list[Source], threshold: float = 0.5) -> dict[str, dict]:
    """F1 (1-px tolerance, 255 ignored) of the network and of CVA on each pair."""
    from swc_rs.baselines import cva_change
    from swc_rs.realeval import pixel_scores

    out = {}
    for pair in pairs:
        label = pair.label.copy()
        prob = predict(net, pair.before, pair.after)
        valid = np.ones(label.shape, bool)
        cva = cva_change(pair.before.astype(np.float64), pair.after.astype(np.float64), valid)
        out[pair.name] = {"net": round(pixel_scores(prob > threshold, label).f1, 4),
                          "cva": round(pixel_scores(cva, label).f1, 4)}
    return out


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def ship(family: str, out: Path, *, steps: int, seed: int, root: Path = SHARED, generated: Path = GENERATED) -> dict:
    """Train on every source of the family, export ONNX and write its card (``.json``)."""
    from swc_rs.change.net import RECEPTIVE_RADIUS, STRIDE, export_onnx, receptive_radius

    labelled, bases = load_sources(family, root, generated)
    started = time.perf_counter()
    net, curve = train(family, labelled, bases, steps=steps, seed=seed)
    seconds = time.perf_counter() - started
    radius = receptive_radius(net)
    if radius > RECEPTIVE_RADIUS:
        raise RuntimeError(f"receptive radius {radius} px exceeds RECEPTIVE_RADIUS = {RECEPTIVE_RADIUS}")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".onnx.tmp")
    export_onnx(net, tmp)
    tmp.replace(out)
    card = {
        "family": family,
        "roles": list(synth.FAMILIES[family]),
        "res_m": list(RES_RANGE[family]),
        "threshold": 0.5,
        "stride": STRIDE,
        "halo_px": int(math.ceil(RECEPTIVE_RADIUS / STRIDE) * STRIDE),
        "parameters": int(sum(p.numel() for p in net.parameters())),
        "architecture": "Siamese encoder (shared weights, 4 stages, stride 16, depthwise-separable), "
                        "fusion [a, b, |a-b|] per stage, U-Net decoder; input: each date's bands standardised "
                        "by that date's scene mean and standard deviation",
        "training": {"steps": steps, "batch": BATCH, "crop_px": CROP, "seed": seed, "seconds": round(seconds),
                     "labelled_pairs": [s.name for s in labelled], "base_images": len(bases),
                     "loss_curve": curve, "torch": __import__("torch").__version__, "python": platform.python_version()},
        "data_terms": sorted({TERMS[_dataset_key(s.name)] for s in labelled}),
        "train_scores": score_pairs(net, labelled),
        "onnx_sha256": _sha256(out),
    }
    out.with_suffix(".json").write_text(json.dumps(card, indent=1, ensure_ascii=False) + "\n")
    return card


def leave_one_out(family: str, *, steps: int, seed: int, root: Path = SHARED, only: list[str] | None = None,
                  generated: Path = GENERATED) -> dict:
    """Train without each dataset in turn and score that dataset: ``{dataset: {pair: {net, cva}}}``."""
    labelled, bases = load_sources(family, root, generated)
    folds = {}
    for dataset in sorted({s.dataset for s in labelled}):
        if only and dataset not in only:
            continue
        keep = [s for s in labelled if s.dataset != dataset]
        keep_bases = [s for s in bases if s.dataset != dataset]
        log.info("fold without %s: %d labelled pairs, %d bases", dataset, len(keep), len(keep_bases))
        net, _ = train(family, keep, keep_bases, steps=steps, seed=seed)
        folds[dataset] = score_pairs(net, [s for s in labelled if s.dataset == dataset])
        log.info("fold %s: %s", dataset, folds[dataset])
    return folds


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--family", choices=sorted(synth.FAMILIES), required=True)
    parser.add_argument("--out", type=Path, help="ONNX file to write (its card beside it, .json)")
    parser.add_argument("--steps", type=int, help="training steps (default: the shipped models' count)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--data", type=Path, default=SHARED, help="the training folder (../shared/train)")
    parser.add_argument("--lodo", type=Path, help="leave one dataset out: write the per-fold scores to this JSON")
    parser.add_argument("--fold", action="append", help="with --lodo: only these held-out datasets")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", stream=sys.stderr)
    if not (args.data / ("highres" if args.family == "highres" else "real") / "manifest.csv").exists():
        print(f"error: {args.data}: no training data for {args.family} (expected the shared/train folder)",
              file=sys.stderr)
        return 2
    if args.lodo:
        folds = leave_one_out(args.family, steps=args.steps or LODO_STEPS[args.family], seed=args.seed,
                              root=args.data, only=args.fold)
        args.lodo.parent.mkdir(parents=True, exist_ok=True)
        previous = json.loads(args.lodo.read_text()) if args.lodo.exists() else {}
        previous.update(folds)
        args.lodo.write_text(json.dumps(previous, indent=1) + "\n")
        return 0
    if args.out is None:
        parser.error("--out is required without --lodo")
    card = ship(args.family, args.out, steps=args.steps or STEPS[args.family], seed=args.seed, root=args.data)
    print(json.dumps({k: card[k] for k in ("family", "parameters", "onnx_sha256")}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
