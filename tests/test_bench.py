"""The `make bench` harness on a tiny generated scene: every step runs, the report is complete.

No timing assertions: the machine is shared and noisy. Only shapes and sanity of the numbers.
"""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
SIZE = 256


def _load_harness():
    spec = importlib.util.spec_from_file_location("bench_detect", REPO / "benchmarks" / "bench_detect.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


bench = _load_harness()


@pytest.fixture(scope="module")
def scene(tmp_path_factory):
    """A 256 px scene through ensure_scene, starting from a half-written cache (no marker)."""
    cache = tmp_path_factory.mktemp("bench_cache")
    stale = bench.scene_dir(cache, SIZE, 7)
    stale.mkdir(parents=True)
    (stale / "before.tif").write_bytes(b"half written")
    folder, info = bench.ensure_scene(cache, SIZE, 7)
    assert info["cached"] is False
    return cache, folder


def test_ensure_scene_regenerates_half_written_cache_then_reuses_it(scene):
    cache, folder = scene
    assert (folder / bench.MARKER).exists()
    for name in ("before.tif", "after.tif", "zones.gpkg", "projects.gpkg", "sensitive.gpkg", "truth.gpkg"):
        assert (folder / name).stat().st_size > 1000, name
    again, info = bench.ensure_scene(cache, SIZE, 7)
    assert again == folder
    assert info["cached"] is True


def test_report_has_every_swc_rs_step_and_sane_numbers(scene, tmp_path):
    _, folder = scene
    steps = bench.build_steps(folder, tmp_path / "runs", include_gdal=False)
    assert [s.name for s in steps] == ["io_floor", "io_floor_2t", "gdal_chain", "detect", "detect_rules"]
    assert steps[2].skipped  # not requested here; see the GDAL test below
    results = bench.run_benchmark(folder, tmp_path / "runs", size=SIZE, seed=7, repeat=1, steps=steps,
                                  echo=lambda *a, **k: None)

    ran = ["io_floor", "io_floor_2t", "detect"] + ([] if steps[4].skipped else ["detect_rules"])
    for name in ran:
        entry = results["steps"][name]
        assert entry["skipped"] is None
        assert len(entry["wall_s"]) == 1
        assert 0 < entry["min_s"] <= entry["median_s"] <= entry["max_s"]
        assert 10 < entry["peak_rss_mb"] < 4096  # a Python process with numpy: tens of MB at least
        assert entry["median_cpu_s"] > 0
        assert entry["commands"]
    assert results["ratios"]["detect_over_io_floor"] > 0
    assert results["detect_mpix_per_s"] == pytest.approx(SIZE * SIZE / 1e6 / results["steps"]["detect"]["median_s"])
    statuses = {t["target"]: t["status"] for t in results["targets"]}
    assert len(statuses) == 4
    assert all(s in ("PASS", "FAIL", "n/a") for s in statuses.values())
    assert results["outputs"]["detect"].get("timings_s"), results["outputs"]["detect"]

    json.dumps(results)  # what main() writes
    report = bench.format_report(results, bench.machine_info())
    for label in bench.STEP_LABELS.values():
        assert label in report
    for word in ("median wall s", "peak RSS MB", "detect / I/O floor", "targets:", "Mpx/s", "usable cores", "$ "):
        assert word in report


def test_gdal_chain_step_runs_and_polygonizes(scene, tmp_path):
    missing = bench.missing_gdal_tools()
    if missing:
        pytest.skip(f"GDAL command-line tools not on PATH: {', '.join(missing)} (apt-get install gdal-bin)")
    _, folder = scene
    steps = [s for s in bench.build_steps(folder, tmp_path / "runs") if s.name == "gdal_chain"]
    results = bench.run_benchmark(folder, tmp_path / "runs", size=SIZE, seed=7, repeat=1, steps=steps,
                                  echo=lambda *a, **k: None)
    chain = results["steps"]["gdal_chain"]
    assert chain["skipped"] is None
    assert [c.split()[0] for c in chain["commands"]] == ["gdal_calc.py", "gdal_sieve.py", "gdal_polygonize.py"]
    assert chain["wall_s"][0] == pytest.approx(sum(chain["parts_median_s"]))
    assert chain["peak_rss_mb"] == max(chain["parts_peak_rss_mb"]) > 10
    assert results["outputs"]["gdal_chain"]["n_polygons"] is not None


def test_measure_reports_the_childs_own_peak_rss():
    m = bench.measure([sys.executable, "-c", "import numpy as np; a = np.ones(300 * 2**20 // 8); print(a.sum())"])
    assert m.returncode == 0
    assert 300 <= m.peak_rss_mb < 1000


def test_failing_step_raises_with_its_stderr_tail():
    step = bench.Step("broken", [[sys.executable, "-c", "import sys; sys.stderr.write('boom at stage x'); sys.exit(4)"]])
    with pytest.raises(bench.BenchError, match="exit 4") as info:
        bench.run_step(step)
    assert "boom at stage x" in info.value.stderr_tail


def test_read_floor_mode_and_option_checks(scene, capsys):
    _, folder = scene
    assert bench.main(["--read-floor", str(folder / "before.tif"), str(folder / "after.tif")]) == 0
    assert bench.read_floor([str(folder / "before.tif")]) == SIZE * SIZE
    with pytest.raises(SystemExit) as exit_info:
        bench.parse_args(["--size", "100"])
    assert exit_info.value.code == 2
    assert "--size 100" in capsys.readouterr().err


def test_two_thread_floor_reads_every_block_once(scene):
    _, folder = scene
    paths = [str(folder / "before.tif"), str(folder / "after.tif")]
    assert bench.read_floor(paths, threads=2) == bench.read_floor(paths) == 2 * SIZE * SIZE
    assert bench.main(["--read-floor", *paths, "--threads", "2"]) == 0


def test_measure_reports_every_processs_peak_rss(tmp_path):
    """A child that spawns a worker holding 300 MB: the worker is reported as its own process."""
    code = (
        "import multiprocessing as mp, time\n"
        "def hold():\n"
        "    import numpy as np\n"
        "    a = np.ones(300 * 2**20 // 8); time.sleep(0.6); print(a.sum())\n"
        "if __name__ == '__main__':\n"
        "    p = mp.get_context('spawn').Process(target=hold); p.start(); p.join()\n"
        "    raise SystemExit(p.exitcode)\n"
    )
    script = tmp_path / "spawns.py"  # a spawned child imports its parent's main module: a file
    script.write_text(code)
    m = bench.measure([sys.executable, str(script)])
    assert m.returncode == 0, m.stderr
    roles = [role for _, role, _ in m.processes]
    assert roles[0] == "main" and "worker" in roles
    worker_mb = max(mb for _, role, mb in m.processes if role == "worker")
    assert 300 <= worker_mb < 1000
    assert m.processes[0][2] < 300  # the main process never held the array
    peaks = bench._process_peaks([{"processes": [(0, role, mb) for _, role, mb in m.processes]}])
    assert peaks["worker 1"] == worker_mb
