"""Write a detect result as the OUT.gpkg of INTERFACE.md, atomically.

Everything is written to a temporary GeoPackage next to the target, then renamed
onto it, so a crash never leaves a half-written output and an existing output is
replaced only with ``overwrite=True``.
"""

from __future__ import annotations

import json
import logging
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pandas as pd
import pyogrio

from swc_rs.errors import InputFileError, OutputExistsError
from swc_rs.export.atomic import is_write_failure, temporary_beside, write_failed

log = logging.getLogger(__name__)

LAYERS = ("disturbance_patches", "suspected_violations", "projects", "zones", "run_info")


def check_output(path: str | Path, overwrite: bool) -> Path:
    """Refuse an existing output without ``overwrite`` and a missing parent folder.

    Raises
    ------
    OutputExistsError, InputFileError
    """
    path = Path(path)
    if path.suffix.lower() != ".gpkg":
        raise InputFileError("the output must be a GeoPackage", path=path, fix="end the output name with .gpkg")
    if path.is_symlink():
        raise InputFileError(f"the output is a symbolic link (to {os.readlink(path)}); swc-rs never writes through one",
                             path=path, fix="give the real path of the output, or remove the link")
    if path.exists() and not overwrite:
        raise OutputExistsError("the output already exists", path=path, fix="choose another name or add --overwrite")
    if path.exists():
        from swc_rs.verification import is_history_store

        if is_history_store(path):
            raise OutputExistsError("is a history store; swc-rs never overwrites it, not even with --overwrite", path=path,
                                    fix="choose another output name (the store is given with --history)")
    parent = path.parent if str(path.parent) else Path(".")
    try:
        parent.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise InputFileError(f"the output's folder cannot be made ({err.strerror})", path=path,
                             fix="give an output in a folder you can write (a path under a regular file is not one)") from err
    if not os.access(parent, os.W_OK | os.X_OK):
        raise InputFileError("the output's folder is not writable", path=path, fix="give an output in a folder you can write")
    return path


def write_result(result, path: str | Path, *, overwrite: bool = False, extra_layers: dict | None = None,
                 threads: int | None = None, chips: list | None = None, executor=None) -> Path:
    """Write the five INTERFACE.md layers (plus ``patch_features``) to ``path``.

    Parameters
    ----------
    result : swc_rs.pipeline.DetectResult
    path
        Target GeoPackage.
    overwrite
        Replace an existing file.
    extra_layers
        More polygon layers (name → GeoDataFrame), written before styles and project so
        that everything lands in one atomic rename (e.g. the batch's ``finished_patches``).
    threads
        Threads for the evidence chips (None: one per core not taken by ``executor``; the
        batch's tile workers use one each, their parallelism is the tiles).
    chips
        Evidence chips made elsewhere (the batch month cuts them from its tiles); None
        makes them from ``result.run_info``'s two images.
    executor
        Idle worker processes (detect's window workers) that make a slice of the chips each.
    """
    path = check_output(path, overwrite)
    try:
        tmp = temporary_beside(path, ".gpkg")
    except OSError as err:
        raise write_failed(path, err) from err
    tmp.unlink()
    from swc_rs.export.chips import result_chips, write_chips
    from swc_rs.export.styles import write_styles

    # The chips (encoding, and reading where the window pass kept no pixels: ~2–7 ms of
    # CPU a patch) are made while the layers and styles are written.
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="swc-rs-chips") as background:
        made = background.submit(result_chips, result, threads=threads, executor=executor) if chips is None else None
        try:
            write_layer(result.patches, tmp, "disturbance_patches")
            write_layer(result.violations, tmp, "suspected_violations")
            write_layer(result.projects, tmp, "projects")
            write_layer(result.zones, tmp, "zones")
            for name, frame in (extra_layers or {}).items():
                write_layer(frame, tmp, name)
            info = {k: (json.dumps(v, ensure_ascii=False) if isinstance(v, (dict, list)) else v)
                    for k, v in result.run_info.items()}
            pyogrio.write_dataframe(pd.DataFrame([info]), tmp, layer="run_info")
            if result.features is not None:
                pyogrio.write_dataframe(result.features, tmp, layer="patch_features")
            for name, table in getattr(result, "tables", {}).items():
                pyogrio.write_dataframe(table, tmp, layer=name)
            write_styles(tmp, path)  # while the chips are made
            write_chips(tmp, result, chips=made.result() if made is not None else chips)
            os.replace(tmp, path)
        except BaseException as err:
            if made is not None:
                made.cancel()
            tmp.unlink(missing_ok=True)
            for side in ("-journal", "-wal", "-shm"):
                Path(str(tmp) + side).unlink(missing_ok=True)
            if is_write_failure(err):
                raise write_failed(path, err) from err
            raise
    log.info("wrote %s", path)
    return path


def write_layer(frame, path: Path, layer: str) -> None:
    """One layer; MultiPolygon even when empty, so QGIS knows the geometry type."""
    pyogrio.write_dataframe(
        frame,
        path,
        layer=layer,
        driver="GPKG",
        promote_to_multi=True,
        geometry_type="MultiPolygon" if hasattr(frame, "geometry") else None,
        dataset_options={"VERSION": "1.3"},  # GeoPackage 1.3: QGIS 3.22 (GDAL 3.6) reads it without warnings
    )
