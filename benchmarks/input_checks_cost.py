"""Time of detect's pixel checks (swc_rs.input_checks.check_pixels) on a 4096² uint16 pair.

    .venv/bin/python benchmarks/input_checks_cost.py [FOLDER]
"""

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from swc_rs.input_checks import check_pixels  # noqa: E402
from swc_rs.raster import RasterPair  # noqa: E402
from tests.conftest import forest, write_raster  # noqa: E402

SIZE = 4096


def main() -> None:
    folder = Path(sys.argv[1] if len(sys.argv) > 1 else ".cache/input_checks")
    folder.mkdir(parents=True, exist_ok=True)
    if not (folder / "b.tif").exists():
        write_raster(folder / "b.tif", forest(SIZE, SIZE, 1), date="2026-10-01")
        write_raster(folder / "a.tif", forest(SIZE, SIZE, 2), date="2026-11-02")
    with RasterPair(folder / "b.tif", folder / "a.tif") as pair:
        for label in ("first", "again"):
            start = time.perf_counter()
            check_pixels(pair)
            print(f"check_pixels {SIZE}x{SIZE} ({label}): {1000 * (time.perf_counter() - start):.1f} ms")


if __name__ == "__main__":
    main()
