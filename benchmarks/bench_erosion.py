"""`make bench-erosion`: `swc-rs erosion` on a generated city-sized 10 m scene.

Generates (once, cached under ``.cache/bench_erosion/<size>``) a seeded synthetic
DEM (value-noise mountains, ~0–2 500 m of relief like Ya'an's), a 4-band imagery
raster on the same 10 m grid (vegetation cover from a noise field, some cloud), a
land-use raster of 地类 codes, the five illustrative SWC zones and eight synthetic
counties (Voronoi cells named after Ya'an's counties). The DEM is placed in
EPSG:4543 over Ya'an; 12288² px at 10 m ≈ 151 Mpx ≈ the city's 15 046 km².

Then runs ``swc-rs erosion`` once in a fresh subprocess (R and K per zone from
``pipelines/erosion_sample.toml``) and prints wall time, peak RSS of the child and
Mpx/s. It is a report: it exits 0 when the 5-minute target is missed, 1 only when
the run fails.

    $ .venv/bin/python benchmarks/bench_erosion.py                # 12288² (the city)
    $ .venv/bin/python benchmarks/bench_erosion.py --size 4096    # a first, smaller run
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
DEFAULT_CACHE = REPO / ".cache" / "bench_erosion"
CELL_M = 10.0
TARGET_S = 300.0
MARKER = ".complete.json"
STRIP = 512
CRS = "EPSG:4543"
# Centre (EPSG:4543, CGCS2000 3° GK CM 102°E) of the square: the middle of the illustrative zones
# of Ya'an (12288 px: 122.9 km a side; the city is not square, so the zones are covered in part).
CX, CY = 564_500.0, 3_308_600.0
COUNTIES = ("雨城区", "名山区", "荥经县", "汉源县", "石棉县", "天全县", "芦山县", "宝兴县")
# (lattice cell in px, amplitude m): mountains of ~2 km down to 60 m hills.
RELIEF = ((2048, 900.0), (512, 350.0), (128, 120.0), (32, 30.0), (8, 4.0))
LANDUSE = {"forest": 301, "shrub": 305, "grass": 404, "dryland": 103, "paddy": 101, "village": 702, "water": 1101}


def make_inputs(folder: Path, size: int, seed: int) -> dict[str, Path]:
    """The scene's files in ``folder`` (cached: a completion marker is written last)."""
    import rasterio
    from affine import Affine
    from rasterio.windows import Window

    from swc_rs.sample import _key, grid_noise

    paths = {name: folder / f"{name}.{ext}" for name, ext in
             (("dem", "tif"), ("imagery", "tif"), ("landuse", "tif"), ("zones", "gpkg"), ("counties", "gpkg"))}
    x0, y0 = CX - size * CELL_M / 2, CY + size * CELL_M / 2
    if (folder / MARKER).exists():
        _write_vectors(paths, size, seed, x0, y0)  # cheap: always as this version makes them
        return paths
    folder.mkdir(parents=True, exist_ok=True)
    print(f"generating a {size}×{size} px 10 m scene in {folder} ...", flush=True)
    t0 = time.perf_counter()
    transform = Affine(CELL_M, 0, x0, 0, -CELL_M, y0)
    common = dict(driver="GTiff", width=size, height=size, crs=CRS, transform=transform, tiled=True,
                  blockxsize=512, blockysize=512, compress="deflate", zlevel=1, bigtiff="YES")
    key = lambda name: _key(seed, "bench_erosion", name)  # noqa: E731
    with (rasterio.open(paths["dem"], "w", count=1, dtype="float32", nodata=-9999.0, predictor=3, **common) as dem,
          rasterio.open(paths["imagery"], "w", count=4, dtype="uint16", predictor=2, **common) as img,
          rasterio.open(paths["landuse"], "w", count=1, dtype="uint16", nodata=0, **common) as land):
        img.descriptions = ("blue", "green", "red", "nir")
        for r0 in range(0, size, STRIP):
            h = min(STRIP, size - r0)
            z = 1500.0 + sum(a * grid_noise(r0, 0, h, size, c, key(f"z{c}")) for c, a in RELIEF)
            veg = (grid_noise(r0, 0, h, size, 300, key("veg")) + 0.5 * grid_noise(r0, 0, h, size, 40, key("veg40"))
                   + 0.3 * grid_noise(r0, 0, h, size, 6, key("veg6")))
            fvc = np.clip(0.55 + 0.5 * veg - 0.00015 * (z - 1500.0), 0.0, 1.0)
            farm = grid_noise(r0, 0, h, size, 64, key("farm")) + 0.0004 * (1500.0 - z)
            cls = np.where(fvc > 0.65, LANDUSE["forest"], np.where(fvc > 0.45, LANDUSE["shrub"], LANDUSE["grass"]))
            cls = np.where(farm > 0.55, LANDUSE["dryland"], cls)
            cls = np.where(farm > 0.85, LANDUSE["paddy"], cls)
            cls = np.where((farm > 0.5) & (grid_noise(r0, 0, h, size, 12, key("vil")) > 0.8), LANDUSE["village"], cls)
            water = grid_noise(r0, 0, h, size, 256, key("water")) > 0.93
            cls = np.where(water, LANDUSE["water"], cls)
            fvc = np.where(cls == LANDUSE["dryland"], 0.35 * fvc, fvc)
            soil, leaf = np.array([0.10, 0.13, 0.16, 0.22]), np.array([0.03, 0.06, 0.04, 0.40])
            refl = soil[:, None, None] * (1 - fvc) + leaf[:, None, None] * fvc
            refl = np.where(water, np.array([0.05, 0.06, 0.04, 0.02])[:, None, None], refl)
            cloud = grid_noise(r0, 0, h, size, 96, key("cloud")) > 0.9
            refl = np.where(cloud, np.array([0.45, 0.46, 0.47, 0.48])[:, None, None], refl)
            window = Window(0, r0, size, h)
            dem.write(z.astype(np.float32), 1, window=window)
            img.write(np.round(refl * 10000).astype(np.uint16), window=window)
            land.write(cls.astype(np.uint16), 1, window=window)
    _write_vectors(paths, size, seed, x0, y0)
    (folder / MARKER).write_text(json.dumps({"size": size, "seed": seed, "seconds": round(time.perf_counter() - t0, 1)}))
    print(f"  {time.perf_counter() - t0:.0f} s", flush=True)
    return paths


def _write_vectors(paths: dict[str, Path], size: int, seed: int, x0: float, y0: float) -> None:
    """The zones (the illustrative five, where they meet the square) and eight counties
    (Voronoi cells inside the zones: R is given per zone)."""
    import geopandas as gpd
    import shapely
    from shapely.geometry import MultiPoint, box

    from swc_rs.sample import illustrative_city_zones

    extent = box(x0, y0 - size * CELL_M, x0 + size * CELL_M, y0)
    zones = illustrative_city_zones()
    zones = zones[zones.intersects(extent)]
    zones.to_file(paths["zones"], layer="zones", driver="GPKG")
    rng = np.random.default_rng(seed)
    points = MultiPoint([(x0 + u * size * CELL_M, y0 - v * size * CELL_M) for u, v in rng.uniform(0.1, 0.9, (8, 2))])
    city = zones.union_all().intersection(extent)  # R per zone: the counties stay inside the zones
    cells = [c.intersection(city) for c in shapely.voronoi_polygons(points, extend_to=extent).geoms]
    counties = gpd.GeoDataFrame({"XZQMC": list(COUNTIES), "XZQDM": [f"5118{i:02d}" for i in range(2, 10)]},
                                geometry=cells, crs=CRS)
    counties.to_file(paths["counties"], layer="counties", driver="GPKG")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=12288, help="DEM side in px at 10 m (12288: the city)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--cache", type=Path, default=DEFAULT_CACHE)
    parser.add_argument("--window-size", type=int, default=None, help="[erosion] window_size (default: config)")
    args = parser.parse_args(argv)
    paths = make_inputs(args.cache / f"{args.size}_seed{args.seed}", args.size, args.seed)
    out = args.cache / "out" / f"erosion_{args.size}.gpkg"
    out.parent.mkdir(parents=True, exist_ok=True)
    command = [sys.executable, "-c", "from swc_rs.cli.main import cli; cli()", "erosion", str(paths["dem"]), "--imagery", str(paths["imagery"]),
               "--landuse", str(paths["landuse"]), "--zones", str(paths["zones"]), "--counties", str(paths["counties"]),
               "--config", str(REPO / "pipelines" / "erosion_sample.toml"), "--year", "2026", "-o", str(out),
               "--overwrite", "-q"]
    if args.window_size:
        command += ["--window-size", str(args.window_size)]
    env = dict(os.environ, PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    print("running: swc-rs " + " ".join(command[3:]), flush=True)
    t0 = time.perf_counter()
    done = subprocess.run(command, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if done.returncode != 0:
        print(done.stdout[-3000:], done.stderr[-3000:], sep="\n")
        print(f"erosion failed (exit {done.returncode})")
        return 1
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    rss_gb = usage.ru_maxrss / 1024 ** 2
    cpu = usage.ru_utime + usage.ru_stime
    mpx = args.size * args.size / 1e6
    import geopandas as gpd

    counties = gpd.read_file(out, layer="erosion_counties")
    print(f"machine: {platform.node()} · {os.cpu_count()} cores (shared with other jobs) · Python {platform.python_version()}")
    print(f"DEM {args.size}×{args.size} px at 10 m = {mpx:.1f} Mpx ({mpx * 100:.0f} km²)")
    load = os.getloadavg()[0]
    print(f"wall {wall:.1f} s · CPU {cpu:.1f} s (user + sys) · peak RSS {rss_gb:.2f} GB (the largest process) · {mpx / wall:.2f} Mpx/s "
          f"(load average {load:.1f} on {os.cpu_count()} cores at the end)")
    city, city_cpu = 150.0 / (mpx / wall), 150.0 / (mpx / cpu)
    print(f"the whole city (150 Mpx) at this rate: {city:.0f} s wall, {city_cpu:.0f} s CPU (target ≤ {TARGET_S:.0f} s: "
          f"{'met' if city <= TARGET_S else 'missed'} on the wall clock)")
    print(counties[["XZQMC", "LAND_HM2", "UNSEEN_PCT", "SWC_RATE", "MEAN_A"]].to_string(index=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
