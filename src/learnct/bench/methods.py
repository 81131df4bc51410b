"""Reconstruction time per slice and parameter count of every method (for ``make bench``).

``benchmark_methods`` builds each method with its defaults on a preset's geometry and times
``reconstruct`` (eval mode, no gradients) on random sinograms: the median of ``reps`` runs
after ``warmup`` runs, CUDA synchronised. Timings never depend on the data, so the operator
norm is set to 1 instead of computed (a power iteration costs minutes at ``fan_mayo`` on a
CPU). TV's time is measured with ``tv_timing_iterations`` iterations and scaled linearly to
its configured iterations (each iteration costs the same: one forward, one adjoint); the row's
``note`` says so. A method that runs out of memory gets ``ms_per_slice = None`` and the error
in ``note`` (the fully learned method at ``fan_mayo``, the point Adler and Öktem make).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch

from learnct.methods import METHODS, TV, ReconstructionMethod
from learnct.physics.operator import RayTransform
from learnct.physics.presets import PRESETS
from learnct.bench.timing import median_ms

__all__ = ["benchmark_methods"]


#: Methods without networks: execution flags (autocast, compile) do not apply to them.
CLASSICAL = ("fbp", "tv")


def _build(
    name: str,
    operator: RayTransform,
    tv_iterations: int | None,
    flags: Mapping[str, Any] | None = None,
) -> ReconstructionMethod:
    cls = METHODS[name]
    kwargs: dict[str, Any] = {"n_panels": 0, **(flags or {})}
    if name != "fbp" and name != "fbpunet":
        # the real ||A|| keeps untrained networks finite; 20 power iterations are plenty for
        # timing (RayTransform caches the value, so it is computed once per geometry)
        kwargs["operator_norm"] = operator.norm(iterations=20)
    if cls is TV and tv_iterations is not None:
        kwargs["iterations"] = tv_iterations
    return cls(operator, **kwargs)


def benchmark_methods(
    geometry_names: Sequence[str] = ("fan_lowdose",),
    batch: int = 1,
    device: str = "cpu",
    methods: Sequence[str] | None = None,
    warmup: int = 1,
    reps: int = 3,
    tv_timing_iterations: int = 10,
    flags: Mapping[str, Any] | None = None,
) -> list[dict[str, Any]]:
    """Rows ``{method, geometry, device, batch, ms_per_slice, parameters, note}``.

    Args:
        geometry_names: preset names from ``learnct.physics.PRESETS``.
        batch: slices per ``reconstruct`` call (time is divided by it).
        device: ``"cpu"`` or ``"cuda"``.
        methods: names from ``learnct.methods.METHODS`` (default: all six).
        warmup, reps: untimed and timed runs (the median is reported).
        tv_timing_iterations: TV iterations actually run (scaled to the configured count).
        flags: execution flags for the learned methods (e.g. ``{"autocast": "bf16"}``); with
            flags, FBP and TV (which have none) are left out.
    """
    names = list(METHODS) if methods is None else list(methods)
    if flags:
        names = [name for name in names if name not in CLASSICAL]
    for name in names:
        if name not in METHODS:
            raise ValueError(f"unknown method {name!r}: choose from {sorted(METHODS)}")
    for geo in geometry_names:
        if geo not in PRESETS:
            raise ValueError(f"unknown geometry {geo!r}: choose from {sorted(PRESETS)}")
    dev = torch.device(device)
    rows = []
    for geo in geometry_names:
        preset = PRESETS[geo]()
        operator = RayTransform(preset.geometry)
        sinogram = torch.rand(batch, 1, *preset.geometry.sinogram_shape, device=dev) * 10
        for name in names:
            row: dict[str, Any] = {
                "method": name,
                "geometry": geo,
                "device": str(dev),
                "batch": batch,
                "ms_per_slice": None,
                "parameters": None,
                "note": "",
            }
            try:
                tv_iterations = tv_timing_iterations if name == "tv" else None
                method = _build(name, operator, tv_iterations, flags)
                row["parameters"] = sum(p.numel() for p in method.parameters())
                method = method.to(dev)
                ms = median_ms(lambda m=method, s=sinogram: m.reconstruct(s), dev, warmup, reps)
                if name == "tv":
                    configured = TV(operator, n_panels=0).hparams.iterations
                    ms *= configured / tv_timing_iterations
                    row["note"] = f"{tv_timing_iterations} iterations timed, scaled to {configured}"
                row["ms_per_slice"] = ms / batch
            except (torch.OutOfMemoryError, MemoryError, RuntimeError, ValueError) as err:
                row["note"] = f"failed: {type(err).__name__}: {str(err).splitlines()[0][:120]}"
            finally:
                if dev.type == "cuda":
                    torch.cuda.empty_cache()
            rows.append(row)
    return rows
