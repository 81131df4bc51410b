"""The ``sparse_build`` section: the sparse backend's matrix build, native (C++, what runs
where a compiler is found) and torch (the fallback), timed in one run.

Per geometry and build: seconds, the stored matrices, the peak memory (the rise of the
process's resident high-water mark, reset before each build through ``/proc/self/clear_refs``;
``-`` where that cannot be done) and the bound ``auto`` budgets (``sparse_build_bytes``).
"""

from __future__ import annotations

import time
from collections.abc import Callable

import torch

from learnct.bench.resident_memory import resident_peak_bytes
from learnct.bench.tables import geometry_label
from learnct.physics import Geometry
from learnct.physics.backends.joseph_csr import joseph_csr_kernel
from learnct.physics.backends.sparse import (
    build_joseph_csr,
    build_joseph_csr_torch,
    csr_bytes,
    sparse_build_bytes,
)

__all__ = ["sparse_build_rows"]


def _row(geometry: Geometry, label: str, build: Callable, bound: int) -> dict:
    def timed_build() -> tuple[tuple[torch.Tensor, torch.Tensor], float]:
        start = time.perf_counter()  # inside: not the garbage collection before the build
        matrices = build(geometry)
        return matrices, time.perf_counter() - start

    (matrices, seconds), peak = resident_peak_bytes(timed_build)
    stored = csr_bytes(matrices)
    mb = 2**20
    return {
        "geometry": geometry_label(geometry),
        "build": label,
        "build s": f"{seconds:.3g}",  # 3 digits: small builds take milliseconds
        "stored MB": f"{stored / mb:.1f}",
        "peak MB": "-" if peak is None else f"{peak / mb:.1f}",
        "peak / stored": "-" if peak is None else f"{peak / stored:.2f}",
        "bound MB (auto)": f"{bound / mb:.1f}",
        "_s": seconds,
    }


def sparse_build_rows(geometries: list[Geometry], torch_build: bool = True) -> list[dict]:
    """Per geometry, the native build's row (where it compiles; compiled before timing) and,
    with ``torch_build``, the torch build's, with the native's speed-up over it."""
    native = joseph_csr_kernel() is not None
    rows = []
    for geometry in geometries:
        results = []
        if native:
            bound = sparse_build_bytes(geometry, native=True)
            results.append(_row(geometry, "native (C++)", build_joseph_csr, bound))
        else:
            note = "no C++ compiler: the backend builds in torch"
            results.append({"geometry": geometry_label(geometry), "build": "native", "note": note})
        if torch_build:
            bound = sparse_build_bytes(geometry, native=False)
            results.append(_row(geometry, "torch", build_joseph_csr_torch, bound))
        torch_s = next((r["_s"] for r in results if r["build"] == "torch"), None)
        for row in results:
            if "_s" in row:
                seconds = row.pop("_s")
                faster = torch_s is not None and row["build"] != "torch"
                row["vs torch"] = f"{torch_s / seconds:.1f}x faster" if faster else "-"
        rows.extend(results)
    return rows
