"""Chip crops: the true-colour pixels around each patch, kept from the window pass.

The evidence chips of the suspected patches (:mod:`swc_rs.export.chips`) need the
imagery around each patch, which the window pass has just decoded. Reading it again
from the images decodes most of their blocks a second time: two thirds of a chip's
cost, ~1.7 CPU-s on the 8192² bench scene. So each window writes, for every patch whose
chip window (plus :data:`MARGIN_PX`) lies within the window and its halo, the red,
green and blue reflectance of both dates (16 bits over the crop's own range: a chip's
contrast stretch magnifies a narrow range, so float16 would band) and the valid mask to one file of a temporary spool folder; the chips are cut from there. A
patch cut by a window seam, or one whose chip reaches beyond the halo, is read from
the images as before.

A spool takes ~13 bytes per pixel of those chip windows (~250 MB for the ~2,000
patches of the bench scene) in the system's temporary folder (``TMPDIR``), at most
``[chips] spool_max_mb`` (past it the chips are read), and is removed when the detect
result that holds it is released.

Light on purpose: the window workers import it.
"""

from __future__ import annotations

import logging
import math
import os
import shutil
import tempfile
import weakref
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from rasterio.windows import Window

from swc_rs.config import ChipsConfig

log = logging.getLogger(__name__)

#: The bands of a chip, in image order.
TRUE_COLOUR = ("red", "green", "blue")
#: Pixels kept around a chip window: the chip is cut again from the patch's final
#: outline (after its round trip through EPSG:4490), whose window may differ by a pixel.
MARGIN_PX = 2
#: Levels of the stored values (uint16) over a crop's range of reflectance.
_LEVELS = 65535

DEFAULT_OPTIONS = ChipsConfig()
#: Spool folders this process failed to write to (it stops trying, and warned once).
_FAILED: set[str] = set()


def chip_window(bounds_px: tuple[float, float, float, float], shape: tuple[int, int],
                options: ChipsConfig = DEFAULT_OPTIONS) -> Window | None:
    """The window around a patch's pixel bounds (col0, row0, col1, row1), padded and clipped.

    The margin is ``pad_fraction`` of the patch's larger side, within
    [``min_pad_px``, ``max_pad_px``]; None when the patch lies off the grid.
    """
    col0, row0, col1, row1 = bounds_px
    side = max(col1 - col0, row1 - row0, 1.0)
    pad = int(np.clip(round(side * options.pad_fraction), options.min_pad_px, options.max_pad_px))
    height, width = shape
    c0, r0 = max(0, int(np.floor(col0)) - pad), max(0, int(np.floor(row0)) - pad)
    c1, r1 = min(width, int(np.ceil(col1)) + pad), min(height, int(np.ceil(row1)) + pad)
    if c1 - c0 < 1 or r1 - r0 < 1:
        return None
    return Window(c0, r0, c1 - c0, r1 - r0)


@dataclass(frozen=True)
class CropRef:
    """Where one crop is: its file, byte offset and grid pixel rectangle."""

    path: str
    offset: int
    col_off: int
    row_off: int
    width: int
    height: int
    #: Reflectance = ``low + step * stored value`` (uint16 over the crop's own range).
    low: float = 0.0
    step: float = 1.0

    def contains(self, window: Window) -> bool:
        return (self.col_off <= window.col_off and self.row_off <= window.row_off
                and window.col_off + window.width <= self.col_off + self.width
                and window.row_off + window.height <= self.row_off + self.height)


class CropSpool:
    """A temporary folder of crop files, removed by :meth:`close` or when collected."""

    def __init__(self, parent: str | Path | None = None):
        self.folder = Path(tempfile.mkdtemp(prefix="swc-rs-crops-", dir=parent))
        self._finalizer = weakref.finalize(self, shutil.rmtree, self.folder, True)

    def close(self) -> None:
        self._finalizer()

    @classmethod
    def create(cls) -> CropSpool | None:
        """A spool in the system's temporary folder; None (with a warning) when none can be made."""
        try:
            return cls()
        except OSError as err:
            log.warning("no temporary folder for the chips' pixels (%s); they will be read from the images again", err)
            return None


def write_crops(path: str | Path, boxes: list, origin: tuple[int, int], before: np.ndarray, after: np.ndarray,
                valid: np.ndarray, roles: tuple[str, ...], grid_shape: tuple[int, int],
                options: ChipsConfig = DEFAULT_OPTIONS) -> list[CropRef | None]:
    """Write the crops of one window's patches to ``path``; their references, None
    where a patch's chip window (plus :data:`MARGIN_PX`) leaves the arrays.

    Parameters
    ----------
    boxes
        Per patch, its pixel bounds (col0, row0, col1, row1) in grid coordinates, or None.
    origin
        Grid (row, col) of the arrays' first pixel.
    before, after, valid
        The window's ``(bands, h, w)`` reflectance (AFTER as delivered, on the grid) and
        valid mask, as :meth:`swc_rs.raster.RasterPair.read` gives them.
    """
    if any(r not in roles for r in TRUE_COLOUR):
        return [None] * len(boxes)
    folder = str(Path(path).parent)
    if folder in _FAILED or _spooled_mb(folder) >= options.spool_max_mb:
        return [None] * len(boxes)
    try:
        return _write_crops(path, boxes, origin, before, after, valid, roles, grid_shape, options)
    except OSError as err:  # a full or read-only temporary folder: the chips are read from the images
        _FAILED.add(folder)  # said once; this process keeps no more crops in it
        log.warning("could not keep the pixels around the patches for their chips (%s); they are read from the "
                    "images again. Free space in the temporary folder (TMPDIR) or set [chips] "
                    "spool_max_mb = 0", err)
        Path(path).unlink(missing_ok=True)
        return [None] * len(boxes)


def _spooled_mb(folder: str) -> float:
    """MB of crops in the spool so far (all processes'; a soft limit, checked per window)."""
    try:
        return sum(entry.stat().st_size for entry in os.scandir(folder)) / 1e6
    except OSError:
        return 0.0


def _write_crops(path, boxes, origin, before, after, valid, roles, grid_shape, options) -> list[CropRef | None]:
    bands = [roles.index(r) for r in TRUE_COLOUR]
    row0, col0 = origin
    height, width = valid.shape
    refs: list[CropRef | None] = []
    offset = 0
    with open(path, "wb") as fh:
        for bounds in boxes:
            window = chip_window(bounds, grid_shape, options) if bounds is not None else None
            if window is None:
                refs.append(None)
                continue
            c0 = max(0, int(window.col_off) - MARGIN_PX)
            r0 = max(0, int(window.row_off) - MARGIN_PX)
            c1 = min(grid_shape[1], int(window.col_off + window.width) + MARGIN_PX)
            r1 = min(grid_shape[0], int(window.row_off + window.height) + MARGIN_PX)
            if c0 < col0 or r0 < row0 or c1 > col0 + width or r1 > row0 + height:
                refs.append(None)
                continue
            rows, cols = slice(r0 - row0, r1 - row0), slice(c0 - col0, c1 - col0)
            pixels = np.stack([before[bands, rows, cols], after[bands, rows, cols]])
            lo, hi = float(pixels.min()), float(pixels.max())
            if not math.isfinite(lo + hi):  # float input with NaN or infinity: those pixels are invalid anyway
                np.nan_to_num(pixels, copy=False, nan=0.0, posinf=0.0, neginf=0.0)
                lo, hi = float(pixels.min()), float(pixels.max())
            step = max(hi - lo, 1e-12) / _LEVELS
            pixels -= np.float32(lo)
            pixels *= np.float32(1.0 / step)
            parts = [np.rint(pixels, out=pixels).astype(np.uint16), np.ascontiguousarray(valid[rows, cols]).view(np.uint8)]
            refs.append(CropRef(str(path), offset, c0, r0, c1 - c0, r1 - r0, lo, step))
            for part in parts:
                fh.write(memoryview(part).cast("B"))
                offset += part.nbytes
    return refs


def read_crop(ref: CropRef, window: Window) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """``window``'s red, green, blue reflectance of both dates (float32, ``(3, h, w)``)
    and valid mask from the crop ``ref``; None when the crop does not hold the window."""
    if not ref.contains(window):
        return None
    h, w = ref.height, ref.width
    size = 6 * h * w
    with open(ref.path, "rb") as fh:
        fh.seek(ref.offset)
        data = fh.read(2 * size + h * w)
    pixels = np.frombuffer(data, np.uint16, size).reshape(2, 3, h, w)
    valid = np.frombuffer(data, np.uint8, h * w, offset=2 * size).reshape(h, w).view(bool)
    rows = slice(int(window.row_off) - ref.row_off, int(window.row_off + window.height) - ref.row_off)
    cols = slice(int(window.col_off) - ref.col_off, int(window.col_off + window.width) - ref.col_off)
    out = pixels[:, :, rows, cols].astype(np.float32)
    out *= np.float32(ref.step)
    out += np.float32(ref.low)
    return out[0], out[1], valid[rows, cols].copy()
