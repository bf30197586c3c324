"""Local worker processes of the batch's tiles and detect's windows.

A spawned worker pays ~1.2–1.5 s of imports before it can take work. ``swc-rs batch``
and ``swc-rs detect`` start theirs first thing (this module imports nothing heavy), so
that their start-up overlaps the calling process's own imports and planning, while the
other cores would otherwise be idle. :func:`share_work` then has the calling process
and the workers take items from one queue; :func:`one_native_thread` and
:func:`reuse_freed_memory` are the per-process settings of such workers.
"""

from __future__ import annotations

import multiprocessing
import os
import tomllib
import weakref
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path


def freeze_at_exit() -> None:
    """Once per process: at exit, move every live object out of the collector's reach
    (:func:`gc.freeze`), so the interpreter's final collections do not walk the run's
    millions of objects (~0.4 s after an 8192² detect; a window worker that made chips
    took 0.17 s to shut down, 0.04 s with it). Everything else at exit still runs
    (atexit handlers, flushing); the memory goes back with the process."""
    import atexit
    import gc

    if not getattr(freeze_at_exit, "registered", False):
        atexit.register(gc.freeze)  # registered first, so it runs after the others
        freeze_at_exit.registered = True


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


def reuse_freed_memory(threshold_mb: int = 256) -> bool:
    """Large arrays reuse memory this process freed instead of fresh pages; True when set.

    glibc serves allocations above its mmap threshold (at most 32 MB, adjusted as the
    program runs) from new mappings and gives them back when freed, so every multi-MB
    temporary of a window is new pages the kernel zero-fills and faults in: about 6000
    page faults and 45 ms of system time per 1024² window, a fifth of its cost. With the
    mmap and trim thresholds raised to ``threshold_mb`` freed blocks serve the next
    temporaries; memory stays bounded by the largest window (measured: same peak RSS).
    Linux with glibc only; nothing is changed elsewhere, nor when ``MALLOC_MMAP_THRESHOLD_``
    is set in the environment (the user's setting wins).
    """
    import ctypes
    import sys

    if not sys.platform.startswith("linux") or "MALLOC_MMAP_THRESHOLD_" in os.environ:
        return False
    try:
        libc = ctypes.CDLL("libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # not glibc (musl, ...)
        return False
    m_trim_threshold, m_mmap_threshold = -1, -3  # <malloc.h>
    size = int(threshold_mb) * 1024 * 1024
    return bool(mallopt(m_mmap_threshold, size)) and bool(mallopt(m_trim_threshold, 2 * size))


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


def start_workers(count: int, module: str = "swc_rs.batch") -> ProcessPoolExecutor | None:
    """``count`` spawned processes importing ``module`` now (None when 0): the batch's
    tile code, or :mod:`swc_rs.windows` for detect's window workers.

    The caller owns the pool: :func:`swc_rs.batch.run_batch` uses it and shuts it down
    once every tile is in; shut it down too when the run ends early.
    """
    if count < 1:
        return None
    pool = ProcessPoolExecutor(max_workers=count, mp_context=multiprocessing.get_context("spawn"))
    _SIZES[pool] = count
    for _ in range(count):  # one task per process: the executor spawns a process per waiting task
        pool.submit(_warm_up, module)
    return pool


#: Processes of each pool :func:`start_workers` made.
_SIZES: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def pool_size(executor) -> int:
    """Worker processes of ``executor``: the count :func:`start_workers` started it with
    (1 for a pool it did not make), 0 for None."""
    if executor is None:
        return 0
    return _SIZES.get(executor, 1)


def _warm_up(*modules: str) -> None:
    import importlib

    freeze_at_exit()  # a worker's exit is waited for
    for module in modules:  # what a tile or window needs (not the model's imports)
        importlib.import_module(module)


def warm_up(executor: ProcessPoolExecutor, *modules: str) -> None:
    """Have each of ``executor``'s (idle) processes import ``modules`` now, not when its
    next task arrives. Nothing is waited for; a pool that is shut down is left alone."""
    try:
        for _ in range(pool_size(executor)):  # one each while they are idle
            executor.submit(_warm_up, *modules)
    except RuntimeError:  # shut down or broken
        pass


#: Returned by ``on_lost`` of :func:`share_work`: run the item again in this process.
RETRY_HERE = object()


def share_work(items: list, run_here, submit, spawned: int, *, on_lost, remote_from_end: bool = False):
    """Yield ``(index, result)`` as ``items`` finish, this process and ``spawned``
    worker processes taking them from one queue.

    This process runs ``run_here(item)``; a dispatcher thread keeps exactly one item in
    flight per spawned worker with ``submit(item)`` (a future; none queued inside the
    pool), so whoever is free takes the next item and the tail stays short. This process
    has everything imported and open already: it starts at once, and no core waits on a
    process that only collects results. Results of the spawned workers are yielded
    between this process's items. With ``remote_from_end`` the workers take items from
    the end of the queue back (neighbouring items stay with one process).

    When a spawned worker's future fails (the pool broke: a worker died), ``on_lost(item,
    error)`` gives the result to yield, :data:`RETRY_HERE` (this process runs the item
    again), or raises; no more items go to the pool then and this process does the rest.
    """
    import queue
    import threading
    from collections import deque
    from concurrent.futures import FIRST_COMPLETED, wait

    todo = deque(range(len(items)))
    lock = threading.Lock()
    stop = threading.Event()
    finished: queue.Queue = queue.Queue()  # (index, result) | (None, error); `ended` last
    ended = object()

    def take(last: bool = False) -> int | None:
        with lock:
            if not todo or stop.is_set():
                return None
            return todo.pop() if last else todo.popleft()

    def put_back(index: int) -> None:
        with lock:
            todo.appendleft(index)

    def dispatch() -> None:
        inflight: dict = {}
        broken = False

        def feed() -> None:
            nonlocal broken
            index = None if broken else take(last=remote_from_end)
            if index is None:
                return
            try:
                inflight[submit(items[index])] = index
            except Exception:  # the pool broke: this process takes the rest
                broken = True
                put_back(index)

        try:
            for _ in range(spawned):
                feed()
            while inflight:
                done, _ = wait(inflight, return_when=FIRST_COMPLETED)
                for future in done:
                    index = inflight.pop(future)
                    try:
                        finished.put((index, future.result()))
                    except Exception as err:  # a worker died (out of memory, killed)
                        broken = True
                        try:
                            result = on_lost(items[index], err)
                        except BaseException as fatal:
                            finished.put((None, fatal))
                            stop.set()
                            continue
                        if result is RETRY_HERE:
                            put_back(index)
                        else:
                            finished.put((index, result))
                    feed()
        finally:
            finished.put(ended)

    def received(item):
        if item is not ended and item[0] is None:
            raise item[1]
        return item

    dispatcher = threading.Thread(target=dispatch, name="swc-rs-share", daemon=True)
    dispatcher.start()
    complete = False
    try:
        dispatching = True
        while True:
            index = take()
            if index is not None:
                yield index, run_here(items[index])
                while dispatching:  # what the workers finished meanwhile
                    try:
                        item = received(finished.get_nowait())
                    except queue.Empty:
                        break
                    if item is ended:
                        dispatching = False
                    else:
                        yield item
            elif dispatching:
                item = received(finished.get())
                if item is ended:
                    dispatching = False  # items it put back are in the queue
                else:
                    yield item
            else:
                break
        complete = True
    finally:
        stop.set()
        if not complete:
            dispatcher.join()
