"""Where one training step's time goes: device time per kernel family (issue #21).

``python -m learnct.bench.profile_step --method lpd --preset fan_lowdose --batch 5 --config
fast+compiled+bf16`` runs :func:`~learnct.bench.training.step_fn` (warm-up first, which
compiles), then profiles ``--steps`` steps with ``torch.profiler`` and prints, per step: the
wall time, the summed device time of the kernels (CUDA; on the CPU the operators' self time),
and that time by family (the projector's kernels, convolutions, the optimiser, the rest), with
the top kernels by name. Wall well above the kernels' sum: the GPU waits on the host; near it:
the kernels themselves are the budget.
"""

from __future__ import annotations

import argparse
import time
from collections import defaultdict

import torch
from torch.profiler import ProfilerActivity, profile

from learnct.bench.tables import markdown_table
from learnct.bench.timing import synchronize
from learnct.bench.training import FLAG_CONFIGS, build_method, make_batch, step_fn
from learnct.methods import METHODS
from learnct.physics import PRESETS, RayTransform

__all__ = ["FAMILIES", "TRAINABLE", "family", "main", "profile_step"]

#: The methods with a training step to profile (names of ``learnct.methods.METHODS``).
TRAINABLE = tuple(name for name, cls in METHODS.items() if cls.trainable)

#: Kernel family -> substrings of kernel names (lower case), first match wins: the projector's
#: triton kernels, inductor's fused elementwise/reduction kernels, cuDNN/CUTLASS convolutions.
FAMILIES = {
    "projector": ("joseph", "learnct::ray"),
    "optimizer": ("adam", "multi_tensor", "foreach", "clip"),
    "inductor (fused pointwise)": ("triton_",),
    "convolution": ("conv", "cudnn", "xmma", "gemm", "cutlass", "winograd", "sm90"),
}


def family(name: str) -> str:
    """The family of a kernel (or operator) named ``name``: a key of ``FAMILIES``, or
    ``other``."""
    low = name.lower()
    for fam, keys in FAMILIES.items():
        if any(k in low for k in keys):
            return fam
    return "other"


def profile_step(
    preset: str,
    batch: int,
    config: str,
    device: str,
    steps: int = 10,
    warmup: int = 3,
    method: str = "lpd",
) -> tuple[list[dict], list[dict]]:
    """``(summary rows, top kernels)`` of ``steps`` profiled training steps of ``method`` (a
    name of :data:`TRAINABLE`; module docstring)."""
    if method not in TRAINABLE:
        raise ValueError(f"method {method!r} has no training step: choose one of {TRAINABLE}")
    dev = torch.device(device)
    operator = RayTransform(PRESETS[preset]().geometry)
    images, sinogram = make_batch(preset, operator, batch, dev)
    step = step_fn(build_method(method, operator, FLAG_CONFIGS[config], dev), images, sinogram)
    for _ in range(warmup):
        step()
    synchronize(dev)
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if dev.type == "cuda" else [])
    with profile(activities=activities) as prof:
        start = time.perf_counter()
        for _ in range(steps):
            step()
        synchronize(dev)
        wall_ms = (time.perf_counter() - start) * 1e3 / steps
    by_family: dict[str, float] = defaultdict(float)
    kernels = []
    for event in prof.key_averages():
        us = event.self_device_time_total if dev.type == "cuda" else event.self_cpu_time_total
        if us <= 0 or (dev.type == "cuda" and event.device_type != torch.autograd.DeviceType.CUDA):
            continue
        by_family[family(event.key)] += us / 1e3 / steps
        kernels.append({"kernel": event.key[:90], "ms per step": us / 1e3 / steps})
    total = sum(by_family.values())
    parts = [("wall", wall_ms), ("kernels", total)]
    parts += sorted(by_family.items(), key=lambda kv: -kv[1])
    run = {"method": method, "setup": preset, "batch": batch, "config": config}
    summary = [{**run, "part": part, "ms per step": ms} for part, ms in parts]
    kernels.sort(key=lambda row: -row["ms per step"])
    for rows in (summary, kernels):
        for row in rows:
            row["ms per step"] = f"{row['ms per step']:.3f}"
    return summary, kernels[:12]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--method", default="lpd", choices=TRAINABLE)
    parser.add_argument("--preset", default="fan_lowdose", choices=sorted(PRESETS))
    parser.add_argument("--batch", type=int, default=5)
    parser.add_argument("--config", default="fast+compiled+bf16", choices=list(FLAG_CONFIGS))
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--steps", type=int, default=10)
    args = parser.parse_args(argv)
    summary, kernels = profile_step(
        args.preset, args.batch, args.config, args.device, args.steps, method=args.method
    )
    print(markdown_table(summary))
    print(markdown_table(kernels))


if __name__ == "__main__":
    main()
