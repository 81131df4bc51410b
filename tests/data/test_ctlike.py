"""CT-like phantoms: determinism, size, units, and statistics within those of real CT."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch

from learnct.data import CTLikeDataset, FolderDataset, make_dataset
from learnct.data.ct_statistics import slice_statistics
from learnct.data.ctlike import ctlike_phantom

#: slice_statistics of the real CT slices at 2 mm on 256^2 (``data=real_ct``'s four slices:
#: python -m learnct.data.real_ct, then FolderDataset(..., 256, pixel_size=2.0)), 2026-11-29.
REAL = {
    "693_J2KR": dict(width_mm=136, low=0.031, fat=0.048, soft=0.708, bone=0.213, slope=-3.098),
    "J2K_pixelrep_mismatch": dict(
        width_mm=180, low=0.092, fat=0.124, soft=0.551, bone=0.233, slope=-3.371
    ),
    "bad_sequence": dict(width_mm=146, low=0.024, fat=0.046, soft=0.843, bone=0.086, slope=-2.876),
    "explicit_VR-UN": dict(
        width_mm=308, low=0.042, fat=0.367, soft=0.552, bone=0.039, slope=-2.967
    ),
}


def _stats(image, pixel_size=2.0):
    s = slice_statistics(image, pixel_size)
    return dict(
        width_mm=s["width_mm"],
        low=s["fraction_low"],
        fat=s["fraction_fat"],
        soft=s["fraction_soft"],
        bone=s["fraction_bone"],
        slope=s["spectrum_slope"],
    )


def test_real_statistics_reproduce_from_the_installed_slice(tmp_path):
    """The REAL table is what slice_statistics measures: checked live on the slice that
    ships with pydicom (the others come from the pydicom-data wheel)."""
    import shutil

    import pydicom

    src = pydicom.data.get_testdata_file("J2K_pixelrep_mismatch.dcm")
    shutil.copy(src, tmp_path / "s.dcm")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        image = FolderDataset(tmp_path, 256, pixel_size=2.0)[0]["image"]
    got = _stats(image)
    for key, value in REAL["J2K_pixelrep_mismatch"].items():
        assert got[key] == pytest.approx(value, abs=0.002 if key != "width_mm" else 0.5), key


def test_ctlike_statistics_within_real_ct():
    """Over 12 phantoms: mean HU class fractions, spectrum slope and body width each lie in
    the range of the real slices; every torso is 200-400 mm wide, every head 140-190 mm."""
    stats = [_stats(ctlike_phantom(torch.Generator().manual_seed(i), 256, 2.0)) for i in range(12)]
    for key in ("low", "fat", "soft", "bone", "slope", "width_mm"):
        real = [r[key] for r in REAL.values()]
        mean = float(np.mean([s[key] for s in stats]))
        assert min(real) <= mean <= max(real), (key, mean, real)
    widths = np.array([s["width_mm"] for s in stats])
    assert ((widths >= 140) & (widths <= 404)).all(), widths
    assert (widths > 200).sum() >= 4 and (widths < 200).sum() >= 2  # torsos and heads


def test_ctlike_deterministic_any_size_and_units():
    ds = CTLikeDataset(64, 4.0, length=3, split="val", seed=1)
    a, b = ds[2]["image"], CTLikeDataset(64, 4.0, length=3, split="val", seed=1)[2]["image"]
    torch.testing.assert_close(a, b, rtol=0, atol=0)
    assert a.shape == (1, 64, 64) and a.dtype == torch.float32
    assert not torch.equal(a, ds[1]["image"])
    assert not torch.equal(a, CTLikeDataset(64, 4.0, 3, "test", 1)[2]["image"])
    # Same anatomy in mm at any image size: 512 mm fields of 64 and 128 pixels.
    coarse = CTLikeDataset(64, 8.0, length=3, split="val", seed=1)[2]["image"]
    fine = CTLikeDataset(128, 4.0, length=3, split="val", seed=1)[2]["image"]
    assert fine.shape == (1, 128, 128)
    assert slice_statistics(coarse, 8.0)["width_mm"] == pytest.approx(
        slice_statistics(fine, 4.0)["width_mm"], abs=8
    )
    assert float(a.min()) >= 0 and float(a.max()) < 3.5  # air 0, water 1, cortical bone < 2.6
    # Other image units: mu / mu_unit.
    lod = make_dataset("ctlike", "val", image_size=64, size=3, seed=1, pixel_size=4.0, mu_unit=0.08)
    torch.testing.assert_close(lod[2]["image"], a / 4)
    with pytest.raises(ValueError, match="ctlike source needs a size"):
        make_dataset("ctlike", "val", image_size=64, pixel_size=4.0)
