"""A designed erosion scene whose 水土保持率 is known by construction.

200 × 200 cells of 10 m (EPSG:4543). The west half is flat forest (NDVI 0.85, B
0.004), the east half a bare 20° slope rising eastwards from the west half's level
(B 1). With R 6000 and K 0.005, every west cell is 微度 (A < 5 t/(hm²·a)) and every
east cell far above the tolerance, so the rate is 50 % over the scene, 100 % in the
west county and 0 % in the east county.

``forest_rows`` plants forest (NDVI 0.85, B 0.004: still 微度 on the 20° slope) on
the northern rows of the east half: the east county's rate is then forest_rows / N
and the scene's 50 % + half of it, known by construction for any "year".
"""

from __future__ import annotations

from pathlib import Path

import geopandas as gpd
import numpy as np
import rasterio
from rasterio.transform import from_origin
from shapely.geometry import box

CRS = "EPSG:4543"
X0, Y0, CELL, N = 450_000.0, 3_320_000.0, 10.0, 200
SLOPE_DEG = 20.0


def designed_dem(n: int = N, cell: float = CELL) -> np.ndarray:
    z = np.full((n, n), 1000.0)
    cols = np.arange(n)
    east = cols >= n // 2
    z[:, east] = 1000.0 + (cols[east] - (n // 2 - 1)) * cell * np.tan(np.radians(SLOPE_DEG))
    return z


def write_raster(path: Path, data: np.ndarray, *, crs: str | None = CRS, transform=None, nodata=None,
                 descriptions=None) -> Path:
    data = np.asarray(data)
    if data.ndim == 2:
        data = data[None]
    profile = dict(driver="GTiff", width=data.shape[2], height=data.shape[1], count=data.shape[0],
                   dtype=data.dtype.name, transform=transform or from_origin(X0, Y0, CELL, CELL), nodata=nodata)
    if crs:
        profile["crs"] = crs
    with rasterio.open(path, "w", **profile) as ds:
        ds.write(data)
        if descriptions:
            ds.descriptions = descriptions
    return path


def image(n: int = N, forest_rows: int = 0) -> np.ndarray:
    """4-band uint16 reflectance × 10000: forest in the west (and the east's first
    ``forest_rows`` rows), bare soil in the rest of the east."""
    west = np.array([0.02, 0.05, 0.03, 0.37])
    east = np.array([0.15, 0.18, 0.20, 0.244])
    forest = (np.arange(n)[None, :, None] < forest_rows) | (np.arange(n)[None, None, :] < n // 2)
    bands = np.where(forest, west[:, None, None], east[:, None, None])
    return np.round(np.broadcast_to(bands, (4, n, n)) * 10000).astype(np.uint16)


def halves(n: int = N, cell: float = CELL) -> tuple:
    mid = X0 + n // 2 * cell
    return box(X0, Y0 - n * cell, mid, Y0), box(mid, Y0 - n * cell, X0 + n * cell, Y0)


def write_scene(folder: Path, *, extra_county: bool = False, forest_rows: int = 0) -> dict[str, Path]:
    """DEM, imagery, land use, zones and counties of the designed scene in ``folder``."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    west, east = halves()
    paths = {
        "dem": write_raster(folder / "dem.tif", designed_dem().astype(np.float32), nodata=-9999.0),
        "imagery": write_raster(folder / "image.tif", image(forest_rows=forest_rows),
                                descriptions=("blue", "green", "red", "nir")),
    }
    codes, parts = ["0301", "1206"], [west, east]
    if forest_rows:
        north = box(east.bounds[0], Y0 - forest_rows * CELL, east.bounds[2], Y0)
        codes, parts = ["0301", "0301", "1206"], [west, east.intersection(north), east.difference(north)]
    gpd.GeoDataFrame({"DLBM": codes}, geometry=parts, crs=CRS).to_file(folder / "landuse.gpkg")
    gpd.GeoDataFrame({"ZONE_CODE": ["Z1"], "ZONE_NAME": ["测试分区"]}, geometry=[west.union(east)],
                     crs=CRS).to_file(folder / "zones.gpkg")
    names, geoms = ["西县", "东县"], [west, east]
    if extra_county:  # the south quarter of the DEM and as much again beyond it: covered 50 %
        names.append("外县")
        south = Y0 - 0.75 * N * CELL
        geoms = [g.intersection(box(X0, south, X0 + N * CELL, Y0)) for g in geoms]
        geoms.append(box(X0, south - 0.5 * N * CELL, X0 + N * CELL, south))
    gpd.GeoDataFrame({"XZQMC": names, "XZQDM": [f"5118{i:02d}" for i in range(len(names))]}, geometry=geoms,
                     crs=CRS).to_file(folder / "counties.gpkg")
    paths.update(landuse=folder / "landuse.gpkg", zones=folder / "zones.gpkg", counties=folder / "counties.gpkg")
    config = folder / "erosion.toml"
    config.write_text("[erosion]\nr_value = 6000.0\nk_value = 0.005\n", encoding="utf-8")
    paths["config"] = config
    return paths
