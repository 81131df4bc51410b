"""The ``data_pipeline`` section: how fast the data pipeline makes simulated batches.

A simulated batch = ``batch_size`` random ellipse phantoms rasterised, projected with the
preset's ``RayTransform`` and noised with its noise model, exactly as ``CTDataModule``
produces them for training (DataLoader + ``on_after_batch_transfer``), on the CPU.
``python -m learnct.bench.pipeline`` prints the numbers.
"""

from __future__ import annotations

import time
from typing import Any

import torch

from learnct.bench.tables import milliseconds
from learnct.checks import check_int
from learnct.data.datamodule import CTDataModule
from learnct.physics.operator import RayTransform
from learnct.physics.presets import PRESETS, PhysicsPreset

__all__ = ["benchmark_pipeline", "pipeline_rows"]


def _per_second(count: int, seconds: float) -> float:
    return count / seconds if seconds > 0 else float("inf")


def benchmark_pipeline(
    preset_name: str | PhysicsPreset = "fan_lowdose",
    batch_size: int = 8,
    n_batches: int = 20,
    num_workers: int = 0,
    supersample: int = 1,
    warmup: int = 2,
) -> dict[str, Any]:
    """Measure simulated batches per second on the CPU.

    Args:
        preset_name: a preset name from ``PRESETS`` or a ``PhysicsPreset``.
        batch_size, n_batches: the timed batches (after ``warmup`` untimed ones, which also
            build or load the operator).
        num_workers: DataLoader workers for the end-to-end number.
        supersample: ellipse rasterisation sub-pixels per side.

    Returns:
        ``batches_per_s`` and ``images_per_s`` (end to end: DataLoader -> simulate),
        ``ms_per_batch``, and the stages on their own: ``rasterize_images_per_s`` (phantom
        generation + rasterisation), ``project_ms_per_batch`` (RayTransform),
        ``noise_ms_per_batch`` (noise model); plus the settings (``preset``, ``image_size``,
        ``batch_size``, ``n_batches``, ``num_workers``, ``supersample``, ``torch_threads``).
    """
    if isinstance(preset_name, str):
        if preset_name not in PRESETS:
            raise ValueError(f"unknown preset {preset_name!r}: choose one of {sorted(PRESETS)}")
        preset = PRESETS[preset_name]()
    else:
        preset = preset_name
    check_int("batch_size", batch_size)
    check_int("n_batches", n_batches)
    operator = RayTransform(preset.geometry)
    dm = CTDataModule(
        preset,
        operator,
        source="ellipses",
        train_size=batch_size * (n_batches + warmup),
        batch_size=batch_size,
        num_workers=num_workers,
        persistent_workers=False,
        supersample=supersample,
    )
    dm.setup("fit")
    loader = dm.train_dataloader()

    it = iter(loader)
    for _ in range(warmup):
        dm.on_after_batch_transfer(next(it), 0)
    start = time.perf_counter()
    for _ in range(n_batches):
        batch = dm.on_after_batch_transfer(next(it), 0)
    total = time.perf_counter() - start
    del it

    # Stages on their own, in the main process.
    (dataset,) = dm.datasets["train"]
    n_images = batch_size * n_batches
    start = time.perf_counter()
    for i in range(n_images):
        dataset[i]
    raster = time.perf_counter() - start
    image = batch.image
    with torch.no_grad():
        start = time.perf_counter()
        for _ in range(n_batches):
            clean = operator(image)
        project = time.perf_counter() - start
        gen = torch.Generator().manual_seed(0)
        start = time.perf_counter()
        for _ in range(n_batches):
            preset.simulate(clean, gen)
        noise = time.perf_counter() - start
    return {
        "preset": preset.name,
        "image_size": preset.geometry.image_size,
        "batch_size": batch_size,
        "n_batches": n_batches,
        "num_workers": num_workers,
        "supersample": supersample,
        "torch_threads": torch.get_num_threads(),
        "batches_per_s": _per_second(n_batches, total),
        "images_per_s": _per_second(n_images, total),
        "ms_per_batch": 1e3 * total / n_batches,
        "rasterize_images_per_s": _per_second(n_images, raster),
        "project_ms_per_batch": 1e3 * project / n_batches,
        "noise_ms_per_batch": 1e3 * noise / n_batches,
    }


def pipeline_rows(batch: int, quick: bool) -> list[dict]:
    """Simulated batches per second at ``fan_lowdose`` (images made, projected, noised), with
    0 DataLoader workers (and 2 unless ``quick``)."""
    rows = []
    for workers in (0,) if quick else (0, 2):
        r = benchmark_pipeline(
            "fan_lowdose", batch_size=batch, n_batches=10 if quick else 30, num_workers=workers
        )
        rows.append(
            {
                "preset": r["preset"],
                "batch": batch,
                "workers": workers,
                "batches/s": f"{r['batches_per_s']:.1f}",
                "images/s": f"{r['images_per_s']:.0f}",
                "rasterise images/s": f"{r['rasterize_images_per_s']:.0f}",
                "project ms/batch": milliseconds(r["project_ms_per_batch"]),
                "noise ms/batch": milliseconds(r["noise_ms_per_batch"]),
            }
        )
    return rows


if __name__ == "__main__":
    for workers in (0, 2):
        result = benchmark_pipeline(num_workers=workers)
        print(
            ", ".join(
                f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in result.items()
            )
        )
