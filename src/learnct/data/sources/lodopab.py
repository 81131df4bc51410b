"""``lodopab``: LoDoPaB-CT ground truth (and its official observations) from the HDF5 files.

How to get the files and their layout: ``data/README.md``. The HDF5 reading (h5py, imported
on first use) lives here, the only source that reads HDF5.
"""

from __future__ import annotations

import bisect
import os
import re
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from learnct.checks import check_int, check_positive
from learnct.data.errors import DataError
from learnct.data.sources.common import check_finite, check_split, first, fit_to_size
from learnct.physics.presets import MU_MAX_LODOPAB

__all__ = [
    "LODOPAB_OBSERVATION_SCALE",
    "LODOPAB_SPLITS",
    "LoDoPaBDataset",
    "build",
    "is_observation_file",
    "observation_factor",
    "read_hdf5_array",
    "read_observation_file",
]

#: Images read from scans (files), not made here.
SYNTHETIC = False

#: Our split names -> LoDoPaB-CT's file-name parts.
LODOPAB_SPLITS = {"train": "train", "val": "validation", "test": "test"}
#: LoDoPaB-CT observations are line integrals in metres (its ray transform acts on a
#: 0.26 m domain); ours are in mm, so the official observations are multiplied by 1000.
LODOPAB_OBSERVATION_SCALE = 1000.0
LODOPAB_HELP = (
    "download LoDoPaB-CT from Zenodo (https://zenodo.org/records/3384092) and unzip the "
    "ground_truth_*.hdf5 (and observation_*.hdf5) files into that folder; see data/README.md"
)


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


def read_hdf5_array(path: Path, key: str = "data") -> np.ndarray:
    """The whole floating-point dataset ``key`` of an HDF5 file, float32, checked finite."""
    _, dtype = _hdf5_shape(path, key)
    if not np.issubdtype(dtype, np.floating):
        raise DataError.for_path(path, f"{key!r} must be floating point, got {dtype}")
    try:
        with _h5py().File(path, "r") as f:
            array = np.asarray(f[key][()], dtype=np.float32)
    except Exception as err:
        raise DataError.for_path(path, f"cannot read {key!r} ({err})") from err
    check_finite(array, path)
    return array


def is_observation_file(path: Path) -> bool:
    """Whether ``path`` is named as LoDoPaB-CT's observation files
    (``observation_{train,validation,test}_NNN.hdf5``)."""
    names = "|".join(LODOPAB_SPLITS.values())
    return re.match(rf"^observation_({names})_\d+\.hdf5$", Path(path).name) is not None


def observation_factor(mu_unit: float) -> np.float32:
    """LoDoPaB-CT observation -> learnct line integral in mm x image units of ``mu_unit``:
    :data:`LODOPAB_OBSERVATION_SCALE` (metres -> mm) times ``mu_max / mu_unit``."""
    return np.float32(LODOPAB_OBSERVATION_SCALE * MU_MAX_LODOPAB / mu_unit)


def read_observation_file(path: Path, mu_unit: float = MU_MAX_LODOPAB) -> np.ndarray:
    """A LoDoPaB-CT observation file's sinograms ``(n, 1000, 513)`` as learnct's line integrals
    in mm x image units of ``mu_unit``: the file's values times
    :data:`LODOPAB_OBSERVATION_SCALE` and ``mu_max / mu_unit`` (see :class:`LoDoPaBDataset`)."""
    array = read_hdf5_array(Path(path))
    if array.ndim != 3:
        raise DataError.for_path(
            path, f"'data' must have shape (n_slices, 1000, 513), got {array.shape}"
        )
    return array * observation_factor(mu_unit)


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
        self.split = check_split(split)
        self.mu_unit = check_positive("mu_unit", mu_unit, "attenuation in 1/mm")
        self.scale = MU_MAX_LODOPAB / mu_unit  # LoDoPaB's unit (mu / mu_max) -> preset's unit
        self.image_size = check_int("image_size", image_size, 1)
        self.observations = bool(observations)
        if not self.root.is_dir():
            raise DataError(
                f"LoDoPaB-CT folder {self.root.resolve()} does not exist: {LODOPAB_HELP}"
            )
        self.files = _ground_truth_files(self.root, split)
        self.observation_files: list[Path] = []
        counts = []
        side = None
        for path in self.files:
            shape = _check_ground_truth(path, side, self.files[0].name)
            side = shape[1]
            counts.append(shape[0])
            if self.observations:
                self.observation_files.append(_observation_file(path, shape[0], sinogram_shape))
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
        check_finite(array, path, f" in slice {slice_index}")
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
            obs = obs * observation_factor(self.mu_unit)
            sample["observation"] = torch.from_numpy(obs)[None]
        return sample

    def close(self) -> None:
        for handle in self._handles.values():
            handle.close()
        self._handles = {}


def build(
    split: str,
    size: int | None,
    *,
    image_size: int,
    lodopab_root: str | Path,
    observations: bool,
    sinogram_shape: tuple[int, int],
    mu_unit: float,
    **_: object,
) -> Dataset:
    """The first ``size`` slices (default all) of the LoDoPaB-CT ``split`` in ``lodopab_root``."""
    dataset = LoDoPaBDataset(lodopab_root, split, image_size, observations, sinogram_shape, mu_unit)
    return first(
        dataset, size, split, f"LoDoPaB-CT {split} files of {Path(lodopab_root).resolve()}"
    )


def _ground_truth_files(root: Path, split: str) -> list[Path]:
    """The ground-truth files of ``split`` in ``root``, in the order of their numbers."""
    name = LODOPAB_SPLITS[split]
    pattern = re.compile(rf"^ground_truth_{name}_(\d+)\.hdf5$")
    numbered = sorted(
        (int(m.group(1)), p) for p in root.iterdir() if (m := pattern.match(p.name)) and p.is_file()
    )
    if not numbered:
        raise DataError(
            f"no LoDoPaB-CT {split} files (ground_truth_{name}_NNN.hdf5) in "
            f"{root.resolve()}: {LODOPAB_HELP}"
        )
    return [p for _, p in numbered]


def _check_ground_truth(path: Path, side: int | None, first: str) -> tuple[int, ...]:
    """The shape ``(n_slices, H, H)`` of a ground-truth file's floating-point ``data``, whose
    ``H`` must equal ``side`` (the first file's, named ``first``) when given."""
    shape, dtype = _hdf5_shape(path)
    if len(shape) != 3 or shape[0] < 1 or shape[1] != shape[2] or shape[1] < 1:
        raise DataError.for_path(
            path,
            f"'data' must have shape (n_slices, H, H) (LoDoPaB: (128, 362, 362)), got {shape}",
        )
    if side is not None and shape[1] != side:
        raise DataError.for_path(
            path, f"slices are {shape[1]}x{shape[2]} but {first} has {side}x{side}"
        )
    if not np.issubdtype(dtype, np.floating):
        raise DataError.for_path(path, f"'data' must be floating point, got {dtype}")
    return shape


def _observation_file(path: Path, n_slices: int, sinogram_shape: tuple[int, int]) -> Path:
    """The official observation file beside ground-truth ``path``: ``n_slices`` floating-point
    sinograms of ``sinogram_shape`` (angles, detectors)."""
    obs = path.with_name(path.name.replace("ground_truth_", "observation_", 1))
    if not obs.is_file():
        raise DataError(
            f"{obs} is missing (needed for the official observations of {path.name}): "
            f"{LODOPAB_HELP}"
        )
    shape, dtype = _hdf5_shape(obs)
    want = (n_slices, *sinogram_shape)
    if shape != want:
        raise DataError.for_path(
            obs,
            f"'data' must have shape {want} to match {path.name} and the "
            f"geometry's sinogram {tuple(sinogram_shape)}, got {shape}",
        )
    if not np.issubdtype(dtype, np.floating):
        raise DataError.for_path(obs, f"'data' must be floating point, got {dtype}")
    return obs
