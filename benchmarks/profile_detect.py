"""`make profile`: where a `swc-rs detect` run and one batch tile spend wall and CPU time, by stage.

Each run is a fresh subprocess (so start-up and imports count as they do for a user),
on the bench scene of ``make bench`` (:func:`bench_detect.ensure_scene`, generated once
and cached; default 4096² px, ``--size``) and on one tile of ``--tile`` px cut from its
north-west corner (run as the batch runs a tile: :func:`swc_rs.batch.run_tile`, one
core). Inside the child the pipeline's own stage clock (``run_info["timings_s"]``,
``timings_cpu_s``) is extended to read the CPU seconds of the window workers as well
(live children from /proc via psutil, reaped ones from ``RUSAGE_CHILDREN``); the stages
before and after the pipeline (interpreter start-up, imports, CLI set-up, GeoPackage
and chips, shutdown) are timed around it. CPU = user + system of this process and of
its worker processes.

The table is meant to be compared across commits; its format stays::

    stage | wall s | cpu s | share | main cpu s | workers cpu s

``share`` is the stage's part of the run's wall time. With ``--json FILE`` the same
numbers are written as JSON. ``--cprofile FILE`` writes a cProfile of the detect
child's main process (``python -m pstats FILE``).

    $ .venv/bin/python benchmarks/profile_detect.py                 # 4096² scene, 2048² tile
    $ .venv/bin/python benchmarks/profile_detect.py --size 8192 --repeat 3
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import bench_batch  # noqa: E402  (the batch configuration)
import bench_detect  # noqa: E402  (the scene cache and the machine description)

#: Stages before and after the pipeline's own (run_info timings_s), in run order.
PRE = ("startup", "imports", "cli_setup")
POST = ("after_pipeline", "export", "cli_finish", "exit")
#: The parent's clock (epoch seconds) when it started the child: the child's start-up is measured from it.
LAUNCH_ENV = "SWC_PROFILE_LAUNCH_EPOCH"


# --------------------------------------------------------------------------- in the child


class Meter:
    """(wall, main CPU, workers' CPU) now; workers = live descendants + reaped children."""

    def __init__(self):
        import psutil

        self._me = psutil.Process()
        self._dead: dict[int, float] = {}  # last CPU seen of descendants that are gone now

    def workers_cpu(self) -> float:
        import psutil

        live = 0.0
        for child in self._me.children(recursive=True):
            try:
                t = child.cpu_times()
                live += t.user + t.system
            except psutil.Error:
                pass
        reaped = resource.getrusage(resource.RUSAGE_CHILDREN)
        return live + reaped.ru_utime + reaped.ru_stime

    def snap(self) -> tuple[float, float, float]:
        return time.perf_counter(), time.process_time(), self.workers_cpu()


class Recorder:
    """Stage laps of one child run, main and workers' CPU separately."""

    def __init__(self, meter: Meter):
        self.meter = meter
        self.rows: dict[str, list[float]] = {}
        self.last = meter.snap()

    def lap(self, stage: str) -> None:
        now = self.meter.snap()
        row = self.rows.setdefault(stage, [0.0, 0.0, 0.0])
        for i in range(3):
            row[i] += now[i] - self.last[i]
        self.last = now


def _patch_pipeline(recorder: Recorder) -> None:
    """The pipeline's stage clock laps the recorder too (same stage names as run_info)."""
    from swc_rs import pipeline

    base = pipeline._Clock

    class ProfiledClock(base):
        def __init__(self):
            recorder.lap("cli_setup")  # everything from the imports to the pipeline's start
            super().__init__()

        def lap(self, stage):
            super().lap(stage)
            recorder.lap(stage)

    pipeline._Clock = ProfiledClock


def _timed_write(recorder: Recorder, module) -> None:
    original = module.write_result

    def write_result(*args, **kwargs):
        recorder.lap("after_pipeline")  # between the pipeline's return and the export (a tile's footprint)
        try:
            return original(*args, **kwargs)
        finally:
            recorder.lap("export")

    module.write_result = write_result


def child(mode: str, argv: list[str], out_json: Path, cprofile: str | None) -> int:
    startup_cpu = time.process_time()  # interpreter start-up, until this line
    startup = time.time() - float(os.environ.get(LAUNCH_ENV, time.time()))  # since the parent's Popen
    meter = Meter()
    recorder = Recorder(meter)
    recorder.rows["startup"] = [startup, startup_cpu, 0.0]
    profiler = None
    if cprofile:
        import cProfile

        profiler = cProfile.Profile()
        profiler.enable()
    code = 0
    if mode == "detect":
        import swc_rs.cli.detect as cli_detect
        import swc_rs.export.gpkg as gpkg

        recorder.lap("imports")
        _patch_pipeline(recorder)
        _timed_write(recorder, gpkg)
        try:
            cli_detect.detect.main(argv, prog_name="swc-rs detect", standalone_mode=False)
        except SystemExit as exit_:  # click's own exits (usage errors)
            code = int(exit_.code or 0)
    else:
        import swc_rs.batch as batch

        recorder.lap("imports")
        _patch_pipeline(recorder)
        _timed_write(recorder, batch)
        plan = batch.load_batch(argv[0], workers=1)
        task = batch._requests(plan)[0]
        task.output.parent.mkdir(parents=True, exist_ok=True)
        outcome = batch.run_tile(task)
        if outcome.status != "done":
            print(f"tile failed: {outcome.error}", file=sys.stderr)
            code = 1
    recorder.lap("cli_finish")
    if profiler is not None:
        profiler.disable()
        profiler.dump_stats(cprofile)
    rows = {k: [round(x, 4) for x in v] for k, v in recorder.rows.items()}
    out_json.write_text(json.dumps({"rows": rows, "end_epoch": time.time()}))
    return code


# --------------------------------------------------------------------------- in the parent


def run_child(mode: str, argv: list[str], cprofile: str | None = None) -> dict:
    """One profiled child; its stage rows plus ``exit`` (its teardown) from the parent's wait4."""
    with tempfile.TemporaryDirectory() as tmp:
        out_json = Path(tmp) / "rows.json"
        command = [sys.executable, str(Path(__file__).resolve()), "--child", mode, str(out_json),
                   *(["--child-cprofile", cprofile] if cprofile else []), "--", *argv]
        with tempfile.TemporaryFile() as err:
            env = {**os.environ, LAUNCH_ENV: repr(time.time())}
            t0 = time.perf_counter()
            proc = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=err, env=env)
            _, status, usage = os.wait4(proc.pid, 0)
            wall = time.perf_counter() - t0
            ended = time.time()
            proc.returncode = os.waitstatus_to_exitcode(status)
            err.seek(0)
            stderr = err.read().decode(errors="replace")
        if proc.returncode != 0 or not out_json.exists():
            raise bench_detect.BenchError(f"profiled {mode} failed (exit {proc.returncode})", bench_detect._tail(stderr))
        data = json.loads(out_json.read_text())
    rows = data["rows"]
    cpu_total = usage.ru_utime + usage.ru_stime
    cpu_seen = sum(r[1] + r[2] for r in rows.values())
    rows["exit"] = [max(0.0, ended - data["end_epoch"]), 0.0, max(0.0, cpu_total - cpu_seen)]
    return {"rows": rows, "wall_s": wall, "cpu_s": cpu_total, "peak_rss_mb": usage.ru_maxrss / 1024}


def cut_tile(scene: Path, tile: int, cache: Path) -> Path:
    """The north-west ``tile``² px of the scene as a batch tile folder (cached)."""
    import rasterio
    from rasterio.windows import Window

    folder = cache / f"{scene.name}_tile{tile}"
    if (folder / bench_detect.MARKER).exists():
        return folder
    shutil.rmtree(folder, ignore_errors=True)
    out = folder / "r0c0"
    out.mkdir(parents=True)
    for name in ("before.tif", "after.tif"):
        with rasterio.open(scene / name) as src:
            window = Window(0, 0, min(tile, src.width), min(tile, src.height))
            profile = src.profile | {"width": window.width, "height": window.height,
                                     "transform": src.window_transform(window)}
            with rasterio.open(out / name, "w", **profile) as dst:
                dst.write(src.read(window=window))
                dst.descriptions = src.descriptions
                dst.update_tags(**src.tags())
    for name in ("zones.gpkg", "projects.gpkg", "sensitive.gpkg"):
        shutil.copy2(scene / name, folder / name)
    (folder / bench_detect.MARKER).write_text(json.dumps({"tile": tile, "scene": str(scene)}))
    return folder


def batch_config(tiles: Path, run_dir: Path) -> Path:
    shutil.rmtree(run_dir / "out", ignore_errors=True)
    return bench_batch.write_config(tiles, run_dir, name="profile.toml", workers=1)


def median_rows(runs: list[dict]) -> dict:
    """Per stage the median over runs of wall, main CPU and workers' CPU (stage order of the first run)."""
    names: list[str] = []
    for run in runs:
        names += [n for n in run["rows"] if n not in names]
    order = [n for n in PRE if n in names] + [n for n in names if n not in PRE + POST] + [n for n in POST if n in names]
    return {n: [statistics.median(run["rows"].get(n, [0.0, 0.0, 0.0])[i] for run in runs) for i in range(3)]
            for n in order}


def format_table(title: str, rows: dict, wall: float, cpu: float) -> str:
    """The stable table: ``stage | wall s | cpu s | share | main cpu s | workers cpu s``."""
    lines = [f"## {title}", "", "| stage | wall s | cpu s | share | main cpu s | workers cpu s |",
             "|---|---:|---:|---:|---:|---:|"]
    for name, (w, main, workers) in rows.items():
        lines.append(f"| {name} | {w:.3f} | {main + workers:.3f} | {w / wall:.1%} | {main:.3f} | {workers:.3f} |")
    sw = sum(r[0] for r in rows.values())
    sc = sum(r[1] + r[2] for r in rows.values())
    lines.append(f"| **total (sum of stages)** | {sw:.3f} | {sc:.3f} | {sw / wall:.1%} | "
                 f"{sum(r[1] for r in rows.values()):.3f} | {sum(r[2] for r in rows.values()):.3f} |")
    lines.append(f"| **measured around the process** | {wall:.3f} | {cpu:.3f} | 100.0% | | |")
    return "\n".join(lines)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--size", type=int, default=4096, help="bench scene side in px (default 4096)")
    p.add_argument("--seed", type=int, default=7, help="scene seed (default 7)")
    p.add_argument("--tile", type=int, default=2048, help="side of the batch tile cut from the scene (default 2048; 0: no tile)")
    p.add_argument("--fixed-size", type=int, default=256,
                   help="side of a tiny scene whose detect run shows the fixed costs: start-up, imports, model load "
                        "(default 256; 0: not run)")
    p.add_argument("--repeat", type=int, default=1, help="runs of each (default 1); medians per stage are reported")
    p.add_argument("--workers", type=int, default=0, help="detect --workers (default 0: every core)")
    p.add_argument("--rules", action="store_true", help="profile detect --rules instead of the default detector")
    p.add_argument("--cache", type=Path, default=bench_detect.DEFAULT_CACHE, help="scene cache (that of make bench)")
    p.add_argument("--json", type=Path, default=None, help="also write the numbers here")
    p.add_argument("--cprofile", type=Path, default=None, help="cProfile of the (last) detect child's main process")
    p.add_argument("--child", nargs=2, metavar=("MODE", "JSON"), help=argparse.SUPPRESS)
    p.add_argument("--child-cprofile", default=None, help=argparse.SUPPRESS)
    p.add_argument("rest", nargs="*", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child is None and args.size < 256:
        p.error(f"--size {args.size} is too small; expected at least 256 pixels")
    if args.child is None and args.repeat < 1:
        p.error(f"--repeat {args.repeat} must be at least 1")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.child:
        return child(args.child[0], args.rest, Path(args.child[1]), args.child_cprofile)
    cache = args.cache.resolve()
    try:
        scene, _ = bench_detect.ensure_scene(cache, args.size, args.seed)
        work = cache / f"profile_{args.size}_seed{args.seed}"
        work.mkdir(parents=True, exist_ok=True)
        out = work / "detect.gpkg"
        detect_argv = [str(scene / "before.tif"), str(scene / "after.tif"), "--zones", str(scene / "zones.gpkg"),
                       "--projects", str(scene / "projects.gpkg"), "--sensitive", str(scene / "sensitive.gpkg"),
                       "-o", str(out), "--overwrite", "-q", "--workers", str(args.workers),
                       *(["--rules"] if args.rules else [])]
        config = None
        if args.tile:
            tiles = cut_tile(scene, args.tile, cache)
            config = batch_config(tiles, work / "batch")
        tiny_argv = None
        if args.fixed_size:
            tiny, _ = bench_detect.ensure_scene(cache, args.fixed_size, args.seed)
            tiny_argv = [str(tiny / "before.tif"), str(tiny / "after.tif"), "--zones", str(tiny / "zones.gpkg"),
                         "--projects", str(tiny / "projects.gpkg"), "--sensitive", str(tiny / "sensitive.gpkg"),
                         "-o", str(work / "tiny.gpkg"), "--overwrite", "-q", *(["--rules"] if args.rules else [])]
        detect_runs, tile_runs, tiny_runs = [], [], []
        for r in range(args.repeat):
            if tiny_argv is not None:
                print(f"round {r + 1}/{args.repeat}: detect on {args.fixed_size}² px ...", end=" ", flush=True)
                tiny_runs.append(run_child("detect", tiny_argv))
                print(f"{tiny_runs[-1]['wall_s']:.2f} s", flush=True)
            print(f"round {r + 1}/{args.repeat}: detect ...", end=" ", flush=True)
            last = r == args.repeat - 1
            detect_runs.append(run_child("detect", detect_argv, str(args.cprofile) if args.cprofile and last else None))
            print(f"{detect_runs[-1]['wall_s']:.2f} s", end="", flush=True)
            if config is not None:
                shutil.rmtree(config.parent / "out", ignore_errors=True)
                print("; batch tile ...", end=" ", flush=True)
                tile_runs.append(run_child("tile", [str(config)]))
                print(f"{tile_runs[-1]['wall_s']:.2f} s", end="", flush=True)
            print(flush=True)
    except bench_detect.BenchError as exc:
        print(f"\nerror: {exc}", file=sys.stderr)
        if exc.stderr_tail:
            print("--- stderr (tail) ---\n" + exc.stderr_tail, file=sys.stderr)
        return 1
    machine = bench_detect.machine_info()
    report = {"size": args.size, "seed": args.seed, "tile": args.tile, "repeat": args.repeat,
              "detector": "rules" if args.rules else "default", "machine": machine, "tables": {}}
    print()
    print(f"machine: {machine['nproc']} usable cores, {machine['cpu_model']}, load average "
          f"{' '.join(f'{x:.2f}' for x in machine['loadavg'])} (a shared machine: other jobs may be running)")
    print(f"medians of {args.repeat} run(s); CPU = user + system, main process and its worker processes")
    for name, runs, title in (("detect", detect_runs, f"swc-rs detect{' --rules' if args.rules else ''}, "
                                                      f"{args.size}² px scene (seed {args.seed})"),
                              ("tile", tile_runs, f"one batch tile, {args.tile}² px (run_tile, one core)"),
                              ("fixed", tiny_runs, f"fixed costs: swc-rs detect{' --rules' if args.rules else ''} on a "
                                                   f"{args.fixed_size}² px scene (one window, no worker processes)")):
        if not runs:
            continue
        rows = median_rows(runs)
        wall = statistics.median(r["wall_s"] for r in runs)
        cpu = statistics.median(r["cpu_s"] for r in runs)
        rss = max(r["peak_rss_mb"] for r in runs)
        print()
        print(format_table(title, rows, wall, cpu))
        print(f"\npeak RSS (largest process): {rss:.0f} MB")
        report["tables"][name] = {"rows": {k: {"wall_s": v[0], "cpu_s": v[1] + v[2], "main_cpu_s": v[1],
                                               "workers_cpu_s": v[2]} for k, v in rows.items()},
                                  "wall_s": wall, "cpu_s": cpu, "peak_rss_mb": rss,
                                  "runs_wall_s": [r["wall_s"] for r in runs]}
    if args.json:
        args.json.write_text(json.dumps(report, indent=2))
        print(f"\njson: {args.json}")
    if args.cprofile:
        print(f"cProfile of the detect main process: {args.cprofile} (python -m pstats)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
