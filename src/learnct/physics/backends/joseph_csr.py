"""The sparse backend's native build: Joseph's ``A_0`` and ``A_0^T`` as CSR parts, in C++
(``joseph_csr.cpp``, OpenMP over blocks of rays), bit-identical to the torch build.

Two passes over the rays: the first counts the entries per ray and, per block of rays, per
pixel; the second writes each entry once into ``A_0`` and into ``A_0^T`` (a counting sort: each
block starts at its own offset within every pixel's row, so the rows list the rays in
increasing order, as the torch build's). Memory: the output, plus ``n_blocks`` int64 counts per
pixel and a few float64 per ray. The source is compiled on first use with
``-ffp-contract=off`` (:mod:`~learnct.physics.backends.native`): no fused multiply-adds, so
each weight is the float64 arithmetic of :func:`~learnct.physics.joseph.joseph_entries`.
"""

from __future__ import annotations

import ctypes
import functools
import logging

import torch

from learnct.physics.backends.native import native_library
from learnct.physics.geometry import Geometry
from learnct.physics.joseph import joseph_frames

__all__ = ["joseph_csr_kernel", "joseph_csr_parts", "offsets"]

log = logging.getLogger(__name__)
_FILL = {torch.int32: "joseph_csr_fill_i32", torch.int64: "joseph_csr_fill_i64"}
#: Indices (entries, rays, pixels) below this are stored as int32, else int64.
INT32_LIMIT = 2**31 - 1


@functools.cache
def joseph_csr_kernel() -> ctypes.CDLL | None:
    """The compiled build (once per machine, cached), or None where it cannot be built."""
    library = native_library("joseph_csr.cpp", ("-ffp-contract=off",))
    if library is None:
        log.warning("the sparse backend builds its matrices in torch (joseph_csr not built)")
        return None
    ptr, i64, f64 = ctypes.c_void_p, ctypes.c_int64, ctypes.c_double
    library.joseph_csr_count.argtypes = [ptr, ptr, i64, i64, f64, i64, ptr, ptr]
    for name in _FILL.values():
        getattr(library, name).argtypes = [ptr, ptr, i64, i64, f64, i64] + [ptr] * 6
    for name in ("joseph_csr_count", *_FILL.values()):
        getattr(library, name).restype = ctypes.c_int
    return library


def offsets(counts: torch.Tensor) -> torch.Tensor:
    """Offsets ``[0, c_0, c_0 + c_1, ...]`` (int64) of entry counts."""
    out = torch.zeros(counts.numel() + 1, dtype=torch.int64)
    torch.cumsum(counts, 0, out=out[1:])
    return out


def joseph_csr_parts(
    library: ctypes.CDLL, geometry: Geometry, n_angles: int
) -> tuple[tuple[torch.Tensor, ...], tuple[torch.Tensor, ...]]:
    """``(crow, col, val)`` of ``A_0`` (the first ``n_angles`` angles' rays x N*N) and of
    ``A_0^T``: int32 indices where the entries fit (else int64), float32 values."""
    frames, x_major = joseph_frames(geometry, torch.arange(n_angles))
    frames = frames.reshape(-1, 4).contiguous()
    x_major = x_major.reshape(-1).to(torch.uint8).contiguous()
    n, n_rays = geometry.image_size, frames.shape[0]
    n_pixels = n * n
    n_blocks = max(1, min(torch.get_num_threads(), n_rays))
    grid = (n_rays, n, geometry.pixel_size, n_blocks)
    ray_counts = torch.empty(n_rays, dtype=torch.int64)
    block_counts = torch.zeros(n_blocks, n_pixels, dtype=torch.int64)
    pointers = [t.data_ptr() for t in (frames, x_major)]
    library.joseph_csr_count(*pointers, *grid, ray_counts.data_ptr(), block_counts.data_ptr())
    crow = offsets(ray_counts)
    crow_t = offsets(block_counts.sum(0))
    # block b's entries of pixel p start after those of the blocks before it
    cursors = torch.cumsum(block_counts, 0).sub_(block_counts).add_(crow_t[:-1])
    del block_counts
    nnz = int(crow[-1])
    index = torch.int32 if max(nnz, n_rays, n_pixels) < INT32_LIMIT else torch.int64
    col, row_t = torch.empty(nnz, dtype=index), torch.empty(nnz, dtype=index)
    val, val_t = torch.empty(nnz, dtype=torch.float32), torch.empty(nnz, dtype=torch.float32)
    outputs = (crow, cursors, col, val, row_t, val_t)
    getattr(library, _FILL[index])(*pointers, *grid, *(t.data_ptr() for t in outputs))
    return (crow.to(index), col, val), (crow_t.to(index), row_t, val_t)
