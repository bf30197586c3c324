"""Build dist/swc_rs_processing.zip, the QGIS plugin (Plugins → Manage and Install Plugins →
Install from ZIP). Reproducible: sorted entries, fixed times and modes, no caches.

    python3 qgis_plugin/build.py [--output dist/swc_rs_processing.zip]
"""

from __future__ import annotations

import argparse
import os
import zipfile
from pathlib import Path

PLUGIN = Path(__file__).resolve().with_name("swc_rs_processing")
ROOT = PLUGIN.parents[1]
SKIP_DIRS = {"__pycache__", ".pytest_cache"}
SKIP_SUFFIXES = (".pyc", ".pyo", "~")
#: 1980-01-01, the earliest time a zip entry can carry: the archive does not depend on when it was built.
EPOCH = (1980, 1, 1, 0, 0, 0)


def plugin_files(folder: Path = PLUGIN) -> list[Path]:
    files = []
    for dirpath, dirnames, filenames in os.walk(folder):
        dirnames[:] = sorted(d for d in dirnames if d not in SKIP_DIRS)
        files += [Path(dirpath) / f for f in sorted(filenames) if not f.endswith(SKIP_SUFFIXES)]
    return sorted(files)


def build(output: Path) -> Path:
    output.parent.mkdir(parents=True, exist_ok=True)
    tmp = output.with_name(f".{output.name}.{os.getpid()}.tmp")
    with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for path in plugin_files():
            info = zipfile.ZipInfo(f"{PLUGIN.name}/{path.relative_to(PLUGIN).as_posix()}", date_time=EPOCH)
            info.external_attr = 0o644 << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, path.read_bytes())
    os.replace(tmp, output)
    return output


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", type=Path, default=ROOT / "dist" / f"{PLUGIN.name}.zip")
    path = build(parser.parse_args().output)
    print(f"Wrote {path} ({path.stat().st_size / 1024:.0f} KiB)")


if __name__ == "__main__":
    main()
