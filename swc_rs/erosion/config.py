"""The ``[erosion]`` configuration: every number of the CSLE run, with its source.

Loaded from the ``[erosion]`` table of a TOML file (``pipelines/erosion.toml`` holds
every key at its default, commented). Precedence: these defaults < the file < flags.
Unknown keys are an error; the tables (land-use codes, B, E, T, measures, per-zone R
and K) are merged key by key over the defaults, so a bureau can change one row.

Units: R in MJ·mm/(hm²·h·a), K in t·hm²·h/(hm²·MJ·mm), A in t/(hm²·a); moduli and
grade thresholds in t/(km²·a) (= 100 × t/(hm²·a)); lengths in metres, slopes in degrees.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from swc_rs.config import _read_toml, unknown_keys_error
from swc_rs.errors import ConfigError

#: Land-use classes the factor tables are keyed by (index in rasters = position + 1).
CLASSES = ("paddy", "dryland", "orchard", "forest", "shrub", "grass", "construction", "water", "bare", "rock")
CLASS_NAMES = {
    "paddy": "水田", "dryland": "旱地", "orchard": "园地", "forest": "林地", "shrub": "灌木林地",
    "grass": "草地", "construction": "建设用地", "water": "水域", "bare": "裸土地", "rock": "裸岩石砾地",
}

# 地类 of GB/T 21010-2017 (第三次全国国土调查工作分类): four-digit codes first, then the
# two-digit first-level class. A raster's integer 101 is looked up as "0101", 3 as "03".
_LANDUSE_CODES = {
    "01": "dryland", "0101": "paddy", "0102": "dryland", "0103": "dryland",
    "02": "orchard", "0201": "orchard", "0202": "orchard", "0203": "orchard", "0204": "orchard",
    "03": "forest", "0301": "forest", "0302": "forest", "0303": "forest", "0304": "forest",
    "0305": "shrub", "0306": "shrub", "0307": "forest",
    "04": "grass", "0401": "grass", "0402": "grass", "0403": "grass", "0404": "grass",
    "05": "construction", "06": "construction", "07": "construction", "08": "construction",
    "09": "construction", "10": "construction",
    "11": "water", "1101": "water", "1102": "water", "1103": "water", "1104": "water", "1105": "water",
    "1106": "grass", "1107": "water", "1108": "grass", "1109": "construction", "1110": "water",
    "12": "bare", "1201": "construction", "1202": "construction", "1203": "grass", "1204": "bare",
    "1205": "bare", "1206": "bare", "1207": "rock",
}

# B by fractional vegetation cover class (< 20, 20–40, 40–60, 60–80, ≥ 80 %), the
# values quoted from the national dynamic-monitoring provisions (区域水土流失动态监测
# 技术规定, 2018) in the CSLE literature; orchards take the shrub row.
_B_COVER = {
    "forest": [0.10, 0.08, 0.06, 0.02, 0.004],
    "shrub": [0.40, 0.22, 0.14, 0.085, 0.040],
    "orchard": [0.40, 0.22, 0.14, 0.085, 0.040],
    "grass": [0.45, 0.24, 0.15, 0.09, 0.043],
}
# B of the classes whose cover is not graded: cropland 1 (CSLE puts the crop's effect
# in T), bare soil 1, built-up 0.01, water and bare rock 0 (no soil to lose).
_B_FIXED = {"paddy": 1.0, "dryland": 1.0, "construction": 0.01, "water": 0.0, "bare": 1.0, "rock": 0.0}
# E of land use without a mapped measure: paddies are bunded level fields (treated as
# level terraces, E 0.01); everything else 1 (no engineering measure).
_E_LANDUSE = {name: 1.0 for name in CLASSES} | {"paddy": 0.01}
# T: 1 everywhere until the bureau enters the tillage factor of its crop-rotation zone
# for cropland (the national table is by rotation zone); 1 over-states cropland loss.
_T_LANDUSE = {name: 1.0 for name in CLASSES}
# E of the engineering-measure layer's types (values quoted from the same provisions).
_E_MEASURES = {"水平梯田": 0.084, "坡式梯田": 0.414, "隔坡梯田": 0.347, "水平阶": 0.151, "鱼鳞坑": 0.249}


@dataclass(frozen=True)
class ErosionConfig:
    """Everything `swc-rs erosion` can be told.

    window_size : int
        Core side of a processing window (px); the halo below is added around it.
        Memory follows (window + 2 halo)², not the DEM: 2048 at 10 m measured a peak RSS of
        ~2.4 GB per process (imports and reused freed blocks included) on a 151 Mpx DEM.
    max_slope_length_m : float
        Cap of the slope length λ (m). Flow accumulation is taken on tiles whose halo is
        at least twice the cap, which makes the capped λ of each core cell the same as on
        the whole DEM (any path leaving the halo already contributes ≥ the cap).
    s_breaks_deg, s_coefficients
        S = a·sin θ + b per slope class: McCool et al. (1987) 10.8 sin θ + 0.03 below 5°,
        16.8 sin θ − 0.50 from 5° to 10°, and Liu et al. (1994) 21.91 sin θ − 0.96 from 10°.
    m_breaks_deg, m_values
        Slope-length exponent m by slope class: 0.2 (θ ≤ 1°), 0.3 (≤ 3°), 0.4 (≤ 5°),
        0.5 above (Wischmeier & Smith 1978, as used by the CSLE).
    l_formula : str
        ``"segment"`` (default): a cell's L is its share of the slope, (λ_out^(m+1) −
        λ_in^(m+1)) / ((λ_out − λ_in)·22.13^m) (Foster & Wischmeier 1974; Desmet &
        Govers 1996), as the CSLE's LS tools compute it. ``"cumulative"``: (λ_out/22.13)^m,
        the L of the whole slope above the cell's lower edge (USLE tables, GRASS
        r.watershed); about (1 + m)× smaller inside a long slope.
    work_crs : str
        CRS a DEM in geographic coordinates is warped to (metres are needed for slope).
    ndvi_soil, ndvi_veg : float
        NDVI of bare soil and of full cover in the dimidiate-pixel model
        FVC = (NDVI − soil)/(veg − soil), clipped to 0–1 (Gutman & Ignatov 1998).
    fvc_breaks : list of float
        Fractional-cover class edges (fractions) of the B table: 0.2, 0.4, 0.6, 0.8.
    r_value, k_value : float
        City-wide R and K when no raster is given and a zone has no value of its own
        (0: none; then every zone needs one).
    r_zones, k_zones : dict
        R or K per ZONE_CODE.
    r_range, k_range : list of float
        Physical range; a value outside is an input error (R ≤ 30 000 MJ·mm/(hm²·h·a)
        covers the world's wettest regions; K ≤ 0.1 t·hm²·h/(hm²·MJ·mm)).
    tolerable_t_km2 : float
        Tolerable soil loss (容许土壤流失量): 500 t/(km²·a) in the south-west rocky
        mountain region (SL 190-2007).
    grade_breaks_t_km2 : list of float
        Upper bounds of 微度 (the tolerance), 轻度, 中度, 强烈, 极强烈 (SL 190-2007);
        above the last is 剧烈.
    targets : dict
        Target year → 水土保持率 (%): the city plan's 73.46 % (2025), 75.25 % (2035).
    landuse_field : str
        Field of a land-use vector layer with the 地类 code (三调: DLBM).
    landuse_codes : dict
        地类 code → class (one of CLASSES). Merged over GB/T 21010-2017's classes.
    b_cover, b_fixed, e_landuse, t_landuse, e_measures : dict
        The factor tables (see the docs page for each value's source).
    measures_field : str
        Field of the engineering-measure layer with its type (a key of ``e_measures``).
    cloud_brightness, cloud_whiteness, shadow_dark_max : float
        Single-date cloud (bright and white) and shadow (dark) tests on reflectance.
    imagery_ndvi_water, imagery_ndvi_bare, imagery_fvc_forest : float
        Land cover from the imagery when no land use is given: water below the first
        NDVI, bare below the second, forest from this cover, grass otherwise.
    """

    window_size: int = 2048
    max_slope_length_m: float = 300.0
    s_breaks_deg: list = field(default_factory=lambda: [5.0, 10.0])
    s_coefficients: list = field(default_factory=lambda: [[10.8, 0.03], [16.8, -0.50], [21.91, -0.96]])
    m_breaks_deg: list = field(default_factory=lambda: [1.0, 3.0, 5.0])
    m_values: list = field(default_factory=lambda: [0.2, 0.3, 0.4, 0.5])
    l_formula: str = "segment"
    work_crs: str = "EPSG:4543"
    ndvi_soil: float = 0.05
    ndvi_veg: float = 0.80
    fvc_breaks: list = field(default_factory=lambda: [0.2, 0.4, 0.6, 0.8])
    r_value: float = 0.0
    k_value: float = 0.0
    r_zones: dict = field(default_factory=dict)
    k_zones: dict = field(default_factory=dict)
    r_range: list = field(default_factory=lambda: [0.0, 30000.0])
    k_range: list = field(default_factory=lambda: [0.0, 0.1])
    tolerable_t_km2: float = 500.0
    grade_breaks_t_km2: list = field(default_factory=lambda: [500.0, 2500.0, 5000.0, 8000.0, 15000.0])
    targets: dict = field(default_factory=lambda: {"2025": 73.46, "2035": 75.25})
    landuse_field: str = "DLBM"
    landuse_codes: dict = field(default_factory=lambda: dict(_LANDUSE_CODES))
    b_cover: dict = field(default_factory=lambda: {k: list(v) for k, v in _B_COVER.items()})
    b_fixed: dict = field(default_factory=lambda: dict(_B_FIXED))
    e_landuse: dict = field(default_factory=lambda: dict(_E_LANDUSE))
    t_landuse: dict = field(default_factory=lambda: dict(_T_LANDUSE))
    e_measures: dict = field(default_factory=lambda: dict(_E_MEASURES))
    measures_field: str = "MEASURE"
    cloud_brightness: float = 0.3
    cloud_whiteness: float = 0.35
    shadow_dark_max: float = 0.04
    imagery_ndvi_water: float = 0.0
    imagery_ndvi_bare: float = 0.2
    imagery_fvc_forest: float = 0.6

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def halo_px(self, cell_m: float) -> int:
        """Halo (px) that makes the tiled, capped slope length exact: 2 × cap + 2 cells."""
        return int(math.ceil(2.0 * self.max_slope_length_m / cell_m)) + 2


_MERGED = ("landuse_codes", "b_cover", "b_fixed", "e_landuse", "t_landuse", "e_measures", "r_zones", "k_zones",
           "targets")


def build_erosion_config(values: dict[str, Any], *, source: object = "configuration",
                         base: ErosionConfig | None = None) -> ErosionConfig:
    """An :class:`ErosionConfig` from an ``[erosion]`` table over ``base`` (the defaults).

    Raises
    ------
    ConfigError
        Unknown key, wrong type, or a value outside what the factor needs.
    """
    base = base or ErosionConfig()
    known = {f.name for f in dataclasses.fields(ErosionConfig)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise unknown_keys_error(unknown, sorted(known), where="erosion", source=source)
    clean: dict[str, Any] = {}
    for name, value in values.items():
        default = getattr(base, name)
        if isinstance(default, float) and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if not isinstance(value, type(default)):
            raise ConfigError(f"[erosion] {name} = {value!r} is a {type(value).__name__}, expected "
                              f"{type(default).__name__}", path=source,
                              fix=f"write it like the default, {name} = {default!r}")
        clean[name] = ({**default, **{str(k): v for k, v in value.items()}} if name in _MERGED else value)
    config = dataclasses.replace(base, **clean)
    check_erosion_config(config, source=source)
    return config


def _numbers(value, n: int | None = None) -> bool:
    items = list(value)
    return (n is None or len(items) == n) and all(
        isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in items)


def check_erosion_config(c: ErosionConfig, *, source: object = "configuration") -> None:
    """Reject values no factor can use (the message names the key and the fix)."""
    def bad(problem: str, fix: str):
        raise ConfigError(f"[erosion] {problem}", path=source, fix=fix)

    if c.window_size < 64:
        bad(f"window_size = {c.window_size} is too small", "use e.g. window_size = 2048")
    if not c.max_slope_length_m > 0:
        bad(f"max_slope_length_m = {c.max_slope_length_m} must be > 0", "use e.g. max_slope_length_m = 300")
    if not (_numbers(c.s_breaks_deg) and len(c.s_coefficients) == len(c.s_breaks_deg) + 1
            and all(_numbers(pair, 2) for pair in c.s_coefficients)):
        bad("s_coefficients needs one [a, b] pair per slope class (one more than s_breaks_deg)",
            "use s_breaks_deg = [5.0, 10.0] and s_coefficients = [[10.8, 0.03], [16.8, -0.5], [21.91, -0.96]]")
    if not (_numbers(c.m_breaks_deg) and _numbers(c.m_values) and len(c.m_values) == len(c.m_breaks_deg) + 1):
        bad("m_values needs one exponent per slope class (one more than m_breaks_deg)",
            "use m_breaks_deg = [1.0, 3.0, 5.0] and m_values = [0.2, 0.3, 0.4, 0.5]")
    if c.l_formula not in ("segment", "cumulative"):
        bad(f"l_formula = {c.l_formula!r} is not a slope-length formula", 'use l_formula = "segment" (or "cumulative")')
    for name in ("s_breaks_deg", "m_breaks_deg", "fvc_breaks", "grade_breaks_t_km2"):
        values = list(getattr(c, name))
        if not _numbers(values) or values != sorted(values) or len(set(values)) != len(values):
            bad(f"{name} = {values!r} must be increasing numbers", f"use the default, {name} = "
                f"{getattr(ErosionConfig(), name)!r}")
    if len(c.grade_breaks_t_km2) != 5:
        bad("grade_breaks_t_km2 needs the 5 upper bounds of 微度 … 极强烈", "use [500, 2500, 5000, 8000, 15000]")
    if not math.isclose(c.grade_breaks_t_km2[0], c.tolerable_t_km2):
        bad(f"the first grade break ({c.grade_breaks_t_km2[0]}) is not the tolerable loss ({c.tolerable_t_km2})",
            "set both to the region's tolerance (500 t/(km²·a) in the south-west rocky mountains)")
    if not (0 <= c.ndvi_soil < c.ndvi_veg <= 1):
        bad(f"ndvi_soil = {c.ndvi_soil}, ndvi_veg = {c.ndvi_veg}: need 0 ≤ soil < veg ≤ 1",
            "use ndvi_soil = 0.05 and ndvi_veg = 0.8")
    if len(c.fvc_breaks) != 4 or not all(0 < v < 1 for v in c.fvc_breaks):
        bad("fvc_breaks needs 4 cover fractions between 0 and 1", "use fvc_breaks = [0.2, 0.4, 0.6, 0.8]")
    for name in ("r_range", "k_range"):
        lo_hi = getattr(c, name)
        if not (_numbers(lo_hi, 2) and 0 <= lo_hi[0] < lo_hi[1]):
            bad(f"{name} = {lo_hi!r} must be [low, high] with 0 ≤ low < high", f"use {getattr(ErosionConfig(), name)!r}")
    for factor, value, zones, (lo, hi) in (("r", c.r_value, c.r_zones, c.r_range), ("k", c.k_value, c.k_zones, c.k_range)):
        for where, v in [(f"{factor}_value", value)] + [(f"{factor}_zones.{z}", v) for z, v in zones.items()]:
            if not isinstance(v, (int, float)) or isinstance(v, bool) or not math.isfinite(v):
                bad(f"{where} = {v!r} is not a number", f"give {factor.upper()} as a number")
            if where != f"{factor}_value" or v != 0:
                if not lo < v <= hi:
                    bad(f"{where} = {v!r} is outside the physical range ({lo}, {hi}] of {factor.upper()}",
                        f"check the unit: {'R in MJ·mm/(hm²·h·a), Ya’an ~ 4000–9000' if factor == 'r' else 'K in t·hm²·h/(hm²·MJ·mm), typically 0.002–0.07 (US units × 0.1317)'}")
    for code, name in c.landuse_codes.items():
        if name not in CLASSES:
            bad(f"landuse_codes.{code} = {name!r} is not a land-use class", f"use one of {', '.join(CLASSES)}")
    for name in CLASSES:
        if name in c.b_cover:
            row = c.b_cover[name]
            if not (_numbers(row, 5) and all(0 <= v <= 1 for v in row)):
                bad(f"b_cover.{name} needs 5 values in 0–1 (one per cover class)", "see pipelines/erosion.toml")
        elif not (name in c.b_fixed and 0 <= c.b_fixed[name] <= 1):
            bad(f"land-use class {name} has no B (b_cover or b_fixed) in 0–1", f"add b_fixed.{name} = 1.0")
        for table in ("e_landuse", "t_landuse"):
            v = getattr(c, table).get(name)
            if not (isinstance(v, (int, float)) and 0 <= v <= 1):
                bad(f"{table}.{name} = {v!r} must be in 0–1", f"set {table}.{name} = 1.0")
    for key, v in c.e_measures.items():
        if not (isinstance(v, (int, float)) and 0 <= v <= 1):
            bad(f"e_measures.{key} = {v!r} must be in 0–1", "E of a measure is a ratio to no measure")
    for year, v in c.targets.items():
        if not (isinstance(v, (int, float)) and 0 < v <= 100):
            bad(f"targets.{year} = {v!r} is not a percentage", "use e.g. targets = { 2025 = 73.46, 2035 = 75.25 }")


def load_erosion_config(path: str | Path | None = None, overrides: dict[str, Any] | None = None) -> ErosionConfig:
    """The ``[erosion]`` table of ``path`` (a TOML file) over the defaults, then ``overrides``.

    Raises
    ------
    ConfigError
    """
    values: dict[str, Any] = {}
    if path is not None:
        data = _read_toml(Path(path))
        values = data.get("erosion", {})
        if not isinstance(values, dict):
            raise ConfigError("[erosion] is not a table", path=path, fix="write [erosion] and its keys below")
    config = build_erosion_config(values, source=path or "configuration")
    if overrides:
        config = build_erosion_config(overrides, source="command line", base=config)
    return config
