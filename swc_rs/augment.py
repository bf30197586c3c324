"""Training augmentation: hazy and resampled copies of generated scenes.

Thin cloud and haze over one date are a classic false alarm of change detection: a
scattering layer adds path radiance (most in blue, least in NIR) and dims the ground
beneath it, so vegetation "loses" NDVI and the visible bands "brighten" over a wide,
diffuse area. The generator (:mod:`swc_rs.sample`) draws opaque clouds with shadows but
no haze, so a patch typer trained on its scenes alone has never seen one. A hazy copy
of a scene teaches it: the same imagery and truth, with a smooth haze field over one
date and the hazy area added to the truth's ``confounders`` layer (KIND ``haze``, so a
patch it causes is labelled 非生产建设项目 with reason 云及阴影, while a real disturbance
under the haze keeps its truth label).

The haze model (per pixel, reflectance ρ, haze density h ∈ [0, 1] from smooth noise)::

    ρ' = ρ · (1 − t·h) + A · w_band · h

with transmission loss ``t``, path radiance ``A`` and band weights ``w`` falling from blue
to NIR (and SWIR), all drawn per copy.

The generator draws at 2 m only, while the bureau also buys sub-metre GF-2 (0.8 m) and
coarser scenes: a patch's texture and shape, counted in pixels, read differently at
another pixel size. A resampled copy (:func:`resampled_copy`) is the same scene on a
finer grid (bilinear) or a coarser one (block average), with the same truth.
"""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import numpy as np

#: Relative path radiance per band role: Rayleigh/Mie scattering falls with wavelength.
HAZE_BAND_WEIGHTS = {"blue": 1.0, "green": 0.8, "red": 0.62, "nir": 0.35, "swir1": 0.15, "swir2": 0.1}
#: Haze densities above this count as the hazy area written to the confounders layer.
HAZE_AREA_THRESHOLD = 0.15


def haze_field(shape: tuple[int, int], rng: np.random.Generator, *, cover: float, scale_px: float) -> np.ndarray:
    """A smooth haze density in [0, 1] over ``shape`` covering about ``cover`` of it,
    structured at ``scale_px`` pixels (banks of haze with soft edges)."""
    from scipy import ndimage

    noise = ndimage.gaussian_filter(rng.standard_normal(shape).astype(np.float32), scale_px, mode="wrap")
    level = float(np.quantile(noise, 1.0 - cover))
    spread = float(noise.std()) or 1.0
    return np.clip((noise - level) / (0.6 * spread) + 0.5, 0.0, 1.0).astype(np.float32) * (noise > level - 0.3 * spread)


def hazy_copy(scene: Path, out: Path, *, seed: int, overwrite: bool = False) -> Path:
    """Copy the generated ``scene`` folder to ``out`` with haze over one of its dates.

    The date, cover (20–60 %), structure (60–200 px), path radiance (0.04–0.12
    reflectance in blue) and transmission loss (10–40 %) are drawn from ``seed``. The
    copy's ``truth.gpkg`` gains the hazy area (density > :data:`HAZE_AREA_THRESHOLD`) as
    a ``haze`` confounder. Returns ``out``.
    """
    import geopandas as gpd
    import pandas as pd
    import rasterio
    import shapely
    from rasterio import features

    from swc_rs.sensors import reflectance_scale, resolve_profile

    scene, out = Path(scene), Path(out)
    if (out / "truth.gpkg").exists() and not overwrite:
        return out
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    target = "after.tif" if rng.random() < 0.7 else "before.tif"
    for item in scene.iterdir():
        if item.is_file() and item.name not in (target, "truth.gpkg"):
            shutil.copy2(item, out / item.name)
    with rasterio.open(scene / target) as src:
        profile, tags, descriptions = src.profile, src.tags(), src.descriptions
        raw = src.read().astype(np.float32)
        roles = resolve_profile("auto", descriptions, src.count).bands
        scale = reflectance_scale(src.dtypes[0])
        crs, transform = src.crs, src.transform
    density = haze_field(raw.shape[1:], rng, cover=rng.uniform(0.2, 0.6), scale_px=rng.uniform(60, 200))
    path_radiance, loss = rng.uniform(0.04, 0.12), rng.uniform(0.1, 0.4)
    weights = np.ones(raw.shape[0], np.float32)
    for role, band in roles.items():
        weights[band - 1] = HAZE_BAND_WEIGHTS.get(role, 0.3)
    hazy = raw * (1.0 - loss * density) + (path_radiance / scale) * weights[:, None, None] * density
    info = np.iinfo(profile["dtype"]) if np.issubdtype(np.dtype(profile["dtype"]), np.integer) else None
    if info is not None:
        hazy = np.clip(np.round(hazy), info.min, info.max)
    with rasterio.open(out / target, "w", **profile) as dst:
        dst.write(hazy.astype(profile["dtype"]))
        dst.descriptions = descriptions
        dst.update_tags(**tags)

    area = density > HAZE_AREA_THRESHOLD
    shapes = [shapely.geometry.shape(g) for g, v in features.shapes(area.astype(np.uint8), mask=area, transform=transform) if v]
    truth = gpd.read_file(scene / "truth.gpkg", layer="truth_patches", engine="pyogrio")
    confounders = gpd.read_file(scene / "truth.gpkg", layer="confounders", engine="pyogrio")
    if shapes:
        haze = gpd.GeoDataFrame({"KIND": ["haze"], "DATE": [tags.get("ACQUISITION_DATE", "")]},
                                geometry=[shapely.MultiPolygon(shapes)], crs=crs).to_crs(confounders.crs)
        confounders = pd.concat([confounders, haze], ignore_index=True)
    truth.to_file(out / "truth.gpkg", layer="truth_patches", engine="pyogrio")
    confounders.to_file(out / "truth.gpkg", layer="confounders", engine="pyogrio")
    record = {"date": target.removesuffix(".tif"), "path_radiance": round(path_radiance, 4),
              "transmission_loss": round(loss, 4), "hazy_fraction": round(float(area.mean()), 4), "seed": seed}
    (out / "haze.json").write_text(json.dumps(record) + "\n", encoding="utf-8")
    return out



def resampled_copy(scene: Path, out: Path, *, pixel_m: float, overwrite: bool = False) -> Path:
    """Copy the generated ``scene`` folder to ``out`` with both dates on a ``pixel_m`` grid
    over the same extent: bilinear onto a finer grid, block averages onto a coarser one.
    The vectors (truth, zones, projects) are copied unchanged. Returns ``out``."""
    import rasterio
    from rasterio.enums import Resampling
    from rasterio.transform import Affine
    from rasterio.warp import reproject

    scene, out = Path(scene), Path(out)
    if (out / "truth.gpkg").exists() and not overwrite:
        return out
    out.mkdir(parents=True, exist_ok=True)
    for item in scene.iterdir():
        if item.is_file() and item.suffix.lower() != ".tif":
            shutil.copy2(item, out / item.name)
    for name in ("before.tif", "after.tif"):
        with rasterio.open(scene / name) as src:
            profile, tags, descriptions = src.profile, src.tags(), src.descriptions
            data = src.read()
            factor = abs(src.transform.a) / pixel_m
            width, height = max(1, round(src.width * factor)), max(1, round(src.height * factor))
            transform = src.transform * Affine.scale(src.width / width, src.height / height)
            target = np.zeros((src.count, height, width), data.dtype)
            reproject(data, target, src_transform=src.transform, src_crs=src.crs, dst_transform=transform,
                      dst_crs=src.crs, resampling=Resampling.bilinear if factor > 1 else Resampling.average)
        block = max(16, min(512, 1 << int(math.log2(max(16, min(width, height) // 4)))))
        profile.update(width=width, height=height, transform=transform, blockxsize=block, blockysize=block, tiled=True)
        with rasterio.open(out / name, "w", **profile) as dst:
            dst.write(target)
            dst.descriptions = descriptions
            dst.update_tags(**tags)
    return out
