"""Run configuration: frozen dataclasses, TOML loading, per-zone rules.

Precedence is dataclass defaults < ``pipelines/*.toml`` (``--config``) < command-line
flags. Unknown keys are an error that names the key and the section, so that a typo
in a bureau's configuration never silently falls back to a default.

Every number the bureau may set lives here with its documented default; the per-zone
rules (minimum patch area, edge tolerance, colour thresholds) live in
``zones/rules.toml`` (a copy ships inside the package as the default).
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import tomllib
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from swc_rs.errors import ConfigError


@dataclass(frozen=True)
class RasterConfig:
    """How rasters are read and aligned.

    window_size : int
        Side of a processing window in pixels; memory follows it (about 120 bytes per
        pixel of window with halo, so 768 → ~75 MB, plus the change network's working set,
        which also follows it: 768 keeps every process under 1 GB at 16384²).
    halo : int
        Pixels of overlap read around each window for neighbourhood operations.
    resampling : str
        Resampling of AFTER onto BEFORE's grid (rasterio name: bilinear, cubic, nearest).
    gdal_cache_mb : int
        GDAL block cache per process (MB); windows are read once, so small is enough
        (64, was 256 until 2026-12-07: 130–150 MB less per detect process at 8192², the
        same results, no measurable change in CPU; docs/2026-12-07-speed.md).
    scale, offset : float
        Raw value × scale + offset = reflectance (0–1), for both dates. ``scale = 0``
        (default): the file's own band scale/offset metadata when it has any (Sentinel-2
        L2A from processing baseline 04.00 and Landsat Collection 2 carry an offset),
        else by data type (uint8 1/255, 16-bit 1/10000, float 1 or 1/10000).
    """

    window_size: int = 768
    halo: int = 16
    resampling: str = "bilinear"
    gdal_cache_mb: int = 64
    scale: float = 0.0
    offset: float = 0.0


@dataclass(frozen=True)
class InputsConfig:
    """What a pair of dates must be to be judged (see :mod:`swc_rs.input_checks`).

    max_span_days : int
        Dates further apart than this are warned about (recorded in run_info): season
        and regrowth changes then pass for disturbance. Default 400 (a year, plus a
        season's margin for a same-season pair).
    """

    max_span_days: int = 400


@dataclass(frozen=True)
class RegistrationConfig:
    """Co-registration of AFTER to BEFORE by phase correlation.

    enabled : bool
        Estimate and correct a global shift between the dates.
    windows : int
        Number of windows (spread over the image) whose shifts are combined by median.
    window_size : int
        Side of each correlation window in pixels.
    min_shift_px : float
        Shifts at or below this (pixels) are recorded but not corrected.
    max_shift_px : float
        Larger estimates are treated as unreliable and ignored (logged).
    """

    enabled: bool = True
    windows: int = 9
    window_size: int = 512
    min_shift_px: float = 0.3
    max_shift_px: float = 8.0


@dataclass(frozen=True)
class ChangeConfig:
    """Radiometric normalisation, masks and the per-pixel disturbance rule.

    Reflectances are 0–1 after scaling (uint16 /10000, uint8 /255 unless the sensor
    profile says otherwise). Indices: NDVI (or a visible proxy without NIR), visible
    brightness (mean of blue, green, red), NDWI (McFeeters).

    normalisation_sample : int
        Pixels sampled (on a decimated read) to fit the per-band after→before regression.
    pif_fraction : float
        Share of the sample taken as pseudo-invariant pixels: those whose per-band rank
        moved least between the dates.
    ndvi_drop : float
        Minimum NDVI decrease for vegetation loss.
    brightness_rise : float
        Minimum rise of visible brightness (reflectance) for new bare or built surface.
    magnitude_min : float
        ... or a spectral change of at least this many scene standard deviations
        (root mean square over the bands of the difference, each band in units of
        BEFORE's spread): new roofs and concrete change every band without greening
        or browning. 0 disables this trigger.
    bare_ndvi_max : float
        After-date NDVI at or below which a surface counts as bare or built.
    bare_brightness_min : float
        After-date visible brightness at or above which a surface counts as bare or built.
    water_ndwi : float
        NDWI above which a pixel is water on either date (water-level change is not
        disturbance).
    cloud_brightness : float
        Visible brightness above which a white pixel is cloud.
    cloud_whiteness : float
        Maximum (max-min)/mean over the visible bands for a cloud pixel.
    cloud_contrast : float
        ... and at least this many times brighter than the other date (a white desert
        or concrete city is bright on both dates; a cloud only on one).
    cloud_buffer_px : int
        Dilation of the cloud mask (haze at cloud edges).
    cloud_min_area_m2 : float
        Clouds and shadows are large: smaller bright/dark components are kept as change.
    cloud_min_pixels : int
        A cloud is also never smaller than this many pixels, whatever the pixel size.
        The cloud test is brightness, whiteness and size; on a coarse grid (30 m:
        ``cloud_min_area_m2`` is 5 pixels) a handful of bright white pixels is a new
        roof far more often than a cloud, and the cloud buffer would hide the change
        around it too. (Shadows keep ``cloud_min_area_m2``: a dark new surface is not
        hidden by a buffer as wide. Training, which flags every cloud pixel, is unaffected.)
    shadow_ratio : float
        A pixel whose brightness (all bands) falls below this ratio of the other date is
        treated as shadow on the darker date.
    shadow_dark_max : float
        ... and the darker date's mean reflectance over all bands is below this.
    shadow_buffer_px : int
        Dilation of the shadow mask.
    opening_px : int
        Radius of the morphological opening that removes thin edges (misregistration).
    closing_px : int
        Radius of the closing that joins a patch's fragments.
    radiometry : str
        ``reflectance``: the rasters are surface/TOA reflectance and every absolute
        threshold above (brightness, NDVI of the after-state, clouds, shadows, water)
        applies. ``relative``: the values are only ordinal (8-bit DN of a Landsat archive,
        a display-stretched aerial or Google Earth RGB mosaic): absolute reflectance
        thresholds mean nothing there, so only the scene-adaptive rule is used (see
        :func:`swc_rs.change.relative_candidate_mask`). ``auto``: relative for 8-bit
        rasters, reflectance otherwise.
    adaptive_magnitude : bool
        Reflectance too: also flag pixels whose smoothed change magnitude reaches the
        scene's own threshold (Otsu, never below ``magnitude_min``), that did not green
        up and whose after-state is not vegetated (``bare_ndvi_max``), on clear land.
        New roofs and pavement are not bare soil, yet change the whole spectrum.
    magnitude_smoothing_px : int
        Scene-adaptive rule: radius of the mean filter on the change magnitude before it
        is thresholded (speckle and sub-pixel misregistration average out; objects do not).
    greening_max : float
        Scene-adaptive rule: a pixel whose vegetation index rose by more than this
        (greening: crops, regrowth) is not disturbance, however much it changed.
    relative_cloud_percentile : float
        Relative radiometry: a cloud must be brighter than this percentile of the other
        date's visible brightness (a shadow darker than the 100 − this percentile of the
        other date's mean); whiteness, contrast, shadow ratio and minimum area as above.
    relative_whitening : bool
        Relative radiometry: measure the change magnitude in the scene's own no-change
        units — the per-pixel difference vector whitened by its robust covariance,
        fitted on the calibration sample with chi-square re-weighting (as IR-MAD
        re-weights, but on the already normalised difference, so it cannot collapse).
        Differences that every unchanged pixel shares (haze, a colour cast, a stretch
        that differs per band) count little; a new roof or clearing, unlike the
        scene's noise, counts a lot. Off: the magnitude in BEFORE's band spreads.
    magnitude_noise_sigmas : float
        Relative radiometry: the scene threshold is never below the median of the
        smoothed magnitude plus this many robust standard deviations (1.4826 × MAD) of
        it. Otsu assumes two classes of comparable size; when change covers ~1 % of a
        scene its split lies inside the no-change tail and flags seasonal noise. 0 disables.
    relative_opening_px : int
        Relative radiometry: radius of the opening instead of ``opening_px``. The
        smoothed magnitude already averages out misregistration edges, and at 10–30 m
        a changed building is one to three pixels wide, which an opening erases (0).
    relative_greening_median : bool
        Relative radiometry without NIR: greening (a rise of the visible vegetation
        index VARI, which also rises from brown soil to a grey roof) also needs an
        after-state greener than the scene's median.
    relative_clouds : str
        Relative radiometry: the dates whose clouds (the visible test of
        :func:`swc_rs.change.relative_cloud_shadow_mask`: white, far brighter than the
        other date's ground, large) are masked: ``both``, ``before`` or ``none``
        (default). Without reflectance a cloud and a white roof, slab or bare
        construction site look alike in the visible bands (white, top of the stretch,
        thousands of m² at 0.5–2 m pixels), on either date: new on AFTER (construction)
        or gone from BEFORE (demolition, a site built over). Masking them removed most of
        the largest changes of change-dense fine-pixel RGB tiles (8-bit display mosaics are
        mostly delivered cloud-screened). The scene threshold is fitted without the clouds
        of both dates whatever this says (a cloud must not pull it up); shadows are masked
        as before; reflectance rasters keep the absolute cloud test.
    relative_hysteresis : float
        Relative radiometry: hysteresis on the smoothed magnitude. The scene threshold
        only seeds change; every 8-connected region above this fraction of it (and not
        greening, on valid ground) that holds a seed is kept whole, so a building or site
        whose magnitude dips inside is completed while weak isolated noise stays out.
        Grown within each processing window and its halo (a region crossing a window seam
        grows from the seeds within that halo only). 0: off, the threshold alone; values outside [0, 1) are refused.
    relative_seed_factor : float
        Relative radiometry: minimum contrast per object. A region above the (low)
        threshold is kept only when its smoothed magnitude somewhere reaches this many
        times the scene threshold (the hysteresis seeds); a whole region is kept or
        dropped, so a kept building is not thinned. 1: off. Default 1.5: on the dev
        sets (dense RGB crops of the training cities and generated scenes; the 8-bit
        sensor/resolution variants) it raised the mean F1 0.612 → 0.624 and 0.262 → 0.265
        with no pair lower by more than 0.002; 2.0 cut weak real sites (0.619).
    hysteresis : float
        Reflectance rasters (relative radiometry has ``relative_hysteresis``): hysteresis
        on the scene-adaptive rule. The rule at the scene threshold, after the opening,
        only seeds change; every patch of the rule at this fraction of the threshold that
        holds a seed is kept whole, judged once the window seams are merged
        (:func:`swc_rs.change.hysteresis_masks`), so a building or site the scene
        threshold found in part is completed through its weaker pixels while weak change
        without a confident core stays out. Needs ``adaptive_magnitude``; no effect with
        a model's pixel mask. 0: off; values outside [0, 1) are refused. Default 0.7: on the Sentinel-2 training
        cities mean F1 0.377 → 0.385 (recall 0.476 → 0.549, precision 0.342 → 0.316), on
        their VNIR variants 0.385 → 0.391, on generated seeds 81–83 detection unchanged
        and BYD/QTYPE of seed 82 0.750/0.688 → 0.812/0.750; 0.8 gave 0.385 / 0.389 and
        no generated change. A per-scene self-trained pixel classifier on the band
        between the two thresholds was no better (see the README).
    learned_threshold : float
        The learned change detector (the default where a shipped network fits the
        imagery; :mod:`swc_rs.change.learned`): a pixel is a change candidate where the
        network's P(change) is at least this, outside clouds and shadows. Default 0.5
        (the training loss weighs both classes so that 0.5 is its decision boundary; not
        tuned on the evaluation pairs). Values outside (0, 1) are refused. The rules
        above apply where no network fits, and with ``--rules``.
    networks : str
        The shipped networks detect may pick, space-separated: ``highres`` (RGB/VNIR,
        0.1–5 m), ``multispectral`` (Sentinel-2/Landsat, 8–40 m). Imagery that only a
        network left out here would fit is read by the rules. "" = the rules everywhere.
        Default ``"highres"``: the multispectral network scored below the rules on every
        Sentinel-2 training city held out of its training (``make lodo``; the card has
        the folds), so it ships switched off (``networks = "highres multispectral"`` or
        ``--change-model`` uses it).

    The five (``cloud_min_pixels`` > 0, ``relative_whitening``,
    ``magnitude_noise_sigmas`` > 0, ``relative_opening_px`` = 0,
    ``relative_greening_median``) raised the mean F1 of the sensor/resolution variants of
    the training cities from 0.222 to 0.337, but together lowered it on the held-out
    real pairs (``make eval-real``) from 0.379 to 0.270 — above all on 0.5 m aerial
    tiles, where change is not rare — so they ship off; see the README.
    """

    normalisation_sample: int = 200_000
    pif_fraction: float = 0.3
    ndvi_drop: float = 0.2
    brightness_rise: float = 0.04
    magnitude_min: float = 1.5
    bare_ndvi_max: float = 0.35
    bare_brightness_min: float = 0.08
    water_ndwi: float = 0.2
    cloud_brightness: float = 0.3
    cloud_whiteness: float = 0.35
    cloud_contrast: float = 1.5
    cloud_buffer_px: int = 6
    cloud_min_area_m2: float = 5000.0
    cloud_min_pixels: int = 0
    shadow_ratio: float = 0.7
    shadow_dark_max: float = 0.07
    shadow_buffer_px: int = 3
    opening_px: int = 1
    closing_px: int = 1
    radiometry: str = "auto"
    adaptive_magnitude: bool = True
    magnitude_smoothing_px: int = 1
    greening_max: float = 0.05
    relative_cloud_percentile: float = 99.5
    relative_whitening: bool = False
    magnitude_noise_sigmas: float = 0.0
    relative_opening_px: int = 1
    relative_greening_median: bool = False
    relative_clouds: str = "none"
    relative_hysteresis: float = 0.0
    relative_seed_factor: float = 1.5
    hysteresis: float = 0.7
    learned_threshold: float = 0.5
    networks: str = "highres"


@dataclass(frozen=True)
class ClassifyConfig:
    """Rule-based patch typing (QTYPE) used when no model is given.

    tillage_brightness_max : float
        A bare patch darker than this (after-date visible brightness) ...
    tillage_texture_max : float
        ... and smoother than this (coefficient of variation of brightness) is typed
        非生产建设项目: tilled or harvested farmland is moist, dark and even, while
        excavation exposes bright, uneven subsoil.
    quarry_redness_max : float
        Rock is grey: redness (red-blue)/(red+blue) below this marks a borrow pit/quarry.
    quarry_texture_min : float
        Quarries have benches and shadows: coefficient of variation of brightness above this.
    spoil_redness_min : float
        Loose soil/spoil is reddish-brown (Sichuan's purple soils): redness above this.
    spoil_texture_min : float
        Spoil heaps are lumpy: coefficient of variation of brightness above this.
    texture_m : float
        Ground size (m) of the neighbourhood of the fine-texture feature (``texture_fine``,
        the mean deviation of brightness from its local mean): the largest odd number of
        pixels within it, at least 3 and at most 11 — 3 px at 2 m (the pixel size the
        shipped model learned), 7 px at 0.8 m — so that the feature describes the same
        ground roughness whatever the pixel size.
    """

    tillage_brightness_max: float = 0.115
    tillage_texture_max: float = 0.08
    quarry_redness_max: float = 0.1
    quarry_texture_min: float = 0.12
    spoil_redness_min: float = 0.15
    spoil_texture_min: float = 0.1
    texture_m: float = 6.0


@dataclass(frozen=True)
class ComplianceConfig:
    """Compliance analysis (DOMAIN.md rules 1–4).

    search_radius_m : float
        Rule 4: distance from an idle range within which a similar disturbance means a
        suspected site change.
    idle_fraction : float
        A range counts as idle when less than this share of its area is disturbed.
    period : str | None
        Reporting period YYYYMM for QDNM; from AFTER's date when None.
    admin_code : str
        Administrative code that prefixes QDNM (Ya'an 511800).
    """

    search_radius_m: float = 300.0
    idle_fraction: float = 0.02
    period: str | None = None
    admin_code: str = "511800"


@dataclass(frozen=True)
class LanduseConfig:
    """The land survey's classes (``detect --landuse``; see :mod:`swc_rs.landuse`).

    field : str
        Field holding the class: ``"auto"`` takes DLMC (地类名称), else DLBM (地类编码).
        Second-level names and codes are folded to first-level classes (水田 → 耕地).
    farming_classes : list of str
        Farming land: a patch typed 其他扰动 on it is retyped 非生产建设项目 ...
    farming_share : float
        ... when at least this share of it lies on those classes ...
    farming_max_confidence : float
        ... and the typer's confidence (X_CONF) is below this (a confident construction
        type is kept: building on farmland is what must be found).
    red_classes : list of str
        Protected land: a suspected violation lying on it is red ...
    red_share : float
        ... when at least this share of it lies on those classes.
    """

    field: str = "auto"
    farming_classes: tuple = ("耕地", "园地")
    farming_share: float = 0.8
    farming_max_confidence: float = 0.9
    red_classes: tuple = ("林地",)
    red_share: float = 0.5


@dataclass(frozen=True)
class HistoryConfig:
    """Matching with the previous period.

    min_overlap : float
        Two patches are the same when their intersection is at least this share of the
        smaller one.
    area_tolerance : float
        Relative area change within which a continuing patch is 续建（范围不变）.
    """

    min_overlap: float = 0.3
    area_tolerance: float = 0.1


@dataclass(frozen=True)
class ZoneRules:
    """Per-zone rules; every field has a city default in ``zones/rules.toml``.

    min_area_hm2 : float
        Minimum patch area reported (minimum mapping unit).
    edge_tolerance_hm2, edge_tolerance_fraction, edge_tolerance_px : float
        An outside sliver smaller than any of these (area, share of QAREA, width in
        pixels) is ignored (rule 1).
    red_unapproved_hm2 : float
        疑似未批先建 / 疑似未批先弃 patches at least this large are red.
    red_overrun_fraction : float
        疑似超出 patches whose EAREA is at least this share of the project's DAREA are red.
    red_spoil_outside : bool
        A spoil site outside every range is red whatever its size.
    site_change_color : str
        Colour of 疑似建设地点变更 (黄 by default).
    """

    min_area_hm2: float = 0.04
    edge_tolerance_hm2: float = 0.04
    edge_tolerance_fraction: float = 0.05
    edge_tolerance_px: float = 2.0
    red_unapproved_hm2: float = 0.5
    red_overrun_fraction: float = 0.3
    red_spoil_outside: bool = True
    site_change_color: str = "黄"


@dataclass(frozen=True)
class ChipsConfig:
    """Evidence chips: before/after true-colour images of every suspected patch.

    format : str
        ``jpeg`` (default: photographic imagery, ~1/3 the size of PNG and ~10× faster to
        encode) or ``png`` (lossless).
    jpeg_quality : int
        JPEG quality 1–95 (colour kept at full resolution, so the outline stays sharp).
    size_px : int
        Length of the chip's longer side in image pixels (small patches are enlarged,
        large ones reduced).
    pad_fraction : float
        Margin on each side as a fraction of the patch's larger side (pixels) ...
    min_pad_px, max_pad_px : int
        ... within these bounds (image pixels).
    outline_px : int
        Width of the drawn patch outline (chip pixels).
    spool_max_mb : int
        Temporary disk (``TMPDIR``) for the pixels detect's window pass keeps around each
        patch, so that the chips need no second decoding of the images (~13 bytes per
        chip pixel: ~250 MB for the 8192² bench scene; removed after the run). Past it
        the chips are read from the images again; 0 keeps none. Where ``/tmp`` is a
        tmpfs this is memory: point ``TMPDIR`` at a disk or lower it.
    """

    format: str = "jpeg"
    jpeg_quality: int = 90
    size_px: int = 256
    pad_fraction: float = 0.6
    min_pad_px: int = 12
    max_pad_px: int = 400
    outline_px: int = 2
    spool_max_mb: int = 1024


@dataclass(frozen=True)
class DetectConfig:
    """Everything `swc-rs detect` can be told, grouped by stage."""

    raster: RasterConfig = field(default_factory=RasterConfig)
    inputs: InputsConfig = field(default_factory=InputsConfig)
    registration: RegistrationConfig = field(default_factory=RegistrationConfig)
    change: ChangeConfig = field(default_factory=ChangeConfig)
    classify: ClassifyConfig = field(default_factory=ClassifyConfig)
    compliance: ComplianceConfig = field(default_factory=ComplianceConfig)
    history: HistoryConfig = field(default_factory=HistoryConfig)
    landuse: LanduseConfig = field(default_factory=LanduseConfig)
    chips: ChipsConfig = field(default_factory=ChipsConfig)
    zone_default: ZoneRules = field(default_factory=ZoneRules)
    zones: dict[str, ZoneRules] = field(default_factory=dict)

    def rules_for(self, zone_code: str | None) -> ZoneRules:
        """The rules of a zone (the city default for unknown or missing zones)."""
        return self.zones.get(zone_code or "", self.zone_default)

    @property
    def smallest_min_area_hm2(self) -> float:
        return min([self.zone_default.min_area_hm2] + [z.min_area_hm2 for z in self.zones.values()])

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


_SECTIONS = {
    "raster": RasterConfig,
    "inputs": InputsConfig,
    "registration": RegistrationConfig,
    "change": ChangeConfig,
    "classify": ClassifyConfig,
    "compliance": ComplianceConfig,
    "history": HistoryConfig,
    "landuse": LanduseConfig,
    "chips": ChipsConfig,
}


def unknown_keys_error(unknown, known, *, where: str, source: object, kind: str = "key") -> ConfigError:
    """The error for misspelt names in a configuration table, with the nearest valid ones.

    ``unknown`` are the names found in the table ``where`` that are not in ``known``; the
    message names each with the closest known name (:func:`difflib.get_close_matches`),
    e.g. ``unknown key learned_treshold in [change] (did you mean learned_threshold?)``.
    """
    known = list(known)
    unknown = sorted(unknown)
    guesses = {name: difflib.get_close_matches(str(name), known, n=1, cutoff=0.6) for name in unknown}
    parts = [f"{name} (did you mean {guesses[name][0]}?)" if guesses[name] else name for name in unknown]
    plural = "s" if len(unknown) > 1 else ""
    place = f" in [{where}]" if where else ""
    if all(guesses.values()):
        fix = "rename " + ", ".join(f"{name} to {guesses[name][0]}" for name in unknown)
    else:
        fix = f"use one of: {', '.join(known)}"
    return ConfigError(f"unknown {kind}{plural} {', '.join(parts)}{place}", path=source, fix=fix)


def _build(cls, values: dict[str, Any], *, where: str, source: object, base=None):
    """Instantiate ``cls`` from a TOML table, checking names and types."""
    base = base if base is not None else cls()
    known = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - set(known))
    if unknown:
        raise unknown_keys_error(unknown, known, where=where, source=source)
    clean = {}
    for name, value in values.items():
        default = getattr(base, name)
        if isinstance(default, tuple) and isinstance(value, list):
            value = tuple(value)
        if default is not None and not isinstance(value, type(default)):
            if isinstance(default, float) and isinstance(value, int) and not isinstance(value, bool):
                value = float(value)
            else:
                raise ConfigError(
                    f"[{where}] {name} = {value!r} is a {type(value).__name__}, expected {type(default).__name__}",
                    path=source,
                    fix=f"write it like the default, {name} = {default!r}",
                )
        clean[name] = value
    return dataclasses.replace(base, **clean)


def default_rules_path() -> Path:
    """The per-zone rules shipped with the package (a copy of zones/rules.toml)."""
    return Path(str(resources.files("swc_rs") / "data" / "zone_rules.toml"))


def load_zone_rules(path: str | Path | None = None) -> tuple[ZoneRules, dict[str, ZoneRules]]:
    """Read per-zone rules: a ``[default]`` table and ``[zones.Zn]`` tables over it."""
    path = Path(path) if path else default_rules_path()
    data = _read_toml(path)
    unknown = sorted(set(data) - {"default", "zones", "meta"})
    if unknown:
        raise unknown_keys_error(unknown, ("default", "zones", "meta"), where="", source=path, kind="table")
    default = _build(ZoneRules, data.get("default", {}), where="default", source=path)
    zones = {
        code: _build(ZoneRules, table, where=f"zones.{code}", source=path, base=default)
        for code, table in data.get("zones", {}).items()
    }
    for rules, where in [(default, "default")] + [(z, f"zones.{c}") for c, z in zones.items()]:
        _check_zone_rules(rules, where=where, source=path)
    return default, zones


def _check_zone_rules(rules: ZoneRules, *, where: str, source: object) -> None:
    if rules.min_area_hm2 <= 0:
        raise ConfigError(f"[{where}] min_area_hm2 must be > 0", path=source, fix="use e.g. 0.04")
    if rules.site_change_color not in ("红", "黄", "绿"):
        raise ConfigError(
            f"[{where}] site_change_color = {rules.site_change_color!r} is not a colour",
            path=source,
            fix="use 红, 黄 or 绿",
        )


def _check_landuse(landuse: LanduseConfig, *, source: object) -> None:
    for name in ("farming_share", "red_share"):
        value = getattr(landuse, name)
        if not 0 < value <= 1:
            raise ConfigError(f"[landuse] {name} = {value!r} is not a share in (0, 1]", path=source,
                              fix=f"use e.g. {name} = {getattr(LanduseConfig(), name)}")
    for name in ("farming_classes", "red_classes"):
        if not all(isinstance(v, str) for v in getattr(landuse, name)):
            raise ConfigError(f"[landuse] {name} must be a list of class names", path=source,
                              fix=f"write it like the default, {name} = {list(getattr(LanduseConfig(), name))!r}")


def _check_raster(raster: RasterConfig, *, source: object) -> None:
    if not (math.isfinite(raster.scale) and raster.scale >= 0 and math.isfinite(raster.offset)):
        raise ConfigError(f"[raster] scale = {raster.scale!r}, offset = {raster.offset!r}: the scale must be ≥ 0 and both finite",
                          path=source, fix="use e.g. scale = 0.0001 and offset = -0.1 (Sentinel-2 L2A), or scale = 0 for the default")
    if raster.offset and not raster.scale:
        raise ConfigError(f"[raster] offset = {raster.offset!r} needs a scale", path=source,
                          fix="set both, e.g. scale = 0.0001 and offset = -0.1, or remove the offset")


def _check_change(change: ChangeConfig, *, source: object) -> None:
    for name in ("hysteresis", "relative_hysteresis"):
        value = getattr(change, name)
        if not (math.isfinite(value) and 0 <= value < 1):
            raise ConfigError(f"[change] {name} = {value!r} is not a fraction of the scene threshold in [0, 1)",
                              path=source, fix=f"use e.g. {name} = 0.7, or 0 to switch it off")
    if not (math.isfinite(change.learned_threshold) and 0 < change.learned_threshold < 1):
        raise ConfigError(f"[change] learned_threshold = {change.learned_threshold!r} is not a probability in (0, 1)",
                          path=source, fix="use e.g. learned_threshold = 0.5")
    unknown = sorted(set(change.networks.split()) - {"highres", "multispectral"})
    if unknown:
        raise ConfigError(f"[change] networks = {change.networks!r} names no shipped network: {', '.join(unknown)}",
                          path=source, fix='use "highres", "multispectral", both separated by a space, or "" for none')


def _check_chips(chips: ChipsConfig, *, source: object) -> None:
    if chips.format not in ("jpeg", "png"):
        raise ConfigError(f"[chips] format = {chips.format!r} is not a chip format", path=source,
                          fix='use format = "jpeg" or format = "png"')
    if not 1 <= chips.jpeg_quality <= 95:
        raise ConfigError(f"[chips] jpeg_quality = {chips.jpeg_quality} is outside 1–95", path=source,
                          fix="use e.g. jpeg_quality = 90")
    if chips.spool_max_mb < 0:
        raise ConfigError(f"[chips] spool_max_mb = {chips.spool_max_mb} is negative", path=source,
                          fix="give the temporary disk in MB for the chips' pixels, or 0 to keep none")
    if chips.size_px < 16 or chips.outline_px < 1 or chips.min_pad_px < 0 or chips.max_pad_px < chips.min_pad_px:
        raise ConfigError("[chips] size_px must be ≥ 16, outline_px ≥ 1 and 0 ≤ min_pad_px ≤ max_pad_px",
                          path=source, fix="use the defaults: size_px = 256, outline_px = 2, min_pad_px = 12, max_pad_px = 400")


def _read_toml(path: Path) -> dict[str, Any]:
    if not path.exists():
        raise ConfigError("configuration file does not exist", path=path, fix="check the path")
    try:
        with path.open("rb") as fh:
            return tomllib.load(fh)
    except tomllib.TOMLDecodeError as err:
        raise ConfigError(f"is not valid TOML ({err})", path=path, fix="correct the syntax at that line") from err


def load_config(path: str | Path | None = None, overrides: dict[str, dict[str, Any]] | None = None) -> DetectConfig:
    """Build a :class:`DetectConfig` from defaults, an optional TOML file and overrides.

    The TOML file may hold the sections ``[raster]``, ``[inputs]``, ``[registration]``, ``[change]``,
    ``[classify]``, ``[compliance]``, ``[history]``, ``[landuse]``, ``[chips]`` and ``rules = "path/to/rules.toml"`` (per-zone
    rules; relative to the file). ``overrides`` has the same shape (from CLI flags).

    Raises
    ------
    ConfigError
        Missing file, invalid TOML, unknown key or wrong type.
    """
    data: dict[str, Any] = _read_toml(Path(path)) if path else {}
    source: object = path or "configuration"
    allowed = set(_SECTIONS) | {"rules", "detect", "batch", "meta", "erosion"}
    unknown = sorted(set(data) - allowed)
    if unknown:
        raise unknown_keys_error(unknown, sorted(allowed), where="", source=source, kind="section")
    rules_path = data.get("rules")
    if rules_path is not None:
        rules_path = (Path(path).parent / rules_path) if path else Path(rules_path)
    zone_default, zones = load_zone_rules(rules_path)
    sections = {}
    for name, cls in _SECTIONS.items():
        section = _build(cls, data.get(name, {}), where=name, source=source)
        if overrides and overrides.get(name):
            section = _build(cls, overrides[name], where=name, source="command line", base=section)
        sections[name] = section
    _check_raster(sections["raster"], source=source)
    if sections["inputs"].max_span_days < 1:
        raise ConfigError(f"[inputs] max_span_days = {sections['inputs'].max_span_days} must be ≥ 1", path=source,
                          fix="use e.g. max_span_days = 400")
    _check_change(sections["change"], source=source)
    _check_chips(sections["chips"], source=source)
    _check_landuse(sections["landuse"], source=source)
    return DetectConfig(**sections, zone_default=zone_default, zones=zones)
