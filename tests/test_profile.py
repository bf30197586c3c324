"""`make profile` (benchmarks/profile_detect.py) on a tiny generated scene: every stage is in
the table, the stages add up to the run, and a batch tile is profiled too. No timing
assertions: only the shape and sanity of the numbers."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def _load(name):
    sys.path.insert(0, str(REPO / "benchmarks"))
    spec = importlib.util.spec_from_file_location(name, REPO / "benchmarks" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


profile = _load("profile_detect")


def test_profile_tables_cover_every_stage_of_detect_and_of_a_batch_tile(tmp_path, capsys):
    out = tmp_path / "profile.json"
    assert profile.main(["--size", "256", "--tile", "128", "--fixed-size", "0", "--cache", str(tmp_path / "cache"),
                         "--json", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "| stage | wall s | cpu s | share | main cpu s | workers cpu s |" in printed
    report = json.loads(out.read_text())
    assert set(report["tables"]) == {"detect", "tile"}
    for name, table in report["tables"].items():
        rows = table["rows"]
        for stage in ("startup", "imports", "cli_setup", "read_inputs", "calibrate", "detect", "compliance",
                      "export", "exit"):
            assert stage in rows, (name, stage)
        assert list(rows)[:3] == ["startup", "imports", "cli_setup"] and list(rows)[-1] == "exit"
        assert all(r["wall_s"] >= 0 and r["cpu_s"] >= 0 for r in rows.values())
        # the stages tile the run: their sum is the wall time measured around the child
        total = sum(r["wall_s"] for r in rows.values())
        assert 0.8 * table["wall_s"] <= total <= 1.2 * table["wall_s"] + 0.5, (name, total, table["wall_s"])
        assert abs(sum(r["cpu_s"] for r in rows.values()) - table["cpu_s"]) < 0.05 + 0.05 * table["cpu_s"]
        assert rows["export"]["wall_s"] > 0 and rows["detect"]["cpu_s"] > 0
        assert 10 < table["peak_rss_mb"] < 4096


def test_format_table_is_the_stable_markdown_table():
    rows = {"startup": [0.1, 0.05, 0.0], "detect": [0.9, 0.5, 0.8]}
    text = profile.format_table("t", rows, 1.0, 1.35)
    lines = text.splitlines()
    assert lines[2] == "| stage | wall s | cpu s | share | main cpu s | workers cpu s |"
    assert lines[4] == "| startup | 0.100 | 0.050 | 10.0% | 0.050 | 0.000 |"
    assert lines[5] == "| detect | 0.900 | 1.300 | 90.0% | 0.500 | 0.800 |"
    assert "| **measured around the process** | 1.000 | 1.350 | 100.0% | | |" in text
