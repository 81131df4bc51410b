"""``comparison.png`` of a run: the first slice of each test set through FBP and the method."""

from __future__ import annotations

from pathlib import Path
from typing import Any

__all__ = ["write_comparison_figure"]


def write_comparison_figure(model: Any, datamodule: Any, folder: Path) -> Path:
    """``comparison.png``: the first slice of each test set as ground truth, FBP, the method's
    reconstruction and its error, with PSNR/SSIM in the titles."""
    import matplotlib
    import torch

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from learnct.methods.base import per_image_psnr, per_image_ssim

    loaders = datamodule.test_dataloader()
    loaders = loaders if isinstance(loaders, list) else [loaders]
    device = model.device
    fig, axes = plt.subplots(len(loaders), 4, figsize=(13, 3.4 * len(loaders)), squeeze=False)
    for row, (loader, name) in enumerate(zip(loaders, datamodule.sources["test"], strict=True)):
        raw = next(iter(loader))
        raw = {k: (v[:1].to(device) if torch.is_tensor(v) else v) for k, v in raw.items()}
        batch = datamodule.simulate(raw)
        gt = batch.image
        recon = model.reconstruct(batch.sinogram)
        with torch.no_grad():
            fbp_recon = model.fbp(batch.sinogram)
        lo, hi = float(gt.min()), float(gt.max())
        panels = [("ground truth", gt), ("FBP", fbp_recon), (type(model).__name__, recon)]
        for col, (title, img) in enumerate(panels):
            ax = axes[row, col]
            ax.imshow(img[0, 0].float().cpu(), cmap="gray", vmin=lo, vmax=hi)
            if col > 0:
                p, s = per_image_psnr(img, gt).item(), per_image_ssim(img, gt).item()
                title = f"{title}\n{p:.2f} dB, SSIM {s:.3f}"
            ax.set_title(f"{name}: {title}" if col == 0 else title, fontsize=9)
        err = (recon - gt)[0, 0].float().cpu()
        span = max(float(err.abs().max()), 1e-6)
        axes[row, 3].imshow(err, cmap="RdBu_r", vmin=-span, vmax=span)
        axes[row, 3].set_title("error (method - truth)", fontsize=9)
        for ax in axes[row]:
            ax.axis("off")
    fig.tight_layout()
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "comparison.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
