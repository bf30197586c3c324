"""Temporary files beside a target, renamed onto it; what killed runs left is removed.

Outputs and the history store are written to a hidden temporary file in the target's
folder and renamed onto the target (one ``os.replace``: a reader sees the old file or
the new one, never half of one). A run killed with SIGKILL (or by a power cut) cannot
remove its temporary file; the name carries the writer's process id, so that the next
write of the same target removes the temporaries of writers that are no longer alive.
"""

from __future__ import annotations

import errno
import logging
import os
import re
import shutil
import tempfile
from pathlib import Path

from swc_rs.errors import SwcError

log = logging.getLogger(__name__)

#: errno values that mean the disk (or the process's file-size limit) is full.
FULL = {errno.ENOSPC, errno.EFBIG, getattr(errno, "EDQUOT", errno.ENOSPC)}


class OutputWriteError(SwcError, OSError):
    """An output or the store could not be written (disk full, I/O error); nothing was
    replaced. Not bad input: exit code 1, with a message that says what to do."""

    exit_code = 1


def temporary_beside(path: Path, suffix: str | None = None) -> Path:
    """A new, empty hidden file ``.<stem>.<pid>-<random><suffix>`` in ``path``'s folder;
    stale ones of dead writers are removed first."""
    suffix = path.suffix if suffix is None else suffix
    remove_stale(path, suffix)
    fd, name = tempfile.mkstemp(prefix=f".{path.stem}.{os.getpid()}-", suffix=suffix, dir=path.parent)
    os.close(fd)
    return Path(name)


def remove_stale(path: Path, suffix: str) -> list[Path]:
    """Remove the temporaries of ``path`` (and their SQLite side files) whose writer
    process is gone; returns them."""
    pattern = re.compile(rf"^\.{re.escape(path.stem)}\.(\d+)-[^.]+{re.escape(suffix)}(-journal|-wal|-shm)?$")
    removed = []
    try:
        entries = list(os.scandir(path.parent))
    except OSError:
        return removed
    for entry in entries:
        match = pattern.match(entry.name)
        if match and not _alive(int(match.group(1))):
            Path(entry.path).unlink(missing_ok=True)
            removed.append(Path(entry.path))
    if removed:
        log.info("removed %d temporary file(s) of %s left by a run that was killed", len(removed), path)
    return removed


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's live process
        return True
    return True


def is_write_failure(err: BaseException) -> bool:
    """An error of the file system or of the GeoPackage/SQLite writer (not a bug, not bad input)."""
    import sqlite3

    import pyogrio.errors

    if isinstance(err, SwcError):
        return False
    return isinstance(err, (OSError, sqlite3.Error, pyogrio.errors.DataSourceError, pyogrio.errors.FeatureError,
                            pyogrio.errors.FieldError, pyogrio.errors.GeometryError))


def write_failed(path: Path, err: BaseException) -> OutputWriteError:
    """The error to raise when writing ``path`` failed with ``err`` (nothing was replaced)."""
    free = _free_mb(path.parent)
    nearly_full = free != "?" and float(free) < 1.0  # SQLite may report a full disk as anything
    full = nearly_full or (isinstance(err, OSError) and err.errno in FULL) or any(
        text in str(err) for text in ("No space left", "File too large", "disk is full", "database or disk is full"))
    if full:
        return OutputWriteError(f"could not be written: the disk is full ({free} MB free; {str(err)[:160]}); "
                                "nothing was replaced", path=path,
                                fix="free disk space (or raise the file-size limit, ulimit -f) and run again")
    return OutputWriteError(f"could not be written ({type(err).__name__}: {str(err)[:200]}); nothing was replaced",
                            path=path, fix=f"check the disk ({free} MB free) and the folder's permissions, then run again")


def _free_mb(folder: Path) -> str:
    try:
        return f"{shutil.disk_usage(folder).free / 2**20:.1f}"
    except OSError:
        return "?"
