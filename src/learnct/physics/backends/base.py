"""The interface every projector backend implements, and the registry that names them."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import ClassVar

import torch

from learnct.physics.geometry import Geometry

__all__ = ["BACKENDS", "ProjectorBackend", "register_backend"]

BACKENDS: dict[str, type[ProjectorBackend]] = {}


def register_backend(cls: type[ProjectorBackend]) -> type[ProjectorBackend]:
    """Class decorator: make a backend selectable as ``RayTransform(..., backend=cls.name)``."""
    BACKENDS[cls.name] = cls
    return cls


class ProjectorBackend(ABC):
    """Computes ``A x`` and ``A^T y`` for one geometry, on whatever device the input is on.

    Subclasses work on plain tensors (no autograd bookkeeping: ``RayTransform`` wraps them in
    a custom autograd function whose backward of one direction is the other direction).
    Inputs are validated by ``RayTransform``: ``x`` is ``(B, 1, N, N)``, ``y`` is
    ``(B, 1, n_angles, n_detectors)``, both floating point on the same device.
    """

    name: ClassVar[str]
    #: True when the adjoint is the exact transpose of the forward discretisation.
    exact_adjoint: ClassVar[bool] = True
    #: True when the constructor takes ``threads`` (images projected at once).
    takes_threads: ClassVar[bool] = False

    def __init__(self, geometry: Geometry) -> None:
        self.geometry = geometry

    @classmethod
    def unavailable_reason(cls) -> str | None:
        """None when the backend can run here, else why not (e.g. a package is missing)."""
        return None

    @classmethod
    def supports(cls, geometry: Geometry) -> str | None:
        """None when the backend handles ``geometry``, else why not."""
        return None

    @classmethod
    def devices(cls) -> tuple[str, ...]:
        """Device types the backend runs on."""
        return ("cpu", "cuda")

    @classmethod
    def stored_bytes(cls, geometry: Geometry) -> int:
        """Bytes (an upper bound) the backend precomputes and keeps for ``geometry``
        (0: nothing)."""
        return 0

    @classmethod
    def compile_native(cls) -> None:
        """Compile (or load from the machine's cache) the backend's native code, once per
        process, so that timings of ``prepare`` leave the compiler out; nothing by default."""
        return None

    def prepare(self) -> None:
        """Compute what the backend keeps for its geometry (``stored_bytes``), so that the
        first projection does not pay for it; nothing by default."""
        return None

    def memory_note(self) -> str:
        """What the backend keeps in memory for its geometry, in MiB, for benchmark tables
        (``"-"``: nothing worth stating)."""
        return "-"

    @abstractmethod
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, 1, N, N) -> (B, 1, n_angles, n_detectors)``."""

    @abstractmethod
    def adjoint(self, y: torch.Tensor) -> torch.Tensor:
        """``(B, 1, n_angles, n_detectors) -> (B, 1, N, N)``."""
