"""``sparse`` backend: Joseph's discretisation stored as CSR matrices (and their transposes).

The matrix covers the first ``n_angles / m`` angles only (``m`` the quarter-turn symmetry of
the angle set, see ``learnct.physics.symmetry``), with int32 indices, and is built in C++
(``joseph_csr``; where no compiler is found, vectorised in torch, the same matrices bit for
bit), then cached on disk under ``$LEARNCT_CACHE_DIR`` (default ``~/.cache/learnct``)
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
from learnct.physics.backends.joseph_csr import joseph_csr_kernel, joseph_csr_parts, offsets
from learnct.physics.geometry import Geometry
from learnct.physics.joseph import joseph_entries
from learnct.physics.symmetry import QuarterTurnLayout

__all__ = ["SparseBackend", "cache_dir", "sparse_build_bytes", "sparse_matrix_bytes"]

log = logging.getLogger(__name__)
_FORMAT_VERSION = 1
#: The torch build (without a compiler) generates at most this many candidate entries (2 N
#: per ray, zeros included) per chunk, and at least one angle's; each costs about
#: ``_BUILD_BYTES_PER_CANDIDATE`` bytes of float64/int64 temporaries, kept below a quarter of
#: the stored matrices' bound.
_BUILD_CHUNK_ENTRIES = 1 << 22
_BUILD_BYTES_PER_CANDIDATE = 80
#: The native build's memory per ray besides the output (frames, counts, offsets), bytes.
_NATIVE_BYTES_PER_RAY = 256


def cache_dir() -> Path:
    """Where built operators are cached: ``$LEARNCT_CACHE_DIR`` or ``~/.cache/learnct``."""
    return Path(os.environ.get("LEARNCT_CACHE_DIR", Path.home() / ".cache" / "learnct"))


def sparse_matrix_bytes(geometry: Geometry) -> int:
    """Upper bound on the bytes of the stored matrix and its transpose (float32, int32)."""
    layout = QuarterTurnLayout(geometry)
    max_nnz = layout.base_rays * 2 * geometry.image_size
    return 2 * max_nnz * 8


def _chunk_angles(geometry: Geometry) -> int:
    """Angles per build chunk (see ``_BUILD_CHUNK_ENTRIES``)."""
    per_angle = geometry.n_detectors * 2 * geometry.image_size
    budget = sparse_matrix_bytes(geometry) // (4 * _BUILD_BYTES_PER_CANDIDATE)
    return max(1, min(_BUILD_CHUNK_ENTRIES, budget) // per_angle)


def sparse_build_bytes(geometry: Geometry, native: bool | None = None) -> int:
    """Bound on the build's peak memory (what ``auto`` budgets), for the native build
    (``native=True``), the torch build (False), or the one this machine runs (None).

    Native build (``joseph_csr``): the stored matrices' bound plus, per block of rays (one
    per torch thread), two int64 counts per pixel, and ``_NATIVE_BYTES_PER_RAY`` per ray;
    measured peaks 1.0-1.3x the stored matrices (1.02x at ``fan_mayo``). Torch build: 1.5x
    the stored matrices' bound (the chunks' entries are kept until the sizes are known, and
    the allocator does not hand all of them back) plus one chunk's temporaries; measured
    1.7x the stored matrices at ``fan_mayo`` (4.3 GiB), within this bound (6.0 GiB), and up
    to 2.4x at 256^2 (within the bound's 3.3x there)."""
    stored = sparse_matrix_bytes(geometry)
    if native is None:
        native = joseph_csr_kernel() is not None
    if native:
        layout = QuarterTurnLayout(geometry)
        per_block = 2 * 8 * layout.n_pixels * torch.get_num_threads()
        return stored + per_block + _NATIVE_BYTES_PER_RAY * layout.base_rays
    per_angle = geometry.n_detectors * 2 * geometry.image_size
    chunk = _chunk_angles(geometry) * per_angle * _BUILD_BYTES_PER_CANDIDATE
    return 3 * stored // 2 + chunk


def _csr_tensor(crow: torch.Tensor, col: torch.Tensor, val: torch.Tensor, shape) -> torch.Tensor:
    """A CSR tensor from parts that are valid by construction (torch's beta warning muted)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta")
        return torch.sparse_csr_tensor(crow, col, val, size=shape, check_invariants=False)


def _chunks(geometry: Geometry, layout: QuarterTurnLayout):
    """Per chunk of angles: its first ray, entries per ray, and the non-zero entries in ray
    order as int32 pixel indices and float32 weights."""
    step = _chunk_angles(geometry)
    for start in range(0, layout.base_angles, step):
        pixels, weights = joseph_entries(
            geometry, torch.arange(start, min(start + step, layout.base_angles))
        )
        keep = weights > 0
        counts = keep.sum(-1).flatten()
        cols = pixels[keep].to(torch.int32)
        del pixels
        yield start * geometry.n_detectors, counts, cols, weights[keep].to(torch.float32)


def build_joseph_csr(
    geometry: Geometry, use_symmetry: bool = True
) -> tuple[torch.Tensor, torch.Tensor]:
    """CSR ``A_0`` (base_rays x N*N) and ``A_0^T``, float32 on the CPU, int32 indices where
    the entries fit (else int64); the rows of ``A_0^T`` list the rays in increasing order.
    Built in C++ (``joseph_csr``) where it compiles, else in torch (the same matrices)."""
    layout = QuarterTurnLayout(geometry, use_symmetry)
    library = joseph_csr_kernel()
    if library is None:
        return build_joseph_csr_torch(geometry, use_symmetry)
    forward, transpose = joseph_csr_parts(library, geometry, layout.base_angles)
    shape = (layout.base_rays, layout.n_pixels)
    return _csr_tensor(*forward, shape), _csr_tensor(*transpose, (shape[1], shape[0]))


def build_joseph_csr_torch(
    geometry: Geometry, use_symmetry: bool = True
) -> tuple[torch.Tensor, torch.Tensor]:
    """:func:`build_joseph_csr` vectorised in torch, in chunks of angles (no compiler).

    Memory: the chunks' entries (8 bytes each) are kept until both matrices' sizes are known,
    then each chunk is written into its place in ``A_0`` and, sorted by pixel within the
    chunk, into ``A_0^T`` (whose rows list the chunks' rays in order, so no global sort), and
    freed: the peak is 1.7-2.4x the stored matrices (measured; ``sparse_build_bytes``)."""
    layout = QuarterTurnLayout(geometry, use_symmetry)
    n_pixels = layout.n_pixels
    chunks, ray_counts = [], []
    pixel_total = torch.zeros(n_pixels, dtype=torch.int64)
    for first_ray, counts, cols, vals in _chunks(geometry, layout):
        chunks.append((first_ray, cols, vals))
        ray_counts.append(counts)
        pixel_total += torch.bincount(cols, minlength=n_pixels)
    crow = offsets(torch.cat(ray_counts))
    nnz = int(crow[-1])
    index_dtype = torch.int32 if nnz < 2**31 - 1 else torch.int64
    col, val = torch.empty(nnz, dtype=index_dtype), torch.empty(nnz, dtype=torch.float32)
    crow_t = offsets(pixel_total)
    row_t, val_t = torch.empty(nnz, dtype=index_dtype), torch.empty(nnz, dtype=torch.float32)
    filled = crow_t[:-1].clone()  # per pixel: where the next chunk's entries go
    while chunks:
        first_ray, cols, vals = chunks.pop(0)
        pixel_count = torch.bincount(cols, minlength=n_pixels)
        start = int(crow[first_ray])
        col[start : start + cols.numel()] = cols
        val[start : start + cols.numel()] = vals
        rays = torch.repeat_interleave(
            torch.arange(first_ray, first_ray + ray_counts[0].numel(), dtype=index_dtype),
            ray_counts.pop(0),
        )
        order = torch.argsort(cols.to(torch.int64), stable=True)
        pixels = cols[order].to(torch.int64)
        chunk_offsets = offsets(pixel_count)
        rank = torch.arange(cols.numel()) - chunk_offsets[pixels]
        place = filled[pixels] + rank
        row_t[place] = rays[order]
        val_t[place] = vals[order]
        filled += pixel_count
        del cols, vals, rays, order, pixels, rank, place
    shape = (layout.base_rays, n_pixels)
    forward = _csr_tensor(crow.to(index_dtype), col, val, shape)
    transpose = _csr_tensor(crow_t.to(index_dtype), row_t, val_t, (shape[1], shape[0]))
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


def csr_bytes(matrices: tuple[torch.Tensor, ...]) -> int:
    """Bytes the CSR ``matrices`` store: row pointers, column indices and values."""
    parts = [t for m in matrices for t in (m.crow_indices(), m.col_indices(), m.values())]
    return sum(t.numel() * t.element_size() for t in parts)


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

    @classmethod
    def stored_bytes(cls, geometry: Geometry) -> int:
        return sparse_matrix_bytes(geometry)

    @classmethod
    def compile_native(cls) -> None:
        """The C++ matrix build (``joseph_csr``)."""
        joseph_csr_kernel()

    def prepare(self) -> None:
        """Build the matrices (or load them from the disk cache) on the CPU in float32."""
        self.matrices(torch.device("cpu"), torch.float32)

    def __getstate__(self) -> dict:
        """Copies and pickles leave out the matrices (CSR tensors cannot be deep-copied; they
        load again from the disk cache on first use)."""
        return {**self.__dict__, "_cpu": None, "_on": {}, "_crow64": {}}

    def memory_note(self) -> str:
        """The stored CSR matrices (row pointers, columns, values; float32 on the CPU), MiB."""
        stored = csr_bytes(self.matrices(torch.device("cpu"), torch.float32))
        return f"{stored / 2**20:.0f} (stored)"

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
