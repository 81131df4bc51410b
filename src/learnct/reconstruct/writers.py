"""Writers of ``learnct-reconstruct``'s output: reconstructions in Hounsfield units as a DICOM
series (pydicom), NIfTI (nibabel), NumPy (``.npy`` + a ``.json`` sidecar) or PNG (Pillow,
8-bit, windowed). Every format records the pixel spacing and slice positions, and what made the
images (``provenance``: method, model, preset, geometry, dose) where it has room: DICOM in
``SeriesDescription`` (short) and ``ImageComments`` (JSON), NIfTI in ``descrip`` (short) and
NumPy/PNG in the sidecar ``provenance.json``.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from learnct.reconstruct.volume import Volume

__all__ = [
    "FORMATS",
    "check_output",
    "check_positions",
    "format_for",
    "output_files",
    "write_volume",
]

#: Stored DICOM pixels are signed 16-bit HU (slope 1, intercept 0).
_INT16 = (-32768, 32767)


def _summary(provenance: dict[str, Any]) -> str:
    return f"learnct {provenance.get('method')} {provenance.get('model') or ''} " + str(
        provenance.get("physics", "")
    )


def _z_positions(volume: Volume, slice_spacing: float) -> list[float]:
    if volume.positions is not None:
        return [float(z) for z in volume.positions]
    return [k * slice_spacing for k in range(len(volume.slices))]


def write_dicom(
    volume: Volume, folder: Path, provenance: dict[str, Any], **options: Any
) -> list[Path]:
    """One CT image file per slice, ``folder/slice_NNNN.dcm``: stored int16 HU (rescale slope
    1, intercept 0, ``RescaleType`` HU), ``PixelSpacing``, ``SliceThickness``,
    ``ImageOrientationPatient`` and ``ImagePositionPatient`` (:func:`_placement`),
    ``SliceLocation``, one new series (``SeriesInstanceUID``); no patient data. Options:
    ``slice_spacing`` (mm, where the volume has no positions; also a single slice's thickness
    where the volume records none), ``description`` (``SeriesDescription``; default: a summary
    of ``provenance``), ``uids_from`` (a text the UIDs are derived from, so that the same call
    writes the same bytes; default: new UIDs), ``first_instance`` (the number of the first
    slice within its series, from 0: slices of one series written by separate calls with one
    ``uids_from``)."""
    from pydicom import Dataset
    from pydicom.dataset import FileMetaDataset
    from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, generate_uid
    from pydicom.valuerep import DSfloat

    def ds(value: float) -> DSfloat:  # a decimal string holds at most 16 characters
        return DSfloat(float(value), auto_format=True)

    seed = options.get("uids_from")
    first = int(options.get("first_instance", 0))

    def uid(role: str) -> str:
        if seed is None:
            return generate_uid()
        return generate_uid(entropy_srcs=[json.dumps([str(seed), role])])  # parts kept apart

    folder.mkdir(parents=True, exist_ok=True)
    row, col = volume.spacing or (1.0, 1.0)
    slice_spacing = float(options.get("slice_spacing", 1.0))
    z = _z_positions(volume, slice_spacing)
    series, study, frame = uid("series"), uid("study"), uid("frame")
    n_rows, n_cols = volume.slices.shape[1:]
    comments = json.dumps(provenance, separators=(",", ":"))
    paths = []
    for k, hu in enumerate(volume.slices):
        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID = CTImageStorage
        meta.MediaStorageSOPInstanceUID = uid(f"instance {first + k}")
        meta.TransferSyntaxUID = ExplicitVRLittleEndian
        image = Dataset()
        image.file_meta = meta
        image.SOPClassUID, image.SOPInstanceUID = CTImageStorage, meta.MediaStorageSOPInstanceUID
        image.Modality, image.PatientName, image.PatientID = "CT", "Anonymous", "learnct"
        image.StudyInstanceUID, image.SeriesInstanceUID = study, series
        image.FrameOfReferenceUID = frame
        image.SeriesNumber, image.InstanceNumber = 1, first + k + 1
        image.SeriesDescription = (options.get("description") or _summary(provenance))[:64]
        image.ImageComments = comments[:10240]
        image.ImageType = ["DERIVED", "SECONDARY", "RECONSTRUCTION"]
        image.Rows, image.Columns = n_rows, n_cols
        image.PixelSpacing = [ds(row), ds(col)]
        with_positions = volume.positions is not None and len(z) > 1
        one = volume.thickness or slice_spacing  # a single slice's (or unplaced slices')
        image.SliceThickness = ds(abs(_thickness(z)) if with_positions else one)
        orientation, corner = _placement(volume, k, z)
        image.ImageOrientationPatient = [ds(v) for v in orientation]
        image.ImagePositionPatient = [ds(v) for v in corner]
        image.SliceLocation = ds(z[k])
        image.SamplesPerPixel, image.PhotometricInterpretation = 1, "MONOCHROME2"
        image.BitsAllocated, image.BitsStored, image.HighBit = 16, 16, 15
        image.PixelRepresentation = 1
        image.RescaleSlope, image.RescaleIntercept, image.RescaleType = 1, 0, "HU"
        image.WindowCenter, image.WindowWidth = 40, 400
        stored = np.clip(np.rint(hu), *_INT16).astype("<i2")
        image.PixelData = stored.tobytes()
        path = folder / f"slice_{k:04d}.dcm"
        image.save_as(path, enforce_file_format=True)
        paths.append(path)
    _remove_stale(folder, "slice_*.dcm", paths)
    return paths


def _placement(volume: Volume, k: int, z: list[float]) -> tuple[np.ndarray, np.ndarray]:
    """DICOM's ``ImageOrientationPatient`` (the directions of a row and of a column) and
    ``ImagePositionPatient`` (the first pixel's centre, mm) of slice ``k`` at position
    ``z[k]``, in the patient frame LPS: from the volume's affine (RAS) where the input had one
    (NIfTI, NRRD, oriented DICOM), so that the output keeps its directions, each slice moved
    along the slice axis to its own position (unevenly spaced slices stay where they were);
    else rows along x and columns along y, the grid centred on the rotation axis at ``z[k]``."""
    if volume.affine is None:
        n_rows, n_cols = volume.slices.shape[1:]
        row, col = volume.spacing or (1.0, 1.0)
        return np.array([1.0, 0, 0, 0, 1, 0]), np.array(
            [-(n_cols - 1) / 2 * col, -(n_rows - 1) / 2 * row, z[k]]
        )
    to_lps = np.diag([-1.0, -1.0, 1.0]) @ np.asarray(volume.affine, dtype=np.float64)[:3]
    axes = to_lps[:, :2] / np.linalg.norm(to_lps[:, :2], axis=0)
    along = to_lps[:, 2]
    placed = volume.positions is not None and abs(along[2]) > 1e-6 * np.linalg.norm(along)
    steps = (z[k] - z[0]) / along[2] if placed else k  # slice-axis steps from slice 0
    corner = to_lps @ [0.0, 0.0, 0.0, 1.0] + along * steps
    return np.concatenate([axes[:, 0], axes[:, 1]]) + 0.0, corner + 0.0


def _remove_stale(folder: Path, pattern: str, written: list[Path]) -> None:
    """Remove the files of ``pattern`` in ``folder`` that this write did not write (an
    earlier, longer volume's extra slices, of another series), once the new ones are
    written."""
    for stale in set(folder.glob(pattern)) - set(written):
        stale.unlink()


def _thickness(z: list[float]) -> float:
    return float(np.median(np.diff(z))) if len(z) > 1 else 1.0


def check_positions(positions: list[float] | None, fmt: str) -> None:
    """``ValueError`` for slice positions (mm) no output can hold: two slices at one position
    (duplicate files, or a series of another orientation), or, for NIfTI (one slice spacing
    in its affine), slices spaced unevenly (more than 1 %, and 0.02 mm, from their median
    spacing)."""
    if positions is None or len(positions) < 2:
        return
    steps = np.diff(np.asarray(positions, dtype=np.float64))
    if np.any(np.abs(steps) < 1e-6):
        k = int(np.argmin(np.abs(steps)))
        raise ValueError(
            f"slices {k + 1} and {k + 2} (in position order) lie at the same position "
            f"{positions[k]:g} mm: give each slice once (a series of one axial orientation)"
        )
    median = float(np.median(steps))
    tolerance = max(0.01 * abs(median), 0.02)  # 1 %, at least 0.02 mm (rounded positions)
    if fmt == "nifti" and np.max(np.abs(steps - median)) > tolerance:
        raise ValueError(
            f"the slices are unevenly spaced ({float(steps.min()):g} to {float(steps.max()):g} "
            "mm apart) and NIfTI holds one spacing: write DICOM or NumPy (each slice keeps its "
            "position), or give evenly spaced slices"
        )


def write_nifti(
    volume: Volume, path: Path, provenance: dict[str, Any], **options: Any
) -> list[Path]:
    """One NIfTI-1 volume ``(x, y, z)`` of float32 HU, spacing in mm in the affine (``path``
    gets ``.nii.gz`` when it has neither NIfTI suffix)."""
    import nibabel

    path = output_files(path, "nifti")[0]
    row, col = volume.spacing or (1.0, 1.0)
    z = _z_positions(volume, float(options.get("slice_spacing", 1.0)))
    one = volume.thickness or float(options.get("slice_spacing", 1.0))  # a single slice's
    affine = np.diag([col, row, _thickness(z) if len(z) > 1 else one, 1.0])
    affine[2, 3] = z[0]
    if volume.affine is not None:  # a NIfTI or NRRD input's, on the output grid
        affine = volume.affine
    data = np.ascontiguousarray(np.transpose(volume.slices, (2, 1, 0)).astype(np.float32))
    image = nibabel.Nifti1Image(data, affine)
    image.header.set_xyzt_units("mm")
    image.header["descrip"] = _summary(provenance).encode()[:79]
    path.parent.mkdir(parents=True, exist_ok=True)
    nibabel.save(image, path)
    return [path]


def _sidecar(volume: Volume, path: Path, provenance: dict[str, Any], **options: Any) -> Path:
    z = _z_positions(volume, float(options.get("slice_spacing", 1.0)))
    record = {"units": "HU", "pixel_spacing_mm": volume.spacing, "slice_positions_mm": z}
    path.write_text(json.dumps({**record, **provenance}, indent=1))
    return path


def write_numpy(
    volume: Volume, path: Path, provenance: dict[str, Any], **options: Any
) -> list[Path]:
    """``path`` (``.npy``: float32 HU ``(S, H, W)``) and ``<path>.json`` (spacing, positions,
    provenance)."""
    path, sidecar = output_files(path, "numpy")
    path.parent.mkdir(parents=True, exist_ok=True)
    np.save(path, volume.slices.astype(np.float32))
    return [path, _sidecar(volume, sidecar, provenance, **options)]


def write_png(
    volume: Volume, folder: Path, provenance: dict[str, Any], **options: Any
) -> list[Path]:
    """``folder/slice_NNNN.png``: 8-bit grey, HU ``window`` (lo, hi) mapped to 0..255, and
    ``folder/provenance.json``."""
    from PIL import Image

    lo, hi = options.get("window") or (-1000.0, 1000.0)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for k, hu in enumerate(volume.slices):
        grey = np.clip((hu - lo) / (hi - lo) * 255, 0, 255).round().astype(np.uint8)
        path = folder / f"slice_{k:04d}.png"
        Image.fromarray(grey).save(path)
        paths.append(path)
    _remove_stale(folder, "slice_*.png", paths)
    record = {**provenance, "window_hu": [lo, hi]}
    return [*paths, _sidecar(volume, folder / "provenance.json", record, **options)]


NIFTI_SUFFIXES = (".nii", ".nii.gz")
#: The formats that write a folder of slices, and suffixes that name a file, not a folder.
FOLDER_FORMATS = ("dicom", "png")
FILE_SUFFIXES = (
    *(".png", ".tif", ".tiff", ".jpg", ".jpeg", ".dcm", ".json"),
    *(".h5", ".hdf5", ".gz", ".npy", ".npz", ".nii"),
)

FORMATS: dict[str, Callable[..., list[Path]]] = {
    "dicom": write_dicom,
    "nifti": write_nifti,
    "numpy": write_numpy,
    "png": write_png,
}


def _format_from_suffix(name: str) -> str:
    if name.endswith(NIFTI_SUFFIXES):
        return "nifti"
    return "numpy" if name.endswith(".npy") else "dicom"


def output_files(path: Path, fmt: str) -> list[Path]:
    """The files format ``fmt`` writes for ``--output path``: NIfTI ``path`` (``.nii.gz``
    added without a NIfTI suffix), NumPy ``path`` (``.npy`` added) and its ``.json`` sidecar;
    for the folder formats (dicom, png) the folder ``path``."""
    path = Path(path)
    if fmt == "nifti" and not path.name.lower().endswith(NIFTI_SUFFIXES):
        return [path.with_name(path.name + ".nii.gz")]
    if fmt == "numpy":
        path = path if path.suffix.lower() == ".npy" else path.with_name(path.name + ".npy")
        return [path, path.with_suffix(".json")]
    return [path]


def _check_writable(target: Path, shown: Path) -> None:
    """``ValueError`` unless ``target`` (a file or folder to write, which may not exist yet)
    can be written: an existing one writable, else its nearest existing ancestor a folder
    this process may create entries in (``shown``: the path as the user gave it)."""
    where = target.absolute()
    if where.exists():
        if not os.access(where, os.W_OK):
            raise ValueError(f"--output {shown}: no permission to write {where}")
        return
    while not where.exists():
        where = where.parent
    if not where.is_dir():
        raise ValueError(f"--output {shown}: {where} is a file, not a folder to write in")
    if not os.access(where, os.W_OK | os.X_OK):
        raise ValueError(
            f"--output {shown}: no permission to write in {where}/; give a folder you can write to"
        )


def check_output(path: Path, fmt: str, inputs: Path, overwrite: bool = False) -> None:
    """``ValueError`` unless ``--output path`` can take format ``fmt``'s files without
    losing data: not the input ``inputs``, nor inside an input folder, nor the folder that
    holds the input; no existing file (unless ``overwrite``); for dicom/png a folder holding
    nothing but hidden files (``overwrite``: its earlier ``slice_*`` files are replaced); and
    every file or folder to write writable, before anything is read or reconstructed."""
    source = Path(inputs).resolve()
    targets = output_files(path, fmt)
    for target in targets:
        resolved = target.resolve()
        if resolved in (source, source.parent) or source in resolved.parents:
            raise ValueError(
                f"--output {path} would write over the input {inputs}: give another path"
            )
    if fmt in FOLDER_FORMATS:
        if path.exists() and not path.is_dir():
            raise ValueError(f"--output {path} is a file, and {fmt} writes a folder of slices")
        shown = [p for p in path.iterdir() if not p.name.startswith(".")] if path.is_dir() else []
        if shown and not overwrite:
            raise ValueError(
                f"--output {path}/ is not empty: give a new folder, or --overwrite to replace "
                f"the {fmt} slices in it"
            )
        _check_writable(path, path)
        return
    for target in targets:
        if target.is_dir():
            raise ValueError(f"--output {target} is a folder, and {fmt} writes one file")
        if target.exists() and not overwrite:
            raise ValueError(
                f"--output {target} exists: give a new file name, or --overwrite to replace it"
            )
        _check_writable(target, path)


def format_for(path: Path, chosen: str | None) -> str:
    """The output format: ``chosen``, else from the suffix (``.nii``/``.nii.gz``: nifti,
    ``.npy``: numpy; a folder: dicom). A file name (``.png``, ``.dcm``, ...) for a format that
    writes a folder of slices (dicom, png) is refused."""
    if chosen is not None and chosen not in FORMATS:
        raise ValueError(f"--format {chosen!r} is not valid: choose one of {sorted(FORMATS)}")
    named = _format_from_suffix(path.name.lower())
    fmt = chosen or named
    if chosen is not None and named in ("nifti", "numpy") and named != chosen:
        raise ValueError(
            f"--output {path} is named as a {named} file, and --format is {chosen}: give a "
            "name of that format, or drop --format"
        )
    if fmt in FOLDER_FORMATS and path.suffix.lower() in FILE_SUFFIXES:
        raise ValueError(
            f"--output {path} names a file, but {fmt} writes a folder of slices: give a folder "
            f"(e.g. {path.with_suffix('')}/), or a .nii.gz / .npy file for one volume"
        )
    return fmt


def write_volume(
    volume: Volume, path: Path, fmt: str, provenance: dict[str, Any], **options: Any
) -> list[Path]:
    """Write ``volume`` (HU) to ``path`` in format ``fmt``; returns the files written."""
    return FORMATS[fmt](volume, Path(path), provenance, **options)
