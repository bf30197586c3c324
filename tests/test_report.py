"""`swc-rs report`: a self-contained HTML report, checked by parsing and in headless Chromium."""

from __future__ import annotations

import os
import re
import shutil
import sqlite3
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import geopandas as gpd
import pandas as pd
import pytest
from click.testing import CliRunner

from swc_rs import codes
from swc_rs.cli.main import cli
from swc_rs.cli.report import report
from swc_rs.errors import OutputExistsError
from swc_rs.export.report import RiskScore, inspection_list, read_output, totals, write_report
from tests.conftest import make_scene

if "report" not in cli.commands:  # until main.py registers it
    cli.add_command(report)

CHROMIUM = Path("/usr/bin/chromium")
VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track", "wbr"}
# A 1×1 PNG.
PNG = bytes.fromhex("89504e470d0a1a0a0000000d49484452000000010000000108060000001f15c4890000000d4944415478da63f8cfc0f01f0005000201"
                    "a5f1e0a50000000049454e44ae426082")


class StrictParser(HTMLParser):
    """Checks that every element is closed in order, and collects URL attributes and text."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.stack: list[str] = []
        self.errors: list[str] = []
        self.urls: list[str] = []
        self.ids: list[str] = []
        self.text: list[str] = []
        self.scripts = 0

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        for key in ("src", "href", "xlink:href", "action", "data"):
            if key in attrs:
                self.urls.append(attrs[key] or "")
        if "id" in attrs:
            self.ids.append(attrs["id"])
        if tag == "script":
            self.scripts += 1
            if "src" in attrs:
                self.errors.append("external script")
        if tag not in VOID:
            self.stack.append(tag)

    def handle_startendtag(self, tag, attrs):
        self.handle_starttag(tag, attrs)
        if tag not in VOID:
            self.stack.pop()

    def handle_endtag(self, tag):
        if not self.stack or self.stack[-1] != tag:
            self.errors.append(f"unexpected </{tag}> (open: {self.stack[-3:]})")
            return
        self.stack.pop()

    def handle_data(self, data):
        self.text.append(data)


def parse(text: str) -> StrictParser:
    parser = StrictParser()
    parser.feed(text)
    parser.close()
    return parser


@pytest.fixture(scope="module")
def output(tmp_path_factory) -> Path:
    """A small detect output: one compliant patch, two 疑似未批先建, one overrun; with chips."""
    folder = tmp_path_factory.mktemp("report")
    scene = make_scene(folder, squares=((60, 35, 20), (100, 100, 30), (20, 110, 25), (40, 70, 30)))
    out = folder / "out.gpkg"
    args = ["detect", str(scene.before), str(scene.after), "--zones", str(scene.zones), "--projects", str(scene.projects),
            "-o", str(out), "--rules", "-q"]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    return out


def with_chips(output: Path, folder: Path) -> Path:
    """A copy of ``output`` whose chips table holds a known PNG for every suspected patch."""
    path = folder / "chips.gpkg"
    shutil.copyfile(output, path)
    listed = gpd.read_file(output, layer="suspected_violations")
    with sqlite3.connect(path) as db:
        db.execute("DROP TABLE IF EXISTS chips")
        db.execute("CREATE TABLE chips (fid INTEGER PRIMARY KEY, QDNM TEXT, DATE_KIND TEXT, DATE TEXT, PNG BLOB)")
        for q in listed.QDNM:
            for kind in ("before", "after"):
                db.execute("INSERT INTO chips (QDNM, DATE_KIND, DATE, PNG) VALUES (?, ?, ?, ?)", (q, kind, "2026-11-02", PNG))
    return path


def test_report_holds_the_totals_and_is_valid_self_contained_html(output, tmp_path):
    html_path = tmp_path / "report.html"
    result = CliRunner().invoke(cli, ["report", str(output), "-o", str(html_path)])
    assert result.exit_code == 0, result.output
    text = html_path.read_text(encoding="utf-8")
    parser = parse(text)
    assert parser.errors == [] and parser.stack == []
    assert not re.search(r"https?:", text, re.IGNORECASE)  # nothing to fetch, not even a namespace
    assert all(u.startswith(("#", "data:")) for u in parser.urls), parser.urls
    assert parser.scripts == 1
    patches = gpd.read_file(output, layer="disturbance_patches")
    numbers = totals(patches, gpd.read_file(output, layer="zones"))
    body = " ".join(parser.text)
    zone = numbers["zone"].iloc[0]
    assert zone.ZONE_CODE == "Z3" and zone.N == len(patches) == 4
    assert f"{zone.A_ALL:.4f}" in body
    byd = numbers["byd"].set_index("BYD")
    assert byd.at[codes.UNAPPROVED, "N"] == 2 and byd.at[codes.OVERRUN, "N"] == 1 and byd.at[codes.COMPLIANT, "N"] == 1
    colour = numbers["colour"].set_index("X_COLOR")
    assert colour.at[codes.YELLOW, "N"] + colour.at[codes.RED, "N"] == 3
    for value in (codes.UNAPPROVED, codes.OVERRUN, codes.COMPLIANT, "按分区", "按三色", "按合规性"):
        assert value in body
    # A card per suspected patch, linked from the inspection list.
    listed = gpd.read_file(output, layer="suspected_violations")
    for q in listed.QDNM:
        assert f"p-{q}" in parser.ids and f"#p-{q}" in parser.urls


def test_chips_are_embedded_as_data_uris(output, tmp_path):
    source = with_chips(output, tmp_path)
    data = read_output(source)
    assert len(data.chips) == 2 * len(gpd.read_file(output, layer="suspected_violations"))
    path = write_report(source, tmp_path / "report.html")
    parser = parse(path.read_text(encoding="utf-8"))
    images = [u for u in parser.urls if u.startswith("data:image/png;base64,")]
    assert len(images) == len(data.chips)


def test_inspection_ranking_follows_the_documented_score():
    frame = pd.DataFrame({
        "QDNM": ["a", "b", "c", "d"],
        "BYD": [codes.UNAPPROVED, codes.UNAPPROVED, codes.OVERRUN, codes.COMPLIANT],
        "X_COLOR": [codes.YELLOW, codes.RED, codes.YELLOW, codes.GREEN],
        "QAREA": [4.0, 0.5, 1.0, 9.0], "EAREA": [4.0, 0.5, 0.2, 0.0], "X_CONF": [1.0, 0.2, 0.6, 1.0],
        "X_SENS": ["", "", "生态保护红线", ""],
    })
    ranked = inspection_list(frame)
    # A large, sure yellow patch may outrank a small, unsure red one; 合规 is not listed.
    assert list(ranked.QDNM) == ["a", "c", "b"]
    assert list(ranked.SCORE) == [25 + 20 + 15, 25 + 10 + 9 + 15, 50 + 5 + 3]
    assert list(ranked.RANK) == [1, 2, 3]
    assert RiskScore().score(frame).max() <= 100


def test_existing_report_needs_overwrite(output, tmp_path):
    path = tmp_path / "report.html"
    path.write_text("precious")
    result = CliRunner().invoke(cli, ["report", str(output), "-o", str(path)])
    assert result.exit_code == 2 and "--overwrite" in result.output
    assert path.read_text() == "precious"
    with pytest.raises(OutputExistsError):
        write_report(output, path)
    assert CliRunner().invoke(cli, ["report", str(output), "-o", str(path), "--overwrite"]).exit_code == 0
    assert "<!DOCTYPE html>" in path.read_text(encoding="utf-8")
    assert not list(tmp_path.glob(".report.*"))  # no temporary left behind


def test_report_of_a_non_output_is_a_clear_error(tmp_path):
    bad = tmp_path / "bad.gpkg"
    bad.write_text("not a geopackage")
    result = CliRunner().invoke(cli, ["report", str(bad), "-o", str(tmp_path / "r.html")])
    assert result.exit_code == 2 and "bad.gpkg" in result.output
    assert not (tmp_path / "r.html").exists()


def _chromium(page: Path, folder: Path) -> tuple[subprocess.CompletedProcess, Path]:
    shot = folder / f"{page.stem}.png"
    args = [str(CHROMIUM), "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
            "--disable-component-update", "--disable-sync", "--no-first-run", f"--user-data-dir={folder / 'profile'}",
            "--enable-logging=stderr", "--v=0", "--window-size=1280,2000", f"--screenshot={shot}", page.resolve().as_uri()]
    done = subprocess.run(args, capture_output=True, text=True, timeout=120, env={**os.environ, "LANG": "C.UTF-8"})
    return done, shot


def _console(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if ":CONSOLE(" in line or "Uncaught" in line]


@pytest.mark.skipif(not CHROMIUM.exists(), reason="/usr/bin/chromium is absent (Debian package chromium); the browser test needs it")
def test_report_loads_in_headless_chromium_without_console_errors(output, tmp_path):
    source = with_chips(output, tmp_path)
    page = write_report(source, tmp_path / "report.html")
    # The check is not vacuous: a page with a script error is caught the same way.
    broken = tmp_path / "broken.html"
    broken.write_text("<!DOCTYPE html><html><body><script>undefinedFunction();</script></body></html>", encoding="utf-8")
    done, _ = _chromium(broken, tmp_path)
    assert _console(done.stderr), "chromium did not log the deliberate script error; cannot check the report"
    done, shot = _chromium(page, tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    assert _console(done.stderr) == [], _console(done.stderr)
    assert shot.exists() and shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 10_000
