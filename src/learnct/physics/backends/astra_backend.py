"""``astra`` backend: astra-toolbox's CPU projectors, an independent reference.

Our geometry maps onto astra's vector geometries without any flip or sign change (checked
numerically against the ``sparse`` backend on asymmetric off-centre images, with nonzero
``angle_offset``; a vertical or horizontal image flip or a reversed detector gives a
relative error above 0.6 instead of < 0.035):

- volume: ``create_vol_geom(N, N, -W/2, W/2, -W/2, W/2)`` with ``W = image_size * pixel_size``
  mm; astra's row 0 is at the top (``y = +W/2``) and columns run along +x, like ours;
- fan beam: ``fanflat_vec`` rows ``(src, det, u) = (-R_s omega_perp, R_d omega_perp,
  detector_spacing * omega)``, projector ``line_fanflat`` (the only CPU projector that
  takes ``fanflat_vec`` in astra 2.5: line-intersection lengths, not Joseph's
  interpolation, so it differs from ours by ~0.5% on smooth images, ~3% on sharp edges);
- parallel beam: ``parallel_vec`` rows ``(ray, det, u) = (omega_perp, 0, detector_spacing *
  omega)``, projector ``linear`` (Joseph's kernel: agrees with ``sparse`` to ~5e-6);
  ``line``, ``strip`` and ``distance_driven`` also accept it (``projector=...``).

Astra measures lengths in volume units, i.e. mm here, so sinograms are already line
integrals in (image units) x mm; no rescaling. The backprojection is astra's transpose of
the same projector weights: ``|<Ax, y> - <x, A^T y>| / (||A|| ||x|| ||y||)`` measured
< 2e-8 (float32 rounding) for both geometries, so ``exact_adjoint = True``.

CPU only, one image at a time through numpy (float32), each image single-threaded in astra;
``threads`` > 1 projects the images of a batch on that many threads at once (astra releases
the GIL), which is how ``make bench`` times it on all cores. Use it for checks, not
training.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np
import torch

from learnct.physics.backends.base import ProjectorBackend, register_backend
from learnct.physics.geometry import FanBeamGeometry, Geometry, ParallelBeamGeometry

__all__ = ["AstraBackend"]

_MISSING = "astra-toolbox is not installed (pip install 'learnct[astra]')"


def astra_geometries(geometry: Geometry) -> tuple[dict, dict]:
    """``(vol_geom, proj_geom)``: astra's description of ``geometry`` (see module docstring)."""
    import astra

    half = geometry.image_width / 2
    n = geometry.image_size
    vol_geom = astra.create_vol_geom(n, n, -half, half, -half, half)
    theta = geometry.angles().numpy()
    omega = np.stack([np.cos(theta), np.sin(theta)], -1)
    omega_perp = np.stack([-np.sin(theta), np.cos(theta)], -1)
    u = geometry.detector_spacing * omega
    if isinstance(geometry, FanBeamGeometry):
        src = -geometry.source_radius * omega_perp
        det = geometry.detector_radius * omega_perp
        vectors = np.concatenate([src, det, u], -1)
        proj_geom = astra.create_proj_geom("fanflat_vec", geometry.n_detectors, vectors)
    else:
        vectors = np.concatenate([omega_perp, np.zeros_like(omega), u], -1)
        proj_geom = astra.create_proj_geom("parallel_vec", geometry.n_detectors, vectors)
    return vol_geom, proj_geom


@register_backend
class AstraBackend(ProjectorBackend):
    """astra-toolbox's CPU ray transform (``line_fanflat`` / ``linear``); CPU only.

    Args:
        geometry: a ``FanBeamGeometry`` or ``ParallelBeamGeometry``.
        projector: astra CPU projector type; default ``line_fanflat`` (fan beam) or
            ``linear`` (parallel beam).
        threads: images projected at once (one astra call per image each); default 1.
    """

    name = "astra"
    exact_adjoint = True  # measured: relative adjoint mismatch < 2e-8 (float32 rounding)
    takes_threads = True

    def __init__(self, geometry: Geometry, projector: str | None = None, threads: int = 1) -> None:
        super().__init__(geometry)
        if threads < 1:
            raise ValueError(f"threads must be at least 1, got {threads}")
        self.threads = threads
        import astra

        self._astra = astra
        self._vol_geom, self._proj_geom = astra_geometries(geometry)
        if projector is None:
            projector = "line_fanflat" if isinstance(geometry, FanBeamGeometry) else "linear"
        self.projector_type = projector
        self._projector = astra.create_projector(projector, self._proj_geom, self._vol_geom)

    @classmethod
    def unavailable_reason(cls) -> str | None:
        try:
            import astra  # noqa: F401
        except ImportError:
            return _MISSING
        return None

    @classmethod
    def supports(cls, geometry: Geometry) -> str | None:
        if not isinstance(geometry, (FanBeamGeometry, ParallelBeamGeometry)):
            return f"astra backend supports fan and parallel beam, not {type(geometry).__name__}"
        return None

    @classmethod
    def devices(cls) -> tuple[str, ...]:
        return ("cpu",)

    def _apply(self, batch: torch.Tensor, create) -> torch.Tensor:
        def one(item: np.ndarray) -> torch.Tensor:
            data_id, result = create(np.ascontiguousarray(item), self._projector)
            self._astra.data2d.delete(data_id)
            return torch.from_numpy(result)

        items = list(batch[:, 0].detach().to(torch.float32).numpy())
        if self.threads == 1 or len(items) == 1:
            out = [one(item) for item in items]
        else:
            with ThreadPoolExecutor(min(self.threads, len(items))) as pool:
                out = list(pool.map(one, items))
        return torch.stack(out)[:, None].to(batch.dtype)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._apply(x, self._astra.create_sino)

    def adjoint(self, y: torch.Tensor) -> torch.Tensor:
        return self._apply(y, self._astra.create_backprojection)

    def __getstate__(self) -> dict:
        """Copies and pickles leave out the astra module and the projector's id (a handle in
        astra's own registry, deleted with its owner): each copy makes its own projector."""
        return {k: v for k, v in self.__dict__.items() if k not in ("_astra", "_projector")}

    def __setstate__(self, state: dict) -> None:
        import astra

        self.__dict__.update(state)
        self._astra = astra
        self._projector = astra.create_projector(
            self.projector_type, self._proj_geom, self._vol_geom
        )

    def __del__(self) -> None:
        projector = getattr(self, "_projector", None)
        if projector is not None:
            try:
                self._astra.projector.delete(projector)
            except Exception:  # interpreter shutdown: astra may already be gone
                pass
            self._projector = None
