"""``benchmark_pipeline``: simulated batches per second of ``CTDataModule`` on a tiny preset."""

from __future__ import annotations

import pytest

from learnct.bench.pipeline import benchmark_pipeline
from learnct.physics import FanBeamGeometry, PhysicsPreset

GEOMETRY = FanBeamGeometry(image_size=32, n_angles=40, n_detectors=48, pixel_size=8.0)
PRESET = PhysicsPreset("small_fan", GEOMETRY, photons=1e4)


def test_benchmark_pipeline_reports_rates():
    result = benchmark_pipeline(PRESET, batch_size=4, n_batches=3, warmup=1)
    for key in ("batches_per_s", "images_per_s", "rasterize_images_per_s"):
        assert result[key] > 0
    assert result["image_size"] == 32
    assert result["images_per_s"] == pytest.approx(4 * result["batches_per_s"])
