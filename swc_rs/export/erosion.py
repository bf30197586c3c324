"""Write an erosion result: the GeoPackage (tables per county and zone, run_info,
QGIS styles and project) and the COGs of the modulus and the grade, atomically.

The rasters are written window by window into temporary GeoTIFFs next to the target
while the run goes (:class:`RasterSink`), then copied to Cloud-Optimised GeoTIFFs and
renamed together with the GeoPackage; a failed run leaves none of them behind.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
import pyogrio
import rasterio
import rasterio.shutil

from swc_rs.errors import OutputExistsError
from swc_rs.export.gpkg import check_output, write_layer

log = logging.getLogger(__name__)

#: Grade raster values: 0 not seen, 1 微度 … 6 剧烈 (SL 190-2007), with a colour table.
GRADE_COLOURS = {0: (0, 0, 0, 0), 1: (26, 152, 80, 255), 2: (166, 217, 106, 255), 3: (254, 224, 139, 255),
                 4: (253, 174, 97, 255), 5: (244, 109, 67, 255), 6: (165, 0, 38, 255)}


def raster_paths(gpkg: str | Path) -> dict[str, Path]:
    """The COGs that go with OUT.gpkg: OUT_modulus.tif (t/(km²·a)) and OUT_grade.tif."""
    gpkg = Path(gpkg)
    return {"modulus": gpkg.with_name(f"{gpkg.stem}_modulus.tif"), "grade": gpkg.with_name(f"{gpkg.stem}_grade.tif")}


def check_outputs(gpkg: str | Path, overwrite: bool) -> Path:
    """Refuse existing outputs (GeoPackage or either COG) without ``overwrite``."""
    path = check_output(gpkg, overwrite)
    for raster in raster_paths(path).values():
        if raster.exists() and not overwrite:
            raise OutputExistsError("the output already exists", path=raster, fix="choose another name or add --overwrite")
    return path


class RasterSink:
    """Receives each window's modulus and grade and writes them to temporary GeoTIFFs."""

    def __init__(self, target: Path):
        self.target = Path(target)
        self._tmp: dict[str, Path] = {}
        self._ds: dict[str, rasterio.io.DatasetWriter] = {}

    def _open(self, grid) -> None:
        for name, dtype, nodata in (("modulus", "float32", np.nan), ("grade", "uint8", 0)):
            fd, tmp = tempfile.mkstemp(prefix=f".{self.target.stem}.{name}.", suffix=".tif", dir=self.target.parent)
            os.close(fd)
            self._tmp[name] = Path(tmp)
            self._ds[name] = rasterio.open(
                tmp, "w", driver="GTiff", width=grid.width, height=grid.height, count=1, dtype=dtype,
                crs=grid.crs, transform=grid.transform, nodata=nodata, tiled=True, blockxsize=512, blockysize=512,
                compress="deflate", BIGTIFF="IF_SAFER")
        self._ds["grade"].write_colormap(1, GRADE_COLOURS)
        self._ds["modulus"].set_band_description(1, "soil erosion modulus, t/(km2·a) (CSLE)")
        self._ds["grade"].set_band_description(1, "erosion grade SL 190-2007: 1 微度 … 6 剧烈, 0 not seen")

    def __call__(self, grid, window, modulus: np.ndarray, grade: np.ndarray) -> None:
        if not self._ds:
            self._open(grid)
        self._ds["modulus"].write(modulus.astype(np.float32), 1, window=window)
        self._ds["grade"].write(grade.astype(np.uint8), 1, window=window)

    def finish(self) -> dict[str, Path]:
        """Close the GeoTIFFs and copy them to temporary COGs; returns name → COG path."""
        cogs = {}
        for name, ds in self._ds.items():
            ds.close()
            fd, tmp = tempfile.mkstemp(prefix=f".{self.target.stem}.{name}.cog.", suffix=".tif", dir=self.target.parent)
            os.close(fd)
            os.unlink(tmp)
            rasterio.shutil.copy(self._tmp[name], tmp, driver="COG", COMPRESS="DEFLATE", BIGTIFF="IF_SAFER",
                                 RESAMPLING="NEAREST" if name == "grade" else "AVERAGE")
            self._tmp[name].unlink(missing_ok=True)
            cogs[name] = Path(tmp)
        self._ds.clear()
        return cogs

    def discard(self, cogs: dict[str, Path] | None = None) -> None:
        for ds in self._ds.values():
            ds.close()
        self._ds.clear()
        for tmp in list(self._tmp.values()) + list((cogs or {}).values()):
            tmp.unlink(missing_ok=True)


def write_erosion(result, path: str | Path, sink: RasterSink, *, overwrite: bool = False) -> dict[str, Path]:
    """Write ``erosion_counties``, ``erosion_zones``, ``run_info`` (+ styles, project) and the COGs.

    Returns
    -------
    dict
        ``gpkg``, ``modulus``, ``grade`` → the paths written.
    """
    from swc_rs.export.styles import write_styles

    path = check_outputs(path, overwrite)
    targets = raster_paths(path)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=".gpkg", dir=path.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    tmp.unlink()
    cogs: dict[str, Path] | None = None
    try:
        cogs = sink.finish()
        write_layer(result.counties, tmp, "erosion_counties")
        write_layer(result.zones, tmp, "erosion_zones")
        info = dict(result.run_info)
        info["rasters"] = {name: str(p) for name, p in targets.items()}
        info = {k: (json.dumps(v, ensure_ascii=False) if isinstance(v, (dict, list)) else v) for k, v in info.items()}
        pyogrio.write_dataframe(pd.DataFrame([info]), tmp, layer="run_info")
        write_styles(tmp, path, images=False)
        for name, cog in cogs.items():
            os.replace(cog, targets[name])
        os.replace(tmp, path)
    except BaseException:
        sink.discard(cogs)
        tmp.unlink(missing_ok=True)
        raise
    log.info("wrote %s, %s, %s", path, targets["modulus"], targets["grade"])
    return {"gpkg": path, **targets}
