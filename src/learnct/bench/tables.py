"""What the benchmarks write: Markdown tables, row labels and the machine line."""

from __future__ import annotations

import datetime as dt
import math
import os
import platform

import torch

from learnct.physics import FanBeamGeometry, Geometry

__all__ = ["geometry_label", "machine", "markdown_table", "milliseconds"]


def geometry_label(geometry: Geometry) -> str:
    """``"fan 128^2, 360 x 256"``: beam, image size, angles x detectors."""
    kind = "fan" if isinstance(geometry, FanBeamGeometry) else "parallel"
    return f"{kind} {geometry.image_size}^2, {geometry.n_angles} x {geometry.n_detectors}"


def milliseconds(ms: float) -> str:
    """A duration in ms to three significant figures in fixed point, so a fast call is never
    printed as zero: 1234.5 -> ``"1234"``, 12.345 -> ``"12.3"``, 0.012345 -> ``"0.0123"``."""
    if not math.isfinite(ms) or ms <= 0:
        return f"{ms:.1f}"
    rounded = float(f"{ms:.3g}")  # 9.9996 rounds to 10.0: one decimal, not two
    return f"{ms:.{max(0, 2 - math.floor(math.log10(rounded)))}f}"


def machine(device: str) -> str:
    """The device (GPU name, or CPU and cores), torch version and threads, and the UTC time."""
    if device.startswith("cuda"):
        name = torch.cuda.get_device_name()
    else:
        name = f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores"
    return (
        f"{name}; torch {torch.__version__}, {torch.get_num_threads()} threads; "
        f"{dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC"
    )


def markdown_table(rows: list[dict]) -> str:
    """A Markdown table with one column per key (in order of first appearance, ``note`` last),
    ``|`` escaped inside cells; ``"(no rows)"`` for none."""
    if not rows:
        return "(no rows)\n"
    keys = list(dict.fromkeys(k for row in rows for k in row))
    if "note" in keys:  # free text last
        keys = [k for k in keys if k != "note"] + ["note"]
    lines = ["| " + " | ".join(keys) + " |", "|" + "---|" * len(keys)]

    def cell(row: dict, key: str) -> str:  # a "|" in free text would split the cell
        return str(row.get(key, "")).replace("|", "\\|")

    lines += ["| " + " | ".join(cell(row, k) for k in keys) + " |" for row in rows]
    return "\n".join(lines) + "\n"
