"""Many tiles, one month: tile catalog, executor (local processes or Dask), resume, assembly.

A monthly run (``swc-rs batch CONFIG.toml``) goes through three steps:

1. **Plan** (:func:`load_batch`). The ``[batch]`` section of the TOML file names the
   tile catalog, the zones, projects and sensitive layers, the output folder, the
   history store and the period. The detect sections of the same file (``[raster]``,
   ``[change]``, ``[history]`` ...) are read by :func:`swc_rs.config.load_config`.
2. **Tiles** (:func:`run_batch`). Every tile runs :func:`swc_rs.pipeline.detect` on its own,
   in local worker processes or on a Dask distributed cluster. A tile's result is
   committed atomically to ``<output>/<period>/tiles/<tile_id>.gpkg``; a tile that fails
   is recorded with its error and the others go on. With ``resume`` the committed tiles
   are skipped, so a run killed at any point (even SIGKILL) loses at most the tiles
   that were in flight.
3. **Month** (:func:`assemble_month`). The tiles' patches are merged (pieces of one patch
   from different tiles that overlap or touch become one patch; the union never counts
   an area twice), QAREA is recomputed in EPSG:4543, compliance is judged again on the
   merged patches (:func:`swc_rs.compliance.judge`), and QDNM/QDTYPE come from the
   previous month by :func:`swc_rs.history.link_previous`.

Layout of the output folder (month outputs side by side, never overwritten)::

    <output>/<period>/tiles/<tile_id>.gpkg       committed tile results (detect's layers)
    <output>/<period>/tiles/manifest.json        fingerprint of the configuration of the tiles
    <output>/<period>/swc_<period>.gpkg          the month: detect's layers + finished_patches
    <output>/<period>/swc_<period>.summary.json  the run summary

The month GeoPackage holds the five layers of INTERFACE.md plus ``finished_patches``:
the previous month's patches that were not detected again this month, inside the tiles
processed this month, with QDTYPE 完工. ``disturbance_patches`` holds only what was
detected this month, so its counts and the zone and project summaries are this
month's; a finished patch is reported once, in the month it disappears.
"""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import datetime as dt
import glob
import hashlib
import json
import logging
import os
import platform
import re
import time
import warnings
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from swc_rs import __version__, codes, compliance
from swc_rs.config import DetectConfig, load_config, unknown_keys_error
from swc_rs.errors import (
    ConfigError,
    InputError,
    InputFileError,
    OutputExistsError,
    SwcError,
    SwcWarning,
)
from swc_rs.export.gpkg import write_result
from swc_rs.history import link_previous
from swc_rs.pipeline import (
    PATCH_FIELDS,
    DetectRequest,
    DetectResult,
    _assign_zones,
    _multi,
    detect,
    read_projects,
    read_sensitive,
    read_zones,
)
from swc_rs.raster import RasterPair, file_checksum
from swc_rs.sensors import parse_band_map
from swc_rs.vectors import AREA_CRS, EXCHANGE_CRS, read_layer
from swc_rs.workers import available_cores, share_work, start_workers

log = logging.getLogger(__name__)

#: progress(stage, done, total)
Progress = Callable[[str, int, int], None]

TILES_STAGE = "Tiles"
ASSEMBLY_STAGE = "Month assembly"
FINISHED_LAYER = "finished_patches"
MANIFEST = "manifest.json"
#: How the summary counts patches without a BYD (非生产建设项目: no compliance verdict).
NO_VERDICT = "无判定（非生产建设项目）"

_PERIOD = re.compile(r"^\d{4}(0[1-9]|1[0-2])$")
_TILE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


# -- configuration ------------------------------------------------------------------------
@dataclass(frozen=True)
class Tile:
    """One tile of the catalog: a before/after pair.

    ``problem`` is set when the catalog itself cannot give the pair (a STAC tile with a
    single item, a remote asset); such a tile fails without stopping the month.
    """

    tile_id: str
    before: Path
    after: Path
    problem: str = ""


@dataclass(frozen=True)
class CatalogConfig:
    """Where the tiles are: exactly one of a path pattern pair, a CSV or a STAC file.

    before, after : str
        Path patterns with a ``{tile}`` placeholder (and optionally ``{period}``,
        ``{previous_period}``), e.g. ``"/data/tiles/{tile}/before.tif"``. Every file
        matching ``before`` is a tile; its id is what ``{tile}`` matched.
    csv : str
        A CSV with the columns ``tile_id,before,after`` (paths relative to the CSV).
    stac : str
        A STAC ItemCollection (GeoJSON FeatureCollection of Items), one Item per tile
        and date; Items are grouped by ``properties[tile_property]``; the latest Item
        of a tile is AFTER and the one before it BEFORE, unless ``properties["swc:role"]``
        says ``before``/``after``.
    tile_property : str
        STAC property that names the tile (default ``grid:code``).
    asset : str
        STAC asset key of the image; default: the asset whose roles include ``data``,
        or the only asset.
    allow_remote : bool
        Read STAC assets at http(s)://, s3:// and gs:// hrefs (through GDAL's /vsicurl/,
        /vsis3/, /vsigs/; credentials from GDAL's usual environment). Default false: a
        remote href fails its tile with a message naming this option, and nothing is
        fetched.
    """

    before: str = ""
    after: str = ""
    csv: str = ""
    stac: str = ""
    tile_property: str = "grid:code"
    asset: str = ""
    allow_remote: bool = False

    @property
    def kind(self) -> str:
        return "pattern" if self.before else "csv" if self.csv else "stac"


@dataclass(frozen=True)
class BatchSettings:
    """The ``[batch]`` section (paths already resolved against the TOML file's folder).

    period : str
        Reporting month YYYYMM (QDNM prefix, output folder); ``--period`` overrides it.
    output : Path
        Folder that holds one sub-folder per month.
    zones, projects : Path
        SWC zones and approved responsibility ranges (any OGR source, any CRS).
    sensitive : tuple of Path
        Sensitive-area layers (red line, national park, water source).
    history : Path
        Folder of earlier months' outputs (default: ``output``); the latest month before
        ``period`` found there is the previous month.
    previous : Path or None
        An explicit previous-month GeoPackage (overrides ``history``).
    model : str
        ``default`` (the shipped patch classifier and change networks, rules where none ships or fits), ``rules`` (the rules for both), or a path to a patch classifier.
    sensor, bands : str
        As ``swc-rs detect --sensor/--bands``.
    workers : int
        Tiles processed at once by local worker processes; 0 = every available core.
    seam_tolerance_m : float
        Pieces from different tiles closer than this (metres) are the same patch.
    finished_min_coverage : float
        A previous patch not found again counts as finished (完工) only when at least this
        share of it lies inside the tiles processed this month.
    """

    period: str
    output: Path
    zones: Path
    projects: Path
    catalog: CatalogConfig
    sensitive: tuple[Path, ...] = ()
    history: Path | None = None
    previous: Path | None = None
    model: str = "default"
    sensor: str = "auto"
    bands: str = ""
    zones_layer: str = ""
    projects_layer: str = ""
    workers: int = 0
    seam_tolerance_m: float = 0.5
    finished_min_coverage: float = 0.5


_BATCH_KEYS: dict[str, type] = {
    "period": str, "output": str, "zones": str, "projects": str, "catalog": dict, "sensitive": list,
    "history": str, "previous": str, "model": str, "sensor": str, "bands": str, "zones_layer": str,
    "projects_layer": str, "workers": int, "seam_tolerance_m": float, "finished_min_coverage": float,
}
_CATALOG_KEYS: dict[str, type] = {
    "before": str, "after": str, "csv": str, "stac": str, "tile_property": str, "asset": str, "allow_remote": bool,
}
_REQUIRED = ("output", "zones", "projects", "catalog")


@dataclass(frozen=True)
class BatchPlan:
    """Everything a batch run needs: settings, detect configuration and the tiles."""

    settings: BatchSettings
    detect: DetectConfig
    tiles: tuple[Tile, ...]
    source: Path | None = None

    @property
    def period(self) -> str:
        return self.settings.period

    @property
    def month_dir(self) -> Path:
        return self.settings.output / self.period

    @property
    def tiles_dir(self) -> Path:
        return self.month_dir / "tiles"

    @property
    def month_path(self) -> Path:
        return self.month_dir / f"swc_{self.period}.gpkg"

    @property
    def summary_path(self) -> Path:
        return self.month_dir / f"swc_{self.period}.summary.json"

    def tile_path(self, tile_id: str) -> Path:
        return self.tiles_dir / f"{tile_id}.gpkg"

    @property
    def model_path(self) -> Path | None:
        model = self.settings.model
        if model == "rules":
            return None
        if model == "default":
            from swc_rs.model import default_model_path

            return default_model_path()
        return Path(model)


def previous_period(period: str) -> str:
    """The month before ``period`` (YYYYMM)."""
    year, month = int(period[:4]), int(period[4:])
    return f"{year - 1}12" if month == 1 else f"{year}{month - 1:02d}"


def _check_type(where: str, name: str, value: Any, expected: type, source: object) -> Any:
    if expected is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if not isinstance(value, expected) or (expected is int and isinstance(value, bool)):
        kind = {str: "a text in quotes", int: "a whole number", float: "a number", list: "a list [...]", dict: "a table"}[expected]
        raise ConfigError(f"[{where}] {name} = {value!r} is a {type(value).__name__}, expected {kind}", path=source,
                          fix=f"write {name} as {kind}")
    return value


def _check_keys(table: dict, known: dict[str, type], where: str, source: object) -> dict:
    unknown = sorted(set(table) - set(known))
    if unknown:
        raise unknown_keys_error(unknown, known, where=where, source=source)
    return {name: _check_type(where, name, value, known[name], source) for name, value in table.items()}


def _placeholders(text: str, period: str) -> str:
    return text.replace("{period}", period).replace("{previous_period}", previous_period(period))


def load_batch(path: str | Path, *, period: str | None = None, workers: int | None = None) -> BatchPlan:
    """Read a batch configuration and list its tiles.

    Parameters
    ----------
    path
        TOML file with a ``[batch]`` section (see ``pipelines/monthly.toml``) and,
        optionally, the detect sections of ``pipelines/default.toml``.
    period
        Reporting month YYYYMM; overrides ``[batch] period`` (for cron:
        ``--period $(date -d 'last month' +%Y%m)``).
    workers
        Overrides ``[batch] workers``.

    Raises
    ------
    ConfigError
        Missing or unknown keys, wrong types, a bad period, an empty catalog,
        duplicate or unusable tile ids.
    InputFileError
        The CSV or STAC catalog cannot be read.
    """
    import tomllib

    path = Path(path)
    if not path.exists():
        raise ConfigError("configuration file does not exist", path=path, fix="check the path")
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as err:
        raise ConfigError(f"is not valid TOML ({err})", path=path, fix="correct the syntax at that line") from err
    table = data.get("batch")
    if not isinstance(table, dict):
        raise ConfigError("has no [batch] section", path=path,
                          fix="add one with catalog, zones, projects and output (see pipelines/monthly.toml)")
    values = _check_keys(table, _BATCH_KEYS, "batch", path)
    missing = [k for k in _REQUIRED if k not in values]
    if missing:
        raise ConfigError(f"[batch] lacks {', '.join(missing)}", path=path, fix="add them (see pipelines/monthly.toml)")
    compliance_period = data.get("compliance", {}).get("period") if isinstance(data.get("compliance"), dict) else None
    period = period or values.get("period") or compliance_period
    if not period:
        raise ConfigError("no period: [batch] period is missing and --period was not given", path=path,
                          fix='add period = "YYYYMM" to [batch] or pass --period YYYYMM')
    if not _PERIOD.match(str(period)):
        raise ConfigError(f"period {period!r} is not a month YYYYMM", path=path, fix='write it like "202611"')
    base = path.parent

    def resolve(text: str) -> Path:
        p = Path(_placeholders(text, period)).expanduser()
        return Path(os.path.normpath(p if p.is_absolute() else base / p))

    catalog = CatalogConfig(**_check_keys(values.pop("catalog"), _CATALOG_KEYS, "batch.catalog", path))
    given = [k for k in ("before", "csv", "stac") if getattr(catalog, k)]
    if len(given) != 1 or bool(catalog.before) != bool(catalog.after):
        raise ConfigError(
            "[batch.catalog] must give exactly one of: before and after patterns, csv, stac",
            path=path,
            fix='e.g. before = "tiles/{tile}/before.tif" and after = "tiles/{tile}/after_{period}.tif"',
        )
    workers_value = values.get("workers", 0) if workers is None else workers
    if workers_value < 0:
        raise ConfigError(f"[batch] workers = {workers_value} is negative", path=path, fix="use 0 (every core) or more")
    tol = values.get("seam_tolerance_m", 0.5)
    cover = values.get("finished_min_coverage", 0.5)
    if tol < 0 or not 0 <= cover <= 1:
        raise ConfigError("[batch] seam_tolerance_m must be >= 0 and finished_min_coverage within 0..1", path=path,
                          fix="use e.g. seam_tolerance_m = 0.5, finished_min_coverage = 0.5")
    model = values.get("model", "default")
    settings = BatchSettings(
        period=str(period),
        output=resolve(values["output"]),
        zones=resolve(values["zones"]),
        projects=resolve(values["projects"]),
        catalog=catalog,
        sensitive=tuple(resolve(_check_type("batch", "sensitive", s, str, path)) for s in values.get("sensitive", [])),
        history=resolve(values["history"]) if values.get("history") else None,
        previous=resolve(values["previous"]) if values.get("previous") else None,
        model=model if model in ("default", "rules") else str(resolve(model)),
        sensor=values.get("sensor", "auto"),
        bands=values.get("bands", ""),
        zones_layer=values.get("zones_layer", ""),
        projects_layer=values.get("projects_layer", ""),
        workers=workers_value,
        seam_tolerance_m=tol,
        finished_min_coverage=cover,
    )
    config = load_config(path, {"compliance": {"period": settings.period}})
    tiles = tuple(read_catalog(catalog, base, settings.period, source=path))
    return BatchPlan(settings=settings, detect=config, tiles=tiles, source=path)


# -- catalog ---------------------------------------------------------------------------------
def read_catalog(catalog: CatalogConfig, base: Path, period: str, *, source: object = None) -> list[Tile]:
    """The tiles of a catalog, sorted by id.

    Raises
    ------
    ConfigError
        No tiles, duplicate ids, ids that cannot be file names.
    InputFileError
        Unreadable CSV/STAC file.
    """
    if catalog.kind == "pattern":
        tiles = _pattern_tiles(_placeholders(catalog.before, period), _placeholders(catalog.after, period), base, source)
        where = catalog.before
    elif catalog.kind == "csv":
        where = base / _placeholders(catalog.csv, period)
        tiles = _csv_tiles(where)
    else:
        where = base / _placeholders(catalog.stac, period)
        tiles = _stac_tiles(where, catalog.tile_property, catalog.asset, allow_remote=catalog.allow_remote)
    if not tiles:
        raise ConfigError(f"the tile catalog {where} lists no tiles", path=source,
                          fix="check the catalog path or pattern (and the period it was filled with)")
    seen = Counter(t.tile_id for t in tiles)
    twice = sorted(k for k, n in seen.items() if n > 1)
    if twice:
        raise ConfigError(f"tile id(s) {', '.join(twice)} appear more than once in {where}", path=source,
                          fix="give every before/after pair its own tile id")
    bad = [t.tile_id for t in tiles if not _TILE_ID.match(t.tile_id)]
    if bad:
        raise ConfigError(f"tile id(s) {', '.join(map(repr, bad[:5]))} cannot be used as file names", path=source,
                          fix="use letters, digits, '_', '-' and '.' only")
    return sorted(tiles, key=lambda t: t.tile_id)


def _absolute(text: str, base: Path) -> str:
    p = Path(text).expanduser()
    return str(p if p.is_absolute() else base / p)


def _pattern_tiles(before: str, after: str, base: Path, source: object) -> list[Tile]:
    if "{tile}" not in before or "{tile}" not in after:
        raise ConfigError("[batch.catalog] before and after must both contain {tile}", path=source,
                          fix='e.g. before = "tiles/{tile}/before.tif", after = "tiles/{tile}/after.tif"')
    before, after = _absolute(before, base), _absolute(after, base)
    head, _, tail = before.partition("{tile}")
    regex = re.escape(head) + r"(?P<tile>[^/]+?)" + re.escape(tail).replace(re.escape("{tile}"), "(?P=tile)")
    tiles = []
    for name in sorted(glob.glob(glob.escape(head) + "*" + glob.escape(tail).replace(glob.escape("{tile}"), "*"))):
        match = re.fullmatch(regex, name)
        if match:
            tile = match["tile"]
            tiles.append(Tile(tile, Path(name), Path(after.replace("{tile}", tile))))
    return tiles


def _csv_tiles(path: Path) -> list[Tile]:
    if not path.exists():
        raise InputFileError("the tile catalog CSV does not exist", path=path, fix="check [batch.catalog] csv")
    with path.open(newline="", encoding="utf-8-sig") as fh:
        reader = csv.DictReader(fh)
        missing = [c for c in ("tile_id", "before", "after") if c not in (reader.fieldnames or [])]
        if missing:
            raise InputFileError(f"the tile catalog has no column(s) {', '.join(missing)} (columns: {', '.join(reader.fieldnames or [])})",
                                 path=path, fix="give a header line tile_id,before,after")
        return [Tile(row["tile_id"].strip(), Path(_absolute(row["before"].strip(), path.parent)),
                     Path(_absolute(row["after"].strip(), path.parent))) for row in reader if any(row.values())]


#: Remote href schemes and the GDAL virtual file system that reads each.
REMOTE_SCHEMES = {"http": "/vsicurl/", "https": "/vsicurl/", "s3": "/vsis3/", "gs": "/vsigs/"}


def remote_path(href: str) -> Path:
    """The GDAL path of a remote href (``/vsicurl?url=…`` keeps the URL's ``//``, which
    a path would fold)."""
    from urllib.parse import quote

    scheme, _, rest = href.partition("://")
    if scheme in ("http", "https"):
        return Path("/vsicurl?url=" + quote(href, safe=""))
    return Path(REMOTE_SCHEMES[scheme] + rest)


def _stac_tiles(path: Path, tile_property: str, asset_key: str, *, allow_remote: bool = False) -> list[Tile]:
    if not path.exists():
        raise InputFileError("the STAC catalog does not exist", path=path, fix="check [batch.catalog] stac")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise InputFileError(f"is not a JSON file ({err})", path=path, fix="give a STAC ItemCollection (GeoJSON FeatureCollection)") from err
    features = data.get("features") if isinstance(data, dict) else None
    if not isinstance(features, list):
        raise InputFileError("is not a STAC ItemCollection (no 'features' list)", path=path,
                             fix="give a GeoJSON FeatureCollection of STAC Items")
    groups: dict[str, list[tuple[str, str, str, str]]] = {}
    for item in features:
        props = item.get("properties") or {}
        item_id = str(item.get("id", "?"))
        tile = props.get(tile_property)
        if tile is None:
            raise InputFileError(f"item {item_id} has no property {tile_property!r}", path=path,
                                 fix="name the tile property with [batch.catalog] tile_property")
        href = _stac_href(item.get("assets") or {}, asset_key)
        when = str(props.get("datetime") or props.get("start_datetime") or "")
        groups.setdefault(str(tile), []).append((when, str(props.get("swc:role", "")), href or "", item_id))
    tiles = []
    for tile, items in groups.items():
        items.sort()
        roles = {role: href for _, role, href, _ in items if role in ("before", "after")}
        if len(roles) == 2:
            before, after = roles["before"], roles["after"]
        elif len(items) >= 2:
            before, after = items[-2][2], items[-1][2]
        else:
            tiles.append(Tile(tile, Path(), Path(), problem=f"the STAC catalog has one item for tile {tile}; a before and an after date are needed"))
            continue
        problem = ""
        clean = []
        for href in (before, after):
            scheme = re.match(r"^([a-z][a-z0-9+.-]*)://", href or "")
            scheme = scheme[1] if scheme else "file"
            if not href:
                problem = f"an item of tile {tile} has no usable asset (set [batch.catalog] asset)"
                clean.append(Path())
            elif scheme == "file":
                clean.append(Path(_absolute(href.removeprefix("file://"), path.parent)))
            elif scheme not in REMOTE_SCHEMES:
                problem = f"asset {href} has the scheme {scheme}://, which swc-rs does not read"
                clean.append(Path())
            elif not allow_remote:
                problem = (f"asset {href} is remote and remote assets are not read unless allowed: set "
                           "[batch.catalog] allow_remote = true, or copy the items to a local or mounted folder")
                clean.append(Path())
            else:
                clean.append(remote_path(href))
        tiles.append(Tile(tile, clean[0], clean[1], problem=problem))
    return tiles


def _stac_href(assets: dict, key: str) -> str | None:
    if key:
        return (assets.get(key) or {}).get("href")
    data = [a for a in assets.values() if "data" in (a.get("roles") or [])]
    if len(data) >= 1:
        return data[0].get("href")
    return next(iter(assets.values())).get("href") if len(assets) == 1 else None


# -- one tile ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class TileTask:
    """What a worker needs for one tile (picklable)."""

    tile: Tile
    request: DetectRequest
    output: Path


@dataclass
class TileOutcome:
    """How a tile went: ``done``, ``skipped`` (committed by an earlier run) or ``failed``."""

    tile_id: str
    status: str
    seconds: float = 0.0
    patches: int = 0
    pixels: int = 0
    error: str = ""
    error_type: str = ""
    warnings: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return {k: v for k, v in dataclasses.asdict(self).items() if v not in ("", [])}


def run_tile(task: TileTask) -> TileOutcome:
    """Detect one tile and commit its result atomically to ``task.output``.

    Never raises for a bad tile: the error is returned in the outcome, so one corrupt
    file or a pair without overlap does not stop the month.
    """
    start = time.perf_counter()
    tile = task.tile
    caught: list = []
    try:
        if tile.problem:
            raise InputError(tile.problem, fix="correct the tile catalog")
        with warnings.catch_warnings(record=True) as caught, _one_thread(task):
            warnings.simplefilter("always", SwcWarning)
            result = detect(task.request)
            footprint = tile_footprint(task.request)
            result.run_info["tile_id"] = tile.tile_id
            result.run_info["tile_footprint"] = footprint.wkt
            write_result(result, task.output, overwrite=True, threads=1)  # one core per tile worker
            result.release_crops()  # the chips are written: the next tile's spool takes its place
        shape = result.run_info.get("grid_shape") or [0, 0]
        return TileOutcome(tile.tile_id, "done", round(time.perf_counter() - start, 3), patches=len(result.patches),
                           pixels=int(shape[0]) * int(shape[1]), warnings=_warning_texts(caught))
    except Exception as err:  # a tile's failure is a finding of the batch, not its end
        log.debug("tile %s failed", tile.tile_id, exc_info=True)
        message = err.message if isinstance(err, SwcError) else f"{type(err).__name__}: {err}"
        return TileOutcome(tile.tile_id, "failed", round(time.perf_counter() - start, 3), error=message,
                           error_type=type(err).__name__, warnings=_warning_texts(caught or []))


def _one_thread(task: TileTask):
    """Native thread pools limited to one thread while a tile runs: the batch's
    parallelism is the tiles (``--workers N`` uses N cores), see
    :func:`swc_rs.workers.one_native_thread`."""
    from swc_rs.workers import one_native_thread

    return one_native_thread(openmp=task.request.model is not None)


def _warning_texts(caught: Iterable) -> list[str]:
    return [str(w.message) for w in caught if issubclass(w.category, SwcWarning)]


def tile_footprint(request) -> shapely.Geometry:
    """The area a tile covers (the common extent of its two dates), in EPSG:4490."""
    with RasterPair(request.before, request.after, sensor=request.sensor, band_map=request.band_map) as pair:
        box = shapely.box(*pair.grid.bounds)
        step = max(pair.grid.res) * 64
        crs = pair.grid.crs
    return gpd.GeoSeries([box], crs=crs).segmentize(step).to_crs(EXCHANGE_CRS).iloc[0]


# -- executors --------------------------------------------------------------------------------
def _failed(task: TileTask, err: BaseException) -> TileOutcome:
    return TileOutcome(task.tile.tile_id, "failed", error=f"{type(err).__name__}: {err}", error_type=type(err).__name__)


def _run_local(tasks: list[TileTask], workers: int, pool: Any = None) -> Iterator[TileOutcome]:
    """Outcomes as tiles finish, on ``workers`` cores.

    One worker runs the tiles in this process. With more, this process is one of them
    and ``workers - 1`` spawned processes are the others, all taking tiles from one
    queue: this process has everything imported already, so it starts on the first
    tile at once while the others start up (each spawned process pays ~1.5 s of imports
    before its first tile), and no core waits on a process that only collects results.
    A spawned worker that dies fails the tile it held; this process takes the rest.
    Outcomes of the spawned workers are reported between this process's tiles.

    ``pool``: spawned workers started earlier (:func:`swc_rs.workers.start_workers`);
    otherwise they are started here. Either way they are shut down once every tile is in.
    """
    if workers <= 1 or len(tasks) <= 1:
        for task in tasks:
            yield run_tile(task)
        return
    spawned = min(workers, len(tasks)) - 1
    log.info("processing %d tiles with %d worker processes (this one and %d spawned)", len(tasks), spawned + 1, spawned)
    if pool is None:
        pool = start_workers(spawned)
    finished = False
    try:
        # run_tile is looked up when called (tests replace it).
        for _, outcome in share_work(tasks, lambda task: run_tile(task), lambda task: pool.submit(run_tile, task),
                                     spawned, on_lost=_failed):
            yield outcome
        finished = True
    finally:
        # With every tile in, the idle workers wind down (interpreter teardown, ~0.7 s)
        # while the month is assembled; the executor still joins them before exit.
        pool.shutdown(wait=not finished, cancel_futures=True)


def _run_dask(tasks: list[TileTask], scheduler: Any) -> Iterator[TileOutcome]:
    """Outcomes as tiles finish on a Dask distributed cluster.

    ``scheduler`` is an address (``tcp://HOST:PORT``) or a ``distributed.Client``.
    Workers must see the same paths as this process (a shared file system).
    """
    try:
        from distributed import Client, as_completed
    except ImportError as err:  # pragma: no cover - dask[distributed] is a dependency
        raise InputError("the Dask scheduler needs the 'distributed' package", fix="pip install 'dask[distributed]'") from err
    own = not isinstance(scheduler, Client)
    if own:
        try:
            client = Client(scheduler, timeout="30s", set_as_default=False)
        except (OSError, TimeoutError, ValueError) as err:
            raise InputError(
                f"cannot reach the Dask scheduler at {scheduler} ({err})",
                fix="start it (dask scheduler; dask worker tcp://HOST:8786 on each machine) or leave out --scheduler",
            ) from err
    else:
        client = scheduler
    try:
        log.info("processing %d tiles on the Dask cluster at %s", len(tasks), client.scheduler.address)
        token = hashlib.sha256(f"{time.time_ns()}-{os.getpid()}".encode()).hexdigest()[:10]
        futures = client.map(run_tile, tasks, key=[f"swc-tile-{t.tile.tile_id}-{token}" for t in tasks], pure=False)
        by_key = {f.key: t for f, t in zip(futures, tasks, strict=True)}
        for future in as_completed(futures, loop=client.loop):
            try:
                yield future.result()
            except Exception as err:  # KilledWorker, lost connection ...
                yield _failed(by_key[future.key], err)
            finally:
                future.release()
    finally:
        if own:
            client.close()


# -- month assembly ---------------------------------------------------------------------------
def merge_tile_patches(pieces: gpd.GeoDataFrame, tolerance_m: float, grid_size: float = 0.001) -> gpd.GeoDataFrame:
    """Dissolve the pieces of patches cut (or seen twice) by tile edges.

    Parameters
    ----------
    pieces
        Patches of every tile in one metric CRS, with a ``_tile`` column and detect's
        patch fields, in a deterministic order.
    tolerance_m
        Pieces from different tiles that overlap, touch or lie closer than this are one
        patch (pieces of one tile are never joined: detect already did that).
    grid_size
        Precision (metres) of the union; pieces that share an edge up to reprojection
        round-off become one polygon.

    Returns
    -------
    GeoDataFrame
        One row per patch: the union of its pieces (overlaps counted once), the
        attributes of its largest piece, ``_pieces`` (count) and ``_tiles`` (ids).
    """
    if len(pieces) == 0:
        out = pieces.iloc[0:0].copy()
        out["_pieces"] = pd.Series(dtype=int)
        out["_tiles"] = pd.Series(dtype=object)
        return out
    pieces = pieces.reset_index(drop=True)
    geoms = pieces.geometry.values
    tiles = pieces["_tile"].to_numpy()
    tree = shapely.STRtree(geoms)
    left, right = tree.query(geoms, predicate="dwithin", distance=max(tolerance_m, 1e-9))
    keep = (left < right) & (tiles[left] != tiles[right])
    n = len(pieces)
    graph = coo_matrix((np.ones(keep.sum()), (left[keep], right[keep])), shape=(n, n))
    _, labels = connected_components(graph, directed=False)
    area = shapely.area(geoms)
    rows, merged, counts, tile_lists = [], [], [], []
    # Components in order of their first piece, so the result does not depend on timing.
    for label in pd.unique(labels):
        members = np.flatnonzero(labels == label)
        largest = members[np.argmax(area[members])]
        rows.append(largest)
        if len(members) == 1:
            merged.append(geoms[members[0]])
        else:
            merged.append(shapely.make_valid(shapely.union_all(geoms[members], grid_size=grid_size)))
        counts.append(len(members))
        tile_lists.append(",".join(sorted(set(tiles[members]))))
    out = pieces.iloc[rows].copy().reset_index(drop=True)
    out["geometry"] = gpd.GeoSeries([_polygonal(g) for g in merged], crs=pieces.crs)
    out["_pieces"] = counts
    out["_tiles"] = tile_lists
    return gpd.GeoDataFrame(out, geometry="geometry", crs=pieces.crs)


def _polygonal(geom):
    if geom.geom_type in ("Polygon", "MultiPolygon"):
        return geom
    parts = [p for p in shapely.get_parts(geom) if p.geom_type in ("Polygon", "MultiPolygon")]
    return shapely.union_all(parts) if parts else shapely.MultiPolygon()


@dataclass
class MonthResult:
    """A month's result: a :class:`~swc_rs.pipeline.DetectResult` plus finished patches."""

    result: DetectResult
    finished: gpd.GeoDataFrame
    previous: Path | None
    not_observed: int
    #: Per tile: images, sensor, shift, dates and footprint (EPSG:4490), for the evidence chips.
    tiles: list[dict] = field(default_factory=list)
    #: Per month patch (by ``month_qdnm``): its largest piece's ``tile`` and tile ``qdnm``,
    #: and whether it is that piece unchanged (``single``).
    origin: pd.DataFrame | None = None


def find_previous(history: Path, period: str) -> Path | None:
    """The latest month output ``<history>/<YYYYMM>/swc_<YYYYMM>.gpkg`` before ``period``."""
    if not history.is_dir():
        return None
    months = sorted(
        p.name for p in history.iterdir()
        if p.is_dir() and _PERIOD.match(p.name) and p.name < period and (p / f"swc_{p.name}.gpkg").exists()
    )
    return history / months[-1] / f"swc_{months[-1]}.gpkg" if months else None


def assemble_month(plan: BatchPlan, tile_ids: list[str], progress: Progress | None = None) -> MonthResult:
    """Merge the committed tiles of ``plan`` into one month (see the module docstring).

    Raises
    ------
    InputError
        Unreadable zones, projects, sensitive layers, tile results or previous month.
    """
    progress = progress or (lambda stage, done, total: None)
    settings, config = plan.settings, plan.detect
    clock = time.perf_counter()
    started = dt.datetime.now(dt.UTC)
    total = len(tile_ids) + 3
    zones = read_zones(settings.zones, settings.zones_layer or None, AREA_CRS)
    projects = read_projects(settings.projects, settings.projects_layer or None, AREA_CRS)
    sensitive = read_sensitive(settings.sensitive, AREA_CRS)

    frames, footprints, pixel_sizes, dates, sources = [], [], [], [], []
    for done, tile_id in enumerate(sorted(tile_ids), start=1):
        path = plan.tile_path(tile_id)
        frame = read_layer(path, "disturbance_patches", to_crs=AREA_CRS, what="tile result")
        frame["_tile"] = tile_id
        frames.append(frame)
        info = read_layer(path, "run_info", what="tile run_info").iloc[0]
        pixel_sizes.append(float(info["pixel_size_m"]))
        dates.append((str(info.get("date_before", "")), str(info.get("date_after", ""))))
        if info.get("tile_footprint"):
            footprints.append(shapely.from_wkt(info["tile_footprint"]))
            sources.append({"tile_id": tile_id, "output": path,
                            "before": str(info.get("before", "")), "after": str(info.get("after", "")),
                            "sensor": str(info.get("sensor", "auto")),
                            "shift": (float(info.get("shift_rows") or 0.0), float(info.get("shift_cols") or 0.0)),
                            "dates": dates[-1], "footprint": footprints[-1]})
        progress(ASSEMBLY_STAGE, done, total)
    pieces = gpd.GeoDataFrame(pd.concat(frames, ignore_index=True), geometry="geometry", crs=AREA_CRS)
    patches = merge_tile_patches(pieces, settings.seam_tolerance_m)
    n_pieces = len(pieces)
    progress(ASSEMBLY_STAGE, len(tile_ids) + 1, total)

    pixel_m = float(np.median(pixel_sizes)) if pixel_sizes else 2.0
    patches["QAREA"] = np.round(shapely.area(patches.geometry.values) / 10_000, 4)
    patches["X_ZONE"] = _assign_zones(patches, zones) if len(patches) else np.array([], dtype=object)
    base = patches[["QTYPE", "QAREA", "X_ZONE", "X_CONF", "X_T1", "X_T2", "X_SHIFT", "NOTE", "geometry"]]
    judged = compliance.judge(gpd.GeoDataFrame(base, crs=AREA_CRS), projects, sensitive, config, pixel_size_m=pixel_m)
    cent = judged.geometry.representative_point()
    order = np.lexsort((np.round(cent.x.to_numpy(), 1), -np.round(cent.y.to_numpy(), 1)))
    judged = judged.iloc[order].reset_index(drop=True)
    # Where each month patch came from: a patch of one piece is its tile's patch unchanged
    # (its evidence chips, if the tile made them, can be reused under the month's QDNM).
    origin = pd.DataFrame({"tile": patches["_tile"].to_numpy()[order], "qdnm": patches["QDNM"].astype(str).to_numpy()[order],
                           "single": (patches["_pieces"].to_numpy() == 1)[order]})

    previous_path = settings.previous or find_previous(settings.history or settings.output, plan.period)
    previous = None
    if previous_path is not None:
        log.info("previous month: %s", previous_path)
        previous = read_layer(previous_path, "disturbance_patches", to_crs=AREA_CRS, what="previous month")
        if "QDNM" not in previous.columns:
            raise InputError("the previous month has no QDNM field", path=previous_path,
                             fix="give a GeoPackage written by swc-rs detect or batch")
        previous = previous.reset_index(drop=True)
    else:
        log.info("no previous month before %s in %s: every patch is 新增", plan.period, settings.history or settings.output)
    prefix = f"{config.compliance.admin_code}-{plan.period}"
    judged["QDNM"], judged["QDTYPE"] = link_previous(judged, previous, prefix, config.history)
    judged["QDCS"] = ""
    judged["RST"] = codes.NOT_CHECKED
    judged["X_REASON"] = ""
    judged["geometry"] = judged.geometry.apply(_multi)
    judged = judged[list(PATCH_FIELDS) + ["geometry"]]
    progress(ASSEMBLY_STAGE, len(tile_ids) + 2, total)

    finished, not_observed = _finished_patches(previous, judged, footprints, plan, config)
    project_summary = compliance.summarise_projects(projects, judged)
    project_summary["geometry"] = project_summary.geometry.apply(_multi)
    zone_summary = compliance.summarise_zones(zones, judged)
    zone_summary["geometry"] = zone_summary.geometry.apply(_multi)
    t1 = min((d[0] for d in dates if d[0]), default="")
    t2 = max((d[1] for d in dates if d[1]), default="")
    model = plan.model_path
    run_info = {
        "started_utc": started.isoformat(timespec="seconds"),
        "swc_rs_version": __version__,
        "python": platform.python_version(),
        "kind": "batch month",
        "config": str(plan.source or ""),
        "period": plan.period,
        "tiles": ",".join(sorted(tile_ids)),
        "n_tiles": len(tile_ids),
        "n_tile_pieces": n_pieces,
        "zones": str(settings.zones),
        "zones_sha256": file_checksum(settings.zones),
        "projects": str(settings.projects),
        "projects_sha256": file_checksum(settings.projects),
        "sensitive": ";".join(str(p) for p in settings.sensitive),
        "sensitive_sha256": ";".join(file_checksum(p) for p in settings.sensitive),
        "previous": str(previous_path or ""),
        "date_before": t1,
        "date_after": t2,
        "area_crs": AREA_CRS,
        "pixel_size_m": round(pixel_m, 3),
        "model": str(model) if model else "rules",
        "parameters": config.to_dict(),
        "n_patches": int(len(judged)),
        "n_suspected": int(judged["BYD"].str.startswith(codes.SUSPECTED_PREFIX).sum()),
        "n_finished": int(len(finished)),
        "timings_s": {"assembly": round(time.perf_counter() - clock, 3)},
    }
    result = DetectResult(
        patches=judged.to_crs(EXCHANGE_CRS),
        projects=project_summary.to_crs(EXCHANGE_CRS),
        zones=zone_summary.to_crs(EXCHANGE_CRS),
        run_info=run_info,
        features=None,
    )
    progress(ASSEMBLY_STAGE, total, total)
    origin["month_qdnm"] = judged["QDNM"].to_numpy()
    return MonthResult(result=result, finished=finished.to_crs(EXCHANGE_CRS), previous=previous_path, not_observed=not_observed,
                       tiles=sources, origin=origin)


def _finished_patches(previous, current, footprints, plan: BatchPlan, config: DetectConfig):
    """Previous patches not detected again (完工), inside this month's tiles.

    A previous patch is finished when no current patch took its QDNM, current patches
    cover less than ``history.min_overlap`` of it (otherwise it merged into one), and at
    least ``finished_min_coverage`` of it lies inside the tiles processed this month.
    Returns the finished rows (QDTYPE 完工) and the count of previous patches that lay
    outside the processed tiles (not observed, so not judged).
    """
    empty = gpd.GeoDataFrame({c: pd.Series(dtype=object) for c in PATCH_FIELDS}, geometry=gpd.GeoSeries([], crs=current.crs), crs=current.crs)
    if previous is None or len(previous) == 0:
        return empty, 0
    geoms = previous.geometry.values
    area = np.maximum(shapely.area(geoms), 1e-9)
    taken = previous["QDNM"].astype(str).isin(set(current["QDNM"])).to_numpy()
    covered_now = np.zeros(len(previous))
    if len(current):
        tree = shapely.STRtree(current.geometry.values)
        pidx, cidx = tree.query(geoms, predicate="intersects")
        if len(pidx):
            inter = shapely.area(shapely.intersection(geoms[pidx], current.geometry.values[cidx]))
            np.add.at(covered_now, pidx, inter)
    covered_now /= area
    seen = shapely.union_all(footprints) if footprints else shapely.Polygon()
    if footprints:
        seen = gpd.GeoSeries([seen], crs="EPSG:4490").to_crs(current.crs).iloc[0]
    observed = shapely.area(shapely.intersection(geoms, seen)) / area >= plan.settings.finished_min_coverage
    gone = ~taken & (covered_now < config.history.min_overlap)
    finished = previous[gone & observed].copy()
    for name in PATCH_FIELDS:
        if name not in finished.columns:
            finished[name] = ""
    finished["QDTYPE"] = codes.QDTYPE[4]
    finished["NOTE"] = f"{plan.period} 未再检出"
    finished["geometry"] = finished.geometry.apply(_multi)
    finished = gpd.GeoDataFrame(finished[list(PATCH_FIELDS) + ["geometry"]], geometry="geometry", crs=current.crs)
    return finished.reset_index(drop=True), int((gone & ~observed).sum())


def month_chips(month: MonthResult) -> list:
    """Before/after evidence chips of the month's suspected patches.

    A patch that is one tile's patch unchanged takes the chips its tile already made
    (renamed to the month's QDNM); the others (merged across tiles, or suspected only
    after the month's re-judging) are cut from the tile that holds the patch's
    representative point (a merged patch shows the part in that tile, its whole outline
    drawn). Patches outside every tile get none."""
    from swc_rs.export.chips import make_chips_threaded, read_chips, run_options

    violations = month.result.violations
    if len(violations) == 0 or not month.tiles:
        return []
    # A patch that is one tile's patch unchanged reuses the chips that tile already made.
    chips = []
    if month.origin is not None:
        wanted = month.origin[month.origin["single"] & month.origin["month_qdnm"].isin(set(violations["QDNM"]))]
        paths = {s["tile_id"]: s.get("output") for s in month.tiles}
        for tile_id, rows in wanted.groupby("tile"):
            if not paths.get(tile_id):
                continue
            rename = dict(zip(rows["qdnm"], rows["month_qdnm"], strict=True))
            for chip in read_chips(paths[tile_id]):
                if chip.QDNM in rename:
                    chips.append(dataclasses.replace(chip, QDNM=rename[chip.QDNM]))
    have = {c.QDNM for c in chips if c.DATE_KIND == "before"} & {c.QDNM for c in chips if c.DATE_KIND == "after"}
    chips = [c for c in chips if c.QDNM in have]
    violations = violations[~violations["QDNM"].isin(have)]
    if len(violations) == 0:
        return chips
    points = violations.geometry.representative_point().values
    owner = np.full(len(violations), -1)
    for k, source in enumerate(month.tiles):
        owner[(owner < 0) & shapely.contains(source["footprint"], points)] = k
    for k in np.unique(owner[owner >= 0]):
        source = month.tiles[k]
        try:
            chips.extend(make_chips_threaded(violations[owner == k], source["before"], source["after"],
                                              sensor=source["sensor"], shift=source["shift"], dates=source["dates"],
                                              options=run_options(month.result.run_info)))
        except (SwcError, OSError) as err:  # the month is not lost for want of a picture
            log.warning("no evidence chips from tile %s: %s", source["tile_id"], err)
    return chips


def write_month(month: MonthResult, path: Path, *, overwrite: bool = False) -> Path:
    """Write the month GeoPackage atomically: detect's layers plus ``finished_patches`` and
    the suspected patches' evidence chips (from the tile images)."""
    # One atomic write: the embedded QGIS project then names the month file itself.
    return write_result(month.result, path, overwrite=overwrite, extra_layers={FINISHED_LAYER: month.finished},
                        chips=month_chips(month))


# -- the run ------------------------------------------------------------------------------------
@dataclass
class BatchSummary:
    """What a batch run did; :attr:`exit_code` is 4 when some tiles failed."""

    period: str
    outcomes: list[TileOutcome]
    month_path: Path | None
    summary_path: Path
    patches: dict
    timings_s: dict
    executor: str
    previous: Path | None = None
    started_utc: str = ""
    finished_utc: str = ""
    config: str = ""
    resume: bool = False

    def count(self, status: str) -> int:
        return sum(o.status == status for o in self.outcomes)

    @property
    def failed(self) -> list[TileOutcome]:
        return [o for o in self.outcomes if o.status == "failed"]

    @property
    def exit_code(self) -> int:
        return 4 if self.failed else 0

    def to_dict(self) -> dict:
        return {
            "period": self.period,
            "config": self.config,
            "started_utc": self.started_utc,
            "finished_utc": self.finished_utc,
            "executor": self.executor,
            "resume": self.resume,
            "month_output": str(self.month_path) if self.month_path else None,
            "previous_month": str(self.previous) if self.previous else None,
            "tiles": {"total": len(self.outcomes), "done": self.count("done"), "skipped": self.count("skipped"),
                      "failed": self.count("failed")},
            "failed_tiles": [{"tile_id": o.tile_id, "error": o.error, "error_type": o.error_type} for o in self.failed],
            "tile_results": [o.to_dict() for o in self.outcomes],
            "patches": self.patches,
            "timings_s": self.timings_s,
            "exit_code": self.exit_code,
        }


def config_fingerprint(plan: BatchPlan) -> str:
    """Hash of everything that shapes a tile result except the tile's own images."""
    settings = plan.settings
    model = plan.model_path
    parts = {
        "detect": plan.detect.to_dict(),
        "model": file_checksum(model) if model and Path(model).exists() else "rules",
        "sensor": settings.sensor,
        "bands": settings.bands,
        "zones": file_checksum(settings.zones) if settings.zones.exists() else str(settings.zones),
        "projects": file_checksum(settings.projects) if settings.projects.exists() else str(settings.projects),
        "sensitive": [file_checksum(p) if p.exists() else str(p) for p in settings.sensitive],
        "layers": [settings.zones_layer, settings.projects_layer],
        "version": __version__,
    }
    return hashlib.sha256(json.dumps(parts, sort_keys=True, ensure_ascii=False, default=str).encode()).hexdigest()


@contextlib.contextmanager
def _lock(folder: Path):
    """Hold ``folder/.batch.lock`` so two runs never write one month at once."""
    path = folder / ".batch.lock"
    fh = path.open("a+")
    try:
        try:
            import fcntl

            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except ImportError:  # pragma: no cover - not on POSIX
            pass
        except OSError as err:
            raise InputError("another swc-rs batch run is writing this month", path=folder,
                             fix="wait for it to finish (or stop it) and run again with --resume") from err
        yield
    finally:
        fh.close()


def _write_json(path: Path, data: dict) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(data, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    os.replace(tmp, path)


def _requests(plan: BatchPlan) -> list[TileTask]:
    settings = plan.settings
    band_map = parse_band_map(settings.bands) if settings.bands else None
    model = plan.model_path
    return [
        TileTask(
            tile=tile,
            request=DetectRequest(
                before=tile.before, after=tile.after, zones=settings.zones, projects=settings.projects,
                sensitive=settings.sensitive, sensor=settings.sensor, band_map=band_map, config=plan.detect,
                model=model, zones_layer=settings.zones_layer or None, projects_layer=settings.projects_layer or None,
                workers=1, previous=None, change_model="rules" if settings.model == "rules" else "auto",
            ),
            output=plan.tile_path(tile.tile_id),
        )
        for tile in plan.tiles
    ]


def run_batch(
    plan: BatchPlan,
    *,
    scheduler: Any = None,
    resume: bool = False,
    overwrite: bool = False,
    progress: Progress | None = None,
    local_pool: Any = None,
) -> BatchSummary:
    """Run every tile of ``plan`` and assemble the month.

    Parameters
    ----------
    plan
        From :func:`load_batch`.
    scheduler
        None for local worker processes (``plan.settings.workers``; one worker runs the
        tiles in this process), a Dask scheduler address ``tcp://HOST:PORT``, or a
        ``distributed.Client``.
    resume
        Skip tiles committed by an earlier run of the same configuration.
    overwrite
        Replace an existing month output; without ``resume`` also recompute every tile.
    progress
        Optional callback ``progress(stage, done, total)``.
    local_pool
        Spawned workers started earlier (:func:`swc_rs.workers.start_workers`, with
        ``workers - 1`` processes) for the local run; shut down once every tile is in.

    Returns
    -------
    BatchSummary
        Also written as ``swc_<period>.summary.json`` next to the month output.

    Raises
    ------
    OutputExistsError
        The month output exists (without ``overwrite``), or tiles of an earlier run are
        there (without ``resume`` or ``overwrite``).
    ConfigError
        ``resume`` over tiles made with another configuration.
    InputError
        Unreachable scheduler, unreadable zones/projects at assembly. A bad *tile* is
        never raised: it is recorded in the summary.
    """
    progress = progress or (lambda stage, done, total: None)
    t0 = time.perf_counter()
    started = dt.datetime.now(dt.UTC)
    if plan.month_path.exists() and not overwrite:
        raise OutputExistsError("the month output already exists", path=plan.month_path,
                                fix="months are kept side by side; pass --overwrite to replace this one")
    plan.tiles_dir.mkdir(parents=True, exist_ok=True)
    tasks = _requests(plan)
    with _lock(plan.month_dir):
        committed = {t.tile.tile_id for t in tasks if t.output.exists()}
        manifest_path = plan.tiles_dir / MANIFEST
        fingerprint = config_fingerprint(plan)
        if committed and not resume:
            if not overwrite:
                raise OutputExistsError(
                    f"{len(committed)} tile result(s) of an earlier run are in this folder", path=plan.tiles_dir,
                    fix="pass --resume to continue that run, or --overwrite to start the month over",
                )
            for tile_id in committed:
                plan.tile_path(tile_id).unlink()
            committed = set()
        if committed and manifest_path.exists():
            old = json.loads(manifest_path.read_text(encoding="utf-8")).get("fingerprint")
            if old != fingerprint:
                raise ConfigError(
                    "the committed tiles were made with another configuration (detect parameters, model, zones or projects changed)",
                    path=plan.tiles_dir, fix="run without --resume and with --overwrite to start the month over",
                )
        for stale in plan.tiles_dir.glob(".*.gpkg*"):  # temporaries of a killed write
            stale.unlink(missing_ok=True)
        _write_json(manifest_path, {"fingerprint": fingerprint, "period": plan.period, "config": str(plan.source or ""),
                                    "swc_rs_version": __version__})

        outcomes: dict[str, TileOutcome] = {t: TileOutcome(t, "skipped") for t in committed}
        todo = [t for t in tasks if t.tile.tile_id not in committed]
        if committed:
            log.info("resuming: %d of %d tiles already committed", len(committed), len(tasks))
        workers = plan.settings.workers or available_cores()
        if scheduler is not None:
            executor = f"dask {getattr(getattr(scheduler, 'scheduler', None), 'address', scheduler)}"
            stream = _run_dask(todo, scheduler) if todo else iter(())
        else:
            executor = f"local, {min(workers, max(len(todo), 1))} worker process(es)"
            stream = _run_local(todo, workers, local_pool)
        progress(TILES_STAGE, len(committed), len(tasks))
        for outcome in stream:
            outcomes[outcome.tile_id] = outcome
            _log_outcome(outcome)
            progress(TILES_STAGE, len(outcomes), len(tasks))
        t_tiles = time.perf_counter() - t0

        ordered = [outcomes[t.tile.tile_id] for t in tasks]
        good = [o.tile_id for o in ordered if o.status in ("done", "skipped")]
        month_path, previous, patch_counts = None, None, {}
        if good:
            month = assemble_month(plan, good, progress)
            month_path = write_month(month, plan.month_path, overwrite=overwrite)
            previous = month.previous
            patch_counts = _patch_counts(month)
        else:
            log.error("every tile failed; no month output was written")
        t_total = time.perf_counter() - t0
        summary = BatchSummary(
            period=plan.period, outcomes=ordered, month_path=month_path, summary_path=plan.summary_path,
            patches=patch_counts, executor=executor, previous=previous, resume=resume,
            started_utc=started.isoformat(timespec="seconds"),
            finished_utc=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            config=str(plan.source or ""),
            timings_s={"tiles": round(t_tiles, 3), "assembly": round(t_total - t_tiles, 3), "total": round(t_total, 3),
                       "tile_seconds_sum": round(sum(o.seconds for o in ordered), 3)},
        )
        _write_json(plan.summary_path, summary.to_dict())
    return summary


def _log_outcome(outcome: TileOutcome) -> None:
    for text in outcome.warnings:
        log.warning("tile %s: %s", outcome.tile_id, text)
    if outcome.status == "failed":
        log.warning("tile %s failed: %s", outcome.tile_id, outcome.error)
    else:
        log.info("tile %s: %d patches in %.1f s", outcome.tile_id, outcome.patches, outcome.seconds)


def _patch_counts(month: MonthResult) -> dict:
    patches = month.result.patches
    suspected = patches["BYD"].fillna("").str.startswith(codes.SUSPECTED_PREFIX)

    def tally(column, rows=patches):
        return {(str(k) or NO_VERDICT): int(v) for k, v in Counter(rows[column].fillna("")).most_common()}

    return {
        "total": int(len(patches)),
        "area_hm2": round(float(patches["QAREA"].sum()), 4),
        "suspected": int(suspected.sum()),
        "by_BYD": tally("BYD"),
        "by_colour": tally("X_COLOR"),
        "by_colour_suspected": tally("X_COLOR", patches[suspected]),
        "by_QDTYPE": tally("QDTYPE"),
        "by_QTYPE": tally("QTYPE"),
        "finished": int(len(month.finished)),
        "previous_not_observed": int(month.not_observed),
    }


__all__ = [
    "BatchPlan", "BatchSettings", "BatchSummary", "CatalogConfig", "MonthResult", "Tile", "TileOutcome", "TileTask",
    "assemble_month", "find_previous", "load_batch", "merge_tile_patches", "previous_period", "read_catalog",
    "run_batch", "run_tile", "write_month",
]
