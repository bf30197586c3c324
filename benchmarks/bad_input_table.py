"""Run the bad-input corpus (tests/test_bad_input_corpus.py) and print its table.

    .venv/bin/python benchmarks/bad_input_table.py > out/corpus.md

One row per case: the expected outcome, the exit code it got and the first line of what
the command said (the error message for a refused case).
"""

from __future__ import annotations

import sys
import tempfile
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from click.testing import CliRunner  # noqa: E402

from swc_rs.cli.main import cli  # noqa: E402
from tests.conftest import make_scene  # noqa: E402
from tests.test_bad_input_corpus import CASES, SQUARE  # noqa: E402


def main() -> None:
    warnings.simplefilter("ignore")
    print("| # | case | expected | exit | message (shortened) |")
    print("|---|---|---|---|---|")
    for n, (name, expected, build, *_) in enumerate(CASES, 1):
        with tempfile.TemporaryDirectory() as folder:
            scene = make_scene(Path(folder), squares=(SQUARE,))
            result = CliRunner().invoke(cli, build(scene))
            lines = [ln for ln in result.output.splitlines() if ln.startswith("Error: ")] or \
                    [ln for ln in result.output.splitlines() if "disturbance patches" in ln or "checked" in ln]
            text = (lines[0] if lines else "").replace(folder, "…").replace("|", "\\|")
            text = text if len(text) < 170 else text[:167] + "…"
        print(f"| {n} | {name} | {expected} | {result.exit_code} | {text} |")


if __name__ == "__main__":
    main()
