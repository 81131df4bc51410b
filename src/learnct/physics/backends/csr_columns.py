"""The sparse backend's product ``A X``: a CSR matrix times a dense row-major ``X`` with few
columns (the batch columns), in C++ (``csr_columns.cpp``), rows shared among torch's OpenMP
threads.

At 32 columns it runs about 2x faster than torch's (MKL's) CSR product on one core: four
accumulator sets per row hide the FMA latency that bounds a one-accumulator loop. The source
is compiled on first use (:mod:`~learnct.physics.backends.native`); where that fails (no
compiler) :func:`csr_columns_kernel` returns None and the backend uses torch's product (the
same numbers to float rounding), after one warning.
"""

from __future__ import annotations

import ctypes
import functools
import logging

import torch

from learnct.physics.backends.native import native_library

__all__ = ["csr_columns_kernel", "csr_columns_product"]

log = logging.getLogger(__name__)
_FUNCTIONS = {torch.float32: "csr_columns_f32", torch.float64: "csr_columns_f64"}


@functools.cache
def csr_columns_kernel() -> ctypes.CDLL | None:
    """The compiled product (built once per machine and cached), or None where it cannot be."""
    library = native_library("csr_columns.cpp")
    if library is None:
        log.warning("the sparse backend uses torch's slower product (csr_columns not built)")
        return None
    for name in _FUNCTIONS.values():
        getattr(library, name).restype = ctypes.c_int
        getattr(library, name).argtypes = [ctypes.c_void_p] * 5 + [ctypes.c_int64] * 2
    return library


#: Column counts the C++ product is compiled for; other counts are zero-padded to the next.
WIDTHS = (1, 2, 4, 8, 12, 16, 20, 24, 28, 32)


def csr_columns_product(
    library: ctypes.CDLL, crow: torch.Tensor, col: torch.Tensor, val: torch.Tensor, x: torch.Tensor
) -> torch.Tensor:
    """``A @ x`` for ``A`` in CSR parts (``crow`` int64, ``col`` int32, ``val`` in ``x``'s
    dtype, all contiguous on the CPU) and a CPU ``x`` ``(n_cols_of_A, C)``: ``(n_rows, C)``.

    ``C`` in ``WIDTHS`` runs in one call on ``x`` as it is (when contiguous); other ``C`` in
    blocks of 32 columns, the last zero-padded to the next width."""
    rows, cols = crow.numel() - 1, x.shape[1]
    function = getattr(library, _FUNCTIONS[x.dtype])
    if cols in WIDTHS:
        blocks = [x.contiguous()]
    else:
        blocks = list(x.split(WIDTHS[-1], dim=1))
        last = blocks[-1]
        width = next(w for w in WIDTHS if w >= last.shape[1])
        blocks[-1] = torch.nn.functional.pad(last, (0, width - last.shape[1]))
        blocks = [b.contiguous() for b in blocks]
    outs = []
    for block in blocks:
        out = x.new_empty(rows, block.shape[1])
        pointers = (t.data_ptr() for t in (crow, col, val, block, out))
        if function(*pointers, rows, block.shape[1]) != 0:
            raise RuntimeError(f"csr_columns has no instance for {block.shape[1]} columns")
        outs.append(out)
    return outs[0] if cols in WIDTHS else torch.cat(outs, 1)[:, :cols]
