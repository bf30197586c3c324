"""swc-rs erosion's LS against GRASS r.watershed on the hilly test DEM: every figure.

The asserting tests are tests/test_erosion_grass.py; this prints the numbers the docs
quote (docs/erosion.md): slope and flow-accumulation agreement, swc-rs's LS against
the same formulas on GRASS's terrain, and swc-rs's LS against r.watershed's own
length_slope — raw, and with r.watershed's double-counted slope length undone — for
the CSLE defaults and for swc-rs put on r.watershed's conventions by configuration.
Medians of |relative difference| over non-flat cells (slope > 1°, LS > 0.05), the
2-cell frame left out. Needs GRASS (grass-core).

    $ .venv/bin/python benchmarks/compare_grass_ls.py [--size 300] [--seed 3]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.grass_ref import (  # noqa: E402
    GRASS,
    SKIP_REASON,
    grass_like_config,
    grass_ls_undoubled,
    hills_dem,
    run_grass,
    write_dem,
)

CELL, CAP = 10.0, 300.0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=300)
    parser.add_argument("--seed", type=int, default=3)
    args = parser.parse_args(argv)
    if GRASS is None:
        print(SKIP_REASON)
        return 1
    import pyflwdir

    from swc_rs.erosion import factors, terrain
    from swc_rs.erosion.config import ErosionConfig, build_erosion_config
    from swc_rs.erosion.run import ls_factors

    z = hills_dem(args.size, CELL, args.seed)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        g = run_grass(write_dem(folder / "hills.tif", z, CELL), folder, [
            "r.slope.aspect --q elevation=dem slope=slope aspect=aspect format=degrees precision=DCELL",
            "r.watershed -s --q elevation=dem threshold=100000000 accumulation=acc",
            f"r.watershed -s --q elevation=dem threshold=100000000 max_slope_length={2 * CAP + CELL} "
            "length_slope=ls slope_steepness=s",
            f"r.watershed -s --q elevation=dem threshold=100000000 max_slope_length={CAP} "
            "length_slope=ls_cap slope_steepness=s_cap",
        ], ["slope", "aspect", "acc", "ls", "s", "ls_cap", "s_cap"])
    inner = (slice(2, -2), slice(2, -2))
    slope = terrain.slope_aspect(z, CELL, CELL)[0]
    flat = ~(slope > 1.0)

    def rel(ours, ref):
        ok = ~flat & np.isfinite(ref) & (ref > 0.05) & np.isfinite(ours)
        r = (np.abs(ours - ref) / ref)[inner][ok[inner]]
        return f"median |rel| {100 * np.median(r):6.2f} %  (p90 {100 * np.percentile(r, 90):6.1f} %, " \
               f"ratio {np.median((ours / ref)[inner][ok[inner]]):.2f})"

    print(f"hilly DEM {args.size}² × {CELL:g} m (seed {args.seed}); slope 5/50/95 %: "
          + " / ".join(f"{v:.1f}°" for v in np.percentile(slope, [5, 50, 95])) + f"; GRASS {GRASS}")
    print(f"slope vs r.slope.aspect: max |Δ| {np.nanmax(np.abs(slope - g['slope'])[inner]):.2e}°")
    d8 = terrain.flow_directions(z, CELL, CELL)
    up = pyflwdir.from_array(d8, ftype="d8", check_ftype=False).upstream_area(unit="cell")
    same = np.isclose(up, np.abs(g["acc"]))[inner][~flat[inner]]
    print(f"D8 accumulation vs r.watershed -s: identical on {100 * same.mean():.1f} % of non-flat cells")
    config = ErosionConfig()
    lf, sf, _ = ls_factors(z, CELL, CELL, config)
    alpha = np.radians(g["aspect"])
    x = np.where(g["slope"] > 0, np.abs(np.sin(alpha)) + np.abs(np.cos(alpha)), 1.0)
    area_in = np.clip(np.abs(g["acc"]) - 1, 0, None) * CELL * CELL
    lin, lout = np.minimum(area_in / (CELL * x), CAP), np.minimum((area_in + CELL * CELL) / (CELL * x), CAP)
    m = factors.length_exponent(g["slope"], config.m_breaks_deg, config.m_values)
    on_grass = factors.length_factor(lin, lout, m) * factors.slope_factor(g["slope"], config.s_breaks_deg,
                                                                           config.s_coefficients)
    print(f"CSLE LS vs the same formulas on GRASS's terrain:         {rel(lf * sf, on_grass)}")
    undoubled = grass_ls_undoubled(g["ls"], g["s"], CELL, CAP)
    print(f"CSLE LS (defaults) vs r.watershed length_slope (cap {CAP:g}): {rel(lf * sf, g['ls_cap'])}")
    print(f"CSLE LS (defaults) vs r.watershed, doubling undone:      {rel(lf * sf, undoubled)}")
    for formula in ("segment", "cumulative"):
        like = build_erosion_config({**grass_like_config(CAP), "l_formula": formula})
        lf2, sf2, _ = ls_factors(z, CELL, CELL, like)
        print(f"GRASS-like config, L {formula:10s} vs raw r.watershed:     {rel(lf2 * sf2, g['ls_cap'])}")
        print(f"GRASS-like config, L {formula:10s} vs doubling undone:     {rel(lf2 * sf2, undoubled)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
