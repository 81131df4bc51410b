"""``make bench``: projector, FBP, method, training and data-pipeline timings, as Markdown.

Every timing is the median of several runs after warm-up (never asserted in tests). Results go
to ``experiments/benchmarks/<section>_<device>.md`` with the machine, torch version and date.
``--gpu`` runs every section on CUDA with ``fan_mayo`` (512^2) included, the methods at batch 1
and 8 and the learned ones also in bf16 autocast, and writes ``*_gpu.md``
(``python -m learnct.bench --gpu``).
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import tempfile
import time
import warnings
from pathlib import Path

import torch

from learnct.bench.pipeline import benchmark_pipeline
from learnct.bench.methods import benchmark_methods
from learnct.bench.training import FLAG_CONFIGS, benchmark_training
from learnct.physics import (
    FanBeamGeometry,
    Geometry,
    RayTransform,
    available_backends,
    fan_lowdose,
    fan_mayo,
    fbp,
    parallel_ellipses,
)
from learnct.physics.backends.sparse import sparse_matrix_bytes
from learnct.physics.operator import DEFAULT_MATRIX_BUDGET
from learnct.bench.timing import median_ms

__all__ = ["main"]


def _label(geometry: Geometry) -> str:
    kind = "fan" if isinstance(geometry, FanBeamGeometry) else "parallel"
    return f"{kind} {geometry.image_size}^2, {geometry.n_angles} x {geometry.n_detectors}"


def _matrix_mb(op: RayTransform) -> str:
    backend = op.backend
    if op.backend_name == "sparse":
        total = 0
        for m in backend.matrices(torch.device("cpu"), torch.float32):
            total += sum(
                t.numel() * t.element_size()
                for t in (m.crow_indices(), m.col_indices(), m.values())
            )
        return f"{total / 2**20:.0f} (stored)"
    if op.backend_name == "matrix_free":
        return f"<= {backend.chunk_bytes / 2**20:.0f} (per chunk)"
    return "-"


def _note_row(backend: str, geometry: Geometry, batch: int, note: str) -> dict:
    """A projector row without timings: the backend was skipped or failed."""
    return {"backend": backend, "geometry": _label(geometry), "batch": batch, "note": note}


def projector_rows(
    geometries: list[Geometry],
    backends: list[str],
    batch: int,
    device: str,
    reps: int,
    sparse_budget_bytes: int = DEFAULT_MATRIX_BUDGET,
) -> list[dict]:
    """One row per (geometry, backend): forward/adjoint ms, build s, memory, adjoint error.

    The adjoint error is ``|<A x, y> - <x, A^T y>| / (||A x|| ||y||)`` (float64 sums of the
    float32 outputs) for random ``x``, ``y``. ``sparse`` is skipped (with a row saying so) where
    its matrix exceeds ``sparse_budget_bytes``: its CPU build would dominate the run.
    """
    rows = []
    for geometry in geometries:
        astra_ms = None
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
            op = RayTransform(geometry, backend=name)
            if name == "sparse":  # the bench's cache folder starts empty: this builds
                start = time.perf_counter()
                op.backend.matrices(torch.device("cpu"), torch.float32)
                build = time.perf_counter() - start
                start = time.perf_counter()
                RayTransform(geometry, backend=name).backend.matrices(
                    torch.device("cpu"), torch.float32
                )
                build_s = f"{build:.2f} (load {time.perf_counter() - start:.2f})"
            else:
                build_s = "-"
            if device not in op.backend.devices():
                continue
            gen = torch.Generator().manual_seed(0)
            x = torch.rand(batch, 1, *geometry.image_shape, generator=gen).to(device)
            y = torch.rand(batch, 1, *geometry.sinogram_shape, generator=gen).to(device)
            op_reps = reps if name != "matrix_free" or geometry.image_size <= 128 else 3
            try:
                with torch.no_grad():
                    fwd = median_ms(lambda op=op, x=x: op(x), device, reps=op_reps)
                    adj = median_ms(lambda op=op, y=y: op.adjoint(y), device, reps=op_reps)
                    ax = op(x).double()
                    lhs = (ax * y.double()).sum()
                    rhs = (x.double() * op.adjoint(y).double()).sum()
                    err = ((lhs - rhs).abs() / (ax.norm() * y.double().norm())).item()
            except Exception as exc:  # a backend that breaks on this device: say so, go on
                first = (str(exc).strip().splitlines() or [""])[0][:160]
                note = f"failed: {type(exc).__name__}: {first}"
                results.append(_note_row(name, geometry, batch, note))
                continue
            if name == "astra":
                astra_ms = fwd + adj
            results.append(
                {
                    "backend": name,
                    "geometry": _label(geometry),
                    "batch": batch,
                    "forward ms": f"{fwd:.1f}",
                    "adjoint ms": f"{adj:.1f}",
                    "fwd+adj ms per slice": f"{(fwd + adj) / batch:.2f}",
                    "build s": build_s,
                    "memory MB": _matrix_mb(op),
                    "adjoint error": f"{err:.1e}",
                    "_total": fwd + adj,
                }
            )
        for row in results:
            if "note" in row:  # skipped or failed: no timings
                continue
            if astra_ms is not None and row["backend"] != "astra":
                ratio = astra_ms / row["_total"]
                row["vs ASTRA CPU"] = (
                    f"{ratio:.0f}x faster" if ratio >= 1 else f"{1 / ratio:.1f}x slower"
                )
            else:
                row["vs ASTRA CPU"] = "-"
            del row["_total"]
        rows.extend(results)
    return rows


def fbp_rows(geometries: list[Geometry], batch: int, device: str, reps: int) -> list[dict]:
    rows = []
    for geometry in geometries:
        sino = torch.rand(batch, 1, *geometry.sinogram_shape).to(device)
        ms = median_ms(lambda s=sino, g=geometry: fbp(s, g), device, reps=reps)
        rows.append(
            {
                "geometry": _label(geometry),
                "batch": batch,
                "fbp ms per batch": f"{ms:.1f}",
                "fbp ms per slice": f"{ms / batch:.1f}",
            }
        )
    return rows


#: Adler and Öktem's talk, human data (512^2, 1000 angles), ms per slice on their GPU.
PUBLISHED_MS = {"fbp": 423, "tv": 64371, "fbpunet": 463, "lpd": 620}


def method_rows(
    presets: list[str],
    device: str,
    quick: bool,
    batches: tuple[int, ...] = (1,),
    flag_sets: tuple[str | None, ...] = (None,),
) -> list[dict]:
    """Reconstruction ms per slice and parameters of every method, per batch size, in float32
    and, for the learned methods, with each autocast setting in ``flag_sets`` (``"bf16"``)."""
    results = []
    for autocast in flag_sets:
        for batch in batches:
            for r in benchmark_methods(
                presets,
                batch=batch,
                device=device,
                reps=2 if quick else 3,
                flags={"autocast": autocast} if autocast else None,
            ):
                results.append({**r, "flags": autocast or "-"})
    rows = []
    for r in results:
        ms = r["ms_per_slice"]
        published = PUBLISHED_MS.get(r["method"]) if r["geometry"] == "fan_mayo" else None
        rows.append(
            {
                "method": r["method"],
                "setup": r["geometry"],
                "batch": r["batch"],
                "flags": r["flags"],
                "device": r["device"],
                "ms per slice": "-" if ms is None else f"{ms:.1f}",
                "talk (GPU, 512^2)": "-" if published is None else published,
                "parameters": r["parameters"],
                "note": r["note"],
            }
        )
    return rows


#: Issue #7's target for LPD training at 512^2, batch 1, on one GPU.
TRAINING_TARGET_MB = 16 * 1024


def training_rows(cases: list[tuple[str, int]], device: str, quick: bool) -> list[dict]:
    """LPD training step time and peak memory per (preset, batch) with and without each
    execution flag (see :mod:`learnct.bench.training`)."""
    configs = ["baseline", "bf16"] if quick else list(FLAG_CONFIGS)
    reps = 1 if quick else 5
    results = benchmark_training(
        "lpd", cases, configs, device, warmup=1 if quick else 2, reps=reps, memory_reps=1
    )
    baseline = {(r["setup"], r["batch"]): r for r in results if r["config"] == "baseline"}
    rows = []
    for r in results:
        base = baseline.get((r["setup"], r["batch"]))
        ms, step_mb, total_mb = r["ms_per_step"], r["step_peak_mb"], r["total_peak_mb"]

        def ratio(value, key, base=base):
            if value is None or base is None or not base[key]:
                return "-"
            return f"{value / base[key]:.2f}"

        target = "-"
        if r["setup"] == "fan_mayo" and r["batch"] == 1 and total_mb is not None:
            fits = "fits" if total_mb <= TRAINING_TARGET_MB else "exceeds"
            target = f"<= 16 GiB: {fits}"
        rows.append(
            {
                "method": r["method"],
                "setup": r["setup"],
                "batch": r["batch"],
                "flags": r["config"],
                "device": r["device"],
                "ms per step": "-" if ms is None else f"{ms:.0f}",
                "time / baseline": ratio(ms, "ms_per_step"),
                "step peak MB": "-" if step_mb is None else f"{step_mb:.0f}",
                "memory / baseline": ratio(step_mb, "step_peak_mb"),
                "total peak MB": "-" if total_mb is None else f"{total_mb:.0f}",
                "issue #7 target": target,
                "loss": "-" if r["loss"] is None else f"{r['loss']:.3g}",
                "note": r["note"],
            }
        )
    return rows


def pipeline_rows(batch: int, quick: bool) -> list[dict]:
    """Simulated batches per second at ``fan_lowdose`` (images made, projected, noised)."""
    rows = []
    for workers in (0,) if quick else (0, 2):
        r = benchmark_pipeline(
            "fan_lowdose", batch_size=batch, n_batches=10 if quick else 30, num_workers=workers
        )
        rows.append(
            {
                "preset": r["preset"],
                "batch": batch,
                "workers": workers,
                "batches/s": f"{r['batches_per_s']:.1f}",
                "images/s": f"{r['images_per_s']:.0f}",
                "rasterise images/s": f"{r['rasterize_images_per_s']:.0f}",
                "project ms/batch": f"{r['project_ms_per_batch']:.1f}",
                "noise ms/batch": f"{r['noise_ms_per_batch']:.1f}",
            }
        )
    return rows


def markdown_table(rows: list[dict]) -> str:
    if not rows:
        return "(no rows)\n"
    keys = list(dict.fromkeys(k for row in rows for k in row))
    if "note" in keys:  # free text last
        keys = [k for k in keys if k != "note"] + ["note"]
    lines = ["| " + " | ".join(keys) + " |", "|" + "---|" * len(keys)]

    def cell(row: dict, key: str) -> str:  # a "|" in free text would split the cell
        return str(row.get(key, "")).replace("|", "\\|")

    lines += ["| " + " | ".join(cell(row, k) for k in keys) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def _machine(device: str) -> str:
    if device.startswith("cuda"):
        name = torch.cuda.get_device_name()
    else:
        name = f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores"
    return (
        f"{name}; torch {torch.__version__}, {torch.get_num_threads()} threads; "
        f"{dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC"
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument(
        "--gpu",
        action="store_true",
        help="CUDA run: every section on the GPU, fan_mayo included, written as *_gpu.md",
    )
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--reps", type=int, default=7)
    parser.add_argument("--quick", action="store_true", help="small geometries only, fewer reps")
    parser.add_argument(
        "--large", action="store_true", help="add fan_mayo (512^2, 1000 angles): slow on a CPU"
    )
    parser.add_argument("--out", default="experiments/benchmarks", help="folder for the .md files")
    parser.add_argument(
        "--sparse-budget-mb",
        type=float,
        default=None,
        help="skip the sparse backend where its matrix is larger (default: auto's matrix "
        "budget; --gpu: 1024, since the matrix is built on the CPU)",
    )
    parser.add_argument(
        "--sections",
        nargs="+",
        choices=["projector", "fbp", "methods", "training", "data_pipeline"],
        help="run only these sections (default: all)",
    )
    args = parser.parse_args(argv)
    if args.gpu:
        if not torch.cuda.is_available():
            parser.error("--gpu needs CUDA, and torch.cuda.is_available() is False here")
        args.device, args.large = "cuda", True
        if args.sparse_budget_mb is None:
            args.sparse_budget_mb = 1024
    warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta")
    # an empty operator cache, so that build times are builds (and the user's cache is untouched)
    os.environ["LEARNCT_CACHE_DIR"] = tempfile.mkdtemp(prefix="learnct-bench-")

    geometries = [fan_lowdose().geometry, FanBeamGeometry(128, 360, 256)]
    if not args.quick:
        geometries += [FanBeamGeometry(256, 360, 512), parallel_ellipses().geometry]
    if args.large:
        geometries.append(fan_mayo().geometry)
    reps = 3 if args.quick else args.reps
    usable = [name for name, reason in available_backends().items() if reason is None]
    backends = [
        b for b in ("sparse", "matrix_free", "astra", "torch_radon", "triton") if b in usable
    ]
    device = args.device
    sparse_budget = DEFAULT_MATRIX_BUDGET
    if args.sparse_budget_mb is not None:
        sparse_budget = int(args.sparse_budget_mb * 2**20)
    header = f"Machine: {_machine(device)}\n\n"
    method_presets = ["fan_lowdose"] + (["fan_mayo"] if args.large else [])
    training_cases = [("parallel_ellipses", 1)] if args.quick else [("fan_lowdose", 2)]
    if args.large:
        training_cases.append(("fan_mayo", 1))
    builders = {
        "projector": lambda: projector_rows(
            geometries, backends, args.batch, device, reps, sparse_budget
        ),
        "fbp": lambda: fbp_rows(geometries, args.batch, device, reps),
        "methods": lambda: method_rows(
            method_presets,
            device,
            args.quick,
            (1, 8) if args.gpu else (1,),
            (None, "bf16") if args.gpu else (None,),
        ),
        "training": lambda: training_rows(training_cases, device, args.quick),
        "data_pipeline": lambda: pipeline_rows(args.batch, args.quick),
    }
    chosen = args.sections or list(builders)
    if device != "cpu" and "data_pipeline" in chosen:  # the pipeline's workers are CPU-side
        chosen.remove("data_pipeline")
    sections = {name: markdown_table(builders[name]()) for name in chosen}
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    tag = "gpu" if device.startswith("cuda") else "cpu"
    for name, table in sections.items():
        text = f"# {name} benchmark ({tag})\n\n{header}{table}"
        (out / f"{name}_{tag}.md").write_text(text)
        print(text)


if __name__ == "__main__":
    main()
