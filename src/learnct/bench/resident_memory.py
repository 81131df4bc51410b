"""This process's resident memory, from Linux's ``/proc/self``: its size (``VmRSS``), its
high-water mark (``VmHWM``) and the mark's reset (``clear_refs`` = 5, which sets it to the
current size). Where ``/proc/self`` cannot be read or written (not Linux) the sizes are
``None``, and benchmarks show ``-``."""

from __future__ import annotations

import ctypes
import gc
from collections.abc import Callable
from pathlib import Path

__all__ = ["reset_resident_peak", "resident_bytes", "resident_peak_bytes"]

_PROC = Path("/proc/self")


def resident_bytes(field: str = "VmRSS") -> int | None:
    """``VmRSS`` (now) or ``VmHWM`` (the high-water mark) of this process in bytes."""
    try:
        lines = (_PROC / "status").read_text().splitlines()
    except OSError:
        return None
    for line in lines:
        if line.startswith(f"{field}:"):
            return int(line.split()[1]) * 1024
    return None


def reset_resident_peak() -> int | None:
    """Set the high-water mark to the current resident size, and return that size in bytes
    (``None``: the mark cannot be reset here)."""
    try:
        (_PROC / "clear_refs").write_text("5")
    except OSError:
        return None
    return resident_bytes("VmRSS")


def _release_free_memory() -> None:
    """Hand the C heap's free memory back to the system (glibc's ``malloc_trim``), so that
    memory an earlier computation freed but kept resident does not hide this one's peak."""
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):  # not glibc: the peak may read low
        pass


def resident_peak_bytes(fn: Callable[[], object]) -> tuple[object, int | None]:
    """``fn()`` and how far the resident memory rose above its start while it ran (bytes;
    ``None`` where the high-water mark cannot be reset or read)."""
    gc.collect()
    _release_free_memory()
    start = reset_resident_peak()
    out = fn()
    peak = resident_bytes("VmHWM")
    return out, None if start is None or peak is None else peak - start
