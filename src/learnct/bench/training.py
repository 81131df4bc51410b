"""The ``training`` section: step time and peak memory of training a learned method with and
without each execution flag (gradient checkpointing, bf16 autocast of the CNN blocks,
``torch.compile``).

One step is what Lightning runs per batch: forward, MSE loss, backward, gradient-norm
clipping at 1, Adam step, zero grad, on a fixed batch of random ellipse phantoms with the
preset's noise. The operator norm comes from 20 power iterations (plenty for timing).

- Step time: the configurations are built in one process and timed interleaved (step of
  config 1, step of config 2, ..., repeated), median after warm-up steps (which include
  ``torch.compile``'s compilation), CUDA synchronised, so that every configuration shares the
  same background load.
- Peak memory, CUDA: ``torch.cuda.max_memory_allocated`` over the timed steps (``total``) and
  its excess over the memory allocated before them (``step``: activations, gradients, temporaries).
- Peak memory, CPU: no allocator statistics exist, so each configuration runs in a fresh
  subprocess with glibc's mmap threshold fixed at 64 KiB (``MALLOC_MMAP_THRESHOLD_``: every
  tensor buffer is its own mapping, returned to the system when freed, so the resident set
  follows the live tensors instead of the heap's high-water mark). After the warm-up steps
  the kernel's peak-RSS counter is reset (``/proc/self/clear_refs`` = 5); ``step`` is the
  peak resident set during the timed steps minus the resident set at the reset, ``total``
  the process's peak (torch's libraries included).
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence
from typing import Any

import torch

from learnct.bench.methods import build_untrained
from learnct.bench.resident_memory import reset_resident_peak, resident_bytes
from learnct.bench.timing import failure_note, interleaved_median_ms, synchronize
from learnct.data.phantoms import random_ellipses, rasterize_ellipses
from learnct.methods import ReconstructionMethod
from learnct.methods.fast_path import (
    compile_step,
    grads_in_parameter_strides,
    optimizer_options,
)
from learnct.nets.blocks import ConvBlock
from learnct.physics.operator import RayTransform
from learnct.physics.presets import PRESETS

__all__ = [
    "FLAG_CONFIGS",
    "GPU_CONFIGS",
    "INFERENCE_CONFIGS",
    "TRAINING_TARGET_MB",
    "benchmark_training",
    "bf16_block_slowdown",
    "build_method",
    "inference_rows",
    "make_batch",
    "measure_step",
    "native_bf16",
    "step_fn",
    "training_rows",
    "training_table",
]

#: Configuration name -> method keyword arguments (the execution flags).
FLAG_CONFIGS: dict[str, dict[str, Any]] = {
    "baseline": {},
    "checkpoint": {"checkpoint": True},
    "bf16": {"autocast": "bf16"},
    "compile": {"compile": True},
    "checkpoint+bf16": {"checkpoint": True, "autocast": "bf16"},
    # the fast training path (issue #21, learnct.methods.fast_path): no host read per step,
    # fused (CUDA) or foreach Adam; compiled: the whole forward + loss + backward in one
    # torch.compile graph, replayed as CUDA graphs (mode="reduce-overhead") on CUDA
    "fast": {"fast_path": "eager"},
    "fast+compiled": {"fast_path": "compiled"},
    "fast+compiled+bf16": {"fast_path": "compiled", "autocast": "bf16"},
    # weights and activations channels-last (NHWC): the convolutions' native layout ("cl":
    # the default CPU step of learnct-train, trainer.channels_last=true)
    "cl": {"channels_last": True},
    "fast+cl": {"fast_path": "eager", "channels_last": True},
    "fast+compiled+cl": {"fast_path": "compiled", "channels_last": True},
    "fast+compiled+bf16+cl": {"fast_path": "compiled", "autocast": "bf16", "channels_last": True},
}

#: The configurations of ``make bench ARGS=--gpu``: today's step beside the fast path's.
GPU_CONFIGS = (
    "baseline",
    "bf16",
    "fast",
    "fast+compiled",
    "fast+compiled+bf16",
    "fast+compiled+bf16+cl",
)


def native_bf16(device: torch.device) -> bool:
    """Whether ``device`` computes bfloat16 convolutions natively: CUDA, or a CPU with
    AVX512-BF16 or AMX (without them oneDNN emulates bf16 and it is several times slower
    than float32)."""
    if device.type == "cuda":
        return True
    return bool(torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported())


def bf16_block_slowdown(shape: tuple[int, int, int, int], reps: int = 2) -> float:
    """Time of one LPD conv block (forward + backward) on CPU input ``shape`` in bf16
    autocast divided by its float32 time (median of ``reps`` interleaved runs)."""
    block = ConvBlock(shape[1], 5, 32)
    x = torch.rand(shape)
    times: dict[bool, list[float]] = {False: [], True: []}
    for _ in range(reps + 1):
        for bf16 in (False, True):
            start = time.perf_counter()
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
                out = block(x)
            out.float().sum().backward()
            times[bf16].append(time.perf_counter() - start)
    return statistics.median(times[True][1:]) / statistics.median(times[False][1:])


def build_method(
    name: str, operator: RayTransform, flags: dict[str, Any], device: torch.device
) -> ReconstructionMethod:
    """:func:`~learnct.bench.methods.build_untrained` with the given flags on ``device``, from
    the same initial weights for every configuration (seed 0)."""
    torch.manual_seed(0)
    return build_untrained(name, operator, flags).to(device)


def make_batch(
    preset_name: str, operator: RayTransform, batch: int, device: torch.device, seed: int = 0
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(images, noisy sinograms)`` of ``batch`` random ellipse phantoms with the preset's
    noise: projected on ``device`` (on CUDA no CPU operator is built), noise drawn on the CPU
    from ``seed`` (so CPU and CUDA batches differ only where their line integrals do)."""
    preset = PRESETS[preset_name]()
    gen = torch.Generator().manual_seed(seed)
    n = preset.geometry.image_size
    images = torch.stack([rasterize_ellipses(random_ellipses(gen), n) for _ in range(batch)])
    images = images[:, None].float().to(device)
    with torch.no_grad():  # projected on ``device`` (on CUDA: no CPU matrix build for this)
        clean = operator(images).cpu()
        sinogram = preset.simulate(clean, generator=gen)
    return images, sinogram.to(device)


def step_fn(
    method: ReconstructionMethod,
    images: torch.Tensor,
    sinogram: torch.Tensor,
    lr: float = 1e-3,
    cuda_graphs: bool = True,
):
    """A closure running one training step (see module docstring); returns the loss (a
    float, read every step as Lightning's per-step logging does, or on the fast path
    (``method.fast_path``) the device tensor, which the timing loop synchronises).
    ``cuda_graphs=False``: the compiled fast path on CUDA without CUDA graphs (inductor's
    default mode, for steps launched concurrently on several streams)."""
    params = [p for p in method.parameters() if p.requires_grad]
    adam = functools.partial(torch.optim.Adam, lr=lr, betas=(0.9, 0.99))
    fast = method.fast_path is not None
    device = images.device
    options = optimizer_options(adam, device) if fast else {}
    optimizer = adam(params, **options)
    method.train()
    loss_of = method.training_loss
    graphs = method.fast_path == "compiled" and device.type == "cuda" and cuda_graphs
    if method.fast_path == "compiled":
        loss_of = compile_step(loss_of, method, device, cuda_graphs)

    def step() -> float | torch.Tensor:
        if graphs:
            torch.compiler.cudagraph_mark_step_begin()
        loss = loss_of(sinogram, images)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        grads_in_parameter_strides(optimizer)  # as the method's hook does under Lightning
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        return loss.detach().clone() if fast else float(loss.detach())

    return step


def measure_step(
    method_name: str,
    preset: str,
    batch: int,
    config: str,
    device: str,
    warmup: int,
    reps: int,
    operator: RayTransform | None = None,
    cuda_graphs: bool = True,
) -> dict[str, Any]:
    """Peak memory (and the step times) of one configuration in this process (``operator``:
    reuse this one, so that CUDA does not hold two copies of its matrices; ``cuda_graphs``:
    see :func:`step_fn`). On CUDA the peak includes the warm-up: a CUDA-graph step allocates
    its private memory pool while recording, and replays without allocating (measured after
    the warm-up, the compiled step's peak read 6 MB)."""
    dev = torch.device(device)
    if operator is None:
        operator = RayTransform(PRESETS[preset]().geometry)
    images, sinogram = make_batch(preset, operator, batch, dev)
    method = build_method(method_name, operator, FLAG_CONFIGS[config], dev)
    step = step_fn(method, images, sinogram, cuda_graphs=cuda_graphs)
    if dev.type == "cuda":  # from before the warm-up: CUDA graphs allocate while recording
        synchronize(dev)
        torch.cuda.reset_peak_memory_stats(dev)
        before = torch.cuda.memory_allocated(dev)
    for _ in range(warmup):
        step()
    synchronize(dev)
    if dev.type != "cuda":
        before = reset_resident_peak()
    times, losses = [], []
    for _ in range(reps):
        start = time.perf_counter()
        losses.append(float(step()))
        synchronize(dev)
        times.append((time.perf_counter() - start) * 1e3)
    if dev.type == "cuda":
        total = torch.cuda.max_memory_allocated(dev)
    else:
        total = resident_bytes("VmHWM")
    known = before is not None and total is not None  # not Linux: unknown on the CPU
    return {
        "step_peak_mb": (total - before) / 2**20 if known else None,
        "total_peak_mb": total / 2**20 if known else None,
        "ms_per_step": statistics.median(times),
        "loss": losses[-1],
    }


def _measure_in_subprocess(
    method_name: str, preset: str, batch: int, config: str, warmup: int, reps: int
) -> dict[str, Any]:
    """``measure_step`` on the CPU in a fresh interpreter (see module docstring)."""
    env = dict(os.environ, MALLOC_MMAP_THRESHOLD_="65536")
    cmd = [sys.executable, "-m", __name__, method_name, preset, str(batch), config]
    cmd += ["--warmup", str(warmup), "--reps", str(reps)]
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
    if out.returncode != 0:
        tail = (out.stderr.strip().splitlines() or ["(no output)"])[-1]
        raise RuntimeError(f"memory subprocess failed: {tail[:160]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def benchmark_training(
    method_name: str = "lpd",
    cases: Sequence[tuple[str, int]] = (("fan_lowdose", 2),),
    configs: Sequence[str] = tuple(FLAG_CONFIGS),
    device: str = "cpu",
    warmup: int = 2,
    reps: int = 5,
    memory_reps: int = 2,
) -> list[dict[str, Any]]:
    """Rows ``{method, setup, batch, config, device, ms_per_step, step_peak_mb,
    total_peak_mb, loss, note}`` for every (preset, batch) case and flag configuration.

    Configurations with bf16 autocast are not run on a CPU without native bf16
    (:func:`native_bf16`); their note gives the measured slowdown of one conv block instead.
    """
    dev = torch.device(device)
    rows = []
    for preset, batch in cases:
        operator = RayTransform(PRESETS[preset]().geometry)
        images, sinogram = make_batch(preset, operator, batch, dev)
        steps, rows_here = {}, {}
        for config in configs:
            row = {
                "method": method_name,
                "setup": preset,
                "batch": batch,
                "config": config,
                "device": torch.cuda.get_device_name(dev) if dev.type == "cuda" else "cpu",
                "ms_per_step": None,
                "step_peak_mb": None,
                "total_peak_mb": None,
                "loss": None,
                "note": "",
            }
            rows_here[config] = row
            if FLAG_CONFIGS[config].get("autocast") and not native_bf16(dev):
                shape = (batch, 7, *operator.geometry.sinogram_shape)  # an LPD dual block
                slowdown = bf16_block_slowdown(shape)
                row["note"] = (
                    "not run: this CPU has no native bf16 (AVX512-BF16/AMX); one LPD conv "
                    f"block (fwd + bwd) is {slowdown:.1f}x slower in bf16 here"
                )
                continue
            try:
                method = build_method(method_name, operator, FLAG_CONFIGS[config], dev)
                steps[config] = step_fn(method, images, sinogram)
                for _ in range(warmup):
                    steps[config]()
            except (torch.OutOfMemoryError, MemoryError, RuntimeError) as err:
                row["note"] = failure_note(err)
                steps.pop(config, None)
        medians, losses = interleaved_median_ms(steps, dev, reps)
        for config, ms in medians.items():
            rows_here[config]["ms_per_step"] = ms
            rows_here[config]["loss"] = float(losses[config])
        del steps, losses  # free the timed models before measuring memory
        for config in configs:
            row = rows_here[config]
            if row["note"]:
                continue
            try:
                if dev.type == "cuda":
                    torch.cuda.empty_cache()
                    mem = measure_step(
                        method_name, preset, batch, config, device, warmup, memory_reps, operator
                    )
                else:
                    mem = _measure_in_subprocess(
                        method_name, preset, batch, config, warmup, memory_reps
                    )
                row["step_peak_mb"] = mem["step_peak_mb"]
                row["total_peak_mb"] = mem["total_peak_mb"]
            except (torch.OutOfMemoryError, MemoryError, RuntimeError) as err:
                row["note"] = failure_note(err, "memory")
        rows.extend(rows_here.values())
    return rows


#: Issue #7's target for LPD training at 512^2, batch 1, on one GPU.
TRAINING_TARGET_MB = 16 * 1024


def training_rows(
    cases: list[tuple[str, int]],
    device: str,
    quick: bool,
    configs: Sequence[str] | None = None,
) -> list[dict]:
    """LPD training step time and peak memory per (preset, batch) with and without each
    execution flag (:func:`benchmark_training`; ``configs``: these names of
    ``FLAG_CONFIGS``, default all, ``quick``: baseline and bf16), with ratios to the baseline
    and issue #7's 16 GiB target at ``fan_mayo``, batch 1."""
    if configs is None:
        configs = ["baseline", "bf16"] if quick else list(FLAG_CONFIGS)
    reps = 1 if quick else 5
    results = benchmark_training(
        "lpd", cases, configs, device, warmup=1 if quick else 2, reps=reps, memory_reps=1
    )
    return training_table(results)


def training_table(results: Sequence[dict[str, Any]]) -> list[dict]:
    """The table rows of :func:`benchmark_training`'s results: ratios to the baseline of the
    same (setup, batch) and issue #7's 16 GiB target at ``fan_mayo``, batch 1."""
    baseline = {(r["setup"], r["batch"]): r for r in results if r["config"] == "baseline"}
    rows = []
    for r in results:
        base = baseline.get((r["setup"], r["batch"]))
        ms, step_mb, total_mb = r["ms_per_step"], r["step_peak_mb"], r["total_peak_mb"]

        def ratio(value, key, base=base):
            if value is None or base is None or not base[key]:
                return "-"
            return f"{value / base[key]:.2f}"

        target = "-"
        if r["setup"] == "fan_mayo" and r["batch"] == 1 and total_mb is not None:
            fits = "fits" if total_mb <= TRAINING_TARGET_MB else "exceeds"
            target = f"<= 16 GiB: {fits}"
        rows.append(
            {
                "method": r["method"],
                "setup": r["setup"],
                "batch": r["batch"],
                "flags": r["config"],
                "device": r["device"],
                "ms per step": "-" if ms is None else f"{ms:.0f}",
                "time / baseline": ratio(ms, "ms_per_step"),
                "step peak MB": "-" if step_mb is None else f"{step_mb:.0f}",
                "memory / baseline": ratio(step_mb, "step_peak_mb"),
                "total peak MB": "-" if total_mb is None else f"{total_mb:.0f}",
                "issue #7 target": target,
                "loss": "-" if r["loss"] is None else f"{r['loss']:.3g}",
                "note": r["note"],
            }
        )
    return rows


#: Inference configurations: method keyword arguments, and whether the forward is compiled.
INFERENCE_CONFIGS: dict[str, tuple[dict[str, Any], bool]] = {
    "eager": ({}, False),
    "compiled": ({}, True),
    "bf16": ({"autocast": "bf16"}, False),
    "compiled+bf16": ({"autocast": "bf16"}, True),
    "cl": ({"channels_last": True}, False),
    "compiled+cl": ({"channels_last": True}, True),
}


def inference_rows(
    presets: Sequence[str], device: str, quick: bool, configs: Sequence[str] | None = None
) -> list[dict]:
    """LPD reconstruction time per slice at batch 1 (eval mode, no gradients), eager beside
    ``torch.compile`` (``mode="reduce-overhead"``: CUDA graphs on CUDA), interleaved, median
    after warm-up (which includes compiling), CUDA synchronised."""
    dev = torch.device(device)
    configs = list(configs or (["eager", "compiled"] if quick else INFERENCE_CONFIGS))
    warmup, reps = (2, 2) if quick else (3, 20)
    rows = []
    for preset in presets:
        operator = RayTransform(PRESETS[preset]().geometry)
        _, sinogram = make_batch(preset, operator, 1, dev)
        runs = {}
        for config in configs:
            flags, compiled = INFERENCE_CONFIGS[config]
            method = build_method("lpd", operator, flags, dev).eval()
            forward = method
            if compiled:
                forward = compile_step(method, method, dev)
            graphs = compiled and dev.type == "cuda"

            def run(forward=forward, graphs=graphs, sinogram=sinogram) -> torch.Tensor:
                if graphs:
                    torch.compiler.cudagraph_mark_step_begin()
                with torch.no_grad():
                    return forward(sinogram)

            for _ in range(warmup):
                run()
            runs[config] = run
        medians, _ = interleaved_median_ms(runs, dev, reps)
        eager = medians[configs[0]]
        for config in configs:
            ms = medians[config]
            rows.append(
                {
                    "method": "lpd",
                    "setup": preset,
                    "batch": 1,
                    "path": config,
                    "device": torch.cuda.get_device_name(dev) if dev.type == "cuda" else "cpu",
                    "ms per slice": f"{ms:.2f}",
                    f"time / {configs[0]}": f"{ms / eager:.2f}",
                }
            )
    return rows


def main(argv: list[str] | None = None) -> None:
    """Subprocess entry: one JSON line with the step time and peak memory of one
    configuration (a :func:`training_table` result row), e.g. ``python -m
    learnct.bench.training lpd fan_lowdose 5 fast+compiled+bf16 --device cuda``."""
    parser = argparse.ArgumentParser(description="one training configuration's step")
    parser.add_argument("method")
    parser.add_argument("preset")
    parser.add_argument("batch", type=int)
    parser.add_argument("config", choices=list(FLAG_CONFIGS))
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--reps", type=int, default=2)
    parser.add_argument("--no-graphs", action="store_true", help="compiled, no CUDA graphs")
    args = parser.parse_args(argv)
    result = measure_step(
        args.method,
        args.preset,
        args.batch,
        args.config,
        args.device,
        args.warmup,
        args.reps,
        cuda_graphs=not args.no_graphs,
    )
    dev = torch.device(args.device)
    name = torch.cuda.get_device_name(dev) if dev.type == "cuda" else "cpu"
    row = {"method": args.method, "setup": args.preset, "batch": args.batch}
    print(json.dumps({**row, "config": args.config, "device": name, "note": "", **result}))


if __name__ == "__main__":
    main()
