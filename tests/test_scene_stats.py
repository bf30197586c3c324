"""The scene statistics the change network standardises each date by (swc_rs.change.learned.scene_stats)."""

from __future__ import annotations

import numpy as np

from swc_rs.change.learned import scene_stats


def _reads(rng, n=3, bands=4, size=64):
    reads = []
    for _ in range(n):
        before = rng.normal(0.2, 0.05, (bands, size, size)).astype(np.float32)
        after = rng.normal(0.3, 0.08, (bands, size, size)).astype(np.float32)
        valid = rng.random((size, size)) > 0.3
        reads.append((before, after, valid))
    return reads


def test_moments_are_those_of_every_valid_pixel_of_the_sample_windows_per_band_and_date():
    rng = np.random.default_rng(3)
    reads = _reads(rng)
    reads[0][0][:, ~reads[0][2]] = 1e6  # pixels without data must not count
    stats = scene_stats(reads, 4)
    for date, (mean, std) in enumerate(((stats.before_mean, stats.before_std), (stats.after_mean, stats.after_std))):
        values = np.concatenate([r[date].reshape(4, -1)[:, r[2].ravel()] for r in reads], axis=1).astype(np.float64)
        assert mean.dtype == std.dtype == np.float32
        np.testing.assert_allclose(mean, values.mean(axis=1), rtol=1e-6)
        np.testing.assert_allclose(std, values.std(axis=1), rtol=1e-6)
    assert 0.15 < stats.before_mean[0] < 0.25 and 0.25 < stats.after_mean[0] < 0.35


def test_no_valid_pixel_gives_zero_mean_and_unit_std_and_a_constant_band_a_tiny_std():
    rng = np.random.default_rng(4)
    reads = [(b, a, np.zeros_like(v)) for b, a, v in _reads(rng)]
    for stats in (scene_stats(reads, 4), scene_stats([], 4)):
        assert (stats.before_mean == 0).all() and (stats.after_std == 1).all()
    reads = _reads(rng)
    for before, _, _ in reads:
        before[2] = 0.5
    stats = scene_stats(reads, 4)
    assert stats.before_mean[2] == np.float32(0.5)
    assert stats.before_std[2] == np.float32(1e-6)  # never 0: the network divides by it
