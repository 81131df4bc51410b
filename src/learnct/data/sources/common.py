"""What every image source shares: split names, seeds, argument checks and the resize policy."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import Dataset

from learnct.data.errors import DataError

__all__ = [
    "DEFAULT_SIZES",
    "SPLITS",
    "check_finite",
    "check_split",
    "derive_seed",
    "extent_beyond_field_mm",
    "first",
    "fit_to_size",
    "resample_to_pixels",
]

SPLITS = ("train", "val", "test")
#: Samples per split of the random phantom sources (``ellipses``, ``ctlike``) when no size is
#: given (the training split: samples per epoch of the infinite stream).
DEFAULT_SIZES = {"train": 1024, "val": 32, "test": 128}


def derive_seed(*parts: object) -> int:
    """A 63-bit seed determined by ``parts`` (ints and strings), stable across processes and
    Python versions (BLAKE2b of their ``repr``; unlike ``hash()``, not salted per process)."""
    digest = hashlib.blake2b(repr(parts).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") & ((1 << 63) - 1)


def check_split(split: str) -> str:
    """``split`` if it is one of :data:`SPLITS`, else a ``ValueError``."""
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}: choose one of {SPLITS}")
    return split


def check_finite(array: np.ndarray, path: Path, where: str = "") -> None:
    """A :class:`DataError` naming ``path`` (and ``where`` in it) if ``array`` has NaN or inf."""
    if not np.isfinite(array).all():
        raise DataError.for_path(path, f"contains NaN or infinite values{where}")


def fit_to_size(image: torch.Tensor, size: int) -> torch.Tensor:
    """The documented resize policy: ``(H, W)`` or ``(1, H, W)`` -> ``(1, size, size)`` float32.

    1. Non-square: centre-crop to ``min(H, W)`` (the larger side loses
       ``floor(excess / 2)`` pixels at the top/left and the rest at the bottom/right).
    2. Resample the square to ``size x size`` with
       ``F.interpolate(mode="bilinear", align_corners=False, antialias=True)``: bilinear when
       upsampling; when downsampling a triangle filter widened by the scale factor, so every
       input pixel contributes (no aliasing) and constants and linear ramps are preserved.
       (``mode="area"`` averages uneven windows for non-integer factors such as 362 -> 128.)
    Square images already of the right size are returned unchanged.
    """
    if image.dim() == 3 and image.shape[0] == 1:
        image = image[0]
    if image.dim() != 2:
        raise ValueError(f"expected a 2D slice, got shape {tuple(image.shape)}")
    h, w = image.shape
    side = min(h, w)
    top, left = (h - side) // 2, (w - side) // 2
    image = image[top : top + side, left : left + side].to(torch.float32)
    if side != size:
        image = F.interpolate(
            image[None, None],
            size=(size, size),
            mode="bilinear",
            align_corners=False,
            antialias=True,
        )[0, 0]
    return image[None].contiguous()


def extent_beyond_field_mm(
    shape: tuple[int, int], spacing: tuple[float, float], field_mm: float
) -> float:
    """How far (mm) the longer side of a slice of ``shape`` (rows, columns) with pixels of
    ``spacing`` (row, column) mm reaches beyond a square field ``field_mm`` across: what
    :func:`resample_to_pixels` crops away (negative: it fits)."""
    return max(shape[0] * spacing[0], shape[1] * spacing[1]) - field_mm


def resample_to_pixels(
    image: torch.Tensor,
    spacing: tuple[float, float],
    pixel_size: float,
    size: int,
    fill: float = 0.0,
) -> tuple[torch.Tensor, str]:
    """A slice with pixels of ``spacing`` = (row, column) mm -> ``(1, size, size)`` float32
    with pixels of ``pixel_size`` mm, at its physical size, centred; and what was done.

    1. Resample by the factors ``spacing / pixel_size`` (``F.interpolate`` with those exact
       scale factors, bilinear, antialiased when shrinking, as :func:`fit_to_size`): an
       object ``d`` mm across stays ``d / pixel_size`` pixels across.
    2. Centre-pad with ``fill`` (0: air) or centre-crop each side to ``size`` (the
       geometry's field of view ``size * pixel_size`` mm); an odd excess pads the extra pixel
       at the bottom/right but crops it at the top/left (:func:`fit_to_size` crops it at the
       bottom/right; kept so, as the committed real-CT results were measured so).
    """
    if image.dim() == 3 and image.shape[0] == 1:
        image = image[0]
    if image.dim() != 2:
        raise ValueError(f"expected a 2D slice, got shape {tuple(image.shape)}")
    h, w = image.shape
    scale = (spacing[0] / pixel_size, spacing[1] / pixel_size)
    out = image.to(torch.float32)
    if scale != (1.0, 1.0):
        out = F.interpolate(
            out[None, None],
            scale_factor=scale,
            mode="bilinear",
            align_corners=False,
            antialias=True,
            recompute_scale_factor=False,
        )[0, 0]
    rh, rw = out.shape
    pads = []
    for have in (rw, rh):  # F.pad order: last dimension first
        excess = size - have
        pads += [excess // 2, excess - excess // 2]
    out = F.pad(out, pads, value=fill)  # negative padding crops
    field = size * pixel_size
    action = []
    if min(rh, rw) < size:
        action.append("padded with air")
    if max(rh, rw) > size:
        action.append(f"cropped ({extent_beyond_field_mm((h, w), spacing, field):.0f} mm lost)")
    info = (
        f"{h}x{w} px of {spacing[0]:.3g}x{spacing[1]:.3g} mm ({h * spacing[0]:.0f}x"
        f"{w * spacing[1]:.0f} mm) -> {rh}x{rw} px of {pixel_size:g} mm, "
        f"{' and '.join(action) or 'fits'} to the {size}x{size} px ({field:.0f} mm) field"
    )
    return out[None].contiguous(), info


class _Head(Dataset):
    """The first ``length`` samples of a finite dataset."""

    def __init__(self, dataset: Dataset, length: int) -> None:
        self.dataset, self.length = dataset, length

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: int) -> dict[str, Any]:
        if not 0 <= index < self.length:
            raise IndexError(f"index {index} out of range for {self.length} samples")
        return self.dataset[index]


def first(dataset: Dataset, size: int | None, split: str, where: str) -> Dataset:
    """The first ``size`` samples of the finite ``dataset`` (all of it when ``size`` is None).

    ``where`` names the files in the error raised when ``size`` exceeds ``len(dataset)``."""
    available = len(dataset)
    if size is None:
        return dataset
    if size > available:
        raise DataError(
            f"{split} size {size} requested but there are only {available} slices in the {where}"
        )
    return dataset if size == available else _Head(dataset, size)
