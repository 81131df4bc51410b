"""Tests for the ellipse phantoms: rasterisation, exact line integrals, random ellipses."""

from __future__ import annotations

import math

import pytest
import torch

from learnct.data.phantoms import (
    ellipse_line_integrals,
    random_ellipses,
    rasterize_ellipses,
    shepp_logan_ellipses,
)
from learnct.physics.geometry import FanBeamGeometry, ParallelBeamGeometry


def _disc(value: float, radius: float, cx: float = 0.0, cy: float = 0.0) -> torch.Tensor:
    return torch.tensor([[value, radius, radius, cx, cy, 0.0]], dtype=torch.float64)


def _inside(ellipses: torch.Tensor, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Brute-force phantom value at normalised points (independent of the module)."""
    out = torch.zeros_like(x)
    for value, a, b, cx, cy, rot in ellipses.tolist():
        c, s = math.cos(rot), math.sin(rot)
        u = (c * (x - cx) + s * (y - cy)) / a
        v = (-s * (x - cx) + c * (y - cy)) / b
        out = out + value * (u * u + v * v <= 1)
    return out


def test_disc_line_integrals_parallel():
    geom = ParallelBeamGeometry(image_size=64, n_angles=12, n_detectors=101, pixel_size=0.5)
    half = geom.image_width / 2  # mm per normalised unit
    value, radius = 1.7, 0.6
    sino = ellipse_line_integrals(_disc(value, radius), geom)
    assert sino.shape == (12, 101) and sino.dtype == torch.float64
    t = geom.detector_positions()
    r_mm = radius * half
    expected = 2 * value * torch.sqrt(torch.clamp(r_mm**2 - t**2, min=0))
    torch.testing.assert_close(sino, expected.expand_as(sino), rtol=0, atol=1e-9)
    # Explicit angle indices give the matching rows.
    sub = ellipse_line_integrals(_disc(value, radius), geom, torch.tensor([3, 0]))
    torch.testing.assert_close(sub, sino[[3, 0]], rtol=0, atol=0)


@pytest.mark.parametrize("geom_kind", ["parallel", "fan"])
def test_rotated_ellipse_matches_numerical_integration(geom_kind):
    if geom_kind == "parallel":
        geom = ParallelBeamGeometry(image_size=32, n_angles=7, n_detectors=45)
    else:
        geom = FanBeamGeometry(image_size=32, n_angles=7, n_detectors=45)
    ellipses = torch.tensor(
        [[0.8, 0.45, 0.2, 0.25, -0.3, 0.7], [-0.3, 0.15, 0.3, -0.2, 0.35, -1.1]],
        dtype=torch.float64,
    )
    angles = torch.tensor([0, 2, 5])
    sino = ellipse_line_integrals(ellipses, geom, angles)
    origins, dirs = geom.rays(angles)
    origins, dirs, sino = origins[:, ::2], dirs[:, ::2], sino[:, ::2]
    half = geom.image_width / 2
    # Midpoint rule along each line, restricted to the circumscribed circle.
    o = origins - (origins * dirs).sum(-1, keepdim=True) * dirs
    n = 30000
    step = 2 * geom.circumscribed_radius / n
    s = -geom.circumscribed_radius + (torch.arange(n, dtype=torch.float64) + 0.5) * step
    px = (o[..., 0:1] + s * dirs[..., 0:1]) / half
    py = (o[..., 1:2] + s * dirs[..., 1:2]) / half
    numeric = (_inside(ellipses, px, py) * step).sum(-1)
    assert numeric.abs().max() > 1.0  # the rays do hit the ellipses
    hit = numeric.abs() > 0.05 * numeric.abs().max()
    torch.testing.assert_close(sino[hit], numeric[hit], rtol=1e-3, atol=0)
    torch.testing.assert_close(sino, numeric, rtol=0, atol=4 * step)


def test_line_integrals_clipped_to_image_square():
    geom = ParallelBeamGeometry(image_size=32, n_angles=4, n_detectors=64)
    half = geom.image_width / 2
    # A disc of radius 0.5 centred on the right edge: half of it lies outside the image.
    disc = _disc(1.0, 0.5, cx=1.0)
    clipped = ellipse_line_integrals(disc, geom)
    full = ellipse_line_integrals(disc, geom, clip_to_image=False)
    t = geom.detector_positions()
    # theta = 0: vertical lines x = t, inside the square only for |t| <= half.
    r = 0.5 * half
    chord = 2 * torch.sqrt(torch.clamp(r**2 - (t - half) ** 2, min=0))
    torch.testing.assert_close(full[0], chord, rtol=0, atol=1e-9)
    torch.testing.assert_close(clipped[0], torch.where(t <= half, chord, 0.0), rtol=0, atol=1e-9)
    # theta = pi/2: horizontal lines y = -t cut the disc at x in [1 - w, 1] only (normalised).
    chord_y = torch.sqrt(torch.clamp(r**2 - t**2, min=0))
    torch.testing.assert_close(clipped[2], chord_y, rtol=0, atol=1e-9)
    torch.testing.assert_close(full[2], 2 * chord_y, rtol=0, atol=1e-9)


def test_rasterized_disc_area():
    n, radius = 256, 0.5
    image = rasterize_ellipses(_disc(1.0, radius), n)
    assert image.shape == (n, n) and image.dtype == torch.float32
    pixel_area = (2 / n) ** 2
    assert abs(image.sum().item() * pixel_area - math.pi * radius**2) < 0.01 * math.pi * radius**2
    smooth = rasterize_ellipses(_disc(1.0, radius), n, supersample=4)
    assert ((smooth > 0) & (smooth < 1)).any()  # partial-volume edge pixels
    area = smooth.double().sum().item() * pixel_area
    assert abs(area - math.pi * radius**2) < 0.002 * math.pi * radius**2


def test_rasterize_matches_point_test():
    gen = torch.Generator().manual_seed(7)
    ellipses = random_ellipses(gen)
    n = 96
    k = torch.arange(n, dtype=torch.float64)
    x = ((2 * k + 1) / n - 1)[None, :]
    y = (1 - (2 * k + 1) / n)[:, None]
    expected = _inside(ellipses, x.expand(n, n), y.expand(n, n))
    image = rasterize_ellipses(ellipses, n).double()
    torch.testing.assert_close(image, expected, atol=1e-6, rtol=0)
    empty = rasterize_ellipses(torch.zeros(0, 6, dtype=torch.float64), 8)
    assert empty.shape == (8, 8) and not empty.any()


def test_shepp_logan_values_and_orientation():
    table = shepp_logan_ellipses()
    assert table.shape == (10, 6) and table.dtype == torch.float64
    assert table[:, 0].tolist()[:3] == [1.0, -0.8, -0.2]
    assert shepp_logan_ellipses(modified=False)[:, 0].tolist()[:3] == [2.0, -0.98, -0.02]
    n = 256
    image = rasterize_ellipses(table, n)
    assert image.max().item() == 1.0 and image.min().item() >= 0.0
    assert rasterize_ellipses(shepp_logan_ellipses(False), n).max().item() == 2.0
    # Upright: the skull spans y in [-0.92, 0.92] vertically and x in [-0.69, 0.69].
    rows = torch.nonzero(image[:, n // 2] > 0).flatten()
    cols = torch.nonzero(image[n // 2] > 0).flatten()
    assert rows[0].item() == math.ceil((1 - 0.92) * n / 2 - 0.5)
    assert rows[-1].item() == n - 1 - rows[0].item()
    assert cols[0].item() == math.ceil((1 - 0.69) * n / 2 - 0.5)
    # The three small ellipses at y = -0.605 are in the lower half (large row indices).
    i_small = round((1 + 0.605) * n / 2 - 0.5)
    j_small = round(n / 2 - 0.5)
    assert image[i_small, j_small].item() == pytest.approx(0.3)
    # Ellipse c (x = 0.22, -18 degrees) leans right at the top: (0.31, 0.27) is inside it.
    point = torch.tensor([[0.3065, 0.2663], [0.1335, 0.2663]], dtype=torch.float64)
    values = _inside(table, point[:, 0], point[:, 1])
    torch.testing.assert_close(values, torch.tensor([0.0, 0.3], dtype=torch.float64))


def test_random_ellipses_deterministic_and_plausible():
    a = random_ellipses(torch.Generator().manual_seed(123))
    b = random_ellipses(torch.Generator().manual_seed(123))
    c = random_ellipses(torch.Generator().manual_seed(124))
    assert a.dtype == torch.float64 and a.ndim == 2 and a.shape[1] == 6
    torch.testing.assert_close(a, b, rtol=0, atol=0)
    assert a.shape != c.shape or not torch.equal(a, c)

    gen = torch.Generator().manual_seed(0)
    draws = [random_ellipses(gen) for _ in range(200)]
    counts = torch.tensor([d.shape[0] for d in draws], dtype=torch.float64)
    assert abs(counts.mean().item() - 50) < 2.5
    allv = torch.cat(draws)
    assert abs(allv[:, 0].mean().item()) < 0.01  # symmetric values
    assert allv[:, 0].abs().mean().item() == pytest.approx(0.25 * 0.4, rel=0.1)
    assert allv[:, 1:3].mean().item() == pytest.approx(0.2, rel=0.05)
    assert (allv[:, 1:3] > 0).all()
    assert allv[:, 3:5].min() >= -1 and allv[:, 3:5].max() < 1
    assert allv[:, 5].min() >= 0 and allv[:, 5].max() < 2 * math.pi


def test_fan_beam_orientation_matches_geometry():
    geom = FanBeamGeometry(image_size=64, n_angles=8, n_detectors=96)
    sino = ellipse_line_integrals(_disc(1.0, 0.08, cx=0.5, cy=0.0), geom)
    t = geom.detector_positions()
    # theta = 0: omega = (1, 0), the disc right of centre projects to t > 0.
    assert t[sino[0].argmax()].item() > 0
    # theta = pi (index 4): omega = (-1, 0), the disc projects to t < 0.
    assert t[sino[4].argmax()].item() < 0
    # theta = pi/2 (index 2): the source sits at (R_s, 0), the disc on the central ray.
    assert abs(t[sino[2].argmax()].item()) <= geom.detector_spacing
    # Total mass is conserved in the magnified fan coordinates: int p dt = M * area.
    dt = geom.detector_spacing
    mass = (sino[0].sum() * dt).item()
    area = math.pi * (0.08 * geom.image_width / 2) ** 2
    assert mass == pytest.approx(geom.magnification * area, rel=0.02)


@pytest.mark.parametrize("supersample", [1, 2])
def test_batched_rasterisation_gives_the_ellipse_source_images(supersample):
    """The training device's batched raster (padded sets, one pass) equals rasterising each
    sample of today's ellipse source alone."""
    from learnct.data.phantoms import pad_ellipses, rasterize_ellipse_batch
    from learnct.data.sources.ellipses import EllipsesDataset

    data = EllipsesDataset(48, 8, "train", seed=3, supersample=supersample, clip_min=None)
    sets = [data.ellipses(i) for i in range(5)]
    batch = rasterize_ellipse_batch(torch.stack([pad_ellipses(e) for e in sets]), 48, supersample)
    assert batch.shape == (5, 48, 48) and batch.dtype == torch.float32
    for i, image in enumerate(batch):
        torch.testing.assert_close(image, data[i]["image"][0], rtol=0, atol=1e-6)
    assert batch.abs().sum() > 0 and not torch.equal(batch[0], batch[1])


def test_batched_rasterisation_drops_zero_area_ellipses_as_the_single_one():
    """An ellipse with a half-axis <= 0 has no area: ``rasterize_ellipses`` drops it, and the
    batch must too (two negative half-axes made a positive ``a b`` and were drawn)."""
    from learnct.data.phantoms import pad_ellipses, rasterize_ellipse_batch, rasterize_ellipses

    e = torch.tensor([[1.0, 0.5, 0.3, 0.0, 0.0, 0.2], [2.0, -0.4, -0.4, 0.1, 0.0, 0.0]])
    e = torch.cat([e, torch.tensor([[3.0, 0.4, 0.0, 0.1, 0.0, 0.0]])])
    single = rasterize_ellipses(e, 32)
    assert single.max() == 1.0
    torch.testing.assert_close(rasterize_ellipse_batch(pad_ellipses(e)[None], 32)[0], single)
    # a hand-built batch that did not pass through pad_ellipses (which drops them)
    torch.testing.assert_close(rasterize_ellipse_batch(e[None], 32)[0], single)
