"""Are two `swc-rs detect` (or batch month) GeoPackages the same result?

Compares every layer but the run record: the same layers, and in each the same
columns, the same rows in the same order, the same attribute values (floats exactly, or
within ``--rtol``) and the same geometries (WKB byte for byte, or within ``--tolerance``
map units with ``--tolerance``); the chips table row by row (the PNG bytes); of
``run_info`` only the fields that describe the result (patch counts, models, shift,
normalisation, parameters), not the times, paths or checksums of the run. Used to check
that a speed-up leaves the outputs of the bench scene unchanged (docs/2026-12-07-speed.md).

Exit 0 when identical, 1 when they differ (each difference printed), 2 on unreadable input.

    $ .venv/bin/python benchmarks/compare_outputs.py before.gpkg after.gpkg
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import sys
from pathlib import Path

#: run_info fields that describe the result (the rest: times, paths, checksums, versions).
RESULT_FIELDS = ("n_patches", "n_suspected", "model_id", "change_model_id", "change_detector", "qtype_by",
                 "shift_rows", "shift_cols", "shift_windows", "normalisation", "parameters", "pixel_size_m",
                 "area_crs", "period", "date_before", "date_after", "sensor")
SKIP_LAYERS = ("run_info", "layer_styles", "chips")


def _layers(path: Path) -> list[str]:
    import pyogrio

    return [str(name) for name, _ in pyogrio.list_layers(path)]


def _plain(value):
    """A numpy scalar as the Python value (for readable messages)."""
    return value.item() if hasattr(value, "item") else value


def compare_layer(a: Path, b: Path, layer: str, rtol: float, tolerance: float) -> list[str]:
    import numpy as np
    import pyogrio
    import shapely

    fa = pyogrio.read_dataframe(a, layer=layer)
    fb = pyogrio.read_dataframe(b, layer=layer)
    problems = []
    if list(fa.columns) != list(fb.columns):
        return [f"{layer}: columns differ: {list(fa.columns)} vs {list(fb.columns)}"]
    if len(fa) != len(fb):
        return [f"{layer}: {len(fa)} rows vs {len(fb)}"]
    for column in fa.columns:
        if column == "geometry":
            ga, gb = fa.geometry.values, fb.geometry.values
            if tolerance > 0:
                same = shapely.equals_exact(ga, gb, tolerance=tolerance) | (shapely.is_empty(ga) & shapely.is_empty(gb))
            else:
                same = np.array([x == y for x, y in zip(shapely.to_wkb(ga), shapely.to_wkb(gb), strict=True)])
            if not same.all():
                problems.append(f"{layer}.geometry: {int((~same).sum())} of {len(same)} differ "
                                f"(first at row {int(np.flatnonzero(~same)[0])})")
            continue
        x, y = fa[column].to_numpy(), fb[column].to_numpy()
        if x.dtype.kind in "fc" and y.dtype.kind in "fc":
            same = np.isclose(x, y, rtol=rtol, atol=0.0, equal_nan=True) if rtol > 0 else \
                ((x == y) | (np.isnan(x) & np.isnan(y)))
        else:
            same = np.array([(u == v) or (u != u and v != v) for u, v in zip(x, y, strict=True)])
        if not same.all():
            row = int(np.flatnonzero(~same)[0])
            problems.append(f"{layer}.{column}: {int((~same).sum())} of {len(same)} rows differ "
                            f"(row {row}: {_plain(x[row])!r} vs {_plain(y[row])!r})")
    return problems


def compare_chips(a: Path, b: Path) -> list[str]:
    def rows(path):
        con = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        try:
            if not con.execute("SELECT 1 FROM sqlite_master WHERE name = 'chips'").fetchone():
                return None
            columns = [r[1] for r in con.execute('PRAGMA table_info("chips")')]
            order = ", ".join(f'"{c}"' for c in columns if c != "fid")
            return columns, con.execute(f'SELECT {order} FROM chips ORDER BY {order}').fetchall()
        finally:
            con.close()

    ra, rb = rows(a), rows(b)
    if ra is None or rb is None:
        return [] if ra is rb else ["chips: the table is in only one of the files"]
    if ra[0] != rb[0]:
        return [f"chips: columns differ: {ra[0]} vs {rb[0]}"]
    if len(ra[1]) != len(rb[1]):
        return [f"chips: {len(ra[1])} rows vs {len(rb[1])}"]
    bad = sum(1 for x, y in zip(ra[1], rb[1], strict=True) if x != y)
    return [f"chips: {bad} of {len(ra[1])} rows differ"] if bad else []


def compare_run_info(a: Path, b: Path) -> list[str]:
    import pyogrio

    ia = pyogrio.read_dataframe(a, layer="run_info", read_geometry=False).iloc[0].to_dict()
    ib = pyogrio.read_dataframe(b, layer="run_info", read_geometry=False).iloc[0].to_dict()
    problems = []
    for key in RESULT_FIELDS:
        va, vb = ia.get(key), ib.get(key)
        if isinstance(va, str) and va[:1] in "[{":
            va, vb = json.loads(va), json.loads(vb) if isinstance(vb, str) else vb
        if va != vb:
            problems += [f"run_info.{key}{path}: {x!r} vs {y!r}" for path, x, y in _differences(va, vb)]
    return problems


def _differences(a, b, path: str = ""):
    """``(path, a, b)`` of every leaf where two JSON-like values differ (nested dicts by key)."""
    if isinstance(a, dict) and isinstance(b, dict):
        for key in sorted(set(a) | set(b), key=str):
            yield from _differences(a.get(key), b.get(key), f"{path}.{key}")
    elif a != b:
        yield path, a, b


def compare(a: Path, b: Path, rtol: float = 0.0, tolerance: float = 0.0) -> list[str]:
    """Every difference between the results in ``a`` and ``b`` (empty: the same)."""
    la, lb = _layers(a), _layers(b)
    if la != lb:
        return [f"layers differ: {la} vs {lb}"]
    problems: list[str] = []
    for layer in la:
        if layer not in SKIP_LAYERS:
            problems += compare_layer(a, b, layer, rtol, tolerance)
    if "run_info" in la:
        problems += compare_run_info(a, b)
    problems += compare_chips(a, b)
    return problems


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("a", type=Path)
    p.add_argument("b", type=Path)
    p.add_argument("--rtol", type=float, default=0.0, help="relative tolerance of float attributes (default 0: exact)")
    p.add_argument("--tolerance", type=float, default=0.0, help="geometry tolerance in map units (default 0: same WKB)")
    args = p.parse_args(argv)
    for path in (args.a, args.b):
        if not path.is_file():
            print(f"error: {path}: no such file; give two GeoPackages written by swc-rs detect", file=sys.stderr)
            return 2
    try:
        problems = compare(args.a, args.b, args.rtol, args.tolerance)
    except Exception as exc:  # noqa: BLE001 - unreadable input is reported, not traced
        print(f"error: cannot compare {args.a} and {args.b}: {exc}; give two GeoPackages written by swc-rs detect",
              file=sys.stderr)
        return 2
    if problems:
        print(f"{args.a} and {args.b} differ:")
        for line in problems:
            print(f"  {line}")
        return 1
    print(f"identical results: {args.a} and {args.b} (every layer, the chips and the run_info result fields)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
