import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from rasterio.crs import CRS
from rasterio.transform import from_origin

from swc_rs.errors import InputFileError, RasterInputError
from swc_rs.raster import Grid, RasterPair, expand_window, iter_windows
from tests.conftest import X0, Y0, forest, write_raster


@settings(max_examples=60, deadline=None)
@given(st.integers(1, 300), st.integers(1, 300), st.integers(1, 128))
def test_windows_cover_the_grid_exactly_once(width, height, size):
    grid = Grid(width, height, from_origin(0, 0, 1, 1), CRS.from_epsg(32648))
    hits = np.zeros((height, width), np.uint8)
    for w in iter_windows(grid, size):
        assert w.width <= size and w.height <= size
        hits[int(w.row_off): int(w.row_off + w.height), int(w.col_off): int(w.col_off + w.width)] += 1
    assert (hits == 1).all()


@settings(max_examples=40, deadline=None)
@given(st.integers(1, 200), st.integers(1, 200), st.integers(1, 64), st.integers(0, 20))
def test_expanded_window_core_is_the_window(width, height, size, halo):
    grid = Grid(width, height, from_origin(0, 0, 1, 1), CRS.from_epsg(32648))
    ids = np.arange(width * height).reshape(height, width)
    for w in iter_windows(grid, size):
        outer, core = expand_window(w, halo, grid)
        block = ids[int(outer.row_off): int(outer.row_off + outer.height), int(outer.col_off): int(outer.col_off + outer.width)]
        expected = ids[int(w.row_off): int(w.row_off + w.height), int(w.col_off): int(w.col_off + w.width)]
        np.testing.assert_array_equal(block[core], expected)


def test_after_in_another_crs_and_resolution_is_aligned(tmp_path):
    data = forest(64, 64)
    data[:, 20:40, 20:40] = 2000
    before = write_raster(tmp_path / "b.tif", data)
    # AFTER: the same content at 4 m in the same place, offset extent (partial overlap)
    coarse = data[:, ::2, 8::2]
    after = write_raster(tmp_path / "a.tif", coarse, transform=from_origin(X0 + 16, Y0, 4, 4))
    with RasterPair(before, after) as pair:
        assert pair.grid.res == (2.0, 2.0)
        assert pair.grid.width == 56  # common extent only
        b, a, valid = pair.read(next(iter_windows(pair.grid, 1000)))
        assert b.shape == a.shape
        assert valid.mean() > 0.9
        # the bright square lands at the same place on both dates
        assert a[2, 24:36, 16:28].mean() > 0.15 and b[2, 24:36, 16:28].mean() > 0.15
        assert a[2, 45:, 40:].mean() < 0.05


def test_after_in_geographic_crs_is_reprojected(tmp_path):
    import rasterio
    from rasterio.warp import calculate_default_transform, reproject

    data = forest(64, 64)
    before = write_raster(tmp_path / "b.tif", data)
    with rasterio.open(before) as src:
        transform, width, height = calculate_default_transform(src.crs, "EPSG:4490", src.width, src.height, *src.bounds)
        out = np.zeros((4, height, width), np.uint16)
        reproject(src.read(), out, src_transform=src.transform, src_crs=src.crs, dst_transform=transform, dst_crs="EPSG:4490")
    after = write_raster(tmp_path / "a.tif", out, crs="EPSG:4490", transform=transform)
    with RasterPair(before, after) as pair:
        assert pair.grid.crs == CRS.from_epsg(32648)
        _, a, valid = pair.read(next(iter_windows(pair.grid, 1000)))
        assert valid[5:-5, 5:-5].all()


def test_nodata_is_honoured(tmp_path):
    data = forest(32, 32)
    data[:, :, :8] = 0
    before = write_raster(tmp_path / "b.tif", data, nodata=0)
    after = write_raster(tmp_path / "a.tif", forest(32, 32))
    with RasterPair(before, after) as pair:
        _, _, valid = pair.read(next(iter_windows(pair.grid, 100)))
        assert not valid[:, :8].any() and valid[:, 8:].all()


def test_missing_file_raises(tmp_path):
    with pytest.raises(InputFileError, match="does not exist"):
        RasterPair(tmp_path / "nope.tif", tmp_path / "nope2.tif")


def test_no_crs_raises(tmp_path):
    before = write_raster(tmp_path / "b.tif", forest(16, 16), crs=None)
    after = write_raster(tmp_path / "a.tif", forest(16, 16))
    with pytest.raises(RasterInputError, match="coordinate reference system"):
        RasterPair(before, after)


def test_no_overlap_raises(tmp_path):
    before = write_raster(tmp_path / "b.tif", forest(16, 16))
    after = write_raster(tmp_path / "a.tif", forest(16, 16), transform=from_origin(X0 + 5000, Y0, 2, 2))
    with pytest.raises(RasterInputError, match="does not overlap"):
        RasterPair(before, after)


def test_too_few_bands_for_sensor(tmp_path):
    before = write_raster(tmp_path / "b.tif", forest(16, 16)[:3], descriptions=None)
    after = write_raster(tmp_path / "a.tif", forest(16, 16)[:3], descriptions=None)
    with pytest.raises(RasterInputError, match="band"):
        RasterPair(before, after, sensor="gf")


@pytest.mark.parametrize("declared", [False, True])
@pytest.mark.parametrize("shift", [(0.0, 0.0), (0.62, -0.75), (-1.3, 1.1)])
def test_native_read_matches_warped_read(tmp_path, shift, declared):
    """The fast path (same grid: numpy bilinear shift) equals GDAL's warp (WarpedVRT),
    also when the file declares its own scale and offset (applied inside the shift)."""
    from scipy import ndimage

    rng = np.random.default_rng(3)
    data = (ndimage.gaussian_filter(rng.random((4, 96, 96)), (0, 3, 3)) * 5000).astype(np.float32) + 500
    before = write_raster(tmp_path / "b.tif", data)
    after = write_raster(tmp_path / "a.tif", data)
    if declared:  # Landsat Collection 2: raw × 0.0000275 − 0.2
        before, after = (_with_scaling(p, 0.0000275, -0.2) for p in (before, after))
    with RasterPair(before, after) as native:
        assert native._native == (0, 0)
        native.set_shift(*shift)
        window = next(iter_windows(native.grid, 1000))
        _, fast, fast_valid = native.read(window)
        native._native = None
        native._build_vrt()
        _, slow, slow_valid = native.read(window)
    inner = np.s_[:, 4:-4, 4:-4]
    np.testing.assert_allclose(fast[inner], slow[inner], atol=2e-3)
    assert fast_valid[4:-4, 4:-4].all() and slow_valid[4:-4, 4:-4].all()


@pytest.mark.parametrize("fr, fc", [(0.37, 0.81), (0.0, 0.5), (0.5, 0.0), (0.99, 0.01)])
def test_bilinear_shift_in_row_blocks_is_the_bilinear_formula(fr, fc):
    """Blocks of rows (cache-sized) give every output row, across block edges, the same
    value as the textbook formula over the whole array."""
    from swc_rs.raster import SHIFT_BLOCK_ROWS, bilinear_shift

    rng = np.random.default_rng(7)
    h, w = 2 * SHIFT_BLOCK_ROWS + 45, 200
    data = rng.random((3, h + 1, w + 1), dtype=np.float32)
    expected = ((1 - fr) * (1 - fc) * data[:, :h, :w] + (1 - fr) * fc * data[:, :h, 1:]
                + fr * (1 - fc) * data[:, 1:, :w] + fr * fc * data[:, 1:, 1:])
    out = bilinear_shift(data, fr, fc, h, w)
    assert out.shape == (3, h, w) and out.dtype == np.float32
    np.testing.assert_allclose(out, expected, atol=1e-6)
    # stored DN scaled to reflectance block by block: as if scaled first
    raw = rng.integers(0, 10000, data.shape).astype(np.uint16)
    scale = np.array([1e-4, 2e-4, 1e-4], np.float32)[:, None, None]
    offset = np.array([-0.1, 0.0, 0.05], np.float32)[:, None, None]
    scaled = np.multiply(raw, scale, dtype=np.float32) + offset
    assert np.array_equal(bilinear_shift(raw, fr, fc, h, w, scale=scale, offset=offset),
                          bilinear_shift(scaled, fr, fc, h, w))


def _with_scaling(path, scale, offset):
    import rasterio

    with rasterio.open(path, "r+") as ds:
        ds.scales = [scale] * ds.count
        ds.offsets = [offset] * ds.count
    return path


def test_the_files_band_scale_and_offset_give_reflectance(tmp_path):
    # Landsat Collection 2 surface reflectance: raw × 0.0000275 − 0.2, declared in the file.
    reflectance = forest(32, 32) / 10000
    raw = np.round((reflectance + 0.2) / 2.75e-5)
    before = _with_scaling(write_raster(tmp_path / "b.tif", raw), 2.75e-5, -0.2)
    after = _with_scaling(write_raster(tmp_path / "a.tif", raw), 2.75e-5, -0.2)
    with RasterPair(before, after) as pair:
        b, a, _ = pair.read(next(iter_windows(pair.grid, 100)))
        assert pair.before_bands.scaling == "metadata"
        np.testing.assert_allclose(b, reflectance, atol=2e-5)
        np.testing.assert_allclose(a, reflectance, atol=2e-5)
    # [raster] scale/offset win over the file (here: wrongly declared metadata)
    with RasterPair(before, after, scale=2.75e-5, offset=-0.2) as pair:
        assert pair.before_bands.scaling == "config"
        np.testing.assert_allclose(pair.read(next(iter_windows(pair.grid, 100)))[0], reflectance, atol=2e-5)
    bad = _with_scaling(write_raster(tmp_path / "bad.tif", raw), -1.0, 0.0)
    with pytest.raises(RasterInputError, match="scale/offset") as err:
        RasterPair(bad, after)
    assert "bad.tif" in err.value.message and "[raster] scale" in err.value.message


def test_raw_ten_bit_dn_and_undeclared_offsets_are_recognised(tmp_path):
    from swc_rs.raster import sample_windows

    def doubts(before_raw, after_raw):
        b = write_raster(tmp_path / "b.tif", before_raw)
        a = write_raster(tmp_path / "a.tif", after_raw)
        with RasterPair(b, a) as pair:
            reads = [pair.read(w) for w in sample_windows(pair.grid, 4, 16)]
            return [p.name for p in pair.ten_bit_dates(reads)], [p.name for p in pair.offset_dates(reads)]

    reflectance = forest(32, 32)  # × 10000: NIR ~3300
    assert doubts(reflectance, reflectance) == ([], [])
    dn = np.round(reflectance * 0.25)  # GF-2 10-bit DN: NIR ~825, never above 1023
    assert doubts(dn, reflectance) == (["b.tif"], [])
    assert doubts(dn, dn) == (["b.tif", "a.tif"], [])
    offset = reflectance + 1000  # Sentinel-2 L2A, baseline 04.00, offset not declared
    assert doubts(reflectance, offset) == ([], ["a.tif"])
    # once the scaling is declared (or configured), nothing is guessed
    with RasterPair(write_raster(tmp_path / "b2.tif", dn), write_raster(tmp_path / "a2.tif", offset),
                    scale=1e-4, offset=-0.1) as pair:
        reads = [pair.read(w) for w in sample_windows(pair.grid, 4, 16)]
        assert pair.ten_bit_dates(reads) == [] and pair.offset_dates(reads) == []


def test_a_black_collar_without_declared_nodata_is_not_data(tmp_path):
    # A tilted scene strip delivered without nodata: 0 in every band outside the footprint.
    data = forest(32, 32)
    collar = np.add.outer(np.arange(32), np.arange(32)) < 12
    cut = data.copy()
    cut[:, collar] = 0
    cut[0, 20, 20] = 0  # one band at 0 is still data
    before = write_raster(tmp_path / "b.tif", data)
    for after in (write_raster(tmp_path / "a.tif", cut),  # read natively
                  write_raster(tmp_path / "a4.tif", cut[:, ::2, ::2], transform=from_origin(X0, Y0, 4, 4))):  # warped
        with RasterPair(before, after, resampling="nearest") as pair:
            _, a, valid = pair.read(next(iter_windows(pair.grid, 100)))
            grid_collar = collar if after.name == "a.tif" else np.add.outer(np.arange(32) // 2 * 2, np.arange(32) // 2 * 2) < 12
            assert not valid[grid_collar].any()
            assert valid[~grid_collar].all()
