"""The real-CT test set: every real CT slice that installs here from a package registry.

``python -m learnct.data.real_ct`` (``make data-real-ct``) writes them into
``data/real_ct/test/`` for the ``folder`` source (``data=real_ct``: validation on ``ctlike``
phantoms, a disjoint source, so nothing is ever chosen on these slices):

=========================  ================  ===========================================
file                       from              what it is (pixel spacing, field)
=========================  ================  ===========================================
``693_J2KR.dcm``           pydicom-data      head, 0.48 mm (245 mm); lossless JPEG 2000
``explicit_VR-UN.dcm``     pydicom-data      abdomen (pancreas) with table, 0.86 mm (440 mm)
``bad_sequence.dcm``       pydicom-data      neck/upper back around the spine, 0.29 mm
                                             (147 mm: a zoomed reconstruction, the body is
                                             cut at its edges); JPEG Lossless (pylibjpeg)
``J2K_pixelrep_mismatch``  pydicom           head at the skull base, 0.43 mm (221 mm)
=========================  ================  ===========================================

Sources and licences: ``pydicom`` 3.0.2 (MIT; its ``pydicom/data/test_files``, installed with
it) and ``pydicom-data`` 1.0.0 (MIT; a 34 MB wheel fetched from PyPI by ``pip download``,
SHA-256 checked, as :mod:`learnct.data.sample_scans`). Left out, with the reason:
``693_UNCI/UNCR/J2KI`` (copies of the ``693`` head, lossless or lossy), ``CT_small.dcm``
(pydicom; "downsized to 128x128" from a 512 x 512 slice while its PixelSpacing of 0.66 mm was
kept, so its physical size is wrong by the downsizing factor), ``eCT_Supplemental.dcm``
(an enhanced multi-frame CT of a thresholded brain, no modality LUT in its top level), the
16 x 16 thumbnails of ``dicomdirtests``. Searched without finding other CT slices:
``pynetdicom`` (its ``CTImageStorage.dcm`` is ``CT_small``), ``deid``, ``highdicom``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from pathlib import Path

from learnct.data.errors import DataError
from learnct.data.sample_scans import (
    SAMPLE_SCANS,
    SampleScan,
    fetch_main,
    fetch_sample_scans,
    store_slice,
)

__all__ = ["PYDICOM_SLICES", "WHEEL_SLICES", "fetch_real_ct"]

DEFAULT_ROOT = Path("data/real_ct")
#: Slices of the pydicom-data wheel (see :mod:`learnct.data.sample_scans`).
WHEEL_SLICES = (
    *(scan for scan in SAMPLE_SCANS if scan.split == "test"),
    SampleScan(
        "data_store/data/bad_sequence.dcm",
        "test",
        "0677915e5c3e8c98498eb3d1b726ccf38ba0d8ada657c8ca7fe1b8b9b5890f4f",
    ),
)
#: Slices installed with pydicom (``pydicom/data/test_files``): name -> SHA-256.
PYDICOM_SLICES = {
    "J2K_pixelrep_mismatch.dcm": "2df92c523d36639e4d88f892f47e4f6616c48ab017a445a6241ffe38b2d07bbf",
}


def _pydicom_file(name: str) -> Path:
    """The installed test file ``name`` of pydicom (never downloaded: only its own folder)."""
    import pydicom

    path = Path(pydicom.__file__).parent / "data" / "test_files" / name
    if not path.is_file():
        raise DataError.for_path(path, "missing: reinstall pydicom==3.0.2")
    return path


def fetch_real_ct(
    root: str | Path = DEFAULT_ROOT, wheel_file: str | Path | None = None
) -> list[Path]:
    """Write every slice of the real-CT test set into ``root/test/``; the paths written.
    Every file's SHA-256 is checked; ``wheel_file``: a local pydicom-data wheel."""
    root = Path(root)
    written = fetch_sample_scans(root, wheel_file, scans=WHEEL_SLICES)
    for name, sha256 in PYDICOM_SLICES.items():
        source = _pydicom_file(name)
        data = source.read_bytes()
        if hashlib.sha256(data).hexdigest() != sha256:
            raise DataError.for_path(source, "has the wrong SHA-256 (pydicom 3.0.2?)")
        written.append(store_slice(root / "test" / name, data, sha256))
    return written


def main(argv: Sequence[str] | None = None) -> int:
    return fetch_main(
        argv,
        "learnct.data.real_ct",
        "Write the real-CT test set (pydicom and pydicom-data CT slices) into <root>/test/ "
        "for data=real_ct.",
        fetch_real_ct,
        DEFAULT_ROOT,
        'make eval EXP=fbp ARGS="data=real_ct data.folder_root={root}"',
    )


if __name__ == "__main__":
    raise SystemExit(main())
