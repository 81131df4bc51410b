"""Training and evaluation data: analytic phantoms, image sources and the CT DataModule.

``CTDataModule`` yields clean images from a source (``ellipses``, ``shepp_logan``,
``lodopab``, ``folder``, ``ctlike``) and simulates the low-dose measurements on the training device;
methods receive a ``CTBatch`` (see :mod:`learnct.data.batch`).
"""

from learnct.data.batch import CTBatch
from learnct.data.datamodule import DEFAULT_SIZES, CTDataModule, EpochStreamSampler
from learnct.data.errors import DataError
from learnct.data.sources import (
    SOURCES,
    SPLITS,
    CTLikeDataset,
    EllipsesDataset,
    FolderDataset,
    LoDoPaBDataset,
    SheppLoganDataset,
    derive_seed,
    fit_to_size,
    make_dataset,
)

__all__ = [
    "DEFAULT_SIZES",
    "SOURCES",
    "SPLITS",
    "CTBatch",
    "CTDataModule",
    "CTLikeDataset",
    "DataError",
    "EllipsesDataset",
    "EpochStreamSampler",
    "FolderDataset",
    "LoDoPaBDataset",
    "SheppLoganDataset",
    "derive_seed",
    "fit_to_size",
    "make_dataset",
]
