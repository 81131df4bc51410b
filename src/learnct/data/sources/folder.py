"""``folder``: a folder of DICOM slices or ``.npy`` / ``.npz`` arrays (your own scans).

The files are read by :mod:`learnct.data.sources.slice_files`; this module picks the files
(and the split's subfolder) and converts DICOM Hounsfield units to the preset's image units.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from learnct.checks import check_int
from learnct.data.errors import DataError
from learnct.data.sources.common import check_finite, first, fit_to_size
from learnct.data.sources.slice_files import (
    DICOM_SUFFIXES,
    NUMPY_SUFFIXES,
    dicom_header,
    is_dicom,
    numpy_header,
    read_dicom_hu,
    read_numpy,
    slice_shape_problem,
)
from learnct.physics.presets import MU_WATER
from learnct.physics.units import hu_to_image

__all__ = ["FOLDER_SUFFIXES", "SPLIT_FOLDERS", "FolderDataset", "build", "folder_for_split"]

FOLDER_SUFFIXES = DICOM_SUFFIXES + NUMPY_SUFFIXES
#: The subfolder names each split reads, in order of preference.
SPLIT_FOLDERS = {"train": ("train",), "val": ("val", "validation"), "test": ("test",)}


class FolderDataset(Dataset):
    """Slices from a folder (searched recursively, files sorted by relative path).

    Formats and units (the output is in the preset's image units, i.e. attenuation divided
    by ``mu_unit``, the preset's ``mu``):

    - DICOM (``.dcm``, ``.dicom``, ``.ima`` or no extension with the ``DICM`` magic), read with
      pydicom: ``HU = stored * RescaleSlope + RescaleIntercept`` (both required), then
      ``mu = mu_water (1 + HU / 1000)`` clipped at 0, image ``= mu / mu_unit``. For the fan
      presets ``mu_unit = mu_water``, so the image is ``max(0, 1 + HU/1000)`` (water = 1, air
      = 0). One frame, one sample per pixel.
    - ``.npy``: one 2D float array ``(H, W)`` or ``(1, H, W)``, taken as ALREADY in the image
      units (no conversion). ``.npz``: the array named ``image``, else the first array.

    Other files are ignored. Slices are fitted to ``image_size`` by :func:`fit_to_size`.
    Headers, and that each file holds all its pixel bytes, are checked when the dataset is
    built; pixel data is read lazily.
    """

    def __init__(
        self,
        root: str | Path,
        image_size: int,
        mu_water: float = MU_WATER,
        mu_unit: float = MU_WATER,
    ) -> None:
        self.root = Path(root)
        self.image_size = check_int("image_size", image_size, 1)
        for name, value in (("mu_water", mu_water), ("mu_unit", mu_unit)):
            if not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
                raise ValueError(f"{name} must be a positive attenuation in 1/mm, got {value!r}")
        self.mu_water, self.mu_unit = float(mu_water), float(mu_unit)
        if not self.root.is_dir():
            raise DataError(
                f"slice folder {self.root.resolve()} does not exist: point the folder source "
                "at a directory of DICOM (.dcm) or NumPy (.npy/.npz) slices (data/README.md)"
            )
        files = sorted(
            (
                p
                for p in self.root.rglob("*")
                if p.is_file()
                and not any(part.startswith(".") for part in p.relative_to(self.root).parts)
                and (p.suffix.lower() in FOLDER_SUFFIXES or is_dicom(p))
            ),
            key=lambda p: p.relative_to(self.root).as_posix(),
        )
        if not files:
            raise DataError(
                f"slice folder {self.root.resolve()} holds no slices: expected DICOM "
                f"({', '.join(DICOM_SUFFIXES)} or extension-less DICOM) or .npy/.npz files"
            )
        self.files = files
        for path in files:
            self._check_header(path)

    @staticmethod
    def _check_header(path: Path) -> None:
        if path.suffix.lower() in NUMPY_SUFFIXES:
            shape, dtype = numpy_header(path)
            if not (np.issubdtype(dtype, np.floating) or np.issubdtype(dtype, np.integer)):
                raise DataError.for_path(path, f"expected a numeric array, got dtype {dtype}")
            problem = slice_shape_problem(shape)
            if problem:
                raise DataError.for_path(path, problem)
        else:
            dicom_header(path)

    def __len__(self) -> int:
        return len(self.files)

    def read(self, index: int) -> np.ndarray:
        """Slice ``index`` in image units, before resizing: float32 ``(H, W)``."""
        path = self.files[index]
        if path.suffix.lower() in NUMPY_SUFFIXES:
            array = read_numpy(path)
        else:
            array = hu_to_image(read_dicom_hu(path), self.mu_unit, self.mu_water)
        problem = slice_shape_problem(tuple(array.shape))
        if problem:
            raise DataError.for_path(path, problem)
        array = np.asarray(array, dtype=np.float32).reshape(array.shape[-2:])
        check_finite(array, path)
        return array

    def __getitem__(self, index: int) -> dict[str, Any]:
        if not 0 <= index < len(self):
            raise IndexError(f"index {index} out of range for {len(self)} slices")
        image = fit_to_size(torch.from_numpy(self.read(int(index))), self.image_size)
        return {"image": image, "index": int(index)}


def folder_for_split(root: Path, split: str) -> Path:
    """``root/<split>/`` when it exists; ``root`` itself when it has no split subfolders at all.

    A root with some split subfolders but not this split's is an error: reading the whole
    tree would mix the other splits' slices in (e.g. train on the test slices)."""
    for name in SPLIT_FOLDERS[split]:
        if (root / name).is_dir():
            return root / name
    present = [n for names in SPLIT_FOLDERS.values() for n in names if (root / n).is_dir()]
    if present:
        wanted = " or ".join(f"{n}/" for n in SPLIT_FOLDERS[split])
        raise DataError.for_path(
            root,
            f"has {', '.join(f'{n}/' for n in present)} but no {wanted}: the {split} split "
            f"would read every slice, the other splits' included; put its slices in "
            f"{root / SPLIT_FOLDERS[split][0]} or choose another folder_root",
        )
    return root


def build(
    split: str,
    size: int | None,
    *,
    image_size: int,
    folder_root: str | Path | None,
    mu_water: float,
    mu_unit: float,
    **_: object,
) -> Dataset:
    """The first ``size`` slices (default all) of ``split``'s folder (:func:`folder_for_split`)."""
    if folder_root is None:
        raise ValueError("the folder source needs folder_root (a directory of slices)")
    folder = folder_for_split(Path(folder_root), split)
    dataset = FolderDataset(folder, image_size, mu_water, mu_unit)
    return first(dataset, size, split, f"slice folder {folder.resolve()}")
