"""Local tile worker processes, started before the batch process has finished starting.

A spawned worker pays ~1.5 s of imports before it can take a tile. ``swc-rs batch``
starts its workers first thing (this module imports nothing heavy), so that their
start-up overlaps the batch process's own imports and planning, while the second core
would otherwise be idle; :func:`swc_rs.batch.run_batch` then hands them tiles.
"""

from __future__ import annotations

import multiprocessing
import os
import tomllib
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path


def available_cores() -> int:
    """Cores this process may run on."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


def one_native_thread(openmp: bool = False):
    """Native thread pools (OpenMP, OpenBLAS) limited to one thread; a
    :class:`threadpoolctl.threadpool_limits` (a context manager, or left applied).

    Where swc-rs runs its own workers (tiles, windows) those are its parallelism: each
    worker also spinning up a BLAS/OpenMP thread per core makes them fight over the
    cores (measured with `make bench-batch`: ~15 % more CPU seconds with two workers;
    scikit-learn's first multi-threaded predictions took seconds on a busy machine).
    ``openmp``: load scikit-learn's OpenMP runtime first, so the limit covers it.
    """
    from threadpoolctl import threadpool_limits

    if openmp:
        import sklearn.ensemble  # noqa: F401
    return threadpool_limits(limits=1)


def planned_workers(config_path: str | Path, workers: int | None) -> int:
    """How many tiles will run at once: ``--workers``, else ``[batch] workers`` of the
    configuration, 0 meaning every core. 1 when the configuration cannot be read here
    (:func:`swc_rs.batch.load_batch` reports why)."""
    if workers is None:
        try:
            with open(config_path, "rb") as fh:
                workers = int(tomllib.load(fh).get("batch", {}).get("workers", 0))
        except (OSError, ValueError, TypeError, AttributeError, tomllib.TOMLDecodeError):
            return 1
    return workers if workers > 0 else available_cores()


def start_workers(count: int) -> ProcessPoolExecutor | None:
    """``count`` spawned processes importing the batch code now (None when 0).

    The caller owns the pool: :func:`swc_rs.batch.run_batch` uses it and shuts it down
    once every tile is in; shut it down too when the run ends early.
    """
    if count < 1:
        return None
    pool = ProcessPoolExecutor(max_workers=count, mp_context=multiprocessing.get_context("spawn"))
    for _ in range(count):  # one task per process: the executor spawns a process per waiting task
        pool.submit(_warm_up)
    return pool


def _warm_up() -> None:
    import swc_rs.batch  # noqa: F401  (what a tile needs, but the model's imports)
