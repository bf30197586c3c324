"""Seeded synthetic two-date scenes with truth, for tests, demos and benchmarks.

:func:`generate_scene` writes a Ya'an-like pair of 4-band 2 m images (before/after),
the scene's SWC zones, approved responsibility ranges, sensitive areas and the truth:
one row per real disturbance with its expected desk verdict (BYD), and the changes
that are *not* disturbance (confounders) so that an evaluation can say what each
false alarm hit.

How a scene is made
-------------------
1. A *plan* of vector objects in pixel coordinates (column, row), drawn from one
   seeded generator: rivers, reservoirs, roads, villages, farmland parcels, the
   disturbance sites with their projects, clouds and their shadows.  The sites follow
   recipes that make every BYD class occur in every 1024×1024 cell of the scene.
2. The *landscape* is a pure function of pixel coordinates: hash-based value noise
   (terrain, vegetation, texture) plus the rasterised plan.  Any window can be
   rendered on its own, so images of any size are written in strips with bounded
   memory, and adjacent strips agree exactly.
3. Each date passes a sensor model: a Gaussian PSF (σ 0.6 px), for the after date
   centred on a grid shifted by a sub-pixel to 1.5 px offset (misregistration),
   per-pixel noise (1.2 % + 6 DN), and for the after date a per-band gain/offset.

Everything is reflectance ×10000 in uint16.  No signature is invented: the classes
use textbook reflectances, and the only differences between dates that are not
disturbance are the ones real pairs show (phenology, sun angle and terrain shading,
gain, misregistration, clouds and shadows, harvest and tillage, reservoir draw-down).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import math
import os
import shutil
import tempfile
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import geopandas as gpd
import numpy as np
import rasterio
import rasterio.features
import shapely
from affine import Affine
from pyproj import Transformer
from rasterio.windows import Window
from scipy import ndimage
from shapely import affinity
from shapely.geometry import LineString, MultiPolygon, Point, Polygon, box, shape
from shapely.ops import unary_union

from swc_rs import __version__
from swc_rs.errors import InputError, OutputExistsError

log = logging.getLogger(__name__)

BANDS = ("blue", "green", "red", "nir")
SCENE_CRS = "EPSG:32648"
EXCHANGE_CRS = "EPSG:4490"
AREA_CRS = "EPSG:4543"
PIXEL_M = 2.0
PX_PER_HM2 = 10_000.0 / PIXEL_M**2  # 2500 px per hm² at 2 m
DATES = (dt.date(2026, 10, 12), dt.date(2026, 11, 14))
TIFF_DATETIMES = ("2026:10:12 03:25:00", "2026:11:14 03:25:00")
#: Sun zenith/azimuth (degrees) at 03:25 UTC over Ya'an on the two dates.
SUN = ((44.5, 150.0), (54.0, 153.0))
MIN_SIZE = 256
CELL = 1024  # every CELL×CELL part of the scene gets the full set of site recipes
STRIP = 256  # rows rendered and written at a time (= the GeoTIFF block height)
HALO = 6  # extra pixels rendered around a strip for the PSF and the shift
PSF_SIGMA = 0.6
MAX_SHIFT_PX = 1.5

ZONE_NAMES = {
    "Z1": "雅安北部中部山地减灾生态维护区",
    "Z2": "雅安南部山地减灾保土生态维护区",
    "Z3": "雅安东部丘陵平坝人居环境维护保土减灾区",
    "Z4": "雅安中东部中低山丘陵人居环境维护保土减灾区",
    "Z5": "雅安东部中低山丘陵人居环境维护保土减灾区",
}
ILLUSTRATIVE_NOTE = "示意性范围（illustrative outline, not official)"

SPOIL, PIT, OTHER = "弃土（渣）场", "取土（石）场", "其他扰动"
OK, UNAPPROVED, OVERRUN, SITE_CHANGE, UNAPPROVED_SPOIL = (
    "合规",
    "疑似未批先建",
    "疑似超出防治责任范围",
    "疑似建设地点变更",
    "疑似未批先弃",
)
BYD_CLASSES = (OK, UNAPPROVED, OVERRUN, SITE_CHANGE, UNAPPROVED_SPOIL)
QTYPE_OF_KIND = {
    "clearing": OTHER,
    "building": OTHER,
    "road_cut": OTHER,
    "spoil_heap": SPOIL,
    "borrow_pit": PIT,
    "quarry": PIT,
}
DISTURBANCE_KINDS = tuple(QTYPE_OF_KIND)
CONFOUNDER_KINDS = ("tillage", "harvest", "sowing", "drawdown", "cloud", "cloud_shadow")

# Reflectance ×10000 (blue, green, red, nir).
SPECTRA = {
    "forest": (250, 450, 280, 3300),
    "grass": (400, 700, 550, 2800),
    "shrub": (320, 560, 400, 3000),
    "crop": (350, 750, 450, 3800),
    "stubble": (800, 1000, 1200, 2000),
    "tilled": (600, 800, 1000, 1400),
    "bare_field": (1000, 1200, 1500, 2000),
    "water": (450, 550, 350, 150),
    "mud": (700, 850, 950, 1200),
    "village_ground": (650, 800, 850, 2100),
    "roof_grey": (1400, 1500, 1600, 1900),
    "roof_tile": (700, 800, 1200, 1700),
    "roof_steel": (1800, 2000, 1900, 2100),
    "roof_blue": (1500, 1400, 1000, 1500),
    "road": (1300, 1400, 1500, 1700),
    "existing": (1200, 1450, 1750, 2200),
    "subsoil": (1300, 1600, 2000, 2400),
    "spoil": (1500, 1800, 2200, 2600),
    "rock": (2000, 2200, 2400, 2600),
    "pit_earth": (1500, 1700, 1900, 2200),
    "site_ground": (1300, 1500, 1700, 2000),
}
PARCEL_STATES = ("crop", "stubble", "tilled", "bare_field", "grass")
CROP, STUBBLE, TILLED, BARE, FALLOW = range(5)
KIND_CODE = {k: i for i, k in enumerate(DISTURBANCE_KINDS)}
KIND_SPECTRUM = {
    "clearing": "subsoil",
    "building": "site_ground",
    "road_cut": "subsoil",
    "spoil_heap": "spoil",
    "borrow_pit": "pit_earth",
    "quarry": "rock",
}

Progress = Callable[[int, int, str], None]

STYLES = ("classic", "random")
_SOIL_CLASSES = (
    "mud", "village_ground", "road", "existing", "subsoil", "spoil", "rock", "pit_earth",
    "site_ground",
)
_FARM_SOIL = ("stubble", "tilled", "bare_field")
_VEGETATION = ("forest", "grass", "shrub", "crop")


@dataclass(frozen=True)
class Style:
    """How a scene looks: spectra, textures, parcels, farming calendar, clouds, sensor.

    ``Style()`` ("classic") is the generator as it always was: the same seed gives the
    same bytes.  :meth:`random` draws every field from wide distributions
    (domain randomisation), so a model trained on classic scenes can be tested on
    scenes it has never seen the look of: other soil colours, dry bright tilled soil,
    coarser or finer texture, narrow strips or large square fields, spring sowing as
    well as autumn harvest, haze as well as cumulus, a softer or noisier sensor.

    Attributes
    ----------
    name : str
        ``"classic"`` or ``"random"``.
    spectra : dict
        Reflectance ×10000 (blue, green, red, nir) per surface class (see ``SPECTRA``).
    texture : float
        Multiplier of every texture amplitude (1 = classic).
    district_hm2 : tuple of float
        Area range of a farmland district (hm²).
    parcel_rows_px, parcel_cols_px : tuple of float
        Range of a parcel's short and long side (pixels of 2 m).
    start_states : tuple of float
        Probabilities of a parcel's BEFORE state (crop, stubble, tilled, bare, fallow).
    harvest, crop_tilled, stubble_tilled, sowing : float
        Per-parcel probabilities of crop → stubble, crop → tilled, stubble → tilled and
        tilled/bare → crop (sowing and green-up) between the dates.
    crop_nir_after : tuple of float
        Range of the crop's AFTER/BEFORE NIR ratio (below 1 senescence, above 1 growth).
    clouds_per_cell : tuple of int
        Range (low inclusive, high exclusive) of clouds per 1024² cell.
    cloud_radius_px : tuple of float
        Range of a cloud's long semi-axis (pixels).
    cloud_level : tuple of float
        Range of cloud-top reflectance ×10000.
    haze : float
        Probability that a cloud is thin haze (opacity 0.25–0.6, two to three times wider).
    shadow_dark : tuple of float
        Range of the darkening of a thick cloud's shadow.
    psf_sigma : float
        Gaussian PSF sigma (pixels).
    noise_relative, noise_dn : float
        Multiplicative and additive noise (standard deviations).
    gain, offset : tuple of float
        Ranges of the AFTER date's per-band gain and offset (DN).
    """

    name: str = "classic"
    spectra: dict = field(default_factory=lambda: dict(SPECTRA))
    texture: float = 1.0
    district_hm2: tuple = (12.0, 40.0)
    parcel_rows_px: tuple = (10.0, 22.0)
    parcel_cols_px: tuple = (14.0, 40.0)
    start_states: tuple = (0.4, 0.25, 0.08, 0.07, 0.2)
    harvest: float = 0.15
    crop_tilled: float = 0.20
    stubble_tilled: float = 0.35
    sowing: float = 0.0
    crop_nir_after: tuple = (0.75, 0.90)
    clouds_per_cell: tuple = (1, 4)
    cloud_radius_px: tuple = (35.0, 110.0)
    cloud_level: tuple = (4000.0, 8000.0)
    haze: float = 0.0
    shadow_dark: tuple = (0.40, 0.65)
    psf_sigma: float = PSF_SIGMA
    noise_relative: float = 0.012
    noise_dn: float = 6
    gain: tuple = (0.85, 1.15)
    offset: tuple = (-150.0, 150.0)

    @classmethod
    def random(cls, seed: int) -> Style:
        """A domain-randomised style drawn from ``seed`` (its own stream, not the layout's)."""
        rng = np.random.default_rng([seed, 7331])
        u = lambda lo, hi, n=None: rng.uniform(lo, hi, n)  # noqa: E731
        soil_tint = u(0.8, 1.25, 4)
        farm_bright = float(u(0.8, 1.8))
        spectra = {}
        for name, base in SPECTRA.items():
            v = np.array(base, float)
            if name in _SOIL_CLASSES:
                v = v * soil_tint * u(0.85, 1.15, 4)
            elif name in _FARM_SOIL:
                v = v * soil_tint * farm_bright * u(0.9, 1.1, 4)
            elif name in _VEGETATION:
                v = v * u(0.8, 1.2, 4) * np.array([1, 1, 1, u(0.75, 1.25)])
            else:  # water, roofs
                v = v * u(0.85, 1.15, 4)
            spectra[name] = tuple(float(x) for x in np.clip(v, 50, 9000))
        short = float(u(6, 30))
        start = u(0.05, 1.0, 5)
        return cls(
            name="random",
            spectra=spectra,
            texture=float(np.exp(u(np.log(0.5), np.log(2.5)))),
            district_hm2=(float(u(4, 15)), float(u(20, 80))),
            parcel_rows_px=(short, short * float(u(1.3, 2.5))),
            parcel_cols_px=(short * float(u(1.0, 2.0)), short * float(u(2.5, 6.0))),
            start_states=tuple(float(x) for x in start / start.sum()),
            harvest=float(u(0.05, 0.3)),
            crop_tilled=float(u(0.05, 0.3)),
            stubble_tilled=float(u(0.1, 0.6)),
            sowing=float(u(0.0, 0.5)),
            crop_nir_after=tuple(sorted(float(x) for x in u(0.6, 1.25, 2))),
            clouds_per_cell=(0, int(rng.integers(2, 7))),
            cloud_radius_px=(float(u(20, 50)), float(u(80, 200))),
            cloud_level=(float(u(2500, 5000)), float(u(6000, 9000))),
            haze=float(u(0.0, 0.7)),
            shadow_dark=(float(u(0.2, 0.45)), float(u(0.5, 0.75))),
            psf_sigma=float(u(0.4, 1.2)),
            noise_relative=float(u(0.005, 0.03)),
            noise_dn=float(u(3, 20)),
            gain=(float(u(0.7, 0.95)), float(u(1.05, 1.3))),
            offset=(float(u(-300, -50)), float(u(50, 300))),
        )

    @classmethod
    def named(cls, name: str, seed: int) -> Style:
        """The style called ``name`` ("classic" or "random", drawn from ``seed``)."""
        if name == "classic":
            return cls()
        if name == "random":
            return cls.random(seed)
        raise InputError(
            f"scene style {name!r} is not known; expected one of {', '.join(STYLES)}",
            fix="pass --style classic or --style random",
        )

    def record(self) -> dict:
        """The style as plain JSON values (for scene.json)."""
        out = {k: getattr(self, k) for k in self.__dataclass_fields__ if k != "spectra"}
        out = {k: (list(v) if isinstance(v, tuple) else v) for k, v in out.items()}
        out["spectra"] = {k: [round(x, 1) for x in v] for k, v in self.spectra.items()}
        return out


@dataclass(frozen=True)
class SceneFiles:
    """The files of a generated scene.

    ``counts`` holds the truth tallies: ``{"BYD": {...}, "QTYPE": {...}, "KIND": {...},
    "confounders": {...}}``.
    """

    directory: Path
    before: Path
    after: Path
    zones: Path
    projects: Path
    sensitive: Path
    truth: Path
    info: Path
    dem: Path
    landuse: Path
    counties: Path
    counts: dict = field(default_factory=dict, compare=False)

    def paths(self) -> tuple[Path, ...]:
        return (
            self.before,
            self.after,
            self.zones,
            self.projects,
            self.sensitive,
            self.truth,
            self.info,
            self.dem,
            self.landuse,
            self.counties,
        )


OUTPUT_NAMES = (
    "before.tif",
    "after.tif",
    "zones.gpkg",
    "projects.gpkg",
    "sensitive.gpkg",
    "truth.gpkg",
    "scene.json",
    "dem.tif",
    "landuse.gpkg",
    "counties.gpkg",
)


# --------------------------------------------------------------------------- noise
_K1 = np.uint64(0x9E3779B97F4A7C15)
_K2 = np.uint64(0xD1B54A32D192ED03)
_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)


def _hash2(iy: np.ndarray, ix: np.ndarray, key: int) -> np.ndarray:
    """Deterministic lattice values in [-1, 1) for integer lattice coordinates (broadcast)."""
    with np.errstate(over="ignore"):
        h = (
            iy.astype(np.int64).astype(np.uint64) * _K1
            + ix.astype(np.int64).astype(np.uint64) * _K2
        )
        h = h + np.uint64(key)
        h ^= h >> np.uint64(31)
        h *= _M1
        h ^= h >> np.uint64(27)
        h *= _M2
        h ^= h >> np.uint64(31)
    return (h >> np.uint64(40)).astype(np.float32) * np.float32(2.0 / (1 << 24)) - np.float32(1.0)


def _fade(t: np.ndarray) -> np.ndarray:
    return t * t * t * (t * (t * 6.0 - 15.0) + 10.0)


def grid_noise(row0: int, col0: int, height: int, width: int, cell: float, key: int) -> np.ndarray:
    """Value noise in [-1, 1] on the pixel grid window (float32, shape (height, width)).

    A pure function of absolute pixel coordinates: any window gives the same values
    where windows overlap.  ``cell`` is the lattice spacing in pixels.
    """
    ys = (np.arange(row0, row0 + height, dtype=np.float64) + 0.5) / cell
    xs = (np.arange(col0, col0 + width, dtype=np.float64) + 0.5) / cell
    iy = np.floor(ys).astype(np.int64)
    ix = np.floor(xs).astype(np.int64)
    ty = _fade(ys - iy).astype(np.float32)
    tx = _fade(xs - ix).astype(np.float32)
    lat = _hash2(np.arange(iy[0], iy[-1] + 2)[:, None], np.arange(ix[0], ix[-1] + 2)[None, :], key)
    jx = ix - ix[0]
    jy = iy - iy[0]
    a = lat[:, jx] * (1 - tx) + lat[:, jx + 1] * tx
    return a[jy] * (1 - ty)[:, None] + a[jy + 1] * ty[:, None]


def point_noise(rows: np.ndarray, cols: np.ndarray, cell: float, key: int) -> np.ndarray:
    """The same noise as :func:`grid_noise` at arbitrary (integer pixel) coordinates."""
    ys = (np.asarray(rows, np.float64) + 0.5) / cell
    xs = (np.asarray(cols, np.float64) + 0.5) / cell
    iy = np.floor(ys).astype(np.int64)
    ix = np.floor(xs).astype(np.int64)
    ty = _fade(ys - iy).astype(np.float32)
    tx = _fade(xs - ix).astype(np.float32)
    top = _hash2(iy, ix, key) * (1 - tx) + _hash2(iy, ix + 1, key) * tx
    bottom = _hash2(iy + 1, ix, key) * (1 - tx) + _hash2(iy + 1, ix + 1, key) * tx
    return top * (1 - ty) + bottom * ty


def _key(seed: int, *parts: object) -> int:
    digest = hashlib.blake2b(repr((seed, *parts)).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little")


# --------------------------------------------------------------------------- shapes
def _blob(rng, cx, cy, area_px, amp=0.22, harmonics=5, elong=(1.0, 1.8), n=48) -> Polygon:
    """An irregular star-shaped polygon of about ``area_px`` pixels around (cx, cy)."""
    theta = np.linspace(0, 2 * np.pi, n, endpoint=False)
    r = np.ones(n)
    for k in range(2, harmonics + 2):
        r += amp / k**0.7 * rng.uniform(-1, 1) * np.sin(k * theta + rng.uniform(0, 2 * np.pi))
    r = np.clip(r, 0.35, None)
    e = rng.uniform(*elong)
    rot = rng.uniform(0, np.pi)
    x = r * np.cos(theta) * e
    y = r * np.sin(theta) / e
    xr = x * np.cos(rot) - y * np.sin(rot)
    yr = x * np.sin(rot) + y * np.cos(rot)
    poly = shapely.make_valid(Polygon(np.column_stack([xr, yr])))
    poly = max(getattr(poly, "geoms", [poly]), key=lambda g: g.area)
    f = math.sqrt(area_px / poly.area)
    return affinity.affine_transform(poly, [f, 0, 0, f, cx, cy])


def _lobes(rng, cx, cy, area_px) -> Polygon:
    """A lobate spoil-heap outline: overlapping discs fanning downslope, smoothed."""
    heading = rng.uniform(0, 2 * np.pi)
    parts = []
    x, y = 0.0, 0.0
    for i in range(rng.integers(3, 6)):
        rad = rng.uniform(0.6, 1.0) * (1.0 - 0.12 * i)
        parts.append(Point(x, y).buffer(rad, 16))
        h = heading + rng.normal(0, 0.6)
        x += 0.9 * rad * math.cos(h)
        y += 0.9 * rad * math.sin(h)
    poly = unary_union(parts).buffer(0.25).buffer(-0.2)
    poly = max(getattr(poly, "geoms", [poly]), key=lambda g: g.area)
    c = poly.centroid
    f = math.sqrt(area_px / poly.area)
    return affinity.affine_transform(poly, [f, 0, 0, f, cx - f * c.x, cy - f * c.y])


def _range_polygon(rng, cx, cy, area_px) -> Polygon:
    """A responsibility range as drawn in CAD: 7–11 straight edges, roughly convex."""
    n = int(rng.integers(7, 12))
    theta = np.sort(rng.uniform(0, 2 * np.pi, n))
    r = rng.uniform(0.75, 1.0, n)
    e = rng.uniform(1.0, 1.6)
    poly = Polygon(np.column_stack([r * np.cos(theta) * e, r * np.sin(theta) / e])).convex_hull
    poly = affinity.rotate(poly, rng.uniform(0, 180), origin=(0, 0))
    f = math.sqrt(area_px / poly.area)
    return affinity.affine_transform(poly, [f, 0, 0, f, cx, cy])


def _rect(cx: float, cy: float, w: float, h: float, angle_deg: float) -> Polygon:
    a = math.radians(angle_deg)
    ca, sa = math.cos(a), math.sin(a)
    dx = np.array([-w, w, w, -w]) / 2
    dy = np.array([-h, -h, h, h]) / 2
    return Polygon(np.column_stack([cx + dx * ca - dy * sa, cy + dx * sa + dy * ca]))


def _meander(rng, start, heading, length, step=15.0, wiggle=0.15) -> LineString:
    pts = [start]
    x, y = start
    for _ in range(max(2, int(length / step))):
        heading += rng.normal(0, wiggle)
        x += step * math.cos(heading)
        y += step * math.sin(heading)
        pts.append((x, y))
    return LineString(pts)


def footprint(geom, pad: int = 2) -> MultiPolygon:
    """The pixels a polygon paints (pixel centres inside), polygonised back (pixel space)."""
    if geom.is_empty:
        return MultiPolygon()
    minx, miny, maxx, maxy = geom.bounds
    c0, r0 = int(math.floor(minx)) - pad, int(math.floor(miny)) - pad
    w, h = int(math.ceil(maxx)) - c0 + pad, int(math.ceil(maxy)) - r0 + pad
    transform = Affine(1, 0, c0, 0, 1, r0)
    mask = rasterio.features.rasterize(
        [(geom, 1)], out_shape=(h, w), transform=transform, fill=0, dtype="uint8"
    )
    polys = [
        shape(g)
        for g, v in rasterio.features.shapes(mask, mask=mask.astype(bool), transform=transform)
        if v == 1
    ]
    merged = unary_union(polys) if polys else MultiPolygon()
    return _as_multi(merged)


def _as_multi(geom) -> MultiPolygon:
    if geom.is_empty:
        return MultiPolygon()
    if isinstance(geom, Polygon):
        return MultiPolygon([geom])
    if isinstance(geom, MultiPolygon):
        return geom
    return MultiPolygon(
        [g for g in getattr(geom, "geoms", []) if isinstance(g, Polygon) and not g.is_empty]
    )


class _Space:
    """Placed objects with a coarse bucket index, for 'is this spot free' questions."""

    def __init__(self, bucket: int = 256):
        self.bucket = bucket
        self.items: list[tuple[object, str]] = []
        self.grid: dict[tuple[int, int], list[int]] = defaultdict(list)

    def _cells(self, bounds, margin=0.0):
        b = self.bucket
        x0, y0, x1, y1 = bounds
        for i in range(int((x0 - margin) // b), int((x1 + margin) // b) + 1):
            for j in range(int((y0 - margin) // b), int((y1 + margin) // b) + 1):
                yield (i, j)

    def add(self, geom, tag: str) -> None:
        idx = len(self.items)
        self.items.append((geom, tag))
        for cell in self._cells(geom.bounds):
            self.grid[cell].append(idx)

    def distance(self, geom, tags: Iterable[str], limit: float, exclude=()) -> float:
        tags = set(tags)
        seen: set[int] = set()
        best = math.inf
        for cell in self._cells(geom.bounds, limit):
            for idx in self.grid.get(cell, ()):
                if idx in seen:
                    continue
                seen.add(idx)
                other, tag = self.items[idx]
                if tag in tags and not any(other is e for e in exclude):
                    best = min(best, geom.distance(other))
        return best

    def clear(self, geom, margin: float, tags: Iterable[str], exclude=()) -> bool:
        return self.distance(geom, tags, margin, exclude) >= margin


# --------------------------------------------------------------------------- plan
@dataclass
class _Disturbance:
    geom: MultiPolygon  # pixel-space footprint
    kind: str
    byd: str
    prnm: str = ""
    spectrum: np.ndarray | None = None
    roofs: list = field(default_factory=list)
    roof_spectra: list = field(default_factory=list)
    walls: object = None
    wall_dark: float = 0.65


@dataclass
class _Project:
    geom: Polygon
    prnm: str
    dpoz: str
    prtype: str
    seaa: str
    sadt: str
    idle: bool = False


@dataclass
class _Cloud:
    date: int
    cy: float
    cx: float
    a: float
    b: float
    angle: float
    key: int
    spectrum: np.ndarray
    dy: int
    dx: int
    dark: float
    opacity: float = 1.0

    def bbox(self, shadow=False):
        r = 1.7 * max(self.a, self.b)
        oy, ox = (self.dy, self.dx) if shadow else (0, 0)
        return (self.cx + ox - r, self.cy + oy - r, self.cx + ox + r, self.cy + oy + r)


class _Layer:
    """Polygons to rasterise as ids (index + 1, later wins) with per-object attributes."""

    def __init__(self, geoms: list, **attrs):
        self.geoms = list(geoms)
        self.bounds = (
            np.array([g.bounds for g in self.geoms], dtype=np.float64)
            if self.geoms
            else np.zeros((0, 4))
        )
        self.attrs = {k: np.asarray(v) for k, v in attrs.items()}

    def __getattr__(self, name):
        try:
            return self.__dict__["attrs"][name]
        except KeyError as err:
            raise AttributeError(name) from err

    def ids(self, r0: int, c0: int, h: int, w: int) -> np.ndarray | None:
        if not self.geoms:
            return None
        b = self.bounds
        sel = np.nonzero((b[:, 0] < c0 + w) & (b[:, 2] > c0) & (b[:, 1] < r0 + h) & (b[:, 3] > r0))[
            0
        ]
        if sel.size == 0:
            return None
        out = rasterio.features.rasterize(
            ((self.geoms[i], int(i) + 1) for i in sel),
            out_shape=(h, w),
            transform=Affine(1, 0, c0, 0, 1, r0),
            fill=0,
            dtype="int32",
        )
        return out if out.any() else None


_PLACES = [
    "多营",
    "对岩",
    "草坝",
    "晏场",
    "中里",
    "上里",
    "碧峰峡",
    "八步",
    "严桥",
    "望鱼",
    "孔坪",
    "大兴",
    "凤鸣",
    "北郊",
    "南郊",
    "合江",
    "观化",
    "沙坪",
    "陇东",
    "飞仙关",
    "思延",
    "禾丰",
    "红星",
    "车岭",
    "新店",
    "百丈",
    "黄泥",
    "金鸡关",
]
_RIVERS = ["周公河", "陇西河", "荥经河", "天全河", "青衣江", "名山河", "经河"]
_ESTATES = ["锦苑", "华府", "蓝湾", "壹号院", "公园里", "熙园", "雅居", "滨江苑"]
_TEMPLATES = {
    "公路工程": (
        [
            "G351雅安段改建工程",
            "G318线{p}段改扩建工程",
            "S210线{p}至{q}段改建工程",
            "雨城区{p}镇通村公路改建工程",
            "{p}至{q}快速通道工程",
        ],
        ["雅安市交通建设（集团）有限责任公司", "四川路桥建设集团股份有限公司", "雨城区交通运输局"],
        ["雅安市水利局", "四川省水利厅"],
    ),
    "房地产工程": (
        ["{p}·{e}住宅小区项目", "雅安{p}{e}商住项目"],
        ["雅安{p}置业有限公司", "四川{e}房地产开发有限公司"],
        ["雨城区水利局", "名山区水利局"],
    ),
    "水电枢纽工程": (
        ["{r}{p}水电站工程", "{p}水电站增效扩容改造工程"],
        ["四川{p}水电开发有限公司", "雅安{r}水电开发有限责任公司"],
        ["雅安市水利局", "四川省水利厅"],
    ),
    "露天金属矿": (
        ["{p}铅锌矿露天开采项目", "{p}铜矿露天开采工程"],
        ["雅安{p}矿业有限责任公司", "四川{p}矿业开发有限公司"],
        ["雅安市水利局"],
    ),
    "输变电工程": (
        ["雅安{p}110kV输变电工程", "{p}220kV变电站新建工程"],
        ["国网四川省电力公司雅安供电公司"],
        ["雅安市水利局"],
    ),
}


class _Planner:
    def __init__(self, seed: int, size: int, style: Style | None = None):
        self.seed = seed
        self.size = size
        self.style = style or Style()
        self.rng = np.random.default_rng(seed)
        self.space = _Space()
        self.disturbances: list[_Disturbance] = []
        self.projects: list[_Project] = []
        self.rivers: list = []
        self.reservoirs: list[tuple[Polygon, Polygon]] = []  # (before, after)
        self.reservoir_names: list[str] = []
        self.roads: list = []
        self.villages: list = []
        self.roofs: list = []
        self.roof_spectra: list = []
        self.existing: list = []
        self.parcels: list = []
        self.parcel_states: list[tuple[int, int, float]] = []  # before, after, angle
        # parcel centroids bucketed by CELL, so a cell only looks at its own parcels
        self.parcel_centroids: list[tuple[float, float]] = []
        self.parcel_grid: dict[tuple[int, int], list[int]] = defaultdict(list)
        self.clouds: list[_Cloud] = []
        self.sensitive: list[tuple[object, str, str]] = []
        self.names: set[str] = set()
        self.keys = {}
        self.edge = 24  # pixels kept free along the scene edges
        rng = self.rng
        self.forest_thr = float(rng.uniform(-0.15, 0.1))
        self.elev = [(1024, 300.0), (512, 200.0), (256, 100.0), (96, 30.0), (32, 8.0), (12, 2.0)]
        self.elev_relief = 600.0

    # ---------------------------------------------------------------- helpers
    def key(self, name: str) -> int:
        if name not in self.keys:
            self.keys[name] = _key(self.seed, name)
        return self.keys[name]

    def forest_weight_at(self, x: float, y: float) -> float:
        rows, cols = np.array([int(y)]), np.array([int(x)])
        e = sum(a * point_noise(rows, cols, c, self.key(f"elev{c}")) for c, a in self.elev)
        v = sum(
            a * point_noise(rows, cols, c, self.key(f"veg{c}"))
            for c, a in ((512, 1.0), (160, 0.5), (48, 0.25))
        )
        v = v + 0.35 * e / self.elev_relief
        return float(np.clip((v[0] - self.forest_thr) / 0.25 + 0.5, 0, 1))

    def inside_scene(self, geom, margin=None) -> bool:
        m = self.edge if margin is None else margin
        x0, y0, x1, y1 = geom.bounds
        return x0 >= m and y0 >= m and x1 <= self.size - m and y1 <= self.size - m

    def point_in(self, cell, margin=0):
        x0, y0, x1, y1 = cell
        return (
            self.rng.uniform(x0 + margin, x1 - margin),
            self.rng.uniform(y0 + margin, y1 - margin),
        )

    def hm2(self, lo, hi, log=False) -> float:
        if log:
            return float(math.exp(self.rng.uniform(math.log(lo), math.log(hi)))) * PX_PER_HM2
        return float(self.rng.uniform(lo, hi)) * PX_PER_HM2

    def name(self, prtype: str) -> tuple[str, str, str]:
        names, owners, approvers = _TEMPLATES[prtype]
        rng = self.rng
        for attempt in range(50):
            p, q = rng.choice(_PLACES, 2, replace=False)
            fill = dict(p=p, q=q, e=rng.choice(_ESTATES), r=rng.choice(_RIVERS))
            prnm = str(rng.choice(names)).format(**fill)
            if attempt > 20:
                prnm += f"（{attempt - 19}期）"
            if prnm not in self.names:
                break
        self.names.add(prnm)
        return prnm, str(rng.choice(owners)).format(**fill), str(rng.choice(approvers))

    def spectrum(self, name: str, spread=0.15) -> np.ndarray:
        base = np.array(self.style.spectra[name], np.float32)
        return (
            base
            * np.float32(self.rng.uniform(1 - spread, 1 + spread))
            * self.rng.uniform(0.95, 1.05, 4).astype(np.float32)
        )

    # ---------------------------------------------------------------- disturbance shapes
    def make_disturbance(self, kind: str, cx: float, cy: float, area: float, precheck=None):
        geom = self.make_shape(kind, cx, cy, area)
        if precheck is not None and not precheck(geom):
            return None
        fp = footprint(geom)
        if fp.is_empty or fp.area < 0.05 * PX_PER_HM2:
            return None
        return fp

    def make_shape(self, kind: str, cx: float, cy: float, area: float):
        rng = self.rng
        if kind == "spoil_heap":
            geom = _lobes(rng, cx, cy, area)
        elif kind in ("quarry", "borrow_pit"):
            geom = _blob(rng, cx, cy, area, amp=0.15, harmonics=4, elong=(1.0, 1.5))
        elif kind == "road_cut":
            width = rng.uniform(5, 10)
            length = area / width
            line = _meander(
                rng, (0.0, 0.0), rng.uniform(0, 2 * np.pi), length, step=12.0, wiggle=0.12
            )
            c = line.centroid
            geom = affinity.translate(line.buffer(width / 2, cap_style="flat"), cx - c.x, cy - c.y)
        elif kind == "building":
            geom = _blob(rng, cx, cy, area, amp=0.08, harmonics=3, elong=(1.0, 1.6), n=12)
        else:
            geom = _blob(rng, cx, cy, area, amp=0.3, harmonics=6, elong=(1.0, 2.0))
        return geom

    def disturbance_ok(self, fp, *, unapproved: bool, exclude=()) -> bool:
        sp = self.space
        if not self.inside_scene(fp):
            return False
        if not sp.clear(fp, 15, ("dist",)):
            return False
        if not sp.clear(fp, 15, ("water", "road", "village", "existing")):
            return False
        if not sp.clear(fp, 180, ("idle",), exclude=exclude):
            return False
        if unapproved and not sp.clear(fp, 40, ("range", "idle"), exclude=exclude):
            return False
        return True

    def finish_disturbance(self, fp, kind, byd, prnm="") -> _Disturbance:
        rng = self.rng
        d = _Disturbance(
            geom=fp, kind=kind, byd=byd, prnm=prnm, spectrum=self.spectrum(KIND_SPECTRUM[kind])
        )
        base = fp.simplify(0.75)
        if kind == "building":
            inner = base.buffer(-3, quad_segs=2)
            angle = rng.uniform(0, 180)
            for _ in range(40):
                if len(d.roofs) >= rng.integers(2, 7) or inner.is_empty:
                    break
                minx, miny, maxx, maxy = inner.bounds
                px, py = rng.uniform(minx, maxx), rng.uniform(miny, maxy)
                rw, rh = rng.uniform(8, 22), rng.uniform(6, 14)
                roof = _rect(px, py, rw, rh, angle + rng.normal(0, 3))
                if inner.contains(roof) and all(roof.distance(o) > 2 for o in d.roofs):
                    d.roofs.append(roof)
                    d.roof_spectra.append(
                        self.spectrum(
                            str(
                                rng.choice(
                                    ["roof_steel", "roof_blue", "roof_grey"], p=[0.4, 0.3, 0.3]
                                )
                            ),
                            0.1,
                        )
                    )
        if kind in ("quarry", "borrow_pit"):
            bench = rng.uniform(6, 10)
            wall = rng.uniform(1.5, 2.5)
            walls = []
            k = 1
            while True:
                inner = base.buffer(-k * bench, quad_segs=4)
                if inner.is_empty or inner.area < 30:
                    break
                walls.append(inner.difference(inner.buffer(-wall, quad_segs=4)))
                k += 1
            d.walls = unary_union(walls) if walls else None
            d.wall_dark = float(rng.uniform(0.55, 0.75))
        self.disturbances.append(d)
        self.space.add(fp, "dist")
        return d

    def place(self, kind, cell, area, *, unapproved, byd, tries=150, check=None, prnm=""):
        rng = self.rng
        for attempt in range(tries):
            cx, cy = self.point_in(cell, 10)
            if attempt < tries * 0.7:
                fw = self.forest_weight_at(cx, cy)
                if kind == "spoil_heap" and fw < 0.5:
                    continue
                if kind == "building" and fw > 0.5:
                    continue
            fp = self.make_disturbance(
                kind,
                cx,
                cy,
                area * rng.uniform(0.9, 1.1),
                precheck=lambda g: self.disturbance_ok(g, unapproved=unapproved),
            )
            if fp is None or not self.disturbance_ok(fp, unapproved=unapproved):
                continue
            if check is not None and not check(fp):
                continue
            return self.finish_disturbance(fp, kind, byd, prnm)
        log.debug("could not place a %s (%s) in cell %s", kind, byd, cell)
        return None

    def add_project(self, geom, prtype, idle=False) -> _Project:
        prnm, dpoz, seaa = self.name(prtype)
        day = dt.date(2023, 3, 1) + dt.timedelta(days=int(self.rng.integers(0, 1280)))
        p = _Project(
            geom=geom,
            prnm=prnm,
            dpoz=dpoz,
            prtype=prtype,
            seaa=seaa,
            sadt=day.isoformat(),
            idle=idle,
        )
        self.projects.append(p)
        self.space.add(geom, "idle" if idle else "range")
        return p

    # ---------------------------------------------------------------- background
    def plan_rivers(self):
        rng = self.rng
        for _ in range(1 + self.size // 8192):
            start = (rng.uniform(0.15, 0.85) * self.size, -40.0)
            line = _meander(
                rng, start, math.pi / 2 + rng.normal(0, 0.3), self.size + 200, step=20, wiggle=0.12
            )
            line = shapely.clip_by_rect(line, -60, -60, self.size + 60, self.size + 60)
            if line.is_empty:
                continue
            poly = line.buffer(rng.uniform(6, 14), quad_segs=4)
            self.rivers.append(poly)
            self.space.add(poly, "water")

    def plan_background_cell(self, cell):
        rng = self.rng
        for _ in range(60):  # reservoir
            cx, cy = self.point_in(cell, 120)
            before = _blob(rng, cx, cy, self.hm2(4, 12), amp=0.35, harmonics=6, elong=(1.2, 2.2))
            if not self.inside_scene(before, 40):
                continue
            after = before.buffer(-rng.uniform(5, 12))
            bay = _blob(
                rng,
                *before.exterior.interpolate(rng.uniform(), normalized=True).coords[0],
                self.hm2(0.5, 1.5),
            )
            after = after.difference(bay)
            after = max(getattr(after, "geoms", [after]), key=lambda g: g.area)
            self.reservoirs.append((before, after))
            self.reservoir_names.append(f"{rng.choice(_PLACES)}水库")
            self.space.add(before, "water")
            break
        x0, y0, x1, y1 = cell  # one road crossing the cell
        side = rng.integers(0, 2)
        start = (x0 - 20, rng.uniform(y0, y1)) if side == 0 else (rng.uniform(x0, x1), y0 - 20)
        heading = 0.0 if side == 0 else math.pi / 2
        line = _meander(
            rng, start, heading + rng.normal(0, 0.3), (x1 - x0) * 1.2, step=20, wiggle=0.08
        )
        line = shapely.clip_by_rect(line, -40, -40, self.size + 40, self.size + 40)
        if not line.is_empty:
            road = line.buffer(rng.uniform(1.8, 3.0), cap_style="flat", quad_segs=2)
            self.roads.append(road)
            self.space.add(road, "road")

    def plan_settlement_cell(self, cell):
        rng = self.rng
        for _ in range(int(rng.integers(1, 3))):
            for _ in range(60):
                cx, cy = self.point_in(cell, 60)
                ground = _blob(rng, cx, cy, self.hm2(2, 6), amp=0.3, harmonics=5)
                if not (
                    self.inside_scene(ground, 0)
                    and self.space.clear(ground, 20, ("dist", "range", "idle"))
                    and self.space.clear(ground, 5, ("water",))
                ):
                    continue
                self.villages.append(ground)
                self.space.add(ground, "village")
                inner = ground.buffer(-4)
                angle = rng.uniform(0, 90)
                placed = []
                minx, miny, maxx, maxy = inner.bounds
                for _ in range(400):
                    if len(placed) >= 40 or inner.is_empty:
                        break
                    px, py = rng.uniform(minx, maxx), rng.uniform(miny, maxy)
                    rw, rh = rng.uniform(6, 12), rng.uniform(5, 9)
                    roof = _rect(px, py, rw, rh, angle + rng.normal(0, 4))
                    if inner.contains(roof) and all(roof.distance(o) > 1.5 for o in placed):
                        placed.append(roof)
                        kind = rng.choice(
                            ["roof_grey", "roof_tile", "roof_steel", "roof_blue"],
                            p=[0.45, 0.35, 0.1, 0.1],
                        )
                        self.roof_spectra.append(self.spectrum(str(kind), 0.12))
                self.roofs.extend(placed)
                break
        for _ in range(60):  # an existing bare yard / old quarry: bright in both dates
            cx, cy = self.point_in(cell, 40)
            yard = _blob(rng, cx, cy, self.hm2(0.4, 1.5), amp=0.2)
            if self.inside_scene(yard, 0) and self.space.clear(
                yard, 40, ("dist", "range", "idle", "village", "water")
            ):
                self.existing.append(footprint(yard))
                self.space.add(yard, "existing")
                break

    def plan_farmland_cell(self, cell):
        rng = self.rng
        st = self.style
        for _ in range(int(rng.integers(2, 4))):
            for _ in range(40):
                cx, cy = self.point_in(cell, 80)
                district = _blob(
                    rng, cx, cy, self.hm2(*st.district_hm2), amp=0.3, harmonics=5, elong=(1.0, 1.8)
                )
                if self.space.clear(district, 5, ("water", "village", "existing", "farm")):
                    break
            else:
                continue
            self.space.add(district, "farm")
            angle = rng.uniform(0, 180)
            c = district.centroid
            rot = affinity.rotate(district, -angle, origin=c)
            minx, miny, maxx, maxy = rot.bounds
            corners = []
            y = miny
            while y < maxy:
                hgt = rng.uniform(*st.parcel_rows_px)
                x = minx
                while x < maxx:
                    wid = rng.uniform(*st.parcel_cols_px)
                    corners.append((x + 0.6, y + 0.6, x + wid - 0.6, y + hgt - 0.6))
                    x += wid
                y += hgt
            corners = np.array(corners)
            boxes = shapely.intersection(shapely.box(*corners.T), rot)
            boxes = boxes[~shapely.is_empty(boxes) & (shapely.area(boxes) >= 60)]
            a = math.radians(angle)
            ca, sa = math.cos(a), math.sin(a)

            def back(xy, ca=ca, sa=sa, c=c):
                dx, dy = xy[:, 0] - c.x, xy[:, 1] - c.y
                return np.column_stack([c.x + dx * ca - dy * sa, c.y + dx * sa + dy * ca])

            boxes = shapely.transform(boxes, back)
            for b in boxes:
                if not self.space.clear(b, 8, ("dist",)):
                    continue
                b = _as_multi(b)
                if b.is_empty:
                    continue
                before = int(rng.choice(5, p=list(st.start_states)))
                after = before
                u = rng.uniform()
                if before == CROP and u < st.harvest:
                    after = STUBBLE
                elif before == CROP and u < st.harvest + st.crop_tilled:
                    after = TILLED
                elif before == STUBBLE and u < st.stubble_tilled:
                    after = TILLED
                elif before in (TILLED, BARE) and u < st.sowing:
                    after = CROP
                if after != before and not self.space.clear(b, 20, ("dist", "range", "idle")):
                    after = before
                pc = b.centroid
                self.parcel_grid[(int(pc.x // CELL), int(pc.y // CELL))].append(len(self.parcels))
                self.parcel_centroids.append((pc.x, pc.y))
                self.parcels.append(b)
                self.parcel_states.append(
                    (before, after, angle, float(rng.uniform(0.88, 1.12)), float(rng.uniform(4, 7)))
                )
        self.ensure_parcel_change(cell)

    def ensure_parcel_change(self, cell):
        """Make sure the cell shows at least one harvest and one tillage parcel."""
        x0, y0, x1, y1 = cell
        candidates = sorted(
            i
            for bx in range(int(x0 // CELL) - 1, int(x1 // CELL) + 2)
            for by in range(int(y0 // CELL) - 1, int(y1 // CELL) + 2)
            for i in self.parcel_grid.get((bx, by), ())
        )
        for target, source in ((STUBBLE, CROP), (TILLED, STUBBLE)):
            idx = [
                i
                for i in candidates
                if x0 <= self.parcel_centroids[i][0] < x1 and y0 <= self.parcel_centroids[i][1] < y1
            ]
            if any(
                self.parcel_states[i][1] == target and self.parcel_states[i][0] != target
                for i in idx
            ):
                continue
            for i in idx:
                st = self.parcel_states[i]
                if (
                    st[0] == source
                    and st[1] == st[0]
                    and self.space.clear(self.parcels[i], 20, ("dist", "range", "idle"))
                ):
                    self.parcel_states[i] = (source, target, *st[2:])
                    break

    def plan_clouds_cell(self, cell):
        rng = self.rng
        st = self.style
        want = int(rng.integers(*st.clouds_per_cell))
        placed = 0
        for _ in range(200):
            if placed >= want:
                break
            date = int(rng.integers(0, 2))
            zen, az = SUN[date]
            a = rng.uniform(*st.cloud_radius_px)
            cloud = _Cloud(
                date=date,
                cy=0,
                cx=0,
                a=a,
                b=a * rng.uniform(0.5, 1.0),
                angle=rng.uniform(0, np.pi),
                key=_key(self.seed, "cloud", len(self.clouds), placed),
                spectrum=np.zeros(4, np.float32),
                dy=0,
                dx=0,
                dark=float(rng.uniform(*st.shadow_dark)),
            )
            if st.haze > 0 and rng.uniform() < st.haze:  # thin haze: wide, translucent
                cloud.opacity = float(rng.uniform(0.25, 0.6))
                cloud.a *= float(rng.uniform(2, 3))
                cloud.b *= float(rng.uniform(2, 3))
                cloud.dark *= cloud.opacity
            cloud.cx, cloud.cy = self.point_in(cell, 0)
            level = rng.uniform(*st.cloud_level)
            cloud.spectrum = (
                level * np.array([1.04, 1.0, 0.98, 0.97]) * rng.uniform(0.97, 1.03, 4)
            ).astype(np.float32)
            dist = rng.uniform(75, 225)  # 150–450 m: low cloud, sun at ~45–55° zenith
            away = math.radians(az + 180)
            cloud.dx = int(round(dist * math.sin(away)))
            cloud.dy = int(round(-dist * math.cos(away)))
            poly = cloud_polygon(cloud)
            if poly.is_empty:
                continue
            shadow = affinity.translate(poly, cloud.dx, cloud.dy)
            both = unary_union([poly, shadow])
            if not (
                self.space.clear(both, 25, ("dist",)) and self.space.clear(both, 20, ("idle",))
            ):
                continue
            bx = both.bounds
            if bx[2] < 0 or bx[0] > self.size or bx[3] < 0 or bx[1] > self.size:
                continue
            cloud.polygon, cloud.shadow = poly, shadow
            self.clouds.append(cloud)
            self.space.add(both, "cloud")
            placed += 1

    # ---------------------------------------------------------------- site recipes
    def site_idle(self, cell):
        """A range with no disturbance; a similar clearing 140–240 m outside it (建设地点变更)."""
        rng = self.rng
        for _ in range(120):
            cx, cy = self.point_in(cell, 60)
            rng_poly = _range_polygon(rng, cx, cy, self.hm2(1.5, 4.5))
            sp = self.space
            if not (
                self.inside_scene(rng_poly, 40)
                and sp.clear(rng_poly, 180, ("dist",))
                and sp.clear(rng_poly, 60, ("range", "idle"))
                and sp.clear(rng_poly, 10, ("water", "road"))
            ):
                continue
            rr = math.sqrt(rng_poly.area / math.pi)
            for _ in range(40):
                area = self.hm2(0.25, 1.2)
                h = rng.uniform(0, 2 * np.pi)
                dist = rr + rng.uniform(70, 115) + math.sqrt(area / math.pi)
                fp = self.make_disturbance(
                    "clearing",
                    cx + dist * math.cos(h),
                    cy + dist * math.sin(h),
                    area,
                    precheck=lambda g, r=rng_poly, sp=sp: (
                        70 <= g.distance(r) <= 120 and sp.clear(g, 180, ("dist", "idle"))
                    ),
                )
                if fp is None:
                    continue
                d_edge = fp.distance(rng_poly)
                if not (72 <= d_edge <= 118):
                    continue
                if not (
                    self.inside_scene(fp)
                    and sp.clear(fp, 15, ("dist",))
                    and sp.clear(fp, 15, ("water", "road", "village", "existing"))
                    and sp.clear(fp, 180, ("idle",))
                    and sp.clear(fp, 60, ("range",))
                    and sp.clear(fp, 180, ("dist",))
                ):
                    continue
                prtype = str(rng.choice(["水电枢纽工程", "输变电工程", "房地产工程", "公路工程"]))
                project = self.add_project(rng_poly, prtype, idle=True)
                return self.finish_disturbance(fp, "clearing", SITE_CHANGE, project.prnm)
        log.debug("no idle-range site in cell %s", cell)
        return None

    def site_inside(self, cell, recipe):
        """A range holding 1–3 disturbances well inside it (合规)."""
        rng = self.rng
        kinds, prtype = {
            "mine": (["quarry", "spoil_heap"], "露天金属矿"),
            "housing": (["building", "clearing"], "房地产工程"),
            "road": (["road_cut", "spoil_heap"], "公路工程"),
            "hydro": (["clearing", "spoil_heap", "clearing"], "水电枢纽工程"),
        }[recipe]
        areas = {
            "quarry": (1.0, 3.5),
            "spoil_heap": (0.15, 1.2),
            "building": (0.2, 0.9),
            "clearing": (0.15, 1.5),
            "road_cut": (0.2, 0.5),
        }
        for _ in range(80):
            cx, cy = self.point_in(cell, 80)
            fps = []
            for i, kind in enumerate(kinds):
                area = self.hm2(*areas[kind])
                if i == 0:
                    px, py = cx, cy
                else:
                    h = rng.uniform(0, 2 * np.pi)
                    dd = (
                        math.sqrt(area / math.pi)
                        + math.sqrt(fps[0][1].area / math.pi)
                        + rng.uniform(20, 50)
                    )
                    px, py = cx + dd * math.cos(h), cy + dd * math.sin(h)
                fp = self.make_disturbance(
                    kind, px, py, area, precheck=lambda g: self.disturbance_ok(g, unapproved=False)
                )
                if fp is None or not self.disturbance_ok(fp, unapproved=False):
                    break
                if any(fp.distance(o) < 15 for _, o in fps):
                    break
                fps.append((kind, fp))
            if len(fps) != len(kinds):
                continue
            hull = unary_union([fp for _, fp in fps]).convex_hull.buffer(
                rng.uniform(12, 30), quad_segs=2
            )
            extra = _range_polygon(
                rng, hull.centroid.x, hull.centroid.y, hull.area * rng.uniform(0.6, 1.2)
            )
            range_poly = unary_union([hull, extra]).convex_hull.simplify(1.5)
            if not (
                self.inside_scene(range_poly, 30)
                and self.space.clear(range_poly, 30, ("range", "idle"))
                and self.space.clear(range_poly, 180, ("idle",))
                and self.space.clear(range_poly, 15, ("dist",))
                and self.space.clear(range_poly, 5, ("water",))
            ):
                continue
            project = self.add_project(range_poly, prtype)
            return [self.finish_disturbance(fp, kind, OK, project.prnm) for kind, fp in fps]
        log.debug("no %s site in cell %s", recipe, cell)
        return None

    def site_overrun(self, cell):
        """A range with one disturbance partly (30–70 %, ≥ 0.15 hm²) outside it (超出)."""
        rng = self.rng
        for _ in range(150):
            cx, cy = self.point_in(cell, 80)
            range_poly = _range_polygon(rng, cx, cy, self.hm2(2.0, 6.0))
            if not (
                self.inside_scene(range_poly, 40)
                and self.space.clear(range_poly, 30, ("range", "idle", "dist"))
                and self.space.clear(range_poly, 180, ("idle",))
                and self.space.clear(range_poly, 5, ("water",))
            ):
                continue
            kind = str(rng.choice(["clearing", "clearing", "spoil_heap", "building"]))
            q = range_poly.exterior.interpolate(rng.uniform(), normalized=True)
            c = range_poly.centroid
            nx, ny = q.x - c.x, q.y - c.y
            norm = math.hypot(nx, ny) or 1.0
            for _ in range(10):
                area = self.hm2(0.5, 1.6)
                t = rng.uniform(-0.1, 0.5) * math.sqrt(area / math.pi)
                fp = self.make_disturbance(kind, q.x + nx / norm * t, q.y + ny / norm * t, area)
                if fp is None:
                    continue
                outside = fp.difference(range_poly).area
                inside = fp.area - outside
                if not (
                    outside >= 0.15 * PX_PER_HM2
                    and 0.3 <= outside / fp.area <= 0.7
                    and inside >= 0.12 * PX_PER_HM2
                ):
                    continue
                if not self.disturbance_ok(fp, unapproved=False):
                    continue
                if not self.space.clear(fp, 60, ("range", "idle")):  # only its own range touches it
                    continue
                prtype = str(rng.choice(["公路工程", "房地产工程", "水电枢纽工程"]))
                project = self.add_project(range_poly, prtype)
                out = [self.finish_disturbance(fp, kind, OVERRUN, project.prnm)]
                if rng.uniform() < 0.7:  # a second, compliant patch inside the same range
                    inner = range_poly.buffer(-15)
                    for _ in range(20):
                        minx, miny, maxx, maxy = inner.bounds
                        k2 = str(rng.choice(["clearing", "spoil_heap"]))
                        fp2 = self.make_disturbance(
                            k2,
                            rng.uniform(minx, maxx),
                            rng.uniform(miny, maxy),
                            self.hm2(0.08, 0.5),
                        )
                        if (
                            fp2 is not None
                            and inner.contains(fp2)
                            and self.disturbance_ok(fp2, unapproved=False)
                        ):
                            out.append(self.finish_disturbance(fp2, k2, OK, project.prnm))
                            break
                return out
        log.debug("no overrun site in cell %s", cell)
        return None

    def plan_sites_cell(self, cell, index):
        rng = self.rng
        self.site_idle(cell)
        self.site_overrun(cell)
        self.site_inside(cell, "mine" if index % 2 == 0 else str(rng.choice(["mine", "hydro"])))
        self.site_inside(cell, str(rng.choice(["housing", "road", "hydro"])))
        heaps = []
        for _ in range(3):
            heaps.append(
                self.place(
                    "spoil_heap",
                    cell,
                    self.hm2(0.1, 1.5, log=True),
                    unapproved=True,
                    byd=UNAPPROVED_SPOIL,
                )
            )
        for lo, hi in ((0.06, 0.3), (0.3, 2.5)):
            self.place(
                "clearing", cell, self.hm2(lo, hi, log=True), unapproved=True, byd=UNAPPROVED
            )
        for _ in range(2):
            self.place("building", cell, self.hm2(0.1, 1.0), unapproved=True, byd=UNAPPROVED)
        self.place("road_cut", cell, self.hm2(0.3, 0.8), unapproved=True, byd=UNAPPROVED)
        if rng.uniform() < 0.9:
            self.place("borrow_pit", cell, self.hm2(0.2, 1.5), unapproved=True, byd=UNAPPROVED)
        heap = next((h for h in heaps if h is not None), None)
        if heap is not None:  # a sensitive area around an unapproved spoil heap: red
            c = heap.geom.centroid
            r = math.sqrt(self.hm2(15, 40) / math.pi)
            blob = _blob(
                rng,
                c.x + rng.uniform(-r, r) / 3,
                c.y + rng.uniform(-r, r) / 3,
                math.pi * r * r,
                amp=0.3,
            )
            area = unary_union([blob, heap.geom.simplify(1).buffer(20, quad_segs=4)]).intersection(
                box(-100, -100, self.size + 100, self.size + 100)
            )
            if rng.uniform() < 0.7:
                self.sensitive.append(
                    (area, f"雅安市生态保护红线（{rng.choice(_PLACES)}片区）", "生态保护红线")
                )
            else:
                self.sensitive.append((area, "大熊猫国家公园（雅安片区）", "国家公园"))

    def plan(self) -> None:
        n = max(1, round(self.size / CELL))
        step = self.size / n
        cells = [
            (i * step, j * step, (i + 1) * step, (j + 1) * step) for j in range(n) for i in range(n)
        ]
        self.plan_rivers()
        for cell in cells:
            self.plan_background_cell(cell)
        for k, cell in enumerate(cells):
            self.plan_sites_cell(cell, k)
        for (before, _), name in zip(self.reservoirs, self.reservoir_names, strict=False):
            if self.rng.uniform() < 0.5:
                self.sensitive.append(
                    (before.buffer(40), f"{name}饮用水水源保护区", "饮用水水源保护区")
                )
        for cell in cells:
            self.plan_settlement_cell(cell)
        for cell in cells:
            self.plan_farmland_cell(cell)
        for cell in cells:
            self.plan_clouds_cell(cell)


def cloud_alpha(cloud: _Cloud, r0: int, c0: int, h: int, w: int) -> np.ndarray:
    """Cloud opacity (0–1) on a window: an elliptical core with soft, noisy edges."""
    ys = np.arange(r0, r0 + h, dtype=np.float32)[:, None] + 0.5 - cloud.cy
    xs = np.arange(c0, c0 + w, dtype=np.float32)[None, :] + 0.5 - cloud.cx
    ca, sa = math.cos(cloud.angle), math.sin(cloud.angle)
    u = (xs * ca + ys * sa) / cloud.a
    v = (-xs * sa + ys * ca) / cloud.b
    d = np.sqrt(u * u + v * v)
    n = 0.6 * grid_noise(r0, c0, h, w, cloud.a / 2.5, cloud.key) + 0.4 * grid_noise(
        r0, c0, h, w, cloud.a / 7, cloud.key + 1
    )
    t = np.clip((1.0 - d + 0.3 * n) / 0.45, 0, 1)
    alpha = (t * t * (3 - 2 * t)).astype(np.float32)
    if cloud.opacity != 1.0:
        alpha *= np.float32(cloud.opacity)
    return alpha


def cloud_polygon(cloud: _Cloud, threshold: float = 0.02):
    """The pixels where the cloud's opacity exceeds ``threshold``, as a polygon (pixel space)."""
    x0, y0, x1, y1 = (int(math.floor(v)) for v in cloud.bbox())
    alpha = cloud_alpha(cloud, y0, x0, y1 - y0, x1 - x0)
    mask = (alpha > threshold).astype("uint8")
    polys = [
        shape(g)
        for g, v in rasterio.features.shapes(
            mask, mask=mask.astype(bool), transform=Affine(1, 0, x0, 0, 1, y0)
        )
        if v == 1
    ]
    return unary_union(polys) if polys else Polygon()


# --------------------------------------------------------------------------- render
class _Renderer:
    """Renders any window of both dates from a finished plan (noise-free landscape)."""

    def __init__(self, plan: _Planner):
        self.p = plan
        rng = plan.rng
        S = {k: np.array(v, np.float32) for k, v in plan.style.spectra.items()}
        jitter = lambda: rng.uniform(0.93, 1.07, 4).astype(np.float32)  # noqa: E731
        self.forest = S["forest"] * jitter()
        self.grass = S["grass"] * jitter()
        self.shrub = S["shrub"] * jitter()
        # Phenology from mid-October to mid-November.
        vis = np.float32(rng.uniform(1.02, 1.08))
        self.ph_forest = np.array([1.01, 1.01, 1.02, rng.uniform(0.93, 0.97)], np.float32)
        self.ph_grass = np.array(
            [vis, vis, vis * rng.uniform(1.05, 1.15), rng.uniform(0.75, 0.90)], np.float32
        )
        self.ph_crop = np.array(
            [vis, vis, vis * rng.uniform(1.02, 1.10), rng.uniform(*plan.style.crop_nir_after)],
            np.float32,
        )
        parcel = np.stack([S[s] for s in PARCEL_STATES])
        parcel_after = parcel.copy()
        parcel_after[CROP] *= self.ph_crop
        parcel_after[FALLOW] *= self.ph_grass
        self.parcel_spec = (parcel, parcel_after)
        self.layers = {
            "parcels": _Layer(
                plan.parcels,
                state=[s[:2] for s in plan.parcel_states] or np.zeros((0, 2)),
                angle=[s[2] for s in plan.parcel_states],
                gain=[s[3] for s in plan.parcel_states],
                period=[s[4] for s in plan.parcel_states],
            ),
            "village": _Layer(
                plan.villages, spec=[S["village_ground"] * jitter() for _ in plan.villages]
            ),
            "roofs": _Layer(plan.roofs, spec=plan.roof_spectra),
            "roads": _Layer(plan.roads, spec=[S["road"] * jitter() for _ in plan.roads]),
            "existing": _Layer(
                plan.existing, spec=[S["existing"] * jitter() for _ in plan.existing]
            ),
            "water_b": _Layer(plan.rivers + [b for b, _ in plan.reservoirs]),
            "water_a": _Layer(plan.rivers + [a for _, a in plan.reservoirs]),
            "mud": _Layer([_as_multi(b.difference(a)) for b, a in plan.reservoirs]),
            "dist": _Layer(
                [d.geom for d in plan.disturbances],
                kind=[KIND_CODE[d.kind] for d in plan.disturbances],
                spec=[d.spectrum for d in plan.disturbances],
            ),
            "new_roofs": _Layer(
                [r for d in plan.disturbances for r in d.roofs],
                spec=[s for d in plan.disturbances for s in d.roof_spectra],
            ),
            "walls": _Layer(
                [
                    d.walls
                    for d in plan.disturbances
                    if d.walls is not None and not d.walls.is_empty
                ],
                dark=[
                    d.wall_dark
                    for d in plan.disturbances
                    if d.walls is not None and not d.walls.is_empty
                ],
            ),
        }
        nwater = len(plan.rivers) + len(plan.reservoirs)
        self.water_spec = [
            S["water"]
            * np.array([1, rng.uniform(1, 1.3), rng.uniform(1, 1.5), rng.uniform(1, 2)], np.float32)
            for _ in range(nwater)
        ]
        self.water_spec = np.array(self.water_spec, np.float32).reshape(-1, 4)
        self.mud_spec = S["mud"] * jitter()

    def fields(self, r0, c0, h, w):
        p = self.p
        k = p.key
        e = sum(a * grid_noise(r0 - 1, c0 - 1, h + 2, w + 2, c, k(f"elev{c}")) for c, a in p.elev)
        dzdx = (e[1:-1, 2:] - e[1:-1, :-2]) / (2 * PIXEL_M)
        dzdn = (e[:-2, 1:-1] - e[2:, 1:-1]) / (2 * PIXEL_M)
        ec = e[1:-1, 1:-1]
        v = sum(
            a * grid_noise(r0, c0, h, w, c, k(f"veg{c}"))
            for c, a in ((512, 1.0), (160, 0.5), (48, 0.25))
        )
        v += 0.35 * ec / p.elev_relief
        fw = np.clip((v - p.forest_thr) / 0.25 + 0.5, 0, 1)
        tex = {c: grid_noise(r0, c0, h, w, c, k(f"tex{c}")) for c in (2, 3, 6, 12, 40)}
        if p.style.texture != 1.0:
            g = np.float32(p.style.texture)
            tex = {c: g * t for c, t in tex.items()}
        return dzdx, dzdn, fw, tex

    def render(self, r0: int, c0: int, h: int, w: int) -> tuple[np.ndarray, np.ndarray]:
        """Noise-free landscape of both dates on a window: two float32 (4, h, w) arrays."""
        dzdx, dzdn, fw, tex = self.fields(r0, c0, h, w)
        out = [np.empty((4, h, w), np.float32), np.empty((4, h, w), np.float32)]
        canopy = 1 + 0.10 * tex[3] + 0.06 * tex[12]
        meadow = 1 + 0.05 * tex[6]
        shrubby = np.clip(0.5 + tex[40], 0, 1)
        for b in range(4):
            f = self.forest[b] * canopy
            g = (self.grass[b] * (1 - shrubby) + self.shrub[b] * shrubby) * meadow
            out[0][b] = fw * f + (1 - fw) * g
            out[1][b] = fw * f * self.ph_forest[b] + (1 - fw) * g * self.ph_grass[b]
        del canopy, meadow, shrubby
        flat = np.zeros((h, w), np.float32)
        L = self.layers

        ids = L["parcels"].ids(r0, c0, h, w)
        if ids is not None:
            rr, cc = np.nonzero(ids)
            k = ids[rr, cc] - 1
            flat[rr, cc] = 1
            t = (1 + 0.04 * tex[6][rr, cc] + 0.03 * tex[2][rr, cc]) * L["parcels"].gain[k].astype(
                np.float32
            )
            ang = np.radians(L["parcels"].angle[k])
            u = (cc + c0) * np.cos(ang) + (rr + r0) * np.sin(ang)
            rows = (1 + 0.06 * np.sin(2 * np.pi * u / L["parcels"].period[k])).astype(np.float32)
            for date in (0, 1):
                st = L["parcels"].state[k, date]
                tt = np.where(st == TILLED, t * rows, t)
                out[date][:, rr, cc] = (self.parcel_spec[date][st] * tt[:, None]).T
        for name, flatness, texture in (
            ("village", 1, tex[6]),
            ("roofs", 1, tex[2]),
            ("roads", 1, tex[2]),
            ("existing", 0.5, tex[3]),
        ):
            ids = L[name].ids(r0, c0, h, w)
            if ids is None:
                continue
            rr, cc = np.nonzero(ids)
            spec = L[name].spec[ids[rr, cc] - 1].astype(np.float32)
            val = (spec * (1 + 0.05 * texture[rr, cc])[:, None]).T
            flat[rr, cc] = flatness
            out[0][:, rr, cc] = val
            out[1][:, rr, cc] = val
        ids = L["mud"].ids(r0, c0, h, w)
        if ids is not None:
            rr, cc = np.nonzero(ids)
            flat[rr, cc] = 1
            out[1][:, rr, cc] = (
                self.mud_spec * (1 + 0.08 * tex[6][rr, cc] + 0.04 * tex[2][rr, cc])[:, None]
            ).T
        for date, name in ((0, "water_b"), (1, "water_a")):
            ids = L[name].ids(r0, c0, h, w)
            if ids is None:
                continue
            rr, cc = np.nonzero(ids)
            k = ids[rr, cc] - 1
            if date == 0:
                flat[rr, cc] = 1
            out[date][:, rr, cc] = (
                self.water_spec[k] * (1 + 0.04 * tex[40][rr, cc] + 0.02 * tex[3][rr, cc])[:, None]
            ).T
        self.paint_disturbances(out[1], r0, c0, h, w, tex, flat, fw)

        for date in (0, 1):
            zen, az = (math.radians(v) for v in SUN[date])
            sx, sy, sz = math.sin(zen) * math.sin(az), math.sin(zen) * math.cos(az), math.cos(zen)
            cosi = (-dzdx * sx - dzdn * sy + sz) / np.sqrt(dzdx * dzdx + dzdn * dzdn + 1)
            illum = 0.25 + 0.75 * np.clip(cosi / sz, 0, 1.8)
            illum = 1 + (illum - 1) * (1 - 0.8 * flat)
            out[date] *= illum.astype(np.float32)
            self.paint_clouds(out[date], date, r0, c0, h, w)
        return out[0], out[1]

    def paint_disturbances(self, img, r0, c0, h, w, tex, flat, fw):
        L = self.layers
        ids = L["dist"].ids(r0, c0, h, w)
        if ids is None:
            return
        rr, cc = np.nonzero(ids)
        k = ids[rr, cc] - 1
        kind = L["dist"].kind[k]
        spec = L["dist"].spec[k].astype(np.float32)
        t2, t3, t6, t12 = tex[2][rr, cc], tex[3][rr, cc], tex[6][rr, cc], tex[12][rr, cc]
        mod = np.ones(rr.size, np.float32)
        code = KIND_CODE
        sel = kind == code["clearing"]
        mod[sel] = 1 + 0.08 * t6[sel] + 0.05 * t2[sel]
        sel = kind == code["spoil_heap"]
        mod[sel] = 1 + 0.10 * t6[sel] + 0.10 * t3[sel] + 0.08 * t2[sel]
        sel = (kind == code["quarry"]) | (kind == code["borrow_pit"])
        mod[sel] = 1 + 0.06 * t12[sel] + 0.06 * t3[sel]
        sel = kind == code["road_cut"]
        mod[sel] = 1 + 0.06 * t6[sel] + 0.04 * t2[sel]
        sel = kind == code["building"]
        mod[sel] = 1 + 0.04 * t6[sel] + 0.03 * t2[sel]
        val = spec * mod[:, None]
        # Remnant vegetation left on clearings (patches where the texture field is high).
        remnant = (kind == code["clearing"]) & (tex[12][rr, cc] > 0.55)
        if remnant.any():
            veg = (self.grass * self.ph_grass)[None, :]
            val[remnant] = 0.5 * val[remnant] + 0.5 * veg
        img[:, rr, cc] = val.T
        flat[rr, cc] = 0
        ids = L["new_roofs"].ids(r0, c0, h, w)
        if ids is not None:
            rr, cc = np.nonzero(ids)
            img[:, rr, cc] = (
                L["new_roofs"].spec[ids[rr, cc] - 1] * (1 + 0.03 * tex[2][rr, cc])[:, None]
            ).T
        ids = L["walls"].ids(r0, c0, h, w)
        if ids is not None:
            rr, cc = np.nonzero(ids)
            img[:, rr, cc] *= L["walls"].dark[ids[rr, cc] - 1].astype(np.float32)

    def paint_clouds(self, img, date, r0, c0, h, w):
        for cloud in self.p.clouds:
            if cloud.date != date:
                continue
            for shadow in (True, False):
                x0, y0, x1, y1 = cloud.bbox(shadow)
                a0, b0 = max(int(math.floor(y0)), r0), max(int(math.floor(x0)), c0)
                a1, b1 = min(int(math.ceil(y1)), r0 + h), min(int(math.ceil(x1)), c0 + w)
                if a1 <= a0 or b1 <= b0:
                    continue
                sub = img[:, a0 - r0 : a1 - r0, b0 - c0 : b1 - c0]
                if shadow:
                    alpha = cloud_alpha(cloud, a0 - cloud.dy, b0 - cloud.dx, a1 - a0, b1 - b0)
                    sub *= 1 - cloud.dark * alpha
                else:
                    alpha = cloud_alpha(cloud, a0, b0, a1 - a0, b1 - b0)
                    tex = 1 + 0.06 * grid_noise(a0, b0, a1 - a0, b1 - b0, 9, cloud.key + 2)
                    sub *= 1 - alpha
                    sub += alpha * tex * cloud.spectrum[:, None, None]


def _psf_kernel(shift: float, sigma: float = PSF_SIGMA) -> np.ndarray:
    """Correlation weights for a Gaussian PSF centred ``shift`` pixels away.

    Applied with :func:`scipy.ndimage.correlate1d`, ``out[i] = L(i - shift)``: the
    content moves by ``+shift`` pixels.
    """
    radius = HALO - 1
    k = np.arange(-radius, radius + 1, dtype=np.float64)
    g = np.exp(-0.5 * ((k + shift) / sigma) ** 2)
    return (g / g.sum()).astype(np.float32)


# --------------------------------------------------------------------------- writing
def _geo_origin(seed: int, size: int) -> tuple[float, float]:
    """Upper-left corner in UTM 48N near 102.95E 30.02N (Ya'an), moved a little by the seed."""
    rng = np.random.default_rng([seed, 4543])
    to_utm = Transformer.from_crs("EPSG:4326", SCENE_CRS, always_xy=True)
    x, y = to_utm.transform(102.95, 30.02)
    x += rng.uniform(-3000, 3000)
    y += rng.uniform(-3000, 3000)
    return round(x / PIXEL_M) * PIXEL_M, round(y / PIXEL_M) * PIXEL_M


def _to_world(geom, x0: float, y0: float):
    return affinity.affine_transform(geom, [PIXEL_M, 0, 0, -PIXEL_M, x0, y0])


def _frame(
    records: list[dict], geoms: list, x0: float, y0: float, crs: str, columns: list[str]
) -> gpd.GeoDataFrame:
    world = [_as_multi(_to_world(g, x0, y0)) for g in geoms]
    frame = gpd.GeoDataFrame(records, columns=columns, geometry=gpd.GeoSeries(world, crs=SCENE_CRS))
    if crs in (AREA_CRS, EXCHANGE_CRS):
        frame["geometry"] = frame.geometry.segmentize(50.0)
    return frame.to_crs(crs)


def _write_gpkg(frame: gpd.GeoDataFrame, path: Path, layer: str) -> None:
    frame = frame.copy()
    frame["geometry"] = [_as_multi(g) for g in frame.geometry]
    frame.to_file(path, layer=layer, driver="GPKG", engine="pyogrio")


def _scene_zones(rng, size: int) -> list[tuple[str, object]]:
    """2–3 zones covering the scene (and a margin): Z1 west, Z3 east, sometimes Z4 south-east."""
    m = 300.0
    ys = np.linspace(-m, size + m, 40)
    xb = size * rng.uniform(0.35, 0.65) + sum(
        size * rng.uniform(0.02, 0.06) * np.sin(2 * np.pi * ys / size * f + rng.uniform(0, 6.3))
        for f in (0.6, 1.7, 3.1)
    )
    xb += rng.normal(0, 3, ys.size).cumsum()
    west = Polygon([(-m, -m), *zip(xb, ys, strict=False), (-m, size + m)]).buffer(0)
    full = box(-m, -m, size + m, size + m)
    east = full.difference(west)
    zones = [("Z1", west)]
    if rng.uniform() < 0.5:
        xs = np.linspace(-m, size + m, 40)
        yb = size * rng.uniform(0.55, 0.8) + size * 0.04 * np.sin(
            2 * np.pi * xs / size * 1.3 + rng.uniform(0, 6.3)
        )
        south = Polygon([(-m, size + m), *zip(xs, yb, strict=False), (size + m, size + m)]).buffer(
            0
        )
        zones += [("Z3", east.difference(south)), ("Z4", east.intersection(south))]
    else:
        zones.append(("Z3", east))
    return [(c, g) for c, g in zones if not g.is_empty]


def _check_output(out_dir: Path, overwrite: bool) -> None:
    if out_dir.exists() and not out_dir.is_dir():
        raise OutputExistsError(
            "exists and is not a directory", path=out_dir, fix="give a directory path with -o"
        )
    if out_dir.is_dir() and not overwrite:
        clash = [n for n in OUTPUT_NAMES if (out_dir / n).exists()]
        if clash:
            raise OutputExistsError(
                f"already holds a scene ({', '.join(clash)})",
                path=out_dir,
                fix="choose another directory or pass --overwrite",
            )


def generate_scene(
    out_dir,
    seed: int = 0,
    size: int = 1024,
    *,
    overwrite: bool = False,
    progress: Progress | None = None,
    style: str | Style = "classic",
) -> SceneFiles:
    """Write a seeded synthetic two-date scene with truth into ``out_dir``.

    Parameters
    ----------
    out_dir : path
        Directory to write into (created if missing).  Files are written to a
        temporary directory next to it and moved in at the end.
    seed : int
        Seed of everything: layout, spectra draws, shift, gains, noise.  The same
        (seed, size) gives byte-identical rasters.
    size : int
        Width and height in pixels (2 m), at least 256.  Every 1024×1024 cell holds
        every BYD class; smaller scenes hold what fits.
    overwrite : bool
        Replace scene files already in ``out_dir``; otherwise raise.
    progress : callable, optional
        ``progress(done, total, stage)`` with stage ``"plan"``, ``"render"`` or ``"vectors"``.
    style : str or Style
        ``"classic"`` (the default look), ``"random"`` (a domain-randomised look drawn
        from ``seed``: see :class:`Style`), or a :class:`Style`.

    Returns
    -------
    SceneFiles
        Paths of ``before.tif``, ``after.tif`` (4-band uint16 reflectance ×10000,
        EPSG:32648), ``zones.gpkg`` (EPSG:4543), ``projects.gpkg``, ``sensitive.gpkg``,
        ``truth.gpkg`` (EPSG:4490; layers ``truth_patches`` and ``confounders``),
        ``scene.json`` (the sensor parameters: shift, gains, offsets), and for
        ``swc-rs erosion`` ``dem.tif`` (10 m), ``landuse.gpkg`` (地类, layer ``DLTB``) and
        ``counties.gpkg`` (see :func:`_write_terrain`), with truth counts.

    Raises
    ------
    InputError
        ``seed`` negative, ``size`` below 256 or an unknown ``style``.
    OutputExistsError
        ``out_dir`` already holds scene files and ``overwrite`` is false.
    """
    if not isinstance(size, int | np.integer) or size < MIN_SIZE:
        raise InputError(
            f"scene size {size!r} is too small; expected an integer of at least {MIN_SIZE} pixels",
            fix="pass --size 256 or more",
        )
    if not isinstance(seed, int | np.integer) or seed < 0:
        raise InputError(
            f"seed {seed!r} is not a non-negative integer",
            fix="pass --seed 0 or another whole number",
        )
    if not isinstance(style, Style):
        style = Style.named(str(style), int(seed))
    out_dir = Path(out_dir)
    _check_output(out_dir, overwrite)
    out_dir.mkdir(parents=True, exist_ok=True)
    report = progress or (lambda done, total, stage: None)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.tmp-", dir=out_dir.parent))
    try:
        counts = _generate_into(tmp, int(seed), int(size), report, style)
        for name in OUTPUT_NAMES:
            os.replace(tmp / name, out_dir / name)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    files = SceneFiles(*(out_dir / n for n in ("",) + OUTPUT_NAMES), counts=counts)
    return files


def _generate_into(tmp: Path, seed: int, size: int, report: Progress, style: Style) -> dict:
    nstrips = math.ceil(size / STRIP)
    total = 2 + nstrips
    report(0, total, "plan")
    plan = _Planner(seed, size, style)
    plan.plan()
    renderer = _Renderer(plan)
    report(1, total, "plan")
    rng = np.random.default_rng([seed, 1])
    angle = rng.uniform(0, 2 * np.pi)
    magnitude = rng.uniform(0.3, MAX_SHIFT_PX)
    shift = (magnitude * math.sin(angle), magnitude * math.cos(angle))  # rows, cols
    gain = rng.uniform(*style.gain, 4).astype(np.float32)
    offset = rng.uniform(*style.offset, 4).astype(np.float32)
    x0, y0 = _geo_origin(seed, size)
    transform = Affine(PIXEL_M, 0, x0, 0, -PIXEL_M, y0)
    profile = dict(
        driver="GTiff",
        width=size,
        height=size,
        count=4,
        dtype="uint16",
        crs=SCENE_CRS,
        transform=transform,
        tiled=True,
        blockxsize=256,
        blockysize=256,
        compress="deflate",
        predictor=2,
        bigtiff="IF_SAFER",
    )
    sigma = style.psf_sigma
    kernels = [
        (_psf_kernel(0.0, sigma), _psf_kernel(0.0, sigma)),
        (_psf_kernel(shift[0], sigma), _psf_kernel(shift[1], sigma)),
    ]
    paths = [tmp / "before.tif", tmp / "after.tif"]
    with (
        rasterio.open(paths[0], "w", **profile) as dst0,
        rasterio.open(paths[1], "w", **profile) as dst1,
    ):
        for date, dst in enumerate((dst0, dst1)):
            dst.descriptions = BANDS
            dst.update_tags(
                TIFFTAG_DATETIME=TIFF_DATETIMES[date],
                ACQUISITION_DATE=DATES[date].isoformat(),
                GENERATOR=f"swc-rs {__version__} sample seed={seed} size={size}"
                + ("" if style.name == "classic" else f" style={style.name}"),
                SYNTHETIC="yes",
            )
        for s in range(nstrips):
            r0 = s * STRIP
            h = min(STRIP, size - r0)
            pair = renderer.render(r0 - HALO, -HALO, h + 2 * HALO, size + 2 * HALO)
            for date, (dst, img) in enumerate(zip((dst0, dst1), pair, strict=False)):
                krow, kcol = kernels[date]
                noise_rng = np.random.default_rng([seed, 99, date, s])
                block = np.empty((4, h, size), np.float32)
                for b in range(4):
                    band = ndimage.correlate1d(img[b], kcol, axis=1, mode="nearest")
                    band = ndimage.correlate1d(band, krow, axis=0, mode="nearest")[HALO : HALO + h]
                    block[b] = band[:, HALO : HALO + size]
                block *= 1 + style.noise_relative * noise_rng.standard_normal(
                    block.shape, dtype=np.float32
                )
                block += style.noise_dn * noise_rng.standard_normal(block.shape, dtype=np.float32)
                if date == 1:
                    block *= gain[:, None, None]
                    block += offset[:, None, None]
                np.rint(block, out=block)
                np.clip(block, 1, 65535, out=block)
                dst.write(block.astype(np.uint16), window=Window(0, r0, size, h))
            report(1 + s + 1, total, "render")
    counts = _write_vectors(tmp, plan, seed, size, x0, y0)
    _write_terrain(tmp, plan, seed, size, x0, y0)
    info = {
        "generator": f"swc-rs {__version__} sample",
        "synthetic": True,
        "seed": seed,
        "size": size,
        "crs": SCENE_CRS,
        "pixel_size_m": PIXEL_M,
        "transform": list(transform)[:6],
        "dates": [d.isoformat() for d in DATES],
        "sun_zenith_azimuth_deg": [list(s) for s in SUN],
        "after_shift_px": {
            "rows": round(shift[0], 4),
            "cols": round(shift[1], 4),
            "meaning": "after[r, c] shows the ground at before[r - rows, c - cols]",
        },
        "after_gain": [round(float(g), 4) for g in gain],
        "after_offset": [round(float(o), 2) for o in offset],
        "psf_sigma_px": style.psf_sigma,
        "noise": {"relative": style.noise_relative, "additive_dn": style.noise_dn},
        "style": style.name,
        "counts": counts,
    }
    if style.name != "classic":
        info["style_parameters"] = style.record()
    (tmp / "scene.json").write_text(
        json.dumps(info, ensure_ascii=False, indent=2), encoding="utf-8"
    )
    report(total, total, "vectors")
    return counts


def _write_vectors(tmp: Path, plan: _Planner, seed: int, size: int, x0: float, y0: float) -> dict:
    rng = np.random.default_rng([seed, 2])
    zones = _scene_zones(rng, size)
    zone_frame = _frame(
        [{"ZONE_CODE": c, "ZONE_NAME": ZONE_NAMES[c]} for c, _ in zones],
        [g for _, g in zones],
        x0,
        y0,
        AREA_CRS,
        ["ZONE_CODE", "ZONE_NAME"],
    )
    _write_gpkg(zone_frame, tmp / "zones.gpkg", "zones")

    proj_cols = ["PRNM", "DPOZ", "PRTYPE", "SEAA", "SADT", "DAREA", "NOTE"]
    recs = [
        {
            "PRNM": p.prnm,
            "DPOZ": p.dpoz,
            "PRTYPE": p.prtype,
            "SEAA": p.seaa,
            "SADT": p.sadt,
            "DAREA": 0.0,
            "NOTE": "合成样例数据（synthetic sample）",
        }
        for p in plan.projects
    ]
    proj = _frame(recs, [p.geom for p in plan.projects], x0, y0, AREA_CRS, proj_cols)
    proj["DAREA"] = (proj.geometry.area / 10_000).round(4)
    ranges_4543 = unary_union(list(proj.geometry)) if len(proj) else Polygon()
    _write_gpkg(proj.to_crs(EXCHANGE_CRS), tmp / "projects.gpkg", "projects")

    sens = _frame(
        [{"NAME": n, "KIND": k} for _, n, k in plan.sensitive],
        [g for g, _, _ in plan.sensitive],
        x0,
        y0,
        EXCHANGE_CRS,
        ["NAME", "KIND"],
    )
    _write_gpkg(sens, tmp / "sensitive.gpkg", "sensitive_areas")

    cols = ["QTYPE", "BYD", "PRNM", "QAREA", "EAREA", "KIND", "X_ZONE"]
    recs = []
    for d in plan.disturbances:
        overlaps = [(d.geom.intersection(g).area, c) for c, g in zones]
        recs.append(
            {
                "QTYPE": QTYPE_OF_KIND[d.kind],
                "BYD": d.byd,
                "PRNM": d.prnm,
                "QAREA": 0.0,
                "EAREA": 0.0,
                "KIND": d.kind,
                "X_ZONE": max(overlaps)[1],
            }
        )
    truth = _frame(recs, [d.geom for d in plan.disturbances], x0, y0, AREA_CRS, cols)
    truth["QAREA"] = (truth.geometry.area / 10_000).round(4)
    over = truth["BYD"] == OVERRUN
    if over.any():
        truth.loc[over, "EAREA"] = [
            round(g.difference(ranges_4543).area / 10_000, 4) for g in truth.geometry[over]
        ]
    _write_gpkg(truth.to_crs(EXCHANGE_CRS), tmp / "truth.gpkg", "truth_patches")

    conf_recs, conf_geoms = [], []
    for parcel, (before, after, *_rest) in zip(plan.parcels, plan.parcel_states, strict=False):
        if before != after:
            conf_recs.append(
                {
                    "KIND": {TILLED: "tillage", CROP: "sowing"}.get(after, "harvest"),
                    "DATE": DATES[1].isoformat(),
                }
            )
            conf_geoms.append(parcel)
    for before, after in plan.reservoirs:
        conf_recs.append({"KIND": "drawdown", "DATE": DATES[1].isoformat()})
        conf_geoms.append(before.difference(after))
    for cloud in plan.clouds:
        for kind, geom in (("cloud", cloud.polygon), ("cloud_shadow", cloud.shadow)):
            clipped = geom.intersection(box(0, 0, size, size))
            if not clipped.is_empty:
                conf_recs.append({"KIND": kind, "DATE": DATES[cloud.date].isoformat()})
                conf_geoms.append(clipped)
    conf = _frame(conf_recs, conf_geoms, x0, y0, EXCHANGE_CRS, ["KIND", "DATE"])
    _write_gpkg(conf, tmp / "truth.gpkg", "confounders")

    problems = check_verdicts(truth, proj)
    if problems:
        log.warning("synthetic truth does not follow the compliance rules: %s", "; ".join(problems))
    return {
        "BYD": dict(Counter(truth["BYD"])),
        "QTYPE": dict(Counter(truth["QTYPE"])),
        "KIND": dict(Counter(truth["KIND"])),
        "confounders": dict(Counter(conf["KIND"])),
        "projects": len(proj),
        "sensitive_areas": len(sens),
    }


# --------------------------------------------------------------------------- terrain
DEM_M = 10.0  # DEM cell (m): 5 × 5 image pixels
DEM_BASE_M = 1000.0  # elevation the relief noise is added to (m)
# 地类 (GB/T 21010-2017) of the sample's land-use layer, as a 三调 map made before the
# first date would show it: new disturbances are not in it.
LANDUSE_DLBM = {
    "forest": ("0301", "乔木林地"),
    "shrub": ("0305", "灌木林地"),
    "grass": ("0404", "其他草地"),
    "parcels": ("0103", "旱地"),
    "village": ("0702", "农村宅基地"),
    "existing": ("0602", "采矿用地"),
    "roads": ("1003", "公路用地"),
    "rivers": ("1101", "河流水面"),
    "reservoirs": ("1103", "水库水面"),
}
COUNTIES = (("511802", "雨城区"), ("511803", "名山区"))


def _block_mean(a: np.ndarray, k: int) -> np.ndarray:
    h, w = a.shape
    return a.reshape(h // k, k, w // k, k).mean(axis=(1, 3))


def _write_terrain(tmp: Path, plan: _Planner, seed: int, size: int, x0: float, y0: float) -> None:
    """dem.tif, landuse.gpkg and counties.gpkg: the terrain the imagery was shaded with.

    The DEM is the 5 × 5 block mean of the renderer's elevation field (the one its
    hill shading uses) on a 10 m grid with the image's upper-left corner, plus
    DEM_BASE_M; it covers the scene (the last row and column may reach past it).
    Land use: forest where the renderer's forest weight is ≥ 0.5, shrub or grass
    elsewhere by its shrub texture, then farmland parcels, villages, old yards, roads,
    rivers and reservoirs (before date) burnt on top, polygonised to 地类 (DLBM).
    Counties: two, split by a wavy line, clipped to the scene.
    """
    k = int(round(DEM_M / PIXEL_M))
    n = math.ceil(size / k)
    dem = np.empty((n, n), np.float32)
    background = np.empty((n, n), np.uint8)  # 1 forest, 2 shrub, 3 grass
    rows_per = max(1, 1024 // k)
    for d0 in range(0, n, rows_per):
        dh = min(rows_per, n - d0)
        r0, h, w = d0 * k, dh * k, n * k
        e = sum(a * grid_noise(r0, 0, h, w, c, plan.key(f"elev{c}")) for c, a in plan.elev)
        v = sum(a * grid_noise(r0, 0, h, w, c, plan.key(f"veg{c}")) for c, a in ((512, 1.0), (160, 0.5), (48, 0.25)))
        v += 0.35 * e / plan.elev_relief
        fw = np.clip((v - plan.forest_thr) / 0.25 + 0.5, 0, 1)
        shrubby = np.clip(0.5 + plan.style.texture * grid_noise(r0, 0, h, w, 40, plan.key("tex40")), 0, 1)
        dem[d0:d0 + dh] = DEM_BASE_M + _block_mean(e, k)
        fwb, shb = _block_mean(fw, k), _block_mean(shrubby, k)
        background[d0:d0 + dh] = np.where(fwb >= 0.5, 1, np.where(shb >= 0.5, 2, 3))
    transform = Affine(DEM_M, 0, x0, 0, -DEM_M, y0)
    profile = dict(driver="GTiff", width=n, height=n, count=1, dtype="float32", crs=SCENE_CRS, transform=transform,
                   nodata=-9999.0, tiled=True, blockxsize=256, blockysize=256, compress="deflate", predictor=3)
    with rasterio.open(tmp / "dem.tif", "w", **profile) as dst:
        dst.write(dem, 1)
        dst.update_tags(GENERATOR=f"swc-rs {__version__} sample seed={seed} size={size}", SYNTHETIC="yes",
                        UNITS="metre")
    names = list(LANDUSE_DLBM)
    codes = np.array([0] + [int(LANDUSE_DLBM[n_][0]) for n_ in names], np.int32)
    cls = background.astype(np.int32)  # index into names + 1: forest, shrub, grass
    to_dem = [1 / k, 0, 0, 1 / k, 0, 0]  # image pixel coordinates → DEM pixel coordinates
    layers = (("parcels", plan.parcels), ("village", plan.villages), ("existing", plan.existing),
              ("roads", plan.roads), ("rivers", plan.rivers), ("reservoirs", [b for b, _ in plan.reservoirs]))
    for name, geoms in layers:
        shapes = [(affinity.affine_transform(g, to_dem), names.index(name) + 1) for g in geoms if not g.is_empty]
        if shapes:
            rasterio.features.rasterize(shapes, out=cls, transform=Affine.identity())
    code_raster = codes[cls]
    polys, dlbm = [], []
    for geom, value in rasterio.features.shapes(code_raster, transform=Affine.identity()):
        polys.append(shape(geom))
        dlbm.append(int(value))
    scene = box(0, 0, size / k, size / k)
    label = {int(c): (c_, m) for c_, m in LANDUSE_DLBM.values() for c in [int(c_)]}
    records, geoms = [], []
    for poly, value in zip(polys, dlbm, strict=False):
        poly = poly.intersection(scene)
        if not poly.is_empty:
            records.append({"DLBM": label[value][0], "DLMC": label[value][1]})
            geoms.append(affinity.scale(poly, k, k, origin=(0, 0)))
    land = _frame(records, geoms, x0, y0, AREA_CRS, ["DLBM", "DLMC"])
    _write_gpkg(land, tmp / "landuse.gpkg", "DLTB")
    rng = np.random.default_rng([seed, 3])
    ys = np.linspace(-1, size + 1, 40)
    xb = size * rng.uniform(0.4, 0.6) + size * 0.08 * np.sin(2 * np.pi * ys / size * 0.9 + rng.uniform(0, 6.3))
    full = box(0, 0, size, size)
    west = Polygon([(-1, -1), *zip(xb, ys, strict=False), (-1, size + 1)]).buffer(0).intersection(full)
    counties = _frame([{"XZQDM": c, "XZQMC": m} for c, m in COUNTIES], [west, full.difference(west)], x0, y0,
                      EXCHANGE_CRS, ["XZQDM", "XZQMC"])
    _write_gpkg(counties, tmp / "counties.gpkg", "counties")


def check_verdicts(
    truth: gpd.GeoDataFrame,
    projects: gpd.GeoDataFrame,
    *,
    tolerance_hm2=0.04,
    tolerance_fraction=0.05,
    radius_m=300.0,
) -> list[str]:
    """Re-derive each truth patch's BYD from geometry with the DOMAIN.md rules.

    Returns the disagreements as readable strings (empty when the truth is consistent).
    Besides the verdict it checks that every decision is far from its threshold:
    outside slivers of compliant patches, overrun areas and the site-change distance.
    """
    truth = truth.to_crs(AREA_CRS)
    projects = projects.to_crs(AREA_CRS)
    ranges = unary_union(list(projects.geometry)) if len(projects) else Polygon()
    problems = []
    meets = [not ranges.is_empty and g.intersects(ranges) for g in truth.geometry]
    idle = [p for p in projects.geometry if not any(p.intersects(g) for g in truth.geometry)]
    for i, row in enumerate(truth.itertuples()):
        g = row.geometry
        outside = g.difference(ranges).area / 10_000 if meets[i] else g.area / 10_000
        if meets[i]:
            beyond = outside >= tolerance_hm2 and outside >= tolerance_fraction * g.area / 10_000
            expected = OVERRUN if beyond else OK
            if expected == OVERRUN and (outside < 0.1 or outside < 0.2 * g.area / 10_000):
                problems.append(f"patch {i}: overrun {outside:.4f} hm² too close to the tolerance")
            if expected == OK and outside > 0.001:
                problems.append(f"patch {i}: compliant patch has {outside:.4f} hm² outside")
        else:
            near = [p.distance(g) for p in idle if p.distance(g) <= radius_m]
            if near:
                expected = SITE_CHANGE
                if not 100 <= min(near) <= 280:
                    problems.append(
                        f"patch {i}: site-change distance {min(near):.0f} m outside 100–280 m"
                    )
            else:
                expected = UNAPPROVED_SPOIL if row.QTYPE == SPOIL else UNAPPROVED
        if expected != row.BYD:
            problems.append(
                f"patch {i} ({row.KIND}): truth says {row.BYD}, the rules say {expected}"
            )
    return problems


# --------------------------------------------------------------------------- city zones
#: Generator points (lon, lat) per zone; their Voronoi cells, clipped to an outline of
#: Ya'an's extent, make the illustrative zones.  Not the bureau's official outlines.
_CITY_SEEDS = {
    "Z1": [
        (102.25, 30.65),
        (102.65, 30.75),
        (102.55, 30.35),
        (102.45, 30.20),
        (102.85, 30.50),
        (102.50, 29.95),
    ],
    "Z2": [(102.15, 29.20), (102.55, 29.05), (102.80, 29.25), (102.30, 29.50), (102.10, 29.45)],
    "Z3": [(103.22, 30.10), (103.32, 30.00), (103.05, 30.05)],
    "Z4": [(102.75, 29.80), (102.95, 29.65), (102.60, 29.72)],
    "Z5": [(103.22, 29.75), (103.15, 30.38), (103.32, 29.88)],
}
_CITY_OUTLINE = [
    (102.55, 30.93),
    (102.85, 30.80),
    (103.00, 30.55),
    (103.20, 30.40),
    (103.38, 30.15),
    (103.30, 29.85),
    (103.02, 29.68),
    (102.90, 29.45),
    (102.80, 29.15),
    (102.70, 28.95),
    (102.45, 28.86),
    (102.15, 28.95),
    (101.96, 29.20),
    (102.22, 29.55),
    (102.40, 29.85),
    (102.28, 30.10),
    (102.40, 30.42),
    (102.45, 30.75),
]


def illustrative_city_zones() -> gpd.GeoDataFrame:
    """The five SWC zones of Ya'an as rough illustrative outlines (EPSG:4543).

    Made from Voronoi cells of hand-placed points clipped to a rough outline of the
    city's extent (101°56′–103°23′E, 28°51′–30°56′N).  Fields ZONE_CODE, ZONE_NAME,
    NOTE ('示意性范围 ...').  These are *not* the bureau's official outlines.
    """
    outline = Polygon(_CITY_OUTLINE)
    points, codes = [], []
    for code, pts in _CITY_SEEDS.items():
        for p in pts:
            points.append(Point(p))
            codes.append(code)
    cells = shapely.voronoi_polygons(shapely.MultiPoint(points), extend_to=outline.buffer(1))
    parts = defaultdict(list)
    for cell in cells.geoms:
        idx = next(i for i, p in enumerate(points) if cell.contains(p))
        parts[codes[idx]].append(cell.intersection(outline))
    rows = [
        {"ZONE_CODE": c, "ZONE_NAME": ZONE_NAMES[c], "NOTE": ILLUSTRATIVE_NOTE} for c in ZONE_NAMES
    ]
    geoms = [_as_multi(unary_union(parts[c])) for c in ZONE_NAMES]
    frame = gpd.GeoDataFrame(rows, geometry=gpd.GeoSeries(geoms, crs=EXCHANGE_CRS).segmentize(0.01))
    return frame.to_crs(AREA_CRS)


def write_illustrative_city_zones(path, *, overwrite: bool = False) -> Path:
    """Write :func:`illustrative_city_zones` to ``path`` (layer ``zones``), atomically."""
    path = Path(path)
    if path.exists() and not overwrite:
        raise OutputExistsError("already exists", path=path, fix="pass overwrite=True or remove it")
    tmp = path.with_name(f".tmp-{path.name}")
    tmp.unlink(missing_ok=True)
    _write_gpkg(illustrative_city_zones(), tmp, "zones")
    os.replace(tmp, path)
    return path
