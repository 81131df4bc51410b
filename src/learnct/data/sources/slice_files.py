"""Readers of one CT slice per file: DICOM (pydicom) and NumPy ``.npy`` / ``.npz``.

Each reader has a cheap header check (shape, dtype, required tags, and that the file is long
enough for its pixels: no pixel data read) and a full read. Every problem is a
:class:`~learnct.data.errors.DataError` naming the file.

NumPy files are read with NumPy's own format reader: headers with
:func:`numpy.lib.format.read_magic` and ``read_array_header_{1,2}_0`` (any byte order, C or
Fortran order, format versions 1.0, 2.0 and 3.0), arrays with :func:`numpy.load`
(``allow_pickle=False``). A file cut short after its header fails the header check: a
``.npy`` must hold ``prod(shape) * itemsize`` bytes after its header, an uncompressed DICOM
the ``Rows x Columns x BitsAllocated`` bits its pixel data element declares (compressed DICOM
pixel data is checked when decoded); a truncated ``.npz`` does not open (a zip archive's
directory is at its end).
"""

from __future__ import annotations

import math
import zipfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from learnct.data.errors import DataError

__all__ = [
    "DICOM_SUFFIXES",
    "NUMPY_SUFFIXES",
    "dicom_header",
    "dicom_spacing",
    "is_dicom",
    "numpy_header",
    "read_dicom_slice",
    "read_numpy",
    "slice_shape_problem",
]

DICOM_SUFFIXES = (".dcm", ".dicom", ".ima")
#: DICOM elements longer than this (the pixel data) are not read by the header check.
_DICOM_DEFER_BYTES = 1024
_PIXEL_DATA = 0x7FE00010
_UNDEFINED_LENGTH = 0xFFFFFFFF
NUMPY_SUFFIXES = (".npy", ".npz")

_fmt = np.lib.format
#: NumPy's public header readers per format version. 3.0 differs from 2.0 only in decoding
#: the header as UTF-8 rather than latin-1, which changes nothing but non-ASCII field names
#: of structured dtypes (refused anyway as not numeric), so the 2.0 reader reads it.
_NPY_HEADER_READERS = {
    (1, 0): _fmt.read_array_header_1_0,
    (2, 0): _fmt.read_array_header_2_0,
    (3, 0): _fmt.read_array_header_2_0,
}


def slice_shape_problem(shape: tuple[int, ...]) -> str | None:
    """What is wrong with ``shape`` for one slice (``(H, W)`` or ``(1, H, W)``), or None."""
    if len(shape) == 3 and shape[0] == 1:
        shape = shape[1:]
    if len(shape) != 2 or min(shape) < 1:
        return f"expected one 2D slice (H, W) or (1, H, W), got shape {shape}"
    return None


# ---- NumPy ---------------------------------------------------------------------------------
def _npz_member(path: Path, names: Sequence[str]) -> str:
    arrays = [n[:-4] for n in names if n.endswith(".npy")]
    if not arrays:
        raise DataError.for_path(path, "the .npz archive holds no arrays")
    return "image" if "image" in arrays else arrays[0]


def _read_npy_header(f) -> tuple[tuple[int, ...], np.dtype]:
    version = _fmt.read_magic(f)
    if version not in _NPY_HEADER_READERS:
        raise ValueError(f"unsupported .npy format version {version[0]}.{version[1]}")
    shape, _, dtype = _NPY_HEADER_READERS[version](f)
    return tuple(shape), dtype


def numpy_header(path: Path) -> tuple[tuple[int, ...], np.dtype]:
    """Shape and dtype of a .npy file or of the chosen array of a .npz, reading headers only;
    a .npy with fewer data bytes than its header says is truncated."""
    try:
        if path.suffix.lower() == ".npz":
            with zipfile.ZipFile(path) as z:
                key = _npz_member(path, z.namelist())
                with z.open(key + ".npy") as f:
                    return _read_npy_header(f)
        with open(path, "rb") as f:
            shape, dtype = _read_npy_header(f)
            data_start = f.tell()
    except DataError:
        raise
    except Exception as err:
        raise DataError.for_path(path, f"is not a valid NumPy file ({err})") from err
    needed = math.prod(shape) * dtype.itemsize
    held = path.stat().st_size - data_start
    if held < needed:
        raise DataError.for_path(
            path,
            f"truncated (its header says {shape} {dtype}: {needed} bytes of data after the "
            f"{data_start}-byte header; the file holds {held})",
        )
    return shape, dtype


def read_numpy(path: Path) -> np.ndarray:
    """The array of a .npy file, or of a .npz its array ``image`` (else its first array)."""
    try:
        loaded = np.load(path, allow_pickle=False)
        if isinstance(loaded, np.lib.npyio.NpzFile):
            with loaded:
                return loaded[_npz_member(path, [k + ".npy" for k in loaded.files])]
        return np.asarray(loaded)
    except DataError:
        raise
    except Exception as err:
        raise DataError.for_path(path, f"cannot read the array ({err})") from err


# ---- DICOM ---------------------------------------------------------------------------------
def is_dicom(path: Path) -> bool:
    """A DICOM suffix, or no suffix or a numeric one (files named by their UID,
    ``1.2.840.113619...``) and the DICOM preamble's ``DICM`` magic at byte 128."""
    if path.suffix.lower() in DICOM_SUFFIXES:
        return True
    if path.suffix and not path.suffix[1:].isdigit():
        return False
    try:
        with open(path, "rb") as f:
            f.seek(128)
            return f.read(4) == b"DICM"
    except OSError:
        return False


def _dcmread(path: Path, defer_size: int | None = None):
    import pydicom

    try:
        return pydicom.dcmread(path, defer_size=defer_size)
    except Exception as err:
        raise DataError.for_path(path, f"is not a readable DICOM file ({err})") from err


def _dicom_problem(ds) -> str | None:
    for tag in ("Rows", "Columns"):
        if tag not in ds:
            return f"DICOM without {tag}: not an image"
    if "ModalityLUTSequence" not in ds:
        for tag in ("RescaleSlope", "RescaleIntercept"):
            if tag not in ds:
                return (
                    f"DICOM without {tag} (nor a Modality LUT): cannot convert the pixels "
                    "to Hounsfield units"
                )
    if int(ds.get("NumberOfFrames", 1) or 1) != 1:
        return f"multi-frame DICOM ({ds.NumberOfFrames} frames): expected one slice"
    if int(ds.get("SamplesPerPixel", 1)) != 1:
        return f"DICOM with {ds.SamplesPerPixel} samples per pixel: expected grayscale"
    return None


def _dicom_truncation(ds, path: Path) -> str | None:
    """Why the pixel data of ``ds`` (read with its pixel data deferred) cannot be all there,
    or None: no pixel data element, fewer bytes in the file than it declares, or (uncompressed)
    fewer than ``Rows x Columns x BitsAllocated`` bits."""
    element = ds.get_item(_PIXEL_DATA, keep_deferred=True)
    if element is None:
        return "truncated (no pixel data after the header)"
    if element.length == _UNDEFINED_LENGTH:  # compressed: checked when decoded
        return None
    held = path.stat().st_size - element.value_tell
    if held < element.length:
        return (
            f"truncated (its pixel data element declares {element.length} bytes; the file "
            f"holds {held} after it)"
        )
    bits = ds.get("BitsAllocated")
    if isinstance(bits, int) and bits > 0:
        needed = math.ceil(int(ds.Rows) * int(ds.Columns) * bits / 8)
        if element.length < needed:
            return (
                f"truncated (its pixel data holds {element.length} bytes; {ds.Rows} x "
                f"{ds.Columns} pixels of {bits} bits need {needed})"
            )
    return None


def dicom_header(path: Path):
    """The pydicom dataset of ``path`` with its pixel data unread, checked to hold one grayscale
    frame with a modality LUT (``RescaleSlope`` and ``RescaleIntercept``, or a Modality LUT
    Sequence) and all its pixel bytes."""
    ds = _dcmread(path, defer_size=_DICOM_DEFER_BYTES)
    problem = _dicom_problem(ds) or _dicom_truncation(ds, path)
    if problem:
        raise DataError.for_path(path, problem)
    return ds


def dicom_spacing(
    ds, path: Path, fix: str = "fit the slice to the field of view instead (data.folder_fit=field)"
) -> tuple[float, float]:
    """``PixelSpacing`` of ``ds`` (row, column) in mm; a DataError if absent or not positive,
    which ends with ``fix`` (what the user can do)."""
    spacing = ds.get("PixelSpacing")
    try:
        row, col = (float(v) for v in spacing)
    except (TypeError, ValueError):
        row = col = float("nan")
    if not (row > 0 and col > 0 and math.isfinite(row) and math.isfinite(col)):
        raise DataError.for_path(
            path,
            f"has no valid PixelSpacing ({spacing!r}): its physical size is unknown; {fix}",
        )
    return row, col


def read_dicom_slice(path: Path):
    """``(hu, dataset)``: the slice in Hounsfield units, float64, by pydicom's modality LUT
    (``stored * RescaleSlope + RescaleIntercept``), and its pydicom dataset (for the pixel
    spacing and position)."""
    from pydicom.pixels import apply_modality_lut

    ds = _dcmread(path)
    problem = _dicom_problem(ds)
    if problem:
        raise DataError.for_path(path, problem)
    try:
        stored = ds.pixel_array
    except Exception as err:
        raise DataError.for_path(path, f"cannot decode the pixel data ({err})") from err
    return np.asarray(apply_modality_lut(stored, ds), dtype=np.float64), ds
