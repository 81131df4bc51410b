"""The ``projector`` section, and the projector timer every benchmark uses (``time_projector``).

Per geometry and backend: forward and adjoint ms (median after warm-up, CUDA synchronised;
fewer repetitions, at least 3, where they would take over 20 s; operators without the input
finiteness check), the time to build and to reload what a backend stores (``stored_bytes``,
``prepare``: the sparse matrix), the memory a backend holds, the adjoint error, and the
speed-up over ASTRA's CPU projector where ASTRA is installed. A backend that takes ``threads``
(ASTRA) is timed twice, labelled: on one thread (one image after the other, as astra runs)
and on all of torch's threads (the batch's images at once); the ratio column is against
ASTRA's all-threads row. Peer projectors
(:mod:`~learnct.bench.peers`: torchtomo, deepinv) are timed on the same geometry where they
import, labelled with their discretisation, and noted as skipped where not.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

import torch

from learnct.bench.peers import PeerProjector, PeerUnavailable, peer_projector
from learnct.bench.tables import geometry_label, milliseconds
from learnct.bench.timing import failure_note, median_ms
from learnct.physics import Geometry, RayTransform
from learnct.physics.backends import BACKENDS
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


def _build_s(op: RayTransform) -> str:
    """Seconds to compute what the backend stores (``prepare``: the sparse matrices, the bench's
    cache folder starting empty), and to load it from the cache into a second operator;
    ``"-"`` for a backend that stores nothing."""
    if type(op.backend).stored_bytes(op.geometry) == 0:
        return "-"
    start = time.perf_counter()
    op.backend.prepare()
    build = time.perf_counter() - start
    start = time.perf_counter()
    RayTransform(op.geometry, backend=op.backend_name).backend.prepare()
    return f"{build:.2f} (load {time.perf_counter() - start:.2f})"


def _reps_within(op, x: torch.Tensor, device: str, reps: int, budget_s: float = 20.0) -> int:
    """``reps``, or fewer (at least 3) where ``reps`` forward calls of ``op`` would take more
    than ``budget_s`` seconds (one call after one warm-up call measures it)."""
    with torch.no_grad():
        seconds = median_ms(lambda: op(x), device, warmup=1, reps=1) / 1e3
    return max(3, min(reps, int(budget_s / max(seconds, 1e-9))))


def _peer_row(name: str, geometry: Geometry, batch: int, device: str, reps: int) -> dict:
    """The timed row of peer ``name`` (labelled with its version and discretisation), or a
    note row saying why it was skipped or failed."""
    try:
        peer = peer_projector(name, geometry, device)
    except PeerUnavailable as why:
        return _note_row(name, geometry, batch, f"skipped: {why}")
    except Exception as err:  # a peer that breaks on this geometry or device: say so, go on
        return _note_row(name, geometry, batch, failure_note(err))
    return _timed_row(peer.label, peer, geometry, batch, device, reps, "-", "-")


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
        reps = _reps_within(op, x, device, reps)
        fwd, adj = time_projector(op, x, y, device, reps)
        err = adjoint_error(op, x, y)
    except Exception as exc:  # a backend that breaks on this device: say so, go on
        return _note_row(name, geometry, batch, failure_note(exc))
    return {
        "backend": name,
        "geometry": geometry_label(geometry),
        "batch": batch,
        "forward ms": milliseconds(fwd),
        "adjoint ms": milliseconds(adj),
        "fwd+adj ms per slice": milliseconds((fwd + adj) / batch),
        "build s": build_s,
        "memory MB": memory,
        "adjoint error": f"{err:.1e}",
        "_total": fwd + adj,
    }


#: The backend of the ratio column, timed on all of torch's threads.
REFERENCE = "astra"
REFERENCE_ROW = f"{REFERENCE} (all threads)"


def _add_reference_ratio(results: list[dict]) -> None:
    """Fill ``vs ASTRA (all threads)`` of the timed rows (``-`` without that row, and in the
    reference backend's own rows) and drop the private ``_total`` and ``_backend``."""
    reference_ms = next(
        (r["_total"] for r in results if r["backend"] == REFERENCE_ROW and "_total" in r), None
    )
    for row in results:
        backend = row.pop("_backend", None)
        if "note" in row:  # skipped or failed: no timings
            continue
        total = row.pop("_total")
        if reference_ms is not None and backend != REFERENCE:
            ratio = reference_ms / total
            row["vs ASTRA (all threads)"] = (
                f"{ratio:.1f}x faster" if ratio >= 1 else f"{1 / ratio:.1f}x slower"
            )
        else:
            row["vs ASTRA (all threads)"] = "-"


def _operators(name: str, geometry: Geometry) -> list[tuple[str, RayTransform]]:
    """The labelled operators timed for backend ``name``: one that takes ``threads`` on one
    thread and on all of torch's, any other once. Without the finiteness check (a sum and a
    host read per call that is not the projector's cost)."""

    def build(**options: int) -> RayTransform:
        return RayTransform(geometry, backend=name, check_finite=False, **options)

    if not BACKENDS[name].takes_threads:
        return [(name, build())]
    return [
        (f"{name} (1 thread)", build(threads=1)),
        (f"{name} (all threads)", build(threads=torch.get_num_threads())),
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

    The adjoint error is :func:`adjoint_error` for random ``x``, ``y``. A backend that stores
    more than ``sparse_budget_bytes`` for a geometry (``stored_bytes``: the sparse matrix) is
    skipped with a row saying so: its CPU build would dominate the run. A backend without
    ``device``'s type among its devices gets no row.
    """
    device_type = torch.device(device).type
    for name in backends:
        BACKENDS[name].compile_native()  # compiled before any build is timed
    rows = []
    for geometry in geometries:
        results = []
        for name in backends:
            if device_type not in BACKENDS[name].devices():
                continue
            stored = BACKENDS[name].stored_bytes(geometry)
            if stored > sparse_budget_bytes:
                note = (
                    f"skipped: {stored / 2**30:.1f} GiB matrix exceeds the bench's "
                    f"{sparse_budget_bytes / 2**30:.1f} GiB (--sparse-budget-mb)"
                )
                results.append(_note_row(name, geometry, batch, note))
                continue
            for label, op in _operators(name, geometry):
                build_s = _build_s(op)
                memory = op.backend.memory_note()
                row = _timed_row(label, op, geometry, batch, device, reps, build_s, memory)
                results.append({**row, "_backend": name})
        results += [_peer_row(name, geometry, batch, device, reps) for name in peers]
        _add_reference_ratio(results)
        rows.extend(results)
    return rows
