"""What a program driving swc-rs (the QGIS plugin) relies on: ``SWC_RS_PROGRESS=plain``
progress lines, and SIGTERM stopping a run like Ctrl-C with nothing written."""

from __future__ import annotations

import io
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import click
from click.testing import CliRunner

from swc_rs.cli.common import handle_errors
from swc_rs.cli.progress import plain_progress, progress_bar

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "data" / "sample_tiles"
SWC_RS = Path(sys.executable).parent / "swc-rs"  # the console script of this environment
LINE = re.compile(r"^PROGRESS (\d+) (\S+) (\d+)/(\d+) (.+)$")


def _env() -> dict:
    env = dict(os.environ, SWC_RS_PROGRESS="plain", PYTHONPATH=str(ROOT))
    return env


def _detect_argv(output: Path, window: int) -> list[str]:
    return [str(SWC_RS), "detect", str(SAMPLE / "before.tif"), str(SAMPLE / "after.tif"),
            "--zones", str(SAMPLE / "zones.gpkg"), "--projects", str(SAMPLE / "projects.gpkg"),
            "-o", str(output), "--window-size", str(window)]


def test_plain_progress_writes_a_line_when_the_percentage_changes():
    stream = io.StringIO()
    update = plain_progress(stream)
    for done in range(0, 401):
        update("detect", done, 400)
    update("features", 3, 0)
    lines = stream.getvalue().splitlines()
    percents = [int(LINE.match(line).group(1)) for line in lines[:-1]]
    assert percents == list(range(0, 101))  # every whole percent once, in order
    assert lines[1] == "PROGRESS 1 detect 4/400 Finding patches"
    assert lines[-1] == "PROGRESS 100 features 3/0 Patch features"


def test_the_environment_variable_selects_plain_lines(monkeypatch, capsys):
    monkeypatch.setenv("SWC_RS_PROGRESS", "plain")
    with progress_bar() as progress:
        progress("detect", 1, 2)
        progress("detect", 2, 2)
    assert capsys.readouterr().err.splitlines() == ["PROGRESS 50 detect 1/2 Finding patches",
                                                    "PROGRESS 100 detect 2/2 Finding patches"]
    with progress_bar(enabled=False) as progress:  # -q still silences them
        progress("detect", 1, 2)
    assert capsys.readouterr().err == ""


def test_sigterm_stops_a_command_like_ctrl_c_and_restores_the_handler():
    before = signal.getsignal(signal.SIGTERM)

    @click.command()
    @handle_errors
    def job():
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(30)  # not reached: the handler raises as soon as os.kill returns
        click.echo("finished")

    result = CliRunner().invoke(job, [])
    assert result.exit_code == 130
    assert "Interrupted; no output was written." in result.output and "finished" not in result.output
    assert signal.getsignal(signal.SIGTERM) is before


def test_detect_streams_progress_lines(tmp_path):
    output = tmp_path / "out.gpkg"
    run = subprocess.run(_detect_argv(output, 256), capture_output=True, text=True, env=_env(), timeout=600)
    assert run.returncode == 0, run.stderr[-2000:]
    matches = [LINE.match(line) for line in run.stderr.splitlines() if line.startswith("PROGRESS ")]
    assert matches and all(matches)
    detect = [(int(m.group(1)), int(m.group(3)), int(m.group(4))) for m in matches if m.group(2) == "detect"]
    assert [d for _, d, _ in detect] == list(range(1, 17))  # 1024² px in 256² windows
    assert detect[-1] == (100, 16, 16) and all(t == 16 for _, _, t in detect)
    assert output.exists()


def test_sigterm_during_detect_leaves_no_output(tmp_path):
    output = tmp_path / "out.gpkg"
    proc = subprocess.Popen(_detect_argv(output, 128), stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True,
                            env=_env())
    try:
        seen = []
        for line in proc.stderr:  # the first of 64 windows is done: the run is in full swing
            seen.append(line)
            if line.startswith("PROGRESS "):
                proc.terminate()
                break
        rest = proc.stderr.read()
        assert proc.wait(timeout=120) == 130, "".join(seen) + rest
    finally:
        if proc.poll() is None:
            proc.kill()
    assert "Interrupted; no output was written." in rest
    assert list(tmp_path.iterdir()) == []  # neither the output nor a temporary beside it
