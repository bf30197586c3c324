"""The bad-input corpus: every case ends with exit 2 (one message) or a correct result.

Never a traceback, never exit 1 (an unexpected failure), never a partial output. Each
case is made in ``tmp_path`` from the tiny scene of ``conftest`` and run through the
command line; the table :data:`CASES` (case → expected outcome) is the one recorded in
docs/2026-12-07-bad-input-and-faults.md.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import geopandas as gpd
import numpy as np
import pytest
import rasterio
import shapely
from click.testing import CliRunner
from rasterio.transform import Affine, from_origin

from swc_rs import codes
from swc_rs.cli.main import cli
from tests.conftest import SOIL, X0, Y0, forest, make_scene, write_raster

REFUSED, OK = "exit 2", "correct result"
SQUARE = (40, 40, 30)  # the scene's one bare-soil square: 30 × 30 px at 2 m = 0.36 hm²


# -- builders ---------------------------------------------------------------------------------
def after_data(size=160):
    data = forest(size, size, 2)
    row, col, side = SQUARE
    data[:, row:row + side, col:col + side] = SOIL[:, None, None]
    return data


def tif(folder, name, data, **kw):
    kw.setdefault("date", "2026-11-02")
    return write_raster(folder / name, data, **kw)


def raw_tif(folder, name, data, *, dtype, transform=None, crs="EPSG:32648", nodata=None, date="2026-11-02"):
    """A GeoTIFF of any data type, values as given (no clipping)."""
    count, height, width = data.shape
    path = folder / name
    with rasterio.open(path, "w", driver="GTiff", width=width, height=height, count=count, dtype=dtype, crs=crs,
                       transform=transform or from_origin(X0, Y0, 2, 2), nodata=nodata) as dst:
        dst.write(data.astype(dtype))
        dst.descriptions = ("blue", "green", "red", "nir")[:count]
        dst.update_tags(ACQUISITION_DATE=date)
    return path


def truncated(path: Path, fraction=0.5) -> Path:
    data = path.read_bytes()
    out = path.with_name("truncated_" + path.name)
    out.write_bytes(data[: int(len(data) * fraction)])
    return out


def scribbled(path: Path, start_fraction=0.3) -> Path:
    """``path`` with a stretch of its bytes overwritten (header intact)."""
    data = bytearray(path.read_bytes())
    start = int(len(data) * start_fraction)
    data[start:start + 4096] = np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8).tobytes()[: len(data) - start]
    out = path.with_name("scribbled_" + path.name)
    out.write_bytes(bytes(data))
    return out


def layer(folder, name, geoms, crs="EPSG:32648", **fields):
    path = folder / name
    gpd.GeoDataFrame(fields, geometry=list(geoms), crs=crs).to_file(path, engine="pyogrio")
    return path


def project_box():
    return shapely.box(X0 + 60, Y0 - 180, X0 + 160, Y0 - 60)


def zone_box():
    return shapely.box(X0, Y0 - 320, X0 + 320, Y0)


def detect_args(s, *, before=None, after=None, zones=None, projects=None, output=None, extra=()):
    return ["detect", str(before or s.before), str(after or s.after), "--zones", str(zones or s.zones),
            "--projects", str(projects or s.projects), "-o", str(output or s.folder / "out.gpkg"), "--rules",
            "--workers", "1", *map(str, extra)]


# Each case: (name, expected, build(scene) -> argv[, check(scene, argv, result)]).
def _raster_cases():
    f = lambda s: s.folder  # noqa: E731
    yield "tiff truncated", REFUSED, lambda s: detect_args(s, after=truncated(s.after))
    yield "tiff truncated to its header", REFUSED, lambda s: detect_args(s, after=truncated(s.after, 0.02))
    yield "deflate tiff with scribbled tiles", REFUSED, lambda s: detect_args(s, after=scribbled(_deflated(s.after)))
    yield "uncompressed tiff with scribbled pixels", OK, lambda s: detect_args(s, after=scribbled(s.after, 0.9)), None
    yield "tiff of zero bytes", REFUSED, lambda s: detect_args(s, after=_write(f(s) / "empty.tif", b""))
    yield "text file named .tif", REFUSED, lambda s: detect_args(s, after=_write(f(s) / "notes.tif", b"not an image\n"))
    yield "folder named .tif", REFUSED, lambda s: detect_args(s, after=_folder(f(s) / "dir.tif"))
    yield "missing file", REFUSED, lambda s: detect_args(s, after=f(s) / "nowhere.tif")
    yield "one band", REFUSED, lambda s: detect_args(s, after=tif(f(s), "one.tif", after_data()[:1], descriptions=None))
    yield "two bands", REFUSED, lambda s: detect_args(s, after=tif(f(s), "two.tif", after_data()[:2], descriptions=None))
    yield "int8 bands", REFUSED, lambda s: detect_args(s, after=raw_tif(f(s), "i8.tif", np.clip(after_data() / 40, -128, 127), dtype="int8"))
    yield "float64 reflectance with NaN", OK, lambda s: detect_args(s, after=raw_tif(f(s), "nan.tif", _with(after_data() / 10000, np.nan), dtype="float64")), _one_square
    yield "float64 reflectance with inf", OK, lambda s: detect_args(s, after=raw_tif(f(s), "inf.tif", _with(after_data() / 10000, np.inf), dtype="float64")), _one_square
    yield "float64 all NaN", REFUSED, lambda s: detect_args(s, after=raw_tif(f(s), "allnan.tif", np.full((4, 160, 160), np.nan), dtype="float64"))
    yield "complex64 bands", REFUSED, lambda s: detect_args(s, after=raw_tif(f(s), "cplx.tif", after_data().astype(np.complex64), dtype="complex64"))
    yield "1×1 raster", REFUSED, lambda s: detect_args(s, after=tif(f(s), "px.tif", after_data()[:, :1, :1]))
    yield "1×N raster", REFUSED, lambda s: detect_args(s, after=tif(f(s), "row.tif", after_data()[:, :1, :]))
    yield "N×1 raster as BEFORE", REFUSED, lambda s: detect_args(s, before=tif(f(s), "col.tif", forest(160, 1, 1), date="2026-10-01"))
    yield "rotated geotransform (AFTER, warped)", OK, lambda s: detect_args(s, after=tif(f(s), "rot.tif", after_data(), transform=Affine(2, 0.02, X0, 0.02, -2, Y0))), _one_square
    yield "rotated geotransform (BEFORE)", REFUSED, lambda s: detect_args(s, before=tif(f(s), "rotb.tif", forest(160, 160, 1), date="2026-10-01", transform=Affine(2, 0.2, X0, 0.2, -2, Y0)))
    yield "south-up geotransform (AFTER, warped)", OK, lambda s: detect_args(s, after=tif(f(s), "south.tif", after_data()[:, ::-1], transform=Affine(2, 0, X0, 0, 2, Y0 - 320))), _one_square
    yield "south-up geotransform (BEFORE)", REFUSED, lambda s: detect_args(s, before=tif(f(s), "southb.tif", forest(160, 160, 1)[:, ::-1], date="2026-10-01", transform=Affine(2, 0, X0, 0, 2, Y0 - 320)))
    yield "no CRS", REFUSED, lambda s: detect_args(s, after=tif(f(s), "nocrs.tif", after_data(), crs=None))
    yield "CRS that cannot be transformed (Mars)", REFUSED, lambda s: detect_args(s, after=tif(f(s), "mars.tif", after_data(), crs="ESRI:104905", transform=from_origin(10, 10, 0.0001, 0.0001)))
    yield "no geotransform", REFUSED, lambda s: detect_args(s, after=tif(f(s), "nogeo.tif", after_data(), transform=Affine.identity()))
    yield "no overlap", REFUSED, lambda s: detect_args(s, after=tif(f(s), "far.tif", after_data(), transform=from_origin(X0 + 10_000, Y0, 2, 2)))
    yield "all nodata", REFUSED, lambda s: detect_args(s, after=tif(f(s), "nodata.tif", np.zeros((4, 160, 160)), nodata=0))
    yield "uint8 bands", OK, lambda s: detect_args(s, before=raw_tif(f(s), "b8.tif", forest(160, 160, 1) / 16, dtype="uint8", date="2026-10-01"), after=raw_tif(f(s), "a8.tif", after_data() / 16, dtype="uint8")), _one_square
    yield "AFTER in another CRS (EPSG:4490)", OK, lambda s: detect_args(s, after=_reprojected(s.after, "EPSG:4490")), _one_square


def _vector_cases():
    f = lambda s: s.folder  # noqa: E731
    yield "gpkg truncated (zones)", REFUSED, lambda s: detect_args(s, zones=truncated(s.zones))
    yield "gpkg scribbled (projects)", REFUSED, lambda s: detect_args(s, projects=scribbled(s.projects, 0.05))
    yield "gpkg of zero bytes", REFUSED, lambda s: detect_args(s, zones=_write(f(s) / "empty.gpkg", b""))
    yield "random bytes as gpkg", REFUSED, lambda s: detect_args(s, projects=_write(f(s) / "noise.gpkg", np.random.default_rng(1).bytes(8192)))
    yield "geometry collection projects", OK, lambda s: detect_args(s, projects=layer(f(s), "gc.gpkg", [shapely.GeometryCollection([project_box(), shapely.Point(X0, Y0)])], PRNM=["测试项目"], DPOZ=["测试单位"], DAREA=[1.0])), _compliant
    yield "geometry collection of points only (projects)", OK, lambda s: detect_args(s, projects=layer(f(s), "gcp.gpkg", [shapely.GeometryCollection([shapely.Point(X0, Y0)]), project_box()], PRNM=["点", "测试项目"], DPOZ=["x", "测试单位"], DAREA=[1.0, 1.0])), _compliant
    yield "3D (Z) projects", OK, lambda s: detect_args(s, projects=layer(f(s), "z.gpkg", [shapely.force_3d(project_box(), 500.0)], PRNM=["测试项目"], DPOZ=["测试单位"], DAREA=[1.0])), _compliant
    yield "measured (M) zones", OK, lambda s: detect_args(s, zones=_ogr_layer(f(s) / "m.gpkg", "POLYGON M", zone_box(), "ZONE_CODE", "Z3")), _one_square
    yield "ZM zones", OK, lambda s: detect_args(s, zones=_ogr_layer(f(s) / "zm.gpkg", "POLYGON ZM", zone_box(), "ZONE_CODE", "Z3")), _one_square
    yield "empty geometries in projects", OK, lambda s: detect_args(s, projects=layer(f(s), "emp.gpkg", [shapely.Polygon(), project_box()], PRNM=["空", "测试项目"], DPOZ=["x", "测试单位"], DAREA=[1.0, 1.0])), _compliant
    yield "only empty geometries in zones", REFUSED, lambda s: detect_args(s, zones=layer(f(s), "zemp.gpkg", [shapely.Polygon()], ZONE_CODE=["Z3"]))
    yield "self-intersecting project (bow tie)", OK, lambda s: detect_args(s, projects=layer(f(s), "bow.gpkg", [_bow_tie()], PRNM=["测试项目"], DPOZ=["测试单位"], DAREA=[1.0])), None
    yield "point zones", REFUSED, lambda s: detect_args(s, zones=layer(f(s), "pz.gpkg", [shapely.Point(X0 + 100, Y0 - 100)], ZONE_CODE=["Z3"]))
    yield "GBK shapefile without .cpg", OK, lambda s: detect_args(s, projects=_gbk_shapefile(f(s))), _compliant
    yield "non-UTF-8 bytes in a GeoJSON", REFUSED, lambda s: detect_args(s, projects=_latin1_geojson(f(s)))
    yield "zones without CRS (shapefile, no .prj)", REFUSED, lambda s: detect_args(s, zones=_no_prj(f(s)))
    yield "projects in a CRS that cannot be transformed (Mars)", REFUSED, lambda s: detect_args(s, projects=layer(f(s), "marsp.gpkg", [shapely.box(0, 0, 1, 1)], crs="ESRI:104905", PRNM=["火星"]))
    yield "zones without ZONE_CODE", REFUSED, lambda s: detect_args(s, zones=layer(f(s), "nocode.gpkg", [zone_box()], NAME=["x"]))
    yield "projects without PRNM", REFUSED, lambda s: detect_args(s, projects=layer(f(s), "noprnm.gpkg", [project_box()], NAME=["x"]))


def _output_cases():
    f = lambda s: s.folder  # noqa: E731
    yield "output folder under a regular file", REFUSED, lambda s: detect_args(s, output=_write(f(s) / "plain.txt", b"x") / "out.gpkg")
    yield "output is a symlink", REFUSED, lambda s: detect_args(s, output=_symlink(f(s) / "target.gpkg", f(s) / "out.gpkg"), extra=["--overwrite"])
    yield "output is a dangling symlink", REFUSED, lambda s: detect_args(s, output=_symlink(f(s) / "gone.gpkg", f(s) / "out.gpkg", make=False))
    yield "output folder is a symlink", OK, lambda s: detect_args(s, output=_symlink(_folder(f(s) / "real"), f(s) / "link", make=False) / "out.gpkg"), None
    yield "output not .gpkg", REFUSED, lambda s: detect_args(s, output=f(s) / "out.shp")
    yield "output exists, no --overwrite", REFUSED, lambda s: detect_args(s, output=_write(f(s) / "out.gpkg", b"keep"))
    yield "config not TOML", REFUSED, lambda s: detect_args(s, extra=["--config", _write(f(s) / "c.toml", b"[raster\nx=")])
    yield "config with an unknown key", REFUSED, lambda s: detect_args(s, extra=["--config", _write(f(s) / "c.toml", b"[raster]\nwindow = 5\n")])
    yield "--previous not an swc-rs output", REFUSED, lambda s: detect_args(s, extra=["--previous", s.zones])
    yield "--history a truncated store", REFUSED, lambda s: detect_args(s, extra=["--history", truncated(_store(s))])


def _field_cases():
    yield "field file with a duplicate QDNM", REFUSED, lambda s: _import_args(s, _field(s, duplicate=True))
    yield "field file from another run", REFUSED, lambda s: _import_args(s, _field(s, other_run=True))
    yield "field file truncated", REFUSED, lambda s: _import_args(s, truncated(_field(s)))
    yield "field file with a bad verdict", REFUSED, lambda s: _import_args(s, _field(s, byd="随便"))
    yield "field file, good", OK, lambda s: _import_args(s, _field(s)), _imported
    yield "store is a plain GeoPackage", REFUSED, lambda s: ["verify", "import", str(_field(s)), "--store", str(s.zones)]




# -- helpers of the builders ---------------------------------------------------------------------
def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def _folder(path: Path) -> Path:
    path.mkdir(exist_ok=True)
    return path


def _symlink(target: Path, link: Path, make=True) -> Path:
    if make:
        target.write_bytes(b"someone else's file")
    link.symlink_to(target)
    return link


def _deflated(path: Path) -> Path:
    out = path.with_name("deflated.tif")
    with rasterio.open(path) as src:
        with rasterio.open(out, "w", **(src.profile | {"compress": "deflate"})) as dst:
            dst.write(src.read())
            dst.descriptions = src.descriptions
            dst.update_tags(**src.tags())
    return out


def _with(data, value):
    data = data.copy()
    data[:, 100:104, 100:104] = value
    return data


def _reprojected(path: Path, crs: str) -> Path:
    from rasterio.warp import calculate_default_transform, reproject

    out = path.with_name("reprojected.tif")
    with rasterio.open(path) as src:
        transform, width, height = calculate_default_transform(src.crs, crs, src.width, src.height, *src.bounds)
        profile = src.profile | {"crs": crs, "transform": transform, "width": width, "height": height}
        with rasterio.open(out, "w", **profile) as dst:
            for b in range(1, src.count + 1):
                reproject(rasterio.band(src, b), rasterio.band(dst, b), resampling=rasterio.enums.Resampling.nearest)
            dst.descriptions = src.descriptions
            dst.update_tags(**src.tags())
    return out


def _ogr_layer(path: Path, geometry_type: str, geom, field: str, value: str) -> Path:
    """A one-feature layer with an M (or ZM) geometry: ogr2ogr from a WKT CSV (pyogrio
    writes no M geometries)."""
    import subprocess

    if shutil.which("ogr2ogr") is None:
        pytest.skip("ogr2ogr (gdal-bin) is not installed: no way to write M geometries here")
    dims = geometry_type.split()[1]
    extra = " 10 1" if dims == "ZM" else " 1"
    wkt = f"POLYGON {dims} ((" + ", ".join(f"{x} {y}{extra}" for x, y in geom.exterior.coords) + "))"
    csv = path.with_suffix(".csv")
    csv.write_text(f'WKT,{field}\n"{wkt}",{value}\n', encoding="utf-8")
    subprocess.run(["ogr2ogr", "-f", "GPKG", str(path), str(csv), "-oo", "GEOM_POSSIBLE_NAMES=WKT",
                    "-oo", "KEEP_GEOM_COLUMNS=NO", "-a_srs", "EPSG:32648", "-nlt", dims and f"POLYGON{dims}"],
                   check=True, capture_output=True)
    csv.unlink()
    return path


def _bow_tie():
    return shapely.Polygon([(X0 + 60, Y0 - 60), (X0 + 160, Y0 - 180), (X0 + 160, Y0 - 60), (X0 + 60, Y0 - 180)])


def _gbk_shapefile(folder: Path) -> Path:
    path = folder / "gbk.shp"
    frame = gpd.GeoDataFrame({"PRNM": ["测试项目"], "DPOZ": ["测试单位"], "DAREA": [1.0]}, geometry=[project_box()],
                             crs="EPSG:32648")
    frame.to_file(path, engine="pyogrio", encoding="gbk")
    path.with_suffix(".cpg").unlink(missing_ok=True)
    return path


def _latin1_geojson(folder: Path) -> Path:
    path = folder / "latin1.geojson"
    x0, y0, x1, y1 = gpd.GeoSeries([project_box()], crs="EPSG:32648").to_crs("EPSG:4326").total_bounds
    text = ('{"type":"FeatureCollection","features":[{"type":"Feature","properties":{"PRNM":"Caf\xe9 \xff"},'
            f'"geometry":{{"type":"Polygon","coordinates":[[[{x0},{y0}],[{x1},{y0}],[{x1},{y1}],[{x0},{y1}],[{x0},{y0}]]]}}}}]}}')
    path.write_bytes(text.encode("latin-1"))
    return path


def _no_prj(folder: Path) -> Path:
    path = folder / "noprj.shp"
    gpd.GeoDataFrame({"ZONE_CODE": ["Z3"]}, geometry=[zone_box()], crs="EPSG:32648").to_file(path, engine="pyogrio")
    path.with_suffix(".prj").unlink()
    return path


def _detected(s) -> Path:
    """The scene's detect output, made once per case folder."""
    out = s.folder / "desk.gpkg"
    if not out.exists():
        result = CliRunner().invoke(cli, detect_args(s, output=out, extra=["-q"]))
        assert result.exit_code == 0, result.output
    return out


def _store(s) -> Path:
    store = s.folder / "history.gpkg"
    if not store.exists():
        elsewhere = layer(s.folder, "projects_elsewhere.gpkg", [shapely.box(X0 + 200, Y0 - 300, X0 + 300, Y0 - 200)],
                          PRNM=["别的项目"], DPOZ=["别的单位"], DAREA=[1.0])  # the square is 疑似未批先建
        result = CliRunner().invoke(cli, detect_args(s, projects=elsewhere, output=s.folder / "registered.gpkg",
                                                     extra=["-q", "--history", store]))
        assert result.exit_code == 0, result.output
    return store


def _field(s, *, duplicate=False, other_run=False, byd="未批先建") -> Path:
    _store(s)
    field = gpd.read_file(s.folder / "registered.gpkg", layer="suspected_violations")
    for name in ("XCFHR", "DATE", "ZPBH", "X_CLOSE"):
        field[name] = ""
    field["RST"], field["XCFHR"], field["DATE"], field["BYD"], field["QDCS"] = "已复核", "张三", "2026-11-20", byd, "施工"
    if duplicate:
        field = gpd.GeoDataFrame(pd_concat([field, field]), crs=field.crs)
    if other_run:
        field["QDNM"] = "511800-202001-999999"
    path = s.folder / f"field_{int(duplicate)}{int(other_run)}_{byd}.gpkg"
    path.unlink(missing_ok=True)
    field.to_file(path, layer="suspected_violations", engine="pyogrio")
    return path


def pd_concat(frames):
    import pandas as pd

    return pd.concat(frames, ignore_index=True)


def _import_args(s, field: Path) -> list[str]:
    return ["verify", "import", str(field), "--store", str(_store(s))]


# -- checks of a correct result ---------------------------------------------------------------------
def _patches(argv):
    return gpd.read_file(argv[argv.index("-o") + 1], layer="disturbance_patches")


def _one_square(s, argv, result):
    """The one 30 × 30 px bare square, 0.36 hm² (±10 %)."""
    patches = _patches(argv)
    assert len(patches) == 1, patches
    assert patches.QAREA[0] == pytest.approx(0.36, rel=0.1)


def _compliant(s, argv, result):
    """The square inside the project: judged 合规 against 测试项目."""
    _one_square(s, argv, result)
    patches = _patches(argv)
    assert patches.BYD[0] == codes.COMPLIANT and patches.PRNM[0] == "测试项目"


def _imported(s, argv, result):
    from swc_rs.verification import load_store

    store = load_store(argv[argv.index("--store") + 1])
    assert len(store.verifications) >= 1


CASES = [*_raster_cases(), *_vector_cases(), *_output_cases(), *_field_cases()]


# -- the test ----------------------------------------------------------------------------------------
def _outputs(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in folder.rglob("*") if p.is_file() and not p.is_symlink()}


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_bad_input_gives_exit_2_or_a_correct_result(case, tmp_path):
    name, expected, build, *rest = case
    check = rest[0] if rest else None
    scene = make_scene(tmp_path, squares=(SQUARE,))
    argv = build(scene)
    before = _outputs(tmp_path)
    result = CliRunner().invoke(cli, argv)
    assert "Traceback" not in result.output
    assert result.exit_code in (0, 2), f"{name}: exit {result.exit_code}\n{result.output}"
    leftovers = list(tmp_path.rglob(".*.gpkg*"))
    assert not leftovers, leftovers  # no temporary left behind
    if expected == REFUSED:
        assert result.exit_code == 2, f"{name}: expected exit 2\n{result.output}"
        errors = [ln for ln in result.output.splitlines() if ln.startswith("Error: ")]
        assert len(errors) == 1, result.output
        assert "Fix: " in errors[0] or errors[0].startswith("Error: Invalid value for"), result.output  # click's own
        assert _outputs(tmp_path) == before, "a refused run changed or added a file"
    else:
        assert result.exit_code == 0, f"{name}: expected a result\n{result.output}"
        if check is not None:
            check(scene, argv, result)


def test_the_corpus_has_at_least_40_cases():
    assert len(CASES) >= 40
    assert {c[1] for c in CASES} == {REFUSED, OK}




@pytest.mark.skipif(os.geteuid() == 0, reason="root writes through any mode bits; the corpus's "
                    "'output folder under a regular file' case covers an unwritable folder for root")
def test_output_folder_without_write_permission(tmp_path):
    scene = make_scene(tmp_path, squares=(SQUARE,))
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        result = CliRunner().invoke(cli, detect_args(scene, output=locked / "out.gpkg"))
        assert result.exit_code == 2 and "not writable" in result.output, result.output
        assert not list(locked.iterdir())
    finally:
        locked.chmod(0o700)
