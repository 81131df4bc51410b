"""``comparison.png``: one test slice through every method, with error maps and a zoom.

Columns are the ground truth and each method; rows are the reconstruction (grey scale of the
truth, PSNR and SSIM in the title, the zoom window outlined), the error ``f_method - f_true``
on one symmetric colour scale shared by all methods, and the zoomed window.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch

from learnct.methods.base import per_image_psnr, per_image_ssim

__all__ = ["comparison_figure", "zoom_window"]


def zoom_window(
    image: torch.Tensor, fraction: float = 0.25, max_contrast: float = 0.15
) -> tuple[int, int, int]:
    """``(row, col, size)`` of the square window (``fraction`` of the side) holding the most
    low-contrast edge energy of ``image`` (N, N): ``sum |grad f|`` over the pixel steps
    smaller than ``max_contrast`` of the grey range, so that fine interior detail (where
    methods differ) wins over the skull rim and the object's outline."""
    n = image.shape[-1]
    size = max(4, round(n * fraction))
    if size >= n:
        return 0, 0, n
    img = image.float()
    grad = torch.zeros_like(img)
    grad[:-1, :] += (img[1:, :] - img[:-1, :]).abs()
    grad[:, :-1] += (img[:, 1:] - img[:, :-1]).abs()
    grad[grad > max_contrast * float(img.max() - img.min())] = 0
    # window sums by a summed-area table
    table = torch.nn.functional.pad(grad.cumsum(0).cumsum(1), (1, 0, 1, 0))
    sums = table[size:, size:] - table[:-size, size:] - table[size:, :-size] + table[:-size, :-size]
    best = int(torch.argmax(sums))
    return best // sums.shape[1], best % sums.shape[1], size


def comparison_figure(
    truth: torch.Tensor,
    reconstructions: Sequence[tuple[str, torch.Tensor]],
    path: Path,
    title: str = "",
    zoom: tuple[int, int, int] | None = None,
    window: tuple[float, float] | None = None,
) -> Path:
    """Draw ``truth`` (N, N) and each ``(name, image)`` (N, N) as a 3-row panel into ``path``.

    ``window``: the grey range ``(lo, hi)`` of the full images in image units, e.g.
    ``(0.8, 1.2)`` for a soft-tissue window (HU -200..200) on water-relative density; default
    the truth's min..max. The zoom keeps the grey range of the truth's crop."""
    if window is not None and not float(window[0]) < float(window[1]):
        raise ValueError(f"window must be (lo, hi) with lo < hi, got {window!r}")
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure
    from matplotlib.patches import Rectangle

    truth = truth.detach().float().cpu()
    recons = [(name, img.detach().float().cpu()) for name, img in reconstructions]
    r0, c0, size = zoom or zoom_window(truth)
    lo, hi = float(truth.min()), float(truth.max())
    show_lo, show_hi = (float(window[0]), float(window[1])) if window else (lo, hi)
    errors = [img - truth for _, img in recons]
    # a robust error scale (95th percentile of all methods' |errors|): the few large errors
    # (e.g. FBP's streaks at the rim) saturate instead of hiding everyone's interior errors
    pooled = torch.cat([e.abs().flatten() for e in errors]) if errors else torch.ones(1)
    span = float(torch.quantile(pooled[:: max(1, pooled.numel() // 100_000)], 0.95))
    span = span if span > 0 else max(hi - lo, 1e-6)

    # the zoom uses the grey window of the truth's crop, so low-contrast detail is visible
    truth_crop = truth[r0 : r0 + size, c0 : c0 + size]
    zlo, zhi = float(truth_crop.min()), float(truth_crop.max())
    pad = 0.1 * (zhi - zlo) if zhi > zlo else 0.05 * max(hi - lo, 1e-6)
    zlo, zhi = zlo - pad, zhi + pad

    cols = 1 + len(recons)
    fig = Figure(figsize=(2.6 * cols, 2.6 * 3 + 0.6))
    axes = fig.subplots(3, cols, squeeze=False)
    columns = [("ground truth", truth), *recons]
    for j, (name, img) in enumerate(columns):
        ax = axes[0][j]
        ax.imshow(img.numpy(), cmap="gray", vmin=show_lo, vmax=show_hi)
        ax.add_patch(Rectangle((c0 - 0.5, r0 - 0.5), size, size, fill=False, ec="gold", lw=1))
        if j == 0:
            ax.set_title(name, fontsize=9)
        else:
            p = float(per_image_psnr(img[None, None], truth[None, None]))
            s = float(per_image_ssim(img[None, None], truth[None, None]))
            ax.set_title(f"{name}\n{p:.2f} dB, SSIM {s:.3f}", fontsize=9)
        err_ax = axes[1][j]
        if j == 0:
            err_ax.text(0.5, 0.5, f"error scale\n±{span:.3g}", ha="center", va="center")
        else:
            im = err_ax.imshow(errors[j - 1].numpy(), cmap="RdBu_r", vmin=-span, vmax=span)
            err_ax.set_title("error", fontsize=8)
        crop = img[r0 : r0 + size, c0 : c0 + size]
        axes[2][j].imshow(crop.numpy(), cmap="gray", vmin=zlo, vmax=zhi, interpolation="nearest")
        axes[2][j].set_title(f"zoom, window [{zlo:.3g}, {zhi:.3g}]", fontsize=8)
        for ax in (axes[0][j], err_ax, axes[2][j]):
            ax.set_xticks([])
            ax.set_yticks([])
        if j == 0:
            err_ax.axis("off")
    if recons:
        fig.colorbar(im, ax=list(axes[1][1:]), fraction=0.02, pad=0.01, extend="both")
    if title:
        fig.suptitle(title, fontsize=10)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110, bbox_inches="tight")
    return path
