"""The ``projector`` section, and the projector timer every benchmark uses (``time_projector``).

Per geometry and backend: forward and adjoint ms (median after warm-up, CUDA synchronised), the
sparse matrix's build and load time, the memory a backend holds, the adjoint error, and the
speed-up over ASTRA's CPU projector where ASTRA is installed. ASTRA is timed twice, labelled:
on one thread (one image after the other, as astra runs) and on all of torch's threads (the
batch's images at once); the ratio column is against the all-threads row. Peer projectors
(:mod:`~learnct.bench.peers`: torchtomo, deepinv) are timed on the same geometry where they
import, labelled with their discretisation, and noted as skipped where not.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

import torch

from learnct.bench.peers import PeerProjector, PeerUnavailable, peer_projector
from learnct.bench.tables import geometry_label
from learnct.bench.timing import median_ms
from learnct.physics import Geometry, RayTransform
from learnct.physics.backends.joseph_csr import joseph_csr_kernel
from learnct.physics.backends.sparse import sparse_matrix_bytes
from learnct.physics.operator import DEFAULT_MATRIX_BUDGET

__all__ = ["adjoint_error", "projector_inputs", "projector_rows", "time_projector"]


def projector_inputs(
    geometry: Geometry, batch: int, device: torch.device | str
) -> tuple[torch.Tensor, torch.Tensor]:
    """Images ``x`` ``(batch, 1, N, N)`` and sinograms ``y`` ``(batch, 1, A, D)``, uniform in
    [0, 1), drawn on the CPU from seed 0 and moved to ``device`` (the same on every device)."""
    gen = torch.Generator().manual_seed(0)
    x = torch.rand(batch, 1, *geometry.image_shape, generator=gen).to(device)
    y = torch.rand(batch, 1, *geometry.sinogram_shape, generator=gen).to(device)
    return x, y


def time_projector(
    op: RayTransform,
    x: torch.Tensor,
    y: torch.Tensor,
    device: torch.device | str,
    reps: int,
    warmup: int = 2,
) -> tuple[float, float]:
    """``(forward ms, adjoint ms)`` of ``op(x)`` and ``op.adjoint(y)`` per call, without
    gradients: each the median of ``reps`` runs after ``warmup`` runs, CUDA synchronised."""
    with torch.no_grad():
        forward = median_ms(lambda: op(x), device, warmup=warmup, reps=reps)
        adjoint = median_ms(lambda: op.adjoint(y), device, warmup=warmup, reps=reps)
    return forward, adjoint


def adjoint_error(op: RayTransform, x: torch.Tensor, y: torch.Tensor) -> float:
    """``|<A x, y> - <x, A^T y>| / (||A x|| ||y||)``, float64 sums of the float32 outputs."""
    with torch.no_grad():
        ax = op(x).double()
        lhs = (ax * y.double()).sum()
        rhs = (x.double() * op.adjoint(y).double()).sum()
        return ((lhs - rhs).abs() / (ax.norm() * y.double().norm())).item()


def _note_row(backend: str, geometry: Geometry, batch: int, note: str) -> dict:
    """A projector row without timings: the backend was skipped or failed."""
    return {"backend": backend, "geometry": geometry_label(geometry), "batch": batch, "note": note}


def _sparse_build_s(op: RayTransform) -> str:
    """Seconds to build the sparse matrices (the bench's cache folder starts empty; the build's
    C++ compiled before timing), and to load them from the cache into a second operator."""
    joseph_csr_kernel()
    start = time.perf_counter()
    op.backend.matrices(torch.device("cpu"), torch.float32)
    build = time.perf_counter() - start
    start = time.perf_counter()
    RayTransform(op.geometry, backend="sparse").backend.matrices(torch.device("cpu"), torch.float32)
    return f"{build:.2f} (load {time.perf_counter() - start:.2f})"


def _peer_row(name: str, geometry: Geometry, batch: int, device: str, reps: int) -> dict:
    """The timed row of peer ``name`` (labelled with its version and discretisation), or a
    note row saying why it was skipped."""
    try:
        peer = peer_projector(name, geometry, device)
    except PeerUnavailable as why:
        return _note_row(name, geometry, batch, f"skipped: {why}")
    peer_reps = reps if geometry.image_size <= 128 else 3
    return _timed_row(peer.label, peer, geometry, batch, device, peer_reps, "-", "-")


def _timed_row(
    name: str,
    op: RayTransform | PeerProjector,
    geometry: Geometry,
    batch: int,
    device: str,
    reps: int,
    build_s: str,
    memory: str,
) -> dict:
    """The timed row of a projector called like a ``RayTransform`` (``_total``: fwd + adj
    ms, for the ASTRA column), or a note row where it fails on this device."""
    x, y = projector_inputs(geometry, batch, device)
    try:
        fwd, adj = time_projector(op, x, y, device, reps)
        err = adjoint_error(op, x, y)
    except Exception as exc:  # a backend that breaks on this device: say so, go on
        first = (str(exc).strip().splitlines() or [""])[0][:160]
        return _note_row(name, geometry, batch, f"failed: {type(exc).__name__}: {first}")
    return {
        "backend": name,
        "geometry": geometry_label(geometry),
        "batch": batch,
        "forward ms": f"{fwd:.1f}",
        "adjoint ms": f"{adj:.1f}",
        "fwd+adj ms per slice": f"{(fwd + adj) / batch:.2f}",
        "build s": build_s,
        "memory MB": memory,
        "adjoint error": f"{err:.1e}",
        "_total": fwd + adj,
    }


#: The ASTRA row the ratio column compares with: ASTRA on all of torch's threads.
ASTRA_ALL = "astra (all threads)"


def _add_astra_ratio(results: list[dict]) -> None:
    """Fill ``vs ASTRA (all threads)`` of the timed rows (``-`` without that row) and drop
    ``_total``."""
    astra_ms = next(
        (r["_total"] for r in results if r["backend"] == ASTRA_ALL and "_total" in r), None
    )
    for row in results:
        if "note" in row:  # skipped or failed: no timings
            continue
        if astra_ms is not None and not row["backend"].startswith("astra"):
            ratio = astra_ms / row["_total"]
            row["vs ASTRA (all threads)"] = (
                f"{ratio:.0f}x faster" if ratio >= 1 else f"{1 / ratio:.1f}x slower"
            )
        else:
            row["vs ASTRA (all threads)"] = "-"
        del row["_total"]


def _operators(name: str, geometry: Geometry) -> list[tuple[str, RayTransform]]:
    """The labelled operators timed for backend ``name``: ASTRA on one thread and on all of
    torch's threads, any other backend once."""
    if name != "astra":
        return [(name, RayTransform(geometry, backend=name))]
    return [
        ("astra (1 thread)", RayTransform(geometry, backend="astra")),
        (ASTRA_ALL, RayTransform(geometry, backend="astra", threads=torch.get_num_threads())),
    ]


def projector_rows(
    geometries: list[Geometry],
    backends: list[str],
    batch: int,
    device: str,
    reps: int,
    sparse_budget_bytes: int = DEFAULT_MATRIX_BUDGET,
    peers: Sequence[str] = (),
) -> list[dict]:
    """One row per (geometry, backend) and per (geometry, peer in ``peers``, keys of
    ``learnct.bench.peers.PEERS``): forward/adjoint ms, build s, memory, adjoint error.

    The adjoint error is :func:`adjoint_error` for random ``x``, ``y``. ``sparse`` is skipped
    (with a row saying so) where its matrix exceeds ``sparse_budget_bytes``: its CPU build
    would dominate the run. A backend without ``device`` among its devices gets no row.
    """
    rows = []
    for geometry in geometries:
        results = []
        for name in backends:
            if name == "sparse" and sparse_matrix_bytes(geometry) > sparse_budget_bytes:
                size = sparse_matrix_bytes(geometry) / 2**30
                note = (
                    f"skipped: {size:.1f} GiB matrix exceeds the bench's "
                    f"{sparse_budget_bytes / 2**30:.1f} GiB (--sparse-budget-mb)"
                )
                results.append(_note_row(name, geometry, batch, note))
                continue
            for label, op in _operators(name, geometry):
                build_s = _sparse_build_s(op) if name == "sparse" else "-"
                if device not in op.backend.devices():
                    continue
                op_reps = reps if name != "matrix_free" or geometry.image_size <= 128 else 3
                memory = op.backend.memory_note()
                row = _timed_row(label, op, geometry, batch, device, op_reps, build_s, memory)
                results.append(row)
        results += [_peer_row(name, geometry, batch, device, reps) for name in peers]
        _add_astra_ratio(results)
        rows.extend(results)
    return rows
