"""``ellipses``: random ellipse phantoms as in the Learned Primal-Dual paper's code.

:func:`~learnct.data.phantoms.random_ellipses` draws ``Poisson(50)`` ellipses, value
``(U - 0.5) Exp(0.4)``, half-axes ``Exp(0.2)``, centres ``U[-1, 1)^2``, rotation
``U[0, 2 pi)``; they are rasterised at pixel centres (``supersample = 1``, as ODL's
``ellipsoid_phantom`` in that code; larger values average ``s x s`` sub-pixels).

Normalisation: the published code sums the ellipses and stops there, so phantoms may be
negative. A negative attenuation is unphysical in transmission CT (and its Poisson counts
would exceed the blank scan), so by default the raster is CLIPPED AT 0 (``clip_min=0``;
``None`` keeps the LPD code's raw sums). Nothing else is rescaled: the values stay those of
the LPD code (in the fan presets' water-relative density: water-like ellipses). Measured
over 500 phantoms at 128^2 (seed 0): 64 % of the pixels are 0 after clipping, mean 0.054,
99th / 99.9th pixel percentiles 0.62 / 1.12, median per-image maximum 0.62, largest
value 2.3.

Sample ``i`` of a split is drawn from a generator seeded with
``derive_seed(seed, "ellipses", split, i)``: validation and test sets are fixed by the seed,
and the training stream is infinite: any index ``k >= 0`` is a new phantom; the DataModule's
sampler asks for ``epoch * train_size + i``, so each epoch sees fresh phantoms, reproducibly.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch.utils.data import Dataset

from learnct.checks import check_int
from learnct.data.phantoms import (
    pad_ellipses,
    random_ellipses,
    rasterize_ellipse_batch,
    rasterize_ellipses,
)
from learnct.data.sources.common import DEFAULT_SIZES, check_split, derive_seed

__all__ = ["EllipsesDataset", "build"]

#: Images made here (phantoms), not read from scans: no evidence about patient anatomy.
SYNTHETIC = True


class EllipsesDataset(Dataset):
    """Random ellipse phantoms (LPD paper), one fixed phantom per ``(seed, split, index)``.

    Args:
        image_size: pixels per side ``N``.
        length: samples per epoch (``len``); any index ``>= 0`` is valid (infinite stream).
        split: ``"train"``, ``"val"`` or ``"test"`` (enters the seed).
        seed: base seed.
        supersample: sub-pixels per side averaged per pixel (1: pixel centres).
        clip_min: lower clip of the raster (0: non-negative attenuation); ``None``: no clip.
        ellipse_sets: samples carry the padded ellipse set (``"ellipses"``, ``(160, 6)``,
            :func:`~learnct.data.phantoms.pad_ellipses`) instead of the image, which
            :meth:`images` rasterises for a whole batch on the training device (the same
            images, to float rounding).
    """

    #: The DataModule streams fresh indices each epoch (``EpochStreamSampler``).
    infinite_stream = True

    def __init__(
        self,
        image_size: int,
        length: int,
        split: str = "train",
        seed: int = 0,
        supersample: int = 1,
        clip_min: float | None = 0.0,
        ellipse_sets: bool = False,
    ) -> None:
        self.image_size = check_int("image_size", image_size, 1)
        self.length = check_int("length", length, 1)
        self.split = check_split(split)
        self.seed = check_int("seed", seed, 0)
        self.supersample = check_int("supersample", supersample, 1)
        if clip_min is not None and not math.isfinite(clip_min):
            raise ValueError(f"clip_min must be a finite number or None, got {clip_min!r}")
        self.clip_min = clip_min
        self.ellipse_sets = bool(ellipse_sets)

    def __len__(self) -> int:
        return self.length

    def ellipses(self, index: int) -> torch.Tensor:
        """The ellipse set of sample ``index`` (see :mod:`learnct.data.phantoms`)."""
        index = check_int("index", int(index), 0)
        gen = torch.Generator().manual_seed(derive_seed(self.seed, "ellipses", self.split, index))
        return random_ellipses(gen)

    def with_ellipse_sets(self) -> EllipsesDataset:
        """This dataset with ``ellipse_sets=True`` (rasterised per batch on the device)."""
        return EllipsesDataset(
            self.image_size,
            self.length,
            self.split,
            self.seed,
            self.supersample,
            self.clip_min,
            ellipse_sets=True,
        )

    def images(self, ellipses: torch.Tensor) -> torch.Tensor:
        """Images ``(B, 1, N, N)`` (float32) of a batch of padded ellipse sets ``(B, E, 6)``,
        on their device: this dataset's rasterisation and clip."""
        image = rasterize_ellipse_batch(ellipses, self.image_size, self.supersample)
        if self.clip_min is not None:
            image = image.clamp_min(self.clip_min)
        return image[:, None]

    def __getitem__(self, index: int) -> dict[str, Any]:
        if self.ellipse_sets:
            return {"ellipses": pad_ellipses(self.ellipses(index)), "index": int(index)}
        image = rasterize_ellipses(self.ellipses(index), self.image_size, self.supersample)
        if self.clip_min is not None:
            image = image.clamp_min(self.clip_min)
        return {"image": image[None], "index": int(index)}


def build(
    split: str,
    size: int | None,
    *,
    image_size: int,
    seed: int,
    supersample: int,
    clip_min: float | None,
    **_: object,
) -> Dataset:
    """The ``size`` phantoms of ``split`` (default ``DEFAULT_SIZES[split]``; the training split:
    samples per epoch of the infinite stream)."""
    size = DEFAULT_SIZES[split] if size is None else size
    return EllipsesDataset(image_size, size, split, seed, supersample, clip_min)
