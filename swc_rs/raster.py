"""Open, validate and align the two dates; iterate windows. The only raster I/O.

AFTER is warped onto BEFORE's grid over their common extent with a
:class:`rasterio.vrt.WarpedVRT`, so any CRS and resolution works and nothing is
resampled to disk. Reads are windowed: memory follows the window, not the image.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import math
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import rasterio
from affine import Affine
from rasterio._err import CPLE_BaseError
from rasterio.crs import CRS
from rasterio.enums import Resampling
from rasterio.errors import CRSError, RasterioIOError
from rasterio.vrt import WarpedVRT
from rasterio.warp import transform_bounds
from rasterio.windows import Window

from swc_rs.errors import InputFileError, RasterInputError
from swc_rs.sensors import ROLES, SensorProfile, reflectance_scale, resolve_profile

log = logging.getLogger(__name__)

#: Storage types read as imagery (int8 and complex types are refused: no image product
#: stores reflectance or DN that way).
IMAGE_DTYPES = ("uint8", "uint16", "int16", "uint32", "int32", "float32", "float64")


@dataclass(frozen=True)
class Grid:
    """An immutable pixel grid: shape, affine transform and CRS."""

    width: int
    height: int
    transform: Affine
    crs: CRS

    @property
    def shape(self) -> tuple[int, int]:
        return (self.height, self.width)

    @property
    def res(self) -> tuple[float, float]:
        return (abs(self.transform.a), abs(self.transform.e))

    @property
    def pixel_area_m2(self) -> float:
        """Pixel area in the grid CRS's units squared (m² for projected grids)."""
        return abs(self.transform.a * self.transform.e - self.transform.b * self.transform.d)

    @property
    def bounds(self) -> tuple[float, float, float, float]:
        return rasterio.transform.array_bounds(self.height, self.width, self.transform)[:4]

    def same_grid(self, other: Grid, tolerance: float = 1e-9) -> bool:
        return (
            self.shape == other.shape
            and self.crs == other.crs
            and self.transform.almost_equals(other.transform, precision=tolerance)
        )

    def window_transform(self, window: Window) -> Affine:
        return rasterio.windows.transform(window, self.transform)


def iter_windows(grid: Grid, size: int) -> Iterator[Window]:
    """Windows of at most ``size``×``size`` pixels that tile ``grid`` exactly, row-major."""
    if size < 1:
        raise ValueError(f"window size must be >= 1, got {size}")
    for row in range(0, grid.height, size):
        for col in range(0, grid.width, size):
            yield Window(col, row, min(size, grid.width - col), min(size, grid.height - row))


def expand_window(window: Window, halo: int, grid: Grid) -> tuple[Window, tuple[slice, slice]]:
    """``window`` grown by ``halo`` pixels (clipped to the grid) and the core's slices in it."""
    col0 = max(0, int(window.col_off) - halo)
    row0 = max(0, int(window.row_off) - halo)
    col1 = min(grid.width, int(window.col_off + window.width) + halo)
    row1 = min(grid.height, int(window.row_off + window.height) + halo)
    outer = Window(col0, row0, col1 - col0, row1 - row0)
    core = (
        slice(int(window.row_off) - row0, int(window.row_off) - row0 + int(window.height)),
        slice(int(window.col_off) - col0, int(window.col_off) - col0 + int(window.width)),
    )
    return outer, core


def file_checksum(path: str | Path, chunk: int = 1 << 22) -> str:
    """SHA-256 of a file (inputs are recorded in run_info); ``remote`` for a remote one
    (it is not read twice)."""
    if is_remote(path):
        return "remote"
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def acquisition_date(dataset) -> dt.date | None:
    """The image date from common tags (ACQUISITION_DATE, TIFFTAG_DATETIME) or the file name."""
    tags = dataset.tags()
    for key in ("ACQUISITION_DATE", "acquisition_date", "ACQ_DATE", "DATE_ACQUIRED", "datetime", "TIFFTAG_DATETIME"):
        value = tags.get(key)
        if value:
            match = re.search(r"(\d{4})[-:/]?(\d{2})[-:/]?(\d{2})", value)
            if match:
                try:
                    return dt.date(*map(int, match.groups()))
                except ValueError:
                    pass
    match = re.search(r"(20\d{2}|19\d{2})[-_]?(\d{2})[-_]?(\d{2})", Path(dataset.name).name)
    if match:
        try:
            return dt.date(*map(int, match.groups()))
        except ValueError:
            return None
    return None


@dataclass(frozen=True)
class Band:
    """One date's band roles and scaling: reflectance = raw × scale + offset, per role.

    ``scaling`` says where the factors came from: ``config`` ([raster] scale/offset),
    ``metadata`` (the file's own band scale/offset, e.g. written by GDAL for Sentinel-2
    L2A or Landsat Collection 2), ``profile`` (a sensor profile's fixed scale) or
    ``dtype`` (guessed from the storage type, see :func:`swc_rs.sensors.reflectance_scale`).
    """

    profile: SensorProfile
    scales: dict[str, float]
    offsets: dict[str, float]
    nodata: float | None
    scaling: str = "dtype"

    @property
    def scale(self) -> float:
        """The scale of the first role (all roles share it unless the file says otherwise)."""
        return next(iter(self.scales.values()))

    def factors(self, roles: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """Per-band scale and offset of ``roles``, shaped to broadcast over (bands, h, w)."""
        scale = np.array([self.scales[r] for r in roles], np.float32)[:, None, None]
        offset = np.array([self.offsets[r] for r in roles], np.float32)[:, None, None]
        return scale, offset

    def to_raw(self, role: str, reflectance: float) -> float:
        """The stored value of a reflectance in band ``role`` (for display ranges)."""
        return (reflectance - self.offsets[role]) / self.scales[role]


def is_remote(path: str | Path) -> bool:
    """A GDAL virtual path of a remote file (``/vsicurl…``, ``/vsis3/`` ...; see
    :func:`swc_rs.batch.remote_path`), read only when a catalog allows it."""
    return str(path).startswith(("/vsicurl", "/vsis3/", "/vsigs/"))


def _open(path: Path, what: str):
    if not is_remote(path) and not path.exists():
        raise InputFileError(f"{what} image does not exist", path=path, fix="check the path and its spelling")
    try:
        return rasterio.open(path)
    except RasterioIOError as err:
        raise InputFileError(
            f"cannot be read as a raster ({err})",
            path=path,
            fix="give a GeoTIFF, COG or VRT that GDAL can open (is the file complete?)",
        ) from err


class RasterPair:
    """BEFORE and AFTER on one grid: BEFORE's, cropped to the common extent.

    Parameters
    ----------
    before, after
        Paths of the two dates.
    sensor
        ``auto``, ``gf``, ``s2``, ``landsat`` or ``rgb``.
    band_map
        Explicit band roles (``--bands``), applied to both dates.
    resampling
        Resampling of AFTER onto BEFORE's grid.
    gdal_cache_mb
        Size of GDAL's block cache (MB); None leaves GDAL's default.

    Raises
    ------
    InputFileError, RasterInputError
        Missing/unreadable files, no CRS, no overlap, too few bands.
    """

    def __init__(
        self,
        before: str | Path,
        after: str | Path,
        *,
        sensor: str = "auto",
        band_map: dict[str, int] | None = None,
        resampling: str = "bilinear",
        gdal_cache_mb: int | None = 64,
        scale: float = 0.0,
        offset: float = 0.0,
    ):
        self._scaling = (float(scale), float(offset))
        if gdal_cache_mb:
            # GDAL's block cache defaults to 5 % of RAM and would make memory grow with
            # the image; windows are read once, so a small cache loses nothing.
            rasterio.env.set_gdal_config("GDAL_CACHEMAX", int(gdal_cache_mb) * 1024 * 1024)
        self.before_path, self.after_path = Path(before), Path(after)
        self._before = _open(self.before_path, "BEFORE")
        try:
            self._after = _open(self.after_path, "AFTER")
        except Exception:
            self._before.close()
            raise
        try:
            self._setup(sensor, band_map, resampling)
        except Exception:
            self.close()
            raise

    # -- set-up -------------------------------------------------------------------
    def _setup(self, sensor, band_map, resampling) -> None:
        for ds, path in ((self._before, self.before_path), (self._after, self.after_path)):
            if ds.count == 0:
                raise RasterInputError("has no bands", path=path, fix="give a multi-band image")
            if ds.crs is None:
                raise RasterInputError(
                    "has no coordinate reference system",
                    path=path,
                    fix="assign one, e.g. gdal_edit.py -a_srs EPSG:32648 FILE, or give the georeferenced original",
                )
            if ds.transform == Affine.identity():
                raise RasterInputError(
                    "has no geotransform (pixel coordinates only)",
                    path=path,
                    fix="georeference it first (gdal_translate -a_ullr ... or gdalwarp)",
                )
            bad = sorted({d for d in ds.dtypes if d not in IMAGE_DTYPES})
            if bad:
                raise RasterInputError(
                    f"stores its bands as {', '.join(bad)}, not an image data type ({', '.join(IMAGE_DTYPES)})",
                    path=path, fix="give the image product itself, or convert it: gdal_translate -ot UInt16 (or Float32)")
        t = self._before.transform
        if t.b != 0 or t.d != 0 or t.a <= 0 or t.e >= 0:
            raise RasterInputError(
                f"BEFORE's grid is rotated or not north-up (geotransform {tuple(round(v, 6) for v in t[:6])}); "
                "its grid is the one patches are found on", path=self.before_path,
                fix="make it north-up first: gdalwarp -t_srs <its CRS> BEFORE.tif BEFORE_northup.tif (AFTER may stay as it is)")
        try:
            self._resampling = Resampling[resampling]
        except KeyError as err:
            raise RasterInputError(
                f"resampling {resampling!r} is not known", fix="use bilinear, cubic or nearest"
            ) from err
        self.before_bands = self._bands(self._before, self.before_path, sensor, band_map)
        self.after_bands = self._bands(self._after, self.after_path, sensor, band_map)
        self.roles = tuple(
            r for r in ROLES if self.before_bands.profile.has(r) and self.after_bands.profile.has(r)
        )
        self.grid = self._common_grid()
        self.shift = (0.0, 0.0)  # (rows, cols) applied to AFTER
        self._native = self._native_offset()
        self._vrt = None
        if self._native is None:
            self._build_vrt()

    def _bands(self, ds, path, sensor, band_map) -> Band:
        """Roles and scaling of one date: [raster] scale/offset when set, else the file's
        own band scale/offset metadata when it has any, else by data type."""
        profile = resolve_profile(sensor, ds.descriptions, ds.count, band_map=band_map, path=path)
        config_scale, config_offset = self._scaling
        if config_scale > 0:
            return Band(profile, {r: config_scale for r in profile.bands}, {r: config_offset for r in profile.bands},
                        ds.nodata, "config")
        scales = {r: float(ds.scales[b - 1]) for r, b in profile.bands.items()}
        offsets = {r: float(ds.offsets[b - 1]) for r, b in profile.bands.items()}
        if any(v != 1.0 for v in scales.values()) or any(v != 0.0 for v in offsets.values()):
            bad = [r for r, v in scales.items() if not (math.isfinite(v) and v > 0)]
            if bad or not all(math.isfinite(v) for v in offsets.values()):
                raise RasterInputError(
                    f"has an unusable band scale/offset in its metadata ({', '.join(f'{r} ×{scales[r]} +{offsets[r]}' for r in profile.bands)})",
                    path=path, fix="fix it with gdal_edit.py -scale/-offset, or set [raster] scale and offset in the run configuration")
            return Band(profile, scales, offsets, ds.nodata, "metadata")
        dtype = ds.dtypes[0]
        sample_max = None
        if dtype.startswith("float"):
            h, w = min(ds.height, 256), min(ds.width, 256)
            sample = ds.read(1, window=Window(0, 0, w, h), masked=True)
            sample_max = float(np.nanmax(sample.filled(np.nan))) if sample.count() else None
        scale = profile.scale or reflectance_scale(dtype, sample_max)
        return Band(profile, {r: scale for r in profile.bands}, {r: 0.0 for r in profile.bands}, ds.nodata,
                    "profile" if profile.scale else "dtype")

    def _common_grid(self) -> Grid:
        b = self._before
        if b.width < 8 or b.height < 8:
            raise RasterInputError(f"BEFORE is only {b.width}×{b.height} pixels", path=self.before_path,
                                   fix="give the whole image (at least 8×8 pixels, and larger than the minimum patch)")
        try:
            x0, y0, x1, y1 = self._after.bounds  # a south-up image has bottom > top
            a_bounds = transform_bounds(self._after.crs, b.crs, min(x0, x1), min(y0, y1), max(x0, x1), max(y0, y1),
                                        densify_pts=21)
        except (CRSError, CPLE_BaseError, ValueError) as err:
            raise RasterInputError(
                f"its CRS ({self._after.crs}) cannot be transformed to BEFORE's ({b.crs}): {str(err)[:200]}",
                path=self.after_path, fix="give AFTER in an Earth CRS (e.g. its UTM zone or EPSG:4490); gdalwarp -t_srs converts it") from err
        if not all(math.isfinite(v) for v in a_bounds):
            raise RasterInputError(f"its extent cannot be expressed in BEFORE's CRS ({b.crs})", path=self.after_path,
                                   fix="give AFTER in BEFORE's CRS (gdalwarp -t_srs)")
        left, bottom, right, top = b.bounds
        inter = (max(left, a_bounds[0]), max(bottom, a_bounds[1]), min(right, a_bounds[2]), min(top, a_bounds[3]))
        if inter[0] >= inter[2] or inter[1] >= inter[3]:
            raise RasterInputError(
                f"does not overlap BEFORE ({self.before_path}) — AFTER covers {tuple(round(v, 1) for v in a_bounds)} "
                f"in BEFORE's CRS, BEFORE covers {tuple(round(v, 1) for v in b.bounds)}",
                path=self.after_path,
                fix="give two images of the same area",
            )
        window = rasterio.windows.from_bounds(*inter, transform=b.transform)
        window = window.round_offsets(op="ceil").round_lengths(op="floor")
        col0, row0 = max(0, int(window.col_off)), max(0, int(window.row_off))
        width = min(int(window.width), b.width - col0)
        height = min(int(window.height), b.height - row0)
        if width < 8 or height < 8:
            raise RasterInputError(
                f"overlaps BEFORE ({self.before_path}) by only {max(width, 0)}×{max(height, 0)} pixels",
                path=self.after_path,
                fix="give two images of the same area",
            )
        self._before_offset = (row0, col0)
        return Grid(width, height, rasterio.windows.transform(Window(col0, row0, width, height), b.transform), b.crs)

    def _native_offset(self) -> tuple[int, int] | None:
        """AFTER's pixel (row, col) at the grid origin when both share CRS, pixel size and
        pixel alignment: then AFTER is read directly and shifted in numpy (much faster
        than warping); otherwise None and a WarpedVRT does the alignment."""
        a = self._after
        t, g = a.transform, self.grid.transform
        if a.crs != self.grid.crs or t.b != 0 or t.d != 0 or g.b != 0 or g.d != 0:
            return None
        if not (math.isclose(t.a, g.a, rel_tol=1e-9) and math.isclose(t.e, g.e, rel_tol=1e-9)):
            return None
        col = (g.c - t.c) / t.a
        row = (g.f - t.f) / t.e
        if abs(col - round(col)) > 1e-6 or abs(row - round(row)) > 1e-6:
            return None
        return int(round(row)), int(round(col))

    def _read_native(self, window: Window, roles: Sequence[str] | None = None) -> tuple[np.ndarray, np.ndarray]:
        """AFTER on the grid, shifted by ``self.shift`` with bilinear interpolation.

        Output pixel (r, c) samples AFTER at (r - drow, c - dcol) in grid pixels, like the
        WarpedVRT it replaces; pixels that need data beyond AFTER's edge are invalid.
        """
        drow, dcol = self.shift
        row0 = int(window.row_off) + self._native[0] - drow
        col0 = int(window.col_off) + self._native[1] - dcol
        r0, c0 = math.floor(row0), math.floor(col0)
        fr, fc = np.float32(row0 - r0), np.float32(col0 - c0)
        h, w = int(window.height), int(window.width)
        a = self._after
        top, left = max(0, r0), max(0, c0)
        bottom, right = min(a.height, r0 + h + 1), min(a.width, c0 + w + 1)
        # Integer DN are scaled to reflectance block by block inside the interpolation
        # (one pass over the window less); other types as read.
        raw, valid, scale, offset = self._read_raw(a, self.after_bands, Window(left, top, max(0, right - left),
                                                                             max(0, bottom - top)), roles=roles)
        pad = ((top - r0, r0 + h + 1 - bottom), (left - c0, c0 + w + 1 - right))
        if any(p for pair in pad for p in pair):
            if raw.shape[1] == 0 or raw.shape[2] == 0:
                return np.zeros((len(roles or self.roles), h, w), np.float32), np.zeros((h, w), bool)
            raw = np.pad(raw, ((0, 0), *pad), mode="edge")
            valid = np.pad(valid, pad, mode="constant", constant_values=False)
        if fr == 0 and fc == 0:
            return _to_reflectance(raw[:, :h, :w], scale, offset), valid[:h, :w]
        out = bilinear_shift(raw, fr, fc, h, w, scale=scale, offset=offset)
        ok = valid[:h, :w].copy()
        if fc:
            ok &= valid[:h, 1:]
        if fr:
            ok &= valid[1:, :w]
        if fr and fc:
            ok &= valid[1:, 1:]
        return out, ok

    def _build_vrt(self) -> None:
        if self._vrt is not None:
            self._vrt.close()
        drow, dcol = self.shift
        transform = self.grid.transform @ Affine.translation(-dcol, -drow)
        self._vrt = WarpedVRT(
            self._after,
            crs=self.grid.crs,
            transform=transform,
            width=self.grid.width,
            height=self.grid.height,
            resampling=self._resampling,
            src_nodata=self._after.nodata,
            nodata=self._after.nodata if self._after.nodata is not None else 0,
            add_alpha=self._after.nodata is None,
        )

    def set_shift(self, rows: float, cols: float) -> None:
        """Resample AFTER shifted by (rows, cols) pixels to undo misregistration."""
        self.shift = (float(rows), float(cols))
        if self._native is None:
            self._build_vrt()

    # -- facts ----------------------------------------------------------------------
    @property
    def dates(self) -> tuple[dt.date | None, dt.date | None]:
        return acquisition_date(self._before), acquisition_date(self._after)

    @property
    def pixel_m(self) -> float:
        """Ground size of a pixel in metres (geodesic for geographic grids)."""
        crs = self.grid.crs
        if crs.is_geographic:
            import pyproj

            left, bottom, right, top = self.grid.bounds
            geod = pyproj.Geod(ellps="WGS84")
            lat = (bottom + top) / 2
            _, _, dx = geod.inv(left, lat, left + self.grid.res[0], lat)
            _, _, dy = geod.inv(left, lat, left, lat + self.grid.res[1])
            return float(math.sqrt(abs(dx * dy)))
        factor = crs.linear_units_factor[1] if crs.linear_units_factor else 1.0
        return float(math.sqrt(self.grid.res[0] * self.grid.res[1]) * factor)

    @property
    def sensor_name(self) -> str:
        return self.before_bands.profile.name

    @property
    def dtypes(self) -> tuple[str, str]:
        """Storage data type of BEFORE and AFTER (first band)."""
        return (str(self._before.dtypes[0]), str(self._after.dtypes[0]))

    def _guessed_integer_samples(self, reads, step: int = 4):
        """(bands, values, path) of each date stored as 16/32-bit integers whose scale is
        only a guess from the data type (no [raster] scale, no metadata, no profile):
        its valid values in ``reads`` on every ``step``-th row and column, (bands, n)."""
        for k, (bands, path, dtype) in enumerate(((self.before_bands, self.before_path, self.dtypes[0]),
                                                  (self.after_bands, self.after_path, self.dtypes[1]))):
            if bands.scaling != "dtype" or dtype not in ("uint16", "int16", "uint32", "int32"):
                continue
            parts = [r[k][:, ::step, ::step][:, r[2][::step, ::step]] for r in reads]
            parts = [v for v in parts if v.size]
            if parts:
                yield bands, np.concatenate(parts, axis=1), path

    def ten_bit_dates(self, reads: Sequence[tuple[np.ndarray, np.ndarray, np.ndarray]]) -> list[Path]:
        """The dates stored as 16-bit integers, scaled by a guess from the data type, whose
        values in ``reads`` (``read`` results, e.g. the calibration windows; a sample of
        every 4th row and column) never exceed 1023: raw 10-bit DN (GF-1/2, ZY-3
        L1A/ortho products), not reflectance × 10000 (where a vegetated or built pixel
        reaches 0.1 in some band)."""
        return [path for bands, values, path in self._guessed_integer_samples(reads)
                if float(values.max()) / bands.scale < 1023.5]

    def offset_dates(self, reads: Sequence[tuple[np.ndarray, np.ndarray, np.ndarray]]) -> list[Path]:
        """The dates stored as integers, scaled by a guess from the data type, where even
        the darkest band's 1st percentile in ``reads`` (sampled as for
        :meth:`ten_bit_dates`) is a reflectance of 0.1 or more: no water, shadow or
        vegetation in red is that bright, so the values carry an additive offset
        (Sentinel-2 L2A from baseline 04.00: +1000; Landsat Collection 2: scale
        0.0000275, offset −0.2) that the file does not declare."""
        return [path for _, values, path in self._guessed_integer_samples(reads)
                if float(np.percentile(values, 1, axis=1).min()) >= 0.1]

    def describe(self) -> dict:
        return {
            "grid_crs": self.grid.crs.to_string(),
            "grid_shape": list(self.grid.shape),
            "grid_res": list(self.grid.res),
            "before_crs": self._before.crs.to_string(),
            "after_crs": self._after.crs.to_string(),
            "roles": list(self.roles),
            "sensor_before": self.before_bands.profile.name,
            "sensor_after": self.after_bands.profile.name,
            "scaling_before": self.before_bands.scaling,
            "scaling_after": self.after_bands.scaling,
        }

    # -- reads ----------------------------------------------------------------------
    def read(self, window: Window, roles: Sequence[str] | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Reflectance of both dates in ``window`` of the grid.

        ``roles``: read only these bands (e.g. red, green, blue for a true-colour
        chip), in that order; default every band role of the pair.

        Returns
        -------
        before, after : ndarray, float32, shape (len(roles), h, w)
            Reflectance 0–1 (AFTER not yet radiometrically normalised).
        valid : ndarray, bool, shape (h, w)
            True where both dates have data.
        """
        before, bvalid = self.read_before(window, roles)
        after, avalid = self.read_after(window, roles)
        return before, after, bvalid & avalid

    def read_before(self, window: Window, roles: Sequence[str] | None = None) -> tuple[np.ndarray, np.ndarray]:
        """BEFORE's reflectance in ``window`` of the grid and where it has data (see :meth:`read`)."""
        row0, col0 = self._before_offset
        bwin = Window(window.col_off + col0, window.row_off + row0, window.width, window.height)
        return self._read_one(self._before, self.before_bands, bwin, roles=roles)

    def read_after(self, window: Window, roles: Sequence[str] | None = None) -> tuple[np.ndarray, np.ndarray]:
        """AFTER's reflectance on the grid in ``window`` (shifted by :attr:`shift`, not yet
        radiometrically normalised) and where it has data (see :meth:`read`)."""
        if self._native is not None:
            return self._read_native(window, roles)
        return self._read_one(self._vrt, self.after_bands, window, alpha=self._after.nodata is None, roles=roles)

    def _read_one(self, ds, bands: Band, window: Window, alpha: bool = False, roles: Sequence[str] | None = None):
        raw, valid, scale, offset = self._read_raw(ds, bands, window, alpha, roles)
        return _to_reflectance(raw, scale, offset), valid

    def _read_raw(self, ds, bands: Band, window: Window, alpha: bool = False, roles: Sequence[str] | None = None):
        """``(raw, valid, scale, offset)``: the stored values of ``roles`` in ``window``
        (integer DN as stored, any other type as float32 reflectance), where they are
        data, and the per-band ``(bands, 1, 1)`` scale and offset that make them
        reflectance (:func:`_to_reflectance`; None: none)."""
        roles = roles or self.roles
        indexes = [bands.profile.bands[r] for r in roles]
        try:
            raw = ds.read(indexes, window=window)
        except (RasterioIOError, CPLE_BaseError) as err:
            path = self.before_path if ds is self._before else self.after_path
            raise RasterInputError(
                f"cannot be read at pixels {int(window.col_off)}…{int(window.col_off + window.width)}, "
                f"{int(window.row_off)}…{int(window.row_off + window.height)} ({str(err)[:200]})",
                path=path, fix="the file is damaged or incomplete: copy or download it again (gdalinfo -checksum finds the bad blocks)") from err
        if bands.scaling in ("dtype", "profile"):  # one scale, no offset
            scale, offset = np.full((len(roles), 1, 1), bands.scale, np.float32), None
        else:
            scale, offset = bands.factors(roles)
        if bands.nodata is not None:
            nodata = bands.nodata
            if isinstance(nodata, float) and math.isnan(nodata):
                valid = ~np.isnan(raw).any(axis=0)
            else:
                valid = ~(raw == nodata).all(axis=0)
        else:
            # No declared nodata: a pixel that is 0 in every band is the black collar
            # around a scene (no surface reflects nothing in every band), not data.
            valid = np.bitwise_or.reduce(raw, axis=0) != 0 if np.issubdtype(raw.dtype, np.integer) else raw.any(axis=0)
            if alpha:  # outside AFTER's footprint once warped
                valid &= ds.read(ds.count, window=window) > 0
        if not np.issubdtype(raw.dtype, np.integer):  # integers scale to finite values
            raw = _to_reflectance(raw, scale, offset)
            valid &= np.isfinite(raw).all(axis=0)
            scale = offset = None
        return raw, valid, scale, offset

    def close(self) -> None:
        for name in ("_vrt", "_after", "_before"):
            ds = getattr(self, name, None)
            if ds is not None:
                ds.close()

    def __enter__(self) -> RasterPair:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


#: Rows per block of :func:`bilinear_shift`: a block's few float32 temporaries stay in
#: a core's cache (a whole window's do not, and every pass would go to memory).
SHIFT_BLOCK_ROWS = 64


def _to_reflectance(raw: np.ndarray, scale: np.ndarray | None, offset: np.ndarray | None) -> np.ndarray:
    """float32 ``raw × scale (+ offset)``, per band (``scale``/``offset`` broadcast; None:
    none, ``raw`` is reflectance already)."""
    if scale is None:
        data = np.array(raw, dtype=np.float32)
    else:
        data = np.multiply(raw, scale, dtype=np.float32)
    if offset is not None:
        data += offset
    return data


def bilinear_shift(data: np.ndarray, fr: float, fc: float, h: int, w: int, *,
                   scale: np.ndarray | None = None, offset: np.ndarray | None = None) -> np.ndarray:
    """``(bands, h, w)`` float32 bilinear samples of ``data`` (``(bands, ≥ h + 1, ≥ w + 1)``)
    at (r + ``fr``, c + ``fc``), fractions in [0, 1): separable, along columns then rows,
    band by band in blocks of :data:`SHIFT_BLOCK_ROWS` rows (over twice as fast on a
    1024-px window as whole-array passes, and the same numbers). ``scale`` and
    ``offset`` (per band, broadcastable to ``(bands, 1, 1)``): ``data`` is stored
    values, made ``data × scale + offset`` (float32) block by block first."""
    fr, fc = np.float32(fr), np.float32(fc)
    out = np.empty((data.shape[0], h, w), dtype=np.float32)
    for k, (band, target) in enumerate(zip(data, out, strict=True)):
        for r0 in range(0, h, SHIFT_BLOCK_ROWS):
            r1 = min(h, r0 + SHIFT_BLOCK_ROWS)
            rows = band[r0:r1 + 1]
            if scale is not None or rows.dtype != np.float32:
                rows = _to_reflectance(rows, None if scale is None else scale[k], None if offset is None else offset[k])
            if fc:
                left = rows[:, :w]
                rows = rows[:, 1:w + 1] - left
                rows *= fc
                rows += left
            else:
                rows = rows[:, :w]
            if fr:
                top = rows[:r1 - r0]
                np.subtract(rows[1:r1 - r0 + 1], top, out=target[r0:r1])
                target[r0:r1] *= fr
                target[r0:r1] += top
            else:
                target[r0:r1] = rows[:r1 - r0]
    return out


def run_image_args(info: dict) -> dict:
    """How a run read its two images, from its run_info record: ``sensor`` (a profile
    name, else ``auto``), ``shift`` (rows, cols applied to AFTER) and ``dates`` (ISO
    strings, empty when unknown) — to open the same pair again (chips, QGIS project)."""
    sensor = info.get("sensor")
    return {
        "sensor": sensor if sensor in ("gf", "s2", "landsat", "rgb") else "auto",
        "shift": (float(info.get("shift_rows") or 0.0), float(info.get("shift_cols") or 0.0)),
        "dates": (info.get("date_before") or "", info.get("date_after") or ""),
    }


def open_pair(before: str | Path, after: str | Path, *, sensor: str = "auto", band_map: dict[str, int] | None = None,
              raster=None) -> RasterPair:
    """A :class:`RasterPair` read as a run's ``[raster]`` configuration says
    (:class:`swc_rs.config.RasterConfig`: resampling, GDAL cache, scale and offset)."""
    if raster is None:
        return RasterPair(before, after, sensor=sensor, band_map=band_map)
    return RasterPair(before, after, sensor=sensor, band_map=band_map, resampling=raster.resampling,
                      gdal_cache_mb=raster.gdal_cache_mb, scale=raster.scale, offset=raster.offset)


def sample_windows(grid: Grid, count: int, size: int) -> list[Window]:
    """Up to ``count`` windows of ``size`` pixels spread evenly over the grid."""
    size = min(size, grid.width, grid.height)
    per_side = max(1, int(math.ceil(math.sqrt(count))))
    rows = np.linspace(0, grid.height - size, per_side).astype(int)
    cols = np.linspace(0, grid.width - size, per_side).astype(int)
    windows = [Window(int(c), int(r), size, size) for r in rows for c in cols]
    seen, unique = set(), []
    for w in windows:
        key = (w.col_off, w.row_off)
        if key not in seen:
            seen.add(key)
            unique.append(w)
    return unique[: max(count, 1)] if len(unique) > count else unique


# -- single rasters on a reference grid (swc-rs erosion) ---------------------------------
class AlignedRaster:
    """One raster read on a reference :class:`Grid`, windowed, through a WarpedVRT.

    Used for the DEM (warped to a metric CRS when it is geographic) and for what is
    laid on the DEM's grid: imagery, land use, R, K. Reads return float64 with NaN
    outside the raster or at its nodata (``band`` given), or all bands (``band=None``).

    Raises
    ------
    InputFileError, RasterInputError
        Missing or unreadable file, no CRS, no geotransform.
    """

    def __init__(self, path: str | Path, grid: Grid | None = None, *, what: str = "raster",
                 resampling: str = "bilinear", work_crs: str | None = None):
        self.path = Path(path)
        self.what = what
        self._ds = _open(self.path, what)
        try:
            if self._ds.crs is None:
                raise RasterInputError(
                    f"the {what} has no coordinate reference system", path=self.path,
                    fix="assign one, e.g. gdal_edit.py -a_srs EPSG:4543 FILE, or give the georeferenced original")
            if self._ds.transform == Affine.identity():
                raise RasterInputError(f"the {what} has no geotransform (pixel coordinates only)", path=self.path,
                                       fix="georeference it first (gdalwarp)")
            if grid is None:
                grid = self._own_grid(work_crs)
            self.grid = grid
            self._resampling = Resampling[resampling]
            same = (self._ds.crs == grid.crs and self._ds.transform.almost_equals(grid.transform)
                    and (self._ds.width, self._ds.height) == (grid.width, grid.height))
            nodata = self._ds.nodata
            self._vrt = None if same else WarpedVRT(
                self._ds, crs=grid.crs, transform=grid.transform, width=grid.width, height=grid.height,
                resampling=self._resampling, src_nodata=nodata, nodata=nodata, add_alpha=nodata is None)
        except Exception:
            self._ds.close()
            raise

    def _own_grid(self, work_crs: str | None) -> Grid:
        ds = self._ds
        if ds.crs.is_geographic and work_crs:
            from rasterio.warp import calculate_default_transform

            transform, width, height = calculate_default_transform(ds.crs, work_crs, ds.width, ds.height, *ds.bounds)
            return Grid(int(width), int(height), transform, CRS.from_user_input(work_crs))
        return Grid(ds.width, ds.height, ds.transform, ds.crs)

    @property
    def dataset(self):
        return self._ds

    @property
    def count(self) -> int:
        return self._ds.count

    def bounds_in(self, crs) -> tuple[float, float, float, float]:
        return transform_bounds(self._ds.crs, crs, *self._ds.bounds, densify_pts=21)

    def read(self, window: Window, band: int | None = 1) -> np.ndarray:
        """Values in ``window`` of the reference grid (float64, NaN where there is no data)."""
        src = self._vrt if self._vrt is not None else self._ds
        indexes = band if band is not None else list(range(1, self._ds.count + 1))
        data = src.read(indexes, window=window, masked=True, out_dtype="float64")
        return np.ma.filled(data, np.nan)

    def close(self) -> None:
        if self._vrt is not None:
            self._vrt.close()
        self._ds.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
