"""Tests for the image sources: ellipses, Shepp-Logan, LoDoPaB HDF5, DICOM / NumPy folders."""

from __future__ import annotations

import logging
import math
import re

import h5py
import numpy as np
import pytest
import torch
from dicom_files import write_dicom

from learnct.data import (
    DataError,
    EllipsesDataset,
    FolderDataset,
    LoDoPaBDataset,
    SheppLoganDataset,
    derive_seed,
    fit_to_size,
    make_dataset,
)
from learnct.data.phantoms import random_ellipses, rasterize_ellipses, shepp_logan_ellipses


# ---- helpers that write real files ---------------------------------------------------------
def write_h5(path, array, key="data"):
    with h5py.File(path, "w") as f:
        f.create_dataset(key, data=array)


# ---- ellipses / Shepp-Logan ----------------------------------------------------------------
def test_ellipses_fixed_by_seed_split_and_index():
    ds = EllipsesDataset(32, length=4, split="val", seed=3)
    a, b = ds[1], EllipsesDataset(32, length=4, split="val", seed=3)[1]
    assert a["image"].shape == (1, 32, 32) and a["image"].dtype == torch.float32
    assert a["index"] == 1
    torch.testing.assert_close(a["image"], b["image"], rtol=0, atol=0)
    # Independent recomputation of the documented recipe: seed -> LPD ellipses -> clip at 0.
    gen = torch.Generator().manual_seed(derive_seed(3, "ellipses", "val", 1))
    expected = rasterize_ellipses(random_ellipses(gen), 32).clamp_min(0)
    torch.testing.assert_close(a["image"][0], expected, rtol=0, atol=0)
    others = [
        ds[2]["image"],
        EllipsesDataset(32, 4, split="test", seed=3)[1]["image"],
        EllipsesDataset(32, 4, split="val", seed=4)[1]["image"],
    ]
    for other in others:
        assert not torch.equal(a["image"], other)


def test_ellipses_clipping_and_value_range():
    raw = EllipsesDataset(64, 40, seed=1, clip_min=None)
    clipped = EllipsesDataset(64, 40, seed=1)
    raws = torch.stack([raw[i]["image"] for i in range(40)])
    clips = torch.stack([clipped[i]["image"] for i in range(40)])
    assert raws.min() < 0  # the LPD recipe gives negative sums ...
    torch.testing.assert_close(clips, raws.clamp_min(0), rtol=0, atol=0)  # ... clipped at 0
    assert clips.max() < 3 and clips.mean() > 0.02  # roughly [0, ~2] density units


def test_ellipses_stream_index_beyond_length():
    ds = EllipsesDataset(16, length=2)
    assert len(ds) == 2
    assert not torch.equal(ds[5]["image"], ds[1]["image"])  # the infinite training stream


def test_shepp_logan_same_image_every_index():
    ds = SheppLoganDataset(32, length=3)
    expected = rasterize_ellipses(shepp_logan_ellipses(), 32)
    for i in range(3):
        torch.testing.assert_close(ds[i]["image"][0], expected, rtol=0, atol=0)
        assert ds[i]["index"] == i
    assert float(expected.max()) == pytest.approx(1.0)
    with pytest.raises(IndexError):
        ds[3]


# ---- resize policy -------------------------------------------------------------------------
def test_fit_to_size_policy():
    const = torch.full((50, 50), 0.7)
    torch.testing.assert_close(fit_to_size(const, 16), torch.full((1, 16, 16), 0.7))
    torch.testing.assert_close(fit_to_size(const[:8, :8], 32), torch.full((1, 32, 32), 0.7))
    same = torch.rand(20, 20)
    assert torch.equal(fit_to_size(same, 20)[0], same)
    # Non-square: centre crop to the shorter side (rows 3..12 of 16 here).
    tall = torch.zeros(16, 10)
    tall[3:13] = torch.arange(10, dtype=torch.float32)[:, None]
    tall[:3], tall[13:] = -1.0, -1.0
    out = fit_to_size(tall, 10)
    assert out.shape == (1, 10, 10) and out.min() >= 0
    torch.testing.assert_close(out[0, :, 0], torch.arange(10, dtype=torch.float32))
    # Downsampling is antialiased: a one-pixel checkerboard averages out to its mean.
    checker = (torch.arange(64)[:, None] + torch.arange(64)[None, :]) % 2
    down = fit_to_size(checker.float(), 16)
    assert (down - 0.5).abs().max() < 0.05


# ---- LoDoPaB-CT ----------------------------------------------------------------------------
def _lodopab_files(root, split="test", counts=(3, 2), side=362, seed=0):
    rng = np.random.default_rng(seed)
    name = {"val": "validation"}.get(split, split)
    arrays = []
    for k, n in enumerate(counts):
        arr = rng.random((n, side, side), dtype=np.float32)
        write_h5(root / f"ground_truth_{name}_{k:03d}.hdf5", arr)
        arrays.append(arr)
    return arrays


def test_lodopab_index_mapping_and_round_trip(tmp_path):
    # 11 files so that numeric order (000, 001, ..., 010) differs from creation order.
    counts = (3, 2, 1, 1, 1, 1, 1, 1, 1, 1, 2)
    arrays = _lodopab_files(tmp_path, "val", counts, side=24)
    ds = LoDoPaBDataset(tmp_path, "val", image_size=24)
    assert len(ds) == sum(counts)
    assert ds.locate(3) == (1, 0) and ds.locate(len(ds) - 1) == (10, 1)
    flat = np.concatenate(arrays)
    for i in (0, 2, 3, 4, len(ds) - 1):
        sample = ds[i]
        assert sample["index"] == i
        np.testing.assert_array_equal(sample["image"][0].numpy(), flat[i])
    # Resized to the geometry by the documented policy.
    small = LoDoPaBDataset(tmp_path, "val", image_size=12)
    torch.testing.assert_close(small[4]["image"], fit_to_size(torch.from_numpy(flat[4]), 12))
    with pytest.raises(IndexError):
        ds[len(ds)]
    # Units: LoDoPaB's mu / mu_max -> the preset's unit (here water-relative density).
    water = LoDoPaBDataset(tmp_path, "val", image_size=24, mu_unit=0.02)
    factor = 81.35858e-3 / 0.02
    np.testing.assert_allclose(water[4]["image"][0].numpy(), flat[4] * factor, rtol=1e-6)


def test_lodopab_official_size_files(tmp_path):
    arrays = _lodopab_files(tmp_path, "test", (2,), side=362)
    ds = LoDoPaBDataset(tmp_path, "test", image_size=128)
    assert ds[1]["image"].shape == (1, 128, 128)
    assert abs(float(ds[1]["image"].mean()) - float(arrays[0][1].mean())) < 1e-3


def test_lodopab_missing_folder_and_files(tmp_path):
    with pytest.raises(DataError, match=r"(?s)does not exist.*zenodo.*3384092"):
        LoDoPaBDataset(tmp_path / "nowhere", "train", 32)
    _lodopab_files(tmp_path, "test", (1,), side=8)
    with pytest.raises(DataError, match=r"ground_truth_validation_NNN\.hdf5.*zenodo"):
        LoDoPaBDataset(tmp_path, "val", 8)


def test_lodopab_bad_files(tmp_path):
    bad = tmp_path / "ground_truth_test_000.hdf5"
    write_h5(bad, np.zeros((2, 8, 8), np.float32), key="images")
    with pytest.raises(DataError, match=r"ground_truth_test_000\.hdf5.*no dataset 'data'"):
        LoDoPaBDataset(tmp_path, "test", 8)
    write_h5(bad, np.zeros((8, 8), np.float32))
    with pytest.raises(DataError, match=r"ground_truth_test_000\.hdf5.*\(n_slices, H, H\)"):
        LoDoPaBDataset(tmp_path, "test", 8)
    write_h5(bad, np.zeros((2, 8, 6), np.float32))
    with pytest.raises(DataError, match=r"000\.hdf5.*got \(2, 8, 6\)"):
        LoDoPaBDataset(tmp_path, "test", 8)
    write_h5(bad, np.zeros((2, 8, 8), np.int32))
    with pytest.raises(DataError, match="floating point"):
        LoDoPaBDataset(tmp_path, "test", 8)
    write_h5(bad, np.zeros((2, 8, 8), np.float32))
    write_h5(tmp_path / "ground_truth_test_001.hdf5", np.zeros((2, 6, 6), np.float32))
    with pytest.raises(DataError, match=r"001\.hdf5: slices are 6x6 but .*000\.hdf5 has 8x8"):
        LoDoPaBDataset(tmp_path, "test", 8)
    (tmp_path / "ground_truth_test_001.hdf5").write_bytes(b"not an hdf5 file at all" * 10)
    with pytest.raises(DataError, match=r"001\.hdf5: is not a readable HDF5 file"):
        LoDoPaBDataset(tmp_path, "test", 8)


def test_lodopab_nan_slice_named(tmp_path):
    arr = np.zeros((2, 8, 8), np.float32)
    arr[1, 2, 2] = np.nan
    write_h5(tmp_path / "ground_truth_train_000.hdf5", arr)
    ds = LoDoPaBDataset(tmp_path, "train", 8)
    ds[0]
    with pytest.raises(DataError, match=r"train_000\.hdf5: contains NaN .* slice 1"):
        ds[1]


def test_lodopab_observations_layout(tmp_path):
    _lodopab_files(tmp_path, "test", (2,), side=8)
    obs = np.arange(2 * 5 * 7, dtype=np.float32).reshape(2, 5, 7)
    write_h5(tmp_path / "observation_test_000.hdf5", obs)
    ds = LoDoPaBDataset(tmp_path, "test", 8, observations=True, sinogram_shape=(5, 7))
    np.testing.assert_allclose(ds[1]["observation"][0].numpy(), obs[1] * 1000)  # m -> mm
    water = LoDoPaBDataset(
        tmp_path, "test", 8, observations=True, sinogram_shape=(5, 7), mu_unit=0.02
    )
    np.testing.assert_allclose(
        water[1]["observation"][0].numpy(), obs[1] * 1000 * 81.35858e-3 / 0.02, rtol=1e-6
    )
    with pytest.raises(DataError, match=r"observation_test_000\.hdf5.*\(2, 6, 7\)"):
        LoDoPaBDataset(tmp_path, "test", 8, observations=True, sinogram_shape=(6, 7))
    with pytest.raises(ValueError, match="image_size is 4"):
        LoDoPaBDataset(tmp_path, "test", 4, observations=True, sinogram_shape=(5, 7))
    (tmp_path / "observation_test_000.hdf5").unlink()
    with pytest.raises(DataError, match=r"observation_test_000\.hdf5 is missing"):
        LoDoPaBDataset(tmp_path, "test", 8, observations=True, sinogram_shape=(5, 7))


def test_lodopab_handles_are_lazy_and_not_pickled(tmp_path):
    import pickle

    _lodopab_files(tmp_path, "test", (2,), side=8)
    ds = LoDoPaBDataset(tmp_path, "test", 8)
    assert ds._handles == {}  # nothing opened by the constructor
    first = ds[0]["image"]
    assert len(ds._handles) == 1
    clone = pickle.loads(pickle.dumps(ds))
    assert clone._handles == {}
    torch.testing.assert_close(clone[0]["image"], first, rtol=0, atol=0)
    ds.close()


# ---- folder of DICOM / NumPy slices ----------------------------------------------------------
def test_dicom_round_trip_to_water_relative_density(tmp_path):
    stored = np.array([[0, 1024, 2024, 3024]] * 4, dtype=np.int16)  # HU -1024, 0, 1000, 2000
    write_dicom(tmp_path / "a.dcm", stored)
    write_dicom(tmp_path / "b", stored, slope=0.5, intercept=0.0)  # no extension, DICM magic
    ds = FolderDataset(tmp_path, image_size=4)
    assert [p.name for p in ds.files] == ["a.dcm", "b"]
    expected = np.clip(1 + (stored * 1.0 - 1024) / 1000, 0, None)
    np.testing.assert_allclose(ds[0]["image"][0].numpy(), expected, rtol=1e-6)
    np.testing.assert_allclose(ds[1]["image"][0].numpy(), 1 + stored * 0.5 / 1000, rtol=1e-6)
    # Another image unit (e.g. LoDoPaB's mu_max normalisation): mu / mu_unit.
    other = FolderDataset(tmp_path, image_size=4, mu_water=0.02, mu_unit=0.08)
    np.testing.assert_allclose(other[0]["image"][0].numpy(), expected / 4, rtol=1e-6)


def test_numpy_slices_round_trip_and_resize(tmp_path):
    a = np.random.default_rng(0).random((8, 8)).astype(np.float32)
    np.save(tmp_path / "s0.npy", a)
    np.save(tmp_path / "s1.npy", a[None].astype(np.float64))
    np.savez(tmp_path / "s2.npz", other=np.zeros(3), image=2 * a)
    np.savez_compressed(tmp_path / "s3.npz", 3 * a)
    np.save(tmp_path / "s4.npy", np.ones((12, 16), np.float32))
    (tmp_path / "notes.txt").write_text("ignored")
    ds = FolderDataset(tmp_path, image_size=8)
    assert len(ds) == 5
    for i, factor in enumerate((1, 1, 2, 3)):
        np.testing.assert_allclose(ds[i]["image"][0].numpy(), factor * a, rtol=1e-6)
    torch.testing.assert_close(ds[4]["image"], torch.ones(1, 8, 8))
    assert ds[4]["image"].dtype == torch.float32


@pytest.mark.parametrize(
    ("scale", "offset", "shown"),
    [(1000.0, -1000.0, "-1000 to 0"), (1000.0, 0.0, "0 to 1000")],  # HU; grey levels
)
def test_numpy_slices_outside_image_units_are_refused_with_the_conversion(
    tmp_path, scale, offset, shown
):
    """NumPy values are taken as image units (water 1): a water disc in HU or in grey levels
    would give line integrals hundreds of times too long (a saturated sinogram): refused."""
    disc = np.zeros((8, 8), np.float32)
    disc[2:6, 2:6] = 1
    np.save(tmp_path / "disc.npy", disc * scale + offset)
    ds = FolderDataset(tmp_path, image_size=8)
    with pytest.raises(DataError, match=rf"disc\.npy: values {shown} are not in image units"):
        ds[0]


def test_numpy_byte_order_memory_order_and_format_versions(tmp_path):
    """NumPy's reader takes Fortran order, big-endian data and .npy format 1.0, 2.0 and 3.0
    (the old header check passed 1.0 and 2.0 but refused 3.0 with "module 'numpy.lib.format'
    has no attribute '_read_array_header'"); an unknown version is refused by number."""
    a = (np.arange(16, dtype=np.float32).reshape(4, 4) / 7) ** 2  # not symmetric
    np.save(tmp_path / "a_fortran.npy", np.asfortranarray(a))
    np.save(tmp_path / "b_big_endian.npy", a.astype(">f8"))
    for major in (2, 3):
        with open(tmp_path / f"c_v{major}.npy", "wb") as f:
            np.lib.format.write_array(f, a, version=(major, 0))
    ds = FolderDataset(tmp_path, image_size=4)
    assert [p.read_bytes()[6] for p in ds.files] == [1, 1, 2, 3]  # the format's major version
    assert np.load(ds.files[0]).flags.f_contiguous
    for i in range(len(ds)):
        np.testing.assert_array_equal(ds.read(i)[0], a)  # a transposed or byte-swapped read differs
        torch.testing.assert_close(ds[i]["image"], torch.from_numpy(a)[None], rtol=0, atol=0)

    raw = bytearray((tmp_path / "c_v2.npy").read_bytes())
    raw[6] = 4
    (tmp_path / "c_v2.npy").write_bytes(bytes(raw))
    with pytest.raises(
        DataError,
        match=r"c_v2\.npy: is not a valid NumPy file \(unsupported .npy format version 4\.0\)",
    ):
        FolderDataset(tmp_path, image_size=4)


def test_a_folder_without_split_subfolders_is_a_test_set_only(tmp_path):
    """Every split of a flat folder would read the same slices: it serves testing alone."""
    np.save(tmp_path / "x.npy", np.full((4, 4), 3.0, np.float32))
    assert (
        float(make_dataset("folder", "test", image_size=4, folder_root=tmp_path)[0]["image"].mean())
        == 3.0
    )
    for split in ("train", "val"):
        with pytest.raises(
            DataError,
            match=rf"no train/, val/ or test/ subfolders: .* the {split} split would read",
        ):
            make_dataset("folder", split, image_size=4, folder_root=tmp_path)


def test_folder_split_subfolders(tmp_path):
    for split, value in (("train", 1.0), ("validation", 2.0), ("test", 3.0)):
        (tmp_path / split).mkdir()
        np.save(tmp_path / split / "x.npy", np.full((4, 4), value, np.float32))
    for split, value in (("train", 1.0), ("val", 2.0), ("test", 3.0)):
        ds = make_dataset("folder", split, image_size=4, folder_root=tmp_path)
        assert float(ds[0]["image"].mean()) == value

    # Some split folders but not the one asked for: refused, never the whole tree.
    (tmp_path / "train" / "x.npy").unlink()
    (tmp_path / "train").rmdir()
    with pytest.raises(DataError, match=r"has validation/, test/ but no train/"):
        make_dataset("folder", "train", image_size=4, folder_root=tmp_path)
    assert (
        float(make_dataset("folder", "test", image_size=4, folder_root=tmp_path)[0]["image"].mean())
        == 3.0
    )


def test_folder_errors(tmp_path):
    with pytest.raises(DataError, match=r"nowhere does not exist.*data/README\.md"):
        FolderDataset(tmp_path / "nowhere", 8)
    # the folders make targets write name their target (data=real_ct before make data-real-ct)
    fix = rf'write it with make data-real-ct ARGS="--root {tmp_path / "data" / "real_ct"}"'
    with pytest.raises(DataError, match=rf"real_ct does not exist: {re.escape(fix)}"):
        make_dataset("folder", "test", image_size=8, folder_root=tmp_path / "data" / "real_ct")
    with pytest.raises(DataError, match=r"pydicom_ct does not exist: write it with make data-sam"):
        FolderDataset(tmp_path / "pydicom_ct", 8)
    (tmp_path / "readme.txt").write_text("no slices here")
    with pytest.raises(DataError, match="holds no slices"):
        FolderDataset(tmp_path, 8)
    bad = tmp_path / "x.npy"
    bad.write_bytes(b"garbage, not numpy")
    with pytest.raises(DataError, match=r"x\.npy: is not a valid NumPy file"):
        FolderDataset(tmp_path, 8)
    np.save(bad, np.zeros((2, 4, 4)))
    with pytest.raises(DataError, match=r"x\.npy: expected one 2D slice .* \(2, 4, 4\)"):
        FolderDataset(tmp_path, 8)
    np.save(bad, np.array(["a", "b"]))
    with pytest.raises(DataError, match=r"x\.npy: expected a numeric array"):
        FolderDataset(tmp_path, 8)
    nan = np.zeros((4, 4))
    nan[1, 1] = np.inf
    np.save(bad, nan)
    with pytest.raises(DataError, match=r"x\.npy: contains NaN or infinite"):
        FolderDataset(tmp_path, 8)[0]
    bad.unlink()
    np.savez(tmp_path / "e.npz")
    with pytest.raises(DataError, match=r"e\.npz: .*holds no arrays"):
        FolderDataset(tmp_path, 8)


def test_folder_dicom_errors(tmp_path):
    (tmp_path / "c.dcm").write_bytes(b"\x00" * 50)
    with pytest.raises(DataError, match=r"c\.dcm: is not a readable DICOM file"):
        FolderDataset(tmp_path, 8)
    write_dicom(tmp_path / "c.dcm", np.zeros((4, 4), np.int16), rescale=False)
    with pytest.raises(DataError, match=r"c\.dcm: DICOM without RescaleSlope"):
        FolderDataset(tmp_path, 8)


def test_truncated_numpy_fails_when_the_dataset_is_built(tmp_path):
    path = tmp_path / "t.npy"
    np.save(path, np.zeros((16, 16), np.float32))
    path.write_bytes(path.read_bytes()[:-100])  # header intact, data cut short
    with pytest.raises(
        DataError,
        match=r"t\.npy: truncated \(its header says \(16, 16\) float32: 1024 bytes of data "
        r"after the 128-byte header; the file holds 924\)$",
    ):
        FolderDataset(tmp_path, 8)
    np.save(path, np.zeros((16, 16), np.float32))
    path.write_bytes(path.read_bytes() + b"\0" * 8)  # trailing bytes: np.load ignores them
    assert FolderDataset(tmp_path, 8)[0]["image"].shape == (1, 8, 8)


def test_truncated_dicom_fails_when_the_dataset_is_built(tmp_path):
    """The pixel data is checked against the file's length and Rows x Columns x BitsAllocated
    without reading it."""
    import pydicom

    path = tmp_path / "c.dcm"
    write_dicom(path, np.zeros((8, 8), np.int16))  # 128 bytes of pixel data at the end
    whole = path.read_bytes()
    path.write_bytes(whole[:-10])
    with pytest.raises(
        DataError,
        match=r"c\.dcm: truncated \(its pixel data element declares 128 bytes; the file holds "
        r"118 after it\)$",
    ):
        FolderDataset(tmp_path, 8)
    path.write_bytes(whole[:-140])  # the pixel data element's header cut too
    with pytest.raises(DataError, match=r"c\.dcm: truncated \(no pixel data after the header\)"):
        FolderDataset(tmp_path, 8)
    path.write_bytes(whole)
    ds = pydicom.dcmread(path)
    ds.Rows = 16  # the pixel data holds 8 x 8 pixels
    ds.save_as(path)
    with pytest.raises(
        DataError,
        match=r"c\.dcm: truncated \(its pixel data holds 128 bytes; 16 x 8 pixels of 16 bits "
        r"need 256\)$",
    ):
        FolderDataset(tmp_path, 8)


def test_compressed_dicom_passes_the_header_check_and_reads(tmp_path):
    """Compressed pixel data has no length to check cheaply: it is checked when decoded."""
    import pydicom
    from pydicom.uid import RLELossless

    stored = np.arange(64, dtype=np.int16).reshape(8, 8)
    write_dicom(tmp_path / "c.dcm", stored)
    ds = pydicom.dcmread(tmp_path / "c.dcm")
    ds.compress(RLELossless)
    ds.save_as(tmp_path / "c.dcm")
    image, _ = FolderDataset(tmp_path, 8).read(0)
    np.testing.assert_allclose(image, np.clip(1 + (stored - 1024.0) / 1000, 0, None), rtol=1e-6)


# ---- factory ---------------------------------------------------------------------------------
def test_make_dataset_checks(tmp_path):
    with pytest.raises(ValueError, match=r"unknown data source 'mnist'.*ellipses.*folder"):
        make_dataset("mnist", "train", image_size=8)
    with pytest.raises(ValueError, match="unknown split"):
        make_dataset("ellipses", "training", image_size=8, size=2)
    with pytest.raises(ValueError, match="size must be an integer >= 1"):
        make_dataset("ellipses", "val", image_size=8, size=0)
    with pytest.raises(ValueError, match="needs folder_root"):
        make_dataset("folder", "val", image_size=8)
    _lodopab_files(tmp_path, "test", (3,), side=8)
    assert len(make_dataset("lodopab", "test", image_size=8, lodopab_root=tmp_path)) == 3
    head = make_dataset("lodopab", "test", image_size=8, size=2, lodopab_root=tmp_path)
    assert len(head) == 2
    with pytest.raises(
        DataError,
        match=r"size 4 requested but there are only 3 slices in the LoDoPaB-CT test files",
    ):
        make_dataset("lodopab", "test", image_size=8, size=4, lodopab_root=tmp_path)


# ---- physical size of DICOM slices -----------------------------------------------------------
def _disc_slice(n: int, spacing: float, diameter_mm: float, hu: float = 1000.0) -> np.ndarray:
    """Stored values (intercept -1024) of a disc of ``diameter_mm`` and ``hu`` in air."""
    c = (np.arange(n) - (n - 1) / 2) * spacing
    inside = c[:, None] ** 2 + c[None, :] ** 2 <= (diameter_mm / 2) ** 2
    return np.where(inside, hu + 1024, -1000 + 1024).astype(np.int16)


@pytest.mark.parametrize(
    ("n", "spacing", "size", "pixel_size"),
    [(200, 0.5, 64, 2.0), (40, 3.0, 64, 2.0), (300, 0.9, 64, 2.0)],  # shrink+pad, grow+pad, crop
)
def test_dicom_keeps_its_physical_size(tmp_path, caplog, n, spacing, size, pixel_size):
    """A disc of 60 mm must be 30 pixels of 2 mm across (its area ~ pi 15^2 pixels) whatever
    the file's spacing; outside the slice is air (0); HU 1000 is 2 x water."""
    write_dicom(tmp_path / "d.dcm", _disc_slice(n, spacing, 60.0), spacing=(spacing, spacing))
    ds = FolderDataset(tmp_path, image_size=size, pixel_size=pixel_size)
    with caplog.at_level(logging.INFO, logger="learnct.data.sources.folder"):
        image = ds[0]["image"][0]
    assert image.shape == (size, size)
    air = 0.0  # HU -1000
    assert float(image[0, 0]) == pytest.approx(air, abs=1e-6)
    area = float((image - air).sum() / (2.0 - air))  # pixels of disc (antialiased edges)
    assert area == pytest.approx(math.pi * 15**2, rel=0.03)
    assert float(image[size // 2, size // 2]) == pytest.approx(2.0, rel=1e-4)
    assert "d.dcm" in caplog.text and f"px of {pixel_size:g} mm" in caplog.text
    assert ds.placement["d.dcm"].endswith(f"({size * pixel_size:.0f} mm) field")
    action = "cropped" if n * spacing > size * pixel_size else "padded with air"
    assert action in ds.placement["d.dcm"]
    # Fitting to the field instead stretches the whole file over the field.
    fitted = FolderDataset(tmp_path, image_size=size, pixel_size=pixel_size, fit="field")[0]
    fitted_area = float(fitted["image"][0].sum() / 2.0)
    expected = math.pi * (60 / 2 / (n * spacing / size)) ** 2
    assert fitted_area == pytest.approx(expected, rel=0.03)


def test_dicom_modality_lut_and_missing_spacing(tmp_path):
    """HU from pydicom's modality LUT: mu/mu_water = 1 + HU/1000 (water 1, fat ~0.9, bone
    >1); spacing mode refuses a DICOM without PixelSpacing, naming the fix."""
    stored = np.array([[0, 24, 100, 2024]] * 4, dtype=np.int16)
    write_dicom(tmp_path / "a.dcm", stored * 2, slope=0.5, intercept=-1024.0, spacing=(2.0, 2.0))
    image = FolderDataset(tmp_path, image_size=4, pixel_size=2.0)[0]["image"][0]
    np.testing.assert_allclose(image[0].numpy(), [0.0, 0.0, 0.076, 2.0], atol=1e-6)  # HU -1024..
    write_dicom(tmp_path / "a.dcm", stored + 1024 - 100, spacing=(2.0, 2.0))  # HU -100..1900
    image = FolderDataset(tmp_path, image_size=4, pixel_size=2.0)[0]["image"][0]
    np.testing.assert_allclose(image[0].numpy(), [0.9, 0.924, 1.0, 2.924], rtol=1e-5)
    write_dicom(tmp_path / "a.dcm", stored)
    with pytest.raises(DataError, match=r"a\.dcm: has no valid PixelSpacing.*folder_fit=field"):
        FolderDataset(tmp_path, image_size=4, pixel_size=2.0)
    first = FolderDataset(tmp_path, image_size=4, pixel_size=2.0, fit="field")[0]["image"]
    assert first.shape == (1, 4, 4)
    # fitting to the field reads no spacing, so an invalid one does not stop it either
    write_dicom(tmp_path / "a.dcm", stored, spacing=(0.0, 0.0))
    fitted = FolderDataset(tmp_path, image_size=4, pixel_size=2.0, fit="field")
    assert fitted[0]["image"].shape == (1, 4, 4)
    assert fitted.placement["a.dcm"] == "4x4 px fitted to the field (fitting asked for)"
    with pytest.raises(ValueError, match=r"unknown folder fit 'stretch'"):
        FolderDataset(tmp_path, image_size=4, fit="stretch")
