"""`erosion()`: the CSLE run, window by window, composed from the factor stages.

DEM → (tile with a halo) slope, aspect, filled DEM, D8, slope length → L, S; land use
→ class; imagery → NDVI → cover (and cloud/shadow: not seen) → B; measures → E;
land use → T; R, K (raster or per zone) → A = R·K·L·S·B·E·T (t/(hm²·a)) → modulus
(t/(km²·a)) → grade → tallies per county and per zone → 水土保持率 tables.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import geopandas as gpd
import numpy as np
import rasterio.features
from shapely.geometry import box

from swc_rs import __version__, indices
from swc_rs.erosion import factors, terrain
from swc_rs.erosion.config import CLASS_NAMES, CLASSES, ErosionConfig
from swc_rs.erosion.rate import RegionTally, overall_rate, rate_table
from swc_rs.errors import InputError, RasterInputError, VectorInputError
from swc_rs.raster import AlignedRaster, Grid, expand_window, file_checksum, iter_windows
from swc_rs.sensors import reflectance_scale, resolve_profile
from swc_rs.vectors import read_layer

log = logging.getLogger(__name__)

OUTPUT_CRS = "EPSG:4490"
COUNTY_NAME_FIELDS = ("XZQMC", "NAME", "COUNTY", "QXMC", "name")
COUNTY_CODE_FIELDS = ("XZQDM", "CODE", "QXDM", "code")
LANDUSE_FIELDS = ("DLBM", "DLDM", "CODE", "LANDUSE")


@dataclass(frozen=True)
class ErosionRequest:
    """The inputs of one run (paths; ``imagery`` and ``landuse`` may be None, not both)."""

    dem: Path
    zones: Path
    counties: Path
    imagery: Path | None = None
    landuse: Path | None = None
    r: Path | None = None
    k: Path | None = None
    measures: Path | None = None
    sensor: str = "auto"
    band_map: dict | None = None
    year: str = ""


@dataclass
class ErosionResult:
    """Per-county and per-zone tables (EPSG:4490) and the run's record."""

    counties: gpd.GeoDataFrame
    zones: gpd.GeoDataFrame
    run_info: dict
    grid: Grid
    tables: dict = field(default_factory=dict)


def landuse_class(code, table: dict[str, str]) -> int | None:
    """Class index (1 … len(CLASSES)) of a 地类 code, or None when the table lacks it.

    Tried in order: the code as written, a number as the survey writes it (101 →
    "0101", 3 → "03"), then its first-level class (two digits).
    """
    text = str(code).strip()
    if text.endswith(".0"):
        text = text[:-2]
    candidates = [text]
    if text.isdigit():
        number = int(text)
        padded = f"{number:04d}" if number >= 100 else f"{number:02d}"
        candidates += [padded, padded[:2]]
    elif len(text) > 2 and text[:2].isdigit():
        candidates.append(text[:2])
    for candidate in candidates:
        if candidate in table:
            return CLASSES.index(table[candidate]) + 1
    return None


def _name_field(frame, candidates, path, what) -> str:
    for name in candidates:
        if name in frame.columns:
            return name
    raise VectorInputError(f"the {what} layer has none of the fields {', '.join(candidates)}", path=path,
                           fix=f"add a {candidates[0]} field (fields now: {', '.join(map(str, frame.columns))})")


class _Inputs:
    """Everything opened and checked before the first window is computed."""

    def __init__(self, request: ErosionRequest, config: ErosionConfig):
        self.request, self.config = request, config
        self._open: list[AlignedRaster] = []
        self.notes: dict[str, str] = {}
        try:
            self._setup()
        except Exception:
            self.close()
            raise

    def _raster(self, path, what, resampling, grid=None) -> AlignedRaster:
        raster = AlignedRaster(path, grid if grid is not None else self.grid, what=what, resampling=resampling)
        self._open.append(raster)
        return raster

    def close(self) -> None:
        for raster in self._open:
            raster.close()
        self._open.clear()

    # -- set-up ------------------------------------------------------------------------
    def _setup(self) -> None:
        req, cfg = self.request, self.config
        dem = AlignedRaster(req.dem, None, what="DEM", resampling="bilinear", work_crs=cfg.work_crs)
        self._open.append(dem)
        self.dem, self.grid = dem, dem.grid
        if not self.grid.crs.is_projected:
            raise RasterInputError("the DEM's grid is not in metres", path=req.dem,
                                   fix="set [erosion] work_crs to a projected CRS, e.g. EPSG:4543")
        self.dx, self.dy = self.grid.res
        self.halo = cfg.halo_px(min(self.dx, self.dy))
        extent = box(*self.grid.bounds)
        self.zones = self._regions(req.zones, "zones", extent)
        if "ZONE_CODE" not in self.zones.columns:
            raise VectorInputError("the zones layer has no ZONE_CODE field", path=req.zones,
                                   fix="give the SWC zones with ZONE_CODE (Z1..Z5) and ZONE_NAME")
        self.counties = self._regions(req.counties, "counties", extent)
        self.county_name = _name_field(self.counties, COUNTY_NAME_FIELDS, req.counties, "county")
        self._setup_landuse()
        self._setup_imagery()
        self.r = self._setup_rk("r", req.r, "R")
        self.k = self._setup_rk("k", req.k, "K")
        self._setup_measures()
        self.tables = factors.FactorTables(cfg)

    def _regions(self, path: Path, what: str, extent) -> gpd.GeoDataFrame:
        frame = read_layer(path, to_crs=self.grid.crs, what=what)
        frame = frame[frame.geometry.notna() & ~frame.geometry.is_empty].reset_index(drop=True)
        if frame.empty:
            raise VectorInputError(f"the {what} layer has no features", path=path, fix=f"give the {what} outlines")
        frame["geometry"] = frame.geometry.make_valid()
        if not frame.intersects(extent).any():
            raise RasterInputError(
                f"the DEM does not cover any of the {what} ({path})", path=self.request.dem,
                fix=f"give a DEM of the area of the {what} (DEM extent {tuple(round(v) for v in self.grid.bounds)} "
                    f"in {self.grid.crs.to_string()})")
        return frame

    def _setup_landuse(self) -> None:
        req, cfg = self.request, self.config
        self.landuse_vector = self.landuse_raster = None
        if req.landuse is None:
            if req.imagery is None:
                raise InputError("neither a land-use layer nor imagery was given",
                                 fix="give --landuse (the land survey's 地类) or --imagery to derive land cover")
            self.notes["landuse"] = ("land cover from the imagery (NDVI rules: water, bare, forest, grass); "
                                     "no land-use layer given — cropland is not told apart")
            return
        suffix = req.landuse.suffix.lower()
        if suffix in (".tif", ".tiff", ".vrt", ".img", ".jp2"):
            self.landuse_raster = self._raster(req.landuse, "land-use raster", "nearest")
            self._landuse_lookup = self._raster_codes(self.landuse_raster)
            self.notes["landuse"] = f"land-use raster {req.landuse}"
            return
        frame = read_layer(req.landuse, to_crs=self.grid.crs, what="land use")
        field_name = cfg.landuse_field if cfg.landuse_field in frame.columns else None
        if field_name is None:
            field_name = _name_field(frame, LANDUSE_FIELDS, req.landuse, "land-use")
        classes = [landuse_class(v, cfg.landuse_codes) for v in frame[field_name]]
        unknown = sorted({str(v) for v, c in zip(frame[field_name], classes, strict=False) if c is None})
        if unknown:
            raise VectorInputError(
                f"land-use codes {', '.join(unknown[:12])}{' …' if len(unknown) > 12 else ''} (field {field_name}) "
                "are not in the land-use table", path=req.landuse,
                fix="map them in [erosion] landuse_codes, e.g. landuse_codes = { \"0999\" = \"grass\" }")
        frame = frame.assign(_class=np.asarray(classes, dtype=int))
        self.landuse_vector = frame[["_class", "geometry"]]
        self.notes["landuse"] = f"land-use layer {req.landuse} (field {field_name})"

    def _raster_codes(self, raster: AlignedRaster) -> np.ndarray:
        """Lookup array raw value → class, checked over every block of the raster."""
        ds = raster.dataset
        if not ds.dtypes[0].startswith(("uint", "int")):
            raise RasterInputError(f"the land-use raster is of type {ds.dtypes[0]}, not integer codes",
                                   path=raster.path, fix="give the 地类 codes as an integer raster")
        values: set[int] = set()
        small = ds.dtypes[0] in ("uint8", "uint16")
        for _, window in ds.block_windows(1):
            block = ds.read(1, window=window, masked=True).compressed()
            if small:  # a count per code: one pass, no sort
                values.update(int(v) for v in np.flatnonzero(np.bincount(block)))
            else:
                values.update(int(v) for v in np.unique(block))
        if not values:
            raise RasterInputError("the land-use raster holds no data", path=raster.path, fix="give the land-use raster")
        lookup = np.zeros(max(values) + 1, np.uint8)
        unknown = []
        for v in sorted(values):
            cls = landuse_class(v, self.config.landuse_codes)
            if cls is None:
                unknown.append(str(v))
            else:
                lookup[v] = cls
        if unknown:
            raise RasterInputError(
                f"land-use codes {', '.join(unknown[:12])}{' …' if len(unknown) > 12 else ''} are not in the "
                "land-use table", path=raster.path,
                fix="map them in [erosion] landuse_codes, e.g. landuse_codes = { \"77\" = \"grass\" }")
        return lookup

    def _setup_imagery(self) -> None:
        req = self.request
        self.imagery = None
        if req.imagery is None:
            self.notes["cover"] = "no imagery: B of cover-graded classes cannot be set, those pixels are not seen"
            return
        probe = AlignedRaster(req.imagery, self.grid, what="imagery")
        self._open.append(probe)
        ds = probe.dataset
        profile = resolve_profile(req.sensor, ds.descriptions, ds.count, band_map=req.band_map, path=req.imagery)
        if not profile.has("nir"):
            raise RasterInputError("the imagery has no near-infrared band, so NDVI cannot be computed",
                                   path=req.imagery, fix="give multispectral imagery, or map the bands with --bands")
        finer = max(abs(ds.transform.a), abs(ds.transform.e)) < 0.75 * min(self.dx, self.dy) \
            and ds.crs == self.grid.crs
        if finer:  # average the finer pixels onto the DEM cell
            self._open.remove(probe)
            probe.close()
            probe = self._raster(req.imagery, "imagery", "average")
            ds = probe.dataset
        self.imagery = probe
        self.profile = profile
        roles = ("blue", "green", "red", "nir")
        scales = [float(ds.scales[profile.bands[r] - 1]) for r in roles]
        offsets = [float(ds.offsets[profile.bands[r] - 1]) for r in roles]
        if any(s != 1.0 for s in scales) or any(o != 0.0 for o in offsets):
            self.scale = (np.array(scales)[:, None, None], np.array(offsets)[:, None, None])
        else:
            sample_max = None
            if ds.dtypes[0].startswith("float"):
                sample = ds.read(profile.bands["red"], window=rasterio.windows.Window(0, 0, min(ds.width, 256),
                                                                                     min(ds.height, 256)), masked=True)
                sample_max = float(sample.max()) if sample.count() else None
            s = profile.scale or reflectance_scale(ds.dtypes[0], sample_max)
            self.scale = (np.full((4, 1, 1), s), np.zeros((4, 1, 1)))
        self.notes["cover"] = (f"NDVI of {req.imagery} ({profile.name}: red band {profile.bands['red']}, nir band "
                               f"{profile.bands['nir']}) → cover (dimidiate pixel, NDVI {self.config.ndvi_soil}–"
                               f"{self.config.ndvi_veg})")

    def _setup_rk(self, factor: str, path: Path | None, label: str):
        cfg = self.config
        lo, hi = getattr(cfg, f"{factor}_range")
        if path is not None:
            raster = self._raster(path, f"{label} raster", "bilinear")
            self.notes[label] = f"raster {path}"
            return (raster, lo, hi)
        values = getattr(cfg, f"{factor}_zones")
        default = getattr(cfg, f"{factor}_value")
        codes = [str(c) for c in self.zones["ZONE_CODE"]]
        missing = sorted({c for c in codes if c not in values}) if not default else []
        if missing:
            raise InputError(
                f"no {label} for zone(s) {', '.join(missing)}: no --{factor} raster, no [erosion] {factor}_zones "
                f"entry and no {factor}_value", fix=f"give --{factor} FILE.tif or set [erosion] {factor}_zones = "
                f"{{ {missing[0]} = … }} (or {factor}_value for the whole city)")
        per_zone = np.array([float(values.get(c, default)) for c in codes])
        self.notes[label] = "per zone from [erosion] " + ", ".join(
            f"{c} {v:g}" for c, v in zip(codes, per_zone, strict=False)) + (f" (others {default:g})" if default else "")
        return per_zone

    def _setup_measures(self) -> None:
        req, cfg = self.request, self.config
        self.measures = None
        if req.measures is None:
            self.notes["E"] = "land use only ([erosion] e_landuse): no engineering-measure layer"
            return
        frame = read_layer(req.measures, to_crs=self.grid.crs, what="engineering measures")
        if cfg.measures_field not in frame.columns:
            raise VectorInputError(f"the measures layer has no {cfg.measures_field} field", path=req.measures,
                                   fix="name the field with [erosion] measures_field (fields now: "
                                       f"{', '.join(map(str, frame.columns))})")
        unknown = sorted({str(v) for v in frame[cfg.measures_field] if str(v) not in cfg.e_measures})
        if unknown:
            raise VectorInputError(f"measure types {', '.join(unknown)} are not in [erosion] e_measures",
                                   path=req.measures, fix=f"use one of {', '.join(cfg.e_measures)} or add them "
                                   "to e_measures with their E")
        frame = frame.assign(_e=[float(cfg.e_measures[str(v)]) for v in frame[cfg.measures_field]])
        self.measures = frame.sort_values("_e", ascending=False)[["_e", "geometry"]]
        self.notes["E"] = f"measures {req.measures} ({len(frame)} features) over [erosion] e_landuse"

    # -- per window ----------------------------------------------------------------------
    def rasterize(self, frame, values, window, fill=0, dtype="int32") -> np.ndarray:
        shape = (int(window.height), int(window.width))
        transform = self.grid.window_transform(window)
        bounds = rasterio.windows.bounds(window, self.grid.transform)
        hits = frame.sindex.query(box(*bounds), predicate="intersects")
        if len(hits) == 0:
            return np.full(shape, fill, dtype)
        shapes = ((frame.geometry.iloc[i], values[i]) for i in hits)
        return rasterio.features.rasterize(shapes, out_shape=shape, transform=transform, fill=fill, dtype=dtype)


def _reflectance(inputs: _Inputs, window) -> np.ndarray:
    bands = [inputs.profile.bands[r] for r in ("blue", "green", "red", "nir")]
    raw = inputs.imagery.read(window, bands)
    scale, offset = inputs.scale
    return raw * scale + offset


def _cover(inputs: _Inputs, window, shape) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(NDVI, cover, seen) on the window; seen is False at cloud, shadow and nodata."""
    cfg = inputs.config
    if inputs.imagery is None:
        nan = np.full(shape, np.nan)
        return nan, nan, np.zeros(shape, bool)
    blue, green, red, nir = _reflectance(inputs, window)
    valid = np.isfinite(blue) & np.isfinite(green) & np.isfinite(red) & np.isfinite(nir)
    with np.errstate(invalid="ignore"):
        bright = (blue + green + red) / 3.0
        cloud = (bright >= cfg.cloud_brightness) & (indices.whiteness(blue, green, red) <= cfg.cloud_whiteness)
        shadow = (bright + nir) / 2.0 < cfg.shadow_dark_max
    ndvi = indices.ndvi(np.nan_to_num(nir), np.nan_to_num(red))
    seen = valid & ~cloud & ~shadow
    return ndvi, factors.vegetation_cover(ndvi, cfg.ndvi_soil, cfg.ndvi_veg), seen


def _classes(inputs: _Inputs, window, ndvi, fvc, seen) -> np.ndarray:
    cfg = inputs.config
    shape = ndvi.shape
    if inputs.landuse_vector is not None:
        return inputs.rasterize(inputs.landuse_vector, inputs.landuse_vector["_class"].to_numpy(), window).astype(np.uint8)
    if inputs.landuse_raster is not None:
        raw = inputs.landuse_raster.read(window)
        ok = np.isfinite(raw)
        out = np.zeros(shape, np.uint8)
        out[ok] = inputs._landuse_lookup[raw[ok].astype(np.int64)]
        return out
    cls = np.full(shape, CLASSES.index("grass") + 1, np.uint8)
    cls[fvc >= cfg.imagery_fvc_forest] = CLASSES.index("forest") + 1
    cls[ndvi < cfg.imagery_ndvi_bare] = CLASSES.index("bare") + 1
    cls[ndvi < cfg.imagery_ndvi_water] = CLASSES.index("water") + 1
    cls[~seen] = 0
    return cls


def _factor(inputs: _Inputs, spec, window, zone_ids, label: str) -> np.ndarray:
    if isinstance(spec, tuple):
        raster, lo, hi = spec
        values = raster.read(window)
        bad = np.isfinite(values) & ((values <= lo) | (values > hi))
        if bad.any():
            sample = float(values[bad][0])
            raise RasterInputError(
                f"{label} = {sample:g} at {int(bad.sum())} pixel(s) is outside the physical range ({lo:g}, {hi:g}]",
                path=raster.path, fix=f"check the unit of {label} ({'MJ·mm/(hm²·h·a)' if label == 'R' else 't·hm²·h/(hm²·MJ·mm)'}) "
                                      "and the raster's nodata value")
        return values
    outside = getattr(inputs.config, f"{label.lower()}_value") or np.nan  # pixels in no zone
    lookup = np.concatenate([[outside], spec])
    return lookup[zone_ids]


def ls_factors(z: np.ndarray, dx: float, dy: float, cfg: ErosionConfig,
               core=(slice(None), slice(None))) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(L, S, slope °) of a DEM tile (NaN nodata; cell dx × dy m), cropped to ``core``.

    Slope by Horn, D8 on the depression-filled tile, λ from the upslope contributing
    area capped at ``max_slope_length_m``, L by ``l_formula`` with m by slope class,
    S piecewise by ``s_breaks_deg``. Cells at nodata get slope NaN, L and S of a flat cell.
    """
    slope, x = terrain.slope_aspect(z, dx, dy)
    d8 = terrain.flow_directions(z, dx, dy)
    length_in, length_out = terrain.slope_lengths(d8, x, dx, dy, cfg.max_slope_length_m)
    slope, length_in, length_out = slope[core], length_in[core], length_out[core]
    theta = np.nan_to_num(slope)
    m = factors.length_exponent(theta, cfg.m_breaks_deg, cfg.m_values)
    if cfg.l_formula == "cumulative":
        lf = factors.cumulative_length_factor(np.nan_to_num(length_out), m)
    else:
        lf = factors.length_factor(np.nan_to_num(length_in), np.nan_to_num(length_out), m)
    sf = factors.slope_factor(theta, cfg.s_breaks_deg, cfg.s_coefficients)
    return lf, sf, slope


def window_factors(inputs: _Inputs, window) -> dict[str, np.ndarray]:
    """Every factor, A and the grade on one window (core pixels only)."""
    cfg = inputs.config
    outer, core = expand_window(window, inputs.halo, inputs.grid)
    z = inputs.dem.read(outer)
    lf, sf, slope = ls_factors(z, inputs.dx, inputs.dy, cfg, core)
    z = z[core]
    covered = np.isfinite(z)
    shape = z.shape
    ndvi, fvc, seen_image = _cover(inputs, window, shape)
    cls = _classes(inputs, window, ndvi, fvc, seen_image)
    tables = inputs.tables
    b = tables.biological(cls, fvc)
    e = tables.e[cls]
    if inputs.measures is not None:
        e_measure = inputs.rasterize(inputs.measures, inputs.measures["_e"].to_numpy(), window, fill=-1.0,
                                     dtype="float64")
        e = np.where(e_measure >= 0, np.minimum(e, e_measure), e)
    t = tables.t[cls]
    zone_ids = None
    if not isinstance(inputs.r, tuple) or not isinstance(inputs.k, tuple):
        zone_ids = inputs.rasterize(inputs.zones, np.arange(1, len(inputs.zones) + 1), window)
    r = _factor(inputs, inputs.r, window, zone_ids, "R")
    k = _factor(inputs, inputs.k, window, zone_ids, "K")
    a = r * k * lf * sf * b * e * t
    seen = covered & (cls > 0) & (seen_image | ~tables.needs_cover(cls)) & np.isfinite(a)
    modulus = np.where(seen, a * 100.0, np.nan)
    grade = np.where(seen, factors.grade(np.nan_to_num(modulus), cfg.grade_breaks_t_km2), 0).astype(np.uint8)
    return {"modulus": modulus.astype(np.float32), "grade": grade, "covered": covered, "L": lf, "S": sf,
            "slope": slope, "B": b, "E": e, "T": t, "R": r, "K": k, "class": cls, "cover": fvc}


def _record(path: Path | None) -> dict | None:
    if path is None:
        return None
    return {"path": str(path), "sha256": file_checksum(path) if path.is_file() else None}


def _window_tallies(inputs: _Inputs, window) -> tuple:
    """One window's (window, modulus, grade, county tally, zone tally)."""
    out = window_factors(inputs, window)
    tallies = []
    for frame in (inputs.counties, inputs.zones):
        tally = RegionTally(len(frame))
        ids = inputs.rasterize(frame, np.arange(1, len(frame) + 1), window)
        tally.add(ids, out["covered"], out["grade"], np.nan_to_num(out["modulus"]))
        tallies.append(tally)
    return window, out["modulus"], out["grade"], tallies[0], tallies[1]


_WORKER: dict = {}


def _remote_window(request: ErosionRequest, config: ErosionConfig, window) -> tuple:
    """A spawned worker's window: its inputs are opened (and checked) once per process."""
    key = repr((request, config))
    if _WORKER.get("key") != key:
        from swc_rs.workers import reuse_freed_memory

        reuse_freed_memory()
        if "inputs" in _WORKER:
            _WORKER.pop("inputs").close()
        _WORKER["inputs"] = _Inputs(request, config)
        _WORKER["key"] = key
    return _window_tallies(_WORKER["inputs"], window)


def erosion(request: ErosionRequest, config: ErosionConfig | None = None, *,
            sink: Callable | None = None, progress: Callable[[int, int], None] | None = None,
            workers: int = 1) -> ErosionResult:
    """Run the CSLE over the DEM's grid and tally it per county and zone.

    Parameters
    ----------
    request
        The input paths.
    config
        The ``[erosion]`` numbers (defaults when None).
    sink
        Called as ``sink(grid, window, modulus, grade)`` for every window (the COG
        writer of :mod:`swc_rs.export.erosion`); ``modulus`` is float32 t/(km²·a), NaN
        where not seen; ``grade`` uint8, 0 where not seen.
    progress
        Called as ``progress(done, total)`` after every window.
    workers
        Processes for the windows: this one and ``workers − 1`` spawned ones (each
        opens the inputs itself; 0 = every available core). One window: this process only.

    Raises
    ------
    InputError
        Any bad input (file, problem, fix).
    """
    from swc_rs.workers import (
        RETRY_HERE,
        available_cores,
        reuse_freed_memory,
        share_work,
        start_workers,
    )

    config = config or ErosionConfig()
    year = str(request.year).strip()
    if year and not (year.isdigit() and 1900 <= int(year) <= 2200):
        raise InputError(f"the monitoring year {request.year!r} is not a year", fix="give the year as four digits, e.g. --year 2026")
    started = time.perf_counter()
    reuse_freed_memory()
    inputs = _Inputs(request, config)
    pool = None
    try:
        grid = inputs.grid
        county_tally = RegionTally(len(inputs.counties))
        zone_tally = RegionTally(len(inputs.zones))
        windows = list(iter_windows(grid, config.window_size))
        processes = min(workers or available_cores(), len(windows))
        pool = start_workers(processes - 1, module="swc_rs.erosion.run")
        results = share_work(windows, lambda w: _window_tallies(inputs, w),
                             lambda w: pool.submit(_remote_window, request, config, w), processes - 1,
                             on_lost=lambda item, error: RETRY_HERE)
        parts: list = [None] * len(windows)
        for done, (index, (window, modulus, grade, counties_part, zones_part)) in enumerate(results, start=1):
            parts[index] = (counties_part, zones_part)
            if sink is not None:
                sink(grid, window, modulus, grade)
            if progress is not None:
                progress(done, len(windows))
        for counties_part, zones_part in parts:  # in window order: the sums do not depend on who finished first
            county_tally.merge(counties_part)
            zone_tally.merge(zones_part)
        elapsed = time.perf_counter() - started
        pixel_area = grid.pixel_area_m2
        code = next((c for c in COUNTY_CODE_FIELDS if c in inputs.counties.columns and c != inputs.county_name), None)
        counties = _table(inputs.counties, county_tally, pixel_area, config,
                          keep=[inputs.county_name] + ([code] if code else []))
        counties = counties.rename(columns={inputs.county_name: "XZQMC", **({code: "XZQDM"} if code else {})})
        zones = _table(inputs.zones, zone_tally, pixel_area, config,
                       keep=[c for c in ("ZONE_CODE", "ZONE_NAME") if c in inputs.zones.columns])
        if year:  # each year's tables carry their year (erosion-trend reads it)
            counties.insert(counties.columns.get_loc("LAND_HM2"), "YEAR", int(year))
            zones.insert(zones.columns.get_loc("LAND_HM2"), "YEAR", int(year))
        for frame, label in ((counties, "counties"), (zones, "zones")):
            partial = frame[frame["COVER_PCT"] < 99.5]
            if len(partial):
                log.warning("the DEM covers %d of the %s only in part (COVER_PCT < 100): %s", len(partial), label,
                            ", ".join(f"{r.iloc[0]} {r['COVER_PCT']:.1f} %" for _, r in partial.iterrows()))
        run_info = _run_info(request, config, inputs, county_tally, elapsed, len(windows))
        run_info["processes"] = processes
        return ErosionResult(counties, zones, run_info, grid)
    finally:
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)
        inputs.close()


def _table(frame: gpd.GeoDataFrame, tally: RegionTally, pixel_area: float, config: ErosionConfig,
           keep: list[str]) -> gpd.GeoDataFrame:
    table = rate_table(tally, frame.geometry.area.to_numpy(), pixel_area, config.targets)
    return gpd.GeoDataFrame(frame[keep].reset_index(drop=True).join(table), geometry=frame.geometry.values,
                            crs=frame.crs).to_crs(OUTPUT_CRS)


def _run_info(request, config, inputs: _Inputs, tally: RegionTally, elapsed: float, n_windows: int) -> dict:
    grid = inputs.grid
    notes = inputs.notes
    return {
        "command": "erosion",
        "version": __version__,
        "run_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "year": request.year,
        "equation": "CSLE A = R·K·L·S·B·E·T (Liu Baoyu et al. 2002), A in t/(hm²·a); modulus = 100·A t/(km²·a)",
        "inputs": {name: _record(getattr(request, name)) for name in
                   ("dem", "imagery", "landuse", "r", "k", "measures", "zones", "counties")},
        "grid": {"width": grid.width, "height": grid.height, "crs": grid.crs.to_string(),
                 "transform": list(grid.transform)[:6], "cell_m": [inputs.dx, inputs.dy]},
        "factor_R": notes["R"],
        "factor_K": notes["K"],
        "factor_LS": (f"DEM {request.dem}: slope by Horn (1981); slope length from the upslope contributing area "
                      f"(D8 on the depression-filled DEM, pyflwdir {_pyflwdir_version()}), capped at "
                      f"{config.max_slope_length_m:g} m, L "
                      + ("by Desmet & Govers (1996)" if config.l_formula == "segment" else "(λ/22.13)^m (cumulative)")
                      + " with m by slope class "
                      + f"{config.m_values} at {config.m_breaks_deg}°; S by McCool et al. (1987) and Liu et al. (1994) "
                      f"{config.s_coefficients} at {config.s_breaks_deg}°; tiles with a {inputs.halo} px halo"),
        "factor_B": f"land use × vegetation cover class ({notes['landuse']}; {notes['cover']})",
        "factor_E": notes["E"],
        "factor_T": "land use ([erosion] t_landuse: " + ", ".join(
            f"{CLASS_NAMES[c]} {config.t_landuse[c]:g}" for c in CLASSES) + ")",
        "landuse_source": notes["landuse"],
        "swc_rate_all": round(overall_rate(tally), 2),
        "tolerable_t_km2": config.tolerable_t_km2,
        "targets": config.targets,
        "parameters": config.to_dict(),
        "windows": n_windows,
        "seconds": round(elapsed, 2),
    }


def _pyflwdir_version() -> str:
    import pyflwdir

    return getattr(pyflwdir, "__version__", "?")

