"""The sparse backend's C++ product (``csr_columns``) against torch's CSR product, and the
fallback to torch's where no compiler is found."""

from __future__ import annotations

import pytest
import torch

from learnct.physics import FanBeamGeometry, RayTransform
from learnct.physics.backends import csr_columns
from learnct.physics.backends.csr_columns import csr_columns_kernel, csr_columns_product

LIBRARY = csr_columns_kernel()
needs_kernel = pytest.mark.skipif(LIBRARY is None, reason="no C++ compiler")


def _random_csr(rows: int, cols: int, dtype: torch.dtype) -> torch.Tensor:
    gen = torch.Generator().manual_seed(0)
    dense = torch.rand(rows, cols, generator=gen, dtype=dtype)
    dense[dense < 0.9] = 0  # about 10 % entries; some rows empty, some with 1-3 entries
    dense[::7] = 0
    return dense.to_sparse_csr()


@needs_kernel
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("width", [1, 3, 6, 8, 32, 33, 70])
def test_product_equals_torchs(dtype, width):
    """Every width: compiled ones (8, 32), padded ones (3, 6), blocks of 32 (33, 70)."""
    mat = _random_csr(300, 200, dtype)
    x = torch.rand(200, width, dtype=dtype, generator=torch.Generator().manual_seed(1))
    crow = mat.crow_indices().to(torch.int64)
    col = mat.col_indices().to(torch.int32)
    out = csr_columns_product(LIBRARY, crow, col, mat.values(), x)
    assert out.shape == (300, width) and out.dtype == dtype
    tol = 1e-6 if dtype == torch.float32 else 1e-14
    assert torch.allclose(out, mat @ x, rtol=tol, atol=tol)


def test_without_a_compiler_the_backend_uses_torchs_product(monkeypatch, tmp_path):
    geometry = FanBeamGeometry(image_size=16, n_angles=8, n_detectors=24)
    x = torch.rand(2, 1, 16, 16, generator=torch.Generator().manual_seed(2))
    expected = RayTransform(geometry, backend="sparse")(x)
    monkeypatch.setenv("CXX", str(tmp_path / "no-such-compiler"))
    monkeypatch.setenv("LEARNCT_CACHE_DIR", str(tmp_path))
    csr_columns_kernel.cache_clear()
    try:
        assert csr_columns.csr_columns_kernel() is None
        op = RayTransform(geometry, backend="sparse")
        assert torch.allclose(op(x), expected, rtol=1e-6, atol=1e-6)
    finally:
        csr_columns_kernel.cache_clear()
