"""What ``learnct.reconstruct.writers`` writes, field by field."""

from __future__ import annotations

import numpy as np
import pydicom
import pytest

from learnct.reconstruct.volume import Volume
from learnct.reconstruct.writers import write_dicom


def test_dicom_decimal_strings_fit_their_16_characters_and_keep_their_values(tmp_path):
    """Positions and spacings of float arithmetic (-160.18651705000002 mm) are written as
    decimal strings (DS) of at most 16 characters, as strict DICOM readers require."""
    z = [-160.18651705000002, -157.68651705000002]
    volume = Volume(np.zeros((2, 4, 6), np.float32), (0.1 + 0.2, 0.57031250000001), z)
    paths = write_dicom(volume, tmp_path, {"method": "FBP"})
    for k, path in enumerate(paths):
        header = pydicom.dcmread(path)
        fields = [
            *header.PixelSpacing,
            header.SliceThickness,
            *header.ImagePositionPatient,
            header.SliceLocation,
        ]
        assert max(len(str(v)) for v in fields) <= 16
        assert float(header.SliceLocation) == pytest.approx(z[k], abs=1e-9)
        assert float(header.SliceThickness) == pytest.approx(2.5, abs=1e-9)
        assert [float(v) for v in header.PixelSpacing] == pytest.approx([0.3, 0.5703125])
        assert float(header.ImagePositionPatient[0]) == pytest.approx(-2.5 * 0.5703125)
