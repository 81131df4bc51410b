"""The FBP backprojection (float32 plan over A/m angles + quarter turns) against a float64
per-angle reference written out here from the formula in ``learnct.physics.fbp``."""

from __future__ import annotations

import math
import sys

import pytest
import torch

from learnct.physics import FanBeamGeometry, ParallelBeamGeometry

fbp_module = sys.modules["learnct.physics.fbp"]


def reference_backprojection(filtered: torch.Tensor, geometry) -> torch.Tensor:
    """Every angle, float64, linear interpolation by gather (zero outside the detector)."""
    n, n_det = geometry.image_size, geometry.n_detectors
    coords = (torch.arange(n, dtype=torch.float64) - (n - 1) / 2) * geometry.pixel_size
    x = coords[None, :].expand(n, n).reshape(-1)
    y = (-coords)[:, None].expand(n, n).reshape(-1)
    k = torch.arange(geometry.n_angles, dtype=torch.float64)
    theta = geometry.angle_offset + k * geometry.angle_step
    c, s = torch.cos(theta)[:, None], torch.sin(theta)[:, None]
    along = x * c + y * s
    if isinstance(geometry, FanBeamGeometry):
        depth = geometry.source_radius + (-x * s + y * c)
        t = geometry.source_to_detector * along / depth
        weight = 0.5 * geometry.angle_step * (geometry.source_radius / depth) ** 2
    else:
        t = along
        value = geometry.angle_step * min(1.0, math.pi / geometry.angle_range)
        weight = torch.full_like(t, value)
    index = t / geometry.detector_spacing + (n_det - 1) / 2
    low = index.floor().long()
    frac = index - low
    rows = filtered.double()[:, 0]
    out = torch.zeros(rows.shape[0], n * n, dtype=torch.float64)
    for tap, tap_weight in ((low, 1 - frac), (low + 1, frac)):
        inside = (tap >= 0) & (tap < n_det)
        values = torch.gather(rows, 2, tap.clamp(0, n_det - 1).expand(rows.shape[0], -1, -1))
        out += (values * (tap_weight * inside * weight)).sum(1)
    return out.reshape(-1, 1, n, n)


@pytest.mark.parametrize(
    ("geometry", "symmetry"),
    [
        (FanBeamGeometry(48, 96, 72), (4, 1)),
        (FanBeamGeometry(48, 90, 72), (2, 2)),
        (FanBeamGeometry(48, 91, 72), (1, 0)),
        (ParallelBeamGeometry(48, 60, 69), (2, 1)),
    ],
    ids=["fan-m4", "fan-m2", "fan-none", "parallel-m2"],
)
def test_backprojection_matches_the_float64_per_angle_formula(geometry, symmetry):
    assert geometry.rotational_symmetry() == symmetry
    filtered = torch.rand(
        3, 1, *geometry.sinogram_shape, generator=torch.Generator().manual_seed(0)
    )
    ours = fbp_module._backproject(filtered, geometry)
    ref = reference_backprojection(filtered, geometry)
    assert ours.dtype == torch.float32 and ours.shape == ref.shape
    # float32 plan and accumulation: relative error at float32 rounding level
    assert ((ours.double() - ref).norm() / ref.norm()).item() < 2e-6
    ours64 = fbp_module._backproject(filtered.double(), geometry)
    assert ((ours64 - ref).norm() / ref.norm()).item() < 1e-12


def test_plan_covers_only_the_base_angles():
    geometry = FanBeamGeometry(32, 80, 48)  # m = 4: 20 base angles
    chunks = list(fbp_module._plan_chunks(geometry, torch.device("cpu"), torch.float32))
    assert chunks[-1][1] == 20
    assert sum(weight.shape[0] for *_, weight in chunks) == 20
