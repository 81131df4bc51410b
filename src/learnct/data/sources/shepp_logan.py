"""``shepp_logan``: the modified (Toft) Shepp-Logan phantom, values in [0, 1].

The same image at every index; the index still selects the noise realisation.
"""

from __future__ import annotations

from typing import Any

from torch.utils.data import Dataset

from learnct.checks import check_int
from learnct.data.phantoms import rasterize_ellipses, shepp_logan_ellipses

__all__ = ["SheppLoganDataset", "build"]

#: Images made here (phantoms), not read from scans: no evidence about patient anatomy.
SYNTHETIC = True


class SheppLoganDataset(Dataset):
    """The modified Shepp-Logan phantom at every index (``length`` noise realisations)."""

    def __init__(self, image_size: int, length: int = 1, supersample: int = 1) -> None:
        self.length = check_int("length", length, 1)
        ellipses = shepp_logan_ellipses(modified=True)
        self.image = rasterize_ellipses(
            ellipses,
            check_int("image_size", image_size, 1),
            check_int("supersample", supersample, 1),
        )[None]

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: int) -> dict[str, Any]:
        if not 0 <= index < self.length:
            raise IndexError(f"index {index} out of range for {self.length} samples")
        return {"image": self.image.clone(), "index": int(index)}


def build(
    split: str, size: int | None, *, image_size: int, supersample: int, **_: object
) -> Dataset:
    """``size`` (default 1) copies of the phantom, the same for every ``split``."""
    return SheppLoganDataset(image_size, size or 1, supersample)
