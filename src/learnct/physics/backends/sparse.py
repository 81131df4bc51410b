"""``sparse`` backend: Joseph's discretisation stored as CSR matrices (and their transposes).

The matrix covers the first ``n_angles / m`` angles only (``m`` the quarter-turn symmetry of
the angle set, see ``learnct.physics.symmetry``), with int32 indices, and is built vectorised
in torch, then cached on disk under ``$LEARNCT_CACHE_DIR`` (default ``~/.cache/learnct``)
keyed by a hash of the geometry. A batch is one sparse-dense product with ``m * B`` columns:
on the CPU ``csr_columns`` (C++, specialised to this layout), on CUDA torch's.
"""

from __future__ import annotations

import logging
import os
import tempfile
import warnings
from pathlib import Path

import torch

from learnct.physics.backends.base import ProjectorBackend, register_backend
from learnct.physics.backends.csr_columns import csr_columns_kernel, csr_columns_product
from learnct.physics.geometry import Geometry
from learnct.physics.joseph import joseph_entries
from learnct.physics.symmetry import QuarterTurnLayout

__all__ = ["SparseBackend", "cache_dir", "sparse_matrix_bytes"]

log = logging.getLogger(__name__)
_FORMAT_VERSION = 1
#: Entries generated per chunk while building (bounds the build's peak memory).
_BUILD_CHUNK_ENTRIES = 1 << 23


def cache_dir() -> Path:
    """Where built operators are cached: ``$LEARNCT_CACHE_DIR`` or ``~/.cache/learnct``."""
    return Path(os.environ.get("LEARNCT_CACHE_DIR", Path.home() / ".cache" / "learnct"))


def sparse_matrix_bytes(geometry: Geometry) -> int:
    """Upper bound on the bytes of the stored matrix and its transpose (float32, int32)."""
    layout = QuarterTurnLayout(geometry)
    max_nnz = layout.base_rays * 2 * geometry.image_size
    return 2 * max_nnz * 8


def _csr_tensor(crow: torch.Tensor, col: torch.Tensor, val: torch.Tensor, shape) -> torch.Tensor:
    """A CSR tensor from parts that are valid by construction (torch's beta warning muted)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta")
        return torch.sparse_csr_tensor(crow, col, val, size=shape, check_invariants=False)


def _csr(rows: torch.Tensor, cols: torch.Tensor, vals: torch.Tensor, shape) -> torch.Tensor:
    index_dtype = torch.int32 if vals.numel() < 2**31 - 1 else torch.int64
    counts = torch.bincount(rows, minlength=shape[0])
    crow = torch.zeros(shape[0] + 1, dtype=torch.int64)
    torch.cumsum(counts, 0, out=crow[1:])
    return _csr_tensor(crow.to(index_dtype), cols.to(index_dtype), vals, shape)


def build_joseph_csr(
    geometry: Geometry, use_symmetry: bool = True
) -> tuple[torch.Tensor, torch.Tensor]:
    """CSR ``A_0`` (base_rays x N*N) and ``A_0^T``, float32 on the CPU."""
    layout = QuarterTurnLayout(geometry, use_symmetry)
    n_det = geometry.n_detectors
    per_angle = n_det * 2 * geometry.image_size
    chunk = max(1, _BUILD_CHUNK_ENTRIES // per_angle)
    rows, cols, vals = [], [], []
    for start in range(0, layout.base_angles, chunk):
        idx = torch.arange(start, min(start + chunk, layout.base_angles))
        pixels, weights = joseph_entries(geometry, idx)
        ray = (torch.arange(len(idx) * n_det) + start * n_det).reshape(len(idx), n_det, 1)
        keep = weights > 0
        rows.append(ray.expand_as(weights)[keep])
        cols.append(pixels[keep])
        vals.append(weights[keep].to(torch.float32))
    rows_t, cols_t, vals_t = torch.cat(rows), torch.cat(cols), torch.cat(vals)
    shape = (layout.base_rays, layout.n_pixels)
    forward = _csr(rows_t, cols_t, vals_t, shape)
    order = torch.sort(cols_t, stable=True).indices
    transpose = _csr(cols_t[order], rows_t[order], vals_t[order], (shape[1], shape[0]))
    return forward, transpose


def _load_or_build(geometry: Geometry, use_symmetry: bool) -> tuple[torch.Tensor, torch.Tensor]:
    key = f"joseph-v{_FORMAT_VERSION}-{geometry.cache_key()}-sym{int(use_symmetry)}.pt"
    path = cache_dir() / key
    if path.exists():
        try:
            parts = torch.load(path, weights_only=True)
            mats = []
            for name in ("forward", "transpose"):
                crow, col, val = parts[name]
                shape = tuple(parts[f"{name}_size"])
                if crow.numel() != shape[0] + 1 or col.numel() != val.numel():
                    raise ValueError("inconsistent CSR parts")
                if int(crow[-1]) != val.numel():
                    raise ValueError("inconsistent CSR parts")
                mats.append(_csr_tensor(crow, col, val, shape))
            return mats[0], mats[1]
        except Exception as err:  # a corrupt or truncated cache file: rebuild it
            log.warning("rebuilding the cached operator %s (%s)", path, err)
    forward, transpose = build_joseph_csr(geometry, use_symmetry)
    parts = {}
    for name, mat in (("forward", forward), ("transpose", transpose)):
        parts[name] = (mat.crow_indices(), mat.col_indices(), mat.values())
        parts[f"{name}_size"] = tuple(mat.shape)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path.parent, suffix=".tmp", delete=False) as tmp:
            torch.save(parts, tmp)
        os.replace(tmp.name, path)  # atomic: never a half-written cache file
    except OSError as err:
        log.warning("could not cache the operator in %s (%s); it will be rebuilt", path, err)
    return forward, transpose


@register_backend
class SparseBackend(ProjectorBackend):
    """Joseph's ray transform as a cached CSR matrix; CPU and CUDA."""

    name = "sparse"

    def __init__(self, geometry: Geometry, use_symmetry: bool = True) -> None:
        super().__init__(geometry)
        self.layout = QuarterTurnLayout(geometry, use_symmetry)
        self._use_symmetry = use_symmetry
        self._cpu: tuple[torch.Tensor, torch.Tensor] | None = None
        self._on: dict[tuple[torch.device, torch.dtype], tuple[torch.Tensor, torch.Tensor]] = {}
        self._crow64: dict[tuple[torch.dtype, int], torch.Tensor] = {}  # CPU row offsets

    def matrices(
        self, device: torch.device, dtype: torch.dtype
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``(A_0, A_0^T)`` on ``device`` in ``dtype`` (built or loaded once, then kept)."""
        key = (torch.device(device), dtype)
        if key not in self._on:
            if self._cpu is None:
                self._cpu = _load_or_build(self.geometry, self._use_symmetry)
            self._on[key] = tuple(m.to(device=device, dtype=dtype) for m in self._cpu)
        return self._on[key]

    def nnz(self) -> int:
        return int(self.matrices(torch.device("cpu"), torch.float32)[0].values().numel())

    def _product(self, which: int, cols: torch.Tensor) -> torch.Tensor:
        """``A_0 @ cols`` (``which=0``) or ``A_0^T @ cols`` (1): on the CPU the C++ product
        (``csr_columns``) where it compiles and the indices are int32, else torch's."""
        mat = self.matrices(cols.device, cols.dtype)[which]
        library = csr_columns_kernel() if cols.device.type == "cpu" else None
        if library is None or mat.col_indices().dtype != torch.int32:
            return mat @ cols
        key = (cols.dtype, which)
        if key not in self._crow64:  # the kernel reads int64 row offsets
            self._crow64[key] = mat.crow_indices().to(torch.int64)
        return csr_columns_product(
            library, self._crow64[key], mat.col_indices(), mat.values(), cols
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        cols = self.layout.image_to_columns(x)
        return self.layout.columns_to_sinogram(self._product(0, cols), x.shape[0])

    def adjoint(self, y: torch.Tensor) -> torch.Tensor:
        cols = self.layout.sinogram_to_columns(y)
        return self.layout.columns_to_image(self._product(1, cols), y.shape[0])
