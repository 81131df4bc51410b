"""Sources of ground-truth images: torch Datasets of float32 ``(1, N, N)`` images.

Every dataset returns, for an integer index, a dict ``{"image": (1, N, N) float32,
"index": int}`` (LoDoPaB with official observations adds ``"observation"``). ``N`` is the
geometry's ``image_size``. Measurements are NOT simulated here: :class:`CTDataModule` does
that on the training device (see :mod:`learnct.data.datamodule`).

Sources (:data:`SOURCES`, one module each, built by :func:`make_dataset`):

``ellipses`` (:class:`EllipsesDataset`, :mod:`.ellipses`)
    Random ellipse phantoms as in the Learned Primal-Dual paper's code, clipped at 0; the
    validation and test sets fixed by the seed, the training stream infinite.
``shepp_logan`` (:class:`SheppLoganDataset`, :mod:`.shepp_logan`)
    The modified (Toft) Shepp-Logan phantom, values in [0, 1], the same image at every index
    (the index still selects the noise realisation).
``lodopab`` (:class:`LoDoPaBDataset`, :mod:`.lodopab`)
    LoDoPaB-CT ground truth from the official HDF5 files (see ``data/README.md``).
``ctlike`` (:class:`CTLikeDataset`, :mod:`.ctlike`)
    Random CT-like anatomical slices (head, neck, thorax, abdomen; :mod:`learnct.data.ctlike`) on
    the geometry's pixel grid; fixed validation and test sets, an infinite training stream.
``folder`` (:class:`FolderDataset`, :mod:`.folder`)
    A folder of DICOM slices or ``.npy`` / ``.npz`` arrays (readers in :mod:`.slice_files`).

Resize policy: ``lodopab`` slices (and ``folder`` slices with ``folder_fit="field"`` or
without a pixel spacing) are fitted to the field (:func:`fit_to_size`): a non-square slice is
centre-cropped to the square of its shorter side, then resampled to ``N x N`` with
antialiased bilinear interpolation. DICOM slices of ``folder`` keep their physical size by
default (``folder_fit="spacing"``, :func:`resample_to_pixels`): resampled from their
``PixelSpacing`` to the geometry's ``pixel_size`` and padded with air or cropped to the field.

Errors: a missing folder, missing files, a corrupt or wrong-shaped file raise
:class:`~learnct.data.errors.DataError` naming the path and the problem. File sources check
every file's header when constructed (in the main process), so most problems surface before
any DataLoader worker starts; errors met later inside a worker are DataErrors too, and the
DataLoader re-raises them in the main process with the same message.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from types import ModuleType

from torch.utils.data import Dataset

from learnct.checks import check_int
from learnct.config_names import SOURCES
from learnct.data.sources import ctlike, ellipses, folder, lodopab, shepp_logan
from learnct.data.sources.common import (
    DEFAULT_SIZES,
    SPLITS,
    check_split,
    derive_seed,
    fit_to_size,
    resample_to_pixels,
)
from learnct.data.sources.ctlike import CTLikeDataset
from learnct.data.sources.ellipses import EllipsesDataset
from learnct.data.sources.folder import FolderDataset
from learnct.data.sources.lodopab import LoDoPaBDataset
from learnct.data.sources.shepp_logan import SheppLoganDataset
from learnct.physics.noise import MU_WATER

__all__ = [
    "BUILDERS",
    "DEFAULT_SIZES",
    "MODULES",
    "SOURCES",
    "SPLITS",
    "SYNTHETIC_SOURCES",
    "CTLikeDataset",
    "EllipsesDataset",
    "FolderDataset",
    "LoDoPaBDataset",
    "SheppLoganDataset",
    "derive_seed",
    "fit_to_size",
    "make_dataset",
    "resample_to_pixels",
]

#: Source name (:data:`SOURCES`) -> its module (``build``, ``SYNTHETIC``).
MODULES: dict[str, ModuleType] = {
    "ellipses": ellipses,
    "shepp_logan": shepp_logan,
    "lodopab": lodopab,
    "folder": folder,
    "ctlike": ctlike,
}
#: Source name -> ``build(split, size, **options)`` of its module.
BUILDERS: dict[str, Callable[..., Dataset]] = {name: m.build for name, m in MODULES.items()}
#: The sources whose images are phantoms made here, not scans (a model trained or tested only
#: on them has no evidence about patient anatomy).
SYNTHETIC_SOURCES = frozenset(name for name, m in MODULES.items() if m.SYNTHETIC)


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
    pixel_size: float | None = None,
    folder_fit: str = "spacing",
) -> Dataset:
    """The ``split`` of ``source`` (one of :data:`SOURCES`) at ``image_size``.

    ``size``: samples in the split. For ``ellipses`` and ``ctlike`` default
    :data:`DEFAULT_SIZES`; for ``shepp_logan`` the number of (noise) realisations (default 1);
    for ``lodopab`` / ``folder`` the first ``size`` slices (default all; asking for more than
    there are is an error). ``folder`` uses ``folder_root/{train,val|validation,test}`` when
    that subfolder exists, else ``folder_root`` itself for every split. ``mu_unit`` is the preset's
    attenuation per image unit in 1/mm (its ``mu``; default: water, as the fan presets):
    DICOM and LoDoPaB values are converted to that unit. ``pixel_size``: the geometry's
    (mm), with ``folder_fit`` how ``folder`` slices are placed in the field (``"spacing"`` or
    ``"field"``; None: fit to the field). Other arguments: see the dataset classes.
    """
    if source not in SOURCES:
        raise ValueError(f"unknown data source {source!r}: choose one of {SOURCES}")
    check_split(split)
    if size is not None:
        check_int(f"{split} size", size, 1)
    return BUILDERS[source](
        split,
        size,
        image_size=image_size,
        seed=seed,
        supersample=supersample,
        clip_min=clip_min,
        lodopab_root=lodopab_root,
        folder_root=folder_root,
        observations=observations,
        sinogram_shape=sinogram_shape,
        mu_water=mu_water,
        mu_unit=mu_unit,
        pixel_size=pixel_size,
        folder_fit=folder_fit,
    )
