"""Peak RSS of every process and wall/CPU time of `swc-rs detect` at several window sizes.

    $ .venv/bin/python benchmarks/window_size_probe.py .cache/bench/scene_8192_seed7 1024 768 1024 768

SCENE is a folder as `make bench` generates it (before.tif, after.tif, zones.gpkg,
projects.gpkg, sensitive.gpkg); each following argument is one run with that
`[raster] window_size`, in the order given (repeat sizes to interleave rounds). Outputs go
to the system's temporary folder as ws<SIZE>.gpkg; compare two of them with
benchmarks/compare_outputs.py.
"""

from __future__ import annotations

import resource
import sys
import tempfile
import time
from pathlib import Path

import psutil

BIN = Path(sys.executable).parent


def run(scene: Path, window: int) -> None:
    tmp = Path(tempfile.gettempdir())
    config = tmp / f"ws{window}.toml"
    config.write_text(f"[raster]\nwindow_size = {window}\n")
    cmd = [str(BIN / "swc-rs"), "detect", str(scene / "before.tif"), str(scene / "after.tif"),
           "--zones", str(scene / "zones.gpkg"), "--projects", str(scene / "projects.gpkg"),
           "--sensitive", str(scene / "sensitive.gpkg"), "-o", str(tmp / f"ws{window}.gpkg"),
           "--overwrite", "-q", "--config", str(config)]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    proc = psutil.Popen(cmd)
    peaks: dict[int, int] = {}
    while proc.poll() is None:
        try:
            for p in [proc, *proc.children(recursive=True)]:
                try:
                    peaks[p.pid] = max(peaks.get(p.pid, 0), p.memory_info().rss)
                except psutil.Error:
                    pass
        except psutil.Error:
            pass
        time.sleep(0.05)
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
    rss = sorted((round(v / 2**20) for v in peaks.values()), reverse=True)
    print(f"window {window:>5}  exit {proc.returncode}  wall {wall:6.1f} s  cpu {cpu:6.1f} s  "
          f"peak RSS per process (MB, largest first) {rss}", flush=True)


def main(argv: list[str]) -> int:
    if len(argv) < 2:
        print(__doc__)
        return 2
    scene = Path(argv[0])
    for window in argv[1:]:
        run(scene, int(window))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
