"""The ``multi_run`` section (issue #21): optimiser steps per second of K independent LPD
trainings in one process, three ways.

A 128^2 training step leaves most of a GPU idle; a sweep's K trials (here: the same
architecture from seeds 0..K-1, with learning rates spread around 1e-3) can share it:

- ``sequential``: the K models stepped one after another (:func:`~learnct.bench.training.step_fn`,
  each with its own Adam);
- ``streams`` (CUDA only): the same K steps, model k's launched on its own CUDA stream, one
  thread interleaving the launches, so that the GPU can run K steps' kernels at once. On the
  compiled path these steps are compiled without CUDA graphs (``torch.compile``'s CUDA graph
  trees share one memory pool and assume that their graphs replay one after another);
- ``vmap``: the K models as one, parameters stacked and the forward vmapped over them and
  over K batches (:class:`~learnct.methods.stacked.StackedTraining`; per-model clipping and
  Adam with per-model learning rates).

Each for the fast path's ``fast`` (eager, no host read per step) and ``fast+compiled``
(:data:`~learnct.bench.training.FLAG_CONFIGS`). The modes are timed interleaved (one round of
mode 1, one of mode 2, ...), CUDA synchronised, median round after warm-up rounds (which
include compiling); ``steps/s`` is ``K / round``. Memory: the peak of one round above what was
allocated before it (CUDA: ``max_memory_allocated``; CPU: the peak resident set after resetting
it, approximate, since freed heap memory is reused across rounds). A time budget
(``budget_s``) stops starting new (path, setup, K) groups once spent; their rows say so.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

import torch

from learnct.bench.methods import build_untrained
from learnct.bench.resident_memory import resident_peak_bytes
from learnct.bench.tables import milliseconds
from learnct.bench.timing import failure_note, interleaved_median_ms, synchronize
from learnct.bench.training import FLAG_CONFIGS, make_batch, step_fn
from learnct.methods.stacked import StackedTraining
from learnct.physics.operator import RayTransform
from learnct.physics.presets import PRESETS

__all__ = ["MODES", "benchmark_multi_run", "format_rows", "multi_run_rows"]

MODES = ("sequential", "streams", "vmap")


def _lrs(k: int) -> list[float]:
    """``k`` learning rates, as a sweep's trials: 1e-3 times 0.5 .. 2 (log-spaced)."""
    if k == 1:
        return [1e-3]
    return [1e-3 * 4 ** (i / (k - 1) - 0.5) for i in range(k)]


def _memory_mb(run: Callable[[], Any], device: torch.device) -> float | None:
    """Peak memory of one ``run()`` above what was allocated before it, in MiB (``None``:
    unknown, on a CPU without ``/proc/self``)."""
    synchronize(device)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
        before = torch.cuda.memory_allocated(device)
        run()
        synchronize(device)
        return (torch.cuda.max_memory_allocated(device) - before) / 2**20
    _, peak = resident_peak_bytes(run)
    return None if peak is None else peak / 2**20


def _rounds(
    models: list, batches: list[tuple[torch.Tensor, torch.Tensor]], path: str, k: int
) -> dict[str, Callable[[], Any]]:
    """One round (K optimiser steps) per mode, for the first ``k`` models."""
    device = batches[0][0].device
    lrs = _lrs(k)
    steps = [step_fn(models[i], *batches[i], lr=lrs[i]) for i in range(k)]
    rounds: dict[str, Callable[[], Any]] = {"sequential": lambda: [s() for s in steps]}
    if device.type == "cuda":
        concurrent = steps
        if path == "fast+compiled":  # no CUDA graph trees (module docstring)
            concurrent = [
                step_fn(models[i], *batches[i], lr=lrs[i], cuda_graphs=False) for i in range(k)
            ]
        streams = [torch.cuda.Stream(device) for _ in range(k)]

        def on_streams() -> None:
            current = torch.cuda.current_stream(device)
            for stream, step in zip(streams, concurrent, strict=True):
                stream.wait_stream(current)  # the last round's updates are in
                with torch.cuda.stream(stream):
                    step()
            for stream in streams:
                current.wait_stream(stream)

        rounds["streams"] = on_streams
    fast_path = FLAG_CONFIGS[path]["fast_path"]
    stacked = StackedTraining(models[:k], lrs, fast_path=fast_path)
    images = torch.stack([b[0] for b in batches[:k]])
    sinograms = torch.stack([b[1] for b in batches[:k]])
    rounds["vmap"] = lambda: stacked.step(sinograms, images)
    return rounds


def benchmark_multi_run(
    setup: str,
    operator: RayTransform,
    batches: Sequence[tuple[torch.Tensor, torch.Tensor]],
    ks: Sequence[int] = (1, 2, 4, 8),
    paths: Sequence[str] = ("fast",),
    warmup: int = 2,
    reps: int = 5,
    model_options: dict[str, Any] | None = None,
    deadline: float | None = None,
    on_group: Callable[[list[dict[str, Any]]], None] | None = None,
) -> list[dict[str, Any]]:
    """Rows ``{setup, batch, K, mode, path, steps_per_s, ms_per_model_step, step_mb,
    note}`` for K in ``ks`` and each path: LPD (with ``model_options``, e.g. ``n_iter``)
    trained on ``batches[k]`` (``(images, sinograms)`` on the device, one per model, at least
    ``max(ks)``); ``deadline``: a ``time.perf_counter()`` value after which no group starts;
    ``on_group``: called with each (path, K) group's rows once they are measured."""
    if len(batches) < max(ks):
        raise ValueError(f"benchmark_multi_run needs {max(ks)} batches, got {len(batches)}")
    device = batches[0][0].device
    rows = []
    # the compiled steps of several shapes (K, setups) and modes share one code object
    with torch._dynamo.config.patch(recompile_limit=64):
        for path in paths:
            rows += _benchmark_path(
                setup,
                operator,
                batches,
                ks,
                path,
                warmup,
                reps,
                model_options,
                deadline,
                device,
                on_group,
            )
    return rows


def _benchmark_path(
    setup: str,
    operator: RayTransform,
    batches: Sequence[tuple[torch.Tensor, torch.Tensor]],
    ks: Sequence[int],
    path: str,
    warmup: int,
    reps: int,
    model_options: dict[str, Any] | None,
    deadline: float | None,
    device: torch.device,
    on_group: Callable[[list[dict[str, Any]]], None] | None,
) -> list[dict[str, Any]]:
    """:func:`benchmark_multi_run`'s rows for one path: ``max(ks)`` models built once (seed
    k for model k), the first K of them stepped for each K."""
    models = []
    for seed in range(max(ks)):
        torch.manual_seed(seed)
        method = build_untrained("lpd", operator, FLAG_CONFIGS[path], **(model_options or {}))
        models.append(method.to(device))
    rows = []
    for k in ks:
        base = {"setup": setup, "batch": batches[0][0].shape[0], "K": k, "path": path}
        here = {mode: {**base, "mode": mode, "note": ""} for mode in MODES}
        if device.type != "cuda":
            here["streams"]["note"] = "CUDA only"
        if deadline is not None and time.perf_counter() > deadline:
            for mode in MODES:
                here[mode]["note"] = here[mode]["note"] or "not run: section time budget spent"
        else:
            _measure_group(here, models, batches, path, k, warmup, reps, device)
        rows.extend(here.values())
        if on_group is not None:
            on_group(list(here.values()))
    return rows


def _measure_group(
    here: dict[str, dict[str, Any]],
    models: list,
    batches: Sequence[tuple[torch.Tensor, torch.Tensor]],
    path: str,
    k: int,
    warmup: int,
    reps: int,
    device: torch.device,
) -> None:
    """Time every mode's round of ``k`` models; the figures (or the error) go into ``here``."""
    try:
        rounds = _rounds(models, list(batches), path, k)
        for _ in range(warmup):
            for run in rounds.values():
                run()
    except (torch.OutOfMemoryError, MemoryError, RuntimeError) as err:
        text = failure_note(err)
        for row in here.values():
            row["note"] = row["note"] or text
        return
    medians, _ = interleaved_median_ms(rounds, device, reps)  # interleaved: the same load
    for mode, run in rounds.items():
        seconds = medians[mode] / 1e3
        here[mode]["steps_per_s"] = k / seconds
        here[mode]["ms_per_model_step"] = seconds / k * 1e3
        here[mode]["step_mb"] = _memory_mb(run, device)


def multi_run_rows(
    cases: Sequence[tuple[str, int]],
    ks: Sequence[int],
    device: str,
    paths: Sequence[str],
    quick: bool,
    budget_s: float | None = None,
    progress: Callable[[list[dict]], None] | None = None,
) -> list[dict]:
    """:func:`benchmark_multi_run` for each path and (preset, batch) case, formatted, with each
    row's steps per second relative to ``sequential`` at the same setup, K and path.
    ``progress``: called with the formatted rows so far after every measured group (so that
    a run stopped by a time limit leaves its table)."""
    dev = torch.device(device)
    deadline = None if budget_s is None else time.perf_counter() + budget_s
    warmup, reps = (1, 1) if quick else (2, 5)
    results: list[dict[str, Any]] = []

    def measured(group: list[dict[str, Any]]) -> None:
        results.extend(group)
        if progress is not None:
            progress(format_rows(results, dev))

    setups = {}
    for preset, batch in cases:
        operator = RayTransform(PRESETS[preset]().geometry)
        batches = [make_batch(preset, operator, batch, dev, seed) for seed in range(max(ks))]
        setups[preset, batch] = operator, batches
    for path in paths:  # path by path (eager first): a spent budget drops the last ones
        for (preset, _), (operator, batches) in setups.items():
            benchmark_multi_run(
                preset, operator, batches, ks, (path,), warmup, reps, None, deadline, measured
            )
    return format_rows(results, dev)


def format_rows(results: list[dict[str, Any]], device: torch.device) -> list[dict]:
    """The section's table rows: steps/s, per-model ms, ratio to ``sequential``, memory."""
    sequential = {
        (r["setup"], r["batch"], r["K"], r["path"]): r.get("steps_per_s")
        for r in results
        if r["mode"] == "sequential"
    }
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    rows = []
    for r in results:
        rate, base = (
            r.get("steps_per_s"),
            sequential.get((r["setup"], r["batch"], r["K"], r["path"])),
        )
        rows.append(
            {
                "setup": r["setup"],
                "batch": r["batch"],
                "K": r["K"],
                "mode": r["mode"],
                "path": r["path"],
                "device": name,
                "steps/s (all K)": "-" if rate is None else f"{rate:.3g}",
                "ms per model step": "-" if rate is None else milliseconds(r["ms_per_model_step"]),
                "vs sequential": "-" if rate is None or not base else f"{rate / base:.2f}",
                "step peak MB": "-" if r.get("step_mb") is None else f"{r['step_mb']:.0f}",
                "note": r["note"],
            }
        )
    return rows
