"""Wall-clock timing for the benchmarks: median after warm-up, CUDA synchronised."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable

import torch

__all__ = ["median_ms", "synchronize"]


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
