"""``triton`` backend: Joseph's discretisation in Triton kernels, nothing stored, on the GPU.

The same entries as ``sparse`` and ``matrix_free`` (float64 ray lines ``joseph_lines``,
float32 or float64 interpolation), computed inline by a ray-driven forward kernel. The adjoint
is pixel-driven by default (``joseph_gather_adjoint_kernel``): each pixel gathers the few rays
per angle that can sample it, recomputing their samples with the forward's own expression, so
it is the exact transpose, without atomics and bitwise deterministic. ``atomic_adjoint=True``
selects the ray-driven kernel that scatters the same weights with atomic adds instead (kept
for comparison; its float32 sums are not deterministic). Quarter-turn symmetry as in the other
Joseph backends: one launch covers the first ``n_angles / m`` angles for all ``m * B`` turned
copies of a batch.

Runs on CUDA tensors; with ``TRITON_INTERPRET=1`` (set before the first projection) the same
kernels run on CPU tensors in Triton's interpreter instead, slowly (for tests at tiny sizes).
"""

from __future__ import annotations

import contextlib
import importlib.util
import math
import os

import torch

from learnct.checks import is_int
from learnct.physics.backends.base import ProjectorBackend, register_backend
from learnct.physics.geometry import FanBeamGeometry, Geometry
from learnct.physics.joseph import joseph_lines, joseph_window
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
            there are at most 8 columns (batch x quarter turns, e.g. batch 1 or 2). The
            gather adjoint reads one plane either way.
        atomic_adjoint: scatter the adjoint with atomic adds (ray-driven) instead of the
            default pixel-driven gather; the same operator, for comparison.
        block_pixels: pixels per program of the gather adjoint (a power of two; default on
            the GPU 128 for images of at least 256^2, else 64, all pixels up to 8192 in the
            interpreter; at fan_mayo 128 took 1.84 / 4.02 ms at batch 1 / 8 where 64 took
            2.57 / 5.35 ms, H200, ``projector_triton_gpu.md``).
        angle_chunks: split the gather adjoint's angles into this many chunks, each summed by
            programs of its own into a plane of its own, the planes added after (a fixed
            order: still deterministic). Default (``None``): on the GPU, enough chunks for
            about 8 programs per multiprocessor where the pixel blocks alone give fewer (128^2
            images: one program per 64 pixels is 256 programs; at fan_lowdose, batch 5, the
            unchunked gather adjoint took 0.42 ms a call, six times the forward, in an LPD
            training step on an H200, ``profile_gpu.md``); 1 in the interpreter.

    The defaults follow ``experiments/benchmarks/projector_triton_gpu.md`` (H200): at fan_mayo
    (512^2, 1000 x 1000) batch 1, forward + adjoint took 3.89 ms with one plane and 64 rays
    per block, 3.17 ms transposed, 2.41 ms transposed with 256; at batch 8 and at 128^2 the
    one-plane layout with 64 was as fast or faster (0.97 vs 0.98 ms per slice; 0.34 vs
    0.39 ms at 128^2 batch 1) and needs no second plane.
    """

    name = "triton"

    def __init__(
        self,
        geometry: Geometry,
        block_rays: int | None = None,
        transposed: bool | None = None,
        atomic_adjoint: bool = False,
        block_pixels: int | None = None,
        angle_chunks: int | None = None,
    ) -> None:
        super().__init__(geometry)
        for name, value in (("block_rays", block_rays), ("block_pixels", block_pixels)):
            if value is not None and (value < 1 or value & (value - 1)):
                raise ValueError(f"{name} must be a power of two, got {value}")
        if angle_chunks is not None and not (is_int(angle_chunks) and angle_chunks >= 1):
            raise ValueError(f"angle_chunks must be a positive integer, got {angle_chunks!r}")
        self.block_rays = block_rays
        self.block_pixels = block_pixels
        self.angle_chunks = angle_chunks
        self.transposed = transposed
        self.atomic_adjoint = atomic_adjoint
        self.layout = QuarterTurnLayout(geometry)
        angles = torch.arange(self.layout.base_angles)
        self._lines = joseph_lines(geometry, angles)  # (base_rays, 4) float64
        theta = geometry.angles(torch.float64)[: self.layout.base_angles]
        # (base_angles, 2) float64: cos and sin of each angle the kernels cover
        self._trig = torch.stack([torch.cos(theta), torch.sin(theta)], -1).contiguous()
        fan = isinstance(geometry, FanBeamGeometry)
        # a margin for the float32 projection of the pixel centres (the window is a bound)
        half = joseph_window(geometry) * (1 + 1e-3) + 1e-2
        self.window = math.ceil(2 * half) + 1
        self._params = torch.tensor(
            [
                geometry.pixel_size,
                geometry.detector_spacing,
                geometry.source_radius if fan else 0.0,
                geometry.source_to_detector if fan else 0.0,
                half,
            ],
            dtype=torch.float64,
        )
        self._fan = fan
        self._on: dict[tuple[torch.device, torch.dtype], tuple[torch.Tensor, ...]] = {}

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

    def _tables(self, device: torch.device, dtype: torch.dtype) -> tuple[torch.Tensor, ...]:
        """The geometry tables on ``device`` (cached per device and dtype): ``lines`` (float64
        ``joseph_lines``), ``gather`` (per ray ``f0, g, +-step`` in ``dtype``, + for x-major),
        ``trig`` (per angle ``cos, sin``) and ``params`` (pixel size, spacing, R_s, D, the
        window's half-width in detectors)."""
        key = (device, dtype)
        if key not in self._on:
            f0, g, step, x_major = self._lines.unbind(-1)
            signed = torch.where(x_major > 0, step, -step)
            # the forward casts f0 and g from float64 to dtype: the same values here
            gather = torch.stack([f0.to(dtype), g.to(dtype), signed.to(dtype)], -1)
            tables = (self._lines, gather, self._trig, self._params)
            self._on[key] = tuple(t.contiguous().to(device) for t in tables)
        return self._on[key]

    def uses_transposed(self, n_cols: int) -> bool:
        """Whether a call with ``n_cols`` columns (batch x quarter turns) reads two planes."""
        if self.transposed is not None:
            return self.transposed
        return self.geometry.image_size >= 256 and n_cols <= 8

    def _launch(self, kernel, src: torch.Tensor, dst: torch.Tensor, transposed: bool) -> None:
        n_cols = src.shape[1]
        lines = self._tables(src.device, src.dtype)[0]
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
                lines,
                n_rays,
                n_cols,
                N=self.geometry.image_size,
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
        cols = self.layout.sinogram_to_columns(y).contiguous()  # (R0, m B)
        if self.atomic_adjoint:
            out = self._scatter_adjoint(cols)
        else:
            out = self._gather_adjoint(cols)
        return self.layout.columns_to_image(out, y.shape[0])

    def _gather_adjoint(self, cols: torch.Tensor) -> torch.Tensor:
        """``A_0^T cols``, pixel-driven: ``(R0, C) -> (N*N, C)``, deterministic."""
        from learnct.physics.backends.triton_kernels import joseph_gather_adjoint_kernel

        n_cols, n_pixels = cols.shape[1], self.layout.n_pixels
        block_pixels = self.block_pixels or (
            min(8192, _next_power_of_two(n_pixels))
            if interpret_mode()
            else (128 if n_pixels >= 256 * 256 else 64)
        )
        block_cols = min(64, _next_power_of_two(n_cols))
        grid = (-(-n_pixels // block_pixels), -(-n_cols // block_cols))
        per_chunk = -(-self.layout.base_angles // self._angle_chunks(grid, cols.device))
        chunks = -(-self.layout.base_angles // per_chunk)
        out = cols.new_empty(chunks, n_pixels, n_cols)
        _, gather, trig, params = self._tables(cols.device, cols.dtype)
        with torch.cuda.device(cols.device) if cols.is_cuda else contextlib.nullcontext():
            joseph_gather_adjoint_kernel[(*grid, chunks)](
                cols,
                out,
                gather,
                trig,
                params,
                self.layout.base_angles,
                n_cols,
                per_chunk,
                N=self.geometry.image_size,
                N_DET=self.geometry.n_detectors,
                FAN=self._fan,
                WINDOW=self.window,
                BLOCK_PIX=block_pixels,
                BLOCK_COLS=block_cols,
                WIDE=max(cols.numel(), out.numel()) >= 2**31,
            )
        return out.sum(0) if chunks > 1 else out[0]

    def _angle_chunks(self, grid: tuple[int, int], device: torch.device) -> int:
        """``angle_chunks``, or its default (see the class docstring)."""
        if self.angle_chunks is not None:
            return self.angle_chunks
        if device.type != "cuda":
            return 1
        programs = grid[0] * grid[1]
        wanted = 8 * torch.cuda.get_device_properties(device).multi_processor_count
        return max(1, -(-wanted // programs))

    def _scatter_adjoint(self, cols: torch.Tensor) -> torch.Tensor:
        """``A_0^T cols``, ray-driven with atomic adds (``atomic_adjoint=True``)."""
        from learnct.physics.backends.triton_kernels import joseph_adjoint_kernel

        transposed = self.uses_transposed(cols.shape[1])
        out = cols.new_zeros((2 if transposed else 1) * self.layout.n_pixels, cols.shape[1])
        self._launch(joseph_adjoint_kernel, cols, out, transposed)
        if transposed:  # add the transposed plane back
            n = self.geometry.image_size
            image, turned = out.view(2, n, n, -1).unbind(0)
            out = (image + turned.transpose(0, 1)).reshape(n * n, -1)
        return out
