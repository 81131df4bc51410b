"""``python -m learnct.bench.triton_tuning``'s rows on a tiny geometry (Triton's CPU
interpreter without a GPU: ``tests/conftest.py``)."""

from __future__ import annotations

import pytest

from learnct.bench.triton_tuning import benchmark_projector
from learnct.physics import FanBeamGeometry, RayTransform
from learnct.physics.backends.triton_backend import TritonBackend

REASON = TritonBackend.unavailable_reason()
DEVICE = TritonBackend.devices()[0]


@pytest.mark.skipif(REASON is not None, reason=str(REASON))
def test_benchmark_row_reports_times_and_agreement():
    geometry = FanBeamGeometry(image_size=16, n_angles=8, n_detectors=24)
    reference = RayTransform(geometry, backend="sparse")
    if DEVICE != "cpu":
        reference = RayTransform(geometry, backend="matrix_free")
    row = benchmark_projector(geometry, "triton", 2, DEVICE, 1, reference, block_rays=64)
    assert row["backend"] == "triton block_rays=64"
    assert row["fwd+adj ms/slice"] == pytest.approx(
        (row["forward ms"] + row["adjoint ms"]) / 2, abs=0.01
    )
    assert float(row["rel. diff forward"]) < 1e-5
    assert float(row["rel. diff adjoint"]) < 1e-5
    assert row["adj/fwd"] == pytest.approx(row["adjoint ms"] / row["forward ms"], rel=0.05)
    atomic = benchmark_projector(geometry, "triton", 2, DEVICE, 1, reference, atomic_adjoint=True)
    assert atomic["backend"] == "triton atomic_adjoint=True"
    assert float(atomic["rel. diff adjoint"]) < 1e-5
