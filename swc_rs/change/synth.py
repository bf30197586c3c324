"""Synthetic change on real images, and the augmentations the learned detector trains with.

No PyTorch here (numpy, scipy, scikit-image, Pillow): :mod:`swc_rs.change.train` draws
its samples with these functions, and the tests check them directly.

Images are float32 ``(bands, h, w)`` in reflectance-like units (uint8 / 255, Sentinel-2
/ 10000), bands in the family's order (:data:`FAMILIES`). The pasted objects are the
kinds of change swc-rs must find — buildings, cleared and bare ground, spoil heaps,
pits, roads — and the confounders it must not — tillage and harvest, seasonal
vegetation, haze — are applied with label 0.
"""

from __future__ import annotations

import io

import numpy as np
from scipy import ndimage
from skimage.draw import polygon as draw_polygon

#: Band roles of each model family, in the order the network reads them.
FAMILIES: dict[str, tuple[str, ...]] = {
    "highres": ("red", "green", "blue"),
    "multispectral": ("blue", "green", "red", "nir", "swir1", "swir2"),
}

#: Surface reflectance of the pasted materials (blue, green, red, nir, swir1, swir2);
#: rough values of spectral-library curves, varied by ±30 % when drawn.
MATERIALS: dict[str, tuple[float, ...]] = {
    "bare_soil": (0.07, 0.10, 0.14, 0.20, 0.30, 0.26),
    "red_soil": (0.06, 0.08, 0.15, 0.21, 0.29, 0.25),
    "concrete": (0.20, 0.22, 0.24, 0.27, 0.30, 0.27),
    "asphalt": (0.06, 0.07, 0.08, 0.10, 0.12, 0.11),
    "gravel": (0.14, 0.16, 0.19, 0.23, 0.31, 0.28),
    "white_roof": (0.38, 0.40, 0.41, 0.43, 0.40, 0.35),
    "blue_roof": (0.22, 0.16, 0.10, 0.12, 0.12, 0.10),
    "red_roof": (0.07, 0.08, 0.19, 0.23, 0.26, 0.21),
    "grey_roof": (0.12, 0.13, 0.14, 0.16, 0.18, 0.17),
}
_CONSTRUCTION = ("bare_soil", "red_soil", "concrete", "gravel", "asphalt")
_ROOFS = ("concrete", "white_roof", "blue_roof", "red_roof", "grey_roof", "asphalt")


def _spectrum(material: str, family: str, rng: np.random.Generator) -> np.ndarray:
    values = np.array(MATERIALS[material], np.float32)
    if family == "highres":
        values = values[[2, 1, 0]]
    return values * rng.uniform(0.7, 1.3) * rng.uniform(0.9, 1.1, len(values)).astype(np.float32)


def _scene_colour(img: np.ndarray, rng: np.random.Generator, bright: bool) -> np.ndarray:
    """A colour of the image itself (a bright one for roofs and concrete)."""
    flat = img.reshape(img.shape[0], -1)
    level = flat.mean(axis=0)
    pick = np.flatnonzero(level >= np.quantile(level, 0.8)) if bright else np.arange(level.size)
    return flat[:, rng.choice(pick)] * rng.uniform(0.8, 1.25)


def _scale_to_scene(colour: np.ndarray, img: np.ndarray, family: str) -> np.ndarray:
    """Library reflectance brought to an RGB image's own level (8-bit RGB is not calibrated)."""
    if family != "highres":
        return colour
    return colour * float(np.clip(img.mean() / 0.18, 0.5, 3.0))


def rect_mask(shape: tuple[int, int], centre, size, angle: float) -> np.ndarray:
    """Boolean mask of a rotated rectangle (``size``: rows, cols in pixels)."""
    half = np.array(size, float) / 2
    corners = np.array([[-half[0], -half[1]], [-half[0], half[1]], [half[0], half[1]], [half[0], -half[1]]])
    c, s = np.cos(angle), np.sin(angle)
    rotated = corners @ np.array([[c, -s], [s, c]]).T + np.asarray(centre, float)
    mask = np.zeros(shape, bool)
    rr, cc = draw_polygon(rotated[:, 0], rotated[:, 1], shape)
    mask[rr, cc] = True
    return mask


def blob_mask(shape: tuple[int, int], centre, radius: float, rng: np.random.Generator) -> np.ndarray:
    """An irregular blob: an ellipse roughened by smoothed noise."""
    rows, cols = np.indices(shape, dtype=np.float32)
    ratio = rng.uniform(0.5, 1.0)
    angle = rng.uniform(0, np.pi)
    dy, dx = rows - centre[0], cols - centre[1]
    u = (dy * np.cos(angle) + dx * np.sin(angle)) / radius
    v = (-dy * np.sin(angle) + dx * np.cos(angle)) / (radius * ratio)
    noise = ndimage.gaussian_filter(rng.standard_normal(shape).astype(np.float32), max(1.0, radius / 3))
    noise /= noise.std() + 1e-6
    return (u**2 + v**2) < 1.0 + 0.35 * noise


def _texture(shape, rng: np.random.Generator, strength: float, grain: float) -> np.ndarray:
    noise = ndimage.gaussian_filter(rng.standard_normal(shape).astype(np.float32), grain)
    return 1.0 + strength * noise / (noise.std() + 1e-6)


def _blend(img: np.ndarray, mask: np.ndarray, colour: np.ndarray, texture: np.ndarray) -> np.ndarray:
    """Paint ``colour × texture`` into ``img`` under ``mask`` with a half-pixel soft edge."""
    alpha = ndimage.gaussian_filter(mask.astype(np.float32), 0.6)
    paint = colour[:, None, None] * texture[None]
    return img * (1 - alpha) + paint * alpha


def paste_change(img: np.ndarray, family: str, res_m: float, rng: np.random.Generator,
                 count: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """``img`` with 1–4 construction-like objects pasted in, and their mask (the label).

    Objects: building groups (rotated rectangles with a cast shadow), cleared or bare
    ground (blobs of soil, gravel or concrete), spoil heaps (rough bright blobs), pits
    (dark blobs with a bright rim) and roads (straight bands), sized in metres and drawn
    in pixels of ``res_m``.
    """
    h, w = img.shape[1:]
    out = img.copy()
    label = np.zeros((h, w), bool)
    px = 1.0 / max(res_m, 1e-3)
    for _ in range(count if count is not None else int(rng.integers(1, 5))):
        kind = rng.choice(["building", "ground", "spoil", "pit", "road"], p=[0.35, 0.3, 0.12, 0.1, 0.13])
        centre = (rng.uniform(0, h), rng.uniform(0, w))
        if kind == "building":
            colour = (_scene_colour(img, rng, True) if rng.random() < 0.4
                      else _scale_to_scene(_spectrum(str(rng.choice(_ROOFS)), family, rng), img, family))
            angle = rng.uniform(0, np.pi)
            mask = np.zeros((h, w), bool)
            for _ in range(int(rng.integers(1, 5))):
                size = (max(2.0, rng.uniform(6, 40) * px), max(2.0, rng.uniform(6, 40) * px))
                offset = rng.normal(0, 20 * px, 2)
                mask |= rect_mask((h, w), (centre[0] + offset[0], centre[1] + offset[1]), size, angle)
            shadow = ndimage.shift(mask.astype(np.float32), rng.uniform(1, 4, 2) * max(px, 0.3), order=0) > 0.5
            shadow &= ~mask
            out = _blend(out, shadow, out.mean(axis=(1, 2)) * rng.uniform(0.3, 0.6), np.ones((h, w), np.float32))
            out = _blend(out, mask, colour, _texture((h, w), rng, 0.05, 1.0))
        elif kind == "road":
            width = max(1.5, rng.uniform(5, 16) * px)
            angle = rng.uniform(0, np.pi)
            mask = rect_mask((h, w), centre, (width, 2.5 * max(h, w)), angle)
            colour = _scale_to_scene(_spectrum(str(rng.choice(["asphalt", "concrete", "gravel"])), family, rng), img, family)
            out = _blend(out, mask, colour, _texture((h, w), rng, 0.04, 1.0))
        else:
            radius = max(2.0, rng.uniform(8, 70) * px)
            mask = blob_mask((h, w), centre, radius, rng)
            if kind == "ground":
                colour = _scale_to_scene(_spectrum(str(rng.choice(_CONSTRUCTION)), family, rng), img, family)
                texture = _texture((h, w), rng, rng.uniform(0.03, 0.12), rng.uniform(0.7, 3.0))
            elif kind == "spoil":
                colour = _scale_to_scene(_spectrum(str(rng.choice(["gravel", "bare_soil", "concrete"])), family, rng),
                                         img, family) * 1.1
                texture = _texture((h, w), rng, rng.uniform(0.12, 0.3), rng.uniform(0.5, 1.2))
            else:  # pit: dark floor, bright rim
                colour = _scale_to_scene(_spectrum(str(rng.choice(["bare_soil", "gravel"])), family, rng), img, family)
                dist = ndimage.distance_transform_edt(mask)
                texture = np.where(dist < max(1.5, 3 * px), 1.3, 0.6).astype(np.float32) * _texture((h, w), rng, 0.1, 1.0)
            out = _blend(out, mask, colour, texture)
        label |= mask
    return out.astype(np.float32), label


def vegetation(img: np.ndarray, family: str) -> np.ndarray:
    """Where ``img`` is green vegetation (NDVI > 0.3, or excess green for RGB)."""
    if family == "highres":
        r, g, b = img
        return (2 * g - r - b) / (r + g + b + 1e-6) > 0.05
    red, nir = img[2], img[3]
    return (nir - red) / (nir + red + 1e-6) > 0.3


def tillage(img: np.ndarray, family: str, res_m: float, rng: np.random.Generator) -> np.ndarray:
    """Farming, not disturbance (label 0): 1–3 field parcels ploughed or harvested into
    striped soil or stubble, placed where the image is vegetated when it is."""
    h, w = img.shape[1:]
    out = img.copy()
    px = 1.0 / max(res_m, 1e-3)
    veg = vegetation(img, family)
    where = np.argwhere(veg) if veg.any() else np.argwhere(np.ones_like(veg))
    rows, cols = np.indices((h, w), dtype=np.float32)
    for _ in range(int(rng.integers(1, 4))):
        centre = where[rng.integers(len(where))]
        size = (max(4.0, rng.uniform(30, 200) * px), max(4.0, rng.uniform(30, 200) * px))
        angle = rng.uniform(0, np.pi)
        mask = rect_mask((h, w), centre, size, angle)
        period = max(2.0, rng.uniform(1.0, 4.0) * px)
        stripes = 1 + rng.uniform(0.05, 0.2) * np.sin(2 * np.pi * (rows * np.cos(angle) + cols * np.sin(angle)) / period)
        material = "bare_soil" if rng.random() < 0.6 else "red_soil"
        colour = _scale_to_scene(_spectrum(material, family, rng), img, family)
        if rng.random() < 0.4:  # harvest: straw-coloured stubble, brighter than soil
            colour = colour * 1.4
        out = _blend(out, mask, colour, stripes.astype(np.float32))
    return out.astype(np.float32)


def seasonal(img: np.ndarray, family: str, rng: np.random.Generator) -> np.ndarray:
    """Vegetation greener or browner (season, crop growth): label 0."""
    veg = vegetation(img, family)
    gains = rng.uniform(0.75, 1.3, img.shape[0]).astype(np.float32)
    out = img.copy()
    out[:, veg] *= gains[:, None]
    return out


def photometric(img: np.ndarray, rng: np.random.Generator, *, jpeg: bool = False) -> np.ndarray:
    """Per-band gain, offset and gamma; spatially smooth haze; blur; noise; JPEG (RGB)."""
    bands = img.shape[0]
    top = max(float(np.quantile(img, 0.99)), 1e-3)
    out = np.clip(img, 0, None) / top
    out = out ** rng.uniform(0.7, 1.4)
    out = out * rng.uniform(0.8, 1.25, bands)[:, None, None] + rng.uniform(-0.05, 0.05, bands)[:, None, None]
    if rng.random() < 0.3:  # haze: a smooth veil towards a bright level
        coarse = rng.random((4, 4)).astype(np.float32)
        field = ndimage.zoom(coarse, (img.shape[1] / 4, img.shape[2] / 4), order=1, grid_mode=True, mode="nearest")
        field = (field - field.min()) / (np.ptp(field) + 1e-6)
        veil = rng.uniform(0.05, 0.35) * field
        out = out * (1 - veil) + veil * rng.uniform(0.6, 1.0)
    if rng.random() < 0.3:
        out = ndimage.gaussian_filter(out, (0, rng.uniform(0.3, 1.2), rng.uniform(0.3, 1.2)))
    if rng.random() < 0.5:
        out = out + rng.normal(0, rng.uniform(0.002, 0.03), out.shape)
    if jpeg and bands == 3 and rng.random() < 0.3:
        from PIL import Image

        data = (np.clip(out.transpose(1, 2, 0), 0, 1) * 255).astype(np.uint8)
        buffer = io.BytesIO()
        Image.fromarray(data).save(buffer, "JPEG", quality=int(rng.integers(35, 90)))
        out = np.asarray(Image.open(buffer), np.float32).transpose(2, 0, 1) / 255
    return (out * top).astype(np.float32)


def misregister(img: np.ndarray, rng: np.random.Generator, max_px: float = 2.0) -> np.ndarray:
    """``img`` shifted by up to ``max_px`` pixels (sub-pixel, bilinear)."""
    shift = rng.uniform(-max_px, max_px, 2)
    return ndimage.shift(img, (0, shift[0], shift[1]), order=1, mode="reflect").astype(np.float32)


def standardise(img: np.ndarray, valid: np.ndarray | None = None, stats=None) -> np.ndarray:
    """Each band minus its mean over ``valid`` pixels, over its standard deviation (or ``stats``)."""
    mean, std = stats if stats is not None else band_stats(img, valid)
    return ((img - mean[:, None, None]) / std[:, None, None]).astype(np.float32)


def band_stats(img: np.ndarray, valid: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Per-band mean and standard deviation over the ``valid`` pixels (all when None)."""
    flat = img.reshape(img.shape[0], -1)
    if valid is not None and valid.any():
        flat = flat[:, valid.ravel()]
    mean = flat.mean(axis=1, dtype=np.float64)
    std = flat.std(axis=1, dtype=np.float64)
    return mean.astype(np.float32), np.maximum(std, 1e-6).astype(np.float32)
