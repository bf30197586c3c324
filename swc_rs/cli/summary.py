"""Print a detect result's summary (counts by BYD, QTYPE, colour) for people."""

from __future__ import annotations

import click

from swc_rs import codes


def print_detect_summary(result, output) -> None:
    patches = result.patches
    info = result.run_info
    click.echo(f"Wrote {output}")
    click.echo(
        f"  grid {info['grid_shape'][1]}×{info['grid_shape'][0]} px at {info['pixel_size_m']} m, sensor {info['sensor']}, "
        f"dates {info['date_before'] or '?'} → {info['date_after'] or '?'}, shift {info['shift_rows']:+.2f}/{info['shift_cols']:+.2f} px, "
        f"QTYPE by {info['model_id']}"
    )
    if "change_detector" in info:
        click.echo(f"  change found by {info['change_model_id'] if info['change_detector'] != 'rules' else 'the rules'}: "
                   f"{info['change_detector_reason']}")
    click.echo(f"  {len(patches)} disturbance patches, {len(result.violations)} suspected violations")
    for title, field, values in (("QTYPE", "QTYPE", codes.QTYPES), ("BYD", "BYD", codes.BYD_DESK), ("X_COLOR", "X_COLOR", codes.COLOURS)):
        sel = patches if field != "X_COLOR" else patches[patches["BYD"].fillna("").str.startswith(codes.SUSPECTED_PREFIX)]
        parts = []
        for value in values:
            rows = sel[sel[field] == value]
            if len(rows):
                parts.append(f"{value} {len(rows)} ({rows['QAREA'].sum():.2f} hm²)")
        click.echo(f"  {title:8s} " + (" · ".join(parts) if parts else "none"))
    click.echo(f"  time {sum(info['timings_s'].values()):.1f} s")
    print_warnings(info.get("warnings") or [])


def print_warnings(texts) -> None:
    """The run's recorded warnings (run_info ``warnings``), last, so that none is missed."""
    if texts:
        click.echo(f"  {len(texts)} warning{'s' if len(texts) != 1 else ''} (recorded in run_info):")
        for text in texts:
            click.echo(f"    ! {text}")
