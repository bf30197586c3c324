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
    argv = [SYSTEM_PYTHON, str(CHECK), str(plugin), str(wrapper), str(work)]
    if os.environ.get("SWC_RS_SHOTS"):
        argv.append(str((ROOT / os.environ["SWC_RS_SHOTS"]).resolve()))
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
    if "dialog" in report:
        assert report["dialog"]["bytes"] < 200 * 1024
