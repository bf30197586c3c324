"""Chip crops: the pixels around each patch kept from the window pass, so that the
evidence chips need no second decoding of the images (:mod:`swc_rs.crops`)."""

from __future__ import annotations

import io
import tempfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from rasterio.windows import Window

from swc_rs.config import load_config
from swc_rs.crops import TRUE_COLOUR, CropRef, chip_window, read_crop, write_crops
from swc_rs.export.chips import make_chips, run_options
from swc_rs.pipeline import DetectRequest, detect
from swc_rs.raster import RasterPair, run_image_args

SAMPLE = Path(__file__).resolve().parent.parent / "data" / "sample_tiles"
WINDOW = 256  # the 1024² sample in 16 windows: patches are cut by seams


def _detect(overrides: dict | None = None):
    config = load_config(None, {"raster": {"window_size": WINDOW}, **(overrides or {})})
    return detect(DetectRequest(before=SAMPLE / "before.tif", after=SAMPLE / "after.tif", zones=SAMPLE / "zones.gpkg",
                                projects=SAMPLE / "projects.gpkg", config=config, workers=1))


@pytest.fixture(scope="module")
def result():
    out = _detect()
    yield out
    out.release_crops()


def _chip_windows(result, pair: RasterPair):
    frame = result.patches.to_crs(pair.grid.crs.to_wkt())
    inverse = ~pair.grid.transform
    for qdnm, geom in zip(frame["QDNM"], frame.geometry, strict=True):
        xmin, ymin, xmax, ymax = geom.bounds
        (c0, c1), (r0, r1) = inverse * (np.array([xmin, xmax]), np.array([ymax, ymin]))
        yield qdnm, geom, chip_window((c0, r0, c1, r1), pair.grid.shape)


def test_crops_hold_the_pixels_the_images_give(result):
    assert len(result.chip_crops) >= len(result.patches) // 2
    with RasterPair(SAMPLE / "before.tif", SAMPLE / "after.tif") as pair:
        pair.set_shift(result.run_info["shift_rows"], result.run_info["shift_cols"])  # AFTER as detect read it
        assert pair.shift != (0.0, 0.0)
        checked = 0
        for qdnm, _, window in _chip_windows(result, pair):
            ref = result.chip_crops.get(qdnm)
            if ref is None:
                continue
            before, after, valid = pair.read(window, roles=TRUE_COLOUR)
            kept_before, kept_after, kept_valid = read_crop(ref, window)
            # 16 bits over the crop's range: within half a step (and float32 rounding)
            assert np.abs(kept_before - before).max() <= 0.51 * ref.step
            assert np.abs(kept_after - after).max() <= 0.51 * ref.step
            assert ref.step < 0.5e-4 and (kept_valid == valid).all()  # finer than the data's 1e-4 per count
            checked += 1
    assert checked == len(result.chip_crops)


def test_a_patch_cut_by_a_window_seam_is_read_from_the_images(result):
    with RasterPair(SAMPLE / "before.tif", SAMPLE / "after.tif") as pair:
        inverse = ~pair.grid.transform
        cut = []
        for qdnm, geom, _ in _chip_windows(result, pair):
            xmin, ymin, xmax, ymax = geom.bounds
            (c0, c1), (r0, r1) = inverse * (np.array([xmin, xmax]), np.array([ymax, ymin]))
            seams = np.arange(WINDOW, max(pair.grid.shape), WINDOW)
            if ((c0 < seams - 0.5) & (seams + 0.5 < c1)).any() or ((r0 < seams - 0.5) & (seams + 0.5 < r1)).any():
                cut.append(qdnm)
    assert cut, "the sample should have patches across the 256-px seams"
    assert not set(cut) & set(result.chip_crops)


def test_chips_from_crops_match_chips_from_the_images(result):
    violations = result.violations
    with_crops = [q for q in violations["QDNM"] if q in result.chip_crops]
    assert with_crops
    info = result.run_info
    kwargs = {**run_image_args(info), "options": run_options(info)}
    kept = list(make_chips(violations, info["before"], info["after"], crops=result.chip_crops, **kwargs))
    read = list(make_chips(violations, info["before"], info["after"], **kwargs))
    assert [(c.QDNM, c.DATE_KIND, c.WIDTH, c.HEIGHT) for c in kept] == [(c.QDNM, c.DATE_KIND, c.WIDTH, c.HEIGHT) for c in read]
    for a, b in zip(kept, read, strict=True):
        pa = np.asarray(Image.open(io.BytesIO(a.IMAGE))).astype(int)
        pb = np.asarray(Image.open(io.BytesIO(b.IMAGE))).astype(int)
        assert np.abs(pa - pb).mean() < 0.5, a.QDNM  # JPEG of near-identical pixels


def test_the_spool_folder_goes_with_the_result(monkeypatch, tmp_path):
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    out = _detect()
    folder = out.crop_spool.folder
    assert folder.parent == tmp_path and any(folder.iterdir())
    out.release_crops()
    assert not folder.exists() and out.chip_crops == {}
    again = _detect()
    folder = again.crop_spool.folder
    del again  # a result nobody holds takes its folder with it
    assert not folder.exists()
    assert list(tmp_path.iterdir()) == []


def test_reuse_can_be_switched_off(monkeypatch, tmp_path):
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    out = _detect({"chips": {"spool_max_mb": 0}})
    assert out.crop_spool is None and out.chip_crops == {}
    assert list(tmp_path.iterdir()) == []


def test_the_spool_stops_at_its_limit(result):
    # the sample's crops take a few MB: with 1 MB allowed only the first windows keep theirs
    full = sum(p.stat().st_size for p in result.crop_spool.folder.iterdir()) / 1e6
    assert full > 2
    small = _detect({"chips": {"spool_max_mb": 1}})
    kept = sum(p.stat().st_size for p in small.crop_spool.folder.iterdir()) / 1e6
    assert 0 < len(small.chip_crops) < len(result.chip_crops) and kept < full
    small.release_crops()


def test_write_crops_keeps_only_windows_inside_the_arrays(tmp_path):
    rng = np.random.default_rng(3)
    before = rng.uniform(0.02, 0.4, (4, 100, 100)).astype(np.float32)
    after = rng.uniform(0.02, 0.4, (4, 100, 100)).astype(np.float32)
    before[:, 50, 50] = np.nan  # a float input's no-data: its pixel is invalid, the crop still written
    valid = np.ones((100, 100), bool)
    valid[50, 50] = False
    roles = ("blue", "green", "red", "nir")
    # arrays at grid (row 200, col 300); a patch in the middle, one at the arrays' edge
    inside, edge = (340.0, 240.0, 350.0, 250.0), (300.0, 200.0, 306.0, 204.0)
    refs = write_crops(tmp_path / "w.crops", [inside, edge, None], (200, 300), before, after, valid, roles, (1000, 1000))
    assert refs[0] is not None and refs[1] is None and refs[2] is None
    window = chip_window(inside, (1000, 1000))
    kept_before, kept_after, kept_valid = read_crop(refs[0], window)
    rows = slice(int(window.row_off) - 200, int(window.row_off + window.height) - 200)
    cols = slice(int(window.col_off) - 300, int(window.col_off + window.width) - 300)
    red_green_blue = [2, 1, 0]
    ok = valid[rows, cols]
    assert np.allclose(kept_after, after[red_green_blue][:, rows, cols], atol=refs[0].step)
    assert np.allclose(kept_before[:, ok], before[red_green_blue][:, rows, cols][:, ok], atol=refs[0].step)
    assert (kept_valid == ok).all()
    # a window the crop does not hold is not guessed at
    assert read_crop(refs[0], Window(window.col_off - 10, window.row_off, window.width, window.height)) is None
    assert write_crops(tmp_path / "rgb.crops", [inside], (200, 300), before[:3], after[:3], valid,
                       ("nir", "swir1", "swir2"), (1000, 1000)) == [None]


def test_crop_ref_contains():
    ref = CropRef("x", 0, 10, 20, 30, 40)
    assert ref.contains(Window(10, 20, 30, 40)) and ref.contains(Window(15, 25, 5, 5))
    assert not ref.contains(Window(9, 20, 5, 5)) and not ref.contains(Window(10, 20, 31, 40))


def test_a_spool_that_cannot_be_written_only_costs_the_second_read(tmp_path, caplog):
    from swc_rs import crops

    rng = np.random.default_rng(4)
    data = rng.uniform(0.02, 0.4, (4, 60, 60)).astype(np.float32)
    valid = np.ones((60, 60), bool)
    gone = tmp_path / "removed"  # e.g. the temporary folder was cleaned or is full
    with caplog.at_level("WARNING", logger="swc_rs.crops"):
        first = write_crops(gone / "a.crops", [(20.0, 20.0, 30.0, 30.0)], (0, 0), data, data, valid,
                            ("blue", "green", "red", "nir"), (60, 60))
        again = write_crops(gone / "b.crops", [(20.0, 20.0, 30.0, 30.0)], (0, 0), data, data, valid,
                            ("blue", "green", "red", "nir"), (60, 60))
    assert first == [None] and again == [None]
    assert len([r for r in caplog.records if "spool_max_mb" in r.getMessage()]) == 1  # said once
    crops._FAILED.discard(str(gone))


def test_no_temporary_folder_means_chips_read_from_the_images(monkeypatch, tmp_path, caplog):
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "gone"))  # e.g. TMPDIR names a missing folder
    with caplog.at_level("WARNING", logger="swc_rs.crops"):
        out = _detect()
    assert out.crop_spool is None and out.chip_crops == {}
    assert any("temporary folder" in r.getMessage() for r in caplog.records)
    info = out.run_info
    chips = list(make_chips(out.violations.head(2), info["before"], info["after"], **run_image_args(info)))
    assert len(chips) == 4  # before and after of each, read from the images
