"""`swc-rs export`: evidence chips, KML/KMZ and CSV for the field; the chips table."""

import csv
import io
import sqlite3
import xml.etree.ElementTree as ET
import zipfile
from pathlib import Path

import geopandas as gpd
import numpy as np
import pytest
import rasterio
from click.testing import CliRunner
from PIL import Image
from rasterio.warp import transform_bounds

from swc_rs import codes
from swc_rs.cli.export import export
from swc_rs.export.chips import OUTLINE_RGB, ChipOptions, chip_window, read_chips
from tests.test_styles import detect_output

KML = "{http://www.opengis.net/kml/2.2}"


@pytest.fixture(scope="module")
def output(tmp_path_factory) -> Path:
    return detect_output(tmp_path_factory.mktemp("export"))


@pytest.fixture(scope="module")
def suspected(output) -> gpd.GeoDataFrame:
    frame = gpd.read_file(output, layer="suspected_violations")
    assert len(frame) >= 1 and frame.BYD.str.startswith(codes.SUSPECTED_PREFIX).all()
    return frame


def decode(image: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(image)).convert("RGB"))


def outline_pixels(pixels: np.ndarray, tolerance: int = 24) -> int:
    """Pixels of the magenta outline (within ``tolerance`` per channel: JPEG is lossy)."""
    return int((np.abs(pixels.astype(int) - np.array(OUTLINE_RGB)) <= tolerance).all(axis=2).sum())


def test_chips_for_every_suspected_patch(output, suspected):
    chips = read_chips(output)
    assert sorted((c.QDNM, c.DATE_KIND) for c in chips) == sorted(
        (q, kind) for q in suspected.QDNM for kind in ("before", "after"))
    for chip in chips:
        assert chip.mime == "image/jpeg" and chip.filename == f"{chip.QDNM}_{chip.DATE_KIND}.jpg"
        pixels = decode(chip.IMAGE)
        assert pixels.shape == (chip.HEIGHT, chip.WIDTH, 3)
        assert outline_pixels(pixels) > 20
    before = {c.QDNM: decode(c.IMAGE) for c in chips if c.DATE_KIND == "before"}
    after = {c.QDNM: decode(c.IMAGE) for c in chips if c.DATE_KIND == "after"}
    # the bare soil appears: the patch gets brighter from before to after
    for qdnm in before:
        centre = tuple(s // 2 for s in before[qdnm].shape[:2])
        assert after[qdnm][centre].astype(int).sum() > before[qdnm][centre].astype(int).sum()
    con = sqlite3.connect(output)
    columns = [r[1] for r in con.execute("PRAGMA table_info(chips)")]
    mimes = {r[0] for r in con.execute("SELECT MIME FROM chips")}
    con.close()
    assert columns == ["fid", "QDNM", "DATE_KIND", "DATE", "MIME", "IMAGE", "WIDTH", "HEIGHT"]
    assert mimes == {"image/jpeg"}


def test_png_chips_are_lossless_and_keep_the_exact_outline(output, suspected):
    import pyogrio

    from swc_rs.export.chips import make_chips

    info = pyogrio.read_dataframe(output, layer="run_info").iloc[0]
    args = dict(sensor="auto", shift=(float(info.shift_rows), float(info.shift_cols)))
    png = list(make_chips(suspected.head(2), info.before, info.after, options=ChipOptions(format="png"), **args))
    jpeg = list(make_chips(suspected.head(2), info.before, info.after, **args))
    for p, j in zip(png, jpeg, strict=True):
        assert p.mime == "image/png" and p.filename.endswith(".png") and (p.WIDTH, p.HEIGHT) == (j.WIDTH, j.HEIGHT)
        assert outline_pixels(decode(p.IMAGE), tolerance=0) > 20
        # the JPEG is the same picture: mean absolute difference of a few grey levels
        assert np.abs(decode(p.IMAGE).astype(int) - decode(j.IMAGE).astype(int)).mean() < 4


def test_chips_written_before_the_image_column_are_read(tmp_path):
    path = tmp_path / "old.gpkg"
    png = io.BytesIO()
    Image.new("RGB", (4, 3), (10, 20, 30)).save(png, format="PNG")
    con = sqlite3.connect(path)
    with con:
        con.execute('CREATE TABLE chips (fid INTEGER PRIMARY KEY, QDNM TEXT, DATE_KIND TEXT, DATE TEXT, PNG BLOB, '
                    'WIDTH INTEGER, HEIGHT INTEGER)')
        con.execute("INSERT INTO chips (QDNM, DATE_KIND, DATE, PNG, WIDTH, HEIGHT) VALUES ('Q1', 'before', '', ?, 4, 3)",
                    (png.getvalue(),))
    con.close()
    (chip,) = read_chips(path)
    assert (chip.QDNM, chip.mime, chip.filename, chip.WIDTH) == ("Q1", "image/png", "Q1_before.png", 4)


def test_chips_made_on_threads_equal_one_thread(output, suspected):
    import pyogrio

    from swc_rs.export.chips import make_chips_threaded

    info = pyogrio.read_dataframe(output, layer="run_info").iloc[0]
    both = suspected.loc[list(suspected.index) * 3].reset_index(drop=True)  # enough rows for two slices
    both["QDNM"] = [f"{q}-{k}" for k, q in enumerate(both.QDNM)]
    args = dict(sensor="auto", shift=(float(info.shift_rows), float(info.shift_cols)), dates=("t1", "t2"))
    one = make_chips_threaded(both, info.before, info.after, threads=1, **args)
    two = make_chips_threaded(both, info.before, info.after, threads=2, **args)
    assert [(c.QDNM, c.DATE_KIND) for c in two] == [(q, k) for q in both.QDNM for k in ("before", "after")]
    assert two == one


def test_chips_made_by_a_worker_process_equal_those_made_here(output, suspected):
    import pyogrio

    from swc_rs.export.chips import make_chips_threaded
    from swc_rs.workers import start_workers

    info = pyogrio.read_dataframe(output, layer="run_info").iloc[0]
    many = suspected.loc[list(suspected.index) * 8].reset_index(drop=True)  # enough rows for a slice each
    many["QDNM"] = [f"{q}-{k}" for k, q in enumerate(many.QDNM)]
    args = dict(sensor="auto", shift=(float(info.shift_rows), float(info.shift_cols)), dates=("t1", "t2"))
    here = make_chips_threaded(many, info.before, info.after, threads=1, **args)
    executor = start_workers(1, module="swc_rs.export.chips")
    try:
        shared = make_chips_threaded(many, info.before, info.after, threads=1, executor=executor, **args)
        executor.shutdown(wait=True)
        after_shutdown = make_chips_threaded(many, info.before, info.after, threads=1, executor=executor, **args)
    finally:
        executor.shutdown(wait=True, cancel_futures=True)
    assert shared == here  # same chips, same order
    assert after_shutdown == here  # a pool that is gone: all made here


def test_padding_scales_with_the_patch():
    options = ChipOptions(pad_fraction=0.5, min_pad_px=10, max_pad_px=400)
    small = chip_window((100, 100, 110, 110), (1000, 1000), options)
    large = chip_window((300, 300, 600, 600), (1000, 1000), options)
    assert small.width == 10 + 2 * 10  # the minimum margin
    assert large.width == 300 + 2 * 150
    assert chip_window((-50, -50, -40, -40), (1000, 1000), options) is None
    clipped = chip_window((0, 0, 20, 20), (1000, 1000), options)
    assert (clipped.col_off, clipped.row_off) == (0, 0)


def test_export_chips_folder(output, suspected, tmp_path):
    folder = tmp_path / "chips"
    result = CliRunner().invoke(export, [str(output), "--chips", str(folder)])
    assert result.exit_code == 0, result.output
    names = sorted(p.name for p in folder.iterdir())
    assert names == sorted(f"{q}_{k}.jpg" for q in suspected.QDNM for k in ("before", "after"))
    assert outline_pixels(np.asarray(Image.open(folder / names[0]).convert("RGB"))) > 0


def test_kml(output, suspected, tmp_path):
    target = tmp_path / "field.kml"
    result = CliRunner().invoke(export, [str(output), "--kml", str(target)])
    assert result.exit_code == 0, result.output
    root = ET.parse(target).getroot()
    marks = root.findall(f".//{KML}Placemark")
    assert sorted(m.findtext(f"{KML}name") for m in marks) == sorted(suspected.QDNM)
    styles = {s.get("id"): s.findtext(f"{KML}PolyStyle/{KML}color") for s in root.iter(f"{KML}Style")}
    assert set(styles) == {"red", "yellow", "green"}
    assert styles["red"].endswith("1c1ae3")  # aabbggrr of 227,26,28
    colours = dict(zip(suspected.QDNM, suspected.X_COLOR, strict=True))
    wanted = {codes.RED: "#red", codes.YELLOW: "#yellow", codes.GREEN: "#green"}
    for mark in marks:
        assert mark.findtext(f"{KML}styleUrl") == wanted[colours[mark.findtext(f"{KML}name")]]
        description = mark.findtext(f"{KML}description")
        assert "扰动合规性" in description and "疑似" in description
        assert mark.find(f".//{KML}Polygon") is not None and mark.find(f".//{KML}Point") is not None


def test_kmz(output, suspected, tmp_path):
    target = tmp_path / "field.kmz"
    result = CliRunner().invoke(export, [str(output), "--kmz", str(target)])
    assert result.exit_code == 0, result.output
    with zipfile.ZipFile(target) as archive:
        names = archive.namelist()
        assert names[0] == "doc.kml"
        root = ET.fromstring(archive.read("doc.kml"))
        assert len(root.findall(f".//{KML}Placemark")) == len(suspected)
        chips = [n for n in names if n.startswith("files/") and n.endswith(".jpg")]
        assert len(chips) == 2 * len(suspected)
        assert all(f'src="{n}"' in archive.read("doc.kml").decode() for n in chips)


def test_csv(output, suspected, tmp_path):
    target = tmp_path / "field.csv"
    result = CliRunner().invoke(export, [str(output), "--csv", str(target)])
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader(io.StringIO(target.read_text(encoding="utf-8-sig"))))
    assert sorted(r["QDNM"] for r in rows) == sorted(suspected.QDNM)
    with rasterio.open(output.parent / "before.tif") as src:
        west, south, east, north = transform_bounds(src.crs, "EPSG:4490", *src.bounds)
    for row in rows:
        assert west < float(row["JD"]) < east and south < float(row["WD"]) < north
        assert row["BYD"].startswith(codes.SUSPECTED_PREFIX) and row["X_COLOR"] in codes.COLOURS


def test_colour_filter_keeps_only_those_patches_and_their_chips(output, suspected, tmp_path):
    colour = suspected.X_COLOR.value_counts().index[0]  # the commonest colour of the sample
    target, folder = tmp_path / "one.csv", tmp_path / "chips"
    english = {codes.RED: "red", codes.YELLOW: "yellow", codes.GREEN: "green"}[colour]
    result = CliRunner().invoke(export, [str(output), "--csv", str(target), "--chips", str(folder), "--colour", english])
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader(io.StringIO(target.read_text(encoding="utf-8-sig"))))
    wanted = sorted(suspected.QDNM[suspected.X_COLOR == colour])
    assert sorted(r["QDNM"] for r in rows) == wanted and {r["X_COLOR"] for r in rows} == {colour}
    assert sorted({p.name.rsplit("_", 1)[0] for p in folder.iterdir()}) == wanted
    assert len(wanted) < len(suspected) or suspected.X_COLOR.nunique() == 1
    result = CliRunner().invoke(export, [str(output), "--csv", str(tmp_path / "x.csv"), "--colour", "紫"])
    assert result.exit_code == 2 and "紫" in result.output


def test_refuses_to_overwrite(output, tmp_path):
    kml, table = tmp_path / "field.kml", tmp_path / "field.csv"
    kml.write_text("precious")
    result = CliRunner().invoke(export, [str(output), "--kml", str(kml), "--csv", str(table)])
    assert result.exit_code == 2, result.output
    assert "--overwrite" in result.output and "Traceback" not in result.output
    assert kml.read_text() == "precious" and not table.exists()  # nothing written
    result = CliRunner().invoke(export, [str(output), "--kml", str(kml), "--csv", str(table), "--overwrite"])
    assert result.exit_code == 0, result.output
    assert kml.read_text() != "precious" and table.exists()


def test_bad_input(tmp_path):
    result = CliRunner().invoke(export, [str(tmp_path / "missing.gpkg"), "--csv", str(tmp_path / "x.csv")])
    assert result.exit_code == 2 and "missing.gpkg" in result.output
    result = CliRunner().invoke(export, [str(tmp_path / "missing.gpkg"), "--kml", str(tmp_path / "x.txt")])
    assert result.exit_code == 2
