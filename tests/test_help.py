"""Help that helps: every command's --help example works, wrong names get the nearest
valid one, and --version names the shipped models."""

import hashlib
import json
import re
import shlex
import shutil
from pathlib import Path

import click
import pyogrio
import pytest
from click.testing import CliRunner

from swc_rs import __version__
from swc_rs.cli.main import cli

REPO = Path(__file__).resolve().parents[1]


def commands(group=cli, path=()):
    """Every command of the CLI as (path of names, command), groups included."""
    yield path, group
    if isinstance(group, click.Group):
        for name, command in sorted(group.commands.items()):
            yield from commands(command, (*path, name))


COMMANDS = {" ".join(path) or "swc-rs": (path, command) for path, command in commands()}


def help_text(path) -> str:
    result = CliRunner().invoke(cli, [*path, "--help"], terminal_width=200)
    assert result.exit_code == 0, result.output
    return result.output


def examples(text: str) -> list[list[str]]:
    """The `$ swc-rs ...` lines of a help text (continuations joined, comments, `&&`
    chains and `>` redirections split off) as argument lists without the program name."""
    joined = re.sub(r"\\\n\s*", " ", text)
    found = []
    for line in joined.splitlines():
        line = line.strip()
        if not line.startswith("$ "):
            continue
        words = shlex.split(line[2:], comments=True)
        chain, current = [], []
        for word in words:
            if word == "&&":
                chain.append(current)
                current = []
            else:
                current.append(word)
        chain.append(current)
        for command in chain:
            if ">" in command:
                command = command[: command.index(">")]
            assert command[0] == "swc-rs", line
            found.append(command[1:])
    return found


def resolve(args):
    """(command, its context parsed from args) for an example's arguments, without
    running it or checking that its files exist; an unknown option raises click's error."""
    command, rest = cli, list(args)
    while isinstance(command, click.Group):
        assert rest, f"example {args} names no command"
        name, command, rest = command.resolve_command(click.Context(command), rest)
    ctx = command.make_context(command.name, list(rest), resilient_parsing=True)
    names = {opt for param in command.params for opt in (*param.opts, *param.secondary_opts)} | {"-h", "--help"}
    for word in rest:
        if word.startswith("-") and len(word) > 1 and not word[1].isdigit() and word.split("=")[0] not in names:
            raise click.NoSuchOption(word.split("=")[0], ctx=ctx)
    return command, ctx


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_every_help_has_an_example_that_parses(name):
    path, command = COMMANDS[name]
    text = help_text(path)
    assert "Example" in text, f"`{name} --help` has no example"
    found = examples(text)
    assert found, f"`{name} --help` has no `$ swc-rs ...` line"
    own = [args for args in found if tuple(args[: len(path)]) == path]
    assert own, f"`{name} --help`: no example runs {name}"
    for args in found:
        target, ctx = resolve(args)
        assert not ctx.args, f"example {shlex.join(args)}: extra arguments {ctx.args}"
        for param in target.params:
            if param.required:
                value = ctx.params.get(param.name)
                assert value not in (None, ()), f"example {shlex.join(args)} lacks {param.get_error_hint(ctx)}"


def test_a_misspelt_example_option_would_be_caught():
    # the parse check above must fail on what it is meant to catch
    with pytest.raises(click.NoSuchOption):
        resolve(["detect", "a.tif", "b.tif", "--zone", "z.gpkg"])


def run_example(args, cwd: Path):
    result = CliRunner().invoke(cli, args, catch_exceptions=False)
    assert result.exit_code == 0, f"example {shlex.join(args)} failed in {cwd}:\n{result.output}"
    return result


def test_the_sample_detect_export_report_and_evaluate_examples_run(tmp_path, monkeypatch):
    """The help examples a newcomer tries first, run as printed, in an empty folder."""
    monkeypatch.chdir(tmp_path)
    first = {name: examples(help_text(COMMANDS[name][0])) for name in ("sample", "detect", "export", "report", "evaluate")}
    sample = first["sample"][0]
    assert sample[:3] == ["sample", "-o", "data/sample_tiles"] and "8192" not in sample
    run_example(sample, tmp_path)
    # the scene it writes is the committed sample, pixel for pixel
    import numpy as np
    import rasterio

    for name in ("before.tif", "after.tif"):
        with rasterio.open(tmp_path / "data/sample_tiles" / name) as made, rasterio.open(REPO / "data/sample_tiles" / name) as shipped:
            assert made.transform == shipped.transform and made.crs == shipped.crs
            assert np.array_equal(made.read(), shipped.read()), name
    (detect,) = first["detect"]
    run_example([*detect, "--workers", "1", "-q"], tmp_path)
    layers = {name for name, _ in pyogrio.list_layers(tmp_path / "out/demo.gpkg")}
    assert {"disturbance_patches", "suspected_violations", "run_info"} <= layers
    for args in first["export"]:
        run_example(args, tmp_path)
    assert (tmp_path / "out/field.kmz").stat().st_size > 0 and (tmp_path / "out/field.csv").stat().st_size > 0
    assert (tmp_path / "out/field.kml").stat().st_size > 0 and any((tmp_path / "out/chips").iterdir())
    report = first["report"][0]  # the detect output's report; the others need erosion outputs
    run_example(report, tmp_path)
    assert "<html" in (tmp_path / "out/demo_report.html").read_text(encoding="utf-8")[:2000].lower()
    for args in first["evaluate"][:2]:
        result = run_example(args, tmp_path)
        if "--json" in args:
            assert json.loads(result.stdout)["precision"] > 0.9
    shutil.rmtree(tmp_path / "out")


def test_an_unknown_option_names_the_nearest_valid_one():
    result = CliRunner().invoke(cli, ["detect", "a.tif", "b.tif", "--zone", "z.gpkg"])
    assert result.exit_code == 2
    assert "No such option '--zone'" in result.output and "Did you mean '--zones'?" in result.output
    assert "--model" not in result.output  # one suggestion, the nearest
    result = CliRunner().invoke(cli, ["verify", "import", "f.gpkg", "--stor", "h.gpkg"])
    assert result.exit_code == 2 and "Did you mean '--store'?" in result.output
    result = CliRunner().invoke(cli, ["--verison"])
    assert result.exit_code == 2 and "Did you mean '--version'?" in result.output
    result = CliRunner().invoke(cli, ["detct"])
    assert result.exit_code == 2 and "Did you mean 'detect'?" in result.output


def detect_with(config: Path, tmp_path):
    d = REPO / "data/sample_tiles"
    args = ["detect", str(d / "before.tif"), str(d / "after.tif"), "--zones", str(d / "zones.gpkg"),
            "--projects", str(d / "projects.gpkg"), "-o", str(tmp_path / "out.gpkg"), "--config", str(config)]
    return CliRunner().invoke(cli, args)


@pytest.mark.parametrize(("text", "words"), [
    ("[change]\nlearned_treshold = 0.6\n", ["unknown key learned_treshold", "[change]", "did you mean learned_threshold?"]),
    ("[chnge]\nlearned_threshold = 0.6\n", ["unknown section chnge", "did you mean change?"]),
    ("[chips]\nformt = 'png'\njpeg_qualty = 80\n", ["formt (did you mean format?)", "jpeg_qualty (did you mean jpeg_quality?)"]),
])
def test_a_misspelt_configuration_key_names_the_nearest_valid_one(tmp_path, text, words):
    config = tmp_path / "my.toml"
    config.write_text(text, encoding="utf-8")
    result = detect_with(config, tmp_path)
    assert result.exit_code == 2, result.output
    assert result.output.startswith(f"Error: {config}: ") and len(result.output.strip().splitlines()) == 1
    for word in words:
        assert word in result.output
    assert not (tmp_path / "out.gpkg").exists()


def test_misspelt_zone_rules_name_the_nearest(tmp_path):
    rules = tmp_path / "rules.toml"
    rules.write_text("[default]\nmin_aera_hm2 = 0.05\n", encoding="utf-8")
    config = tmp_path / "my.toml"
    config.write_text('rules = "rules.toml"\n', encoding="utf-8")
    result = detect_with(config, tmp_path)
    assert result.exit_code == 2 and f"{rules}: unknown key min_aera_hm2 (did you mean min_area_hm2?) in [default]" in result.output
    rules.write_text("[zone.Z1]\nmin_area_hm2 = 0.05\n", encoding="utf-8")
    result = detect_with(config, tmp_path)
    assert result.exit_code == 2 and "unknown table zone (did you mean zones?)" in result.output


def test_a_key_like_no_other_lists_the_valid_ones(tmp_path):
    config = tmp_path / "my.toml"
    config.write_text("[change]\nzzzz = 1\n", encoding="utf-8")
    result = detect_with(config, tmp_path)
    assert result.exit_code == 2 and "did you mean" not in result.output
    assert "use one of:" in result.output and "learned_threshold" in result.output


def test_misspelt_batch_and_erosion_keys_name_the_nearest(tmp_path):
    from swc_rs.batch import load_batch
    from swc_rs.erosion.config import load_erosion_config
    from swc_rs.errors import ConfigError

    monthly = (REPO / "pipelines/monthly.toml").read_text(encoding="utf-8")
    assert "\nzones = " in monthly
    bad = tmp_path / "monthly.toml"
    bad.write_text(monthly.replace("\nzones = ", "\nzone = ", 1), encoding="utf-8")
    with pytest.raises(ConfigError, match=r"unknown key zone \(did you mean zones\?\) in \[batch\]") as error:
        load_batch(bad, period="202611")
    assert str(bad) in error.value.message
    erosion = tmp_path / "erosion.toml"
    erosion.write_text("[erosion]\nr_vallue = 3000.0\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"did you mean r_value\?"):
        load_erosion_config(erosion)


def test_version_names_the_package_and_every_shipped_model():
    result = CliRunner().invoke(cli, ["--version"])
    assert result.exit_code == 0, result.output
    text = result.output
    assert text.splitlines()[0] == f"swc-rs {__version__}"
    data = REPO / "swc_rs/data"
    for onnx in sorted(data.glob("*.onnx")):
        card = json.loads(onnx.with_suffix(".json").read_text(encoding="utf-8"))
        digest = hashlib.sha256(onnx.read_bytes()).hexdigest()
        assert digest == card["onnx_sha256"]
        assert f"{card['family']}-{digest[:12]}" in text  # the change_model_id run_info records
    from swc_rs.model import load_bundle

    _, card = load_bundle(data / "qtype_model.skops")
    assert card["model_id"] in text
    assert "DIFFERS" not in text


def test_version_says_when_a_shipped_network_was_changed(tmp_path, monkeypatch):
    from swc_rs.change import learned

    copy = tmp_path / "change_highres.onnx"
    copy.write_bytes(learned.SHIPPED["highres"].read_bytes() + b"\0")
    shutil.copy(learned.SHIPPED["highres"].with_suffix(".json"), copy.with_suffix(".json"))
    monkeypatch.setitem(learned.SHIPPED, "highres", copy)
    result = CliRunner().invoke(cli, ["--version"])
    assert result.exit_code == 0 and "highres" in result.output and "DIFFERS FROM ITS CARD" in result.output
