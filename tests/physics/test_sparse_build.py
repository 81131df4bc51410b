"""The sparse backend's chunked build: the same matrices whatever the chunking, and the build
bound ``auto`` budgets."""

from __future__ import annotations

import pytest
import torch

from learnct.physics import FanBeamGeometry, ParallelBeamGeometry, RayTransform
from learnct.physics.backends import sparse


@pytest.mark.parametrize(
    "geometry",
    [
        pytest.param(FanBeamGeometry(image_size=24, n_angles=40, n_detectors=36), id="fan"),
        pytest.param(
            ParallelBeamGeometry(image_size=23, n_angles=30, n_detectors=35), id="parallel"
        ),
    ],
)
def test_one_angle_chunks_build_the_same_matrices_as_one_chunk(geometry, monkeypatch):
    """Each chunk's entries land in their place in ``A_0`` and, ray order kept within each
    pixel's row, in ``A_0^T``: equal to the transpose of the dense ``A_0``."""
    whole = sparse.build_joseph_csr(geometry)
    monkeypatch.setattr(sparse, "_BUILD_CHUNK_ENTRIES", 1)  # one angle per chunk
    assert sparse._chunk_angles(geometry) == 1
    chunked = sparse.build_joseph_csr(geometry)
    for a, b in zip(whole, chunked, strict=True):
        assert torch.equal(a.crow_indices(), b.crow_indices())
        assert torch.equal(a.col_indices(), b.col_indices())
        assert torch.equal(a.values(), b.values())
        assert a.col_indices().dtype == torch.int32
    forward, transpose = chunked
    assert torch.equal(transpose.to_dense(), forward.to_dense().T)


def test_auto_budgets_the_build_peak_not_only_the_stored_matrices():
    geometry = FanBeamGeometry(image_size=32, n_angles=40, n_detectors=48)
    stored, build = sparse.sparse_matrix_bytes(geometry), sparse.sparse_build_bytes(geometry)
    assert build >= 3 * stored // 2
    assert RayTransform(geometry, matrix_budget_bytes=build).backend_name == "sparse"
    assert RayTransform(geometry, matrix_budget_bytes=build - 1).backend_name == "matrix_free"
