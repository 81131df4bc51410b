"""Filtered backprojection for parallel beam and for fan beam with a flat detector.

Parallel beam (Radon inversion): ``f(x) = sum_theta dtheta * (p_theta * h)(x . omega)``.

Fan beam, flat detector, full 2 pi scan (Kak and Slaney, ch. 3.4.2): rescale the detector to
a virtual detector through the centre (``s = t R_s / (R_s + R_d)``), weight the projections by
``R_s / sqrt(R_s^2 + s^2)``, filter with the ramp ``h`` along ``s``, and backproject with the
distance weight ``1 / U^2``, ``U = (R_s + x . omega_perp) / R_s``, and a factor 1/2 because
every line is measured twice:  ``f(x) = 1/2 sum_beta dbeta U^-2 (q_beta * h)(s(x))``.

The ramp is the band-limited discrete kernel (``h(0) = 1/(4 ds^2)``, ``h(n) = -1/(pi n ds)^2``
for odd ``n``) applied by FFT with zero padding, times a window of the normalised frequency
``f in [0, 1]`` (1 = Nyquist), evaluated at ``f / frequency_scaling`` and 0 above
``frequency_scaling``. Backprojection interpolates linearly along the detector
(``grid_sample``), chunked over angles. Everything is batched, runs on the input's device and
is differentiable.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from learnct.physics.geometry import FanBeamGeometry, Geometry

__all__ = ["FILTERS", "fbp", "ramp_filter"]

FILTERS = ("ram-lak", "shepp-logan", "cosine", "hann")
_CHUNK_ELEMENTS = 1 << 22  # (angle, pixel) samples per backprojection chunk and image
_PLAN_CACHE_BYTES = 256 << 20


def _window(name: str, f: torch.Tensor) -> torch.Tensor:
    if name == "ram-lak":
        return torch.ones_like(f)
    if name == "shepp-logan":
        return torch.sinc(f / 2)  # sin(pi f / 2) / (pi f / 2)
    if name == "cosine":
        return torch.cos(math.pi * f / 2)
    return 0.5 * (1 + torch.cos(math.pi * f))  # hann


def ramp_filter(
    n_detectors: int,
    spacing: float,
    filter: str = "ram-lak",
    frequency_scaling: float = 1.0,
    dtype: torch.dtype = torch.float32,
    device: torch.device | str = "cpu",
) -> torch.Tensor:
    """Frequency response (rfft layout, length ``L//2 + 1``) of the windowed ramp, including
    the factor ``spacing`` of the discrete convolution; ``L`` is the padded length."""
    if filter not in FILTERS:
        raise ValueError(f"unknown filter {filter!r}: choose one of {FILTERS}")
    if not (0 < frequency_scaling <= 1):
        raise ValueError(f"frequency_scaling must be in (0, 1], got {frequency_scaling!r}")
    length = 1 << math.ceil(math.log2(2 * n_detectors))
    n = torch.arange(length, dtype=torch.float64)
    n = torch.where(n < length // 2, n, n - length)  # circular layout of offsets
    h = torch.zeros(length, dtype=torch.float64)
    h[0] = 1 / (4 * spacing**2)
    odd = (n.abs() % 2) == 1
    h[odd] = -1 / (math.pi * n[odd] * spacing) ** 2
    response = torch.fft.rfft(h).real * spacing
    f = torch.linspace(0, 1, response.numel(), dtype=torch.float64)
    window = torch.where(
        f <= frequency_scaling, _window(filter, f / frequency_scaling), torch.zeros_like(f)
    )
    return (response * window).to(device=device, dtype=dtype)


def _detector_index_and_weight(
    geometry: Geometry, angle_indices: torch.Tensor, device: torch.device
) -> tuple[torch.Tensor, torch.Tensor]:
    """For every (angle, pixel): fractional detector index and backprojection weight."""
    n = geometry.image_size
    coords = (
        torch.arange(n, dtype=torch.float64, device=device) - (n - 1) / 2
    ) * geometry.pixel_size
    x = coords[None, :].expand(n, n).reshape(-1)
    y = (-coords)[:, None].expand(n, n).reshape(-1)
    theta = geometry.angle_offset + angle_indices.to(device, torch.float64) * geometry.angle_step
    c, s = torch.cos(theta)[:, None], torch.sin(theta)[:, None]
    along = x * c + y * s  # p . omega
    if isinstance(geometry, FanBeamGeometry):
        depth = geometry.source_radius + (-x * s + y * c)  # distance from source along ray
        t = geometry.source_to_detector * along / depth
        weight = 0.5 * geometry.angle_step * (geometry.source_radius / depth) ** 2
    else:
        t = along
        weight = geometry.angle_step * min(1.0, math.pi / geometry.angle_range)
        weight = torch.full_like(t, weight)
    index = t / geometry.detector_spacing + (geometry.n_detectors - 1) / 2
    return index, weight


def fbp(
    sinogram: torch.Tensor,
    geometry: Geometry,
    filter: str = "hann",
    frequency_scaling: float = 1.0,
) -> torch.Tensor:
    """Filtered backprojection of ``sinogram`` ``(B, 1, n_angles, n_detectors)`` (line
    integrals, image units x mm) to images ``(B, 1, N, N)`` in image units.

    Args:
        filter: ``"ram-lak"``, ``"shepp-logan"``, ``"cosine"`` or ``"hann"``.
        frequency_scaling: cut-off as a fraction of the Nyquist frequency, in (0, 1].
    """
    if not isinstance(geometry, Geometry):
        raise ValueError(f"geometry must be a Geometry, got {type(geometry).__name__}")
    shape = geometry.sinogram_shape
    if not isinstance(sinogram, torch.Tensor) or sinogram.dim() != 4 or sinogram.shape[1] != 1:
        got = tuple(sinogram.shape) if isinstance(sinogram, torch.Tensor) else type(sinogram)
        raise ValueError(f"sinogram must have shape (batch, 1, {shape[0]}, {shape[1]}), got {got}")
    if tuple(sinogram.shape[2:]) != shape:
        raise ValueError(
            f"sinogram must have shape (batch, 1, {shape[0]}, {shape[1]}), "
            f"got {tuple(sinogram.shape)}"
        )
    if sinogram.dtype not in (torch.float32, torch.float64):
        raise ValueError(f"sinogram must be float32 or float64, got {sinogram.dtype}")
    if isinstance(geometry, FanBeamGeometry) and not math.isclose(
        geometry.angle_range, 2 * math.pi, rel_tol=1e-9
    ):
        raise ValueError(
            "fan-beam FBP needs a full scan (angle_range = 2*pi); short scans would need "
            f"Parker weights, which learnct does not implement (got {geometry.angle_range:g})"
        )
    device, dtype = sinogram.device, sinogram.dtype
    n_det = shape[1]
    spacing = geometry.detector_spacing
    data = sinogram
    if isinstance(geometry, FanBeamGeometry):
        spacing = spacing / geometry.magnification  # virtual detector through the centre
        s = geometry.detector_positions().to(device) / geometry.magnification
        r = geometry.source_radius
        data = data * (r / torch.sqrt(r**2 + s**2)).to(dtype)
    response = ramp_filter(n_det, spacing, filter, frequency_scaling, dtype, device)
    length = 2 * (response.numel() - 1)
    spectrum = torch.fft.rfft(data, n=length, dim=-1) * response
    filtered = torch.fft.irfft(spectrum, n=length, dim=-1)[..., :n_det]

    batch = sinogram.shape[0]
    out = sinogram.new_zeros(batch, geometry.image_size**2)
    for start, stop, grid, weight in _backprojection_plan(geometry, device, dtype):
        rows = filtered[:, :, start:stop]
        samples = F.grid_sample(
            rows,
            grid.expand(batch, -1, -1, -1),
            mode="bilinear",
            padding_mode="zeros",
            align_corners=True,
        )
        out = out + (samples[:, 0] * weight).sum(1)
    return out.reshape(batch, 1, geometry.image_size, geometry.image_size)


def _plan_chunks(geometry: Geometry, device: torch.device, dtype: torch.dtype):
    """Per chunk of angles: the ``grid_sample`` grid ``(1, a, P, 2)`` and weights ``(a, P)``."""
    n_angles, n_det = geometry.sinogram_shape
    step = max(1, _CHUNK_ELEMENTS // geometry.image_size**2)
    for start in range(0, n_angles, step):
        idx = torch.arange(start, min(start + step, n_angles))
        index, weight = _detector_index_and_weight(geometry, idx, device)
        gx = 2 * index / max(n_det - 1, 1) - 1
        rows = len(idx)
        gy = torch.linspace(-1, 1, rows, dtype=gx.dtype, device=device) if rows > 1 else None
        gy = torch.zeros_like(gx) if gy is None else gy[:, None].expand_as(gx)
        grid = torch.stack([gx, gy], -1).to(dtype)[None]
        yield start, start + rows, grid, weight.to(dtype)


_PLANS: dict[tuple, list] = {}


def _backprojection_plan(geometry: Geometry, device: torch.device, dtype: torch.dtype):
    """The plan's chunks, kept in memory (per geometry, device, dtype) when they take less
    than ``_PLAN_CACHE_BYTES`` (12 bytes per angle and pixel), else recomputed per call."""
    key = (geometry.cache_key(), str(device), dtype)
    if key in _PLANS:
        return _PLANS[key]
    plan_bytes = 12 * geometry.n_angles * geometry.image_size**2
    if plan_bytes > _PLAN_CACHE_BYTES:
        return _plan_chunks(geometry, device, dtype)
    if len(_PLANS) >= 8:  # a few geometries at a time
        _PLANS.pop(next(iter(_PLANS)))
    _PLANS[key] = list(_plan_chunks(geometry, device, dtype))
    return _PLANS[key]
