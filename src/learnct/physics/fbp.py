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
(``grid_sample``), chunked over angles, with a plan (grid and weights) computed in the input's
dtype for the first ``A/m`` angles only, ``m`` the quarter-turn symmetry of the angle set (the
other angles are the same plan on turned images; see ``learnct.physics.symmetry``). The plan is
cached when it takes under 256 MB (``fan_lowdose``: 10 MB) and recomputed per call otherwise
(``fan_mayo``: 786 MB, 250 of 1000 angles). Everything is batched, runs on the input's device
and is differentiable.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F

from learnct.config_names import FILTERS
from learnct.physics.geometry import FanBeamGeometry, Geometry
from learnct.physics.ray_ops import full_precision
from learnct.physics.symmetry import QuarterTurnLayout

__all__ = ["FILTERS", "WINDOWS", "check_filter", "check_frequency_scaling", "fbp", "ramp_filter"]

_CHUNK_ELEMENTS = 1 << 22  # (angle, pixel) samples per backprojection chunk and image
_PLAN_CACHE_BYTES = 256 << 20


#: The ramp's windows, by filter name: each maps the normalised frequency ``f`` (1 = Nyquist) to
#: its weight. ``learnct.config_names.FILTERS`` lists the same names (a test keeps them equal).
WINDOWS: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "ram-lak": torch.ones_like,
    "shepp-logan": lambda f: torch.sinc(f / 2),  # sin(pi f / 2) / (pi f / 2)
    "cosine": lambda f: torch.cos(math.pi * f / 2),
    "hann": lambda f: 0.5 * (1 + torch.cos(math.pi * f)),
}


def check_filter(filter: str, name: str = "filter") -> str:
    """``filter`` if it names a window of :data:`WINDOWS`, else a ``ValueError`` naming the
    argument ``name`` and the choices."""
    if filter not in WINDOWS:
        raise ValueError(f"unknown {name} {filter!r}: choose one of {FILTERS}")
    return filter


def check_frequency_scaling(value: object, name: str = "frequency_scaling") -> float:
    """``value`` as a float if it is a cut-off in (0, 1] (a fraction of the Nyquist frequency),
    else a ``ValueError`` naming the argument ``name``."""
    if isinstance(value, bool) or not (isinstance(value, (int, float)) and 0 < value <= 1):
        raise ValueError(
            f"{name} must be in (0, 1] (a fraction of the Nyquist frequency), got {value!r}"
        )
    return float(value)


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
    check_filter(filter)
    check_frequency_scaling(frequency_scaling)
    length = 1 << math.ceil(math.log2(2 * n_detectors))
    n = torch.arange(length, dtype=torch.float64)
    n = torch.where(n < length // 2, n, n - length)  # circular layout of offsets
    h = torch.zeros(length, dtype=torch.float64)
    h[0] = 1 / (4 * spacing**2)
    odd = (n.abs() % 2) == 1  # a mask, not indexing: no data-dependent shape when compiled
    h = torch.where(odd, -1 / (math.pi * torch.where(odd, n, 1.0) * spacing) ** 2, h)
    response = torch.fft.rfft(h).real * spacing
    f = torch.linspace(0, 1, response.numel(), dtype=torch.float64)
    window = torch.where(
        f <= frequency_scaling, WINDOWS[filter](f / frequency_scaling), torch.zeros_like(f)
    )
    return (response * window).to(device=device, dtype=dtype)


def fbp(
    sinogram: torch.Tensor,
    geometry: Geometry,
    filter: str = "hann",
    frequency_scaling: float = 1.0,
) -> torch.Tensor:
    """Filtered backprojection of ``sinogram`` ``(B, 1, n_angles, n_detectors)`` (line
    integrals, image units x mm) to images ``(B, 1, N, N)`` in image units.

    Args:
        sinogram: float32 or float64 (float16 and bfloat16 are computed in float32).
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
    if not sinogram.is_floating_point():
        raise ValueError(f"sinogram must be floating point, got {sinogram.dtype}")
    sinogram = full_precision(sinogram)  # float16/bfloat16 in float32, as the ray transform
    _check_angle_range(geometry)
    with torch.autocast(sinogram.device.type, enabled=False):  # float32 under mixed precision
        return _filter_and_backproject(sinogram, geometry, filter, frequency_scaling)


def _check_angle_range(geometry: Geometry) -> None:
    """FBP weights every angle alike: exact for a fan-beam full scan and a parallel-beam half or
    full scan; other ranges measure some lines more often than others."""
    full = math.isclose(geometry.angle_range, 2 * math.pi, rel_tol=1e-9)
    if isinstance(geometry, FanBeamGeometry) and not full:
        raise ValueError(
            "fan-beam FBP needs a full scan (angle_range = 2*pi); short scans would need "
            f"Parker weights, which learnct does not implement (got {geometry.angle_range:g})"
        )
    if geometry.angle_range > math.pi * (1 + 1e-9) and not full:
        raise ValueError(
            "parallel-beam FBP needs angle_range = pi or 2*pi (or less than pi: limited angle); "
            "between the two some lines are measured twice and others once, which would need "
            f"redundancy weights, which learnct does not implement (got {geometry.angle_range:g})"
        )


def _filter_and_backproject(
    sinogram: torch.Tensor, geometry: Geometry, filter: str, frequency_scaling: float
) -> torch.Tensor:
    shape = geometry.sinogram_shape
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

    return _backproject(filtered, geometry)


def _backproject(filtered: torch.Tensor, geometry: Geometry) -> torch.Tensor:
    """Weighted, linearly interpolating backprojection of filtered rows ``(B, 1, A, D)``.

    Uses the quarter-turn symmetry of the angle set (``QuarterTurnLayout``): the rows of angle
    ``i + q A/m`` are backprojected with the plan of angle ``i`` and the result turned by
    ``q k`` quarter turns, so the plan covers ``A/m`` angles (a quarter at ``fan_mayo``).
    """
    layout = QuarterTurnLayout(geometry)
    m, base = layout.m, layout.base_angles
    batch, n_det = filtered.shape[0], filtered.shape[-1]
    # copy q of slice b becomes batch entry q * B + b (the layout's column order)
    data = filtered.reshape(batch, m, base, n_det).transpose(0, 1).reshape(m * batch, 1, base, -1)
    out = filtered.new_zeros(m * batch, geometry.image_size**2)
    for start, stop, grid, weight in _backprojection_plan(
        geometry, filtered.device, filtered.dtype
    ):
        samples = F.grid_sample(
            data[:, :, start:stop],
            grid.expand(m * batch, -1, -1, -1),
            mode="bilinear",
            padding_mode="zeros",
            align_corners=True,
        )
        out += (samples[:, 0] * weight).sum(1)
    return layout.columns_to_image(out.T, batch)


def _plan_chunks(geometry: Geometry, device: torch.device, dtype: torch.dtype):
    """Per chunk of the first ``A/m`` angles: the ``grid_sample`` grid ``(1, a, P, 2)`` and
    the backprojection weights ``(a, P)``, computed in ``dtype`` with broadcasting.

    For pixel ``p`` (mm) and angle ``theta``: ``along = p . omega``; fan beam
    ``depth = R_s + p . omega_perp`` (mm from the source), detector coordinate
    ``t = (R_s + R_d) along / depth`` and weight ``dbeta / 2 (R_s / depth)^2``; parallel beam
    ``t = along`` and weight ``dtheta min(1, pi / range)``. The grid's x is
    ``2 index / (D - 1) - 1`` with ``index = t / spacing + (D - 1) / 2``, i.e.
    ``t * 2 / (spacing (D - 1))``; its y picks the angle's row.
    """
    n = geometry.image_size
    n_det = geometry.n_detectors
    base = QuarterTurnLayout(geometry).base_angles
    step = max(1, _CHUNK_ELEMENTS // n**2)
    coords = (torch.arange(n, dtype=torch.float64) - (n - 1) / 2) * geometry.pixel_size
    x = coords.to(device, dtype)[None, None, :]  # columns, mm
    y = (-coords).to(device, dtype)[None, :, None]  # rows (row 0 at the top, y up), mm
    to_grid = 2 / (geometry.detector_spacing * max(n_det - 1, 1))
    fan = isinstance(geometry, FanBeamGeometry)
    for start in range(0, base, step):
        stop = min(start + step, base)
        theta = geometry.angle_offset + torch.arange(start, stop, dtype=torch.float64) * (
            geometry.angle_step
        )
        c = torch.cos(theta).to(device, dtype)[:, None, None]
        s = torch.sin(theta).to(device, dtype)[:, None, None]
        rows = stop - start
        gx = torch.addcmul(x * c, y, s)  # p . omega, mm, (a, N, N)
        if fan:
            inv_depth = torch.addcmul(y * c, x, s, value=-1).add_(geometry.source_radius)
            inv_depth.reciprocal_()  # 1 / (R_s + p . omega_perp)
            gx.mul_(inv_depth).mul_(geometry.source_to_detector * to_grid)
            scale = 0.5 * geometry.angle_step * geometry.source_radius**2
            weight = inv_depth.square_().mul_(scale)
        else:
            gx.mul_(to_grid)
            value = geometry.angle_step * min(1.0, math.pi / geometry.angle_range)
            weight = torch.full((rows, n, n), value, dtype=dtype, device=device)
        gy = torch.linspace(-1, 1, rows, dtype=dtype, device=device) if rows > 1 else None
        gy = torch.zeros_like(gx) if gy is None else gy[:, None, None].expand_as(gx)
        grid = torch.stack([gx, gy], -1)
        yield start, stop, grid.reshape(1, rows, n * n, 2), weight.reshape(rows, n * n)


_PLANS: dict[tuple, list] = {}


def _backprojection_plan(geometry: Geometry, device: torch.device, dtype: torch.dtype):
    """The plan's chunks, kept in memory (per geometry, device, dtype) when they take less
    than ``_PLAN_CACHE_BYTES`` (3 numbers per pixel and angle of the first ``A/m``), else
    recomputed per call."""
    key = (geometry.cache_key(), str(device), dtype)
    if key in _PLANS:
        return _PLANS[key]
    base = QuarterTurnLayout(geometry).base_angles
    plan_bytes = 3 * dtype.itemsize * base * geometry.image_size**2
    if plan_bytes > _PLAN_CACHE_BYTES:
        return _plan_chunks(geometry, device, dtype)
    if len(_PLANS) >= 8:  # a few geometries at a time
        _PLANS.pop(next(iter(_PLANS)))
    with torch.inference_mode(False):  # a cached plan made in inference mode stays usable
        _PLANS[key] = list(_plan_chunks(geometry, device, dtype))  # by autograd later
    return _PLANS[key]
