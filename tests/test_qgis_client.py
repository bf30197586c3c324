"""Real client: open OUT.gpkg in QGIS (Debian's python3-qgis) and render its project.

Runs tests/qgis_check.py in a separate /usr/bin/python3 process with
QT_QPA_PLATFORM=offscreen (PyQGIS lives in the system Python, not in the venv).
Skipped, with the reason, where PyQGIS is not installed:

    apt-get install -y python3-qgis qgis-providers
    .venv/bin/python -m pytest tests/test_qgis_client.py -v
"""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.test_styles import detect_output

SYSTEM_PYTHON = "/usr/bin/python3"
CHECK = Path(__file__).with_name("qgis_check.py")


def _offscreen_env() -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "VIRTUAL_ENV"))}
    env["QT_QPA_PLATFORM"] = "offscreen"
    env.setdefault("XDG_RUNTIME_DIR", "/tmp/runtime-" + str(os.getuid()))
    return env


def _pyqgis_missing() -> str | None:
    if not Path(SYSTEM_PYTHON).exists() or not shutil.which(SYSTEM_PYTHON):
        return f"{SYSTEM_PYTHON} is not installed"
    probe = subprocess.run([SYSTEM_PYTHON, "-c", "import qgis.core"], capture_output=True, text=True,
                           env=_offscreen_env(), timeout=120)
    if probe.returncode != 0:
        return "PyQGIS is not installed (apt-get install python3-qgis qgis-providers)"
    return None


MISSING = _pyqgis_missing() if sys.platform.startswith("linux") else "PyQGIS check runs on Debian/Ubuntu only"

pytestmark = [pytest.mark.realclient, pytest.mark.skipif(MISSING is not None, reason=MISSING or "")]


def qgis_check(output: Path, png: Path, cwd: Path) -> dict:
    """Run tests/qgis_check.py on OUTPUT in real QGIS (offscreen), rendering PNG; its report,
    after asserting that it found no problem."""
    run = subprocess.run([SYSTEM_PYTHON, str(CHECK), str(output), str(png)], capture_output=True, text=True,
                         env=_offscreen_env(), timeout=600, cwd=cwd)
    assert run.stdout, run.stderr[-2000:]
    report = json.loads(run.stdout)
    assert run.returncode == 0, "\n".join(report["problems"])
    return report


def test_qgis_opens_styled_output_and_project(tmp_path):
    output = detect_output(tmp_path)
    png = tmp_path / "map.png"
    report = qgis_check(output, png, tmp_path)
    assert report["qgis"].startswith("3.")
    layers = report["layers"]
    assert all(layer["valid"] for layer in layers.values())
    assert layers["suspected_violations"]["renderer"] == "categorizedSymbol"
    assert layers["suspected_violations"]["aliases"]["QDNM"] == "图斑编号"
    assert layers["projects"]["labels"] is True
    assert report["project"]["loaded"] and not report["project"]["invalid"]
    assert len(report["project"]["layers"]) == 6  # four layers and the two images
    image = np.asarray(Image.open(png).convert("RGB"))
    assert image.shape == (1100, 1400, 3)
    assert len(np.unique(image.reshape(-1, 3), axis=0)) > 50  # imagery and symbols, not a blank page
    red = np.all(np.abs(image.astype(int) - (227, 26, 28)) < 40, axis=2)
    assert red.any() or (np.abs(image.astype(int) - (255, 190, 0)) < 40).all(axis=2).any()
