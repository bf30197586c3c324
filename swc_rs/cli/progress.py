"""Render the library's progress callbacks with rich (bars on a terminal, lines otherwise).

``SWC_RS_PROGRESS=plain`` in the environment replaces both with machine-readable lines
on stderr, one each time a stage's whole percentage changes (the QGIS plugin reads them)::

    PROGRESS <percent> <stage> <done>/<total> <label>
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys

log = logging.getLogger("swc_rs")

_LABELS = {"detect": "Finding patches", "features": "Patch features", "generate": "Generating scene", "erosion": "Soil loss (CSLE)"}


@contextlib.contextmanager
def progress_bar(enabled: bool = True):
    """Yield a ``progress(stage, done, total)`` callback.

    On a terminal it draws rich progress bars per stage; elsewhere (cron, CI) it logs
    a timestamped line every 10 % so that logs stay readable.
    """
    if not enabled:
        yield lambda stage, done, total: None
        return
    if os.environ.get("SWC_RS_PROGRESS", "").strip().lower() == "plain":
        yield plain_progress(sys.stderr)
        return
    if sys.stderr.isatty():
        from rich.progress import (
            BarColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )

        with Progress(
            TextColumn("{task.description}"), BarColumn(), TextColumn("{task.completed}/{task.total}"),
            TimeElapsedColumn(), TimeRemainingColumn(), transient=True,
        ) as bar:
            tasks: dict[str, int] = {}

            def update(stage: str, done: int, total: int) -> None:
                if stage not in tasks:
                    tasks[stage] = bar.add_task(_LABELS.get(stage, stage), total=total)
                bar.update(tasks[stage], completed=done, total=total)

            yield update
    else:
        last: dict[str, int] = {}

        def update(stage: str, done: int, total: int) -> None:
            step = max(1, total // 10)
            if done == total or done - last.get(stage, 0) >= step:
                last[stage] = done
                log.info("%s: %d/%d", _LABELS.get(stage, stage), done, total)

        yield update


def plain_progress(stream):
    """A ``progress(stage, done, total)`` callback writing ``PROGRESS`` lines to ``stream``
    when the stage's whole percentage changes (and at its first call)."""
    shown: dict[str, int] = {}

    def update(stage: str, done: int, total: int) -> None:
        percent = 100 if total <= 0 else max(0, min(100, int(100 * done / total)))
        if shown.get(stage) == percent:
            return
        shown[stage] = percent
        stream.write(f"PROGRESS {percent} {stage} {done}/{total} {_LABELS.get(stage, stage)}\n")
        stream.flush()

    return update
