"""The report's ``comparison.png``: one test slice through every method.

Columns are the ground truth and each method; rows are the reconstruction (grey scale of the
truth or a given window, PSNR and SSIM in the title, the zoom window outlined), the error
``f_method - f_true`` on one symmetric colour scale shared by all methods, and the zoomed
window (drawn by :func:`learnct.evaluation.panel_figure`, a colour bar beside each row).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch

from learnct.evaluation import Slice, panel_figure, save_figure

__all__ = ["comparison_figure"]


def comparison_figure(
    truth: torch.Tensor,
    reconstructions: Sequence[tuple[str, torch.Tensor]],
    path: Path,
    title: str = "",
    zoom: tuple[int, int, int] | None = None,
    window: tuple[float, float] | None = None,
) -> Path:
    """Draw ``truth`` (N, N) and each ``(name, image)`` (N, N) as a 3-row panel into ``path``.

    ``zoom``: ``(row, col, size)`` of the zoom window, default
    :func:`~learnct.evaluation.zoom_window` of the truth. ``window``: the grey range
    ``(lo, hi)`` of the full images in image units, e.g. ``(0.8, 1.2)`` for a soft-tissue
    window (HU -200..200) on water-relative density; default the truth's min..max. The zoom
    uses ``window`` too when given, else the grey range of the truth's crop."""
    figure = panel_figure(
        [Slice(truth, reconstructions)], window=window, zoom=zoom or True, title=title
    )
    return save_figure(figure, path)
