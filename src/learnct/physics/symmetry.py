"""Quarter-turn symmetry of the angle set, used by backends to store a fraction of the operator.

When ``geometry.rotational_symmetry() == (m, k)`` the sinogram rows of angle ``i + q n/m``
equal the rows of angle ``i`` applied to the image turned clockwise by ``q k`` quarter turns
(``torch.rot90(x, -q k)``). So ``A x = [A_0 rot^{-qk} x]_q`` with ``A_0`` the first ``n/m``
angles, and ``A^T y = sum_q rot^{qk} A_0^T y_q``: still the exact adjoint, since a quarter turn
of a centred square grid only permutes pixels. The ``m`` turned copies of a batch become extra
columns of one matrix product, which is what makes the sparse backend fast.
"""

from __future__ import annotations

import torch

from learnct.physics.geometry import Geometry

__all__ = ["QuarterTurnLayout"]


class QuarterTurnLayout:
    """Moves batches between ``(B, 1, ...)`` tensors and the column layout of ``A_0``."""

    def __init__(self, geometry: Geometry, use_symmetry: bool = True) -> None:
        self.geometry = geometry
        self.m, self.turns = geometry.rotational_symmetry() if use_symmetry else (1, 0)
        self.base_angles = geometry.n_angles // self.m
        self.base_rays = self.base_angles * geometry.n_detectors
        self.n_pixels = geometry.image_size**2
        n = geometry.image_size
        pixels = torch.arange(self.n_pixels).view(n, n)
        turned = [torch.rot90(pixels, -q * self.turns).flatten() for q in range(self.m)]
        #: ``(N*N * m,)``: entry ``p m + q`` is the pixel that turn ``q`` moves to ``p``
        self._turned_pixels = torch.stack(turned, 1).flatten()

    def image_to_columns(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, 1, N, N)`` -> ``(N*N, m*B)``: column ``q*B + b`` is image b turned -q*k times.

        One transpose to ``(N*N, B)``, then one row gather of all ``m`` turns (no rotated
        copies, no stack)."""
        if self._turned_pixels.device != x.device:
            self._turned_pixels = self._turned_pixels.to(x.device)
        rows = x.reshape(x.shape[0], self.n_pixels).T.contiguous()
        return rows.index_select(0, self._turned_pixels).view(self.n_pixels, -1)

    def columns_to_sinogram(self, cols: torch.Tensor, batch: int) -> torch.Tensor:
        """``(base_rays, m*B)`` -> ``(B, 1, n_angles, n_detectors)``."""
        n_det = self.geometry.n_detectors
        y = cols.reshape(self.base_angles, n_det, self.m, batch).permute(3, 2, 0, 1)
        return y.reshape(batch, 1, self.m * self.base_angles, n_det)

    def sinogram_to_columns(self, y: torch.Tensor) -> torch.Tensor:
        """``(B, 1, n_angles, n_detectors)`` -> ``(base_rays, m*B)``."""
        batch = y.shape[0]
        n_det = self.geometry.n_detectors
        cols = y.reshape(batch, self.m, self.base_angles, n_det).permute(2, 3, 1, 0)
        return cols.reshape(self.base_rays, self.m * batch)

    def columns_to_image(self, cols: torch.Tensor, batch: int) -> torch.Tensor:
        """``(N*N, m*B)`` -> ``(B, 1, N, N)``: turns each copy back and sums them."""
        n = self.geometry.image_size
        imgs = cols.T.reshape(self.m, batch, n, n)
        out = imgs[0].clone()
        for q in range(1, self.m):
            out += torch.rot90(imgs[q], q * self.turns, dims=(-2, -1))
        return out[:, None]
