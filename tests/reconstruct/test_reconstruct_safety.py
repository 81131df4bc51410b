"""``learnct-reconstruct`` with the input and output mistakes a user makes: outputs are never
written over the input or an earlier result unless asked; values in the wrong units, NaN or
integer sinograms, slices of two at one position and colour arrays are refused with the fix;
UID-named DICOM files are read; a NIfTI output keeps the input's orientation; a crop says so;
options the input would ignore are refused."""

from __future__ import annotations

import json
from pathlib import Path

import nibabel
import numpy as np
import pydicom
import pytest
from PIL import Image

from data.dicom_files import write_dicom
from learnct.data.sources.slice_files import is_dicom
from learnct.reconstruct.cli import reconstruct

#: A small parallel geometry (fast): 64^2 pixels of 4 mm, a 256 mm field.
SMALL = {"kind": "parallel", "image_size": 64, "n_angles": 60, "n_detectors": 91}
SMALL |= {"pixel_size": 4.0}


def _disc(n: int = 64) -> np.ndarray:
    """Image units: air 0, a water disc of radius n / 3 pixels, a 1.8 insert."""
    yy, xx = np.mgrid[:n, :n]
    r = np.hypot(yy - (n - 1) / 2, xx - (n - 1) / 2)
    image = np.where(r < n / 3, 1.0, 0.0).astype(np.float32)
    image[r < n / 10] = 1.8
    return image


@pytest.fixture
def run(tmp_path):
    """``reconstruct`` with FBP on :data:`SMALL`, quiet; returns the files written."""
    (tmp_path / "g.yaml").write_text(json.dumps(SMALL))

    def call(*options: str) -> list:
        base = ["--method", "fbp", "--geometry-file", str(tmp_path / "g.yaml"), "--quiet"]
        return reconstruct([*base, *options])

    return call


def _refused(capsys, call, *options: str) -> str:
    with pytest.raises(SystemExit) as exit_:
        call(*options)
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    return err.strip().splitlines()[-1]


def test_an_output_never_replaces_the_input_or_an_earlier_result_unless_asked(
    tmp_path, run, capsys
):
    source = tmp_path / "scan.npy"
    np.save(source, np.stack([_disc()] * 5))
    kept = source.read_bytes()
    err = _refused(capsys, run, "--images", str(source), "--output", str(source))
    assert "would write over the input" in err and source.read_bytes() == kept
    out = tmp_path / "recon.npy"
    run("--images", str(source), "--output", str(out))
    err = _refused(capsys, run, "--images", str(source), "--output", str(out))
    assert f"--output {out} exists" in err and "--overwrite" in err
    np.save(source, np.stack([_disc() * 1.5] * 5))
    run("--images", str(source), "--output", str(out), "--overwrite")
    assert np.load(out)[0].max() > 1000  # the new reconstruction (1.8 x 1.5 = 2.7: 1700 HU)
    # a DICOM folder: a second, shorter volume replaces every slice of the first
    folder = tmp_path / "series"
    run("--images", str(source), "--output", str(folder))
    short = tmp_path / "short.npy"
    np.save(short, np.stack([_disc()] * 2))
    err = _refused(capsys, run, "--images", str(short), "--output", str(folder))
    assert "is not empty" in err and "--overwrite" in err
    run("--images", str(short), "--output", str(folder), "--overwrite")
    files = sorted(folder.glob("*.dcm"))
    assert len(files) == 2
    assert len({pydicom.dcmread(f).SeriesInstanceUID for f in files}) == 1
    # an input inside the output folder is never replaced, even with --overwrite
    err = _refused(capsys, run, "--images", str(files[0]), "--output", str(folder), "--overwrite")
    assert "would write over the input" in err
    hidden = tmp_path / "hidden"
    hidden.mkdir()
    (hidden / ".DS_Store").write_text("")
    run("--images", str(short), "--output", str(hidden))  # hidden files only: empty


@pytest.mark.parametrize(
    ("values", "options", "fix"),
    [
        (lambda: _disc() * 1000 - 1000, [], "values -1000 to 800 are not in image units"),
        (lambda: _disc() * 1000 + 24, [], "values 24 to 1824 are not in image units"),
        (lambda: _disc() - 5, [], "values -5 to -3.2 are not in image units"),
        (lambda: _disc(), ["--units", "hu"], "for attenuation relative to water add --units image"),
    ],
)
def test_values_that_cannot_be_in_the_units_are_refused_with_the_fix(
    tmp_path, run, capsys, values, options, fix
):
    np.save(tmp_path / "img.npy", values())
    out = tmp_path / "o.npy"
    err = _refused(
        capsys, run, "--images", str(tmp_path / "img.npy"), *options, "--output", str(out)
    )
    assert fix in err and not out.exists()
    np.save(tmp_path / "hu.npy", _disc() * 1000 - 1000)
    run("--images", str(tmp_path / "hu.npy"), "--units", "hu", "--output", str(out))
    metal = _disc()
    metal[10:13, 30:33] = 30.0  # steel: about 30 times water, not a unit mistake
    np.save(tmp_path / "metal.npy", metal)
    run("--images", str(tmp_path / "metal.npy"), "--output", str(tmp_path / "m.npy"))


def test_hu_without_air_that_reach_bone_get_a_note(tmp_path, run, capsys):
    np.save(tmp_path / "offset.npy", _disc() * 1000 + 24)  # HU + 1024 given as HU
    run(
        "--images",
        str(tmp_path / "offset.npy"),
        "--units",
        "hu",
        "--output",
        str(tmp_path / "o.npy"),
    )
    assert "no air: if the values are HU + 1024, add --rescale 1,-1024" in capsys.readouterr().err


def test_dicom_files_named_by_uid_are_read_and_two_at_one_position_are_refused(
    tmp_path, run, capsys
):
    stored = (_disc() * 1000).astype(np.int16)  # HU + 1024 with intercept -1024
    folder = tmp_path / "pacs"
    folder.mkdir()
    for k in range(3):
        path = folder / f"1.2.840.113619.2.55.3.60{k}"
        write_dicom(path, stored, spacing=(4.0, 4.0))
        ds = pydicom.dcmread(path)
        ds.ImagePositionPatient = [0.0, 0.0, 5.0 * k]
        ds.save_as(path)
    assert is_dicom(folder / "1.2.840.113619.2.55.3.600")
    (tmp_path / "notes.600").write_bytes(b"x" * 200)  # a numeric suffix without the preamble
    assert not is_dicom(tmp_path / "notes.600")
    written = run("--images", str(folder), "--output", str(tmp_path / "o.npy"))
    assert np.load(written[0]).shape == (3, 64, 64)
    ds = pydicom.dcmread(folder / "1.2.840.113619.2.55.3.602")
    ds.ImagePositionPatient = [0.0, 0.0, 5.0]  # now two slices at 5 mm
    ds.save_as(folder / "1.2.840.113619.2.55.3.602")
    err = _refused(capsys, run, "--images", str(folder), "--output", str(tmp_path / "p.npy"))
    assert "lie at the same position 5 mm" in err


def test_nifti_keeps_the_inputs_orientation_and_refuses_uneven_slices(tmp_path, run, capsys):
    """A dcm2niix-style affine (x and y flipped, an origin) comes back with the same
    directions and slice centres at the output's 4 mm pixels."""
    hu = (_disc() * 1000 - 1000)[:, :48]  # 64 rows x 48 columns of 5 mm: cropped to 256 mm
    affine = np.diag([-5.0, -5.0, 3.0, 1.0])
    affine[:3, 3] = [100.0, 120.0, -40.0]
    source = tmp_path / "flip.nii.gz"
    nibabel.save(nibabel.Nifti1Image(np.stack([hu.T] * 2, -1), affine), source)
    out = tmp_path / "out.nii.gz"
    run("--images", str(source), "--output", str(out))
    assert "cropped to the geometry's 256 mm field of view (64 mm lost)" in capsys.readouterr().err
    written = nibabel.load(out).affine
    assert np.allclose(np.diag(written)[:3], [-4.0, -4.0, 3.0])

    def centre(a, shape):
        return nibabel.affines.apply_affine(a, [(shape[0] - 1) / 2, (shape[1] - 1) / 2, 1])

    assert np.allclose(centre(written, (64, 64)), centre(affine, (48, 64)))
    # a DICOM series of uneven spacing: NIfTI holds one spacing
    folder = tmp_path / "uneven"
    folder.mkdir()
    for k, z in enumerate([0.0, 1.0, 5.0]):
        write_dicom(folder / f"{k}.dcm", (_disc() * 1000).astype(np.int16), spacing=(4.0, 4.0))
        ds = pydicom.dcmread(folder / f"{k}.dcm")
        ds.ImagePositionPatient = [0.0, 0.0, z]
        ds.save_as(folder / f"{k}.dcm")
    err = _refused(capsys, run, "--images", str(folder), "--output", str(tmp_path / "u.nii.gz"))
    assert "unevenly spaced (1 to 4 mm apart)" in err and "write DICOM or NumPy" in err
    written = run("--images", str(folder), "--output", str(tmp_path / "u.npy"))
    record = json.loads(written[1].read_text())
    assert record["slice_positions_mm"] == [0.0, 1.0, 5.0]


def test_sinograms_that_are_not_line_integrals_are_refused(tmp_path, run, capsys):
    sino = np.ones((60, 91), np.float32)
    sino[3, 4] = np.nan
    np.save(tmp_path / "nan.npy", sino)
    err = _refused(
        capsys, run, "--sinograms", str(tmp_path / "nan.npy"), "--output", str(tmp_path / "o.npy")
    )
    assert "nan.npy: contains NaN or infinite values" in err
    np.save(tmp_path / "counts.npy", np.full((60, 91), 9000, np.int32))
    err = _refused(
        capsys,
        run,
        "--sinograms",
        str(tmp_path / "counts.npy"),
        "--output",
        str(tmp_path / "o.npy"),
    )
    assert "must be floating point post-log line integrals, got int32" in err


@pytest.mark.parametrize(
    ("source", "options", "message"),
    [
        ("sino", ["--photons", "1e4"], "--photons: only with --images (simulated data)"),
        (
            "sino",
            ["--units", "hu", "--rescale", "1,-1024"],
            "--units, --rescale: only with --images",
        ),
        ("image", ["--key", "obs"], "--key: only with --sinograms"),
        ("sino", ["--key", "obs"], "sino.npy: not an HDF5 file, and --key chooses an HDF5 dataset"),
        ("sino", ["--allow-geometry-mismatch"], "--allow-geometry-mismatch: for a --model"),
        ("image", ["--window", "-200,200"], "--window: the PNG window; numpy stores HU"),
        ("image", ["--format", "nifti"], "is named as a numpy file, and --format is nifti"),
    ],
)
def test_options_the_input_or_output_would_ignore_are_refused(
    tmp_path, run, capsys, source, options, message
):
    np.save(tmp_path / "sino.npy", np.ones((60, 91), np.float32))
    np.save(tmp_path / "image.npy", _disc())
    flag = "--sinograms" if source == "sino" else "--images"
    err = _refused(
        capsys,
        run,
        flag,
        str(tmp_path / f"{source}.npy"),
        *options,
        "--output",
        str(tmp_path / "o.npy"),
    )
    assert message in err


def test_a_negative_window_a_grey_alpha_png_and_a_colour_array(tmp_path, run, capsys):
    grey = (_disc() / 2 * 255).astype(np.uint8)
    Image.fromarray(np.stack([grey, np.full_like(grey, 255)], -1), "LA").save(tmp_path / "la.png")
    out = tmp_path / "png"
    run(
        "--images",
        str(tmp_path / "la.png"),
        "--rescale",
        "0.00784,0",
        "--format",
        "png",
        "--output",
        str(out),
        "--window",
        "-200,200",
    )
    assert json.loads((out / "provenance.json").read_text())["window_hu"] == [-200.0, 200.0]
    np.save(tmp_path / "rgb.npy", np.stack([_disc()] * 3, -1))
    err = _refused(
        capsys, run, "--images", str(tmp_path / "rgb.npy"), "--output", str(tmp_path / "o.npy")
    )
    assert "slices of 64 x 3 pixels" in err and "colour array" in err


def test_a_geometry_file_without_its_required_fields_is_refused(tmp_path, run, capsys):
    (tmp_path / "g.yaml").write_text("kind: fan\nimage_size: 64\nn_angles: 60\n")
    np.save(tmp_path / "image.npy", _disc())
    err = _refused(
        capsys, run, "--images", str(tmp_path / "image.npy"), "--output", str(tmp_path / "o.npy")
    )
    assert "missing n_detectors, pixel_size (required: kind, image_size" in err


def test_a_nifti_outputs_affine_puts_each_pixel_where_the_input_had_it(tmp_path, run, capsys):
    """Anisotropic pixels (3.3 x 4.7 mm), an odd excess and a non-integer resampled size, a
    flipped dcm2niix-style affine: a bright blob's world centroid stays within 0.3 mm."""
    rows, cols, dy, dx = 70, 53, 3.3, 4.7
    yy, xx = np.mgrid[:rows, :cols]
    hu = np.where(np.hypot((yy - 34.5) * dy, (xx - 26) * dx) < 100, 0.0, -1000.0)
    blob = np.hypot((yy - 20) * dy, (xx - 35) * dx) < 12
    hu[blob] = 1500.0
    affine = np.diag([-dx, -dy, 2.0, 1.0])
    affine[:3, 3] = [60.0, -30.0, 7.0]
    nibabel.save(nibabel.Nifti1Image(hu.T[..., None], affine), tmp_path / "in.nii.gz")
    out = tmp_path / "out.nii.gz"
    run("--images", str(tmp_path / "in.nii.gz"), "--photons", "1e9", "--output", str(out))

    def centroid(image, transform):
        weights = np.clip(image - 700, 0, None)  # the blob only
        i, j, k = np.nonzero(weights)
        voxels = np.stack([i, j, k], 1)
        world = nibabel.affines.apply_affine(transform, voxels)
        return (world * weights[i, j, k, None]).sum(0) / weights[i, j, k].sum()

    written = nibabel.load(out)
    expected = centroid(hu.T[..., None], affine)
    assert np.abs(centroid(written.get_fdata(), written.affine) - expected).max() < 0.3
    assert np.allclose(np.diag(written.affine)[:3], [-4.0, -4.0, 2.0])


def test_a_nifti_of_sagittal_slices_is_refused_with_the_fix(tmp_path, run, capsys):
    affine = np.array([[0, 0, 1.0, 0], [1.0, 0, 0, 0], [0, 1.0, 0, 0], [0, 0, 0, 1]])
    data = np.stack([_disc().T * 1000 - 1000] * 3, -1)
    nibabel.save(nibabel.Nifti1Image(data, affine), tmp_path / "sag.nii.gz")
    err = _refused(
        capsys, run, "--images", str(tmp_path / "sag.nii.gz"), "--output", str(tmp_path / "o.npy")
    )
    assert "slices are not axial" in err and "as_closest_canonical" in err


def test_slice_spacing_places_slices_without_positions_and_is_refused_where_they_exist(
    tmp_path, run, capsys
):
    np.save(tmp_path / "scan.npy", np.stack([_disc()] * 3))
    written = run("--images", str(tmp_path / "scan.npy"), "--output", str(tmp_path / "a.npy"))
    assert json.loads(written[1].read_text())["slice_positions_mm"] == [0.0, 1.0, 2.0]
    out = str(tmp_path / "b.npy")
    written = run("--images", str(tmp_path / "scan.npy"), "--slice-spacing", "2.5", "--output", out)
    assert json.loads(written[1].read_text())["slice_positions_mm"] == [0.0, 2.5, 5.0]
    folder = tmp_path / "series"
    folder.mkdir()
    for k in range(2):
        write_dicom(folder / f"s{k}.dcm", (_disc() * 1000).astype(np.int16), spacing=(4.0, 4.0))
        ds = pydicom.dcmread(folder / f"s{k}.dcm")
        ds.ImagePositionPatient = [0.0, 0.0, 3.0 * k]
        ds.save_as(folder / f"s{k}.dcm")
    out = str(tmp_path / "c.npy")
    err = _refused(capsys, run, "--images", str(folder), "--slice-spacing", "2", "--output", out)
    assert "--slice-spacing: the input gives each slice's position" in err
    written = run("--images", str(folder), "--output", out)
    assert json.loads(written[1].read_text())["slice_positions_mm"] == [0.0, 3.0]


def test_an_output_that_cannot_be_written_is_refused_before_reconstructing(
    tmp_path, run, capsys, monkeypatch
):
    np.save(tmp_path / "scan.npy", np.stack([_disc()] * 2))
    (tmp_path / "notes.txt").write_text("not a folder")
    scan = str(tmp_path / "scan.npy")
    for output in ("notes.txt/recon.nii.gz", "notes.txt/sub/series"):
        err = _refused(capsys, run, "--images", scan, "--output", str(tmp_path / output))
        assert f"{tmp_path / 'notes.txt'} is a file, not a folder to write in" in err
    import learnct.reconstruct.writers as writers

    locked = tmp_path / "locked"
    locked.mkdir()
    allowed = writers.os.access
    monkeypatch.setattr(  # root may write anywhere: the permission check as a user sees it
        writers.os, "access", lambda p, mode: Path(p) != locked and allowed(p, mode)
    )
    read = []
    monkeypatch.setattr(writers, "FORMATS", {**writers.FORMATS, "numpy": read.append})
    for output in ("locked/new/recon.npy", "locked/series"):
        err = _refused(capsys, run, "--images", scan, "--output", str(tmp_path / output))
        assert f"no permission to write in {locked}/" in err
    assert read == []  # refused before anything was written


def test_key_chooses_an_hdf5_dataset_and_is_refused_for_a_lodopab_file(tmp_path, run, capsys):
    import h5py

    with h5py.File(tmp_path / "sino.h5", "w") as f:
        f["measured"] = np.zeros((60, 91), np.float32)
    written = run("--sinograms", str(tmp_path / "sino.h5"), "--key", "measured", "--output",
                  str(tmp_path / "a.npy"))  # fmt: skip
    assert np.load(written[0]).shape == (1, 64, 64)
    observation = tmp_path / "observation_test_000.hdf5"
    with h5py.File(observation, "w") as f:
        f["data"] = np.zeros((1, 60, 91), np.float32)
    options = ["--key", "data", "--output", str(tmp_path / "b.npy")]
    err = _refused(capsys, run, "--sinograms", str(observation), *options)
    assert "a LoDoPaB-CT observation file, and --key chooses an HDF5 dataset: drop it" in err


def test_a_single_slice_keeps_its_recorded_thickness_in_dicom_and_nifti(tmp_path, run):
    """One DICOM slice of 5 mm (with its position: ``--slice-spacing`` is refused there):
    the output records 5 mm, not the 1 mm default."""
    path = tmp_path / "one.dcm"
    write_dicom(path, (_disc() * 1000).astype(np.int16), spacing=(4.0, 4.0))
    ds = pydicom.dcmread(path)
    ds.ImagePositionPatient, ds.SliceThickness = [0.0, 0.0, 40.0], 5.0
    ds.save_as(path)
    (written,) = run("--images", str(path), "--output", str(tmp_path / "out"))
    assert float(pydicom.dcmread(written).SliceThickness) == 5.0
    (nifti,) = run("--images", str(path), "--output", str(tmp_path / "out.nii.gz"))
    assert nibabel.load(nifti).header.get_zooms()[2] == pytest.approx(5.0)


def test_a_dicom_output_of_a_nifti_keeps_its_directions_and_place(tmp_path, run):
    """A RAS-ordered NIfTI (x runs to the patient's right, as nibabel's canonical form): the
    DICOM output's rows run along -x and its columns along -y of DICOM's LPS frame, and a
    bright blob's centre, placed through ImagePositionPatient and ImageOrientationPatient,
    lands within 0.3 mm of where the input had it."""
    rows, cols, step = 60, 50, 4.0
    yy, xx = np.mgrid[:rows, :cols]
    hu = np.where(np.hypot(yy - 30, xx - 25) * step < 90, 0.0, -1000.0)
    hu[np.hypot((yy - 18) * step, (xx - 33) * step) < 12] = 1500.0
    affine = np.diag([step, step, 2.0, 1.0])
    affine[:3, 3] = [-100.0, -120.0, 7.0]
    nibabel.save(nibabel.Nifti1Image(hu.T[..., None], affine), tmp_path / "in.nii.gz")
    written = run(
        "--images",
        str(tmp_path / "in.nii.gz"),
        "--photons",
        "1e9",
        "--output",
        str(tmp_path / "out"),
    )
    ds = pydicom.dcmread(written[0])
    assert [float(v) for v in ds.ImageOrientationPatient] == [-1, 0, 0, 0, -1, 0]

    def blob_centre(image, to_world):
        weights = np.clip(image - 700, 0, None)
        r, c = np.nonzero(weights)
        return (to_world(r, c) * weights[r, c, None]).sum(0) / weights[r, c].sum()

    def input_world(r, c):  # RAS -> LPS
        ras = nibabel.affines.apply_affine(affine, np.stack([c, r, 0 * r], 1))
        return ras * [-1, 1, 1] * [1, -1, 1]

    def output_world(r, c):
        corner = np.array([float(v) for v in ds.ImagePositionPatient])
        along_row, along_col = np.reshape([float(v) for v in ds.ImageOrientationPatient], (2, 3))
        dr, dc = (float(v) for v in ds.PixelSpacing)
        return corner + c[:, None] * dc * along_row + r[:, None] * dr * along_col

    expected = blob_centre(hu, input_world)
    assert np.abs(blob_centre(ds.pixel_array.astype(float), output_world) - expected).max() < 0.3


def _oriented_series(folder: Path, zs: list[float]) -> tuple[np.ndarray, np.ndarray]:
    """Axial DICOM slices at ``zs`` mm of a body with a bright blob, 3 x 4 mm pixels (row,
    column), rows along +x of LPS from the corner (-90, -110) mm; the blob's LPS centre."""
    rows, cols, dy, dx = 60, 50, 3.0, 4.0
    yy, xx = np.mgrid[:rows, :cols]
    hu = np.where(np.hypot((yy - 30) * dy, (xx - 25) * dx) < 90, 0.0, -1000.0)
    hu[np.hypot((yy - 18) * dy, (xx - 33) * dx) < 12] = 1500.0
    folder.mkdir()
    corner = np.array([-90.0, -110.0, 0.0])
    for k, z in enumerate(zs):
        path = folder / f"s{k}.dcm"
        write_dicom(path, (hu + 1024).astype(np.int16), spacing=(dy, dx))
        ds = pydicom.dcmread(path)
        ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
        ds.ImagePositionPatient = list(np.add(corner, [0, 0, z]))
        ds.save_as(path)
    return hu, np.add(corner, [33 * dx, 18 * dy, 0])


def _blob_centre(image: np.ndarray, to_world) -> np.ndarray:
    weights = np.clip(image - 700, 0, None)  # the blob only
    first, second = np.nonzero(weights)
    world = to_world(first, second)
    return (world * weights[first, second, None]).sum(0) / weights[first, second].sum()


def test_a_nifti_output_of_a_dicom_series_keeps_its_directions_and_place(tmp_path, run):
    """DICOM's rows run along +x of LPS, i.e. to the patient's left: the NIfTI output's axes
    are L, P, S (not a mirrored R, A, S), and the blob's centre stays within 0.3 mm."""
    _, blob = _oriented_series(tmp_path / "series", [0.0, 3.0])
    (nifti,) = run(
        "--images",
        str(tmp_path / "series"),
        "--photons",
        "1e9",
        "--output",
        str(tmp_path / "o.nii"),
    )
    written = nibabel.load(nifti)
    assert nibabel.aff2axcodes(written.affine) == ("L", "P", "S")

    def world(i, j):  # NIfTI voxel (x, y) of slice 0 -> LPS
        ras = nibabel.affines.apply_affine(written.affine, np.stack([i, j, 0 * i], 1))
        return ras * [-1, -1, 1]

    centre = _blob_centre(written.get_fdata()[..., 0], world)
    np.testing.assert_allclose(centre, blob, atol=0.3)


def test_a_dicom_output_of_an_unevenly_spaced_series_keeps_each_slice_in_place(tmp_path, run):
    """Slices at 0, 3 and 9 mm (one missing): each output slice's ImagePositionPatient and
    SliceLocation keep its own z, and the blob's centre stays within 0.3 mm in plane."""
    _, blob = _oriented_series(tmp_path / "series", [9.0, 0.0, 3.0])
    written = run(
        "--images", str(tmp_path / "series"), "--photons", "1e9", "--output", str(tmp_path / "out")
    )
    datasets = [pydicom.dcmread(path) for path in written]
    assert [float(ds.ImagePositionPatient[2]) for ds in datasets] == [0.0, 3.0, 9.0]
    assert [float(ds.SliceLocation) for ds in datasets] == [0.0, 3.0, 9.0]
    for ds in datasets:
        corner = np.array([float(v) for v in ds.ImagePositionPatient])
        along_row, along_col = np.reshape([float(v) for v in ds.ImageOrientationPatient], (2, 3))
        dr, dc = (float(v) for v in ds.PixelSpacing)

        def world(r, c, corner=corner, along_row=along_row, along_col=along_col, dr=dr, dc=dc):
            return corner + c[:, None] * dc * along_row + r[:, None] * dr * along_col

        centre = _blob_centre(ds.pixel_array.astype(float), world)
        np.testing.assert_allclose(centre[:2], blob[:2], atol=0.3)


def test_a_blank_orientation_tag_leaves_a_series_unoriented_not_refused(tmp_path):
    """An empty ImageOrientationPatient (or one slice's other orientation) reads as before
    the tag was used: no affine, the positions from ImagePositionPatient."""
    from learnct.reconstruct.readers import read_images

    _oriented_series(tmp_path / "series", [0.0, 3.0])
    path = tmp_path / "series" / "s1.dcm"
    ds = pydicom.dcmread(path)
    ds.ImageOrientationPatient = None
    ds.save_as(path)
    volume = read_images(tmp_path / "series").volume
    assert volume.affine is None and volume.positions == [0.0, 3.0]
    ds.ImageOrientationPatient = [0, 1, 0, 1, 0, 0]
    ds.save_as(path)
    assert read_images(tmp_path / "series").volume.affine is None
