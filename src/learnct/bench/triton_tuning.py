"""GPU timings of the ``triton`` projector against issue #7's target (``benchmark_projector``).

Target: forward + adjoint <= 5 ms per slice at batch 8 on ``fan_mayo`` (512^2, 1000 angles,
1000 detectors), one H100-class GPU. ``python -m learnct.bench.triton_tuning``
times ``triton`` (for each ``block_rays``, in both image layouts, at batch 1 and 8; its
gather adjoint for each ``block_pixels`` and ``angle_chunks``, and the atomic scatter
adjoint for comparison, with the adjoint / forward ratio: issue #24's target is <= 1.2 at
fan_mayo) and ``matrix_free`` on ``fan_mayo``, ``lodopab`` and ``fan_lowdose``, checks each against
``matrix_free`` on the same inputs, and writes
``experiments/benchmarks/projector_triton_gpu.md`` with the device, torch and triton versions.
Timings: :func:`learnct.bench.projectors.time_projector` (median of ``reps`` runs after
three warm-up runs, CUDA synchronised).
"""

from __future__ import annotations

import argparse
import datetime as dt
import importlib.metadata
from pathlib import Path

import torch

from learnct.bench.projectors import projector_inputs, time_projector
from learnct.bench.tables import markdown_table
from learnct.physics.geometry import Geometry
from learnct.physics.operator import RayTransform
from learnct.physics.presets import PRESETS

__all__ = ["benchmark_projector", "main"]

#: Issue #7: forward + adjoint per slice at batch 8 on fan_mayo, ms.
TARGET_MS_PER_SLICE = 5.0


def benchmark_projector(
    geometry: Geometry,
    backend: str = "triton",
    batch: int = 8,
    device: str = "cuda",
    reps: int = 20,
    reference: RayTransform | None = None,
    **options,
) -> dict:
    """Forward and adjoint ms per batch, their sum per slice, peak extra GPU memory (MB; "-"
    off CUDA), and the relative L2 difference of both from ``reference`` (same inputs, moved
    to ``device``) when given."""
    op = RayTransform(geometry, backend=backend, check_finite=False, **options)
    x, y = projector_inputs(geometry, batch, device)
    fwd, adj = time_projector(op, x, y, device, reps, warmup=3)
    with torch.no_grad():
        cuda = torch.device(device).type == "cuda"
        if cuda:
            torch.cuda.reset_peak_memory_stats(device)
            base = torch.cuda.memory_allocated(device)
        ax, aty = op(x), op.adjoint(y)
        peak_mb = (torch.cuda.max_memory_allocated(device) - base) / 2**20 if cuda else None
        row = {
            "backend": backend + "".join(f" {k}={v}" for k, v in options.items()),
            "batch": batch,
            "forward ms": round(fwd, 2),
            "adjoint ms": round(adj, 2),
            "fwd+adj ms/slice": round((fwd + adj) / batch, 3),
            "adj/fwd": round(adj / fwd, 2),
            "peak extra MB": "-" if peak_mb is None else round(peak_mb),
        }
        if reference is not None:
            ref_ax, ref_aty = reference(x), reference.adjoint(y)
            row["rel. diff forward"] = f"{((ax - ref_ax).norm() / ref_ax.norm()).item():.1e}"
            row["rel. diff adjoint"] = f"{((aty - ref_aty).norm() / ref_aty.norm()).item():.1e}"
    return row


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 8])
    parser.add_argument("--reps", type=int, default=20)
    parser.add_argument("--presets", nargs="+", default=["fan_mayo", "lodopab", "fan_lowdose"])
    parser.add_argument("--block-rays", type=int, nargs="+", default=[32, 64, 128, 256])
    parser.add_argument(
        "--block-pixels",
        type=int,
        nargs="+",
        default=[32, 64, 128, 256],
        help="pixels per program of the gather adjoint (forward in the default layout)",
    )
    parser.add_argument(
        "--angle-chunks",
        type=int,
        nargs="*",
        default=[],
        help="the gather adjoint with its angles split into this many chunks (beside the "
        "block_pixels rows, which take the default chunks)",
    )
    parser.add_argument(
        "--layouts",
        nargs="+",
        choices=["transposed", "single"],
        default=["transposed", "single"],
        help="the image plus its transpose, or the image alone (the backend's default picks "
        "per call: transposed for images >= 256^2 with <= 8 columns)",
    )
    parser.add_argument("--out", default="experiments/benchmarks")
    args = parser.parse_args(argv)
    if not torch.cuda.is_available():
        raise SystemExit("needs a CUDA GPU")
    device = "cuda"
    rows = []
    for preset in args.presets:
        geometry = PRESETS[preset]().geometry
        reference = RayTransform(geometry, backend="matrix_free", check_finite=False)
        for batch in args.batches:
            start = len(rows)
            for layout in args.layouts:
                for block in args.block_rays:
                    row = benchmark_projector(
                        geometry,
                        "triton",
                        batch,
                        device,
                        args.reps,
                        reference,
                        block_rays=block,
                        transposed=layout == "transposed",
                    )
                    rows.append({"setup": preset, **row})
            adjoints = [{"block_pixels": b} for b in args.block_pixels]
            adjoints += [{"angle_chunks": c} for c in args.angle_chunks]
            for options in [*adjoints, {"atomic_adjoint": True}]:
                row = benchmark_projector(
                    geometry, "triton", batch, device, args.reps, reference, **options
                )
                rows.append({"setup": preset, **row})
            row = benchmark_projector(geometry, "matrix_free", batch, device, min(args.reps, 3))
            rows.append({"setup": preset, **row})
            print(markdown_table(rows[start:]), flush=True)
    triton_version = importlib.metadata.version("triton")
    header = (
        f"Device: {torch.cuda.get_device_name()}; torch {torch.__version__}, triton "
        f"{triton_version}; {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC\n\n"
        f"Target (issue #7): fwd+adj <= {TARGET_MS_PER_SLICE} ms/slice at batch 8 on fan_mayo.\n"
        "transposed=True: the kernels read the image and its transpose (coalesced rows for "
        "every ray); False: the image alone. The adjoint is the pixel-driven gather (no "
        "atomics) unless atomic_adjoint=True.\n"
        "Median of the runs after warm-up, CUDA synchronised; rel. diff against matrix_free "
        "on the same device and inputs.\n\n"
    )
    text = f"# triton projector benchmark (gpu)\n\n{header}{markdown_table(rows)}"
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "projector_triton_gpu.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
