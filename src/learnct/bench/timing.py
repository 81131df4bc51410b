"""Wall-clock timing for the benchmarks: median after warm-up, CUDA synchronised."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Mapping

import torch

__all__ = ["failure_note", "interleaved_median_ms", "median_ms", "synchronize"]


def synchronize(device: torch.device | str) -> None:
    """Wait for queued CUDA work on ``device`` (no-op on the CPU)."""
    device = torch.device(device)
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def median_ms(
    fn: Callable[[], object], device: torch.device | str = "cpu", warmup: int = 2, reps: int = 7
) -> float:
    """Median wall time of ``fn()`` in ms over ``reps`` runs after ``warmup`` runs."""
    for _ in range(warmup):
        fn()
    synchronize(device)
    times = []
    for _ in range(reps):
        start = time.perf_counter()
        fn()
        synchronize(device)
        times.append((time.perf_counter() - start) * 1e3)
    return statistics.median(times)


def interleaved_median_ms(
    fns: Mapping[str, Callable[[], object]], device: torch.device | str, reps: int
) -> tuple[dict[str, float], dict[str, object]]:
    """Median wall time in ms of each of ``fns`` over ``reps`` rounds, CUDA synchronised, and
    each one's last result. The rounds interleave the functions (one call of each per round),
    so every one sees the same machine load; warm them up before."""
    times: dict[str, list[float]] = {key: [] for key in fns}
    last: dict[str, object] = {}
    for _ in range(reps):
        for key, fn in fns.items():
            synchronize(device)
            start = time.perf_counter()
            last[key] = fn()
            synchronize(device)
            times[key].append((time.perf_counter() - start) * 1e3)
    return {key: statistics.median(t) for key, t in times.items()}, last


def failure_note(err: BaseException, prefix: str = "failed") -> str:
    """``"failed: TypeName: first line of the message"`` (at most 120 characters of it) for a
    benchmark row whose measurement raised ``err``; a message-less error gives its type only."""
    first = (str(err).strip().splitlines() or [""])[0][:120]
    return f"{prefix}: {type(err).__name__}" + (f": {first}" if first else "")
