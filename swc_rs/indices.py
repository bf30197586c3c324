"""Spectral indices, pure numpy.

Every index takes reflectance arrays (any shape, float) and returns float32 of the
same shape. Zero denominators give 0 rather than NaN or a warning.
"""

from __future__ import annotations

import numpy as np


def normalized_difference(a: np.ndarray, b: np.ndarray, fill: float = 0.0) -> np.ndarray:
    """(a - b) / (a + b), with ``fill`` where a + b == 0."""
    a = np.asarray(a, dtype=np.float32)
    b = np.asarray(b, dtype=np.float32)
    den = a + b
    with np.errstate(divide="ignore", invalid="ignore"):
        out = np.subtract(a, b, dtype=np.float32)
        np.divide(out, den, out=out)
    out[den == 0] = fill
    return out


def ndvi(nir: np.ndarray, red: np.ndarray) -> np.ndarray:
    """Normalised difference vegetation index, (NIR - red) / (NIR + red) (Rouse et al. 1974)."""
    return normalized_difference(nir, red)


def visible_vegetation(green: np.ndarray, red: np.ndarray, blue: np.ndarray) -> np.ndarray:
    """Visible atmospherically resistant index, VARI = (G - R) / (G + R - B) (Gitelson et al. 2002).

    The vegetation proxy for RGB-only imagery; clipped to [-1, 1] so that it lives on
    NDVI's scale (dense vegetation ≈ 0.2–0.5, bare soil and roofs ≤ 0).
    """
    g = np.asarray(green, dtype=np.float32)
    r = np.asarray(red, dtype=np.float32)
    b = np.asarray(blue, dtype=np.float32)
    den = g + r - b
    with np.errstate(divide="ignore", invalid="ignore"):
        out = np.where(np.abs(den) > 1e-4, (g - r) / den, 0.0)
    return np.clip(out, -1.0, 1.0).astype(np.float32)


def ndwi(green: np.ndarray, nir: np.ndarray) -> np.ndarray:
    """Normalised difference water index, (G - NIR) / (G + NIR) (McFeeters 1996)."""
    return normalized_difference(green, nir)


def bare_soil_index(blue, red, nir=None, swir1=None) -> np.ndarray:
    """Bare-soil index.

    With SWIR: BSI = ((SWIR1 + R) - (NIR + B)) / ((SWIR1 + R) + (NIR + B)) (Rikimaru et al. 2002).
    Without SWIR: the visible/NIR proxy ((R + R) - (NIR + B)) / ((R + R) + (NIR + B)), i.e. BSI
    with red standing in for SWIR1 (soil is bright in both). Without NIR either: the
    redness index (R - B) / (R + B).
    """
    if nir is None:
        return normalized_difference(red, blue)
    first = (swir1 if swir1 is not None else red) + np.asarray(red, dtype=np.float32)
    return normalized_difference(first, np.asarray(nir, dtype=np.float32) + blue)


def brightness(blue, green, red) -> np.ndarray:
    """Visible brightness: mean of blue, green and red reflectance."""
    out = np.add(np.asarray(blue, np.float32), green, dtype=np.float32)
    out += red
    out *= np.float32(1.0 / 3.0)
    return out


def redness(red: np.ndarray, blue: np.ndarray) -> np.ndarray:
    """(R - B) / (R + B): reddish-brown soil and spoil > grey rock and concrete > water."""
    return normalized_difference(red, blue)


def whiteness(blue, green, red) -> np.ndarray:
    """(max - min) / mean over the visible bands: ≈ 0 for white/grey (clouds), large for colours."""
    blue, green, red = (np.asarray(x, np.float32) for x in (blue, green, red))
    mean = (blue + green + red) / np.float32(3.0)
    spread = np.maximum(np.maximum(blue, green), red) - np.minimum(np.minimum(blue, green), red)
    out = np.zeros(mean.shape, dtype=np.float32)
    np.divide(spread, mean, out=out, where=mean > 0)
    return out


def local_mean_std(image: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray]:
    """Windowed mean and standard deviation over ``size``×``size`` neighbourhoods."""
    from scipy.ndimage import uniform_filter

    image = np.asarray(image, dtype=np.float32)
    mean = uniform_filter(image, size=size, mode="reflect")
    sq = uniform_filter(image * image, size=size, mode="reflect")
    std = np.sqrt(np.maximum(sq - mean * mean, 0.0))
    return mean.astype(np.float32), std.astype(np.float32)
