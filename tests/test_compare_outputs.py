"""benchmarks/compare_outputs.py: the check that a speed-up left detect's results the same."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import geopandas as gpd
import pandas as pd
import pyogrio
import shapely

REPO = Path(__file__).resolve().parent.parent
spec = importlib.util.spec_from_file_location("compare_outputs", REPO / "benchmarks" / "compare_outputs.py")
compare_outputs = importlib.util.module_from_spec(spec)
sys.modules[spec.name] = compare_outputs
spec.loader.exec_module(compare_outputs)


def _write(path: Path, qarea=(1.25, 0.5), shift=0.0, n_patches=2, started="2026-12-07T00:00:00"):
    patches = gpd.GeoDataFrame(
        {"QDNM": ["a", "b"], "QAREA": list(qarea), "BYD": ["疑似未批先建", "合规"]},
        geometry=[shapely.box(0, 0, 1, 1), shapely.box(2 + shift, 0, 3, 1)], crs="EPSG:4490")
    patches.to_file(path, layer="disturbance_patches", driver="GPKG")
    info = pd.DataFrame([{"n_patches": n_patches, "model_id": "m", "started_utc": started}])
    pyogrio.write_dataframe(info, path, layer="run_info")
    return path


def test_same_results_pass_even_when_the_run_record_differs(tmp_path, capsys):
    a = _write(tmp_path / "a.gpkg")
    b = _write(tmp_path / "b.gpkg", started="2026-12-08T10:00:00")  # another run, same result
    assert compare_outputs.main([str(a), str(b)]) == 0
    assert "identical" in capsys.readouterr().out


def test_an_attribute_a_geometry_or_a_count_that_differs_is_reported(tmp_path, capsys):
    a = _write(tmp_path / "a.gpkg")
    assert compare_outputs.compare(a, _write(tmp_path / "b.gpkg", qarea=(1.25, 0.5000001))) == [
        "disturbance_patches.QAREA: 1 of 2 rows differ (row 1: 0.5 vs 0.5000001)"]
    assert compare_outputs.compare(a, _write(tmp_path / "c.gpkg", qarea=(1.25, 0.5000001)), rtol=1e-5) == []
    problems = compare_outputs.compare(a, _write(tmp_path / "d.gpkg", shift=1e-9, n_patches=3))
    assert any(p.startswith("disturbance_patches.geometry: 1 of 2 differ") for p in problems)
    assert "run_info.n_patches: 2 vs 3" in problems
    assert compare_outputs.main([str(a), str(tmp_path / "d.gpkg")]) == 1
    assert "differ" in capsys.readouterr().out


def test_a_missing_file_exits_2_naming_it(tmp_path, capsys):
    a = _write(tmp_path / "a.gpkg")
    assert compare_outputs.main([str(a), str(tmp_path / "nope.gpkg")]) == 2
    assert "nope.gpkg" in capsys.readouterr().err
