"""Readers of the inputs of ``learnct-reconstruct``: image volumes to simulate from, and
measured sinograms. Each format is parsed where learnct already reads it: DICOM and NumPy in
:mod:`learnct.data.sources.slice_files`, HDF5 and LoDoPaB-CT's observation files in
:mod:`learnct.data.sources.lodopab`; NIfTI with nibabel, NRRD with pynrrd, PNG and TIFF with
Pillow.

Images: a folder of DICOM slices (one series: sorted by ``ImagePositionPatient``'s z, else
``InstanceNumber``) or one DICOM file, in Hounsfield units by pydicom's modality LUT; NIfTI
(``.nii``, ``.nii.gz``; slices along the third axis, spacing from the header; taken as HU
unless ``units="image"``); NRRD (``.nrrd``, ``.nhdr``: 3D Slicer's and pyradiomics' format;
slices along the third axis, spacing and positions from ``space directions`` and ``space
origin``; HU unless ``units="image"``); PNG or TIFF (one slice, or one per TIFF page); NumPy
``.npy`` / ``.npz`` ``(H, W)`` or ``(S, H, W)``. PNG, TIFF and NumPy values are taken as the
preset's image units unless ``units="hu"``.

Sinograms: post-log line integrals in mm x image units, ``(A, D)`` or ``(S, A, D)``: NumPy
``.npy`` / ``.npz``, HDF5 (``.h5``, ``.hdf5``: the dataset ``key``, default ``data``), and
LoDoPaB-CT's ``observation_*_NNN.hdf5`` files (converted from LoDoPaB's metres and ``mu_max``).
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from learnct.data.errors import DataError
from learnct.data.sources.common import check_finite
from learnct.data.sources.lodopab import (
    is_observation_file,
    read_hdf5_array,
    read_observation_file,
)
from learnct.data.sources.slice_files import (
    dicom_spacing,
    is_dicom,
    read_dicom_slice,
    read_numpy,
)
from learnct.physics.units import in_image_units
from learnct.reconstruct.volume import Volume

__all__ = ["IMAGE_UNITS", "ImageInput", "read_images", "read_sinograms"]

IMAGE_UNITS = ("hu", "image")
NIFTI_SUFFIXES = (".nii", ".nii.gz")
NRRD_SUFFIXES = (".nrrd", ".nhdr")
PICTURE_SUFFIXES = (".png", ".tif", ".tiff")
HDF5_SUFFIXES = (".h5", ".hdf5")


def _suffix(path: Path) -> str:
    name = path.name.lower()
    return ".nii.gz" if name.endswith(".nii.gz") else path.suffix.lower()


class ImageInput:
    """An image volume read from ``path`` and the units of its values (``"hu"`` or
    ``"image"``: the preset's image units)."""

    def __init__(self, volume: Volume, units: str) -> None:
        self.volume, self.units = volume, units


def _dicom_series(path: Path) -> Volume:
    files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
    files = [p for p in files if is_dicom(p)]
    if not files:
        raise DataError.for_path(path, "holds no DICOM files (.dcm, .dicom, .ima or DICM magic)")
    read = [(p, *read_dicom_slice(p)) for p in files]
    series = {str(ds.get("SeriesInstanceUID")) for _, _, ds in read}
    if len(series) > 1:
        raise DataError.for_path(
            path, f"holds {len(series)} DICOM series: point --images at one series' folder"
        )

    def where(item):
        ds = item[2]
        position = ds.get("ImagePositionPatient")
        return float(position[2]) if position else float(ds.get("InstanceNumber", 0) or 0)

    read.sort(key=where)
    shapes = {hu.shape for _, hu, _ in read}
    if len(shapes) != 1:
        raise DataError.for_path(path, f"the DICOM slices have different sizes {sorted(shapes)}")
    spacing = _series_spacing(path, [(p, ds) for p, _, ds in read])
    first = read[0][2]
    positions = [where(item) for item in read] if "ImagePositionPatient" in first else None
    thickness = float(first.get("SliceThickness") or 0) or None
    stack = np.stack([hu for _, hu, _ in read]).astype(np.float32)
    affine = _dicom_affine([ds for _, _, ds in read], spacing, thickness)
    return Volume(stack, spacing, positions, affine, thickness)


def _dicom_affine(
    datasets: list, spacing: tuple[float, float] | None, thickness: float | None
) -> np.ndarray | None:
    """The series' 4 x 4 map of ``(column, row, slice)`` indices to NIfTI's world (RAS, mm)
    from ``ImageOrientationPatient``, every slice's ``ImagePositionPatient`` (the slices in
    position order) and the pixel spacing, so that an output keeps the series' directions and
    place; ``None`` where a tag is missing or the orientation is not two unit vectors."""
    orientations = [_numbers(ds.get("ImageOrientationPatient"), 6) for ds in datasets]
    corners = [_numbers(ds.get("ImagePositionPatient"), 3) for ds in datasets]
    if spacing is None or any(v is None for v in (*orientations, *corners)):
        return None
    orientation = orientations[0]
    along_row, along_col = orientation[:3], orientation[3:]
    unit = [along_row @ along_row, along_col @ along_col, along_row @ along_col]
    if not np.allclose(unit, [1, 1, 0], atol=1e-3) or not all(
        np.allclose(other, orientation, atol=1e-4) for other in orientations
    ):
        return None
    if len(corners) > 1:
        step = (corners[-1] - corners[0]) / (len(corners) - 1)
    else:
        step = np.cross(along_row, along_col) * (thickness or 1.0)
    lps = np.eye(4)
    lps[:3, :4] = np.stack(
        [along_row * spacing[1], along_col * spacing[0], step, corners[0]], axis=1
    )
    return np.diag([-1.0, -1.0, 1.0, 1.0]) @ lps


def _numbers(value: object, n: int) -> np.ndarray | None:
    """``value`` (a DICOM multi-valued decimal tag) as ``n`` finite floats, else ``None``
    (missing, blank or malformed)."""
    try:
        numbers = np.asarray(value, dtype=np.float64).reshape(-1)
    except (TypeError, ValueError):
        return None
    return numbers if numbers.shape == (n,) and np.isfinite(numbers).all() else None


def _series_spacing(path: Path, slices: list[tuple[Path, object]]) -> tuple[float, float] | None:
    """The one ``PixelSpacing`` (row, column mm) of a series' ``(file, dataset)`` slices, by
    :func:`~learnct.data.sources.slice_files.dicom_spacing` (a DataError if not positive);
    None when no slice has the tag (the slices then span the field of view)."""
    spacings = {
        dicom_spacing(
            ds, file, fix="correct or remove the tag (without it the slice spans the field of view)"
        )
        if "PixelSpacing" in ds
        else None
        for file, ds in slices
    }
    if len(spacings) > 1:
        shown = sorted(spacings, key=str)
        raise DataError.for_path(
            path,
            f"the DICOM slices have different pixel spacings (mm) {shown}: give the slices "
            "of one spacing at a time",
        )
    return spacings.pop()


def _nifti(path: Path) -> Volume:
    import nibabel

    try:
        image = nibabel.load(path)
        data = np.asarray(image.get_fdata(dtype=np.float32))
    except Exception as err:
        raise DataError.for_path(path, f"is not a readable NIfTI file ({err})") from err
    if data.ndim == 2:
        data = data[..., None]
    if data.ndim == 4 and data.shape[3] == 1:  # (x, y, z, 1): one time point
        data = data[..., 0]
    if data.ndim != 3:
        raise DataError.for_path(path, f"expected a 3D volume (x, y, z), got shape {data.shape}")
    zooms = [float(z) for z in image.header.get_zooms()[:3]] + [1.0]
    # NIfTI's first axis is x (columns), the second y (rows): slice k is data[:, :, k].T
    slices = np.ascontiguousarray(np.transpose(data, (2, 1, 0)))
    # slice k's centre, voxel ((nx - 1) / 2, (ny - 1) / 2, k), in world mm (the affine's
    # direction and sign)
    nx, ny = data.shape[:2]
    voxels = [[(nx - 1) / 2, (ny - 1) / 2, k] for k in range(slices.shape[0])]
    positions = [float(z) for z in nibabel.affines.apply_affine(image.affine, voxels)[:, 2]]
    affine = np.array(image.affine, dtype=np.float64)
    _check_axial(path, affine[:3, 2], slices.shape[0], "nibabel.as_closest_canonical")
    return Volume(slices, (zooms[1], zooms[0]), positions, affine, zooms[2] or None)


def _check_axial(path: Path, slice_axis: np.ndarray, n_slices: int, fix: str) -> None:
    """A ``DataError`` when the volume's third axis (``slice_axis``, in world mm) does not run
    mostly along the patient axis z: its slices are then not axial."""
    if n_slices > 1 and abs(slice_axis[2]) < 0.5 * np.linalg.norm(slice_axis):
        raise DataError.for_path(
            path,
            "its slices are not axial (the third axis runs along x or y): reorient the volume "
            f"to axial slices first (e.g. {fix})",
        )


#: NRRD ``space`` names (long and short) and the signs that take their axes to NIfTI's RAS;
#: a space without anatomical names (``scanner-xyz``, ``3D-right-handed``, none) is kept as is.
_NRRD_SPACES = {
    **dict.fromkeys(("right-anterior-superior", "RAS"), (1.0, 1.0, 1.0)),
    **dict.fromkeys(("left-anterior-superior", "LAS"), (-1.0, 1.0, 1.0)),
    **dict.fromkeys(("left-posterior-superior", "LPS"), (-1.0, -1.0, 1.0)),
}
#: NRRD ``space units`` and their length in mm (no units: mm, as 3D Slicer assumes).
_NRRD_UNITS = {"mm": 1.0, "cm": 10.0, "m": 1000.0, "um": 1e-3, "µm": 1e-3}


def _nrrd(path: Path) -> Volume:
    """An NRRD volume ``(x, y, z)`` (pynrrd's index order, as NIfTI's) or image ``(x, y)``:
    slice k is ``data[:, :, k].T``; pixel spacing the lengths of the first two axes of
    :func:`_nrrd_affine` (mm), positions the world z of each slice's centre, and the affine
    itself, so that a NIfTI output keeps the input's directions."""
    import nrrd

    try:
        data, header = nrrd.read(str(path))
    except Exception as err:
        raise DataError.for_path(path, f"is not a readable NRRD file ({err})") from err
    if data.ndim not in (2, 3):
        raise DataError.for_path(
            path, f"expected a 3D volume (x, y, z) or a 2D image (x, y), got shape {data.shape}"
        )
    affine = _nrrd_affine(path, header, data.ndim)
    planar = data.ndim == 2
    if planar:
        data = data[..., None]
    _check_axial(path, affine[:3, 2], data.shape[2], "3D Slicer's Reformat or SimpleITK")
    spacing = np.linalg.norm(affine[:3, :3], axis=0)
    nx, ny, nz = data.shape
    centres = np.array([[(nx - 1) / 2, (ny - 1) / 2, k, 1.0] for k in range(nz)])
    positions = [float(z) for z in (centres @ affine.T)[:, 2]]
    slices = np.ascontiguousarray(np.transpose(data, (2, 1, 0)), dtype=np.float32)
    thickness = None if planar else float(spacing[2])  # a 2D image's third axis: not known
    return Volume(slices, (float(spacing[1]), float(spacing[0])), positions, affine, thickness)


def _nrrd_affine(path: Path, header: dict, ndim: int) -> np.ndarray:
    """The 4 x 4 map of voxel indices ``(x, y, z)`` to NIfTI's world (RAS, mm) from the NRRD
    header: ``space directions`` (one vector per axis; else ``spacings``, axis-aligned),
    ``space origin``, ``space`` (LPS, LAS or RAS) and ``space units``. A 2D image's third
    axis is 1 mm along z."""
    given = header.get("space directions")
    if given is None and header.get("spacings") is not None:
        given = np.diag(np.asarray(header["spacings"], dtype=np.float64))
    try:
        directions = np.asarray(given, dtype=np.float64)
        if directions.ndim != 2 or directions.shape[0] != ndim or directions.shape[1] > 3:
            raise ValueError
        if not np.isfinite(directions).all():
            raise ValueError
    except (TypeError, ValueError):
        raise DataError.for_path(
            path,
            f"has no 'space directions' or 'spacings' for its {ndim} axes ({given!r}): its "
            "pixel spacing is unknown; save it with them (3D Slicer, SimpleITK and pynrrd do)",
        ) from None
    lengths = np.linalg.norm(directions, axis=1)
    if np.any(lengths <= 0):
        raise DataError.for_path(
            path,
            f"axis {int(np.argmin(lengths))} has a zero-length direction ({given!r}): give "
            "each axis its voxel size in 'space directions'",
        )
    units = header.get("space units") or ["mm"] * directions.shape[1]
    unknown = sorted({u for u in units if u not in _NRRD_UNITS})
    if unknown:
        raise DataError.for_path(
            path, f"has 'space units' {unknown}: give the space in {sorted(_NRRD_UNITS)}"
        )
    scale = np.ones(3)
    scale[: len(units)] = [_NRRD_UNITS[u] for u in units]
    signs = np.asarray(_NRRD_SPACES.get(header.get("space"), (1.0, 1.0, 1.0)))
    affine = np.eye(4)
    affine[: directions.shape[1], :ndim] = directions.T
    if ndim == 2:  # 1 mm along the image's normal
        normal = np.cross(affine[:3, 0], affine[:3, 1])
        affine[:3, 2] = normal / np.linalg.norm(normal)
    origin = np.asarray(header.get("space origin", np.zeros(3)), dtype=np.float64)
    affine[: len(origin), 3] = np.nan_to_num(origin)
    affine[:3] *= (signs * scale)[:, None]
    return affine


def _picture(path: Path) -> Volume:
    from PIL import Image, ImageSequence

    try:
        with Image.open(path) as picture:
            pages = [
                np.asarray(page.convert("F") if page.mode in ("RGB", "RGBA", "P", "LA") else page)
                for page in ImageSequence.Iterator(picture)
            ]
    except Exception as err:
        raise DataError.for_path(path, f"is not a readable PNG/TIFF image ({err})") from err
    pages = [p.astype(np.float32) for p in pages]
    return Volume(np.stack(pages), None)


def _numpy_stack(path: Path, what: str) -> np.ndarray:
    array = read_numpy(path)
    if not (np.issubdtype(array.dtype, np.floating) or np.issubdtype(array.dtype, np.integer)):
        raise DataError.for_path(path, f"expected a numeric array, got dtype {array.dtype}")
    if array.ndim == 2:
        array = array[None]
    if array.ndim != 3:
        raise DataError.for_path(path, f"expected {what} (H, W) or (S, H, W), got {array.shape}")
    return array.astype(np.float32)


def read_images(
    path: str | Path, units: str | None = None, rescale: tuple[float, float] | None = None
) -> ImageInput:
    """The image volume at ``path`` (see the module docstring); ``units`` overrides the
    format's default units (``"hu"`` or ``"image"``; DICOM is always HU); ``rescale``
    ``(slope, intercept)`` maps a non-DICOM file's stored values to those units
    (``value * slope + intercept``, as DICOM's rescale: e.g. ``(1, -1024)`` for a 16-bit PNG
    of HU + 1024)."""
    path = Path(path)
    read = _read_images(path, units)
    dicom = path.is_dir() or is_dicom(path)
    if rescale is not None:
        if dicom:
            raise ValueError(
                "--rescale is for PNG, TIFF, NumPy and NIfTI values: DICOM files hold their own "
                "(RescaleSlope, RescaleIntercept)"
            )
        slope, intercept = rescale
        read.volume.slices = read.volume.slices * np.float32(slope) + np.float32(intercept)
    check_finite(read.volume.slices, path)
    _check_slice_shape(read.volume.slices.shape, path)
    if not dicom:  # DICOM's units come from its own tags
        _check_units(read.volume.slices, read.units, path)
    return read


#: In HU, what image units (:data:`~learnct.physics.units.IMAGE_UNIT_RANGE`) would be: a
#: volume inside (-10, 10) HU is flat water, or image units mistaken for HU.
HU_FLAT = 10.0


def _check_units(slices: np.ndarray, units: str, path: Path) -> None:
    """A ``DataError`` with the fix when the values cannot be in ``units``: image units
    outside :data:`~learnct.physics.units.IMAGE_UNIT_RANGE` (HU, grey levels or HU + 1024
    read as attenuation), or
    "HU" that all lie within +-:data:`HU_FLAT` (attenuation read as HU); a note when "HU"
    has no air but reaches bone (HU + 1024 read as HU, or a slice inside the body)."""
    lo, hi = float(slices.min()), float(slices.max())
    if units == "image" and not in_image_units(slices):
        raise DataError.for_path(
            path,
            f"values {lo:g} to {hi:g} are not in image units (attenuation over the preset's "
            "mu; fan presets: air 0, water 1, bone about 2): for HU add --units hu; for "
            "stored values such as HU + 1024 (16-bit PNG/TIFF) add --units hu --rescale "
            "1,-1024; for other scales give --rescale slope,intercept to those units",
        )
    if units == "hu" and -HU_FLAT < lo and hi < HU_FLAT:
        raise DataError.for_path(
            path,
            f"values {lo:g} to {hi:g} are not HU of a CT slice (air -1000, water 0): for "
            "attenuation relative to water add --units image",
        )
    if units == "hu" and lo > -200 and hi > 1000:
        print(
            f"note: {path}: HU from {lo:g} to {hi:g}, no air: if the values are HU + 1024, "
            "add --rescale 1,-1024",
            file=sys.stderr,
        )


#: Slices more elongated than this (height / width or width / height) are refused.
MAX_ASPECT = 4.0


def _check_slice_shape(shape: tuple[int, ...], path: Path) -> None:
    """A ``DataError`` for slices no CT slice has: ``(H, W)`` more than :data:`MAX_ASPECT`
    times longer one way (e.g. a ``(H, W, 3)`` colour array read as ``H`` slices ``W x 3``)."""
    height, width = shape[1:]
    if max(height, width) > MAX_ASPECT * min(height, width):
        raise DataError.for_path(
            path,
            f"slices of {height} x {width} pixels: expected (H, W) or (slices, H, W) images "
            "(a colour array (H, W, 3)? save it as grey)",
        )


def _read_images(path: Path, units: str | None) -> ImageInput:
    if units is not None and units not in IMAGE_UNITS:
        raise ValueError(f"units={units!r} is not valid: choose one of {IMAGE_UNITS}")
    if not path.exists():
        raise DataError.for_path(path, "does not exist")
    suffix = _suffix(path)
    if path.is_dir() or is_dicom(path):
        if units == "image":
            raise ValueError("DICOM images are in Hounsfield units (units='hu')")
        return ImageInput(_dicom_series(path), "hu")
    if suffix in NIFTI_SUFFIXES:
        return ImageInput(_nifti(path), units or "hu")
    if suffix in NRRD_SUFFIXES:
        return ImageInput(_nrrd(path), units or "hu")
    if suffix in PICTURE_SUFFIXES:
        return ImageInput(_picture(path), units or "image")
    if suffix in (".npy", ".npz"):
        return ImageInput(Volume(_numpy_stack(path, "images"), None), units or "image")
    raise DataError.for_path(
        path,
        "is not a supported image input: a DICOM folder or file, NIfTI (.nii, .nii.gz), NRRD "
        "(.nrrd, .nhdr), PNG/TIFF or NumPy (.npy, .npz)",
    )


def read_sinograms(path: str | Path, mu_unit: float, key: str | None = None) -> np.ndarray:
    """The sinograms at ``path`` as ``(S, A, D)`` float32 line integrals in mm x image units
    of ``mu_unit`` (1/mm; used to convert LoDoPaB-CT's observations); ``key``: the dataset of
    an HDF5 file (default ``data``), refused for the files that have none to choose."""
    path = Path(path)
    if not path.is_file():
        raise DataError.for_path(path, "does not exist (expected a sinogram file)")
    suffix = _suffix(path)
    observation = suffix in HDF5_SUFFIXES and is_observation_file(path)
    if key is not None and (suffix not in HDF5_SUFFIXES or observation):
        kind = "a LoDoPaB-CT observation file" if observation else "not an HDF5 file"
        raise DataError.for_path(path, f"{kind}, and --key chooses an HDF5 dataset: drop it")
    if observation:
        return read_observation_file(path, mu_unit)
    if suffix in HDF5_SUFFIXES:
        array = read_hdf5_array(path, key or "data")
    elif suffix in (".npy", ".npz"):
        array = read_numpy(path)
        if not np.issubdtype(array.dtype, np.floating):
            raise DataError.for_path(
                path,
                f"sinograms must be floating point post-log line integrals, got {array.dtype} "
                "(counts? give -log(counts / photons))",
            )
        array = array.astype(np.float32)
        check_finite(array, path)
    else:
        raise DataError.for_path(
            path, "is not a supported sinogram file: NumPy (.npy, .npz) or HDF5 (.h5, .hdf5)"
        )
    if array.ndim == 2:
        array = array[None]
    if array.ndim != 3:
        raise DataError.for_path(path, f"expected sinograms (A, D) or (S, A, D), got {array.shape}")
    return array
