"""Parametrisation shared by the physics tests: every registered backend x device x geometry."""

from __future__ import annotations

import pytest
import torch

from learnct.physics import FanBeamGeometry, ParallelBeamGeometry, available_backends
from learnct.physics.backends import BACKENDS

#: Small geometries that every test can afford; the fan one has the quarter-turn symmetry 4,
#: the parallel one 2, the odd one none.
GEOMETRIES = {
    "fan": FanBeamGeometry(image_size=32, n_angles=40, n_detectors=48),
    "parallel": ParallelBeamGeometry(image_size=32, n_angles=30, n_detectors=47),
    "fan-odd": FanBeamGeometry(image_size=31, n_angles=37, n_detectors=45, angle_offset=0.1),
}


def backend_params() -> list:
    """(backend, device) pairs; unavailable ones are skipped with the reason."""
    params = []
    reasons = available_backends()
    for name, cls in sorted(BACKENDS.items()):
        for device in cls.devices():
            marks = []
            if reasons[name] is not None:
                marks.append(pytest.mark.skip(reason=reasons[name]))
            if device == "cuda":
                marks.append(pytest.mark.gpu)
                if not torch.cuda.is_available():
                    marks.append(pytest.mark.skip(reason="needs a CUDA GPU"))
            params.append(pytest.param(name, device, marks=marks, id=f"{name}-{device}"))
    return params


def geometry_params() -> list:
    return [pytest.param(g, id=k) for k, g in GEOMETRIES.items()]
