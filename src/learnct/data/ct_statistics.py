"""Statistics of a CT slice that a CT-like phantom must share with real ones.

For an image in ``mu / mu_water`` (``HU = 1000 (x - 1)``) on a grid of ``pixel_size`` mm:

- ``body``: the largest connected region above HU -500 with its holes filled (lungs and
  bowel air inside count as body); ``truncated`` when it touches the image border;
- ``width_mm``: the body's extent left to right;
- ``fraction_low`` / ``fat`` / ``soft`` / ``bone``: the fractions of body pixels with HU
  below -200 (lung, air), in [-200, -30), [-30, 200) and from 200 up;
- ``spectrum_slope``: the slope of ``log P(k)`` against ``log k`` (least squares) of the
  radially averaged power spectrum of the image, for ``k`` from 0.02 to 0.2 cycles/mm.
"""

from __future__ import annotations

import numpy as np
import torch
from scipy import ndimage

__all__ = ["HU_BINS", "slice_statistics"]

#: HU class edges of the body fractions.
HU_BINS = {"low": (-np.inf, -200), "fat": (-200, -30), "soft": (-30, 200), "bone": (200, np.inf)}
_BAND = (0.02, 0.2)  # cycles/mm


def _body(hu: np.ndarray) -> np.ndarray:
    labels, n = ndimage.label(hu > -500)
    if n == 0:
        return np.zeros_like(hu, dtype=bool)
    sizes = ndimage.sum(np.ones_like(hu), labels, index=range(1, n + 1))
    return ndimage.binary_fill_holes(labels == 1 + int(np.argmax(sizes)))


def _spectrum_slope(image: np.ndarray, pixel_size: float) -> float:
    n = image.shape[0]
    power = np.abs(np.fft.fftshift(np.fft.fft2(image - image.mean()))) ** 2
    k = np.fft.fftshift(np.fft.fftfreq(n, d=pixel_size))
    radius = np.hypot(k[:, None], k[None, :])
    step = 1 / (n * pixel_size)
    ring = np.round(radius / step).astype(int)
    mean = np.bincount(ring.ravel(), power.ravel()) / np.maximum(np.bincount(ring.ravel()), 1)
    freqs = np.arange(mean.size) * step
    band = (freqs >= _BAND[0]) & (freqs <= _BAND[1]) & (mean > 0)
    return float(np.polyfit(np.log(freqs[band]), np.log(mean[band]), 1)[0])


def slice_statistics(image: torch.Tensor | np.ndarray, pixel_size: float) -> dict[str, float]:
    """The statistics of the module docstring for one square slice in ``mu / mu_water``."""
    x = np.asarray(image, dtype=np.float64).squeeze()
    if x.ndim != 2 or x.shape[0] != x.shape[1]:
        raise ValueError(f"expected one square slice, got shape {x.shape}")
    hu = 1000 * (x - 1)
    body = _body(hu)
    stats: dict[str, float] = {}
    cols = np.flatnonzero(body.any(axis=0))
    stats["width_mm"] = float((cols[-1] - cols[0] + 1) * pixel_size) if cols.size else 0.0
    stats["truncated"] = float(
        body[0].any() or body[-1].any() or body[:, 0].any() or body[:, -1].any()
    )
    inside = hu[body]
    for name, (low, high) in HU_BINS.items():
        stats[f"fraction_{name}"] = float(((inside >= low) & (inside < high)).mean())
    stats["spectrum_slope"] = _spectrum_slope(x, pixel_size)
    return stats
