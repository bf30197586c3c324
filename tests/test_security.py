"""What swc-rs loads: changed model files refused, remote catalog assets only when allowed,
nothing outside the paths a configuration names, no shell and no eval."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from swc_rs.batch import CatalogConfig, read_catalog
from swc_rs.change.learned import SHIPPED
from swc_rs.cli.main import cli
from swc_rs.errors import ConfigError
from swc_rs.model import default_model_path
from tests.conftest import make_scene


def flipped(src: Path, dst: Path) -> Path:
    data = bytearray(src.read_bytes())
    data[len(data) // 2] ^= 0x01
    dst.write_bytes(bytes(data))
    return dst


def detect(scene, *extra):
    out = scene.folder / "out.gpkg"
    result = CliRunner().invoke(cli, ["detect", str(scene.before), str(scene.after), "--zones", str(scene.zones),
                                      "--projects", str(scene.projects), "-o", str(out), "--workers", "1", *extra])
    return result, out


def test_changed_onnx_change_model_is_refused(tmp_path):
    source = SHIPPED["highres"]
    if not source.exists():
        pytest.skip("no shipped change network in this checkout")
    scene = make_scene(tmp_path)
    model = flipped(source, tmp_path / "net.onnx")
    shutil.copyfile(source.with_suffix(".json"), tmp_path / "net.json")  # the card of the unchanged file
    result, out = detect(scene, "--change-model", model)
    assert result.exit_code == 2, result.output
    assert "SHA-256" in result.output and "net.onnx" in result.output and not out.exists()


def test_changed_skops_patch_model_is_refused(tmp_path):
    if default_model_path() is None:
        pytest.skip("no shipped patch model in this checkout")
    scene = make_scene(tmp_path)
    model = flipped(default_model_path(), tmp_path / "typer.skops")
    result, out = detect(scene, "--model", model, "--change-model", str(SHIPPED["highres"]))
    assert result.exit_code == 2, result.output
    assert "typer.skops" in result.output and not out.exists()


def stac(folder: Path, hrefs: tuple[str, str]) -> Path:
    items = [{"type": "Feature", "stac_version": "1.0.0", "id": f"t1-{i}", "geometry": None,
              "properties": {"grid:code": "t1", "datetime": f"2026-1{i}-01T00:00:00Z"},
              "assets": {"image": {"href": href, "roles": ["data"]}}} for i, href in enumerate(hrefs)]
    path = folder / "items.json"
    path.write_text(json.dumps({"type": "FeatureCollection", "features": items}), encoding="utf-8")
    return path


@pytest.mark.parametrize("hrefs", [("https://example.org/a.tif", "https://example.org/b.tif"),
                                   ("s3://bucket/tiles/a.tif", "s3://bucket/tiles/b.tif")])
def test_remote_stac_assets_are_refused_unless_allowed(tmp_path, hrefs):
    stac(tmp_path, hrefs)
    (tile,) = read_catalog(CatalogConfig(stac="items.json"), tmp_path, "202611")
    assert "allow_remote = true" in tile.problem and tile.before == Path()
    (tile,) = read_catalog(CatalogConfig(stac="items.json", allow_remote=True), tmp_path, "202611")
    assert tile.problem == ""
    assert str(tile.before).startswith(("/vsicurl?url=https%3A%2F%2Fexample.org", "/vsis3/bucket/tiles/a.tif"))


def test_unknown_schemes_are_refused_even_when_remote_is_allowed(tmp_path):
    stac(tmp_path, ("ftp://host/a.tif", "ftp://host/b.tif"))
    (tile,) = read_catalog(CatalogConfig(stac="items.json", allow_remote=True), tmp_path, "202611")
    assert "ftp://" in tile.problem


def test_local_and_file_hrefs_stay_local(tmp_path):
    stac(tmp_path, ("a.tif", f"file://{tmp_path}/b.tif"))
    (tile,) = read_catalog(CatalogConfig(stac="items.json"), tmp_path, "202611")
    assert tile.problem == "" and (tile.before, tile.after) == (tmp_path / "a.tif", tmp_path / "b.tif")


@pytest.mark.parametrize("tile_id", ["../outside", "/etc/x", "a/../../b", ".hidden"])
def test_catalog_tile_ids_cannot_name_paths_outside_the_output(tmp_path, tile_id):
    """A tile id becomes ``<output>/<period>/tiles/<id>.gpkg``: ids with separators or a
    leading dot are refused, so a catalog cannot make batch write elsewhere."""
    (tmp_path / "tiles.csv").write_text(f"tile_id,before,after\n{tile_id},a.tif,b.tif\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="file names"):
        read_catalog(CatalogConfig(csv="tiles.csv"), tmp_path, "202611")


def test_no_shell_and_no_eval_in_the_package():
    """Nothing a configuration or catalog says is run as code or as a command."""
    package = Path(__file__).resolve().parent.parent / "swc_rs"
    pattern = re.compile(r"(?<![.\w])(eval|exec)\(|shell\s*=\s*True|os\.system\(|os\.popen\(|pickle\.loads?\(|subprocess\.")
    hits = [f"{path.relative_to(package)}:{n}: {line.strip()}"
            for path in package.rglob("*.py") for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
            if pattern.search(line) and not line.lstrip().startswith("#")]
    assert hits == []
