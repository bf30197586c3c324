"""The QGIS Processing plugin, for real: built to its zip, installed into a QGIS profile,
its algorithms run this checkout's swc-rs on the bundled sample.

Runs tests/qgis_plugin_check.py in a separate /usr/bin/python3 process with
QT_QPA_PLATFORM=offscreen (PyQGIS lives in the system Python, not in the venv).
Skipped, with the reason, where PyQGIS is not installed:

    apt-get install -y python3-qgis qgis-providers fonts-wqy-microhei
    .venv/bin/python -m pytest tests/test_qgis_plugin.py -v

With SWC_RS_SHOTS=docs/zh/img the detect dialog is also grabbed to
docs/zh/img/plugin_dialog.png (the Chinese guide's screenshot).
"""

import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from tests.erosion_scene import write_scene
from tests.test_batch import make_city, write_config
from tests.test_qgis_client import MISSING, SYSTEM_PYTHON, _offscreen_env

ROOT = Path(__file__).resolve().parents[1]
CHECK = Path(__file__).with_name("qgis_plugin_check.py")
BUILD = ROOT / "qgis_plugin" / "build.py"
SWC_RS = Path(sys.executable).parent / "swc-rs"  # the console script of this environment


def build_zip(output: Path) -> Path:
    run = subprocess.run([sys.executable, str(BUILD), "--output", str(output)], capture_output=True, text=True,
                         timeout=120)
    assert run.returncode == 0, run.stderr
    return output


def test_the_zip_is_reproducible_and_holds_the_plugin(tmp_path):
    first, second = build_zip(tmp_path / "a.zip"), build_zip(tmp_path / "b.zip")
    assert first.read_bytes() == second.read_bytes()
    with zipfile.ZipFile(first) as archive:
        names = archive.namelist()
        metadata = archive.read("swc_rs_processing/metadata.txt").decode()
    assert {"swc_rs_processing/__init__.py", "swc_rs_processing/metadata.txt", "swc_rs_processing/provider.py",
            "swc_rs_processing/algorithms.py", "swc_rs_processing/runner.py"} <= set(names)
    assert all(n.startswith("swc_rs_processing/") and "__pycache__" not in n for n in names)
    assert "qgisMinimumVersion=3.22" in metadata and "hasProcessingProvider=yes" in metadata


@pytest.mark.realclient
@pytest.mark.skipif(MISSING is not None, reason=MISSING or "")
def test_plugin_in_qgis_detects_loads_styled_layers_reports_errors_and_cancels(tmp_path):
    plugin = build_zip(tmp_path / "swc_rs_processing.zip")
    # The swc-rs of this checkout: the plugin gives its child a clean environment, so the
    # code under test is put on the path by a wrapper (exec: the plugin signals swc-rs itself).
    wrapper = tmp_path / "swc-rs"
    wrapper.write_text(f'#!/bin/sh\nPYTHONPATH="{ROOT}" exec "{SWC_RS}" "$@"\n')
    wrapper.chmod(0o755)
    work = tmp_path / "work"
    work.mkdir()
    argv = [SYSTEM_PYTHON, str(CHECK), str(plugin), str(wrapper), str(work),
            "--erosion", str(write_scene(tmp_path / "erosion_scene")["dem"].parent),
            "--batch", str(write_config(make_city(tmp_path / "city"), tmp_path / "batch"))]
    if os.environ.get("SWC_RS_SHOTS"):
        argv += ["--shots", str((ROOT / os.environ["SWC_RS_SHOTS"]).resolve())]
    run = subprocess.run(argv, capture_output=True, text=True, env=_offscreen_env(), timeout=900, cwd=tmp_path)
    assert run.stdout, run.stderr[-3000:]
    report = json.loads(run.stdout)
    assert run.returncode == 0, "\n".join(report["problems"])
    assert report["qgis"].startswith("3.")
    assert report["provider"]["algorithms"] == ["swcrs:batch", "swcrs:detect", "swcrs:erosion", "swcrs:export",
                                                "swcrs:report", "swcrs:verify"]
    assert report["provider"]["plugin_file"].startswith(str(work))  # loaded from the unzipped plugin
    assert report["help_bilingual"] == report["provider"]["algorithms"]

    detect = report["detect"]
    assert detect["exists"] and set(detect["layers"]) == {"suspected_violations", "disturbance_patches", "projects",
                                                         "zones"}
    assert all(layer["valid"] for layer in detect["layers"].values())
    assert detect["layers"]["suspected_violations"]["renderer"] == "categorizedSymbol"
    assert detect["layers"]["suspected_violations"]["features"] > 0
    assert detect["group_order"][0] == "suspected_violations"
    assert 100 in detect["progress"] and "Finding patches" in detect["progress_texts"]

    assert "no ZONE_CODE field" in report["bad_input"] and "Fix:" in report["bad_input"]
    assert "Traceback" not in report["bad_input"]
    assert "cannot be run" in report["missing_executable"]

    cancel = report["cancel"]
    assert cancel["cancelled"] and "Cancelled" in cancel["message"] and cancel["left_in_folder"] == []
    assert "Interrupted; no output was written." in cancel["log_tail"]

    assert report["report"]["bytes"] > 0
    assert report["export"]["rows"] == report["export"]["red_in_output"] > 0 and report["export"]["kmz"]
    assert report["verify"]["store"]
    batch = report["batch"]
    assert batch["results"]["OUTPUT"].endswith("swc_202611.gpkg") and "suspected_violations" in batch["layers"]
    assert all(layer["valid"] for layer in batch["layers"].values())
    erosion = report["erosion"]
    assert set(erosion["layers"]) == {"erosion_counties", "erosion_zones", "erosion_grade", "erosion_modulus"}
    assert all(layer["valid"] for layer in erosion["layers"].values())
    if "dialog" in report:
        assert report["dialog"]["bytes"] < 200 * 1024


# --- the plugin's runner (no QGIS import: runs wherever the suite runs) ---------------------


def _runner():
    import importlib.util

    spec = importlib.util.spec_from_file_location("swc_rs_plugin_runner",
                                                  ROOT / "qgis_plugin" / "swc_rs_processing" / "runner.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class _Feedback:
    """What runner.run uses of QgsProcessingFeedback."""

    def __init__(self, cancel_on_progress=False):
        self.cancelled = False
        self.cancel_on_progress = cancel_on_progress
        self.progress, self.texts, self.lines, self.warnings = [], [], [], []

    def isCanceled(self):
        return self.cancelled

    def setProgress(self, value):
        self.progress.append(value)
        self.cancelled = self.cancelled or self.cancel_on_progress

    def setProgressText(self, text):
        self.texts.append(text)

    def pushInfo(self, text):
        self.lines.append(text)

    pushConsoleInfo = pushInfo

    def pushWarning(self, text):
        self.warnings.append(text)


def test_runner_gives_swc_rs_its_own_error_message(tmp_path):
    runner = _runner()
    env = dict(runner.child_environment(), PYTHONPATH=str(ROOT))
    argv = [str(SWC_RS), "detect", str(ROOT / "data/sample_tiles/before.tif"), str(ROOT / "data/sample_tiles/after.tif"),
            "--zones", str(ROOT / "data/sample_tiles/projects.gpkg"),
            "--projects", str(ROOT / "data/sample_tiles/projects.gpkg"), "-o", str(tmp_path / "out.gpkg")]
    with pytest.raises(runner.SwcRsError) as raised:
        runner.run(argv, _Feedback(), outputs=[tmp_path / "out.gpkg"], env=env)
    message = str(raised.value)
    assert raised.value.exit_code == 2
    assert message.startswith(f"{ROOT / 'data/sample_tiles/projects.gpkg'}: the zones layer has no ZONE_CODE field")
    assert "Fix:" in message and "Error:" not in message and "INFO" not in message
    assert list(tmp_path.iterdir()) == []


def test_runner_error_message_keeps_the_lines_after_error_and_hints_at_the_checkbox():
    runner = _runner()
    stderr = ["2026-12-07 10:00:00 INFO: reading", "PROGRESS 50 detect 1/2 Finding patches",
              "Error: out.gpkg: already exists. Fix: choose another name or add --overwrite"]
    message = runner.error_message(stderr, 2)
    assert message.startswith("out.gpkg: already exists. Fix:") and "替换已有输出" in message
    assert runner.error_message(["Error: field.gpkg: 2 problems", "  QDNM 1: RST 'x'", "  QDNM 2: BYD 'y'"], 2) == \
        "field.gpkg: 2 problems\n  QDNM 1: RST 'x'\n  QDNM 2: BYD 'y'"
    assert "exit code 1" in runner.error_message([], 1)


def test_runner_kills_a_run_that_ignores_the_cancel_and_removes_its_temporaries(tmp_path, monkeypatch):
    runner = _runner()
    monkeypatch.setattr(runner, "CANCEL_GRACE_S", 0.5)
    target = tmp_path / "out.gpkg"
    other = tmp_path / ".out.1-keep.gpkg"  # another writer's (by its pid): not this run's to remove
    other.write_text("x")
    script = ("import os, signal, sys, time\n"
              "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
              f"open(os.path.join({str(tmp_path)!r}, '.out.%d-abc.gpkg' % os.getpid()), 'w').write('half')\n"
              "print('PROGRESS 10 detect 1/10 Finding patches', file=sys.stderr, flush=True)\n"
              "time.sleep(60)\n")
    feedback = _Feedback(cancel_on_progress=True)
    with pytest.raises(runner.Cancelled):
        runner.run([sys.executable, "-c", script], feedback, outputs=[target])
    assert feedback.progress == [10.0] and feedback.texts == ["Finding patches"]
    assert sorted(p.name for p in tmp_path.iterdir()) == [other.name]


def test_runner_finds_the_configured_executable_or_says_where_to_set_it(tmp_path, monkeypatch):
    runner = _runner()
    text = tmp_path / "swc-rs.txt"
    text.write_text("not a program")
    with pytest.raises(runner.SwcRsError, match="Providers"):
        runner.find_executable(str(text))
    assert runner.find_executable(str(SWC_RS)) == str(SWC_RS)
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setenv("HOME", str(tmp_path))
    if not Path("/usr/local/bin/swc-rs").exists():
        with pytest.raises(runner.SwcRsError, match="not found on PATH"):
            runner.find_executable("")
    env = runner.child_environment({"PYTHONPATH": "/qgis/python", "PYTHONHOME": "/qgis", "PATH": "/bin"})
    assert env["PATH"] == "/bin" and "PYTHONPATH" not in env and "PYTHONHOME" not in env
    assert env["SWC_RS_PROGRESS"] == "plain"
