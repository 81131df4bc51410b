"""The ``fbp`` section: filtered backprojection time per batch and per slice."""

from __future__ import annotations

import torch

from learnct.bench.tables import geometry_label, milliseconds
from learnct.bench.timing import median_ms
from learnct.physics import Geometry, fbp

__all__ = ["fbp_rows"]


def fbp_rows(geometries: list[Geometry], batch: int, device: str, reps: int) -> list[dict]:
    """One row per geometry: median ms of ``fbp`` on ``batch`` random sinograms, and per slice."""
    rows = []
    for geometry in geometries:
        sino = torch.rand(batch, 1, *geometry.sinogram_shape).to(device)
        ms = median_ms(lambda s=sino, g=geometry: fbp(s, g), device, reps=reps)
        rows.append(
            {
                "geometry": geometry_label(geometry),
                "batch": batch,
                "fbp ms per batch": milliseconds(ms),
                "fbp ms per slice": milliseconds(ms / batch),
            }
        )
    return rows
