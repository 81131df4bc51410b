"""``RayTransform``: the differentiable ray transform ``A`` and its exact adjoint ``A^T``."""

from __future__ import annotations

import os

import torch
from torch import nn

from learnct.checks import check_int
from learnct.physics.backends import BACKENDS, ProjectorBackend
from learnct.physics.backends.sparse import sparse_build_bytes
from learnct.physics.geometry import Geometry
from learnct.physics.ray_ops import (
    LOW_PRECISION,
    full_precision,
    ray_adjoint,
    ray_forward,
    register,
)

__all__ = ["LOW_PRECISION", "RayTransform", "available_backends"]


def _default_matrix_budget() -> int:
    """A quarter of the machine's memory, at most 8 GiB (2 GiB where it cannot be read)."""
    try:
        total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, ValueError, OSError):
        return 2 << 30
    return int(min(8 << 30, total // 4))


#: ``auto`` uses the stored matrix when building it (the matrix, its transpose and the build's
#: temporaries: ``sparse_build_bytes``) fits in this many bytes.
DEFAULT_MATRIX_BUDGET = _default_matrix_budget()

#: Device types on which ``auto`` prefers a backend (the first usable one) to its default
#: choice (``sparse`` or ``matrix_free``): on CUDA the Triton kernels, which store nothing.
AUTO_DEVICE_PREFERENCE: dict[str, tuple[str, ...]] = {"cuda": ("triton",)}


def available_backends() -> dict[str, str | None]:
    """Every registered backend name -> None if usable here, else the reason it is not."""
    return {name: cls.unavailable_reason() for name, cls in BACKENDS.items()}


class RayTransform(nn.Module):
    """The ray transform of ``geometry``: images ``(B, 1, N, N)`` -> sinograms
    ``(B, 1, n_angles, n_detectors)`` of line integrals (image units x mm).

    ``forward`` and ``adjoint`` are differentiable, and the gradient of each is the other
    (the custom operators of :mod:`learnct.physics.ray_ops`, opaque to ``torch.compile``;
    no autograd through sparse products); exact for every backend whose ``exact_adjoint`` is
    true (``torch_radon``'s backprojection is an approximate adjoint). Runs on the device
    of its input. Always computes in float32 (or float64 for float64 input): float16 and
    bfloat16 inputs are cast to float32 (their gradient flows back cast to theirs), and
    ``torch.autocast`` is switched off inside, so under mixed precision (``model.autocast``,
    Lightning's ``bf16-mixed``) the projector stays exact and returns float32.

    Args:
        geometry: a ``FanBeamGeometry`` or ``ParallelBeamGeometry``.
        backend: ``"auto"`` or a name from ``available_backends()``. ``auto`` runs CUDA
            inputs on ``triton`` when it is usable, and everything else (or CUDA without
            triton) on ``sparse`` when its matrix fits ``matrix_budget_bytes``, else on
            ``matrix_free``; ``backend_name_for(device_type)`` says which.
        matrix_budget_bytes: memory budget for building the ``sparse`` backend's matrices under
            ``auto`` (``sparse_build_bytes``: the peak of the build, about the stored matrices
            plus one chunk; default: a quarter of the machine's memory, at most 8 GiB).
        check_finite: raise on NaN/inf input (costs a sum over the input and a host read;
            skipped inside ``torch.compile``d code, which must not read the device, and under
            ``torch.func`` transforms, which cannot branch on a value).
        **backend_options: passed to the backend's constructor.
    """

    def __init__(
        self,
        geometry: Geometry,
        backend: str = "auto",
        matrix_budget_bytes: int = DEFAULT_MATRIX_BUDGET,
        check_finite: bool = True,
        **backend_options,
    ) -> None:
        super().__init__()
        if not isinstance(geometry, Geometry):
            raise ValueError(
                "geometry must be a FanBeamGeometry or ParallelBeamGeometry, "
                f"got {type(geometry).__name__}"
            )
        self._auto = backend == "auto"
        if self._auto:
            fits = sparse_build_bytes(geometry) <= matrix_budget_bytes
            backend = "sparse" if fits else "matrix_free"
        if backend not in BACKENDS:
            raise ValueError(
                f"unknown backend {backend!r}: choose 'auto' or one of {sorted(BACKENDS)}"
            )
        cls = BACKENDS[backend]
        reason = cls.unavailable_reason() or cls.supports(geometry)
        if reason is not None:
            raise ValueError(f"backend {backend!r} cannot be used: {reason}")
        self.geometry = geometry
        self.backend_name = backend
        self.backend = cls(geometry, **backend_options)
        self.check_finite = check_finite
        self._norms: dict[tuple[int, int], float] = {}  # (iterations, seed) -> ||A||
        self._by_device: dict[str, tuple[str, ProjectorBackend]] = {}
        #: device type -> the id of its backend among the custom ops' (``ray_ops.register``)
        self._op_ids: dict[str, int] = {}

    def __getstate__(self) -> dict:
        """Copies and pickles drop the per-device backends and their custom-op ids (the
        registry holds this instance's backends): they are made again on first use."""
        state = super().__getstate__() if hasattr(super(), "__getstate__") else self.__dict__
        return {**state, "_by_device": {}, "_op_ids": {}}

    def extra_repr(self) -> str:
        auto = "auto, " if self._auto else ""
        return f"backend={auto}{self.backend_name!r}, geometry={self.geometry}"

    def backend_name_for(self, device_type: str) -> str:
        """The backend that runs inputs on ``device_type`` (``"cpu"``, ``"cuda"``, ...)."""
        return self._backend_for(device_type)[0]

    def _backend_for(self, device_type: str) -> tuple[str, ProjectorBackend]:
        if device_type not in self._by_device:
            choice = (self.backend_name, self.backend)
            for name in AUTO_DEVICE_PREFERENCE.get(device_type, ()) if self._auto else ():
                cls = BACKENDS[name]
                usable = cls.unavailable_reason() is None and cls.supports(self.geometry) is None
                if usable and device_type in cls.devices():
                    choice = (name, cls(self.geometry))
                    break
            self._by_device[device_type] = choice
            self._op_ids[device_type] = register(choice[1])
        return self._by_device[device_type]

    @property
    def domain_shape(self) -> tuple[int, int]:
        return self.geometry.image_shape

    @property
    def range_shape(self) -> tuple[int, int]:
        return self.geometry.sinogram_shape

    def _check(self, t: torch.Tensor, shape: tuple[int, int], what: str) -> None:
        if not isinstance(t, torch.Tensor):
            raise ValueError(f"{what} must be a torch.Tensor, got {type(t).__name__}")
        expected = f"(batch, 1, {shape[0]}, {shape[1]})"
        if t.dim() != 4 or t.shape[1] != 1 or tuple(t.shape[2:]) != shape:
            hint = " (add batch and channel dims: t[None, None])" if t.dim() == 2 else ""
            raise ValueError(f"{what} must have shape {expected}, got {tuple(t.shape)}{hint}")
        if not t.is_floating_point():
            raise ValueError(f"{what} must be float32 or float64, got {t.dtype}")
        if t.dtype not in (torch.float32, torch.float64):
            raise ValueError(f"{what} must be float32 or float64, got {t.dtype}")
        name, backend = self._backend_for(t.device.type)
        if t.device.type not in backend.devices():
            raise ValueError(
                f"backend {name!r} runs on {backend.devices()}, got a {what} on {t.device}"
            )
        # a NaN or inf makes the sum non-finite: one cheap reduction, the elementwise test only
        # to rule out a finite sum that overflowed
        if (
            self.check_finite
            and not torch.compiler.is_compiling()
            and not torch._C._functorch.is_functorch_wrapped_tensor(t)  # vmap: no bool()
            and not torch.isfinite(t.sum())
            and not torch.isfinite(t).all()
        ):
            raise ValueError(f"{what} contains NaN or inf values")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``A x``: line integrals of the images ``x`` (B, 1, N, N)."""
        x = full_precision(x) if isinstance(x, torch.Tensor) else x
        self._check(x, self.domain_shape, "image")
        return ray_forward(x, self._op_ids[x.device.type])

    def adjoint(self, y: torch.Tensor) -> torch.Tensor:
        """``A^T y``: the exact adjoint (backprojection) of sinograms ``y``."""
        y = full_precision(y) if isinstance(y, torch.Tensor) else y
        self._check(y, self.range_shape, "sinogram")
        return ray_adjoint(y, self._op_ids[y.device.type])

    def norm(self, iterations: int = 100, seed: int = 0) -> float:
        """Operator norm ``||A||_2`` by ``iterations`` steps of power iteration on ``A^T A``
        from a random start (``seed``); computed once per ``(iterations, seed)``, cached.

        Runs on the CPU, except where the backend is CUDA-only or ``auto`` runs CUDA inputs
        on another backend (so a GPU run never builds the CPU choice's matrix just for this).
        """
        check_int("iterations", iterations)
        key = (iterations, seed)
        if key not in self._norms:
            gen = torch.Generator().manual_seed(seed)
            x = torch.rand(1, 1, *self.domain_shape, generator=gen, dtype=torch.float64)
            devices = self.backend.devices()
            device = "cpu" if "cpu" in devices else devices[0]
            if torch.cuda.is_available() and self.backend_name_for("cuda") != self.backend_name:
                device = "cuda"
            backend = self._backend_for(device)[1]
            x = x.float().to(device)
            value = 0.0
            with torch.no_grad():
                for _ in range(iterations):
                    x = x / torch.linalg.vector_norm(x)
                    y = backend.adjoint(backend.forward(x))
                    value = float(torch.linalg.vector_norm(y))
                    if value == 0.0:  # A x = 0 for a random x: the zero operator
                        break
                    x = y
            self._norms[key] = value**0.5
        return self._norms[key]
