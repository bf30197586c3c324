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
    for line in code_lines(page):
        line = line.strip()
        if re.match(r"[A-Z]+=", line):  # D=...; I="..." : shell variables the next lines use
            for assignment in line.split("; "):
                name, value = assignment.split("=", 1)
                variables[name] = " ".join(shell_words(value, variables))
            continue
        if not line.startswith("swc-rs ") or "[" in line or "…" in line:
            continue  # the synopsis lines, with their [optional] parts
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
