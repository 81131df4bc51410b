"""Image volumes read as axial slices with their physical spacing and positions: NRRD (the
format of 3D Slicer and pyradiomics' test CTs) by its ``space directions`` and origin."""

from __future__ import annotations

import nrrd
import numpy as np
import pytest

from learnct.data.errors import DataError
from learnct.reconstruct.readers import read_images


def _volume() -> np.ndarray:
    """(x, y, z) = (40, 30, 3) HU, every voxel its own value."""
    return (np.arange(40 * 30 * 3).reshape(40, 30, 3) - 1000).astype(np.int16)


def test_an_nrrd_volume_gives_axial_slices_with_its_spacing_positions_and_affine(tmp_path):
    """The affine is NIfTI's (RAS), so that an output keeps the directions: LPS (pyradiomics,
    3D Slicer) is RAS with x and y negated, the corner voxel at LPS (-10, -20, 100) mm is at
    RAS (10, 20, 100), and the axes run left, posterior, superior."""
    import nibabel

    path = tmp_path / "ct.nrrd"
    header = {
        "space": "left-posterior-superior",
        "space directions": np.diag([0.5, 0.7, 5.0]),
        "space origin": np.array([-10.0, -20.0, 100.0]),
    }
    nrrd.write(str(path), _volume(), header)
    read = read_images(path)
    assert read.units == "hu"
    assert read.volume.slices.shape == (3, 30, 40)  # rows along y, columns along x
    for k in range(3):
        np.testing.assert_array_equal(read.volume.slices[k], _volume()[:, :, k].T)
    assert read.volume.spacing == (0.7, 0.5)  # (row, column) mm
    assert read.volume.positions == [100.0, 105.0, 110.0]
    affine = read.volume.affine
    assert nibabel.aff2axcodes(affine) == ("L", "P", "S")
    np.testing.assert_allclose(affine @ [0, 0, 0, 1], [10.0, 20.0, 100.0, 1.0])
    np.testing.assert_allclose(affine @ [2, 1, 1, 1], [9.0, 19.3, 105.0, 1.0])


def test_an_nrrd_volume_of_sagittal_slices_or_without_directions_is_refused(tmp_path):
    sagittal = tmp_path / "sagittal.nrrd"
    directions = np.array([[0.0, 0.7, 0.0], [0.0, 0.0, 5.0], [0.5, 0.0, 0.0]])
    nrrd.write(str(sagittal), _volume(), {"space": "LPS", "space directions": directions})
    with pytest.raises(DataError, match="not axial"):
        read_images(sagittal)
    bare = tmp_path / "bare.nrrd"
    nrrd.write(str(bare), _volume())
    with pytest.raises(DataError, match=r"no 'space directions' or 'spacings'.*spacing is unknown"):
        read_images(bare)
    broken = tmp_path / "broken.nrrd"
    broken.write_bytes(b"NRRD0004\ntype: short\n")
    with pytest.raises(DataError, match="is not a readable NRRD file"):
        read_images(broken)


def test_nrrd_units_a_2d_image_and_spacings_alone_give_the_spacing_in_mm(tmp_path):
    in_cm = tmp_path / "cm.nrrd"
    header = {"space": "RAS", "space directions": np.diag([0.05, 0.07, 0.5])}
    nrrd.write(str(in_cm), _volume(), {**header, "space units": ["cm", "cm", "cm"]})
    read = read_images(in_cm).volume
    assert read.spacing == pytest.approx((0.7, 0.5)) and read.positions == pytest.approx([0, 5, 10])
    flat = tmp_path / "flat.nrrd"
    directions = np.array([[0.5, 0.0, 0.0], [0.0, 0.7, 0.0]])
    nrrd.write(str(flat), _volume()[:, :, 0], {"space": "LPS", "space directions": directions})
    read = read_images(flat).volume
    assert read.slices.shape == (1, 30, 40) and read.spacing == (0.7, 0.5)
    plain = tmp_path / "spacings.nrrd"
    nrrd.write(str(plain), _volume(), {"spacings": np.array([0.5, 0.7, 5.0])})
    read = read_images(plain).volume
    assert read.spacing == (0.7, 0.5) and read.positions == [0.0, 5.0, 10.0]


def test_an_nrrd_with_a_zero_length_axis_or_unknown_units_is_refused(tmp_path):
    flat_axis = tmp_path / "zero.nrrd"
    directions = np.diag([0.5, 0.0, 5.0])
    nrrd.write(str(flat_axis), _volume(), {"space": "LPS", "space directions": directions})
    with pytest.raises(DataError, match="axis 1 has a zero-length direction"):
        read_images(flat_axis)
    inches = tmp_path / "inches.nrrd"
    header = {"space": "LPS", "space directions": np.diag([0.5, 0.7, 5.0])}
    nrrd.write(str(inches), _volume(), {**header, "space units": ["in", "in", "in"]})
    with pytest.raises(DataError, match=r"'space units' \['in'\]: give the space in"):
        read_images(inches)


def test_a_2d_nrrd_off_the_axial_plane_gets_its_normal_as_third_axis(tmp_path):
    coronal = tmp_path / "coronal.nrrd"
    directions = np.array([[0.5, 0.0, 0.0], [0.0, 0.0, 0.7]])  # x and z: a coronal image
    nrrd.write(str(coronal), _volume()[:, :, 0], {"space": "LPS", "space directions": directions})
    affine = read_images(coronal).volume.affine
    assert abs(np.linalg.det(affine[:3, :3])) == pytest.approx(0.5 * 0.7)
    np.testing.assert_allclose(np.abs(affine[:3, 2]), [0.0, 1.0, 0.0])
