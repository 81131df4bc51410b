"""``ctlike``: random CT-like anatomical slices (:mod:`learnct.data.ctlike`), in ``mu /
mu_water`` on the geometry's pixel grid (the bodies keep their size in mm at any
``image_size``).

As ``ellipses``: sample ``i`` of a split is drawn from a generator seeded with
``derive_seed(seed, "ctlike", split, i)``; validation and test sets are fixed by the seed and
the training stream is infinite (any index ``k >= 0`` is a new slice).
"""

from __future__ import annotations

from typing import Any

import torch
from torch.utils.data import Dataset

from learnct.checks import check_int, check_positive
from learnct.data.ctlike import ctlike_phantom
from learnct.data.sources.common import DEFAULT_SIZES, check_split, derive_seed
from learnct.physics.noise import MU_WATER

__all__ = ["CTLikeDataset", "build"]

#: Images made here (phantoms), not read from scans: no evidence about patient anatomy.
SYNTHETIC = True


class CTLikeDataset(Dataset):
    """CT-like phantoms, one fixed slice per ``(seed, split, index)``.

    Args:
        image_size: pixels per side ``N``; pixel_size: mm per pixel (the geometry's).
        length: samples per epoch (``len``); any index ``>= 0`` is valid (infinite stream).
        split: ``"train"``, ``"val"`` or ``"test"`` (enters the seed). seed: base seed.
        mu_water, mu_unit: the output is ``mu / mu_unit`` with ``mu = mu_water (1 + HU/1000)``
            (1/mm; the fan presets' ``mu_unit`` is water's, so the image is ``1 + HU/1000``).
        device: where the slice is rasterised (returned on the CPU).
    """

    #: The DataModule streams fresh indices each epoch (as for ellipses).
    infinite_stream = True

    def __init__(
        self,
        image_size: int,
        pixel_size: float,
        length: int,
        split: str = "train",
        seed: int = 0,
        mu_water: float = MU_WATER,
        mu_unit: float = MU_WATER,
        device: torch.device | str = "cpu",
    ) -> None:
        self.image_size = check_int("image_size", image_size, 1)
        self.pixel_size = check_positive("pixel_size", pixel_size, "length in mm")
        self.length = check_int("length", length, 1)
        self.split = check_split(split)
        self.seed = check_int("seed", seed, 0)
        self.scale = float(mu_water) / float(mu_unit)
        self.device = device

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: int) -> dict[str, Any]:
        index = check_int("index", int(index), 0)
        gen = torch.Generator().manual_seed(derive_seed(self.seed, "ctlike", self.split, index))
        image = ctlike_phantom(gen, self.image_size, self.pixel_size, self.device).cpu()
        if self.scale != 1.0:
            image = image * self.scale
        return {"image": image[None], "index": index}


def build(
    split: str,
    size: int | None,
    *,
    image_size: int,
    seed: int,
    pixel_size: float | None,
    mu_water: float,
    mu_unit: float,
    **_: object,
) -> Dataset:
    """The ``size`` CT-like slices of ``split`` (default ``DEFAULT_SIZES[split]``; the
    geometry's pixel size required)."""
    size = DEFAULT_SIZES[split] if size is None else size
    if pixel_size is None:
        raise ValueError("the ctlike source needs the geometry's pixel_size (mm)")
    return CTLikeDataset(image_size, pixel_size, size, split, seed, mu_water, mu_unit)
