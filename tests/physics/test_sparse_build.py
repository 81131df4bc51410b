"""The sparse backend's builds: the native (C++) build equals the torch build bit for bit, the
torch build the same whatever its chunking, and the build bound ``auto`` budgets."""

from __future__ import annotations

import pytest
import torch

from learnct.physics import FanBeamGeometry, ParallelBeamGeometry, RayTransform
from learnct.physics.backends import BACKENDS, joseph_csr, sparse

needs_kernel = pytest.mark.skipif(joseph_csr.joseph_csr_kernel() is None, reason="no compiler")

GEOMETRIES = [
    pytest.param(FanBeamGeometry(image_size=24, n_angles=40, n_detectors=36), id="fan"),
    pytest.param(ParallelBeamGeometry(image_size=23, n_angles=30, n_detectors=35), id="parallel"),
    # odd size, no quarter-turn symmetry (37 angles), detectors past the image's edge
    pytest.param(FanBeamGeometry(image_size=17, n_angles=37, n_detectors=41), id="fan-odd"),
]


def _assert_same(a: tuple[torch.Tensor, ...], b: tuple[torch.Tensor, ...]) -> None:
    for x, y in zip(a, b, strict=True):
        assert torch.equal(x.crow_indices(), y.crow_indices())
        assert torch.equal(x.col_indices(), y.col_indices())
        assert torch.equal(x.values(), y.values())
        assert x.col_indices().dtype == torch.int32


@needs_kernel
@pytest.mark.parametrize("use_symmetry", [True, False])
@pytest.mark.parametrize("geometry", GEOMETRIES)
def test_native_build_equals_the_torch_build_bit_for_bit(geometry, use_symmetry):
    native = sparse.build_joseph_csr(geometry, use_symmetry)
    _assert_same(native, sparse.build_joseph_csr_torch(geometry, use_symmetry))
    forward, transpose = native
    assert forward.values().numel() > 0
    assert torch.equal(transpose.to_dense(), forward.to_dense().T)


@needs_kernel
@pytest.mark.parametrize("threads", [1, 3])
def test_native_build_is_the_same_on_any_number_of_threads(threads):
    """The transpose's blocks of rays follow the thread count; its rows must not."""
    geometry = FanBeamGeometry(image_size=20, n_angles=16, n_detectors=30)
    expected = sparse.build_joseph_csr_torch(geometry)
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        _assert_same(sparse.build_joseph_csr(geometry), expected)
    finally:
        torch.set_num_threads(before)


@needs_kernel
def test_native_build_with_int64_indices_holds_the_same_entries(monkeypatch):
    geometry = FanBeamGeometry(image_size=16, n_angles=12, n_detectors=24)
    small = sparse.build_joseph_csr(geometry)
    monkeypatch.setattr(joseph_csr, "INT32_LIMIT", 10)
    wide = sparse.build_joseph_csr(geometry)
    for a, b in zip(small, wide, strict=True):
        assert b.col_indices().dtype == torch.int64
        assert torch.equal(a.crow_indices().long(), b.crow_indices())
        assert torch.equal(a.col_indices().long(), b.col_indices())
        assert torch.equal(a.values(), b.values())


@pytest.mark.parametrize("geometry", GEOMETRIES[:2])
def test_one_angle_chunks_build_the_same_matrices_as_one_chunk(geometry, monkeypatch):
    """Each chunk's entries land in their place in ``A_0`` and, ray order kept within each
    pixel's row, in ``A_0^T``: equal to the transpose of the dense ``A_0``."""
    whole = sparse.build_joseph_csr_torch(geometry)
    monkeypatch.setattr(sparse, "_BUILD_CHUNK_ENTRIES", 1)  # one angle per chunk
    assert sparse._chunk_angles(geometry) == 1
    chunked = sparse.build_joseph_csr_torch(geometry)
    _assert_same(whole, chunked)
    forward, transpose = chunked
    assert torch.equal(transpose.to_dense(), forward.to_dense().T)


def test_auto_budgets_the_build_peak_not_only_the_stored_matrices():
    geometry = FanBeamGeometry(image_size=32, n_angles=40, n_detectors=48)
    stored, build = sparse.sparse_matrix_bytes(geometry), sparse.sparse_build_bytes(geometry)
    assert build > stored
    assert RayTransform(geometry, matrix_budget_bytes=build).backend_name == "sparse"
    assert RayTransform(geometry, matrix_budget_bytes=build - 1).backend_name == "matrix_free"


def test_without_a_compiler_the_torch_build_runs_and_auto_budgets_its_larger_peak(monkeypatch):
    geometry = FanBeamGeometry(image_size=32, n_angles=40, n_detectors=48)
    native_bound = sparse.sparse_build_bytes(geometry)
    expected = sparse.build_joseph_csr_torch(geometry)
    monkeypatch.setattr(sparse, "joseph_csr_kernel", lambda: None)
    stored, build = sparse.sparse_matrix_bytes(geometry), sparse.sparse_build_bytes(geometry)
    assert build >= 3 * stored // 2
    if joseph_csr.joseph_csr_kernel() is not None:
        assert native_bound < build
    _assert_same(sparse.build_joseph_csr(geometry), expected)


def test_a_compiler_that_fails_leaves_the_torch_build(monkeypatch, tmp_path):
    geometry = FanBeamGeometry(image_size=16, n_angles=8, n_detectors=24)
    expected = sparse.build_joseph_csr_torch(geometry)
    monkeypatch.setenv("CXX", str(tmp_path / "no-such-compiler"))
    monkeypatch.setenv("LEARNCT_CACHE_DIR", str(tmp_path))
    joseph_csr.joseph_csr_kernel.cache_clear()
    try:
        assert joseph_csr.joseph_csr_kernel() is None
        _assert_same(sparse.build_joseph_csr(geometry), expected)
    finally:
        joseph_csr.joseph_csr_kernel.cache_clear()


def test_stored_bytes_bounds_what_prepare_stores_and_other_backends_store_nothing(
    tmp_path, monkeypatch
):
    monkeypatch.setenv("LEARNCT_CACHE_DIR", str(tmp_path))
    geometry = FanBeamGeometry(image_size=24, n_angles=40, n_detectors=36)
    op = RayTransform(geometry, backend="sparse")
    op.backend.prepare()
    assert list(tmp_path.rglob("*.pt"))  # prepare built (and cached) the matrices
    stored = sparse.csr_bytes(op.backend.matrices(torch.device("cpu"), torch.float32))
    assert 0.5 * sparse.SparseBackend.stored_bytes(geometry) < stored
    assert stored <= sparse.SparseBackend.stored_bytes(geometry)
    others = [cls for cls in BACKENDS.values() if cls is not sparse.SparseBackend]
    assert others and all(cls.stored_bytes(geometry) == 0 for cls in others)
