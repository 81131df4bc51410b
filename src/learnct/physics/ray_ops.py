"""The ray transform and its adjoint as opaque custom operators (``torch.library.custom_op``).

``learnct::ray_forward(x, backend_id)`` is ``A x`` and ``learnct::ray_adjoint(y, backend_id)``
is ``A^T y``. The backend (geometry plus its stored matrices or kernels) is not a tensor, so
each :class:`~learnct.physics.backends.ProjectorBackend` is entered once in a registry of live
instances under an integer id (:func:`register`), and the ops take that id as an ``int``
argument. To the compiler they are opaque: the fake implementations give only the output's
shape, dtype and device (from the registered geometry), so ``torch.compile`` traces an
unrolled network through them without a graph break, and the registered autograd makes the
gradient of each op the other (``d(A x)/dx`` applied to ``v`` is ``A^T v``, and back).
Under ``torch.func.vmap`` (several models stepped as one, :mod:`learnct.methods.stacked`) the
vmapped dimension is folded into the batch dimension: ``(K, B, 1, ...)`` is projected as
``(K B, 1, ...)`` and unfolded, exact for an operator applied to each image alone.

Both compute with autocast off: the projector stays float32 (or float64) under
``torch.autocast`` (the callers, :class:`~learnct.physics.RayTransform`, cast float16 and
bfloat16 inputs up before calling).
"""

from __future__ import annotations

import itertools
import weakref

import torch

from learnct.physics.backends.base import ProjectorBackend

__all__ = ["LOW_PRECISION", "full_precision", "ray_adjoint", "ray_forward", "register"]

#: Floating dtypes the projector upcasts to float32 (the outputs of autocast regions).
LOW_PRECISION = (torch.float16, torch.bfloat16)

_BACKENDS: weakref.WeakValueDictionary[int, ProjectorBackend] = weakref.WeakValueDictionary()
_IDS: weakref.WeakKeyDictionary[ProjectorBackend, int] = weakref.WeakKeyDictionary()
_NEXT = itertools.count()


def full_precision(t: torch.Tensor) -> torch.Tensor:
    """``t`` as float32 if it is float16/bfloat16, else unchanged (float32/float64 stay)."""
    return t.float() if t.dtype in LOW_PRECISION else t


def register(backend: ProjectorBackend) -> int:
    """The id of ``backend`` in the registry (entered on first call; dropped when the
    backend is garbage collected)."""
    if backend not in _IDS:
        key = next(_NEXT)
        _IDS[backend] = key
        _BACKENDS[key] = backend
    return _IDS[backend]


def _backend(key: int) -> ProjectorBackend:
    backend = _BACKENDS.get(key)
    if backend is None:
        raise RuntimeError(
            f"no projector backend with id {key} is alive: the RayTransform that registered "
            "it was garbage collected; keep the operator alive while its graphs run"
        )
    return backend


@torch.library.custom_op("learnct::ray_forward", mutates_args=())
def ray_forward(x: torch.Tensor, backend_id: int) -> torch.Tensor:
    """``A x``: ``(B, 1, N, N)`` -> ``(B, 1, n_angles, n_detectors)``."""
    with torch.autocast(x.device.type, enabled=False):
        return _backend(backend_id).forward(x.contiguous()).contiguous()


@torch.library.custom_op("learnct::ray_adjoint", mutates_args=())
def ray_adjoint(y: torch.Tensor, backend_id: int) -> torch.Tensor:
    """``A^T y``: ``(B, 1, n_angles, n_detectors)`` -> ``(B, 1, N, N)``."""
    with torch.autocast(y.device.type, enabled=False):
        return _backend(backend_id).adjoint(y.contiguous()).contiguous()


@ray_forward.register_fake
def _(x: torch.Tensor, backend_id: int) -> torch.Tensor:
    return x.new_empty(x.shape[0], 1, *_backend(backend_id).geometry.sinogram_shape)


@ray_adjoint.register_fake
def _(y: torch.Tensor, backend_id: int) -> torch.Tensor:
    return y.new_empty(y.shape[0], 1, *_backend(backend_id).geometry.image_shape)


def _save_id(ctx, inputs, output) -> None:
    ctx.backend_id = inputs[1]


def _forward_backward(ctx, grad: torch.Tensor):
    return ray_adjoint(full_precision(grad), ctx.backend_id), None


def _adjoint_backward(ctx, grad: torch.Tensor):
    return ray_forward(full_precision(grad), ctx.backend_id), None


ray_forward.register_autograd(_forward_backward, setup_context=_save_id)
ray_adjoint.register_autograd(_adjoint_backward, setup_context=_save_id)


def _fold_batch(op):
    """A vmap rule for ``op``: the vmapped dim of its tensor folded into the batch dim."""

    def rule(info, in_dims, t: torch.Tensor, backend_id: int):
        dim = in_dims[0]
        if dim is None:  # not batched here: one call, no vmapped output dim
            return op(t, backend_id), None
        t = t.movedim(dim, 0)
        k, b = t.shape[:2]
        out = op(t.reshape(k * b, *t.shape[2:]), backend_id)
        return out.reshape(k, b, *out.shape[1:]), 0

    return rule


torch.library.register_vmap(ray_forward, _fold_batch(ray_forward))
torch.library.register_vmap(ray_adjoint, _fold_batch(ray_adjoint))
