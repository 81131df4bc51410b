"""Property-based: every geometry that validates gives a finite operator with an exact adjoint;
every one that does not raises the documented ValueError (never a crash deep in torch)."""

from __future__ import annotations

import math

import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from learnct.physics import FanBeamGeometry, ParallelBeamGeometry, RayTransform

SETTINGS = settings(
    max_examples=40, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow]
)


def _check_operator(geometry) -> None:
    op = RayTransform(geometry, backend="sparse")
    gen = torch.Generator().manual_seed(0)
    x = torch.rand(2, 1, *geometry.image_shape, generator=gen, dtype=torch.float64)
    y = torch.rand(2, 1, *geometry.sinogram_shape, generator=gen, dtype=torch.float64)
    ax = op(x)
    assert torch.isfinite(ax).all() and ax.min() >= 0  # non-negative image, non-negative data
    err = ((ax * y).sum() - (x * op.adjoint(y)).sum()).abs()
    assert err / (op.norm() * x.norm() * y.norm()) < 1e-5


@SETTINGS
@given(
    image_size=st.integers(-2, 14),
    n_angles=st.integers(-1, 12),
    n_detectors=st.integers(-1, 40),
    pixel_size=st.floats(-1.0, 5.0) | st.just(float("nan")) | st.just(1e-109),
    source_radius=st.floats(1.0, 200.0),
    detector_radius=st.floats(1.0, 200.0),
    angle_offset=st.floats(-4.0, 4.0),
)
def test_fan_geometries_validate_or_raise(
    image_size, n_angles, n_detectors, pixel_size, source_radius, detector_radius, angle_offset
):
    try:
        geometry = FanBeamGeometry(
            image_size=image_size,
            n_angles=n_angles,
            n_detectors=n_detectors,
            pixel_size=pixel_size,
            source_radius=source_radius,
            detector_radius=detector_radius,
            angle_offset=angle_offset,
        )
    except ValueError as err:
        assert str(err)  # documented, named error
        bad_size = image_size < 2 or n_angles < 1 or n_detectors < 1
        bad_pixel = not (1e-6 <= pixel_size <= 1e6)
        inside = (image_size >= 1 and pixel_size > 0) and min(
            source_radius, detector_radius
        ) <= image_size * pixel_size / math.sqrt(2)
        assert bad_size or bad_pixel or inside or "covers a circle" in str(err)
        return
    _check_operator(geometry)


@SETTINGS
@given(
    image_size=st.integers(2, 14),
    n_angles=st.integers(1, 12),
    n_detectors=st.integers(1, 40),
    spacing=st.floats(0.05, 3.0),
    angle_range=st.floats(0.1, 2 * math.pi),
)
def test_parallel_geometries_validate_or_raise(
    image_size, n_angles, n_detectors, spacing, angle_range
):
    try:
        geometry = ParallelBeamGeometry(
            image_size=image_size,
            n_angles=n_angles,
            n_detectors=n_detectors,
            detector_spacing=spacing,
            angle_range=angle_range,
        )
    except ValueError as err:
        assert "does not cover the image's inscribed circle" in str(err)
        assert n_detectors * spacing < image_size
        return
    assert n_detectors * spacing >= image_size
    _check_operator(geometry)
