"""Local worker pools: their size as started, for the work shared out to them."""

from concurrent.futures import ProcessPoolExecutor

from swc_rs.workers import pool_size, start_workers


def test_pool_size_is_what_was_started():
    pool = start_workers(2, module="swc_rs.windows")
    try:
        assert pool_size(pool) == 2
    finally:
        pool.shutdown(wait=True)
    assert start_workers(0) is None and pool_size(None) == 0
    with ProcessPoolExecutor(max_workers=3) as foreign:  # not ours: counted as one process
        assert pool_size(foreign) == 1
