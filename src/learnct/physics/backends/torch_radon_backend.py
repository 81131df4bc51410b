"""``torch_radon`` backend: the CUDA projectors of torch-radon (carterbox's maintained fork).

UNTESTED HERE: the package is built only by conda-forge (``carterbox-torch-radon``, CUDA
only, not on PyPI), so it could not be installed next to this project's pip environment.
The adapter is written against the fork's v2 API (``torch_radon.FanBeam``,
``torch_radon.ParallelBeam``, ``torch_radon.volumes.Volume2D``, ``.forward`` /
``.backward``; the older ``Radon`` / ``RadonFanbeam`` classes are not in the fork). Compare
it with ``sparse`` (as ``tests/physics/test_astra_reference.py`` does for astra) before
trusting it.

Mapping, derived from the fork's CUDA kernels (not run): it works in pixel units with
the image centred, column ``j`` at ``X = j - (N-1)/2`` and row ``i`` at ``Y = i - (N-1)/2``
(``Y = -y`` in our convention). Its fan source ``R(-a) (0, s_dist)`` and detector pixel
``R(-a) (t_k, -d_dist)`` (``t_k`` centred like ours), read with ``Y = -y``, are exactly our
``-R_s omega_perp`` and ``R_d omega_perp + t_k omega`` for ``a = theta``; its parallel rays
likewise pass through ``t_k omega``. So angles, detector order and image orientation pass
through unchanged; distances and the detector spacing are divided by ``pixel_size``, and
both directions are multiplied by ``pixel_size`` to get (image units) x mm.

Its backprojection is pixel-driven with interpolation, not the transpose of the
ray-driven forward, so ``exact_adjoint = False``.
"""

from __future__ import annotations

import torch

from learnct.physics.backends.base import ProjectorBackend, register_backend
from learnct.physics.geometry import FanBeamGeometry, Geometry, ParallelBeamGeometry

__all__ = ["TorchRadonBackend"]


@register_backend
class TorchRadonBackend(ProjectorBackend):
    """torch-radon's CUDA fan/parallel projectors (untested here, see module docstring)."""

    name = "torch_radon"
    exact_adjoint = False  # pixel-driven backprojection: an approximate adjoint

    def __init__(self, geometry: Geometry) -> None:
        super().__init__(geometry)
        import torch_radon

        g = geometry
        p = g.pixel_size
        volume = torch_radon.volumes.Volume2D()
        volume.set_size(g.image_size, g.image_size)
        angles = g.angles(torch.float32)
        if isinstance(g, FanBeamGeometry):
            self._radon = torch_radon.FanBeam(
                g.n_detectors,
                angles,
                src_dist=g.source_radius / p,
                det_dist=g.detector_radius / p,
                det_spacing=g.detector_spacing / p,
                volume=volume,
            )
        else:
            self._radon = torch_radon.ParallelBeam(
                g.n_detectors, angles, det_spacing=g.detector_spacing / p, volume=volume
            )

    @classmethod
    def unavailable_reason(cls) -> str | None:
        try:
            import torch_radon  # noqa: F401
        except ImportError:
            return (
                "torch_radon is not installed "
                "(conda install -c conda-forge carterbox-torch-radon; not on PyPI)"
            )
        return None

    @classmethod
    def supports(cls, geometry: Geometry) -> str | None:
        if not isinstance(geometry, (FanBeamGeometry, ParallelBeamGeometry)):
            return f"torch_radon supports fan and parallel beam, not {type(geometry).__name__}"
        return None

    @classmethod
    def devices(cls) -> tuple[str, ...]:
        return ("cuda",)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self._radon.forward(x.detach().to(torch.float32).contiguous())
        return (y * self.geometry.pixel_size).to(x.dtype)

    def adjoint(self, y: torch.Tensor) -> torch.Tensor:
        x = self._radon.backward(y.detach().to(torch.float32).contiguous())
        return (x * self.geometry.pixel_size).to(y.dtype)
