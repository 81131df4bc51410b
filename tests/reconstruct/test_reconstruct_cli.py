"""``learnct-reconstruct`` end to end, on files the tests write: a DICOM series round-trips to
DICOM with the right HU, spacing and positions; measured sinograms in every supported format
(NumPy, NumPy archive, HDF5, LoDoPaB-CT observation file) give back the phantom; NIfTI, PNG,
NRRD, TIFF and NumPy images and every output format; a model on another geometry is refused with
what differs."""

from __future__ import annotations

import json
import math
import re
import subprocess
import sys
from pathlib import Path

import h5py
import nibabel
import nrrd
import numpy as np
import pydicom
import pytest
import torch
from PIL import Image
from pydicom.pixels import apply_modality_lut

from data.dicom_files import write_dicom
from learnct.data.sources.lodopab import LODOPAB_OBSERVATION_SCALE
from learnct.physics import RayTransform
from learnct.physics.geometry import geometry_from_record
from learnct.physics.noise import MU_WATER
from learnct.physics.presets import MU_MAX_LODOPAB
from learnct.reconstruct.cli import main

#: A small parallel geometry (file-described) for the sinogram formats: fast to build.
SMALL = {"kind": "parallel", "image_size": 64, "n_angles": 90, "n_detectors": 91}
SMALL |= {"pixel_size": 4.0}


def _disc_hu(n: int, spacing: float) -> np.ndarray:
    """Air, a water disc of radius 80 mm, and a +300 HU insert of radius 25 mm."""
    yy, xx = np.mgrid[:n, :n]
    r = np.hypot(yy - (n - 1) / 2, xx - (n - 1) / 2) * spacing
    hu = np.where(r < 80, 0.0, -1000.0)
    hu[r < 25] = 300.0
    return hu


def _read_series(folder):
    files = sorted(folder.glob("*.dcm"))
    datasets = [pydicom.dcmread(f) for f in files]
    return datasets, [apply_modality_lut(ds.pixel_array, ds) for ds in datasets]


def test_a_dicom_series_round_trips_with_hu_spacing_and_positions(tmp_path):
    spacing, n = 1.25, 200
    stored = (_disc_hu(n, spacing) + 1024).astype(np.int16)
    series = tmp_path / "series"
    series.mkdir()
    for k, z in enumerate([10.0, 5.0, 7.5]):  # written out of order: sorted by position
        path = series / f"IM{k}.dcm"
        write_dicom(path, stored)
        ds = pydicom.dcmread(path)
        ds.PixelSpacing, ds.ImagePositionPatient = [spacing, spacing], [0.0, 0.0, z]
        ds.save_as(path)
    out = tmp_path / "out"
    args = ["--images", str(series), "--method", "fbp", "--preset", "fan_lowdose"]
    main([*args, "--photons", "1e6", "--output", str(out), "--quiet"])
    datasets, hu = _read_series(out)
    assert [float(ds.ImagePositionPatient[2]) for ds in datasets] == [5.0, 7.5, 10.0]
    assert [float(ds.SliceLocation) for ds in datasets] == [5.0, 7.5, 10.0]
    for ds, image in zip(datasets, hu, strict=True):
        assert [float(v) for v in ds.PixelSpacing] == [2.0, 2.0]  # fan_lowdose's pixels
        assert image.shape == (128, 128)
        # 2 mm pixels: the insert (r 25 mm) is 12 pixels, the disc 40, from the centre
        centre = image[60:68, 60:68].mean()
        water = image[64, 64 + 20 : 64 + 30].mean()
        air = image[2:8, 2:8].mean()
        assert centre == pytest.approx(300, abs=25)
        assert water == pytest.approx(0, abs=25)
        assert air == pytest.approx(-1000, abs=25)
        record = json.loads(ds.ImageComments)
        assert record["method"] == "FBP" and record["physics"] == "fan_lowdose"
        assert record["geometry"]["n_angles"] == 200 and record["photons"] == 1e6
        assert "FBP" in ds.SeriesDescription and ds.RescaleType == "HU"


def test_a_committed_model_reconstructs_a_dicom_series_better_than_fbp(tmp_path):
    series = tmp_path / "series"
    series.mkdir()
    write_dicom(series / "a.dcm", (_disc_hu(128, 2.0) + 1024).astype(np.int16))
    errors = {}
    for flag in (["--model", "lpd-fan_lowdose"], ["--method", "fbp", "--preset", "fan_lowdose"]):
        out = tmp_path / flag[1]
        main(["--images", str(series), *flag, "--output", str(out), "--quiet"])
        _, (hu,) = _read_series(out)
        errors[flag[1]] = np.abs(hu - _disc_hu(128, 2.0)).mean()
    assert errors["lpd-fan_lowdose"] < errors["fbp"]


def _small_sinogram() -> tuple[np.ndarray, np.ndarray]:
    """Noiseless line integrals of a water-density disc (image value 1) on ``SMALL``."""
    geometry = geometry_from_record(SMALL)
    n = geometry.image_size
    yy, xx = np.mgrid[:n, :n]
    disc = (np.hypot(yy - (n - 1) / 2, xx - (n - 1) / 2) < n / 4).astype(np.float32)
    sino = RayTransform(geometry)(torch.from_numpy(disc)[None, None])[0, 0].numpy()
    return disc, sino


@pytest.mark.parametrize("fmt", ["npy", "npz", "hdf5", "lodopab"])
def test_measured_sinograms_in_every_format(tmp_path, fmt):
    disc, sino = _small_sinogram()
    stack = np.stack([sino, 2 * sino])  # two slices: water and twice water
    if fmt == "npy":
        path = tmp_path / "sino.npy"
        np.save(path, stack)
    elif fmt == "npz":
        path = tmp_path / "sino.npz"
        np.savez(path, image=stack)
    elif fmt == "hdf5":
        path = tmp_path / "sino.h5"
        with h5py.File(path, "w") as f:
            f["data"] = stack
    else:  # LoDoPaB's file: line integrals in metres, of mu / mu_max
        path = tmp_path / "observation_test_000.hdf5"
        with h5py.File(path, "w") as f:
            f["data"] = stack / (LODOPAB_OBSERVATION_SCALE * MU_MAX_LODOPAB / MU_WATER)
    geometry_file = tmp_path / "small.yaml"
    geometry_file.write_text(json.dumps(SMALL))  # YAML is a superset of JSON
    out = tmp_path / "out.npy"
    args = ["--sinograms", str(path), "--geometry-file", str(geometry_file), "--method", "fbp"]
    main([*args, "--output", str(out), "--quiet"])
    hu = np.load(out)
    assert hu.shape == (2, 64, 64)
    inside = disc > 0
    inner = np.hypot(*np.mgrid[-31.5:32.5, -31.5:32.5]) < 10
    assert np.median(hu[0][inner]) == pytest.approx(0, abs=30)  # water
    assert np.median(hu[1][inner]) == pytest.approx(1000, abs=60)  # twice water
    assert np.median(hu[0][~inside & (np.hypot(*np.mgrid[-31.5:32.5, -31.5:32.5]) > 22)]) < -950
    sidecar = json.loads(out.with_suffix(".json").read_text())
    assert sidecar["pixel_spacing_mm"] == [4.0, 4.0] and sidecar["physics"] == "small"
    assert sidecar["input_kind"] == "measured sinograms" and "photons" not in sidecar


def test_a_sinogram_of_another_shape_is_refused_with_both_shapes(tmp_path, capsys):
    path = tmp_path / "sino.npy"
    np.save(path, np.zeros((10, 20), np.float32))
    with pytest.raises(SystemExit) as exit_:
        main(["--sinograms", str(path), "--preset", "fan_lowdose", "--output", str(tmp_path / "o")])
    assert exit_.value.code == 2
    assert "(10, 20) (angles, detectors)" in capsys.readouterr().err


@pytest.mark.parametrize("source", ["nifti", "nrrd", "png", "tiff", "numpy"])
def test_image_formats_in_and_out(tmp_path, source):
    hu = _disc_hu(128, 2.0).astype(np.float32)
    image = 1 + hu / 1000  # water-relative density: fan_lowdose's image units
    if source == "nifti":
        path = tmp_path / "vol.nii.gz"
        affine = np.diag([2.0, 2.0, 3.0, 1.0])
        nibabel.save(nibabel.Nifti1Image(np.stack([hu.T, hu.T], -1), affine), path)
        units = []
    elif source == "nrrd":  # pyradiomics' layout: int16 HU, (x, y, z), LPS directions
        path = tmp_path / "vol.nrrd"
        header = {"space": "left-posterior-superior", "space directions": np.diag([2.0] * 3)}
        nrrd.write(str(path), np.stack([hu.T, hu.T], -1).astype(np.int16), header)
        units = []
    elif source == "png":  # 16-bit PNG of HU + 1024
        path = tmp_path / "slice.png"
        Image.fromarray((hu + 1024).astype(np.uint16)).save(path)
        units = ["--units", "hu", "--rescale", "1,-1024"]
    elif source == "tiff":  # 32-bit float TIFF, in HU
        path = tmp_path / "slice.tif"
        Image.fromarray(hu, mode="F").save(path)
        units = ["--units", "hu"]
    else:
        path = tmp_path / "vol.npy"
        np.save(path, image[None])
        units = []
    out = {"nifti": tmp_path / "r.nii.gz", "png": tmp_path / "png", "tiff": tmp_path / "t.npy"}
    out |= {"nrrd": tmp_path / "d.npy"}
    out = out.get(source, tmp_path / "n.nii")
    args = ["--images", str(path), "--method", "fbp", "--preset", "fan_lowdose", *units]
    fmt = ["--format", "png"] if source == "png" else []  # a folder is DICOM by default
    main([*args, *fmt, "--photons", "1e6", "--output", str(out), "--quiet"])
    if source == "png":
        written = sorted(out.glob("slice_*.png"))
        assert len(written) == 1
        grey = np.asarray(Image.open(written[0]), dtype=float)
        # default window -1000..1000 HU -> 0..255: water (0 HU) ~ 128, air 0
        assert grey[64, 64 + 20 : 64 + 30].mean() == pytest.approx(127.5, abs=4)
        assert grey[2:8, 2:8].mean() == pytest.approx(0, abs=4)
        assert json.loads((out / "provenance.json").read_text())["window_hu"] == [-1000, 1000]
        return
    if out.suffix == ".npy":
        result = np.load(out)
    else:
        loaded = nibabel.load(out)
        assert [float(z) for z in loaded.header.get_zooms()[:2]] == [2.0, 2.0]
        result = np.transpose(np.asarray(loaded.get_fdata()), (2, 1, 0))
        if source == "nifti":
            assert float(loaded.header.get_zooms()[2]) == 3.0  # the input's slice spacing
    assert result.shape[1:] == (128, 128)
    assert result[0, 60:68, 60:68].mean() == pytest.approx(300, abs=30)
    assert result[0, 2:8, 2:8].mean() == pytest.approx(-1000, abs=30)


def test_a_model_on_another_geometry_is_refused_unless_asked(tmp_path, capsys):
    path = tmp_path / "img.npy"
    np.save(path, np.ones((1, 64, 64), np.float32))
    args = ["--images", str(path), "--model", "lpd-fan_lowdose", "--output", str(tmp_path / "o")]
    with pytest.raises(SystemExit):
        main([*args, "--preset", "fan_mayo"])
    err = capsys.readouterr().err
    assert "trained for another geometry than fan_mayo" in err
    assert "n_angles: 200 != 1000" in err and "--allow-geometry-mismatch" in err
    assert "run it on its own (omit --preset/--geometry-file)" in err
    small = tmp_path / "fan64.yaml"
    small.write_text(
        "kind: fan\nimage_size: 64\nn_angles: 100\nn_detectors: 128\npixel_size: 4.0\n"
        "photons: 1.0e5\n"  # PyYAML reads this as a string: taken as the number
    )
    out = tmp_path / "o.npy"
    main([*args[:-1], str(out), "--geometry-file", str(small), "--allow-geometry-mismatch"])
    sidecar = json.loads(out.with_suffix(".json").read_text())
    assert sidecar["photons"] == 1e5 and sidecar["geometry"]["n_angles"] == 100
    assert np.load(out).shape == (1, 64, 64)
    with pytest.raises(SystemExit):
        main(["--images", str(path), "--model", "nope", "--output", str(tmp_path / "o2.npy")])
    assert "lpd-fan_lowdose" in capsys.readouterr().err
    assert math.isfinite(float(np.load(out).mean()))
    # the fully learned net's dense layers fix its geometry: refused even when asked
    fixed = ["--model", "learned_inverse-fan_lowdose", "--geometry-file", str(small)]
    with pytest.raises(SystemExit):
        main([*args[:2], *fixed, "--output", str(tmp_path / "o3.npy"), "--allow-geometry-mismatch"])
    err = capsys.readouterr().err
    assert "so it runs on that one only (omit --preset/--geometry-file)" in err
    assert "n_angles: 200 != 100 (model != given)" in err
    # ... and so does the loader, given another geometry; on its own preset it runs
    from learnct.methods.pretrained import load_pretrained
    from learnct.physics.presets import parallel_ellipses

    with pytest.raises(
        ValueError, match=r"weights fix the geometry .* only \(pass geometry=None\)"
    ):
        load_pretrained("learned_inverse-fan_lowdose", geometry=parallel_ellipses().geometry)
    own = tmp_path / "own.npy"
    main([*args[:2], *fixed[:2], "--preset", "fan_lowdose", "--output", str(own), "--quiet"])
    assert np.load(own).shape == (1, 128, 128)


def test_a_model_is_read_from_disk_once(monkeypatch):
    from learnct.methods import checkpoints
    from learnct.reconstruct.engine import build_reconstructor

    reads = []
    load = torch.load
    monkeypatch.setattr(
        checkpoints.torch, "load", lambda path, **kw: reads.append(path) or load(path, **kw)
    )
    runner = build_reconstructor("lpd-fan_lowdose")
    assert len(reads) == 1 and runner.physics.name == "fan_lowdose"


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_the_gpu_gives_the_cpus_reconstruction(tmp_path):
    """A committed model on CUDA and on the CPU (at a dose where the noise, drawn by different
    generators on the two devices, is negligible)."""
    path = tmp_path / "img.npy"
    np.save(path, (1 + _disc_hu(128, 2.0) / 1000).astype(np.float32)[None].repeat(3, 0))
    results = {}
    for device in ("cpu", "cuda"):
        out = tmp_path / f"{device}.npy"
        args = ["--images", str(path), "--model", "lpd-fan_lowdose", "--photons", "1e9"]
        main([*args, "--device", device, "--batch-size", "2", "--output", str(out), "--quiet"])
        results[device] = np.load(out)
    assert np.abs(results["cuda"] - results["cpu"]).mean() < 5  # HU


def test_the_command_lists_the_committed_models_and_names_missing_options(capsys):
    main(["--list-models"])
    assert "lpd-fan_lowdose" in capsys.readouterr().out.split()
    with pytest.raises(SystemExit) as exit_:
        main(["--output", "x"])
    assert exit_.value.code == 2
    assert "give --images (to simulate from) or --sinograms" in capsys.readouterr().err


def test_the_console_command_exits_with_status_0_after_writing(tmp_path):
    """As a user runs it (a list returned from main once made the script exit with 1)."""
    np.save(tmp_path / "x.npy", np.zeros((1, 64, 64), np.float32))
    (tmp_path / "small.yaml").write_text(json.dumps(SMALL))
    args = ["--images", str(tmp_path / "x.npy"), "--geometry-file", str(tmp_path / "small.yaml")]
    args += ["--method", "fbp", "--output", str(tmp_path / "o.npy"), "--quiet"]
    script = Path(sys.executable).parent / "learnct-reconstruct"  # pip's console script
    out = subprocess.run([str(script), *args], capture_output=True)
    assert out.returncode == 0, out.stderr.decode()[-2000:]
    assert (tmp_path / "o.npy").is_file()


def test_a_folder_of_two_dicom_series_is_refused(tmp_path, capsys):
    folder = tmp_path / "mixed"
    folder.mkdir()
    for k in range(2):
        path = folder / f"{k}.dcm"
        write_dicom(path, np.zeros((16, 16), np.int16))
        ds = pydicom.dcmread(path)
        ds.SeriesInstanceUID = pydicom.uid.generate_uid()
        ds.save_as(path)
    with pytest.raises(SystemExit):
        main(["--images", str(folder), "--preset", "fan_lowdose", "--output", str(tmp_path / "o")])
    assert "holds 2 DICOM series" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("spacings", "message"),
    [
        ([[0.0, 0.0]], r"0\.dcm: has no valid PixelSpacing .*; correct or remove the tag"),
        (
            [[1.0, 1.0], [1.5, 1.5]],
            r"different pixel spacings \(mm\) \[\(1\.0, 1\.0\), \(1\.5, 1\.5\)\]",
        ),
    ],
    ids=["zero", "mixed"],
)
def test_a_series_without_one_valid_pixel_spacing_is_refused(tmp_path, capsys, spacings, message):
    """A zero (or negative, NaN) PixelSpacing, or slices of two spacings, would resample the
    slices wrongly: refused, naming the file or the spacings."""
    folder = tmp_path / "series"
    folder.mkdir()
    for k, spacing in enumerate(spacings):
        write_dicom(folder / f"{k}.dcm", np.zeros((16, 16), np.int16), spacing=spacing)
    with pytest.raises(SystemExit):
        main(["--images", str(folder), "--preset", "fan_lowdose", "--output", str(tmp_path / "o")])
    assert re.search(message, capsys.readouterr().err)


def test_tv_takes_its_settings_and_other_methods_refuse_them(tmp_path, capsys):
    """``--lam``/``--iterations``/``--data-term`` set TV (recorded in the outputs' provenance):
    a larger lambda smooths the noise of a water disc; FBP refuses them, naming them."""
    n = SMALL["image_size"]
    np.save(tmp_path / "disc.npy", _disc_hu(n, SMALL["pixel_size"] / 2)[None].astype(np.float32))
    (tmp_path / "small.yaml").write_text(json.dumps(SMALL))
    args = ["--images", str(tmp_path / "disc.npy"), "--units", "hu", "--photons", "1000"]
    args += ["--geometry-file", str(tmp_path / "small.yaml"), "--quiet", "--method"]
    inner = np.hypot(*np.mgrid[-31.5:32.5, -31.5:32.5]) < 8  # water, away from the insert
    spread = {}
    for lam in (0.5, 50.0):
        out = tmp_path / f"tv{lam}.npy"
        settings = ["--lam", str(lam), "--iterations", "100", "--data-term", "wls"]
        main([*args, "tv", *settings, "--output", str(out)])
        spread[lam] = float(np.std(np.load(out)[0][inner]))
        assert json.loads(out.with_suffix(".json").read_text())["model"] == (
            f"tv lam={lam} iterations=100 data_term=wls"
        )
    assert spread[50.0] < spread[0.5] / 2, spread  # HU (measured: 63 vs 187)
    with pytest.raises(SystemExit) as exit_:
        main([*args, "fbp", "--lam", "5", "--output", str(tmp_path / "f.npy")])
    assert exit_.value.code == 2
    assert "--lam: TV's settings, for --method tv (not fbp)" in capsys.readouterr().err


def test_tv_weights_its_data_with_the_physics_attenuation(tmp_path):
    """TV-WLS's weights exp(-mu g) take mu (1/mm) from the physics given, not TV's default."""
    from learnct.reconstruct.engine import build_reconstructor

    (tmp_path / "g.yaml").write_text(json.dumps({**SMALL, "mu": 0.05}))
    runner = build_reconstructor(
        None, "tv", geometry_file=str(tmp_path / "g.yaml"), method_options={"data_term": "wls"}
    )
    assert runner.method.hparams.mu == runner.physics.mu == 0.05
    assert build_reconstructor(None, "fbp", geometry_file=str(tmp_path / "g.yaml")).method


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"mu": 0}, "g.yaml: mu must be a positive attenuation"),
        ({"noise": "gaussian"}, None),
        ({"noise": "Poisson"}, "g.yaml: unknown noise model 'Poisson'"),
    ],
)
def test_a_geometry_files_noise_settings_are_checked_when_read(tmp_path, fields, message):
    from learnct.reconstruct.physics_spec import read_physics_file

    (tmp_path / "g.yaml").write_text(json.dumps({**SMALL, **fields}))
    if message is None:
        assert read_physics_file(tmp_path / "g.yaml").noise == "gaussian"
        return
    with pytest.raises(ValueError, match=message):
        read_physics_file(tmp_path / "g.yaml")


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (["--device", "gpu"], "--device 'gpu' is not valid: choose auto, cpu, cuda"),
        (["--slice-spacing", "0"], "--slice-spacing needs a length > 0 in mm, got '0'"),
        (["--slice-spacing", "-2"], "--slice-spacing needs a length > 0 in mm"),
        (["--format", "png", "--output", "{tmp}/recon.png"], "names a file, but png writes"),
        (["--output", "{tmp}/recon.dcm"], "names a file, but dicom writes a folder"),
        (["--output", "{tmp}/taken"], "taken"),  # a file where the DICOM folder would go
    ],
)
def test_bad_options_and_outputs_get_one_line(tmp_path, capsys, options, message):
    (tmp_path / "taken").write_text("a file")
    np.save(tmp_path / "vol.npy", np.ones((1, 64, 64), np.float32))
    (tmp_path / "g.yaml").write_text(json.dumps(SMALL))
    args = ["--images", str(tmp_path / "vol.npy"), "--method", "fbp"]
    args += ["--geometry-file", str(tmp_path / "g.yaml"), "--quiet"]
    options = [o.replace("{tmp}", str(tmp_path)) for o in options]
    if "--output" not in options:
        options += ["--output", str(tmp_path / "out.npy")]
    with pytest.raises(SystemExit) as exit_:
        main([*args, *options])
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert message in err.strip().splitlines()[-1] and "Traceback" not in err  # argparse: usage


@pytest.mark.skipif(torch.cuda.is_available(), reason="asks for CUDA where there is none")
def test_a_cuda_device_without_cuda_is_refused(tmp_path, capsys):
    from learnct.reconstruct.engine import pick_device

    with pytest.raises(ValueError, match="--device cuda: no CUDA device here; use --device cpu"):
        pick_device("cuda")


def test_outputs_are_named_by_the_files_written_and_nifti_positions_follow_the_affine(
    tmp_path, capsys
):
    """``--format numpy``/``nifti`` without the suffix write (and report) ``.npy``/``.nii.gz``;
    a NIfTI whose z axis runs downwards gives slice positions that fall."""
    hu = _disc_hu(64, 4.0).astype(np.float32)
    affine = np.diag([4.0, 4.0, -2.5, 1.0])
    affine[2, 3] = 100.0
    path = tmp_path / "down.nii.gz"
    nibabel.save(nibabel.Nifti1Image(np.stack([hu.T] * 3, -1), affine), path)
    (tmp_path / "g.yaml").write_text(json.dumps(SMALL))
    args = ["--images", str(path), "--method", "fbp", "--geometry-file", str(tmp_path / "g.yaml")]
    for fmt, name in (("numpy", "out_np.npy"), ("nifti", "out_nii.nii.gz")):
        written = main_paths(
            [*args, "--quiet", "--format", fmt, "--output", str(tmp_path / name.split(".")[0])]
        )
        assert written[0] == tmp_path / name and all(p.is_file() for p in written)
        assert capsys.readouterr().out.strip().endswith(f"-> {tmp_path / name}")
    positions = json.loads((tmp_path / "out_np.json").read_text())["slice_positions_mm"]
    assert positions == [100.0, 97.5, 95.0]
    main_paths([*args, "--quiet", "--output", str(tmp_path / "dicom")])
    datasets, _ = _read_series(tmp_path / "dicom")
    assert sorted(float(ds.SliceLocation) for ds in datasets) == [95.0, 97.5, 100.0]
    assert {float(ds.SliceThickness) for ds in datasets} == {2.5}  # a thickness: positive


def main_paths(argv: list[str]) -> list[Path]:
    from learnct.reconstruct.cli import reconstruct

    return reconstruct(argv)
