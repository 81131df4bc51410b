"""The ``methods`` section: reconstruction time per slice and parameters of every method.

``benchmark_methods`` builds each method with its defaults on a preset's geometry and times
``reconstruct`` (eval mode, no gradients) on random sinograms: the median of ``reps`` runs
after ``warmup`` runs, CUDA synchronised. Methods that use ``||A||`` get 20 power iterations
of it (``build_untrained``). TV is timed at ``n = tv_timing_iterations`` and ``2n``
iterations and extrapolated to its configured ``N``: ``t(N) = t(n) + (N - n) (t(2n) - t(n)) / n``
(each iteration costs the same, one forward and one adjoint; the start image and set-up are
paid once, so scaling ``t(n)`` by ``N / n`` would count them ``N / n`` times); the row's
``note`` says so. A method that runs out of memory gets ``ms_per_slice = None`` and the error
in ``note`` (the fully learned method at ``fan_mayo``, the point Adler and Öktem make).
What a method needs to be built comes from its class (``needs_operator_norm``,
``takes_execution_flags``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch

from learnct.bench.tables import milliseconds
from learnct.bench.timing import failure_note, median_ms
from learnct.methods import METHODS, TV, ReconstructionMethod
from learnct.methods.checkpoints import constructor_arguments
from learnct.physics.operator import RayTransform
from learnct.physics.presets import PRESETS

__all__ = [
    "PUBLISHED_MS",
    "benchmark_methods",
    "build_untrained",
    "extrapolate_iterations_ms",
    "method_rows",
]


def build_untrained(
    name: str,
    operator: RayTransform,
    flags: Mapping[str, Any] | None = None,
    **options: Any,
) -> ReconstructionMethod:
    """``METHODS[name]`` with its defaults and no panels, the execution ``flags`` and
    ``options`` as keywords, and, where the class uses ``||A||`` (``needs_operator_norm``),
    20 power iterations of it: the real norm keeps untrained networks finite, and 20 are plenty
    for timing (``RayTransform`` caches the value, so it is computed once per geometry)."""
    cls = METHODS[name]
    unknown = sorted(set(flags or {}) - set(constructor_arguments(cls)))
    if unknown:
        raise ValueError(f"{name} takes no {', '.join(unknown)}: choose flags it takes")
    kwargs: dict[str, Any] = {"n_panels": 0, **(flags or {}), **options}
    if cls.needs_operator_norm:
        kwargs["operator_norm"] = operator.norm(iterations=20)
    return cls(operator, **kwargs)


def extrapolate_iterations_ms(ms_short: float, ms_long: float, short: int, target: int) -> float:
    """Time of ``target`` iterations from the times of ``short`` and ``2 * short``:
    ``ms_short + (target - short) * (ms_long - ms_short) / short`` (a per-iteration cost below
    0, from timing noise, counts as 0)."""
    per_iteration = max(ms_long - ms_short, 0.0) / short
    return ms_short + (target - short) * per_iteration


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
        tv_timing_iterations: ``n``: TV is timed at ``n`` and ``2n`` iterations and
            extrapolated to its configured count.
        flags: execution flags for the learned methods (e.g. ``{"autocast": "bf16"}``); with
            flags, the methods without them (``takes_execution_flags`` False: FBP, TV) are
            left out.
    """
    names = list(METHODS) if methods is None else list(methods)
    for name in names:
        if name not in METHODS:
            raise ValueError(f"unknown method {name!r}: choose from {sorted(METHODS)}")
    if flags:
        names = [name for name in names if METHODS[name].takes_execution_flags]
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
                method = build_untrained(name, operator, flags).to(dev)
                row["parameters"] = sum(p.numel() for p in method.parameters())
                if isinstance(method, TV):
                    configured = method.hparams.iterations
                    ms, row["note"] = _tv_ms(
                        operator, sinogram, dev, warmup, reps, tv_timing_iterations, configured
                    )
                else:
                    ms = median_ms(lambda m=method, s=sinogram: m.reconstruct(s), dev, warmup, reps)
                row["ms_per_slice"] = ms / batch
            except (torch.OutOfMemoryError, MemoryError, RuntimeError, ValueError) as err:
                row["note"] = failure_note(err)
            finally:
                if dev.type == "cuda":
                    torch.cuda.empty_cache()
            rows.append(row)
    return rows


def _tv_ms(
    operator: RayTransform,
    sinogram: torch.Tensor,
    device: torch.device,
    warmup: int,
    reps: int,
    n: int,
    configured: int,
) -> tuple[float, str]:
    """TV's ms per call at its ``configured`` iterations, from timed runs of ``n`` and ``2n``."""
    times = []
    for iterations in (n, 2 * n):
        method = build_untrained("tv", operator, iterations=iterations).to(device)
        times.append(median_ms(lambda m=method: m.reconstruct(sinogram), device, warmup, reps))
    ms = extrapolate_iterations_ms(times[0], times[1], n, configured)
    return ms, f"{n} and {2 * n} iterations timed, extrapolated to {configured}"


#: Adler and Öktem's talk, human data (512^2, 1000 angles), ms per slice on their GPU.
PUBLISHED_MS = {"fbp": 423, "tv": 64371, "fbpunet": 463, "lpd": 620}


def method_rows(
    presets: list[str],
    device: str,
    quick: bool,
    batches: tuple[int, ...] = (1,),
    flag_sets: tuple[str | None, ...] = (None,),
) -> list[dict]:
    """Reconstruction ms per slice and parameters of every method, per batch size, in float32
    and, for the learned methods, with each autocast setting in ``flag_sets`` (``"bf16"``)."""
    results = []
    for autocast in flag_sets:
        for batch in batches:
            for r in benchmark_methods(
                presets,
                batch=batch,
                device=device,
                reps=2 if quick else 3,
                flags={"autocast": autocast} if autocast else None,
            ):
                results.append({**r, "flags": autocast or "-"})
    rows = []
    for r in results:
        ms = r["ms_per_slice"]
        published = PUBLISHED_MS.get(r["method"]) if r["geometry"] == "fan_mayo" else None
        rows.append(
            {
                "method": r["method"],
                "setup": r["geometry"],
                "batch": r["batch"],
                "flags": r["flags"],
                "device": r["device"],
                "ms per slice": "-" if ms is None else milliseconds(ms),
                "talk (GPU, 512^2)": "-" if published is None else published,
                "parameters": r["parameters"],
                "note": r["note"],
            }
        )
    return rows
