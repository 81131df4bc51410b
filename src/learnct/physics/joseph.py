"""Joseph's discretisation of the ray transform: the matrix entries both exact backends share.

For a ray with unit direction ``d`` let the primary axis be x if ``|d_x| >= |d_y|``, else y.
The ray crosses each of the N pixel-centre lines of the primary axis once; there the image is
interpolated linearly between the two nearest pixel centres along the secondary axis (zero
outside the image), and the sample is weighted by the length of ray per pixel step,
``pixel_size / |d_primary|`` (mm). So each ray has at most ``2 N`` non-zero entries and

    (A f)(ray) = sum_k  pixel_size / |d_primary| * f_interp(ray crossing k)   [image units x mm]

This is the discretisation of Joseph (1982); it is exact for images that are linear along
the secondary axis and converges to the continuous line integral as the pixels shrink.
"""

from __future__ import annotations

import math

import torch

from learnct.physics.geometry import FanBeamGeometry, Geometry

__all__ = ["joseph_entries", "joseph_frames", "joseph_lines", "joseph_window"]


def joseph_frames(
    geometry: Geometry, angle_indices: torch.Tensor, device: torch.device | str = "cpu"
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per ray, its origin and direction along the primary and the secondary axis.

    Returns:
        frames: float64 ``(a, n_detectors, 4)``: ``(prim_o, prim_d, sec_o, sec_d)``, origin
            (mm) and unit-direction components, ``prim`` the primary axis.
        x_major: bool ``(a, n_detectors)``, whether x is the primary axis.
    """
    origins, directions = geometry.rays(angle_indices)
    origins = origins.to(device)
    directions = directions.to(device)
    ox, oy = origins[..., 0], origins[..., 1]
    dx, dy = directions[..., 0], directions[..., 1]
    x_major = dx.abs() >= dy.abs()  # (a, D)
    frames = torch.stack(
        [
            torch.where(x_major, ox, oy),
            torch.where(x_major, dx, dy),
            torch.where(x_major, oy, ox),
            torch.where(x_major, dy, dx),
        ],
        -1,
    )
    return frames, x_major


def joseph_entries(
    geometry: Geometry, angle_indices: torch.Tensor, device: torch.device | str = "cpu"
) -> tuple[torch.Tensor, torch.Tensor]:
    """Pixel indices and weights of the rays at ``angle_indices``, in a dense layout.

    Returns:
        pixels: int64 ``(a, n_detectors, 2N)`` flat pixel indices ``row * N + col``
            (0 where the weight is 0).
        weights: float64 ``(a, n_detectors, 2N)`` in mm (0 for samples outside the image).
    Row ``r = angle * n_detectors + detector`` of the operator is ``pixels[r], weights[r]``.
    ``joseph_csr.cpp`` computes the same entries with the same float64 operations in the same
    order (the sparse backend's native build); keep the two in step.
    """
    n = geometry.image_size
    px = geometry.pixel_size
    centre = (n - 1) / 2
    frames, x_major = joseph_frames(geometry, angle_indices, device)
    prim_o, prim_d, sec_o, sec_d = (f[..., None] for f in frames.unbind(-1))

    steps = torch.arange(n, device=device, dtype=torch.float64)
    line = (steps - centre) * px  # x of column k; y of row k is -line[k]
    prim_coord = torch.where(x_major[..., None], line, -line)  # (a, D, n)
    sec = sec_o + (prim_coord - prim_o) / prim_d * sec_d  # secondary coordinate in mm
    # fractional index along the secondary axis: rows count downwards, columns rightwards
    frac = torch.where(x_major[..., None], centre - sec / px, centre + sec / px)
    lower = torch.floor(frac)
    upper_w = frac - lower
    step_len = px / prim_d.abs()  # (a, D, 1) mm per primary step

    lower_i = lower.to(torch.int64)
    k = steps.to(torch.int64)
    weights, pixels = [], []
    for sec_idx, w in ((lower_i, (1 - upper_w) * step_len), (lower_i + 1, upper_w * step_len)):
        inside = (sec_idx >= 0) & (sec_idx < n)
        sec_safe = sec_idx.clamp(0, n - 1)
        flat = torch.where(x_major[..., None], sec_safe * n + k, k * n + sec_safe)
        weights.append(torch.where(inside, w, 0.0))
        pixels.append(torch.where(inside, flat, 0))
    return torch.cat(pixels, -1), torch.cat(weights, -1)


def joseph_lines(geometry: Geometry, angle_indices: torch.Tensor) -> torch.Tensor:
    """Per ray, Joseph's fractional secondary index as an affine function of the step ``k``:
    ``frac(k) = f0 + g (k - (N-1)/2)``, the step length ``pixel_size / |d_primary|`` (mm) and
    whether x is the primary axis.

    Returns float64 ``(a * n_detectors, 4)`` rows ``(f0, g, step, x_major)``, ray
    ``angle * n_detectors + detector``: x-major rays ``f0 = c - (o_y - o_x s)/px``, y-major
    ``f0 = c + (o_x - o_y s)/px``, ``g = -s`` with ``s = d_secondary / d_primary``.
    """
    origins, directions = geometry.rays(angle_indices)
    ox, oy = origins[..., 0].flatten(), origins[..., 1].flatten()
    dx, dy = directions[..., 0].flatten(), directions[..., 1].flatten()
    x_major = dx.abs() >= dy.abs()
    prim_d = torch.where(x_major, dx, dy)
    slope = torch.where(x_major, dy, dx) / prim_d
    centre = (geometry.image_size - 1) / 2
    px = geometry.pixel_size
    f0 = torch.where(x_major, centre - (oy - ox * slope) / px, centre + (ox - oy * slope) / px)
    step = px / prim_d.abs()
    return torch.stack([f0, -slope, step, x_major.to(torch.float64)], -1)


def joseph_window(geometry: Geometry) -> float:
    """Half-width ``h`` in detectors of the rays that can sample a pixel: every ray with a
    non-zero entry at pixel ``p`` has ``|detector - det(p)| < h``, ``det(p)`` the (fractional)
    detector index of ``p``'s projection.

    Such a ray passes the primary line through ``p`` less than a pixel from its centre, so
    within ``pixel_size`` of it. Parallel beam: ``h = pixel_size / spacing``. Fan beam (flat
    detector at ``D`` from the source, ``b >= R_s - r`` the pixel's depth from the source,
    ``r`` the image's circumradius): a ray at detector offset ``t`` is within ``px`` of ``p``
    iff ``b |t - t_p| < px sqrt(t^2 + D^2)``, so ``h = px sqrt(t_max^2 + D^2) / ((R_s - r)
    spacing)``.
    """
    px, spacing = geometry.pixel_size, geometry.detector_spacing
    if not isinstance(geometry, FanBeamGeometry):
        return px / spacing
    t_max = (geometry.n_detectors - 1) / 2 * spacing
    depth = geometry.source_radius - geometry.circumscribed_radius
    return px * math.hypot(t_max, geometry.source_to_detector) / (depth * spacing)
