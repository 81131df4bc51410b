"""Projector backends. Importing this package registers every backend in ``BACKENDS``."""

from learnct.physics.backends import (
    astra_backend,
    matrix_free,
    sparse,
    torch_radon_backend,
    triton_backend,
)
from learnct.physics.backends.base import BACKENDS, ProjectorBackend, register_backend

__all__ = [
    "BACKENDS",
    "ProjectorBackend",
    "astra_backend",
    "matrix_free",
    "register_backend",
    "sparse",
    "torch_radon_backend",
    "triton_backend",
]
