"""The user guides' screenshots, rendered from the sample scene by the real clients.

The map comes from QGIS (tests/qgis_check.py renders the GeoPackage's own project,
with its default styles) and the report page from headless Chromium, both from one
`swc-rs detect` run on data/sample_tiles — what `make demo` writes. Each test checks
that the picture shows what the guide says it shows; with ``SWC_RS_DOCS_IMG=DIR``
(``make docs-img``: DIR = docs/zh/img) the pictures are also copied there, as
``qgis_map.png`` and ``report.png``, for README.md and docs/zh/用户手册.md. Skipped,
with the reason, where PyQGIS or Chromium is not installed (`.ci/run` installs both).
"""

import os
import shutil
from pathlib import Path

import numpy as np
import pyogrio
import pytest
from click.testing import CliRunner
from PIL import Image

from swc_rs.cli.main import cli
from swc_rs.export.report import write_report
from tests.test_qgis_client import MISSING, qgis_check
from tests.test_report import CHROMIUM, _chromium, _console

REPO = Path(__file__).resolve().parents[1]
SAMPLE = REPO / "data" / "sample_tiles"

pytestmark = pytest.mark.realclient


@pytest.fixture(scope="module")
def demo(tmp_path_factory) -> Path:
    """`make demo`'s output: detect on the sample scene with its sensitive areas."""
    folder = tmp_path_factory.mktemp("docs_images")
    output = folder / "demo.gpkg"
    args = ["detect", str(SAMPLE / "before.tif"), str(SAMPLE / "after.tif"), "--zones", str(SAMPLE / "zones.gpkg"),
            "--projects", str(SAMPLE / "projects.gpkg"), "--sensitive", str(SAMPLE / "sensitive.gpkg"),
            "-o", str(output), "--workers", "1", "-q"]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    return output


def publish(png: Path, name: str) -> None:
    folder = os.environ.get("SWC_RS_DOCS_IMG")
    if folder:
        Path(folder).mkdir(parents=True, exist_ok=True)
        shutil.copyfile(png, Path(folder) / name)


def share(image: np.ndarray, rgb, tolerance: int = 40) -> float:
    return float(np.all(np.abs(image.astype(int) - rgb) < tolerance, axis=2).mean())


@pytest.mark.skipif(MISSING is not None, reason=MISSING or "")
def test_the_styled_map_in_qgis(demo, tmp_path):
    png = tmp_path / "qgis_map.png"
    report = qgis_check(demo, png, tmp_path)
    listed = pyogrio.read_info(demo, layer="suspected_violations")["features"]
    assert report["layers"]["suspected_violations"]["features"] == listed > 0
    image = np.asarray(Image.open(png).convert("RGB"))
    assert len(np.unique(image.reshape(-1, 3), axis=0)) > 1000  # the after image under the patches
    assert share(image, (227, 26, 28)) > 0.0005 and share(image, (255, 190, 0)) > 0.0005  # red and yellow patches
    publish(png, "qgis_map.png")


@pytest.mark.skipif(not CHROMIUM.exists(), reason="/usr/bin/chromium is absent (Debian package chromium)")
def test_the_report_in_chromium(demo, tmp_path):
    page = write_report(demo, tmp_path / "report.html")
    done, shot = _chromium(page, tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    assert _console(done.stderr) == [], _console(done.stderr)
    image = np.asarray(Image.open(shot).convert("RGB"))
    assert image.shape[:2] == (2000, 1280)
    assert len(np.unique(image.reshape(-1, 3), axis=0)) > 1000  # text, the map and the evidence chips
    assert share(image, (255, 255, 255), 8) < 0.9  # not a blank page
    publish(shot, "report.png")
