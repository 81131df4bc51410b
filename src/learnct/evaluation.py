"""Evaluation: per-image PSNR and SSIM, the loop over a test set, and the one figure renderer.

Metrics (docs/methods.md): per-image PSNR and SSIM with data range ``max(gt) - min(gt)`` of
each ground-truth image, averaged over the images of a test set (LoDoPaB-CT's and dival's
convention). SSIM is torchmetrics' functional SSIM with a 7 x 7 uniform window on images
divided by their data range (SSIM and PSNR are invariant to dividing both images and the data
range by the same number). It is not scikit-image's, which LoDoPaB-CT and dival report:
torchmetrics pads the borders by reflection and averages the SSIM map over the whole image,
with population (co)variances; scikit-image averages only where the window fits (3 pixels in
from each border) with sample (co)variances. Measured on 8 FBP reconstructions of the
``parallel_ellipses`` test sets: 0.472 vs 0.482 (ellipses), 0.405 vs 0.435 (Shepp-Logan), so
an SSIM beside a published one compares to about 0.01-0.03 (PSNR exactly).

The loop: a set-up DataModule's test loaders -> its fixed noisy measurements
(``datamodule.simulate``) -> ``reconstruct(sinogram)`` -> per-image scores
(:func:`simulate_test_sets`, :func:`score`, :func:`evaluate`).

The renderer (:func:`panel_figure`): per test slice a row of images (truth, then each
reconstruction with its PSNR/SSIM), a row of error maps ``f - f_true`` on one symmetric scale,
and optionally a row of zooms on low-contrast detail. It draws a run's ``comparison.png``
(:func:`write_run_figure`), the report's ``comparison.png`` and the validation panels.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torchmetrics.functional.image import structural_similarity_index_measure

from learnct.data.batch import CTBatch

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = [
    "Scores",
    "Slice",
    "evaluate",
    "loaders_by_test_set",
    "panel_figure",
    "per_image_psnr",
    "per_image_ssim",
    "save_figure",
    "score",
    "simulate_test_sets",
    "write_run_figure",
    "zoom_window",
]


# ---- metrics -------------------------------------------------------------------------------------
def _data_range(target: torch.Tensor) -> torch.Tensor:
    """``max - min`` of each image ``(B, ...)`` -> ``(B,)`` (at least a tiny positive value)."""
    flat = target.flatten(1)
    return (flat.amax(1) - flat.amin(1)).clamp_min(torch.finfo(target.dtype).tiny)


def per_image_psnr(preds: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """PSNR in dB of each image ``(B, C, H, W)`` with data range ``r = max(gt) - min(gt)``:
    ``10 log10(r^2 / mean((f - gt)^2))``."""
    mse = (preds - target).pow(2).flatten(1).mean(1)
    return 10 * torch.log10(_data_range(target) ** 2 / mse.clamp_min(1e-20))


def per_image_ssim(preds: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """SSIM of each image ``(B, C, H, W)`` (7 x 7 uniform window, torchmetrics' border
    handling: see the module docstring) with data range ``max(gt) - min(gt)``."""
    scale = _data_range(target).view(-1, *([1] * (target.dim() - 1)))
    value = structural_similarity_index_measure(
        (preds / scale).float(),
        (target / scale).float(),
        gaussian_kernel=False,
        kernel_size=7,
        data_range=1.0,
        reduction="none",
    )
    return value.reshape(-1)


# ---- the loop over test sets ---------------------------------------------------------------------
@dataclass(frozen=True)
class Scores:
    """Per-image PSNR (dB) and SSIM of one test set, ``(n_images,)`` each."""

    psnr: torch.Tensor
    ssim: torch.Tensor

    @property
    def n_images(self) -> int:
        return int(self.psnr.numel())

    @property
    def mean_psnr(self) -> float:
        return float(self.psnr.mean())

    @property
    def mean_ssim(self) -> float:
        return float(self.ssim.mean())


def loaders_by_test_set(datamodule: Any) -> dict[str, Any]:
    """The test loaders of a set-up ``datamodule`` by test set name
    (``datamodule.sources["test"]``, in loader order)."""
    loaders = datamodule.test_dataloader()
    loaders = loaders if isinstance(loaders, list) else [loaders]
    return dict(zip(datamodule.sources["test"], loaders, strict=True))


def simulate_test_sets(
    datamodule: Any, n_images: int | None = None, names: Sequence[str] | None = None
) -> dict[str, list[CTBatch]]:
    """The simulated batches (fixed noisy measurements) of each test set of a set-up
    ``datamodule``, keyed by ``datamodule.sources["test"]`` in loader order: every batch, or
    whole batches until ``n_images`` are covered; ``names`` picks test sets."""
    out: dict[str, list[CTBatch]] = {}
    for name, loader in loaders_by_test_set(datamodule).items():
        if names is not None and name not in names:
            continue
        batches, seen = [], 0
        for raw in loader:
            batches.append(datamodule.simulate(raw))
            seen += batches[-1].batch_size
            if n_images is not None and seen >= n_images:
                break
        out[name] = batches
    return out


def score(
    reconstruct: Callable[[torch.Tensor], torch.Tensor],
    batches: Iterable[CTBatch],
    n_images: int | None = None,
) -> Scores:
    """Per-image PSNR/SSIM of ``reconstruct(batch.sinogram)`` against ``batch.image`` over
    ``batches`` (the first ``n_images`` when given)."""
    psnr, ssim = [], []
    for batch in batches:
        recon = reconstruct(batch.sinogram)
        psnr.append(per_image_psnr(recon, batch.image))
        ssim.append(per_image_ssim(recon, batch.image))
    return Scores(torch.cat(psnr)[:n_images], torch.cat(ssim)[:n_images])


def evaluate(
    reconstruct: Callable[[torch.Tensor], torch.Tensor],
    datamodule: Any,
    n_images: int | None = None,
) -> dict[str, Scores]:
    """:func:`score` of ``reconstruct`` (e.g. ``method.reconstruct``) on every test set of
    ``datamodule`` (its first ``n_images`` when given), keyed by test set."""
    batches = simulate_test_sets(datamodule, n_images)
    return {name: score(reconstruct, b, n_images) for name, b in batches.items()}


# ---- the figure renderer -------------------------------------------------------------------------
@dataclass(frozen=True)
class Slice:
    """One test slice of a figure: the truth ``(N, N)``, named reconstructions ``(N, N)`` and
    a label (e.g. the test set) for the truth's title."""

    truth: torch.Tensor
    reconstructions: Sequence[tuple[str, torch.Tensor]]
    label: str = ""


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


#: what the grey values of a figure's images are (docs/usage.md: attenuation normalised by a
#: reference, e.g. water-relative density for CT: 1.0 = water, 0.8..1.2 = HU -200..200)
IMAGE_UNITS = "attenuation, normalised"


def _error_scale(errors: list[torch.Tensor], grey_span: float) -> float:
    """The 95th percentile of all ``|errors|`` (a robust scale: the few large errors, e.g.
    FBP's streaks at the rim, saturate instead of hiding everyone's interior errors)."""
    pooled = torch.cat([e.abs().flatten() for e in errors]) if errors else torch.ones(1)
    span = float(torch.quantile(pooled[:: max(1, pooled.numel() // 100_000)], 0.95))
    return span if span > 0 else max(grey_span, 1e-6)


def _zoom_range(crop: torch.Tensor, grey_span: float) -> tuple[float, float]:
    """The grey range of the truth's crop, widened by 10% (low-contrast detail visible)."""
    zlo, zhi = float(crop.min()), float(crop.max())
    pad = 0.1 * (zhi - zlo) if zhi > zlo else 0.05 * max(grey_span, 1e-6)
    return zlo - pad, zhi + pad


def _draw_slice(
    fig: Figure,
    rows: Any,
    item: Slice,
    window: tuple[float, float] | None,
    zoom: bool | tuple[int, int, int],
) -> None:
    """Draw ``item`` into ``rows`` (images, errors[, zooms]) x columns, column by column."""
    from matplotlib.patches import Rectangle

    truth = item.truth.detach().float().cpu()
    recons = [(name, img.detach().float().cpu()) for name, img in item.reconstructions]
    lo, hi = float(truth.min()), float(truth.max())
    show_lo, show_hi = (float(window[0]), float(window[1])) if window else (lo, hi)
    errors = [img - truth for _, img in recons]
    span = _error_scale(errors, hi - lo)
    box = tuple(zoom) if isinstance(zoom, (tuple, list)) else zoom_window(truth) if zoom else None
    if box is not None:
        r0, c0, size = box
        crop_range = _zoom_range(truth[r0 : r0 + size, c0 : c0 + size], hi - lo)
        zlo, zhi = (show_lo, show_hi) if window else crop_range
    for j, (name, img) in enumerate([("ground truth", truth), *recons]):
        ax, err_ax = rows[0][j], rows[1][j]
        grey = ax.imshow(img.numpy(), cmap="gray", vmin=show_lo, vmax=show_hi)
        if j == 0:
            ax.set_title(f"{item.label}: {name}" if item.label else name, fontsize=9)
            err_ax.text(0.5, 0.5, f"error scale\n±{span:.3g}", ha="center", va="center")
            err_ax.axis("off")
        else:
            p = float(per_image_psnr(img[None, None], truth[None, None]))
            s = float(per_image_ssim(img[None, None], truth[None, None]))
            ax.set_title(f"{name}\n{p:.2f} dB, SSIM {s:.3f}", fontsize=9)
            im = err_ax.imshow(errors[j - 1].numpy(), cmap="RdBu_r", vmin=-span, vmax=span)
            err_ax.set_title("error", fontsize=8)
        drawn = [ax, err_ax]
        if box is not None:
            ax.add_patch(Rectangle((c0 - 0.5, r0 - 0.5), size, size, fill=False, ec="gold", lw=1))
            crop = img[r0 : r0 + size, c0 : c0 + size]
            zoomed = rows[2][j].imshow(
                crop.numpy(), cmap="gray", vmin=zlo, vmax=zhi, interpolation="nearest"
            )
            rows[2][j].set_title(f"zoom, window [{zlo:.3g}, {zhi:.3g}]", fontsize=8)
            drawn.append(rows[2][j])
        for a in drawn:
            a.set_xticks([])
            a.set_yticks([])
    columns = 1 + len(recons)
    bar = {"fraction": 0.02, "pad": 0.01, "extend": "both"}
    fig.colorbar(grey, ax=list(rows[0][:columns]), label=f"image ({IMAGE_UNITS})", **bar)
    if recons:
        fig.colorbar(im, ax=list(rows[1][:columns]), label="error f - f_true", **bar)
    if box is not None:
        fig.colorbar(zoomed, ax=list(rows[2][:columns]), label="zoom", **bar)
    for row in rows:
        for a in row[1 + len(recons) :]:
            a.axis("off")


def panel_figure(
    slices: Sequence[Slice],
    window: tuple[float, float] | None = None,
    zoom: bool | tuple[int, int, int] = False,
    title: str = "",
) -> Figure:
    """The figure of ``slices``: per slice, rows of images (grey range ``window`` in image
    units, default the truth's min..max; PSNR/SSIM in the titles), of error maps
    ``f - f_true`` on one symmetric colour scale per slice (95th percentile of its |errors|)
    and, with ``zoom``, of a square window (outlined above; ``True``: :func:`zoom_window` of
    the truth, or ``(row, col, size)``) in ``window`` when given, else the grey range of the
    truth's crop. Columns: the truth, then each reconstruction; each row has its colour bar
    (grey values in image units, the error scale, the zoom's grey range)."""
    if window is not None and not float(window[0]) < float(window[1]):
        raise ValueError(f"window must be (lo, hi) with lo < hi, got {window!r}")
    if not slices:
        raise ValueError("panel_figure needs at least one slice")
    from matplotlib.figure import Figure

    per = 3 if zoom else 2
    cols = 1 + max(len(s.reconstructions) for s in slices)
    fig = Figure(figsize=(2.6 * cols, 2.6 * per * len(slices) + 0.6))
    axes = fig.subplots(per * len(slices), cols, squeeze=False)
    for k, item in enumerate(slices):
        _draw_slice(fig, axes[per * k : per * (k + 1)], item, window, zoom)
    if title:
        fig.suptitle(title, fontsize=10)
    return fig


def save_figure(fig: Figure, path: Path, dpi: int = 110) -> Path:
    """Write ``fig`` as a PNG to ``path`` (parent folders created); returns ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=dpi, bbox_inches="tight")
    return path


def write_run_figure(model: Any, datamodule: Any, folder: Path) -> Path:
    """``folder/comparison.png``: the first slice of each test set (one group of rows per
    test set) as ground truth, FBP (``model.fbp``) and the method's reconstruction with
    PSNR/SSIM, and their error maps."""
    slices = []
    for name, loader in loaders_by_test_set(datamodule).items():
        raw = next(iter(loader))
        raw = {k: (v[:1].to(model.device) if torch.is_tensor(v) else v) for k, v in raw.items()}
        batch = datamodule.simulate(raw)
        recon = model.reconstruct(batch.sinogram)
        with torch.no_grad():
            fbp_recon = model.fbp(batch.sinogram)
        images = [("FBP", fbp_recon[0, 0]), (type(model).__name__, recon[0, 0])]
        slices.append(Slice(batch.image[0, 0], images, label=name))
    return save_figure(panel_figure(slices), Path(folder) / "comparison.png")
