"""`make eval-real`: swc-rs detect against classic baselines on real labelled pairs.

For every pair in ``../shared/eval/real`` (sorted; from ``manifest.csv`` when present,
else the folder listing) this scores, against the pair's human change label:

* CVA      change-vector analysis of per-date z-scored bands, Otsu threshold
* IR-MAD   iteratively re-weighted MAD (Nielsen 2007), chi-square statistic, Otsu
* NDVI     NDVI-drop / brightness-rise rule, Otsu (excess green for RGB-only pairs)
* product  ``swc-rs detect`` run as a subprocess: its disturbance_patches whose QTYPE is
           not 非生产建设项目, rasterised onto the label grid

with pixel precision / recall / F1 at a 1-pixel tolerance, label 255 ignored (see
:mod:`swc_rs.realeval`). The labels are test data only: nothing here is tuned on them;
every baseline picks its threshold by Otsu on the image itself.

Usage::

    $ python benchmarks/eval_real.py                      # all pairs, product + baselines
    $ python benchmarks/eval_real.py --no-product --json out/eval_real.json
    $ python benchmarks/eval_real.py --pair levircd_test_55_0256_0000 --pair oscd_rennes

Exit status: 0 when every pair was scored by the baselines (a product failure on a pair
shows as "error" and does not change it), 2 when the data folder is missing or empty,
1 when a pair could not be read.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import rasterio

REPO = Path(__file__).resolve().parents[1]
DEFAULT_DATA = REPO / ".." / "shared" / "eval" / "real"

if str(REPO) not in sys.path:  # run from a checkout without `pip install -e .`
    sys.path.insert(0, str(REPO))

from swc_rs.baselines import cva_change, irmad_change, vegetation_loss_change  # noqa: E402
from swc_rs.realeval import PixelScores, pixel_scores  # noqa: E402
from swc_rs.sensors import roles_from_descriptions  # noqa: E402

BASELINES = ("cva", "irmad", "ndvi")
METHOD_TITLES = {"product": "F1 product", "rules": "F1 rules", "cva": "F1 CVA", "irmad": "F1 IR-MAD", "ndvi": "F1 NDVI rule"}
NON_PROJECT = "非生产建设项目"
ZONE_CODE = "Z3"
ZONE_NAME = "雅安东部丘陵平坝人居环境维护保土减灾区"
PROJECT_FIELDS = {"PRNM": "str", "DPOZ": "str", "PRTYPE": "str", "SEAA": "str", "SADT": "str", "DAREA": "float", "NOTE": "str"}


# --------------------------------------------------------------------------- loading


@dataclass
class Pair:
    """One evaluation pair, read into memory on the label's grid."""

    name: str
    folder: Path
    sensor: str
    before: np.ndarray  # float64 (bands, H, W)
    after: np.ndarray
    valid: np.ndarray  # bool (H, W): data in both dates
    label: np.ndarray  # uint8 (H, W): 1 change, 0 no change, 255 not labelled
    roles: dict[str, int]  # role -> 0-based band index
    transform: object
    crs: object
    dataset: str = ""

    @property
    def before_path(self) -> Path:
        return self.folder / "before.tif"

    @property
    def after_path(self) -> Path:
        return self.folder / "after.tif"


def _manifest(data: Path) -> dict[str, dict[str, str]]:
    path = data / "manifest.csv"
    if not path.exists():
        return {}
    with path.open(newline="", encoding="utf-8") as handle:
        return {row["pair"]: row for row in csv.DictReader(handle) if row.get("pair")}


def list_pairs(data: Path) -> list[str]:
    """Pair names in ``data``, sorted: the manifest's pairs, else every folder with the three files."""
    complete = {
        p.name for p in data.iterdir()
        if p.is_dir() and all((p / f).exists() for f in ("before.tif", "after.tif", "label.tif"))
    }
    manifest = _manifest(data)
    names = [n for n in manifest if n in complete] if manifest else list(complete)
    return sorted(names)


def _sensor_name(descriptions, roles, dataset: str) -> str:
    text = dataset.lower()
    if "sentinel" in text or any(d and d.upper().startswith("B0") for d in descriptions):
        return "S2"
    if "landsat" in text:
        return "Landsat"
    if "nir" not in roles:
        return "RGB"
    return f"MS{len(descriptions)}"


def load_pair(folder: Path, dataset: str = "") -> Pair:
    """Read one pair (before, after, label on one grid) into float64 stacks.

    Raises
    ------
    ValueError
        The three rasters are not on one grid, or the bands lack red/green/blue roles.
    """
    folder = Path(folder)
    with rasterio.open(folder / "label.tif") as src:
        label = src.read(1)
        transform, crs, shape = src.transform, src.crs, src.shape
    stacks, masks = [], []
    descriptions: tuple = ()
    for name in ("before.tif", "after.tif"):
        with rasterio.open(folder / name) as src:
            if src.shape != shape or src.transform != transform or src.crs != crs:
                raise ValueError(
                    f"{folder / name}: grid {src.shape} {src.crs} {src.transform} differs from the label's "
                    f"{shape} {crs} {transform}; expected the pair on the label grid"
                )
            stacks.append(src.read().astype(np.float64))
            masks.append(src.dataset_mask() > 0)
            descriptions = descriptions or src.descriptions
    if stacks[0].shape[0] != stacks[1].shape[0]:
        raise ValueError(f"{folder}: before has {stacks[0].shape[0]} bands, after {stacks[1].shape[0]}")
    roles = {role: index - 1 for role, index in roles_from_descriptions(descriptions).items()}
    if not {"red", "green", "blue"} <= set(roles):
        raise ValueError(f"{folder}: band descriptions {descriptions} give roles {roles}; expected red, green, blue")
    before, after = stacks
    valid = masks[0] & masks[1] & np.isfinite(before).all(0) & np.isfinite(after).all(0)
    return Pair(
        name=folder.name, folder=folder, sensor=_sensor_name(descriptions, roles, dataset),
        before=before, after=after, valid=valid, label=label.astype(np.uint8), roles=roles,
        transform=transform, crs=crs, dataset=dataset,
    )


# --------------------------------------------------------------------------- methods


@dataclass
class MethodResult:
    scores: PixelScores | None
    seconds: float
    error: str | None = None

    def to_dict(self) -> dict:
        out = {"seconds": round(self.seconds, 3), "error": self.error}
        if self.scores is not None:
            out.update(self.scores.to_dict())
        return out


@dataclass
class PairResult:
    pair: str
    sensor: str
    dataset: str
    shape: tuple[int, int]
    methods: dict[str, MethodResult] = field(default_factory=dict)

    def f1(self, method: str) -> float | None:
        result = self.methods.get(method)
        return None if result is None or result.scores is None else result.scores.f1

    def ratio(self) -> float | None:
        product = self.f1("product")
        best = max((f for f in (self.f1(m) for m in BASELINES) if f is not None), default=None)
        if product is None or not best:
            return None
        return product / best


def run_baselines(pair: Pair, *, tolerance: int = 1) -> dict[str, MethodResult]:
    """Score the three baselines on one pair."""
    detectors = {
        "cva": lambda: cva_change(pair.before, pair.after, pair.valid),
        "irmad": lambda: irmad_change(pair.before, pair.after, pair.valid),
        "ndvi": lambda: vegetation_loss_change(pair.before, pair.after, pair.valid, roles=pair.roles),
    }
    results = {}
    for name, detector in detectors.items():
        start = time.perf_counter()
        mask = detector()
        results[name] = MethodResult(pixel_scores(mask, pair.label, tolerance=tolerance), time.perf_counter() - start)
    return results


def _swc_rs_command() -> list[str]:
    exe = Path(sys.executable).parent / "swc-rs"
    if exe.exists():
        return [str(exe)]
    return [sys.executable, "-m", "swc_rs.cli.main"]


def write_product_inputs(pair: Pair, folder: Path) -> tuple[Path, Path]:
    """A single Z3 zone covering the pair (buffered by 10 pixels) and an empty projects layer."""
    import geopandas as gpd
    import shapely
    from rasterio.transform import array_bounds

    height, width = pair.label.shape
    west, south, east, north = array_bounds(height, width, pair.transform)
    pad = 10 * max(abs(pair.transform.a), abs(pair.transform.e))
    extent = shapely.box(west - pad, south - pad, east + pad, north + pad)
    zones = gpd.GeoDataFrame({"ZONE_CODE": [ZONE_CODE], "ZONE_NAME": [ZONE_NAME]}, geometry=[extent], crs=pair.crs)
    zones_path = folder / "zones.gpkg"
    zones.to_file(zones_path, layer="zones", engine="pyogrio")
    projects = gpd.GeoDataFrame(
        {name: np.array([], dtype=object if kind == "str" else float) for name, kind in PROJECT_FIELDS.items()},
        geometry=gpd.GeoSeries([], crs=pair.crs),
        crs=pair.crs,
    )
    projects_path = folder / "projects.gpkg"
    projects.to_file(projects_path, layer="projects", engine="pyogrio", geometry_type="Polygon")
    return zones_path, projects_path


#: Smallest patch scored at pixel level, in pixels of the pair (a 3×3 block).
MIN_PATCH_PIXELS = 9


def write_product_config(pair: Pair, folder: Path, change: dict[str, str] | None = None) -> Path:
    """Detect's defaults, but with the reporting minimum area lowered to 3×3 pixels.

    The bureau's minimum mapping unit (0.03–0.04 hm²) is a reporting policy: at 0.5 m
    it would drop every single house that LEVIR-CD labels, and the baselines have no
    such filter. Pixel-level scoring therefore uses a resolution-neutral floor of
    :data:`MIN_PATCH_PIXELS` pixels. Nothing here is chosen from the labels.
    """
    from swc_rs.pipeline import ground_pixel_size
    from swc_rs.raster import RasterPair

    with RasterPair(pair.before_path, pair.after_path) as raster_pair:
        pixel_m = ground_pixel_size(raster_pair)
    min_area = MIN_PATCH_PIXELS * pixel_m**2 / 10_000
    rules = folder / "rules.toml"
    zone_keys = "".join(f"[zones.Z{i}]\nmin_area_hm2 = {min_area:.8f}\n" for i in range(1, 6))
    rules.write_text(f"[default]\nmin_area_hm2 = {min_area:.8f}\n{zone_keys}")
    config = folder / "eval.toml"
    text = 'rules = "rules.toml"\n'
    if change:
        text += "[change]\n" + "".join(f"{key} = {value}\n" for key, value in change.items())
    config.write_text(text)
    return config


def product_mask(output: Path, pair: Pair) -> np.ndarray:
    """Rasterise OUT.gpkg's disturbance_patches (QTYPE != 非生产建设项目) onto the label grid."""
    import geopandas as gpd
    from rasterio import features

    patches = gpd.read_file(output, layer="disturbance_patches", engine="pyogrio")
    if "QTYPE" in patches.columns:
        patches = patches[patches["QTYPE"].astype(str) != NON_PROJECT]
    patches = patches[patches.geometry.notna() & ~patches.geometry.is_empty]
    if patches.empty:
        return np.zeros(pair.label.shape, dtype=bool)
    if patches.crs is not None and pair.crs is not None:
        patches = patches.to_crs(pair.crs)
    burned = features.rasterize(
        ((geom, 1) for geom in patches.geometry), out_shape=pair.label.shape,
        transform=pair.transform, fill=0, all_touched=False, dtype="uint8",
    )
    return burned.astype(bool)


def _last_line(text: str) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[-1] if lines else "(no message)"


def run_product(pair: Pair, *, tolerance: int = 1, timeout: float = 3600.0, change: dict[str, str] | None = None, extra: list[str] | None = None) -> MethodResult:
    """Run ``swc-rs detect`` on the pair in a subprocess and score its patches; never raises."""
    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix=f"eval_real_{pair.name}_") as tmp:
        folder = Path(tmp)
        try:
            zones, projects = write_product_inputs(pair, folder)
            config = write_product_config(pair, folder, change)
            output = folder / "out.gpkg"
            command = [
                *_swc_rs_command(), "detect", str(pair.before_path), str(pair.after_path),
                "--zones", str(zones), "--projects", str(projects), "-o", str(output),
                "--sensor", "auto", "--config", str(config), "-q", *(extra or []),
            ]
            done = subprocess.run(command, capture_output=True, text=True, timeout=timeout, check=False)
            if done.returncode != 0:
                message = _last_line(done.stderr or done.stdout)
                return MethodResult(None, time.perf_counter() - start, f"exit {done.returncode}: {message}")
            mask = product_mask(output, pair)
        except subprocess.TimeoutExpired:
            return MethodResult(None, time.perf_counter() - start, f"timed out after {timeout:.0f} s")
        except Exception as error:  # noqa: BLE001 - any failure of the product is reported, not fatal
            return MethodResult(None, time.perf_counter() - start, f"{type(error).__name__}: {_last_line(str(error))}")
    seconds = time.perf_counter() - start
    return MethodResult(pixel_scores(mask, pair.label, tolerance=tolerance), seconds)


# --------------------------------------------------------------------------- report


def _fmt(value: float | None, digits: int = 3) -> str:
    return "-" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.{digits}f}"


def summarise(results: list[PairResult], *, product: bool) -> dict:
    """Means over pairs. The product mean and ratio use only the pairs the product scored."""
    baselines = _baselines_run(results)
    methods = (("product",) if product else ()) + _rules_run(results) + baselines
    means: dict = {}
    for method in methods:
        for key in ("precision", "recall", "f1"):
            values = [
                getattr(r.methods[method].scores, key) for r in results
                if method in r.methods and r.methods[method].scores is not None
                and getattr(r.methods[method].scores, key) is not None
            ]
            means.setdefault(method, {})[key] = float(np.mean(values)) if values else None
        means[method]["pairs"] = sum(1 for r in results if method in r.methods and r.methods[method].scores is not None)
    if product:
        scored = [r for r in results if r.f1("product") is not None]
        best = max((float(np.mean([r.f1(m) for r in scored])) for m in baselines), default=0.0) if scored else 0.0
        means["ratio_product_best_baseline"] = (
            float(np.mean([r.f1("product") for r in scored])) / best if scored and best else None
        )
    return means


def _rules_run(results: list[PairResult]) -> tuple[str, ...]:
    """("rules",) when detect --rules was scored in this run."""
    return ("rules",) if any("rules" in r.methods for r in results) else ()


def _baselines_run(results: list[PairResult]) -> tuple[str, ...]:
    """The baselines computed in this run (none with --no-baselines)."""
    return tuple(m for m in BASELINES if any(m in r.methods for r in results))


def format_table(results: list[PairResult], means: dict, *, product: bool) -> str:
    methods = (("product",) if product else ()) + _rules_run(results) + _baselines_run(results)
    header = ["pair", "sensor", *(METHOD_TITLES[m] for m in methods)]
    if product:
        header += ["product/best", "t product s"]
    header += ["t baselines s"]
    rows = []
    for r in results:
        row = [r.pair, r.sensor]
        for m in methods:
            result = r.methods.get(m)
            row.append("error" if result is not None and result.error else _fmt(r.f1(m)))
        if product:
            row += [_fmt(r.ratio(), 2), _fmt(r.methods["product"].seconds, 1)]
        row.append(_fmt(sum(r.methods[m].seconds for m in BASELINES if m in r.methods), 1))
        rows.append(row)
    mean_row = ["mean", f"{len(results)} pairs"]
    for m in methods:
        text = _fmt(means[m]["f1"])
        if m == "product" and means[m]["pairs"] < len(results):
            text += f" ({means[m]['pairs']}/{len(results)})"
        mean_row.append(text)
    if product:
        mean_row += [_fmt(means.get("ratio_product_best_baseline"), 2), ""]
    mean_row.append("")
    rows.append(mean_row)
    widths = [max(len(str(x)) for x in col) for col in zip(header, *rows, strict=True)]

    def line(cells):
        return " | ".join(str(c).ljust(w) if i < 2 else str(c).rjust(w) for i, (c, w) in enumerate(zip(cells, widths, strict=True)))

    rule = "-+-".join("-" * w for w in widths)
    return "\n".join([line(header), rule, *(line(row) for row in rows[:-1]), rule, line(rows[-1])])


# --------------------------------------------------------------------------- main


def evaluate(data: Path, *, pairs: list[str] | None = None, product: bool = True, tolerance: int = 1,
             timeout: float = 3600.0, echo=print, baselines: bool = True,
             change: dict[str, str] | None = None, extra: list[str] | None = None,
             rules: bool = False) -> list[PairResult]:
    """Score every pair; ``echo`` receives one progress line per pair. ``rules``: also
    score ``detect --rules`` (the rule change detector and rule QTYPE) as "rules"."""
    manifest = _manifest(data)
    results = []
    for name in pairs if pairs is not None else list_pairs(data):
        dataset = manifest.get(name, {}).get("dataset", "")
        start = time.perf_counter()
        pair = load_pair(data / name, dataset)
        result = PairResult(name, pair.sensor, dataset, pair.label.shape)
        if baselines:
            result.methods.update(run_baselines(pair, tolerance=tolerance))
        if product:
            result.methods["product"] = run_product(pair, tolerance=tolerance, timeout=timeout, change=change, extra=extra)
        if product and rules:
            result.methods["rules"] = run_product(pair, tolerance=tolerance, timeout=timeout, change=change,
                                                  extra=[*(extra or []), "--rules"])
        results.append(result)
        parts = [f"{m} {_fmt(result.f1(m))}" for m in BASELINES]
        if product:
            p = result.methods["product"]
            parts.insert(0, f"product {'ERROR' if p.error else _fmt(result.f1('product'))}")
            if rules:
                parts.insert(1, f"rules {_fmt(result.f1('rules'))}")
        echo(f"[{name}] {pair.label.shape[1]}x{pair.label.shape[0]} {pair.sensor}: " + ", ".join(parts)
             + f"  ({time.perf_counter() - start:.1f} s)")
        if product and result.methods["product"].error:
            echo(f"[{name}] product failed: {result.methods['product'].error}")
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="folder of <pair>/{before,after,label}.tif (default: ../shared/eval/real)")
    parser.add_argument("--json", type=Path, default=None, help="also write per-pair precision/recall/F1 and timings here")
    parser.add_argument("--product", action=argparse.BooleanOptionalAction, default=True, help="run swc-rs detect too (default: yes)")
    parser.add_argument("--pair", action="append", default=None, help="score only this pair (repeatable)")
    parser.add_argument("--tolerance", type=int, default=1, help="pixel tolerance of the scores (default: 1)")
    parser.add_argument("--timeout", type=float, default=3600.0, help="seconds allowed per swc-rs detect run")
    parser.add_argument("--baselines", action=argparse.BooleanOptionalAction, default=True, help="compute the three baselines (default: yes)")
    parser.add_argument("--change", action="append", default=[], metavar="KEY=VALUE",
                        help="override a [change] parameter of detect (for experiments on TRAINING pairs only)")
    parser.add_argument("--detect-arg", action="append", default=[], help="extra argument for swc-rs detect (e.g. --rules)")
    parser.add_argument("--rules", action=argparse.BooleanOptionalAction, default=True,
                        help="also score detect --rules, the rule detector (default: yes)")
    args = parser.parse_args(argv)

    data = args.data.resolve()
    if not data.is_dir():
        print(f"eval_real: {data} is not a folder. Fix: pass --data <folder of pairs> (default ../shared/eval/real)", file=sys.stderr)
        return 2
    available = list_pairs(data)
    if not available:
        print(f"eval_real: {data} holds no <pair>/{{before,after,label}}.tif. Fix: pass the right --data", file=sys.stderr)
        return 2
    pairs = available
    if args.pair:
        unknown = sorted(set(args.pair) - set(available))
        if unknown:
            print(f"eval_real: unknown pair(s) {', '.join(unknown)}; pairs in {data}: {', '.join(available)}", file=sys.stderr)
            return 2
        pairs = [p for p in available if p in args.pair]

    print(f"eval_real: {len(pairs)} pairs from {data}; tolerance {args.tolerance} px; label 255 ignored; "
          f"product {'on' if args.product else 'off (--no-product)'}", flush=True)
    try:
        change = dict(item.split("=", 1) for item in args.change)
        results = evaluate(data, pairs=pairs, product=args.product, tolerance=args.tolerance,
                           timeout=args.timeout, echo=lambda s: print(s, flush=True), baselines=args.baselines,
                           change=change, extra=args.detect_arg, rules=args.rules)
    except (OSError, ValueError, rasterio.errors.RasterioError) as error:
        print(f"eval_real: cannot read a pair: {error}", file=sys.stderr)
        return 1
    means = summarise(results, product=args.product)
    print()
    print(format_table(results, means, product=args.product))
    print(f"\nF1 at {args.tolerance}-px tolerance, label 255 ignored (swc_rs.realeval). Mean = unweighted over pairs"
          + ("; product mean and mean ratio over the pairs the product scored, ratio = mean product F1 / best baseline mean F1."
             if args.product else "."))
    failed = [r for r in results if args.product and r.methods["product"].error]
    if failed:
        print(f"\nPRODUCT FAILED on {len(failed)}/{len(results)} pairs:")
        for r in failed:
            print(f"  {r.pair}: {r.methods['product'].error}")
    if args.json:
        payload = {
            "data": str(data), "tolerance": args.tolerance, "product": args.product,
            "pairs": [
                {"pair": r.pair, "sensor": r.sensor, "dataset": r.dataset, "shape": list(r.shape),
                 "ratio_product_best_baseline": r.ratio() if args.product else None,
                 "methods": {m: res.to_dict() for m, res in r.methods.items()}}
                for r in results
            ],
            "mean": means,
        }
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(payload, indent=2, ensure_ascii=False), encoding="utf-8")
        print(f"\nwrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
