"""Tiny fixtures made in the test: rasters with a known square, zones and projects."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import geopandas as gpd
import numpy as np
import pytest
import rasterio
import shapely
from rasterio.transform import from_origin

FOREST = np.array([250, 450, 280, 3300], np.float32)
SOIL = np.array([1300, 1600, 2000, 2400], np.float32)
X0, Y0 = 300_000.0, 3_320_000.0  # UTM 48N, near Ya'an


def write_raster(path: Path, data: np.ndarray, *, crs="EPSG:32648", transform=None, descriptions=("blue", "green", "red", "nir"), date=None, nodata=None, dtype="uint16"):
    count, height, width = data.shape
    transform = transform or from_origin(X0, Y0, 2, 2)
    with rasterio.open(path, "w", driver="GTiff", width=width, height=height, count=count, dtype=dtype,
                       crs=crs, transform=transform, tiled=True, blockxsize=64, blockysize=64, nodata=nodata) as dst:
        dst.write(np.clip(data, 0, np.iinfo(dtype).max if dtype.startswith("uint") else None).astype(dtype))
        if descriptions:
            dst.descriptions = tuple(descriptions[:count]) + (None,) * max(0, count - len(descriptions))
        if date:
            dst.update_tags(ACQUISITION_DATE=date)
    return path


def forest(height: int, width: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return FOREST[:, None, None] * (1 + 0.04 * rng.standard_normal((1, height, width))).astype(np.float32)


@dataclass
class Scene:
    before: Path
    after: Path
    zones: Path
    projects: Path
    folder: Path


def make_scene(folder: Path, *, size: int = 160, squares=((40, 40, 30),), gain: float = 1.0, offset: float = 0.0, projects=None) -> Scene:
    """Forest everywhere; bare soil squares (row, col, side) appear in AFTER."""
    before = forest(size, size, 1)
    after = forest(size, size, 2) * gain + offset
    for row, col, side in squares:
        after[:, row: row + side, col: col + side] = SOIL[:, None, None] * gain + offset
    b = write_raster(folder / "before.tif", before, date="2026-10-01")
    a = write_raster(folder / "after.tif", after, date="2026-11-02")
    extent = shapely.box(X0, Y0 - 2 * size, X0 + 2 * size, Y0)
    zones = gpd.GeoDataFrame({"ZONE_CODE": ["Z3"], "ZONE_NAME": ["雅安东部丘陵平坝人居环境维护保土减灾区"]},
                             geometry=[extent], crs="EPSG:32648").to_crs("EPSG:4543")
    zones.to_file(folder / "zones.gpkg", layer="zones")
    projects = projects if projects is not None else gpd.GeoDataFrame(
        {"PRNM": ["测试项目"], "DPOZ": ["测试单位"], "DAREA": [1.0]},
        geometry=[shapely.box(X0 + 60, Y0 - 180, X0 + 160, Y0 - 60)], crs="EPSG:32648")
    projects.to_crs("EPSG:4490").to_file(folder / "projects.gpkg", layer="projects")
    return Scene(b, a, folder / "zones.gpkg", folder / "projects.gpkg", folder)


def detect_patches(folder: Path, before: Path, after: Path, scene: Scene, *, window: str, change: str) -> gpd.GeoDataFrame:
    """``disturbance_patches`` of ``swc-rs detect --rules`` on ``before``/``after`` with
    ``scene``'s zones and projects, windows of ``window`` px and the ``[change]`` lines
    ``change`` (e.g. ``"hysteresis = 0.7"``)."""
    from click.testing import CliRunner

    from swc_rs.cli.main import cli

    tag = f"w{window}_" + "".join(ch if ch.isalnum() else "_" for ch in change)
    config = folder / f"{tag}.toml"
    config.write_text(f"[change]\n{change}\n", encoding="utf-8")
    out = folder / f"{tag}.gpkg"
    args = ["detect", str(before), str(after), "--zones", str(scene.zones), "--projects", str(scene.projects),
            "-o", str(out), "--rules", "--window-size", window, "--config", str(config)]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    return gpd.read_file(out, layer="disturbance_patches")


def one_region_whole_across_seams(patches, setting: float) -> float:
    """QAREA (hm²) of the single patch ``patches(window, setting)`` finds with one window
    and with 128-px windows, asserting it is the 60 × 160-pixel region at 2 m, the same
    whichever windows cut it."""
    whole, tiled = patches("1024", setting), patches("128", setting)
    assert len(whole) == len(tiled) == 1
    assert whole.QAREA[0] == pytest.approx(60 * 160 * 4 / 10_000, rel=0.05)  # the whole region (2 m pixels)
    assert tiled.QAREA[0] == pytest.approx(whole.QAREA[0], rel=0.01)
    return float(whole.QAREA[0])


@pytest.fixture(autouse=True, scope="session")
def _temporary_files_in_basetemp(tmp_path_factory):
    """Temporary files (detect's chip-crop spools) under pytest's basetemp, also for the
    commands tests run: a result still held by a module fixture when an xdist worker
    exits, or a run a test kills, leaves its spool there, not in /tmp (pytest keeps the
    last three basetemps)."""
    import os
    import tempfile

    folder = str(tmp_path_factory.mktemp("tmp"))
    saved, saved_env = tempfile.tempdir, os.environ.get("TMPDIR")
    tempfile.tempdir = os.environ["TMPDIR"] = folder
    yield
    tempfile.tempdir = saved
    if saved_env is None:
        os.environ.pop("TMPDIR", None)
    else:
        os.environ["TMPDIR"] = saved_env


@pytest.fixture
def scene(tmp_path) -> Scene:
    return make_scene(tmp_path)
