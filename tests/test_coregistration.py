import numpy as np
import pytest
from scipy import ndimage

from swc_rs.coregistration import estimate_shift


def _texture(seed, size=256):
    rng = np.random.default_rng(seed)
    return ndimage.gaussian_filter(rng.standard_normal((size, size)), 2.0).astype(np.float32)


@pytest.mark.parametrize("shift", [(0.0, 0.0), (0.6, -0.4), (-1.3, 0.8), (1.5, 1.5)])
def test_known_subpixel_shift_is_recovered(shift):
    befores, afters = [], []
    for seed in range(3):
        image = _texture(seed)
        befores.append(image[16:-16, 16:-16])
        afters.append(ndimage.shift(image, shift, order=3, mode="nearest")[16:-16, 16:-16] * 1.1 + 0.2)
    valid = [np.ones_like(b, bool) for b in befores]
    rows, cols, used = estimate_shift(befores, afters, valid)
    assert used == 3
    # the estimate is what undoes the shift
    assert rows == pytest.approx(-shift[0], abs=0.1)
    assert cols == pytest.approx(-shift[1], abs=0.1)


def test_cloudy_windows_are_skipped():
    b = _texture(1)
    rows, cols, used = estimate_shift([b], [b], [np.zeros_like(b, bool)])
    assert used == 0 and rows == 0 and cols == 0


def test_disagreeing_windows_give_no_shift():
    befores, afters = [], []
    for seed, shift in zip(range(4), [(2.0, 0.0), (-2.0, 1.0), (0.0, -2.5), (1.5, 2.0)], strict=True):
        image = _texture(seed)
        befores.append(image[16:-16, 16:-16])
        afters.append(ndimage.shift(image, shift, order=3, mode="nearest")[16:-16, 16:-16])
    rows, cols, used = estimate_shift(befores, afters, [np.ones_like(b, bool) for b in befores])
    assert (rows, cols, used) == (0.0, 0.0, 0)
