"""Run the installed ``swc-rs`` in a subprocess for a Processing algorithm.

No QGIS import here: the algorithm passes its feedback (anything with ``isCanceled``,
``setProgress``, ``setProgressText``, ``pushInfo`` …). What the plugin relies on from
swc-rs:

* ``SWC_RS_PROGRESS=plain`` makes it print ``PROGRESS <pct> <stage> <done>/<total> <label>``
  lines on stderr;
* a bad input ends it with exit code 2 and ``Error: <file>: <problem>. Fix: <fix>`` on stderr;
* SIGTERM stops it like Ctrl-C: its temporary outputs are removed, exit code 130.
"""

from __future__ import annotations

import os
import queue
import re
import shutil
import signal
import subprocess
import sys
import threading
from pathlib import Path

#: Seconds a cancelled run is given to remove its temporaries before it is killed.
CANCEL_GRACE_S = 30.0
PROGRESS = re.compile(r"^PROGRESS (\d+) (\S+) (\d+)/(\d+) ?(.*)$")
LOG = re.compile(r"^(?:\d{4}-\d\d-\d\d \d\d:\d\d:\d\d )?(DEBUG|INFO|WARNING|ERROR|CRITICAL): (.*)$")
#: Environment variables of QGIS's own Python that must not leak into another Python's swc-rs.
DROPPED_ENV = ("PYTHONHOME", "PYTHONPATH", "PYTHONSTARTUP", "PYTHONEXECUTABLE", "VIRTUAL_ENV", "QGIS_PREFIX_PATH")


class SwcRsError(Exception):
    """swc-rs could not be started or ended with an error; ``str()`` is its own message."""

    def __init__(self, message: str, exit_code: int | None = None):
        super().__init__(message)
        self.exit_code = exit_code


class Cancelled(SwcRsError):
    """The user cancelled; swc-rs was stopped and wrote nothing."""


def find_executable(configured: str | None = None) -> str:
    """The swc-rs to run: ``configured`` (the provider setting) when given, else
    ``swc-rs`` on PATH or in the usual per-user and virtual-environment places."""
    if configured:
        path = Path(os.path.expanduser(str(configured)))
        if path.is_file() and os.access(path, os.X_OK):
            return str(path)
        raise SwcRsError(f"{path}: the swc-rs executable set in the provider settings does not exist or cannot be "
                         "run. Fix: set the path of swc-rs (e.g. /opt/swc-rs/.venv/bin/swc-rs) in Processing → "
                         "Options → Providers → swc-rs, or clear it to use swc-rs on PATH. "
                         "在“处理 → 选项 → 提供者 → swc-rs”中设置 swc-rs 的路径。")
    names = ("swc-rs.exe", "swc-rs") if sys.platform.startswith("win") else ("swc-rs",)
    for name in names:
        found = shutil.which(name)
        if found:
            return found
    for folder in (Path.home() / ".local" / "bin", Path("/usr/local/bin"), Path.home() / "swc-rs" / ".venv" / "bin"):
        for name in names:
            if (folder / name).is_file() and os.access(folder / name, os.X_OK):
                return str(folder / name)
    raise SwcRsError("swc-rs was not found on PATH. Fix: install swc-rs (make venv in its folder) and set the path of "
                     "its executable (.venv/bin/swc-rs) in Processing → Options → Providers → swc-rs. "
                     "未找到 swc-rs：请在“处理 → 选项 → 提供者 → swc-rs”中设置其可执行文件路径。")


def child_environment(base: dict | None = None) -> dict:
    """The environment of the swc-rs process: QGIS's Python variables removed, plain
    progress lines on, UTF-8 in and out (Chinese names on every platform)."""
    env = {k: v for k, v in (os.environ if base is None else base).items() if k not in DROPPED_ENV}
    env.update(SWC_RS_PROGRESS="plain", PYTHONIOENCODING="utf-8", PYTHONUTF8="1", PYTHONUNBUFFERED="1")
    return env


def run(argv: list[str], feedback, outputs=(), env: dict | None = None, ok_codes=(0,)) -> list[str]:
    """Run ``argv`` (swc-rs and its arguments), streaming its progress and log to
    ``feedback``; returns its stdout lines.

    ``outputs``: the files and folders the command writes; when a cancelled run had to
    be killed, the temporaries it left beside them (``.<stem>.<pid>-…``) are removed.
    ``ok_codes``: exit codes that still mean a result (a non-zero one is reported as a
    warning with swc-rs's message).

    Raises
    ------
    Cancelled
        ``feedback.isCanceled()`` became true; swc-rs was stopped (SIGTERM, then killed
        after :data:`CANCEL_GRACE_S`) and nothing was written.
    SwcRsError
        swc-rs could not be started or ended with a non-zero exit code; the message is
        swc-rs's own ``Error: …`` text.
    """
    popen = {}
    if sys.platform.startswith("win"):
        popen["creationflags"] = getattr(subprocess, "CREATE_NO_WINDOW", 0)
    else:
        popen["start_new_session"] = True  # its window or tile workers can be killed with it
    try:
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                env=child_environment() if env is None else env, **popen)
    except OSError as err:
        raise SwcRsError(f"{argv[0]}: cannot be started ({err.strerror or err}). Fix: check the swc-rs executable "
                         "in Processing → Options → Providers → swc-rs.") from err
    lines: queue.Queue = queue.Queue()
    readers = [threading.Thread(target=_read, args=(stream, kind, lines), daemon=True)
               for stream, kind in ((proc.stdout, "out"), (proc.stderr, "err"))]
    for reader in readers:
        reader.start()
    stdout: list[str] = []
    stderr: list[str] = []
    stage = None
    cancelled = False
    open_streams = 2
    while open_streams:
        if not cancelled and feedback.isCanceled():
            cancelled = True
            _stop(proc, feedback)
        try:
            kind, line = lines.get(timeout=0.1)
        except queue.Empty:
            continue
        if line is None:
            open_streams -= 1
            continue
        if kind == "out":
            stdout.append(line)
            feedback.pushInfo(line)
            continue
        stderr.append(line)
        match = PROGRESS.match(line)
        if match:
            if match.group(2) != stage:
                stage = match.group(2)
                feedback.setProgressText(match.group(5) or stage)
            feedback.setProgress(float(match.group(1)))
            continue
        _log(feedback, line)
    code = proc.wait()
    if cancelled:
        if code != 130:  # killed before it could clean up: remove what it left
            remove_temporaries(outputs, proc.pid)
        raise Cancelled("已取消：swc-rs 已停止，没有写出任何输出。Cancelled: swc-rs was stopped; no output was written.",
                        code)
    if code not in ok_codes:
        raise SwcRsError(error_message(stderr, code), code)
    if code != 0:
        warn = getattr(feedback, "pushWarning", feedback.reportError)
        warn(f"swc-rs exit code {code}: " + "\n".join(stdout[-6:]))
    return stdout


def error_message(stderr: list[str], code: int) -> str:
    """swc-rs's own message: its ``Error: …`` text (and what follows it), else the end
    of its output; with a hint where the fix names a command-line flag."""
    start = next((i for i, line in enumerate(stderr) if line.startswith(("Error: ", "Unexpected failure"))), None)
    if start is None:
        tail = [line for line in stderr if not PROGRESS.match(line)][-12:]
        text = "\n".join(tail) or f"swc-rs ended with exit code {code} and no message"
    else:
        text = "\n".join(line for line in stderr[start:] if not PROGRESS.match(line))
        if text.startswith("Error: "):
            text = text[len("Error: "):]
    if "--overwrite" in text:
        text += "\n（在本对话框中：勾选“替换已有输出 Replace existing outputs”。In this dialog: tick Replace existing outputs.）"
    return text


def remove_temporaries(outputs, pid: int) -> list[Path]:
    """Remove ``.<stem>.<pid>-…`` files and folders (swc-rs's temporaries, named after
    the writer's process id) beside each of ``outputs``; returns them."""
    removed = []
    for output in outputs:
        if not output:
            continue
        target = Path(output)
        prefix = f".{target.stem}.{pid}-"
        try:
            entries = list(target.parent.iterdir())
        except OSError:
            continue
        for entry in entries:
            if entry.name.startswith(prefix):
                if entry.is_dir():
                    shutil.rmtree(entry, ignore_errors=True)
                else:
                    entry.unlink(missing_ok=True)
                removed.append(entry)
    return removed


def _read(stream, kind: str, lines: queue.Queue) -> None:
    for raw in iter(stream.readline, b""):
        lines.put((kind, raw.decode("utf-8", errors="replace").rstrip("\r\n")))
    stream.close()
    lines.put((kind, None))


def _stop(proc: subprocess.Popen, feedback) -> None:
    """SIGTERM (swc-rs then removes its temporaries and exits 130); killed with its
    workers when it has not ended after :data:`CANCEL_GRACE_S`."""
    feedback.pushInfo("正在停止 swc-rs… Stopping swc-rs…")
    if sys.platform.startswith("win"):
        proc.terminate()  # no console for CTRL_BREAK: a hard stop; remove_temporaries cleans up
        return
    try:
        proc.send_signal(signal.SIGTERM)
    except ProcessLookupError:
        return

    def kill_late():
        try:
            proc.wait(timeout=CANCEL_GRACE_S)
        except subprocess.TimeoutExpired:
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                proc.kill()

    threading.Thread(target=kill_late, daemon=True).start()


def _log(feedback, line: str) -> None:
    match = LOG.match(line)
    level, text = (match.group(1), match.group(2)) if match else ("", line)
    if level in ("WARNING", "ERROR", "CRITICAL") and hasattr(feedback, "pushWarning"):
        feedback.pushWarning(text)
    else:
        feedback.pushConsoleInfo(line)
