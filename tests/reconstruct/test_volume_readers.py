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


def test_an_nrrd_volume_gives_axial_slices_with_its_spacing_and_positions(tmp_path):
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


def test_an_nrrd_volume_of_sagittal_slices_or_without_directions_is_refused(tmp_path):
    sagittal = tmp_path / "sagittal.nrrd"
    directions = np.array([[0.0, 0.7, 0.0], [0.0, 0.0, 5.0], [0.5, 0.0, 0.0]])
    nrrd.write(str(sagittal), _volume(), {"space": "LPS", "space directions": directions})
    with pytest.raises(DataError, match="not axial"):
        read_images(sagittal)
    bare = tmp_path / "bare.nrrd"
    nrrd.write(str(bare), _volume())
    with pytest.raises(DataError, match=r"no 3D 'space directions'.*pixel spacing is unknown"):
        read_images(bare)
    broken = tmp_path / "broken.nrrd"
    broken.write_bytes(b"NRRD0004\ntype: short\n")
    with pytest.raises(DataError, match="is not a readable NRRD file"):
        read_images(broken)
