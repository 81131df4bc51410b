"""``triton`` backend: Joseph's discretisation in Triton kernels, nothing stored, on the GPU.

The same entries as ``sparse`` and ``matrix_free`` (float64 ray geometry, float32 or float64
interpolation), computed inline by a ray-driven forward kernel; the adjoint kernel scatters
the same weights with atomic adds, so it is the exact transpose (its float32 sums are not
bitwise deterministic). Quarter-turn symmetry as in the other Joseph backends: one launch
covers the first ``n_angles / m`` angles for all ``m * B`` turned copies of a batch.

Runs on CUDA tensors; with ``TRITON_INTERPRET=1`` (set before the first projection) the same
kernels run on CPU tensors in Triton's interpreter instead, slowly (for tests at tiny sizes).
"""

from __future__ import annotations

import contextlib
import importlib.util
import math
import os

import torch

from learnct.physics.backends.base import ProjectorBackend, register_backend
from learnct.physics.geometry import FanBeamGeometry, Geometry
from learnct.physics.symmetry import QuarterTurnLayout

__all__ = ["TritonBackend", "interpret_mode"]


def interpret_mode() -> bool:
    """Whether Triton runs kernels in its CPU interpreter (``TRITON_INTERPRET=1``)."""
    return os.environ.get("TRITON_INTERPRET", "0").lower() in ("1", "true", "on", "yes")


def _next_power_of_two(n: int) -> int:
    return 1 << max(0, math.ceil(math.log2(n)))


@register_backend
class TritonBackend(ProjectorBackend):
    """Joseph's ray transform as Triton kernels: CUDA (or Triton's CPU interpreter).

    Args:
        geometry: fan or parallel beam.
        block_rays: rays per program (a power of two); default (``None``) on the GPU 256
            with the transposed layout, else 64; in the interpreter all rays up to 8192 (it
            runs programs one after the other).
        transposed: give the kernels the image and its transpose, so that every ray block
            reads and writes along contiguous rows (see ``triton_kernels``); the same numbers
            either way. Default (``None``): per call, when the image is at least 256^2 and
            there are at most 8 columns (batch x quarter turns, e.g. batch 1 or 2).

    The defaults follow ``experiments/benchmarks/projector_triton_gpu.md`` (H200): at fan_mayo
    (512^2, 1000 x 1000) batch 1, forward + adjoint took 3.89 ms with one plane and 64 rays
    per block, 3.17 ms transposed, 2.41 ms transposed with 256; at batch 8 and at 128^2 the
    one-plane layout with 64 was as fast or faster (0.97 vs 0.98 ms per slice; 0.34 vs
    0.39 ms at 128^2 batch 1) and needs no second plane.
    """

    name = "triton"

    def __init__(
        self, geometry: Geometry, block_rays: int | None = None, transposed: bool | None = None
    ) -> None:
        super().__init__(geometry)
        if block_rays is not None and (block_rays < 1 or block_rays & (block_rays - 1)):
            raise ValueError(f"block_rays must be a power of two, got {block_rays}")
        self.block_rays = block_rays
        self.transposed = transposed
        self.layout = QuarterTurnLayout(geometry)
        theta = geometry.angles(torch.float64)[: self.layout.base_angles]
        # (base_angles, 2) float64: cos and sin of each angle the kernels cover
        self._trig = torch.stack([torch.cos(theta), torch.sin(theta)], -1).contiguous()
        fan = isinstance(geometry, FanBeamGeometry)
        self._params = torch.tensor(
            [
                geometry.pixel_size,
                geometry.detector_spacing,
                geometry.source_radius if fan else 0.0,
                geometry.detector_radius if fan else 0.0,
            ],
            dtype=torch.float64,
        )
        self._fan = fan
        self._on: dict[torch.device, tuple[torch.Tensor, torch.Tensor]] = {}

    @classmethod
    def unavailable_reason(cls) -> str | None:
        if importlib.util.find_spec("triton") is None:
            return "triton is not installed (pip install learnct[gpu])"
        if not interpret_mode() and not torch.cuda.is_available():
            return "needs a CUDA GPU (or TRITON_INTERPRET=1 to run its kernels on the CPU)"
        return None

    @classmethod
    def devices(cls) -> tuple[str, ...]:
        return ("cpu",) if interpret_mode() else ("cuda",)

    def _geometry_on(self, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        """The per-angle ``(cos, sin)`` table and scalar parameters on ``device`` (cached)."""
        if device not in self._on:
            self._on[device] = (self._trig.to(device), self._params.to(device))
        return self._on[device]

    def uses_transposed(self, n_cols: int) -> bool:
        """Whether a call with ``n_cols`` columns (batch x quarter turns) reads two planes."""
        if self.transposed is not None:
            return self.transposed
        return self.geometry.image_size >= 256 and n_cols <= 8

    def _launch(self, kernel, src: torch.Tensor, dst: torch.Tensor, transposed: bool) -> None:
        n_cols = src.shape[1]
        trig, params = self._geometry_on(src.device)
        n_rays = self.layout.base_rays
        block_rays = self.block_rays or (
            min(8192, _next_power_of_two(n_rays)) if interpret_mode() else 256 if transposed else 64
        )
        block_cols = min(64, _next_power_of_two(n_cols))
        grid = (-(-n_rays // block_rays), -(-n_cols // block_cols))
        wide = max(src.numel(), dst.numel()) >= 2**31
        with torch.cuda.device(src.device) if src.is_cuda else contextlib.nullcontext():
            kernel[grid](
                src,
                dst,
                trig,
                params,
                n_rays,
                n_cols,
                N=self.geometry.image_size,
                N_DET=self.geometry.n_detectors,
                FAN=self._fan,
                BLOCK_RAYS=block_rays,
                BLOCK_COLS=block_cols,
                WIDE=wide,
                TRANSPOSED=transposed,
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        from learnct.physics.backends.triton_kernels import joseph_forward_kernel

        cols = self.layout.image_to_columns(x)  # (P, m B)
        transposed = self.uses_transposed(cols.shape[1])
        if transposed:  # (2 P, m B): the image, then its transpose
            n = self.geometry.image_size
            planes = cols.view(n, n, -1)
            cols = torch.cat([cols, planes.transpose(0, 1).reshape(n * n, -1)])
        out = cols.new_empty(self.layout.base_rays, cols.shape[1])
        self._launch(joseph_forward_kernel, cols, out, transposed)
        return self.layout.columns_to_sinogram(out, x.shape[0])

    def adjoint(self, y: torch.Tensor) -> torch.Tensor:
        from learnct.physics.backends.triton_kernels import joseph_adjoint_kernel

        cols = self.layout.sinogram_to_columns(y).contiguous()  # (R0, m B)
        transposed = self.uses_transposed(cols.shape[1])
        out = cols.new_zeros((2 if transposed else 1) * self.layout.n_pixels, cols.shape[1])
        self._launch(joseph_adjoint_kernel, cols, out, transposed)
        if transposed:  # add the transposed plane back
            n = self.geometry.image_size
            image, turned = out.view(2, n, n, -1).unbind(0)
            out = (image + turned.transpose(0, 1)).reshape(n * n, -1)
        return self.layout.columns_to_image(out, y.shape[0])
