"""``Volume``: a stack of slices with the spacing and positions that go into the output files,
and the resampling of an image slice onto a geometry's pixel grid."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from learnct.data.sources.common import fit_to_size
from learnct.physics.geometry import Geometry

__all__ = ["Volume", "to_geometry_grid"]


@dataclass
class Volume:
    """Slices ``(S, H, W)`` float32 with their pixel spacing ``(row, column)`` in mm and each
    slice's position along the patient axis in mm (``None``: not known; writers then place
    slices ``slice_spacing`` mm apart)."""

    slices: np.ndarray
    spacing: tuple[float, float] | None
    positions: list[float] | None = None

    def __post_init__(self) -> None:
        if self.slices.ndim != 3 or min(self.slices.shape) < 1:
            raise ValueError(f"a volume is (slices, H, W), got shape {self.slices.shape}")
        if self.positions is not None and len(self.positions) != len(self.slices):
            raise ValueError(f"{len(self.positions)} positions for {len(self.slices)} slices")


def to_geometry_grid(
    image: np.ndarray, spacing: tuple[float, float] | None, geometry: Geometry, fill: float = 0.0
) -> torch.Tensor:
    """``image`` ``(H, W)`` with pixels of ``spacing`` (row, column) mm resampled onto the
    ``image_size^2`` grid of ``geometry``'s ``pixel_size``: centre-cropped, or padded with
    ``fill`` (air), to the geometry's field of view ``image_size * pixel_size`` mm, then
    resampled (:func:`~learnct.data.sources.common.fit_to_size`). Without ``spacing`` the
    image is taken to span the field of view (only resampled). Returns ``(1, N, N)``."""
    array = torch.as_tensor(np.asarray(image, dtype=np.float32))
    if spacing is not None:
        wanted = [max(1, round(geometry.image_width / s)) for s in spacing]
        for axis, n in enumerate(wanted):
            have = array.shape[axis]
            if have > n:
                start = (have - n) // 2
                array = array.narrow(axis, start, n)
            elif have < n:
                before = (n - have) // 2
                pad = [0, 0, 0, 0]
                pad[2 * (1 - axis)], pad[2 * (1 - axis) + 1] = before, n - have - before
                array = torch.nn.functional.pad(array[None], pad, value=fill)[0]
        if array.shape[0] != array.shape[1]:  # anisotropic pixels: make the grid square
            array = torch.nn.functional.interpolate(
                array[None, None], size=(max(array.shape),) * 2, mode="bilinear", antialias=True
            )[0, 0]
    return fit_to_size(array, geometry.image_size)
