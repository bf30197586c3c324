"""`make bench-batch`: `swc-rs batch` on generated tiles with 1 and 2 local workers.

Generates (once, cached) one seeded synthetic scene with
:func:`swc_rs.sample.generate_scene` and cuts it into a grid of tiles (rasterio
windows, the tiles abut exactly), so that patches cross tile edges as they do in a
city delivery. Each run is ``swc-rs batch`` in a fresh subprocess on an empty output
folder; wall time is measured around the child. Reported: wall time per worker
count, speed-up, pixels (of one date) per second, the per-stage split from the run
summary, whether the month outputs agree, and the time the whole city (3.8e9 px per
date) would take on this machine at the best rate.

It is a report: it exits 0 when the speed-up target is missed, 1 only when a run fails.

    $ .venv/bin/python benchmarks/bench_batch.py                  # 36 tiles of 2048² px, 3 rounds
    $ .venv/bin/python benchmarks/bench_batch.py --grid 4         # 16 tiles
    $ .venv/bin/python benchmarks/bench_batch.py --tile 1024 --repeat 2
    $ .venv/bin/python benchmarks/bench_batch.py --grid 4 --dask      # + a Dask LocalCluster of 1 and 2 workers

With ``--dask`` the same tiles also run on a ``distributed.LocalCluster`` (one process
per worker, one thread each) through :func:`swc_rs.batch.run_batch`; its wall time is
reported with and without the cluster's start-up, and its month output is compared
with the local runs'. A scene of ``make bench``'s cache (``.cache/bench/scene_N_seed7``)
of the right size is reused instead of generating it again.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
DEFAULT_CACHE = REPO / ".cache" / "bench-batch"
CITY_PIXELS = 3.8e9  # Ya'an at 2 m, one date
TARGET_SPEEDUP = 1.8  # issue 18
MARKER = ".complete.json"


def make_tiles(cache: Path, tile: int, grid: int, seed: int) -> Path:
    """Scene of (tile·grid)² px cut into grid×grid tiles; cached with a completion marker."""
    import rasterio
    from rasterio.windows import Window

    from swc_rs.sample import generate_scene

    size = tile * grid
    folder = cache / f"tiles_{tile}x{grid}_seed{seed}"
    if (folder / MARKER).exists():
        return folder
    shutil.rmtree(folder, ignore_errors=True)
    bench_scene = REPO / ".cache" / "bench" / f"scene_{size}_seed{seed}"
    if (bench_scene / MARKER).exists():  # make bench's scene: the same generator, size and seed
        scene_dir = bench_scene
        print(f"cutting {grid}×{grid} tiles of {tile} px from {scene_dir} (make bench's scene)", flush=True)
    else:
        scene_dir = cache / f"scene_{size}_seed{seed}"
        print(f"generating a {size}×{size} px scene (seed {seed}) in {scene_dir} ...", flush=True)
        t0 = time.perf_counter()
        generate_scene(scene_dir, seed=seed, size=size, overwrite=True)
        print(f"  {time.perf_counter() - t0:.0f} s; cutting {grid}×{grid} tiles of {tile} px", flush=True)
    for name in ("before.tif", "after.tif"):
        with rasterio.open(scene_dir / name) as src:
            for i in range(grid):
                for j in range(grid):
                    window = Window(j * tile, i * tile, tile, tile)
                    profile = src.profile | {"width": tile, "height": tile, "transform": src.window_transform(window)}
                    out = folder / f"r{i}c{j}"
                    out.mkdir(parents=True, exist_ok=True)
                    with rasterio.open(out / name, "w", **profile) as dst:
                        dst.write(src.read(window=window))
                        dst.descriptions = src.descriptions
                        dst.update_tags(**src.tags())
    for name in ("zones.gpkg", "projects.gpkg", "sensitive.gpkg"):
        shutil.copy2(scene_dir / name, folder / name)
    (folder / MARKER).write_text(json.dumps({"tile": tile, "grid": grid, "seed": seed}))
    return folder


def write_config(tiles: Path, run_dir: Path, name: str = "bench.toml", workers: int | None = None) -> Path:
    """The batch configuration of the tiles in ``tiles`` (``workers``: a [batch] workers line)."""
    run_dir.mkdir(parents=True, exist_ok=True)
    path = run_dir / name
    workers_line = f"workers = {workers}\n" if workers is not None else ""
    path.write_text(f"""
rules = "{REPO / 'zones' / 'rules.toml'}"

[batch]
period = "202611"
output = "out"
{workers_line}zones = "{tiles / 'zones.gpkg'}"
projects = "{tiles / 'projects.gpkg'}"
sensitive = ["{tiles / 'sensitive.gpkg'}"]

[batch.catalog]
before = "{tiles}/{{tile}}/before.tif"
after = "{tiles}/{{tile}}/after.tif"
""", encoding="utf-8")
    return path


def run_once(config: Path, workers: int) -> dict:
    out = config.parent / "out"
    shutil.rmtree(out, ignore_errors=True)
    command = [sys.executable, "-m", "swc_rs.cli.batch", str(config), "--workers", str(workers), "-q"]
    load = os.getloadavg()[0]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    proc = subprocess.run(command, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)  # the child and its worker processes
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    if proc.returncode != 0:
        print(proc.stdout, proc.stderr, sep="\n", file=sys.stderr)
        raise SystemExit(f"swc-rs batch --workers {workers} failed with exit code {proc.returncode}")
    summary = json.loads((out / "202611" / "swc_202611.summary.json").read_text(encoding="utf-8"))
    pixels = sum(t.get("pixels", 0) for t in summary["tile_results"])
    return {"wall_s": wall, "cpu_s": cpu, "load": load, "summary": summary, "pixels": pixels,
            "month": out / "202611" / "swc_202611.gpkg"}


def dask_child(config: Path, workers: int) -> int:
    """``--dask-child``: the batch on a LocalCluster of ``workers`` processes; prints JSON timings."""
    t0 = time.perf_counter()
    from distributed import Client, LocalCluster

    from swc_rs.batch import load_batch, run_batch

    with LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None) as cluster, \
            Client(cluster) as client:
        client.wait_for_workers(workers)
        started = time.perf_counter() - t0
        plan = load_batch(config)
        t1 = time.perf_counter()
        summary = run_batch(plan, scheduler=client)
        run_s = time.perf_counter() - t1
    print(json.dumps({"cluster_start_s": started, "run_s": run_s, "failed": len(summary.failed)}))
    return 1 if summary.failed else 0


def run_dask(config: Path, workers: int) -> dict:
    out = config.parent / "out"
    shutil.rmtree(out, ignore_errors=True)
    command = [sys.executable, str(Path(__file__).resolve()), "--dask-child", str(config), str(workers)]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    proc = subprocess.run(command, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        print(proc.stdout, proc.stderr, sep="\n", file=sys.stderr)
        raise SystemExit(f"the batch on a Dask LocalCluster of {workers} worker(s) failed (exit {proc.returncode})")
    info = json.loads(proc.stdout.strip().splitlines()[-1])
    summary = json.loads((out / "202611" / "swc_202611.summary.json").read_text(encoding="utf-8"))
    return {"wall_s": wall, "cpu_s": (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime),
            "cluster_start_s": info["cluster_start_s"], "run_s": info["run_s"], "summary": summary,
            "pixels": sum(t.get("pixels", 0) for t in summary["tile_results"]),
            "month": out / "202611" / "swc_202611.gpkg"}


def month_signature(path: Path) -> list:
    import geopandas as gpd

    frame = gpd.read_file(path, layer="disturbance_patches")
    return sorted(zip(frame["QDNM"], frame["BYD"], frame["QAREA"].round(4), frame["X_COLOR"], strict=True))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tile", type=int, default=2048, help="tile side in pixels (default 2048)")
    parser.add_argument("--grid", type=int, default=6, help="tiles per side (default 6: 36 tiles; each worker process pays its start-up and model load once, so few tiles understate the speed-up of a real month of ~900 tiles)")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--workers", default="1,2", help="worker counts to time (default 1,2)")
    parser.add_argument("--repeat", type=int, default=3, help="interleaved rounds (default 3; medians are reported)")
    parser.add_argument("--cache", type=Path, default=DEFAULT_CACHE)
    parser.add_argument("--dask", action="store_true", help="also run the tiles on a Dask LocalCluster of each worker count")
    parser.add_argument("--dask-child", nargs=2, metavar=("CONFIG", "WORKERS"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.dask_child:
        return dask_child(Path(args.dask_child[0]), int(args.dask_child[1]))
    counts = [int(w) for w in args.workers.split(",")]
    tiles = make_tiles(args.cache, args.tile, args.grid, args.seed)
    runs: dict[int, list[dict]] = {w: [] for w in counts}
    dask_runs: dict[int, list[dict]] = {w: [] for w in counts}
    for round_ in range(args.repeat):
        for w in counts:
            config = write_config(tiles, args.cache / f"run_w{w}")
            result = run_once(config, w)
            runs[w].append(result)
            print(f"round {round_ + 1}: {w} worker(s) {result['wall_s']:.1f} s", flush=True)
            if args.dask:
                config = write_config(tiles, args.cache / f"run_dask_w{w}")
                result = run_dask(config, w)
                dask_runs[w].append(result)
                print(f"round {round_ + 1}: Dask LocalCluster, {w} worker(s) {result['wall_s']:.1f} s "
                      f"({result['cluster_start_s']:.1f} s cluster start-up)", flush=True)

    base = statistics.median(r["wall_s"] for r in runs[counts[0]])
    rows, report = [], {"tile_px": args.tile, "tiles": args.grid**2, "seed": args.seed, "repeat": args.repeat,
                        "cpus": os.cpu_count(), "load_avg_1m": os.getloadavg()[0], "python": platform.python_version(),
                        "runs": {}}
    best_rate = 0.0
    for w in counts:
        wall = statistics.median(r["wall_s"] for r in runs[w])
        last = runs[w][-1]
        pixels = last["pixels"]
        rate = pixels / wall
        best_rate = max(best_rate, rate)
        timings = last["summary"]["timings_s"]
        cpu = statistics.median(r["cpu_s"] for r in runs[w])
        rows.append((w, wall, base / wall, rate / 1e6, cpu, cpu / wall, timings["tiles"], timings["assembly"],
                     last["summary"]["patches"]["total"], statistics.median(r["load"] for r in runs[w])))
        report["runs"][w] = {"wall_s": [round(r["wall_s"], 2) for r in runs[w]], "cpu_s": [round(r["cpu_s"], 2) for r in runs[w]],
                             "pixels": pixels, "timings_s": timings,
                             "patches": last["summary"]["patches"]["total"]}
    same = len({json.dumps(month_signature(runs[w][-1]["month"]), default=str) for w in counts}) == 1
    city_h = CITY_PIXELS / best_rate / 3600
    speedup = rows[-1][2] if len(rows) > 1 else 1.0
    report.update(same_month=same, speedup=round(speedup, 3), city_hours=round(city_h, 2))

    print()
    print(f"swc-rs batch: {args.grid**2} tiles of {args.tile}² px ({rows[0][3] * rows[0][1]:.1f} Mpx per date), "
          f"seed {args.seed}, {os.cpu_count()} CPUs, load {os.getloadavg()[0]:.1f}, median of {args.repeat}")
    print()
    print("| workers | wall s | speed-up | Mpx/s (one date) | CPU s | cores used (CPU/wall) | tiles s | assembly s | patches | load before |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for w, wall, sp, mps, cpu, used, t_tiles, t_asm, n, load in rows:
        print(f"| {w} | {wall:.1f} | {sp:.2f}× | {mps:.2f} | {cpu:.1f} | {used:.2f} | {t_tiles:.1f} | {t_asm:.1f} | {n} | {load:.1f} |")
    print()
    print(f"month outputs identical across worker counts: {'yes' if same else 'NO'}")
    print(f"speed-up {speedup:.2f}× (target ≥ {TARGET_SPEEDUP}×): {'met' if speedup >= TARGET_SPEEDUP else 'missed'}"
          + ("" if speedup >= TARGET_SPEEDUP else
             " — compare 'cores used': below ~1.8 with 2 workers means other load held the second core"))
    print(f"whole city, {CITY_PIXELS:.1e} px per date at {best_rate / 1e6:.2f} Mpx/s: {city_h:.1f} h "
          f"({city_h * 60:.1f} min) on this machine")
    last = runs[counts[-1]][-1]
    cpu_rate = last["pixels"] / statistics.median(r["cpu_s"] for r in runs[counts[-1]]) * min(counts[-1], os.cpu_count() or 1)
    report["city_hours_if_cores_free"] = round(CITY_PIXELS / cpu_rate / 3600, 2)
    print(f"  if {min(counts[-1], os.cpu_count() or 1)} cores were free ({cpu_rate / 1e6:.2f} Mpx/s from CPU seconds): "
          f"{report['city_hours_if_cores_free']:.1f} h")
    tile_seconds = [o["seconds"] for o in runs[counts[0]][-1]["summary"]["tile_results"] if o.get("seconds")]
    if tile_seconds:
        per_tile = statistics.median(tile_seconds)
        report["tile_seconds_median_1_worker"] = per_tile
        print(f"per tile ({args.tile}² px, one worker, last round): median {per_tile:.2f} s, "
              f"{args.tile**2 / per_tile / 1e6:.2f} Mpx/s per core")
    if args.dask:
        print()
        print("Dask LocalCluster (one process per worker, one thread each), same tiles:")
        print()
        print("| workers | wall s | run_batch s (without cluster start-up) | speed-up (run_batch) | cluster start-up s | "
              "Mpx/s | CPU s | same month as local |")
        print("|---|---|---|---|---|---|---|---|")
        local_sig = json.dumps(month_signature(runs[counts[0]][-1]["month"]), default=str)
        d_base = statistics.median(r["run_s"] for r in dask_runs[counts[0]])
        report["dask"] = {}
        for w in counts:
            d = dask_runs[w]
            wall = statistics.median(r["wall_s"] for r in d)
            run = statistics.median(r["run_s"] for r in d)
            start = statistics.median(r["cluster_start_s"] for r in d)
            cpu = statistics.median(r["cpu_s"] for r in d)
            same_d = json.dumps(month_signature(d[-1]["month"]), default=str) == local_sig
            print(f"| {w} | {wall:.1f} | {run:.1f} | {d_base / run:.2f}× | {start:.1f} | {d[-1]['pixels'] / run / 1e6:.2f} | "
                  f"{cpu:.1f} | {'yes' if same_d else 'NO'} |")
            report["dask"][w] = {"wall_s": [round(r["wall_s"], 2) for r in d], "run_s": [round(r["run_s"], 2) for r in d],
                                 "cluster_start_s": [round(r["cluster_start_s"], 2) for r in d],
                                 "cpu_s": [round(r["cpu_s"], 2) for r in d], "same_month_as_local": same_d}
    (args.cache / "report.json").write_text(json.dumps(report, indent=2, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
