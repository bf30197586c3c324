import numpy as np
import pytest

from swc_rs import indices


def test_normalized_difference_known_values_and_zero_denominator():
    a = np.array([3.0, 0.0, 1.0])
    b = np.array([1.0, 0.0, 1.0])
    out = indices.normalized_difference(a, b)
    assert out.dtype == np.float32
    np.testing.assert_allclose(out, [0.5, 0.0, 0.0])


def test_ndvi_of_vegetation_and_soil():
    assert indices.ndvi(np.array([0.33]), np.array([0.028]))[0] == pytest.approx(0.8436, abs=1e-3)
    assert indices.ndvi(np.array([0.24]), np.array([0.20]))[0] == pytest.approx(0.0909, abs=1e-3)


def test_ndwi_positive_on_water_negative_on_forest():
    assert indices.ndwi(np.array([0.055]), np.array([0.015]))[0] > 0.5
    assert indices.ndwi(np.array([0.045]), np.array([0.33]))[0] < -0.5


def test_bare_soil_index_variants():
    blue, red, nir, swir = (np.array([v]) for v in (0.13, 0.20, 0.24, 0.30))
    with_swir = indices.bare_soil_index(blue, red, nir, swir)[0]
    assert with_swir == pytest.approx(((0.30 + 0.20) - (0.24 + 0.13)) / ((0.30 + 0.20) + (0.24 + 0.13)), abs=1e-5)
    assert indices.bare_soil_index(blue, red)[0] == pytest.approx((0.20 - 0.13) / 0.33, abs=1e-5)


def test_visible_vegetation_proxy_separates_green_from_soil():
    green = indices.visible_vegetation(np.array([0.08]), np.array([0.04]), np.array([0.03]))[0]
    soil = indices.visible_vegetation(np.array([0.16]), np.array([0.20]), np.array([0.13]))[0]
    assert green > 0.3 and soil < 0


def test_whiteness_low_for_cloud():
    assert indices.whiteness(np.array([0.6]), np.array([0.61]), np.array([0.62]))[0] < 0.05
    assert indices.whiteness(np.array([0.13]), np.array([0.16]), np.array([0.20]))[0] > 0.3


def test_local_mean_std_constant_image():
    mean, std = indices.local_mean_std(np.full((8, 8), 2.0), 3)
    np.testing.assert_allclose(mean, 2.0)
    np.testing.assert_allclose(std, 0.0, atol=1e-6)
