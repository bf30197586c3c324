"""Evidence chips: before/after true-colour images of every suspected patch.

Each suspected patch gets two chips (BEFORE and AFTER, on the same grid, AFTER shifted
by the run's misregistration estimate) with the patch outline drawn, cut with a margin
that grows with the patch so its surroundings show. They are JPEG by default (colour at
full resolution; ~1/3 the bytes of PNG and ~10× faster to encode) or PNG (``[chips]
format``). They are stored in the GeoPackage's ``chips`` table (one row per patch and
date, linked by QDNM) and can be written to a folder. Imagery is read only through
:class:`swc_rs.raster.RasterPair`, or cut from the pixels detect's window pass kept
around each patch (:mod:`swc_rs.crops`), which saves decoding the images a second time.

``chips`` table: ``fid``, ``QDNM`` (图斑编号), ``DATE_KIND`` (``before``/``after``),
``DATE`` (ISO image date), ``MIME`` (``image/jpeg`` or ``image/png``), ``IMAGE`` (BLOB),
``WIDTH``, ``HEIGHT`` (pixels). GeoPackages written before 2026-12 hold a ``PNG`` column
instead of ``MIME``/``IMAGE``; they are read as well.
"""

from __future__ import annotations

import io
import logging
import sqlite3
import zlib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyproj
import shapely
from PIL import Image, ImageDraw

from swc_rs.config import ChipsConfig
from swc_rs.crops import DEFAULT_OPTIONS, TRUE_COLOUR, CropRef, chip_window, read_crop
from swc_rs.errors import InputFileError, OutputExistsError, SwcError
from swc_rs.raster import run_image_args

log = logging.getLogger(__name__)

TABLE = "chips"
DATE_KINDS = ("before", "after")
#: Outline colour drawn on the chips (magenta: rare in nature, visible on soil and forest).
OUTLINE_RGB = (255, 0, 255)
#: Pixels per band sampled for a chip's stretch limits.
_STRETCH_SAMPLE = 16_384
#: How chips are cut, drawn and encoded: the ``[chips]`` section of the run configuration.
ChipOptions = ChipsConfig
#: File name extension by MIME type.
EXTENSIONS = {"image/jpeg": ".jpg", "image/png": ".png"}


def sniff_mime(blob: bytes) -> str | None:
    """``image/png`` or ``image/jpeg`` from the first bytes of ``blob``, else None."""
    if blob[:8] == b"\x89PNG\r\n\x1a\n":
        return "image/png"
    if blob[:3] == b"\xff\xd8\xff":
        return "image/jpeg"
    return None


@dataclass(frozen=True)
class Chip:
    QDNM: str
    DATE_KIND: str
    DATE: str
    IMAGE: bytes
    WIDTH: int
    HEIGHT: int

    @property
    def mime(self) -> str:
        return sniff_mime(self.IMAGE) or "application/octet-stream"

    @property
    def filename(self) -> str:
        """``<QDNM>_<before|after>.jpg`` (or ``.png``)."""
        return f"{self.QDNM}_{self.DATE_KIND}{EXTENSIONS.get(self.mime, '.bin')}"


def stretch(rgb: np.ndarray, valid: np.ndarray, low: float = 2, high: float = 98) -> tuple[np.ndarray, np.ndarray]:
    """Per-band percentile limits (3,) of reflectance ``rgb`` (3, h, w) over ``valid`` pixels."""
    step = max(1, int(np.ceil(np.sqrt(valid.size / _STRETCH_SAMPLE))))  # percentiles of a regular sample
    rgb, valid = rgb[:, ::step, ::step], valid[::step, ::step]
    values = rgb[:, valid] if valid.any() else rgb.reshape(3, -1)
    lo, hi = np.percentile(values, [low, high], axis=1)
    return lo, np.maximum(hi, lo + 1e-4)


#: Display gamma of the chips, applied through a table over this many input levels.
_GAMMA = 1.2
_LEVELS = 4096
_GAMMA_TABLE = np.round(np.linspace(0.0, 1.0, _LEVELS) ** (1 / _GAMMA) * 254).astype(np.uint8)  # 254: the outline stays unique


def encode_chip(rgb: np.ndarray, valid: np.ndarray, lo: np.ndarray, hi: np.ndarray,
                rings: list[np.ndarray], options: ChipOptions = DEFAULT_OPTIONS) -> tuple[bytes, int, int]:
    """Encode a (3, h, w) reflectance chip as ``options.format`` with ``rings`` (pixel
    x/y arrays) drawn.

    Returns the image bytes and its width and height.
    """
    gain = ((_LEVELS - 1) / (hi - lo)).astype(np.float32)[:, None, None]
    level = (rgb - lo.astype(np.float32)[:, None, None]) * gain
    np.clip(level, 0, _LEVELS - 1, out=level)
    pixels = _GAMMA_TABLE[level.astype(np.uint16).transpose(1, 2, 0)]
    pixels[~valid] = (40, 40, 40)
    height, width = pixels.shape[:2]
    zoom = options.size_px / max(height, width)
    out_w, out_h = max(1, round(width * zoom)), max(1, round(height * zoom))
    image = Image.fromarray(pixels, "RGB").resize((out_w, out_h), Image.Resampling.BILINEAR if zoom < 1 else Image.Resampling.NEAREST)
    draw = ImageDraw.Draw(image)
    scale = np.array([out_w / width, out_h / height])
    for ring in rings:
        if len(ring) >= 2:
            points = [tuple(p) for p in (np.vstack([ring, ring[:1]]) * scale).tolist()]
            draw.line(points, fill=OUTLINE_RGB, width=options.outline_px, joint="curve")
    buffer = io.BytesIO()
    if options.format == "png":
        # zlib level 1 with run-length matching after PNG's row filters: ~2× faster than
        # the default level 6 and smaller than plain level 1 (optimize=True: ~10× slower).
        image.save(buffer, format="PNG", compress_level=1, compress_type=zlib.Z_RLE)
    else:  # no chroma subsampling: the thin magenta outline keeps its colour
        image.save(buffer, format="JPEG", quality=options.jpeg_quality, subsampling=0)
    return buffer.getvalue(), out_w, out_h


def _rings_px(geom, inverse, col0: int, row0: int) -> list[np.ndarray]:
    rings = []
    for polygon in shapely.get_parts(geom):
        for ring in (polygon.exterior, *polygon.interiors):
            xy = np.asarray(ring.coords)[:, :2]
            cols, rows = inverse * (xy[:, 0], xy[:, 1])
            rings.append(np.column_stack([np.asarray(cols) - col0, np.asarray(rows) - row0]))
    return rings


def make_chips(violations, before: str | Path, after: str | Path, *, sensor: str = "auto",
               shift: tuple[float, float] = (0.0, 0.0), dates: tuple[str, str] = ("", ""),
               options: ChipOptions = DEFAULT_OPTIONS, crops: Mapping[str, CropRef] | None = None) -> Iterator[Chip]:
    """Before and after chips of every patch in ``violations`` (GeoDataFrame with QDNM).

    ``crops``: the pixels around patches kept from detect's window pass, by QDNM
    (:mod:`swc_rs.crops`); a patch whose crop holds its chip window is cut from there,
    any other is read from the images.

    Raises
    ------
    swc_rs.errors.InputError
        The images cannot be opened or lack red/green/blue bands.
    """
    from swc_rs.errors import RasterInputError
    from swc_rs.raster import RasterPair

    if len(violations) == 0:
        return
    with RasterPair(before, after, sensor=sensor) as pair:
        missing = [r for r in TRUE_COLOUR if r not in pair.roles]
        if missing:
            raise RasterInputError(f"has no {', '.join(missing)} band for true-colour chips", path=before)
        pair.set_shift(*shift)
        frame = violations.to_crs(pyproj.CRS.from_user_input(pair.grid.crs.to_wkt()))
        inverse = ~pair.grid.transform
        for qdnm, geom in zip(frame["QDNM"], frame.geometry, strict=True):
            if geom is None or geom.is_empty:
                continue
            xmin, ymin, xmax, ymax = geom.bounds
            corners_c, corners_r = inverse * (np.array([xmin, xmax, xmin, xmax]), np.array([ymin, ymin, ymax, ymax]))
            bounds_px = (min(corners_c), min(corners_r), max(corners_c), max(corners_r))
            window = chip_window(bounds_px, pair.grid.shape, options)
            if window is None:
                log.warning("patch %s lies outside the images; no chips", qdnm)
                continue
            ref = crops.get(str(qdnm)) if crops else None
            kept = read_crop(ref, window) if ref is not None else None
            rgb_b, rgb_a, valid = kept if kept is not None else pair.read(window, roles=TRUE_COLOUR)
            # One stretch for both dates, so a change in brightness stays visible.
            lo, hi = stretch(np.concatenate([rgb_b, rgb_a], axis=2), np.concatenate([valid, valid], axis=1))
            rings = _rings_px(geom, inverse, int(window.col_off), int(window.row_off))
            for kind, rgb, date in (("before", rgb_b, dates[0]), ("after", rgb_a, dates[1])):
                image, width, height = encode_chip(rgb, valid, lo, hi, rings, options)
                yield Chip(str(qdnm), kind, date or "", image, width, height)


# -- GeoPackage table -------------------------------------------------------------------
def create_table(con: sqlite3.Connection) -> None:
    from swc_rs.export.styles import register_attributes_table

    con.execute(
        f'CREATE TABLE IF NOT EXISTS "{TABLE}" ("fid" INTEGER PRIMARY KEY AUTOINCREMENT NOT NULL, '
        '"QDNM" TEXT NOT NULL, "DATE_KIND" TEXT NOT NULL, "DATE" TEXT, "MIME" TEXT NOT NULL, '
        '"IMAGE" BLOB NOT NULL, "WIDTH" INTEGER, "HEIGHT" INTEGER)'
    )
    con.execute(f'CREATE INDEX IF NOT EXISTS "idx_{TABLE}_QDNM" ON "{TABLE}" ("QDNM")')
    register_attributes_table(con, TABLE, "before/after evidence chips of the suspected patches (JPEG or PNG, see MIME)")


def store_chips(con: sqlite3.Connection, chips) -> int:
    """Insert ``chips`` (replacing those of the same QDNM and date); returns how many."""
    create_table(con)
    count = 0
    for chip in chips:
        con.execute(f'DELETE FROM "{TABLE}" WHERE "QDNM" = ? AND "DATE_KIND" = ?', (chip.QDNM, chip.DATE_KIND))
        con.execute(f'INSERT INTO "{TABLE}" ("QDNM", "DATE_KIND", "DATE", "MIME", "IMAGE", "WIDTH", "HEIGHT") '
                    "VALUES (?, ?, ?, ?, ?, ?, ?)",
                    (chip.QDNM, chip.DATE_KIND, chip.DATE, chip.mime, sqlite3.Binary(chip.IMAGE), chip.WIDTH,
                     chip.HEIGHT))
        count += 1
    return count


def run_options(info: dict) -> ChipOptions:
    """The ``[chips]`` options a run used (its run_info ``parameters``, a dict or JSON);
    the defaults when it has none."""
    import json

    parameters = info.get("parameters")
    if isinstance(parameters, str):
        try:
            parameters = json.loads(parameters)
        except ValueError:
            parameters = None
    section = parameters.get("chips") if isinstance(parameters, dict) else None
    if not isinstance(section, dict):
        return ChipOptions()
    known = {k: v for k, v in section.items() if k in ChipOptions.__dataclass_fields__}
    return ChipOptions(**known)


def make_chips_threaded(violations, before, after, *, threads: int | None = None, executor=None,
                        **kwargs) -> list[Chip]:
    """:func:`make_chips` over slices of ``violations`` at once: ``threads`` threads here
    (each opens its own datasets; reading, resampling and encoding release the GIL) and,
    with ``executor`` (idle worker processes, e.g. detect's window workers), one slice
    per worker process beside them. Chips come back in the order of ``violations``."""
    from concurrent.futures import ThreadPoolExecutor

    from swc_rs.workers import available_cores, pool_size

    spawned = pool_size(executor)
    if threads is None:
        threads = max(1, available_cores() - spawned)
    parts = max(1, min(threads + spawned, len(violations) // 20))  # a slice is worth it from ~20 patches
    if parts == 1:
        return list(make_chips(violations, before, after, **kwargs))
    # Each slice a band of the image (rows of patches by their northern edge, then west to
    # east), so that the processes and threads decode different image blocks.
    xmin, _, _, ymax = violations.geometry.bounds.to_numpy().T
    finite = np.isfinite(ymax) & np.isfinite(xmin)  # an empty geometry has no bounds
    top = ymax[finite].max() if finite.any() else 0.0
    span = max(float(np.ptp(ymax[finite])) if finite.any() else 0.0, 1e-9)
    stripe = np.where(finite, np.floor((top - np.where(finite, ymax, top)) / span * 4 * parts), 0.0)
    order = np.lexsort((np.where(finite, xmin, 0.0), stripe))
    bounds = np.linspace(0, len(violations), parts + 1).astype(int)
    slices = [violations.iloc[order[bounds[k]:bounds[k + 1]]] for k in range(parts)]
    remote = []
    for part in slices[:min(spawned, parts - 1)]:  # the first slices to the workers, the rest here
        try:
            remote.append(executor.submit(_chip_list, part, before, after, _own_crops(part, kwargs)))
        except RuntimeError:  # the pool is shut down or broken: make them here
            break
    local = slices[len(remote):]
    with ThreadPoolExecutor(max_workers=len(local), thread_name_prefix="swc-rs-chips") as pool:
        here = list(pool.map(lambda part: _chip_list(part, before, after, kwargs), local))
    made = []
    for future, part in zip(remote, slices, strict=False):
        try:
            made.append(future.result())
        except SwcError:
            raise
        except Exception:  # noqa: BLE001 - the worker died: make its slice here
            log.debug("chips in a worker failed; making them here", exc_info=True)
            made.append(_chip_list(part, before, after, kwargs))
    by_patch: dict = {}
    for chips in made + here:
        for chip in chips:  # a patch without chips (off the grid) has none here either
            by_patch.setdefault(chip.QDNM, []).append(chip)
    return [chip for qdnm in dict.fromkeys(str(q) for q in violations["QDNM"]) for chip in by_patch.get(qdnm, [])]


def _chip_list(violations, before, after, kwargs: dict) -> list[Chip]:
    return list(make_chips(violations, before, after, **kwargs))


def _own_crops(part, kwargs: dict) -> dict:
    """``kwargs`` with only ``part``'s crops (what a worker process is sent)."""
    crops = kwargs.get("crops")
    if not crops:
        return kwargs
    return {**kwargs, "crops": {q: crops[q] for q in map(str, part["QDNM"]) if q in crops}}


def result_chips(result, options: ChipOptions | None = None, threads: int | None = None,
                 executor=None) -> list[Chip]:
    """The chips of ``result``'s suspected patches, cut from ``result.run_info``'s images.

    ``options``: None takes the run's ``[chips]`` configuration. ``threads``: chip-making
    threads here (None: one per core not taken by ``executor``'s worker processes, which
    make a slice each when given). When the images cannot be read the chips are left out
    with a warning (the detection itself is not lost).
    """
    info = result.run_info
    options = run_options(info) if options is None else options
    crops = getattr(result, "chip_crops", None) or {}
    violations = result.violations
    if len(violations):
        log.info("making the evidence chips of %d suspected patches (%d cut from the pixels the windows kept)",
                 len(violations), sum(str(q) in crops for q in violations["QDNM"]))
    try:
        return make_chips_threaded(violations, info["before"], info["after"], **run_image_args(info),
                                   options=options, threads=threads, executor=executor, crops=crops)
    except (SwcError, OSError, KeyError) as err:
        log.warning("no evidence chips: %s", err)
        return []


def write_chips(gpkg: str | Path, result, options: ChipOptions | None = None, threads: int | None = None,
                chips: list[Chip] | None = None) -> int:
    """Add the chips of ``result``'s suspected patches to ``gpkg`` (the temporary output):
    ``chips`` when given (made earlier), else :func:`result_chips`.

    Returns
    -------
    int
        Number of chips written.
    """
    chips = result_chips(result, options, threads) if chips is None else chips
    con = sqlite3.connect(gpkg)
    try:
        with con:
            return store_chips(con, chips)
    finally:
        con.close()


def read_chips(gpkg: str | Path) -> list[Chip]:
    """The chips stored in ``gpkg`` (empty when it has none)."""
    con = sqlite3.connect(f"file:{Path(gpkg)}?mode=ro", uri=True)
    try:
        exists = con.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (TABLE,)).fetchone()
        if not exists:
            return []
        columns = {row[1] for row in con.execute(f'PRAGMA table_info("{TABLE}")')}
        blob = "IMAGE" if "IMAGE" in columns else "PNG"  # "PNG": written before 2026-12
        rows = con.execute(f'SELECT "QDNM", "DATE_KIND", "DATE", "{blob}", "WIDTH", "HEIGHT" FROM "{TABLE}" '
                           'ORDER BY "QDNM", "DATE_KIND" DESC').fetchall()
    finally:
        con.close()
    return [Chip(q, k, d or "", bytes(p), w, h) for q, k, d, p, w, h in rows]


def chips_for_output(gpkg: str | Path) -> list[Chip]:
    """The chips of an OUT.gpkg: stored ones, else made now from its run_info images."""
    import geopandas as gpd
    import pyogrio

    chips = read_chips(gpkg)
    if chips:
        return chips
    info = pyogrio.read_dataframe(gpkg, layer="run_info").iloc[-1].to_dict()
    violations = gpd.read_file(gpkg, layer="suspected_violations")
    return list(make_chips(violations, info["before"], info["after"], **run_image_args(info), options=run_options(info)))


def export_chips(gpkg: str | Path, folder: str | Path, *, overwrite: bool = False, chips=None) -> list[Path]:
    """Write the chips of ``gpkg`` to ``folder`` as ``<QDNM>_<before|after>.jpg`` (``.png``
    for PNG chips).

    Raises
    ------
    OutputExistsError
        A chip file exists and ``overwrite`` is False (nothing is written then).
    """
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise InputFileError("is not a folder", path=folder, fix="give a folder for the chips")
    chips = chips_for_output(gpkg) if chips is None else chips
    paths = [folder / chip.filename for chip in chips]
    existing = [p for p in paths if p.exists()]
    if existing and not overwrite:
        raise OutputExistsError(f"the chips folder already holds {len(existing)} chip(s), e.g. {existing[0].name}",
                                path=folder, fix="choose another folder or add --overwrite")
    folder.mkdir(parents=True, exist_ok=True)
    for chip, path in zip(chips, paths, strict=True):
        tmp = path.with_name(f".{path.name}.tmp")
        tmp.write_bytes(chip.IMAGE)
        tmp.replace(path)
    return paths
