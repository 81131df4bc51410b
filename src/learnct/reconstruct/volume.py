"""``Volume``: a stack of slices with the spacing and positions that go into the output files,
and the resampling of an image slice onto a geometry's pixel grid."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from learnct.data.sources.common import (
    extent_beyond_field_mm,
    fit_to_size,
    resample_to_pixels,
)
from learnct.physics.geometry import Geometry

__all__ = ["Volume", "crop_note", "grid_to_input_indices", "to_geometry_grid"]


@dataclass
class Volume:
    """Slices ``(S, H, W)`` float32 with their pixel spacing ``(row, column)`` in mm and each
    slice's position along the patient axis in mm (``None``: not known; writers then place
    slices ``slice_spacing`` mm apart). ``affine``: for a NIfTI, NRRD or oriented DICOM
    input, its 4 x 4 map of voxel indices ``(column, row, slice)`` to world mm (RAS), so that
    an output keeps its directions and place. ``thickness``: the slices' thickness (mm) where
    the input records it (DICOM ``SliceThickness``, a NIfTI's or NRRD's slice-axis voxel
    size); the output of a single slice keeps it."""

    slices: np.ndarray
    spacing: tuple[float, float] | None
    positions: list[float] | None = None
    affine: np.ndarray | None = None
    thickness: float | None = None

    def __post_init__(self) -> None:
        if self.slices.ndim != 3 or min(self.slices.shape) < 1:
            raise ValueError(f"a volume is (slices, H, W), got shape {self.slices.shape}")
        if self.positions is not None and len(self.positions) != len(self.slices):
            raise ValueError(f"{len(self.positions)} positions for {len(self.slices)} slices")


def to_geometry_grid(
    image: np.ndarray, spacing: tuple[float, float] | None, geometry: Geometry, fill: float = 0.0
) -> torch.Tensor:
    """``image`` ``(H, W)`` with pixels of ``spacing`` (row, column) mm on the
    ``image_size^2`` grid of ``geometry``'s ``pixel_size`` at its physical size
    (:func:`~learnct.data.sources.common.resample_to_pixels`: resampled, then centre-cropped
    or padded with ``fill`` (air) to the field of view ``image_size * pixel_size`` mm, as the
    folder source does). Without ``spacing`` the image is taken to span the field of view
    (:func:`~learnct.data.sources.common.fit_to_size`). Returns ``(1, N, N)``."""
    array = torch.as_tensor(np.asarray(image, dtype=np.float32))
    if spacing is None:
        return fit_to_size(array, geometry.image_size)
    spacing = (float(spacing[0]), float(spacing[1]))
    return resample_to_pixels(array, spacing, geometry.pixel_size, geometry.image_size, fill)[0]


def crop_note(
    shape: tuple[int, int], spacing: tuple[float, float] | None, geometry: Geometry
) -> str | None:
    """What :func:`to_geometry_grid` cuts away from slices of ``shape`` (rows, columns) and
    ``spacing`` (row, column) mm, or None when it keeps all of them: the part outside the
    field of view ``image_size * pixel_size`` mm, or without a spacing the ends of the longer
    side of a non-square slice."""
    rows, cols = shape
    if spacing is None:
        if rows == cols:
            return None
        return (
            f"the {rows} x {cols} px slices are centre-cropped to {min(rows, cols)} x "
            f"{min(rows, cols)} px ({abs(rows - cols)} px of the longer side lost): without a "
            "pixel spacing a slice is taken to span the field of view (give square slices, "
            "or a format with a spacing: DICOM, NIfTI)"
        )
    field = geometry.image_size * geometry.pixel_size
    lost = extent_beyond_field_mm(shape, spacing, field)
    if lost <= geometry.pixel_size:  # at most one pixel of rounding
        return None
    return (
        f"the slices ({rows * spacing[0]:.0f} x {cols * spacing[1]:.0f} mm) are cropped to the "
        f"geometry's {field:.0f} mm field of view ({lost:.0f} mm lost)"
    )


def grid_to_input_indices(
    shape: tuple[int, int], spacing: tuple[float, float], geometry: Geometry
) -> np.ndarray:
    """The 4 x 4 map of the geometry grid's ``(column, row, slice)`` indices to those of the
    slices of ``shape`` (rows, columns) and ``spacing`` (row, column) mm that
    :func:`to_geometry_grid` put on it (``resample_to_pixels``: ``floor(n s)`` pixels at
    scale ``s = spacing / pixel_size``, sampled at input index ``(r + 0.5) / s - 0.5``, then
    ``(size - floor(n s)) // 2`` pixels padded (negative: cropped) before them)."""
    index_map = np.eye(4)
    for axis, (n, step) in enumerate(((shape[1], spacing[1]), (shape[0], spacing[0]))):
        scale = step / geometry.pixel_size
        before = (geometry.image_size - math.floor(n * scale)) // 2
        index_map[axis, axis] = 1 / scale
        index_map[axis, 3] = (0.5 - before) / scale - 0.5
    return index_map
