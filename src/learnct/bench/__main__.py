"""``make bench``: projector, sparse-build, FBP, method, training, multi-run and pipeline timings.

Every timing is the median of several runs after warm-up (never asserted in tests). Results go
to ``experiments/benchmarks/<section>_<device>.md`` with the machine, torch version and date.
``--gpu`` runs every section on CUDA with ``fan_mayo`` (512^2) included, the methods at batch 1
and 8 and the learned ones also in bf16 autocast, and writes ``*_gpu.md``
(``python -m learnct.bench --gpu``; ``sparse_build`` and ``data_pipeline`` are CPU-only). Each
section's file is written when it is measured (``multi_run``'s after every group too). One
module per section: :mod:`~learnct.bench.projectors`, :mod:`~learnct.bench.sparse_build`,
:mod:`~learnct.bench.fbp`, :mod:`~learnct.bench.methods`, :mod:`~learnct.bench.training`
(``training``, ``inference``), :mod:`~learnct.bench.multi_run`, :mod:`~learnct.bench.pipeline`;
the triton tuning table is ``python -m learnct.bench.triton_tuning``. Output is Markdown.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import warnings
from pathlib import Path

import torch

from learnct.bench.fbp import fbp_rows
from learnct.bench.methods import method_rows
from learnct.bench.multi_run import multi_run_rows
from learnct.bench.peers import PEERS
from learnct.bench.pipeline import pipeline_rows
from learnct.bench.projectors import projector_rows
from learnct.bench.sparse_build import sparse_build_rows
from learnct.bench.tables import machine, markdown_table
from learnct.bench.training import GPU_CONFIGS, inference_rows, training_rows
from learnct.physics import (
    FanBeamGeometry,
    available_backends,
    fan_lowdose,
    fan_mayo,
    parallel_ellipses,
)
from learnct.physics.operator import DEFAULT_MATRIX_BUDGET

__all__ = ["main"]

#: The sections, in the order they run.
SECTIONS = (
    "projector",
    "sparse_build",
    "fbp",
    "methods",
    "training",
    "inference",
    "multi_run",
    "data_pipeline",
)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="learnct-bench", description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument(
        "--gpu",
        action="store_true",
        help="CUDA run: every section on the GPU, fan_mayo included, written as *_gpu.md",
    )
    parser.add_argument(
        "--batch",
        type=int,
        default=8,
        help="batch of the projector, fbp and data_pipeline sections",
    )
    parser.add_argument(
        "--reps",
        type=int,
        default=7,
        help="timed runs of the projector and fbp sections (the others set their own)",
    )
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
        "budget; --gpu: 4096, which takes fan_mayo's 2.6 GB matrix: built on the CPU in about "
        "5 s on 2 cores by the C++ build, then moved to the GPU)",
    )
    parser.add_argument(
        "--multi-run-budget-s",
        type=float,
        default=None,
        help="multi_run: start no new (path, setup, K) group after this many seconds (the "
        "rest are listed as not run; default: no limit)",
    )
    parser.add_argument(
        "--sections",
        nargs="+",
        choices=list(SECTIONS),
        help="run only these sections (default: all)",
    )
    return parser


def main(argv: list[str] | None = None) -> None:
    """Run the chosen sections and write each as ``<out>/<section>_<cpu|gpu>.md``."""
    parser = _parser()
    args = parser.parse_args(argv)
    if args.gpu:
        if not torch.cuda.is_available():
            parser.error("--gpu needs CUDA, and torch.cuda.is_available() is False here")
        args.device, args.large = "cuda", True
        if args.sparse_budget_mb is None:
            args.sparse_budget_mb = 4096
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
    # every usable backend (a new one too), the tables' usual order first
    order = ("sparse", "matrix_free", "astra", "torch_radon", "triton")
    backends = sorted(usable, key=lambda b: order.index(b) if b in order else len(order))
    device = args.device
    sparse_budget = DEFAULT_MATRIX_BUDGET
    if args.sparse_budget_mb is not None:
        sparse_budget = int(args.sparse_budget_mb * 2**20)
    header = f"Machine: {machine(device)}\n\n"
    method_presets = ["fan_lowdose"] + (["fan_mayo"] if args.large else [])
    training_cases = [("parallel_ellipses", 1)] if args.quick else [("fan_lowdose", 2)]
    training_configs = None
    if args.large:
        training_cases.append(("fan_mayo", 1))
    if args.gpu:  # issue #21: today's step beside the fast path's, at its batch sizes
        training_cases = [("fan_lowdose", 2), ("parallel_ellipses", 5), ("fan_lowdose", 5)]
        training_cases.append(("fan_mayo", 1))
        training_configs = GPU_CONFIGS
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    tag = "gpu" if device.startswith("cuda") else "cpu"

    def write(name: str, rows: list[dict], final: bool = True) -> None:
        """``<out>/<name>_<tag>.md`` (printed when ``final``; earlier: a partial table)."""
        text = f"# {name} benchmark ({tag})\n\n{header}{markdown_table(rows)}"
        (out / f"{name}_{tag}.md").write_text(text)
        if final:
            print(text)

    # issue #21: K trainings in one process (sequential, CUDA streams, vmap over parameters)
    multi_cases, multi_ks, multi_paths = [("fan_lowdose", 5)], (1, 2, 4), ("fast",)
    if args.quick:
        multi_cases, multi_ks = [("fan_lowdose", 1)], (1, 2)
    if args.gpu:
        multi_cases = [("fan_lowdose", 5), ("parallel_ellipses", 5)]
        # K descending: the vmapped step compiles once per K, the largest K tells most
        multi_ks, multi_paths = (8, 4, 2, 1), ("fast", "fast+compiled")
    builders = {
        "projector": lambda: projector_rows(
            geometries, backends, args.batch, device, reps, sparse_budget, list(PEERS)
        ),
        "sparse_build": lambda: sparse_build_rows(geometries),
        "fbp": lambda: fbp_rows(geometries, args.batch, device, reps),
        "methods": lambda: method_rows(
            method_presets,
            device,
            args.quick,
            (1, 8) if args.gpu else (1,),
            (None, "bf16") if args.gpu else (None,),
        ),
        "training": lambda: training_rows(training_cases, device, args.quick, training_configs),
        "inference": lambda: inference_rows(method_presets, device, args.quick),
        "multi_run": lambda: multi_run_rows(
            multi_cases,
            multi_ks,
            device,
            multi_paths,
            args.quick,
            args.multi_run_budget_s,
            progress=lambda rows: write("multi_run", rows, final=False),
        ),
        "data_pipeline": lambda: pipeline_rows(args.batch, args.quick),
    }
    chosen = args.sections or list(builders)
    cpu_side = [s for s in ("sparse_build", "data_pipeline") if s in chosen]
    if device != "cpu" and cpu_side:  # the C++ build, the loader's worker processes
        chosen = [s for s in chosen if s not in cpu_side]
        print(
            f"not run on {device}: {', '.join(cpu_side)} (they time CPU work; run them with "
            "--device cpu)",
            file=sys.stderr,
        )
    for name in chosen:  # each written when measured
        write(name, builders[name]())


if __name__ == "__main__":
    main()
