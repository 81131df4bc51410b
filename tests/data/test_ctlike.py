"""CT-like phantoms: determinism, size, units, and statistics within those of real CT."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from scipy import ndimage

from learnct.data import CTLikeDataset, FolderDataset, make_dataset
from learnct.data.ct_statistics import slice_statistics
from learnct.data.ctlike import (
    _KIND_P,
    _PAINTERS,
    FIELD_CROP_P,
    KINDS,
    SHARP_KERNEL_P,
    _Canvas,
    crop_to_field,
    ctlike_phantom,
    draw_kind,
    sharpen,
)

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
    """Over the heads, necks and abdomens among 16 phantoms (the real slices have no thorax):
    mean HU class fractions, spectrum slope and body width each lie in the range of the real
    slices."""
    seeds = [i for i in range(16) if draw_kind(torch.Generator().manual_seed(i)) != "thorax"]
    assert len(seeds) >= 10
    stats = [_stats(ctlike_phantom(torch.Generator().manual_seed(i), 256, 2.0)) for i in seeds]
    for key in ("low", "fat", "soft", "bone", "slope", "width_mm"):
        real = [r[key] for r in REAL.values()]
        mean = float(np.mean([s[key] for s in stats]))
        assert min(real) <= mean <= max(real), (key, mean, real)


@pytest.mark.parametrize(
    ("kind", "low", "high"),
    [("head", 140, 190), ("skull_base", 130, 170), ("neck", 100, 160), ("thorax", 180, 400)],
)
def test_ctlike_body_width_per_kind(kind, low, high):
    """Body widths (slice_statistics, 4 mm pixels: +-4 mm) of 40 slices of each kind lie in
    the kind's range and cover it (the extremes within a tenth of its ends): torsos down to
    180 mm (below 200 mm, the old minimum), necks 100-160 mm."""
    widths = np.array(
        [
            slice_statistics(
                ctlike_phantom(
                    torch.Generator().manual_seed(i), 128, 4.0, kind=kind, field_crop=False
                ),
                4.0,
            )["width_mm"]
            for i in range(40)
        ]
    )
    assert ((widths >= low - 4) & (widths <= high + 4)).all(), widths
    tenth = (high - low) / 10
    assert widths.min() < low + tenth and widths.max() > high - tenth, widths


def _neck_hu(seed: int) -> np.ndarray:
    """A neck at 0.5 mm pixels (256 mm field) in HU."""
    image = ctlike_phantom(
        torch.Generator().manual_seed(seed), 512, 0.5, kind="neck", field_crop=False
    )
    return 1000 * (image.numpy().astype(np.float64) - 1)


@pytest.mark.parametrize("seed", range(4))
def test_neck_anatomy(seed):
    """A neck is 100-160 mm across (pixels above -950 HU; +-1 mm of soft edge at 0.5 mm
    pixels); the trachea is an air region strictly inside the body, 12-20 mm across (up to
    24 mm: oval), anterior to the vertebra, whose bone exceeds 700 HU behind the trachea."""
    hu = _neck_hu(seed)
    pixel = 0.5
    body = hu > -950
    cols = np.flatnonzero(body.any(axis=0))
    width = (cols[-1] - cols[0] + 1) * pixel
    assert 99 <= width <= 161, width
    outline = ndimage.binary_fill_holes(body)
    labels, n = ndimage.label(hu < -900)
    inside = [k for k in range(1, n + 1) if (outline[labels == k]).all()]
    assert inside, "no air region inside the body"
    areas = [int((labels == k).sum()) for k in inside]
    trachea = labels == inside[int(np.argmax(areas))]
    rows, cols = np.nonzero(trachea)
    assert 11 <= (cols.max() - cols.min() + 1) * pixel <= 25
    assert 11 <= (rows.max() - rows.min() + 1) * pixel <= 21
    assert not (trachea & ~ndimage.binary_erosion(outline, iterations=6)).any()  # >= 3 mm in
    bone_rows = np.nonzero(hu > 700)[0]
    assert (bone_rows > rows.max() + 4).sum() * pixel**2 > 50, "no vertebra behind the trachea"
    body_rows = np.nonzero(body)[0]
    assert rows.mean() < (body_rows.min() + body_rows.max()) / 2  # the trachea is anterior


def _skull_measures(seed: int, kind: str) -> tuple[float, int]:
    """At 0.5 mm pixels: the area (mm^2) of bone (> 700 HU) at least 15 mm inside the body
    outline, and the number of small air regions (0.5-30 mm^2) there."""
    image = ctlike_phantom(
        torch.Generator().manual_seed(seed), 512, 0.5, kind=kind, field_crop=False
    )
    hu = 1000 * (image.numpy().astype(np.float64) - 1)
    deep = ndimage.binary_erosion(ndimage.binary_fill_holes(hu > -950), iterations=30)
    labels, n = ndimage.label((hu < -500) & deep)
    areas = ndimage.sum(np.ones_like(hu), labels, range(1, n + 1)) * 0.25
    return float(((hu > 700) & deep).sum() * 0.25), int(((areas > 0.5) & (areas < 30)).sum())


@pytest.mark.parametrize("seed", range(3))
def test_skull_base_has_deep_bone_and_air_cells(seed):
    """A skull-base slice has bone deep inside the head (petrous ridges, clivus: > 1500 mm^2
    at least 15 mm in; a cranial-vault head of the same seed has its bone in the ring, < 1000)
    and small air cells there (mastoid and ethmoid cells: >= 5; the vault head none)."""
    bone, cells = _skull_measures(seed, "skull_base")
    vault_bone, vault_cells = _skull_measures(seed, "head")
    assert bone > 1500 and vault_bone < 1000, (bone, vault_bone)
    assert cells >= 5 and vault_cells == 0, (cells, vault_cells)


def test_neck_deterministic_per_seed_and_kind_draw():
    """A seed gives one neck; another seed another; a forced kind equals the default slice
    whenever the seed draws that kind; an unknown kind is refused."""

    def neck(seed):
        return ctlike_phantom(torch.Generator().manual_seed(seed), 128, 2.0, kind="neck")

    torch.testing.assert_close(neck(3), neck(3), rtol=0, atol=0)
    assert not torch.equal(neck(3), neck(4))
    for seed in range(6):
        kind = draw_kind(torch.Generator().manual_seed(seed))
        default = ctlike_phantom(torch.Generator().manual_seed(seed), 64, 4.0)
        forced = ctlike_phantom(torch.Generator().manual_seed(seed), 64, 4.0, kind=kind)
        torch.testing.assert_close(default, forced, rtol=0, atol=0)
    with pytest.raises(ValueError, match="unknown CT-like kind 'leg'"):
        ctlike_phantom(torch.Generator(), 64, 4.0, kind="leg")


def test_kind_proportions():
    """600 draws: every kind appears in proportions near _KIND_P (chi-square with 4 degrees
    of freedom below 18.5, p = 0.001; a kind never drawn gives at least 90)."""
    assert set(_PAINTERS) == set(KINDS) and sum(_KIND_P) == pytest.approx(1)
    n = 600
    drawn = [draw_kind(torch.Generator().manual_seed(i)) for i in range(n)]
    counts = np.array([drawn.count(k) for k in KINDS])
    expected = n * np.array(_KIND_P)
    chi2 = float(((counts - expected) ** 2 / expected).sum())
    assert chi2 < 18.5, (dict(zip(KINDS, counts.tolist(), strict=True)), chi2)


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
    assert len(make_dataset("ctlike", "val", image_size=64, pixel_size=4.0)) == 32  # DEFAULT_SIZES


def _straight_side(image: torch.Tensor, min_px: int = 35) -> bool:
    """The body (above -950 HU) ends in a straight vertical edge inside the image: a column
    with ``min_px`` body pixels beside one with none (uncropped phantoms: at most 27 pixels
    at 128^2; horizontal edges are left out: the patient table)."""
    counts = (image > 0.05).float().sum(0)[1:-1]
    ends = (counts[:-1] >= min_px) & (counts[1:] == 0) | (counts[1:] >= min_px) & (counts[:-1] == 0)
    return bool(ends.any())


def test_soft_edges_stay_near_thin_shapes_at_coarse_pixels():
    """A 1.6 mm by 32 mm ellipse and a small boxy superellipse (p = 12) on 8 mm pixels: the
    edge follows the distance to the boundary, so 40 mm past the long axis's tip the mask is
    below 1 % (scaled by the short axis it was 0.03-0.2), and far from the superellipse it is 0
    (its gradient's powers no longer overflow to a flat 0.5)."""
    canvas = _Canvas(64, 8.0, "cpu")
    thin = canvas.masks(torch.tensor([[0.0, 0.0, 0.8, 16.0, 0.0, 2.0]], dtype=torch.float64))[0]
    row = int(torch.argmin((canvas.y[:, 0] - 56.0).abs()))  # 40 mm beyond the tip at y = 16
    col = int(torch.argmin(canvas.x[0].abs()))
    # the shape is still drawn (nearest pixel centres 3.2 mm off its long axis: 0.17)
    assert float(thin[row, col]) < 0.01 and float(thin.max()) > 0.1
    box = canvas.masks(torch.tensor([[0.0, 0.0, 0.8, 0.8, 0.0, 12.0]], dtype=torch.float64))[0]
    assert torch.isfinite(box).all() and float(box[0, 0]) < 1e-6


def test_field_crop_is_the_same_at_every_image_size():
    """A forced field crop cuts the same rectangle (mm) at 64 x 8 mm and 128 x 4 mm: the crop
    is drawn before the texture's image-size-dependent draws."""
    for seed in range(3):
        extents = []
        for size, pixel in ((64, 8.0), (128, 4.0)):
            image = ctlike_phantom(
                torch.Generator().manual_seed(seed), size, pixel, field_crop=True
            )
            rows, cols = np.nonzero(image.numpy() > 0.05)
            extents.append(
                np.array([rows.min(), rows.max() + 1, cols.min(), cols.max() + 1]) * pixel
            )
        assert np.abs(extents[0] - extents[1]).max() <= 8.0, (seed, extents)


def test_crop_to_field_keeps_the_rectangle_with_straight_edges():
    canvas = _Canvas(128, 2.0, "cpu")
    canvas.hu.fill_(40.0)
    crop_to_field(canvas, 10.0, -20.0, 50.0, 30.0)
    body = canvas.hu > -950
    rows, cols = torch.nonzero(body, as_tuple=True)
    x = canvas.x[0, cols.unique()]
    y = canvas.y[rows.unique(), 0]
    assert float(x.min()) == pytest.approx(-40, abs=2) and float(x.max()) == pytest.approx(
        60, abs=2
    )
    assert float(y.min()) == pytest.approx(-50, abs=2) and float(y.max()) == pytest.approx(
        10, abs=2
    )
    # a hard edge: every pixel kept as it was or set to air, none in between
    assert set(canvas.hu.unique().tolist()) == {40.0, -1000.0}
    assert int(body.sum()) == 50 * 30  # (100 mm / 2 mm) x (60 mm / 2 mm) pixels


def test_field_crops_appear_at_their_rate():
    def count(field_crop):
        gen = torch.Generator().manual_seed(7)
        slices = [ctlike_phantom(gen, 128, 2.0, field_crop=field_crop) for _ in range(200)]
        return sum(_straight_side(s) for s in slices)

    assert count(False) == 0
    assert 0.5 * FIELD_CROP_P * 200 <= count(None) <= 1.5 * FIELD_CROP_P * 200
    assert count(True) >= 100  # most crops cut the body (measured: 144 of 200)


def _amplitude(image: torch.Tensor, pixel_size: float) -> tuple[float, float]:
    """Mean amplitude spectrum below 0.5 lp/cm and above 2 lp/cm (k in cycles/mm)."""
    amp = torch.fft.fft2(image - image.mean()).abs()
    k = torch.fft.fftfreq(image.shape[-1], d=pixel_size)
    kk = (k[:, None] ** 2 + k[None, :] ** 2).sqrt()
    low = (kk > 0.01) & (kk < 0.05)
    return float(amp[low].mean()), float(amp[kk > 0.2].mean())


def test_sharp_kernels_appear_at_their_rate_and_boost_only_high_frequencies():
    """A sharp kernel changes nothing else of a slice; it leaves the spectrum below 0.5 lp/cm
    and raises it above 2 lp/cm by 1.2 to 1 + 1.4 times (less where air clips the
    undershoot; the measured lung kernel: 1.4-1.5); about
    SHARP_KERNEL_P of the slices get one."""
    changed = 0
    for seed in range(60):
        plain, drawn, sharp = (
            ctlike_phantom(torch.Generator().manual_seed(seed), 128, 2.0, sharp_kernel=flag)
            for flag in (False, None, True)
        )
        changed += not torch.equal(plain, drawn)
        assert torch.equal(drawn, plain) or torch.equal(drawn, sharp)
        if seed < 10:
            (low_p, high_p), (low_s, high_s) = _amplitude(plain, 2.0), _amplitude(sharp, 2.0)
            assert low_s == pytest.approx(low_p, rel=0.05)
            assert 1.2 <= high_s / high_p <= 2.4, (seed, high_s / high_p)  # 1 + b at most
    assert 0.5 * SHARP_KERNEL_P * 60 <= changed <= 1.5 * SHARP_KERNEL_P * 60


def test_a_sharp_kernel_does_not_join_a_body_cut_by_one_edge_to_the_opposite_edges_air():
    """Tissue up to the left edge, air at the right edge: filtered periodically the two
    would meet and overshoot by hundreds of HU in the outer columns; continued, the outer
    columns of a flat body and of the air stay flat."""
    hu = torch.full((64, 64), -1000.0)
    hu[:, :32] = 40.0  # a body cut by the left edge of the field
    sharp = sharpen(hu, 2.0, 1.4)
    assert float((sharp[:, :8] - 40.0).abs().max()) < 1.0
    assert float((sharp[:, -8:] + 1000.0).abs().max()) < 1.0
    assert float((sharp[:, 31] - 40.0).min()) > 100.0  # the body's own edge still overshoots
    assert float(sharp.mean()) == pytest.approx(float(hu.mean()), abs=5.0)
