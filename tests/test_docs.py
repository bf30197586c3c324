"""The user documents say what the code does: links resolve, every command line in
them parses against the real CLI, every command is listed, and the Chinese guide's
field table names every field of suspected_violations with the alias QGIS shows."""

import os
import re
import shlex
from pathlib import Path

import pytest

from swc_rs.cli.main import cli
from swc_rs.export.styles import ALIASES
from swc_rs.verification import DESK_FIELDS, HISTORY_FIELDS
from tests.test_help import resolve

REPO = Path(__file__).resolve().parents[1]
README = REPO / "README.md"
GUIDE = REPO / "docs" / "zh" / "用户手册.md"
PAGES = [README, GUIDE, REPO / "docs" / "2026-12-07-experiment-history.md", REPO / "docs" / "2026-12-07-how-it-works.md"]
#: Made by the QGIS plugin's test; the plugin and its picture land together.
PLUGIN_PICTURE = "img/plugin_dialog.png"


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_every_relative_link_resolves(page):
    text = page.read_text(encoding="utf-8")
    links = re.findall(r"\]\(([^)\s]+)\)", text)
    assert links
    for link in links:
        if re.match(r"[a-z]+:", link) or link.startswith("#"):
            continue
        if link == PLUGIN_PICTURE and not (REPO / "qgis_plugin").is_dir():
            continue  # before the plugin is merged
        target = (page.parent / link.split("#")[0]).resolve()
        assert target.exists(), f"{page.name}: link {link} leads nowhere"


def code_lines(page: Path) -> list[str]:
    text = page.read_text(encoding="utf-8")
    lines = []
    for block in re.findall(r"```\n(.*?)```", text, flags=re.S):
        lines += re.sub(r"\\\n\s*", " ", block).splitlines()
    return lines


def shell_words(line: str, variables: dict) -> list[str]:
    line = re.sub(r"\$(\w+)", lambda m: variables.get(m.group(1), m.group(0)), line)
    return shlex.split(line, comments=True)


@pytest.mark.parametrize("page", [README, GUIDE], ids=lambda p: p.name)
def test_every_command_line_parses(page):
    variables: dict[str, str] = {}
    checked = 0
    inline = [c for c in re.findall(r"`(swc-rs [^`]+)`", page.read_text(encoding="utf-8")) if " -" in c]  # not bare names
    for line in code_lines(page) + inline:
        line = line.strip()
        if re.match(r"[A-Z]+=", line):  # D=...; I="..." : shell variables the next lines use
            for assignment in line.split("; "):
                name, value = assignment.split("=", 1)
                variables[name] = " ".join(shell_words(value, variables))
            continue
        if not line.startswith("swc-rs ") or "[" in line or "…" in line:
            continue  # the synopsis lines, with their [optional] parts
        if re.search(r"COMMAND|命令|--help|--version", line):
            continue  # `swc-rs COMMAND --help`: tested in test_help.py
        words = shell_words(line, variables)
        command, ctx = resolve(words[1:])
        assert not ctx.args, f"{page.name}: `{line}`: extra arguments {ctx.args}"
        for param in command.params:
            if param.required:
                assert ctx.params.get(param.name) not in (None, ()), f"{page.name}: `{line}` lacks {param.name}"
        checked += 1
    assert checked >= 8


def test_the_readme_lists_every_command():
    text = README.read_text(encoding="utf-8")
    for name, command in cli.commands.items():
        names = [f"{name} {sub}" for sub in getattr(command, "commands", {})] or [name]
        for full in names:
            assert f"`{full}`" in text, f"README's command table lacks {full}"


def test_the_guide_explains_every_field_with_its_qgis_alias():
    text = GUIDE.read_text(encoding="utf-8")
    rows = {}
    for line in text.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 4 and cells[0].startswith("`"):
            fields = [f.strip("` ") for f in cells[0].split("/")]
            aliases = [a.strip() for a in cells[1].split(" / ")]
            for field, alias in zip(fields, aliases if len(aliases) == len(fields) else aliases * len(fields), strict=True):
                rows[field] = (alias, cells[3])
    for field in DESK_FIELDS + HISTORY_FIELDS:
        assert field in rows, f"the guide's field table lacks {field}"
        assert rows[field][0] == ALIASES.get(field, "—"), f"{field}: the guide says {rows[field][0]}, QGIS shows {ALIASES.get(field)}"
        assert rows[field][1], f"{field}: who fills it in?"


def test_the_guide_and_readme_pictures_are_the_test_rendered_ones():
    for page in (README, GUIDE):
        pictures = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", page.read_text(encoding="utf-8"))
        names = {os.path.basename(p) for p in pictures}
        assert {"qgis_map.png", "report.png"} <= names  # written by tests/test_docs_images.py


def field_copy(output: Path, path: Path) -> dict[str, str]:
    """What a field team hands back: one violation confirmed, one false alarm, one not reachable."""
    import geopandas as gpd

    listed = gpd.read_file(output, layer="suspected_violations")
    ids = {"confirmed": listed.QDNM[0], "false alarm": listed.QDNM[1], "unreachable": listed.QDNM[2]}
    edits = {
        ids["confirmed"]: {"RST": "已复核", "BYD": listed.BYD[0].removeprefix("疑似"), "QDCS": "施工"},
        ids["false alarm"]: {"RST": "已复核", "QTYPE": "非生产建设项目", "X_REASON": "耕地翻耕"},
        ids["unreachable"]: {"RST": "无法核实", "NOTE": "道路塌方"},
    }
    for qdnm, values in edits.items():
        for field, value in {**values, "XCFHR": "张三", "DATE": "2026-11-20"}.items():
            listed.loc[listed.QDNM == qdnm, field] = value
    listed.to_file(path, layer="suspected_violations")
    return ids


@pytest.mark.slow
def test_the_readme_monthly_walk_runs_as_written(tmp_path, monkeypatch):
    import geopandas as gpd
    from click.testing import CliRunner

    text = README.read_text(encoding="utf-8")
    walk = text[text.index("## The monthly cycle"):text.index("## Commands")]
    (tmp_path / "data").symlink_to(REPO / "data")
    monkeypatch.chdir(tmp_path)
    variables: dict[str, str] = {}
    ran = []
    ids = {}
    for block in re.findall(r"```\n(.*?)```", walk, flags=re.S):
        for line in block.splitlines():
            if re.match(r"[A-Z]+=", line):
                for assignment in line.split("; "):
                    name, value = assignment.split("=", 1)
                    variables[name] = " ".join(shell_words(value, variables))
                continue
            words = shell_words(line, variables)
            if words[1] == "batch" or "out/monthly/202611/swc_202611.gpkg" in words:
                continue  # the batch writes next to pipelines/monthly.toml, in the repository
            if words[1:3] == ["verify", "import"] and not ids:
                ids = field_copy(Path("out/202611.gpkg"), Path(words[3]))
            args = words[1:] + (["--workers", "1"] if words[1] == "detect" else [])
            result = CliRunner().invoke(cli, args)
            assert result.exit_code == 0, f"`{line}`:\n{result.output}"
            ran.append(words[1])
    assert ran == ["detect", "export", "export", "verify", "detect", "report"]
    for name in ("202611.kmz", "202611.csv", "202612.html"):
        assert (tmp_path / "out" / name).stat().st_size > 0
    assert any((tmp_path / "out" / "202611_chips").iterdir())
    after = gpd.read_file(tmp_path / "out" / "202612.gpkg", layer="suspected_violations").set_index("QDNM")
    # what the README promises of next month's list
    assert ids["false alarm"] not in after.index
    assert not after.loc[ids["confirmed"], "BYD"].startswith("疑似") and after.loc[ids["confirmed"], "RST"] == "已复核"
    assert after.loc[ids["unreachable"], "RST"] == "无法核实"
    assert set(after.QDTYPE) <= {"新增", "续建（范围扩大）", "续建（范围缩小）", "续建（范围不变）"}
    assert "续建（范围不变）" in set(after.QDTYPE)


def test_every_option_in_the_readme_synopsis_exists():
    import click

    text = README.read_text(encoding="utf-8")
    synopsis = next(b for b in re.findall(r"```\n(.*?)```", text, flags=re.S) if b.startswith("swc-rs detect BEFORE"))
    entries = []
    for line in synopsis.splitlines():
        if line.startswith("swc-rs "):
            entries.append(line)
        else:
            entries[-1] += " " + line.strip()
    assert len(entries) >= 9
    for entry in entries:
        words = entry.split()[1:]
        command = cli
        while isinstance(command, click.Group):
            command = command.commands[words.pop(0)]
        names = {opt for param in command.params for opt in (*param.opts, *param.secondary_opts)}
        for option in re.findall(r"(?<![\w-])(--?[a-z][\w-]*)", " ".join(words)):
            assert option in names, f"README synopsis: {command.name} has no option {option}"
