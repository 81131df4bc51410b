"""Sources of ground-truth images: torch Datasets of float32 ``(1, N, N)`` images.

Every dataset returns, for an integer index, a dict ``{"image": (1, N, N) float32,
"index": int}`` (LoDoPaB with official observations adds ``"observation"``). ``N`` is the
geometry's ``image_size``. Measurements are NOT simulated here: :class:`CTDataModule` does
that on the training device (see :mod:`learnct.data.datamodule`).

Sources (:data:`SOURCES`, built by :func:`make_dataset`):

``ellipses`` (:class:`EllipsesDataset`)
    Random ellipse phantoms as in the Learned Primal-Dual paper's code
    (:func:`~learnct.data.phantoms.random_ellipses`: ``Poisson(50)`` ellipses, value
    ``(U - 0.5) Exp(0.4)``, half-axes ``Exp(0.2)``, centres ``U[-1, 1)^2``, rotation
    ``U[0, 2 pi)``), rasterised at pixel centres (``supersample = 1``, as ODL's
    ``ellipsoid_phantom`` in that code; larger values average ``s x s`` sub-pixels).
    Normalisation: the published code sums the ellipses and stops there, so phantoms may be
    negative. A negative attenuation is unphysical in transmission CT (and its Poisson counts
    would exceed the blank scan), so by default the raster is CLIPPED AT 0 (``clip_min=0``;
    ``None`` keeps the LPD code's raw sums). Nothing else is rescaled: the values stay those of
    the LPD code (in the fan presets' water-relative density: water-like ellipses). Measured
    over 500 phantoms at 128^2 (seed 0): 64 % of the pixels are 0 after clipping, mean 0.054,
    99th / 99.9th pixel percentiles 0.62 / 1.12, median per-image maximum 0.62, largest
    value 2.3. Sample ``i`` of a split is drawn
    from a generator seeded with ``derive_seed(seed, "ellipses", split, i)``: validation and
    test sets are fixed by the seed, and the training stream is infinite: any index
    ``k >= 0`` is a new phantom; the DataModule's sampler asks for ``epoch * train_size + i``,
    so each epoch sees fresh phantoms, reproducibly.
``shepp_logan`` (:class:`SheppLoganDataset`)
    The modified (Toft) Shepp-Logan phantom, values in [0, 1], the same image at every index
    (the index still selects the noise realisation).
``lodopab`` (:class:`LoDoPaBDataset`)
    LoDoPaB-CT ground truth from the official HDF5 files (see ``data/README.md``).
``folder`` (:class:`FolderDataset`)
    A folder of DICOM slices or ``.npy`` / ``.npz`` arrays.

Resize policy (``lodopab`` and ``folder``, see :func:`fit_to_size`): a non-square slice is
centre-cropped to the square of its shorter side; the square is then resampled to
``N x N`` with antialiased bilinear interpolation. The slice is assumed to span the
geometry's field of view (pixel spacings in the files are not used).

Errors: a missing folder, missing files, a corrupt or wrong-shaped file raise
:class:`~learnct.data.errors.DataError` naming the path and the problem. File sources check
every file's header when constructed (in the main process), so most problems surface before
any DataLoader worker starts; errors met later inside a worker are DataErrors too, and the
DataLoader re-raises them in the main process with the same message.
"""

from __future__ import annotations

import bisect
import hashlib
import math
import os
import re
import zipfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import Dataset

from learnct.config_names import SOURCES
from learnct.data.errors import DataError
from learnct.data.phantoms import random_ellipses, rasterize_ellipses, shepp_logan_ellipses
from learnct.physics.presets import MU_MAX_LODOPAB

__all__ = [
    "LODOPAB_OBSERVATION_SCALE",
    "LODOPAB_SPLITS",
    "MU_WATER",
    "SOURCES",
    "SPLITS",
    "EllipsesDataset",
    "FolderDataset",
    "LoDoPaBDataset",
    "SheppLoganDataset",
    "derive_seed",
    "fit_to_size",
    "make_dataset",
]

SPLITS = ("train", "val", "test")
#: Our split names -> LoDoPaB-CT's file-name parts.
LODOPAB_SPLITS = {"train": "train", "val": "validation", "test": "test"}
#: LoDoPaB-CT observations are line integrals in metres (its ray transform acts on a
#: 0.26 m domain); ours are in mm, so the official observations are multiplied by 1000.
LODOPAB_OBSERVATION_SCALE = 1000.0
MU_WATER = 0.02  # 1/mm, as in learnct.physics.presets
LODOPAB_HELP = (
    "download LoDoPaB-CT from Zenodo (https://zenodo.org/records/3384092) and unzip the "
    "ground_truth_*.hdf5 (and observation_*.hdf5) files into that folder; see data/README.md"
)
FOLDER_SUFFIXES = (".dcm", ".dicom", ".ima", ".npy", ".npz")


# ---- helpers -------------------------------------------------------------------------------
def derive_seed(*parts: object) -> int:
    """A 63-bit seed determined by ``parts`` (ints and strings), stable across processes and
    Python versions (BLAKE2b of their ``repr``; unlike ``hash()``, not salted per process)."""
    digest = hashlib.blake2b(repr(parts).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") & ((1 << 63) - 1)


def _check_int(name: str, value: object, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return value


def _check_split(split: str) -> str:
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}: choose one of {SPLITS}")
    return split


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


def _finite_or_raise(array: np.ndarray, path: Path, where: str = "") -> None:
    if not np.isfinite(array).all():
        raise DataError.for_path(path, f"contains NaN or infinite values{where}")


# ---- synthetic sources ---------------------------------------------------------------------
class EllipsesDataset(Dataset):
    """Random ellipse phantoms (LPD paper), one fixed phantom per ``(seed, split, index)``.

    Args:
        image_size: pixels per side ``N``.
        length: samples per epoch (``len``); any index ``>= 0`` is valid (infinite stream).
        split: ``"train"``, ``"val"`` or ``"test"`` (enters the seed).
        seed: base seed.
        supersample: sub-pixels per side averaged per pixel (1: pixel centres).
        clip_min: lower clip of the raster (0: non-negative attenuation); ``None``: no clip.
    """

    def __init__(
        self,
        image_size: int,
        length: int,
        split: str = "train",
        seed: int = 0,
        supersample: int = 1,
        clip_min: float | None = 0.0,
    ) -> None:
        self.image_size = _check_int("image_size", image_size, 1)
        self.length = _check_int("length", length, 1)
        self.split = _check_split(split)
        self.seed = _check_int("seed", seed, 0)
        self.supersample = _check_int("supersample", supersample, 1)
        if clip_min is not None and not math.isfinite(clip_min):
            raise ValueError(f"clip_min must be a finite number or None, got {clip_min!r}")
        self.clip_min = clip_min

    def __len__(self) -> int:
        return self.length

    def ellipses(self, index: int) -> torch.Tensor:
        """The ellipse set of sample ``index`` (see :mod:`learnct.data.phantoms`)."""
        index = _check_int("index", int(index), 0)
        gen = torch.Generator().manual_seed(derive_seed(self.seed, "ellipses", self.split, index))
        return random_ellipses(gen)

    def __getitem__(self, index: int) -> dict[str, Any]:
        image = rasterize_ellipses(self.ellipses(index), self.image_size, self.supersample)
        if self.clip_min is not None:
            image = image.clamp_min(self.clip_min)
        return {"image": image[None], "index": int(index)}


class SheppLoganDataset(Dataset):
    """The modified Shepp-Logan phantom at every index (``length`` noise realisations)."""

    def __init__(self, image_size: int, length: int = 1, supersample: int = 1) -> None:
        self.length = _check_int("length", length, 1)
        ellipses = shepp_logan_ellipses(modified=True)
        self.image = rasterize_ellipses(
            ellipses,
            _check_int("image_size", image_size, 1),
            _check_int("supersample", supersample, 1),
        )[None]

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: int) -> dict[str, Any]:
        if not 0 <= index < self.length:
            raise IndexError(f"index {index} out of range for {self.length} samples")
        return {"image": self.image.clone(), "index": int(index)}


# ---- LoDoPaB-CT ------------------------------------------------------------------------------
def _h5py():
    import h5py

    return h5py


def _hdf5_shape(path: Path, key: str = "data") -> tuple[tuple[int, ...], np.dtype]:
    h5py = _h5py()
    try:
        with h5py.File(path, "r") as f:
            if key not in f:
                raise DataError.for_path(
                    path, f"has no dataset {key!r} (found keys {sorted(f.keys())})"
                )
            ds = f[key]
            if not isinstance(ds, h5py.Dataset):
                raise DataError.for_path(path, f"{key!r} is a group, not a dataset")
            return tuple(ds.shape), ds.dtype
    except DataError:
        raise
    except Exception as err:  # h5py raises OSError for corrupt/truncated files
        raise DataError.for_path(path, f"is not a readable HDF5 file ({err})") from err


class LoDoPaBDataset(Dataset):
    """LoDoPaB-CT ground truth (and optionally the official observations).

    Files: ``root/ground_truth_{train,validation,test}_NNN.hdf5`` with dataset ``data`` of
    shape ``(n, 362, 362)`` (``n = 128`` except possibly in the last file), images already
    normalised by ``mu_max = 81.35858 /m`` (values in [0, 1]), converted to the preset's image
    units by ``* mu_max / mu_unit`` (1 for the ``lodopab`` preset; about 4.07 for the fan
    presets, whose unit is water-relative density); files are ordered by ``NNN``
    and index ``i`` maps to ``(file, slice)`` by the cumulative slice counts. Files are opened
    lazily, once per process (so each DataLoader worker has its own h5py handle).

    Checked in the constructor (main process): the folder exists, the split has files, each
    opens, has ``data``, is ``(n, H, H)`` with the same ``H`` in every file and a float dtype.
    Images are resized to ``image_size`` by :func:`fit_to_size` (362 -> 128 for fan_lowdose).

    Official observations (``observations=True``, EXPERIMENTAL): ``observation_*_NNN.hdf5``
    with ``data`` of shape ``(n, 1000, 513)``: post-log line integrals divided by ``mu_max``,
    in metres (LoDoPaB's ray transform acts on a 0.26 m square). learnct's line integrals are
    in mm, so the sample's ``"observation"`` is the file's values times
    :data:`LODOPAB_OBSERVATION_SCALE` (1000) (and the unit factor ``mu_max / mu_unit``),
    shape ``(1, 1000, 513)``. Only the units and the
    file layout are checked, against synthetic files written with learnct's own operator;
    whether the angle, detector and image-axis conventions of the official data (made with
    ODL/ASTRA) match learnct's ``lodopab`` geometry has NOT been verified. The images must not
    be resized then (``image_size`` must equal the files' ``H``).

    Args:
        root: the LoDoPaB folder (e.g. ``data/lodopab``).
        split: ``"train"``, ``"val"`` or ``"test"`` (file names ``validation`` for ``val``).
        image_size: output size ``N``.
        observations: also return the official observations.
        sinogram_shape: the observations' ``(n_angles, n_detectors)`` (default LoDoPaB's).
        mu_unit: attenuation in 1/mm of one image unit of the physics preset (its ``mu``).
    """

    def __init__(
        self,
        root: str | Path,
        split: str,
        image_size: int,
        observations: bool = False,
        sinogram_shape: tuple[int, int] = (1000, 513),
        mu_unit: float = MU_MAX_LODOPAB,
    ) -> None:
        self.root = Path(root)
        self.split = _check_split(split)
        if not (isinstance(mu_unit, (int, float)) and math.isfinite(mu_unit) and mu_unit > 0):
            raise ValueError(f"mu_unit must be a positive attenuation in 1/mm, got {mu_unit!r}")
        self.scale = MU_MAX_LODOPAB / mu_unit  # LoDoPaB's unit (mu / mu_max) -> preset's unit
        self.image_size = _check_int("image_size", image_size, 1)
        self.observations = bool(observations)
        name = LODOPAB_SPLITS[split]
        if not self.root.is_dir():
            raise DataError(
                f"LoDoPaB-CT folder {self.root.resolve()} does not exist: {LODOPAB_HELP}"
            )
        pattern = re.compile(rf"^ground_truth_{name}_(\d+)\.hdf5$")
        numbered = sorted(
            (int(m.group(1)), p)
            for p in self.root.iterdir()
            if (m := pattern.match(p.name)) and p.is_file()
        )
        if not numbered:
            raise DataError(
                f"no LoDoPaB-CT {split} files (ground_truth_{name}_NNN.hdf5) in "
                f"{self.root.resolve()}: {LODOPAB_HELP}"
            )
        self.files = [p for _, p in numbered]
        self.observation_files: list[Path] = []
        counts = []
        side = None
        for path in self.files:
            shape, dtype = _hdf5_shape(path)
            if len(shape) != 3 or shape[0] < 1 or shape[1] != shape[2] or shape[1] < 1:
                raise DataError.for_path(
                    path,
                    f"'data' must have shape (n_slices, H, H) (LoDoPaB: (128, 362, 362)), "
                    f"got {shape}",
                )
            if side is not None and shape[1] != side:
                raise DataError.for_path(
                    path,
                    f"slices are {shape[1]}x{shape[2]} but {self.files[0].name} has {side}x{side}",
                )
            if not np.issubdtype(dtype, np.floating):
                raise DataError.for_path(path, f"'data' must be floating point, got {dtype}")
            side = shape[1]
            counts.append(shape[0])
            if self.observations:
                obs = path.with_name(path.name.replace("ground_truth_", "observation_", 1))
                if not obs.is_file():
                    raise DataError(
                        f"{obs} is missing (needed for the official observations of {path.name})"
                        f": {LODOPAB_HELP}"
                    )
                oshape, odtype = _hdf5_shape(obs)
                want = (shape[0], *sinogram_shape)
                if oshape != want:
                    raise DataError.for_path(
                        obs,
                        f"'data' must have shape {want} to match {path.name} and the "
                        f"geometry's sinogram {tuple(sinogram_shape)}, got {oshape}",
                    )
                if not np.issubdtype(odtype, np.floating):
                    raise DataError.for_path(obs, f"'data' must be floating point, got {odtype}")
                self.observation_files.append(obs)
        self.file_side = side
        if self.observations and side != self.image_size:
            raise ValueError(
                f"official observations belong to the {side}x{side} images of the files; "
                f"the geometry's image_size is {self.image_size} (resizing would break the "
                "match): use the lodopab physics preset, or simulate instead"
            )
        self.offsets = np.concatenate([[0], np.cumsum(counts)]).tolist()
        self._handles: dict[Path, Any] = {}
        self._pid: int | None = None

    def __len__(self) -> int:
        return self.offsets[-1]

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_handles"], state["_pid"] = {}, None  # h5py handles never cross processes
        return state

    def _read(self, path: Path, slice_index: int) -> np.ndarray:
        if self._pid != os.getpid():  # first use in this process (e.g. a forked worker)
            self._handles, self._pid = {}, os.getpid()
        try:
            handle = self._handles.get(path)
            if handle is None:
                handle = self._handles[path] = _h5py().File(path, "r")
            array = np.asarray(handle["data"][slice_index], dtype=np.float32)
        except Exception as err:
            raise DataError.for_path(path, f"cannot read slice {slice_index} ({err})") from err
        _finite_or_raise(array, path, f" in slice {slice_index}")
        return array

    def locate(self, index: int) -> tuple[int, int]:
        """``(file number, slice)`` of sample ``index``."""
        if not 0 <= index < len(self):
            raise IndexError(f"index {index} out of range for {len(self)} LoDoPaB slices")
        f = bisect.bisect_right(self.offsets, index) - 1
        return f, index - self.offsets[f]

    def __getitem__(self, index: int) -> dict[str, Any]:
        f, s = self.locate(int(index))
        image = fit_to_size(torch.from_numpy(self._read(self.files[f], s)), self.image_size)
        if self.scale != 1.0:
            image = image * self.scale
        sample: dict[str, Any] = {"image": image, "index": int(index)}
        if self.observations:
            obs = self._read(self.observation_files[f], s)
            obs = obs * np.float32(LODOPAB_OBSERVATION_SCALE * self.scale)
            sample["observation"] = torch.from_numpy(obs)[None]
        return sample

    def close(self) -> None:
        for handle in self._handles.values():
            handle.close()
        self._handles = {}


# ---- a folder of DICOM / NumPy slices ------------------------------------------------------
def _is_dicom(path: Path) -> bool:
    if path.suffix.lower() in (".dcm", ".dicom", ".ima"):
        return True
    if path.suffix:
        return False
    try:  # extension-less files: the DICOM preamble's "DICM" magic at byte 128
        with open(path, "rb") as f:
            f.seek(128)
            return f.read(4) == b"DICM"
    except OSError:
        return False


def _npz_member(path: Path, names: Sequence[str]) -> str:
    arrays = [n[:-4] for n in names if n.endswith(".npy")]
    if not arrays:
        raise DataError.for_path(path, "the .npz archive holds no arrays")
    return "image" if "image" in arrays else arrays[0]


def _read_npy_header(f) -> tuple[tuple[int, ...], np.dtype]:
    fmt = np.lib.format
    version = fmt.read_magic(f)
    if version == (1, 0):
        shape, _, dtype = fmt.read_array_header_1_0(f)
    elif version == (2, 0):
        shape, _, dtype = fmt.read_array_header_2_0(f)
    else:  # format 3.0 (utf-8 field names): NumPy has no public reader for its header
        shape, _, dtype = fmt._read_array_header(f, version)
    return tuple(shape), dtype


def _numpy_header(path: Path) -> tuple[tuple[int, ...], np.dtype]:
    """Shape and dtype of a .npy file or of the chosen array of a .npz, reading headers only."""
    try:
        if path.suffix.lower() == ".npz":
            with zipfile.ZipFile(path) as z:
                key = _npz_member(path, z.namelist())
                with z.open(key + ".npy") as f:
                    shape, dtype = _read_npy_header(f)
        else:
            with open(path, "rb") as f:
                shape, dtype = _read_npy_header(f)
    except DataError:
        raise
    except Exception as err:
        raise DataError.for_path(path, f"is not a valid NumPy file ({err})") from err
    return tuple(shape), dtype


def _slice_shape_problem(shape: tuple[int, ...]) -> str | None:
    if len(shape) == 3 and shape[0] == 1:
        shape = shape[1:]
    if len(shape) != 2 or min(shape) < 1:
        return f"expected one 2D slice (H, W) or (1, H, W), got shape {shape}"
    return None


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
    Headers are checked when the dataset is built; pixel data is read lazily.
    """

    def __init__(
        self,
        root: str | Path,
        image_size: int,
        mu_water: float = MU_WATER,
        mu_unit: float = MU_WATER,
    ) -> None:
        self.root = Path(root)
        self.image_size = _check_int("image_size", image_size, 1)
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
                and (p.suffix.lower() in FOLDER_SUFFIXES or _is_dicom(p))
            ),
            key=lambda p: p.relative_to(self.root).as_posix(),
        )
        if not files:
            raise DataError(
                f"slice folder {self.root.resolve()} holds no slices: expected DICOM "
                f"({', '.join(FOLDER_SUFFIXES[:3])} or extension-less DICOM) or .npy/.npz files"
            )
        self.files = files
        for path in files:
            self._check_header(path)

    def _check_header(self, path: Path) -> None:
        if path.suffix.lower() in (".npy", ".npz"):
            shape, dtype = _numpy_header(path)
            if not (np.issubdtype(dtype, np.floating) or np.issubdtype(dtype, np.integer)):
                raise DataError.for_path(path, f"expected a numeric array, got dtype {dtype}")
            problem = _slice_shape_problem(shape)
        else:
            ds = self._dcmread(path, stop_before_pixels=True)
            problem = self._dicom_problem(ds)
        if problem:
            raise DataError.for_path(path, problem)

    @staticmethod
    def _dcmread(path: Path, stop_before_pixels: bool = False):
        import pydicom

        try:
            return pydicom.dcmread(path, stop_before_pixels=stop_before_pixels)
        except Exception as err:
            raise DataError.for_path(path, f"is not a readable DICOM file ({err})") from err

    @staticmethod
    def _dicom_problem(ds) -> str | None:
        for tag in ("Rows", "Columns"):
            if tag not in ds:
                return f"DICOM without {tag}: not an image"
        for tag in ("RescaleSlope", "RescaleIntercept"):
            if tag not in ds:
                return f"DICOM without {tag}: cannot convert the pixels to Hounsfield units"
        if int(ds.get("NumberOfFrames", 1) or 1) != 1:
            return f"multi-frame DICOM ({ds.NumberOfFrames} frames): expected one slice"
        if int(ds.get("SamplesPerPixel", 1)) != 1:
            return f"DICOM with {ds.SamplesPerPixel} samples per pixel: expected grayscale"
        return None

    def __len__(self) -> int:
        return len(self.files)

    def read(self, index: int) -> np.ndarray:
        """Slice ``index`` in image units, before resizing: float32 ``(H, W)``."""
        path = self.files[index]
        suffix = path.suffix.lower()
        if suffix in (".npy", ".npz"):
            try:
                loaded = np.load(path, allow_pickle=False)
                if isinstance(loaded, np.lib.npyio.NpzFile):
                    with loaded:
                        array = loaded[_npz_member(path, [k + ".npy" for k in loaded.files])]
                else:
                    array = np.asarray(loaded)
            except DataError:
                raise
            except Exception as err:
                raise DataError.for_path(path, f"cannot read the array ({err})") from err
        else:
            ds = self._dcmread(path)
            problem = self._dicom_problem(ds)
            if problem:
                raise DataError.for_path(path, problem)
            try:
                stored = ds.pixel_array
            except Exception as err:
                raise DataError.for_path(path, f"cannot decode the pixel data ({err})") from err
            hu = stored.astype(np.float64) * float(ds.RescaleSlope) + float(ds.RescaleIntercept)
            mu = np.clip(self.mu_water * (1 + hu / 1000), 0, None)
            array = mu / self.mu_unit
        problem = _slice_shape_problem(tuple(array.shape))
        if problem:
            raise DataError.for_path(path, problem)
        array = np.asarray(array, dtype=np.float32).reshape(array.shape[-2:])
        _finite_or_raise(array, path)
        return array

    def __getitem__(self, index: int) -> dict[str, Any]:
        if not 0 <= index < len(self):
            raise IndexError(f"index {index} out of range for {len(self)} slices")
        image = fit_to_size(torch.from_numpy(self.read(int(index))), self.image_size)
        return {"image": image, "index": int(index)}


# ---- factory ---------------------------------------------------------------------------------
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


SPLIT_FOLDERS = {"train": ("train",), "val": ("val", "validation"), "test": ("test",)}


def _folder_for_split(root: Path, split: str) -> Path:
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


def make_dataset(
    source: str,
    split: str,
    *,
    image_size: int,
    size: int | None = None,
    seed: int = 0,
    supersample: int = 1,
    clip_min: float | None = 0.0,
    lodopab_root: str | Path = "data/lodopab",
    folder_root: str | Path | None = None,
    observations: bool = False,
    sinogram_shape: tuple[int, int] = (1000, 513),
    mu_water: float = MU_WATER,
    mu_unit: float = MU_WATER,
) -> Dataset:
    """The ``split`` of ``source`` (one of :data:`SOURCES`) at ``image_size``.

    ``size``: samples in the split. Required for ``ellipses``; for ``shepp_logan`` the number
    of (noise) realisations (default 1); for ``lodopab`` / ``folder`` the first ``size``
    slices (default all; asking for more than there are is an error). ``folder`` uses
    ``folder_root/{train,val|validation,test}`` when that subfolder exists, else
    ``folder_root`` itself for every split. ``mu_unit`` is the preset's attenuation per image
    unit in 1/mm (its ``mu``; default: water, as the fan presets): DICOM and LoDoPaB values
    are converted to that unit. Other arguments: see the dataset classes.
    """
    if source not in SOURCES:
        raise ValueError(f"unknown data source {source!r}: choose one of {SOURCES}")
    _check_split(split)
    if size is not None:
        _check_int(f"{split} size", size, 1)
    if source == "ellipses":
        if size is None:
            raise ValueError("the ellipses source needs a size (samples per epoch / set)")
        return EllipsesDataset(image_size, size, split, seed, supersample, clip_min)
    if source == "shepp_logan":
        return SheppLoganDataset(image_size, size or 1, supersample)
    if source == "lodopab":
        dataset: Dataset = LoDoPaBDataset(
            lodopab_root, split, image_size, observations, sinogram_shape, mu_unit
        )
        where = f"LoDoPaB-CT {split} files of {Path(lodopab_root).resolve()}"
    else:
        if folder_root is None:
            raise ValueError("the folder source needs folder_root (a directory of slices)")
        folder = _folder_for_split(Path(folder_root), split)
        dataset = FolderDataset(folder, image_size, mu_water, mu_unit)
        where = f"slice folder {folder.resolve()}"
    available = len(dataset)
    if size is None:
        return dataset
    if size > available:
        raise DataError(
            f"{split} size {size} requested but there are only {available} slices in the {where}"
        )
    return dataset if size == available else _Head(dataset, size)
