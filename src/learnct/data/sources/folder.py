"""``folder``: a folder of DICOM slices or ``.npy`` / ``.npz`` arrays (your own scans).

The files are read by :mod:`learnct.data.sources.slice_files`; this module picks the files
(and the split's subfolder), converts DICOM Hounsfield units to the preset's image units and
places each slice in the geometry's field of view (:data:`FITS`):

- ``spacing`` (default): a DICOM slice keeps its physical size: resampled from its
  ``PixelSpacing`` to the geometry's ``pixel_size`` and centre-padded with air or cropped to
  the ``image_size`` (:func:`~learnct.data.sources.common.resample_to_pixels`), so its line
  integrals and photon counts are those of the real body. NumPy files carry no spacing and
  are fitted to the field.
- ``field``: every slice is fitted to the field (:func:`~learnct.data.sources.common.fit_to_size`:
  centre-crop to a square, resample to ``image_size``), whatever its spacing.

What was done to each slice is logged (``learnct.data.sources.folder`` at INFO, by the process
that reads it: a DataLoader worker's log when ``num_workers > 0``) and kept in that process's
:attr:`FolderDataset.placement`.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from learnct.checks import check_int, check_positive
from learnct.config_names import FOLDER_FITS
from learnct.data.errors import DataError
from learnct.data.sources.common import check_finite, first, fit_to_size, resample_to_pixels
from learnct.data.sources.slice_files import (
    DICOM_SUFFIXES,
    NUMPY_SUFFIXES,
    dicom_header,
    dicom_spacing,
    is_dicom,
    numpy_header,
    read_dicom_slice,
    read_numpy,
    slice_shape_problem,
)
from learnct.physics.noise import MU_WATER
from learnct.physics.units import hu_to_image, in_image_units

__all__ = [
    "FITS",
    "FOLDER_SUFFIXES",
    "SPLIT_FOLDERS",
    "FolderDataset",
    "build",
    "folder_for_split",
]

#: Images read from scans (files), not made here.
SYNTHETIC = False

log = logging.getLogger(__name__)
#: How a slice is placed in the field of view (see the module docstring).
FITS = FOLDER_FITS

FOLDER_SUFFIXES = DICOM_SUFFIXES + NUMPY_SUFFIXES
#: The subfolder names each split reads, in order of preference.
SPLIT_FOLDERS = {"train": ("train",), "val": ("val", "validation"), "test": ("test",)}


class FolderDataset(Dataset):
    """Slices from a folder (searched recursively, files sorted by relative path).

    Formats and units (the output is in the preset's image units, i.e. attenuation divided
    by ``mu_unit``, the preset's ``mu``):

    - DICOM (``.dcm``, ``.dicom``, ``.ima``, or no extension or a numeric one as UID names
      have, with the ``DICM`` magic), read with
      pydicom: HU from its modality LUT (``pydicom.pixels.apply_modality_lut``: ``stored *
      RescaleSlope + RescaleIntercept``, one of them or a Modality LUT required), then
      ``mu = mu_water (1 + HU / 1000)`` clipped at 0, image ``= mu / mu_unit``. For the fan
      presets ``mu_unit = mu_water``, so the image is ``max(0, 1 + HU/1000)`` (water = 1, air
      = 0). One frame, one sample per pixel.
    - ``.npy``: one 2D float array ``(H, W)`` or ``(1, H, W)``, taken as ALREADY in the image
      units (no conversion). ``.npz``: the array named ``image``, else the first array.

    Other files are ignored. ``pixel_size`` (mm, the geometry's) and ``fit`` (one of
    :data:`FITS`) place each slice in the ``image_size`` field (module docstring); with
    ``pixel_size=None`` every slice is fitted to the field. Headers, and that each file
    holds all its pixel bytes, are checked when the dataset is built; pixel data is read
    lazily.
    """

    def __init__(
        self,
        root: str | Path,
        image_size: int,
        mu_water: float = MU_WATER,
        mu_unit: float = MU_WATER,
        pixel_size: float | None = None,
        fit: str = "spacing",
    ) -> None:
        self.root = Path(root)
        if fit not in FITS:
            raise ValueError(f"unknown folder fit {fit!r}: choose one of {FITS}")
        if pixel_size is not None:
            check_positive("pixel_size", pixel_size, "length in mm")
        self.pixel_size = None if fit == "field" or pixel_size is None else float(pixel_size)
        self.image_size = check_int("image_size", image_size, 1)
        self.mu_water = check_positive("mu_water", mu_water, "attenuation in 1/mm")
        self.mu_unit = check_positive("mu_unit", mu_unit, "attenuation in 1/mm")
        if not self.root.is_dir():
            fix = _missing_folder_fix(self.root)
            raise DataError(f"slice folder {self.root.resolve()} does not exist: {fix}")
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
                f"({', '.join(DICOM_SUFFIXES)}, or DICOM without an extension or named by UID) "
                "or .npy/.npz files"
            )
        self.files = files
        for path in files:
            self._check_header(path)
        #: What was done to each slice when last read (file name -> sentence), also logged.
        self.placement: dict[str, str] = {}

    def _check_header(self, path: Path) -> None:
        if path.suffix.lower() in NUMPY_SUFFIXES:
            shape, dtype = numpy_header(path)
            if not (np.issubdtype(dtype, np.floating) or np.issubdtype(dtype, np.integer)):
                raise DataError.for_path(path, f"expected a numeric array, got dtype {dtype}")
            problem = slice_shape_problem(shape)
            if problem:
                raise DataError.for_path(path, problem)
        else:
            ds = dicom_header(path)
            if self.pixel_size is not None:
                dicom_spacing(ds, path)

    def __len__(self) -> int:
        return len(self.files)

    def read(self, index: int) -> tuple[np.ndarray, tuple[float, float] | None]:
        """Slice ``index`` in image units, before placing: float32 ``(H, W)``, and its pixel
        spacing (row, column mm; None for NumPy files, DICOM without it, and when fitting to
        the field)."""
        path = self.files[index]
        spacing = None
        is_numpy = path.suffix.lower() in NUMPY_SUFFIXES  # values taken as they are
        if is_numpy:
            array = read_numpy(path)
        else:
            hu, ds = read_dicom_slice(path)
            # read (and checked) only where it is used: placing by spacing
            use = self.pixel_size is not None and "PixelSpacing" in ds
            spacing = dicom_spacing(ds, path) if use else None
            array = hu_to_image(hu, self.mu_unit, self.mu_water)
        problem = slice_shape_problem(tuple(array.shape))
        if problem:
            raise DataError.for_path(path, problem)
        array = np.asarray(array, dtype=np.float32).reshape(array.shape[-2:])
        check_finite(array, path)
        if is_numpy and not in_image_units(array):  # HU or grey levels taken as they are?
            raise DataError.for_path(
                path,
                f"values {array.min():g} to {array.max():g} are not in image units (attenuation "
                "over the preset's mu; fan presets: air 0, water 1, bone about 2): convert HU "
                "with learnct.physics.units.hu_to_image (1 + HU/1000 at the fan presets), or "
                "give the slices as DICOM (converted from their rescale tags)",
            )
        return array, spacing

    def __getitem__(self, index: int) -> dict[str, Any]:
        if not 0 <= index < len(self):
            raise IndexError(f"index {index} out of range for {len(self)} slices")
        array, spacing = self.read(int(index))
        name = self.files[index].name
        if self.pixel_size is not None and spacing is not None:
            image, info = resample_to_pixels(
                torch.from_numpy(array), spacing, self.pixel_size, self.image_size
            )
        else:
            image = fit_to_size(torch.from_numpy(array), self.image_size)
            why = "fitting asked for" if self.pixel_size is None else "no pixel spacing"
            info = f"{array.shape[0]}x{array.shape[1]} px fitted to the field ({why})"
        if self.placement.get(name) != info:
            log.info("%s: %s", name, info)
            self.placement[name] = info
        return {"image": image, "index": int(index)}


def _missing_folder_fix(root: Path) -> str:
    """What to do about a missing slice folder: the make target that writes it, where it is
    one of theirs (``data/real_ct``, ``data/pydicom_ct``; elsewhere with ``--root``), else
    what it should hold."""
    from learnct.data.real_ct import DEFAULT_ROOT as REAL_CT
    from learnct.data.sample_scans import DEFAULT_ROOT as SAMPLES

    for default, command in ((REAL_CT, "make data-real-ct"), (SAMPLES, "make data-samples")):
        if root.name == default.name:
            where = "" if root.resolve() == default.resolve() else f' ARGS="--root {root}"'
            return f"write it with {command}{where} (or set data.folder_root to your slices)"
    return (
        "point the folder source at a directory of DICOM (.dcm) or NumPy (.npy/.npz) slices "
        "(data/README.md)"
    )


def folder_for_split(root: Path, split: str) -> Path:
    """``root/<split>/`` when it exists; for the test split, ``root`` itself when it has no
    split subfolders at all (a folder of slices to evaluate on).

    Anything else is an error, since reading the whole tree would mix other slices in: a root
    with some split subfolders but not this split's (train on the test slices), or a root
    without any for training or validation (train, validate and test on the same slices)."""
    for name in SPLIT_FOLDERS[split]:
        if (root / name).is_dir():
            return root / name
    if not root.is_dir():
        return root  # FolderDataset says it is missing
    present = [n for names in SPLIT_FOLDERS.values() for n in names if (root / n).is_dir()]
    if present:
        wanted = " or ".join(f"{n}/" for n in SPLIT_FOLDERS[split])
        raise DataError.for_path(
            root,
            f"has {', '.join(f'{n}/' for n in present)} but no {wanted}: the {split} split "
            f"would read every slice, the other splits' included; put its slices in "
            f"{root / SPLIT_FOLDERS[split][0]} or choose another folder_root",
        )
    if split != "test":
        raise DataError.for_path(
            root,
            f"has no train/, val/ or test/ subfolders: a folder of slices is read as a test "
            f"set only (train=false, e.g. make eval), since the {split} split would read the "
            "test slices; to train, put the slices in train/, val/ and test/ subfolders",
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
    pixel_size: float | None = None,
    folder_fit: str = "spacing",
    **_: object,
) -> Dataset:
    """The first ``size`` slices (default all) of ``split``'s folder (:func:`folder_for_split`)."""
    if folder_root is None:
        raise ValueError("the folder source needs folder_root (a directory of slices)")
    folder = folder_for_split(Path(folder_root), split)
    dataset = FolderDataset(folder, image_size, mu_water, mu_unit, pixel_size, folder_fit)
    return first(dataset, size, split, f"slice folder {folder.resolve()}")
