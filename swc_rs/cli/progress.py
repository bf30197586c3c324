"""Render the library's progress callbacks with rich (bars on a terminal, lines otherwise)."""

from __future__ import annotations

import contextlib
import logging
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
