"""``matrix_free`` backend: Joseph's discretisation computed on the fly, chunked over angles.

Same entries as ``sparse`` (both call ``joseph_entries`` for the same base angles), so the two
agree to float rounding; nothing is stored, and a chunk's gathered values take at most
``chunk_bytes``. The forward gathers pixels and sums along each ray; the adjoint scatters
with ``index_add_`` (the exact transpose of the same entries).
"""

from __future__ import annotations

import torch

from learnct.physics.backends.base import ProjectorBackend, register_backend
from learnct.physics.geometry import Geometry
from learnct.physics.joseph import joseph_entries
from learnct.physics.symmetry import QuarterTurnLayout

__all__ = ["MatrixFreeBackend"]


@register_backend
class MatrixFreeBackend(ProjectorBackend):
    """Joseph's ray transform without a stored matrix; CPU and CUDA, bounded memory."""

    name = "matrix_free"

    def __init__(self, geometry: Geometry, chunk_bytes: int = 256 << 20) -> None:
        super().__init__(geometry)
        self.layout = QuarterTurnLayout(geometry)
        self.chunk_bytes = chunk_bytes

    def memory_note(self) -> str:
        """The largest working chunk (``chunk_bytes``), MiB."""
        return f"<= {self.chunk_bytes / 2**20:.0f} (per chunk)"

    def _chunks(self, columns: int, device: torch.device, dtype: torch.dtype):
        per_angle = self.geometry.n_detectors * 2 * self.geometry.image_size
        bytes_per_angle = per_angle * (columns * torch.finfo(dtype).bits // 8 + 16)
        step = max(1, self.chunk_bytes // bytes_per_angle)
        for start in range(0, self.layout.base_angles, step):
            idx = torch.arange(start, min(start + step, self.layout.base_angles))
            pixels, weights = joseph_entries(self.geometry, idx, device=device)
            n_det = self.geometry.n_detectors
            rays = slice(start * n_det, (start + len(idx)) * n_det)
            samples = pixels.shape[-1]
            yield rays, pixels.reshape(-1, samples), weights.to(dtype).reshape(-1, samples)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        cols = self.layout.image_to_columns(x)  # (P, mB)
        out = cols.new_empty(self.layout.base_rays, cols.shape[1])
        for rays, pixels, weights in self._chunks(cols.shape[1], x.device, x.dtype):
            gathered = cols[pixels.reshape(-1)].reshape(*pixels.shape, cols.shape[1])
            out[rays] = torch.einsum("rs,rsc->rc", weights, gathered)
        return self.layout.columns_to_sinogram(out, x.shape[0])

    def adjoint(self, y: torch.Tensor) -> torch.Tensor:
        cols = self.layout.sinogram_to_columns(y)  # (R0, mB)
        out = cols.new_zeros(self.layout.n_pixels, cols.shape[1])
        for rays, pixels, weights in self._chunks(cols.shape[1], y.device, y.dtype):
            contrib = weights[..., None] * cols[rays][:, None, :]
            out.index_add_(0, pixels.reshape(-1), contrib.reshape(-1, cols.shape[1]))
        return self.layout.columns_to_image(out, y.shape[0])
