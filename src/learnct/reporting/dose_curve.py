"""The dose curve: mean PSNR/SSIM of each method on the same test images simulated at several
doses (photons per detector pixel, Poisson presets). The methods are the trained ones: the
curve shows how each degrades or improves away from the dose it was trained (or tuned) at.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from learnct.evaluation import score, simulate_test_sets
from learnct.reporting.run_methods import RunMethod
from learnct.run.provenance import repository_path

__all__ = ["DOSE_FIELDS", "dose_curve", "plot_dose_curve"]

#: run_dir: the run whose method was measured (as ``results.csv`` names runs)
DOSE_FIELDS = ("method", "photons", "test_set", "n_images", "psnr", "ssim", "run_dir")


def dose_curve(
    methods: Sequence[RunMethod],
    make_datamodule: Callable[[float], Any],
    photons: Sequence[float],
    test_set_index: int = 0,
) -> list[dict[str, Any]]:
    """Rows of :data:`DOSE_FIELDS`: every method at every dose.

    ``make_datamodule(photons)`` returns a set-up DataModule whose test set
    ``test_set_index`` is evaluated; every method sees the same noisy sinograms at a dose.
    """
    rows: list[dict[str, Any]] = []
    for dose in photons:
        datamodule = make_datamodule(float(dose))
        test_set = datamodule.sources["test"][test_set_index]
        batches = simulate_test_sets(datamodule, names=[test_set])[test_set]
        for method in methods:
            scores = score(method.model.reconstruct, batches)
            rows.append(
                {
                    "method": method.name,
                    "photons": float(dose),
                    "test_set": test_set,
                    "n_images": scores.n_images,
                    "psnr": scores.mean_psnr,
                    "ssim": scores.mean_ssim,
                    "run_dir": repository_path(method.folder),
                }
            )
    return rows


def plot_dose_curve(
    rows: Sequence[dict[str, Any]], path: Path, table_photons: float | None = None
) -> Path:
    """PSNR (left) and SSIM (right) against photons per detector pixel (log axis), one line
    per method; ``table_photons``, the dose of the setup's results table (its physics), is
    marked (the learned methods' training dose where they trained at one dose; a run with
    ``data.train_photons_range`` trained over a range)."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    fig = Figure(figsize=(10, 4))
    axes = fig.subplots(1, 2)
    methods = list(dict.fromkeys(r["method"] for r in rows))
    for method in methods:
        mine = sorted((r for r in rows if r["method"] == method), key=lambda r: r["photons"])
        doses = [r["photons"] for r in mine]
        for ax, key in zip(axes, ("psnr", "ssim"), strict=True):
            ax.plot(doses, [r[key] for r in mine], marker="o", label=method)
    for ax, label in zip(axes, ("PSNR (dB)", "SSIM"), strict=True):
        ax.set_xscale("log")
        ax.set_xlabel("photons per detector pixel (I0)")
        ax.set_ylabel(label)
        ax.grid(True, which="both", alpha=0.3)
        if table_photons:
            ax.axvline(table_photons, color="grey", ls="--", lw=1, label="the table's dose")
    axes[0].legend(fontsize=8)
    if rows:
        fig.suptitle(f"dose curve on {rows[0]['test_set']} ({rows[0]['n_images']} images)")
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    return path
