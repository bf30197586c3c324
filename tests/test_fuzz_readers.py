"""Hypothesis fuzzing of the raster and vector readers: damaged bytes give an InputError or data.

A valid GeoTIFF and GeoPackage are made once; hypothesis truncates them and overwrites
stretches of their bytes. Opening the damaged file as AFTER of a pair (and reading every
window, as detect does), or reading it as a zones layer (with the geometry repair
detect applies), must either work or raise an :class:`~swc_rs.errors.InputError`
(exit 2) — never another exception (a traceback, exit 1).

The profile is bounded in ``make test`` (``SWC_FUZZ`` unset: 25 examples per reader);
``make fuzz`` runs the long one (``SWC_FUZZ=long``: 2000 examples per reader).
"""

from __future__ import annotations

import os
import tempfile
import warnings
from pathlib import Path

import geopandas as gpd
import numpy as np
import pytest
import shapely
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from swc_rs.errors import InputError, SwcWarning
from swc_rs.input_checks import check_pixels
from swc_rs.raster import RasterPair, iter_windows
from swc_rs.vectors import read_layer, repair_geometries
from tests.conftest import X0, Y0, forest, write_raster

settings.register_profile("swc-ci", max_examples=25, deadline=None,
                          suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("swc-long", max_examples=2000, deadline=None,
                          suppress_health_check=[HealthCheck.too_slow])
PROFILE = "swc-long" if os.environ.get("SWC_FUZZ") == "long" else "swc-ci"

@pytest.fixture(scope="module")
def samples(tmp_path_factory):
    """(folder, BEFORE, AFTER's bytes, the zones' bytes): the valid files the examples damage."""
    folder = tmp_path_factory.mktemp("fuzz")
    before = write_raster(folder / "before.tif", forest(96, 96, 1), date="2026-10-01")
    after = write_raster(folder / "after.tif", forest(96, 96, 2), date="2026-11-02").read_bytes()
    zones = folder / "zones.gpkg"
    gpd.GeoDataFrame({"ZONE_CODE": ["Z1", "Z3"], "ZONE_NAME": ["一", "三"]},
                     geometry=[shapely.box(X0, Y0 - 100, X0 + 100, Y0), shapely.box(X0 + 100, Y0 - 192, X0 + 192, Y0)],
                     crs="EPSG:32648").to_file(zones, engine="pyogrio")
    return folder, before, after, zones.read_bytes()


def damage(data: bytes, cut: float, stretches: list[tuple[float, bytes]]) -> bytes:
    """``data`` cut to ``cut`` of its length, with each ``(where, bytes)`` written over it."""
    out = bytearray(data[: max(0, int(len(data) * cut))])
    for where, chunk in stretches:
        start = int(len(out) * where)
        out[start:start + len(chunk)] = chunk
    return bytes(out)


DAMAGE = dict(
    cut=st.one_of(st.just(1.0), st.floats(0.0, 1.0)),
    stretches=st.lists(st.tuples(st.floats(0.0, 1.0), st.binary(min_size=1, max_size=64)), max_size=4),
)


def _written(folder: Path, name: str, data: bytes) -> Path:
    fd, path = tempfile.mkstemp(prefix=name, suffix=Path(name).suffix, dir=folder)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)
    return Path(path)


@settings(settings.get_profile(PROFILE))
@given(**DAMAGE)
def test_damaged_raster_is_read_or_refused(samples, cut, stretches):
    folder, before_path, after_bytes, _ = samples
    path = _written(folder, "after.tif", damage(after_bytes, cut, stretches))
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with RasterPair(before_path, path) as pair:
                check_pixels(pair)
                for window in iter_windows(pair.grid, 48):
                    before, after, valid = pair.read(window)
                    assert before.shape == after.shape and valid.shape == before.shape[1:]
                    assert np.isfinite(after[:, valid]).all()
    except InputError:
        pass
    finally:
        path.unlink()


@settings(settings.get_profile(PROFILE))
@given(**DAMAGE)
def test_damaged_geopackage_is_read_or_refused(samples, cut, stretches):
    folder, _, _, zones_bytes = samples
    path = _written(folder, "zones.gpkg", damage(zones_bytes, cut, stretches))
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", SwcWarning)
            frame = read_layer(path, to_crs="EPSG:4543", what="zones")
            frame = repair_geometries(frame, path=path, what="zone")
            assert frame.geometry.is_valid.all()
            assert set(frame.geom_type) <= {"Polygon", "MultiPolygon"}
    except InputError:
        pass
    finally:
        path.unlink()
        for suffix in ("-journal", "-wal", "-shm"):
            Path(str(path) + suffix).unlink(missing_ok=True)


@pytest.mark.parametrize("size", [0, 4, 200])
def test_tiny_rasters_are_refused(samples, size):
    folder, before_path, after_bytes, _ = samples
    path = _written(folder, "tiny.tif", after_bytes[:size])
    with pytest.raises(InputError):
        RasterPair(before_path, path)
    path.unlink()
