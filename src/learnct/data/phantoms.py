"""Phantoms made of ellipses: exact rasterisation and exact line integrals.

Ellipse sets
------------
An ellipse set is a float64 tensor of shape ``(E, 6)`` whose rows are

    ``(value, half_axis_a, half_axis_b, centre_x, centre_y, rotation)``

in NORMALISED coordinates: the image square is ``[-1, 1]^2`` with ``x`` pointing right and
``y`` pointing up (row 0 of a raster is the top, as in :mod:`learnct.physics.geometry`).
``rotation`` is in radians, counter-clockwise from the ``x`` axis: a point ``p`` lies in the
ellipse when ``q = R(-rotation) (p - centre)`` satisfies ``(q_x / a)^2 + (q_y / b)^2 <= 1``,
so ``half_axis_a`` is the half-axis along ``(cos rotation, sin rotation)``. The phantom is the
SUM of ``value * indicator(ellipse)`` over the rows (overlaps add up), restricted to the image
square. Ellipses with a non-positive half-axis have zero area and are ignored.

Physical units
--------------
For a :class:`~learnct.physics.geometry.Geometry` the normalised coordinate 1 is
``geometry.image_width / 2`` mm, so the phantom fills the geometry's image square exactly and
:func:`rasterize_ellipses` with ``image_size = geometry.image_size`` samples it at the
geometry's pixel centres. :func:`ellipse_line_integrals` returns (value) x mm.
"""

from __future__ import annotations

import math

import torch

from learnct.checks import check_int
from learnct.physics.geometry import Geometry

__all__ = [
    "MAX_ELLIPSES",
    "ellipse_line_integrals",
    "pad_ellipses",
    "random_ellipses",
    "rasterize_ellipse_batch",
    "rasterize_ellipses",
    "shepp_logan_ellipses",
]

# Elements per temporary (float64) when broadcasting points x ellipses: ~32 MB each.
_CHUNK_ELEMENTS = 1 << 22

# Shepp-Logan (Shepp & Logan 1974; table as in Kak & Slaney, Table 3.1): half-axes, centre
# and rotation (degrees, counter-clockwise). Grey values follow below.
_SHEPP_LOGAN_GEOMETRY = (
    (0.6900, 0.9200, 0.00, 0.0000, 0.0),
    (0.6624, 0.8740, 0.00, -0.0184, 0.0),
    (0.1100, 0.3100, 0.22, 0.0000, -18.0),
    (0.1600, 0.4100, -0.22, 0.0000, 18.0),
    (0.2100, 0.2500, 0.00, 0.3500, 0.0),
    (0.0460, 0.0460, 0.00, 0.1000, 0.0),
    (0.0460, 0.0460, 0.00, -0.1000, 0.0),
    (0.0460, 0.0230, -0.08, -0.6050, 0.0),
    (0.0230, 0.0230, 0.00, -0.6060, 0.0),
    (0.0230, 0.0460, 0.06, -0.6050, 0.0),
)
_SHEPP_LOGAN_VALUES = (2.0, -0.98, -0.02, -0.02, 0.01, 0.01, 0.01, 0.01, 0.01, 0.01)
# Toft's "modified" contrast (also MATLAB's 'Modified Shepp-Logan'): visible grey levels.
_MODIFIED_SHEPP_LOGAN_VALUES = (1.0, -0.8, -0.2, -0.2, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1)


def _check_ellipses(ellipses: torch.Tensor) -> torch.Tensor:
    """Validate an ellipse set; return it as float64 without zero-area rows."""
    if not isinstance(ellipses, torch.Tensor):
        raise TypeError(f"ellipses must be a torch.Tensor, got {type(ellipses).__name__}")
    if ellipses.ndim != 2 or ellipses.shape[1] != 6:
        raise ValueError(
            "ellipses must have shape (E, 6) with columns (value, half_axis_a, half_axis_b, "
            f"centre_x, centre_y, rotation), got {tuple(ellipses.shape)}"
        )
    e = ellipses.detach().to(torch.float64)
    if not torch.isfinite(e).all():
        raise ValueError("ellipses must be finite")
    return e[(e[:, 1] > 0) & (e[:, 2] > 0)]


def shepp_logan_ellipses(modified: bool = True) -> torch.Tensor:
    """The 10-ellipse Shepp-Logan head phantom as an ellipse set ``(10, 6)``.

    Args:
        modified: ``True`` for Toft's higher-contrast values (1, -0.8, -0.2, -0.2, 0.1, ...;
            the image has values in [0, 1]); ``False`` for the original values
            (2, -0.98, -0.02, -0.02, 0.01, ...).

    The head is upright: the skull's half-axes are 0.69 along ``x`` and 0.92 along ``y``, the
    three small ellipses sit near ``y = -0.605`` (bottom of the image), and the two dark
    ellipses at ``x = +-0.22`` are tilted by -+18 degrees (their tops lean outwards).
    """
    values = _MODIFIED_SHEPP_LOGAN_VALUES if modified else _SHEPP_LOGAN_VALUES
    rows = [
        (v, a, b, x, y, math.radians(phi))
        for v, (a, b, x, y, phi) in zip(values, _SHEPP_LOGAN_GEOMETRY, strict=True)
    ]
    return torch.tensor(rows, dtype=torch.float64)


def _exponential(n: int, scale: float, generator: torch.Generator) -> torch.Tensor:
    u = torch.rand(n, generator=generator, dtype=torch.float64, device=generator.device)
    return -torch.log1p(-u) * scale  # 1 - u lies in (0, 1]: no log(0)


def random_ellipses(
    generator: torch.Generator,
    mean_count: float = 50.0,
    value_scale: float = 0.4,
    axis_scale: float = 0.2,
) -> torch.Tensor:
    """A random ellipse set as in the Learned Primal-Dual paper (Adler & Öktem, 2018).

    Follows ``random_phantom`` / ``random_ellipse`` of the published code (``adler.odl.phantom``,
    used by ``adler-j/learned_primal_dual``), drawn with torch:

    - number of ellipses ``E ~ Poisson(mean_count)`` (may be 0: returns shape ``(0, 6)``);
    - value ``(U - 0.5) * Exp(scale=value_scale)``, ``U ~ Uniform[0, 1)``: symmetric about 0,
      so ellipses both add and remove intensity;
    - half-axes ``a, b ~ Exp(scale=axis_scale)``, independently;
    - centre uniform in ``[-1, 1)^2`` (ellipses may reach out of the image square);
    - rotation uniform in ``[0, 2 pi)``.

    The published code applies no post-processing (no clipping or normalisation): the phantom
    is the plain sum over ellipses and may be negative. Do any clipping on the raster.

    Args:
        generator: source of randomness; the result lives on ``generator.device`` and is
            fully determined by its state.
        mean_count: Poisson mean of the number of ellipses.
        value_scale: scale (mean) of the exponential factor of the value.
        axis_scale: scale (mean) of the exponential half-axes.

    Returns:
        float64 ellipse set ``(E, 6)`` (see the module docstring).
    """
    if not isinstance(generator, torch.Generator):
        raise TypeError(f"generator must be a torch.Generator, got {type(generator).__name__}")
    for name, value in (
        ("mean_count", mean_count),
        ("value_scale", value_scale),
        ("axis_scale", axis_scale),
    ):
        if not math.isfinite(value) or value < 0 or (name != "mean_count" and value == 0):
            raise ValueError(f"{name} must be a positive finite number, got {value!r}")
    device = generator.device
    rate = torch.tensor(float(mean_count), dtype=torch.float64, device=device)
    n = int(torch.poisson(rate, generator=generator).item())

    def uniform() -> torch.Tensor:
        return torch.rand(n, generator=generator, dtype=torch.float64, device=device)

    value = (uniform() - 0.5) * _exponential(n, value_scale, generator)
    a = _exponential(n, axis_scale, generator)
    b = _exponential(n, axis_scale, generator)
    cx = 2 * uniform() - 1
    cy = 2 * uniform() - 1
    rotation = 2 * math.pi * uniform()
    return torch.stack([value, a, b, cx, cy, rotation], dim=1)


def rasterize_ellipses(
    ellipses: torch.Tensor, image_size: int, supersample: int = 1
) -> torch.Tensor:
    """Sample an ellipse phantom on an ``image_size`` x ``image_size`` pixel grid.

    Pixel ``(i, j)`` has its centre at ``x_j = (2j + 1)/N - 1``, ``y_i = 1 - (2i + 1)/N``
    (row 0 at the top); its value is the sum of the values of the ellipses containing the
    centre (boundary included). With ``supersample = s > 1`` the value is instead the mean
    over the ``s x s`` sub-pixel centres ``x = (2 (j s + m) + 1)/(N s) - 1`` (likewise for
    ``y``), ``m = 0..s-1``: an approximation of the pixel average (partial-volume
    anti-aliasing) that converges as ``s`` grows.

    Exact scan conversion, vectorised over ellipses and rows: each ellipse meets the row at
    height ``y`` in the closed interval ``x_c(y) -+ a b sqrt(H^2 - (y - c_y)^2) / H^2``, where
    ``H = sqrt(a^2 sin^2 + b^2 cos^2)`` is its half-height and
    ``x_c(y) = c_x - (y - c_y) cos sin (b^2 - a^2) / H^2``; the columns of the interval get
    ``value`` through a difference array and a cumulative sum along the rows (cost
    ``O(E N s + (N s)^2)``, memory ``O(E N s)``). Computed in float64 on ``ellipses.device``;
    rounding residues below ``1e-12 * sum(|value|)`` are set to 0, so ellipses that cancel
    exactly give exactly 0. Returns a float32 tensor ``(image_size, image_size)``.
    """
    check_int("image_size", image_size)
    check_int("supersample", supersample)
    e = _check_ellipses(ellipses)
    device = e.device
    m = image_size * supersample
    diff = torch.zeros(m, m + 1, dtype=torch.float64, device=device)
    if e.shape[0] > 0:
        r = torch.arange(m, dtype=torch.float64, device=device)
        y = 1 - (2 * r + 1) / m  # row centres, top to bottom
        value, a, b, cx, cy, rot = (col[:, None] for col in e.T)  # (E, 1)
        c, s = torch.cos(rot), torch.sin(rot)
        h2 = (a * s) ** 2 + (b * c) ** 2  # squared half-height of the ellipse
        dy = y[None, :] - cy  # (E, M)
        half = a * b * torch.sqrt(torch.clamp(h2 - dy * dy, min=0)) / h2
        xc = cx - dy * (c * s * (b * b - a * a) / h2)
        # Column k has centre (2k + 1)/M - 1: the interval holds k in [k_lo, k_hi].
        k_lo = torch.ceil((m * (xc - half + 1) - 1) / 2).clamp(0, m)
        k_hi = torch.floor((m * (xc + half + 1) - 1) / 2).clamp(-1, m - 1)
        hit = (dy * dy <= h2) & (k_lo <= k_hi)
        rows = torch.arange(m, device=device).expand_as(dy)[hit]
        v = value.expand_as(dy)[hit]
        diff.index_put_((rows, k_lo[hit].long()), v, accumulate=True)
        diff.index_put_((rows, k_hi[hit].long() + 1), -v, accumulate=True)
    image = torch.cumsum(diff, dim=1)[:, :m]
    image = torch.where(image.abs() < 1e-12 * e[:, 0].abs().sum(), 0.0, image)
    if supersample > 1:
        image = image.reshape(image_size, supersample, image_size, supersample).mean((1, 3))
    return image.to(torch.float32)


#: Ellipses per phantom in a padded batch (``random_ellipses`` draws Poisson(50): more than
#: 160 has probability below 1e-30).
MAX_ELLIPSES = 160


def pad_ellipses(ellipses: torch.Tensor, count: int = MAX_ELLIPSES) -> torch.Tensor:
    """``(E, 6)`` ellipses as ``(count, 6)``: padded with value-0 unit circles (which add
    nothing), so that phantoms collate into one ``(B, count, 6)`` batch."""
    e = _check_ellipses(ellipses)
    if e.shape[0] > count:
        raise ValueError(f"{e.shape[0]} ellipses do not fit a padded set of {count}")
    pad = e.new_zeros(count - e.shape[0], 6)
    pad[:, 1:3] = 1.0
    return torch.cat([e, pad])


def rasterize_ellipse_batch(
    ellipses: torch.Tensor, image_size: int, supersample: int = 1
) -> torch.Tensor:
    """:func:`rasterize_ellipses` of a batch ``(B, E, 6)`` (sets padded by
    :func:`pad_ellipses`) in one pass on ``ellipses.device``: ``(B, image_size, image_size)``
    float32, the same images as rasterising each set alone (float64 sums; to rounding),
    without reading ``ellipses`` back to the host (no synchronisation on a GPU)."""
    check_int("image_size", image_size)
    check_int("supersample", supersample)
    if ellipses.dim() != 3 or ellipses.shape[-1] != 6:
        raise ValueError(f"ellipses must be (batch, count, 6), got {tuple(ellipses.shape)}")
    e = ellipses.to(torch.float64)
    device, batch = e.device, e.shape[0]
    m = image_size * supersample
    diff = torch.zeros(batch, m, m + 1, dtype=torch.float64, device=device)
    r = torch.arange(m, dtype=torch.float64, device=device)
    y = 1 - (2 * r + 1) / m
    value, a, b, cx, cy, rot = (col[..., None] for col in e.unbind(-1))  # (B, E, 1)
    c, s = torch.cos(rot), torch.sin(rot)
    h2 = (a * s) ** 2 + (b * c) ** 2
    dy = y - cy  # (B, E, M)
    half = a * b * torch.sqrt(torch.clamp(h2 - dy * dy, min=0)) / h2
    xc = cx - dy * (c * s * (b * b - a * a) / h2)
    k_lo = torch.ceil((m * (xc - half + 1) - 1) / 2).clamp(0, m)
    k_hi = torch.floor((m * (xc + half + 1) - 1) / 2).clamp(-1, m - 1)
    # zero-area sets (a or b <= 0) add nothing, as rasterize_ellipses drops them
    hit = (dy * dy <= h2) & (k_lo <= k_hi) & (value != 0) & (a > 0) & (b > 0)
    # every (image, ellipse, row), misses adding 0 at column 0: no boolean mask, whose
    # data-dependent size would be a host synchronisation on a GPU
    images = torch.arange(batch, device=device)[:, None, None].expand_as(dy)
    rows = torch.arange(m, device=device).expand_as(dy)
    v = torch.where(hit, value, 0.0)
    lo, hi = (torch.where(hit, k, 0).long() for k in (k_lo, k_hi + 1))
    diff.index_put_((images, rows, lo), v, accumulate=True)
    diff.index_put_((images, rows, hi), -v, accumulate=True)
    image = torch.cumsum(diff, dim=2)[:, :, :m]
    scale = 1e-12 * e[..., 0].abs().sum(1)[:, None, None]
    image = torch.where(image.abs() < scale, 0.0, image)
    if supersample > 1:
        image = image.reshape(batch, image_size, supersample, image_size, supersample)
        image = image.mean((2, 4))
    return image.to(torch.float32)


def _square_interval(
    origins: torch.Tensor, directions: torch.Tensor, half_width: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """Parameters ``[lo, hi]`` where the lines ``o + s d`` lie in ``[-h, h]^2`` (slab method).

    Empty intersections give ``lo > hi``.
    """
    lo = torch.full(origins.shape[:-1], -math.inf, dtype=origins.dtype, device=origins.device)
    hi = torch.full_like(lo, math.inf)
    for axis in range(2):
        o, d = origins[..., axis], directions[..., axis]
        parallel = d == 0
        safe_d = torch.where(parallel, torch.ones_like(d), d)
        t1, t2 = (-half_width - o) / safe_d, (half_width - o) / safe_d
        outside = parallel & (o.abs() > half_width)
        lo = torch.where(parallel, lo, torch.maximum(lo, torch.minimum(t1, t2)))
        hi = torch.where(parallel, hi, torch.minimum(hi, torch.maximum(t1, t2)))
        lo = torch.where(outside, torch.full_like(lo, math.inf), lo)
        hi = torch.where(outside, torch.full_like(hi, -math.inf), hi)
    return lo, hi


def ellipse_line_integrals(
    ellipses: torch.Tensor,
    geometry: Geometry,
    angle_indices: torch.Tensor | None = None,
    clip_to_image: bool = True,
) -> torch.Tensor:
    """Exact line integrals of an ellipse phantom along the rays of ``geometry``.

    The phantom is scaled to the geometry's image (normalised 1 = ``image_width / 2`` mm) and
    integrated along the lines ``o + s d`` of ``geometry.rays(angle_indices)`` (``d`` unit, so
    ``s`` is arc length in mm). For each ellipse the line is mapped to the ellipse's frame
    (translate by ``-centre``, rotate by ``-rotation``, divide by the half-axes), where it
    reads ``o' + s d'`` and meets the unit circle for ``|o' + s d'|^2 = 1``; the roots are
    ``s = (-(o'.d') -+ sqrt(D)) / |d'|^2`` with ``D = |d'|^2 - (o' x d')^2`` (Lagrange's
    identity), so the chord has length ``2 sqrt(max(D, 0)) / |d'|^2`` mm. The result is the sum
    over ellipses of ``value * length``.

    Args:
        ellipses: ellipse set ``(E, 6)`` (module docstring).
        geometry: a :class:`~learnct.physics.geometry.Geometry` (fan or parallel beam).
        angle_indices: integer tensor of angle indices; ``None`` for all angles.
        clip_to_image: intersect every chord with the image square, so the sinogram matches
            the phantom as rasterised (zero outside the square) even for ellipses that reach
            beyond it (common for :func:`random_ellipses`); ``False`` integrates the ellipses
            over the whole line.

    Returns:
        float64 tensor ``(n_angles, n_detectors)`` in (value) x mm, on ``ellipses.device``.
    """
    e = _check_ellipses(ellipses)
    device = e.device
    if angle_indices is None:
        angle_indices = torch.arange(geometry.n_angles)
    angle_indices = torch.as_tensor(angle_indices).reshape(-1)
    origins, directions = geometry.rays(angle_indices)
    out_shape = origins.shape[:-1]
    o = origins.reshape(-1, 2).to(device=device, dtype=torch.float64)
    d = directions.reshape(-1, 2).to(device=device, dtype=torch.float64)
    # Move each origin to the foot of the perpendicular from the image centre: chord ends
    # then have parameters of order the image size (no cancellation for far-away sources).
    o = o - (o * d).sum(-1, keepdim=True) * d
    half_width = geometry.image_width / 2
    if clip_to_image:
        lo, hi = _square_interval(o, d, half_width)
        lo, hi = lo[:, None], hi[:, None]
    ox, oy, dx, dy = o[:, 0:1], o[:, 1:2], d[:, 0:1], d[:, 1:2]  # (R, 1)

    total = torch.zeros(o.shape[0], dtype=torch.float64, device=device)
    chunk = max(1, _CHUNK_ELEMENTS // max(1, o.shape[0]))
    for start in range(0, e.shape[0], chunk):
        value, a, b, cx, cy, rot = (col[None, :] for col in e[start : start + chunk].T)
        a, b = a * half_width, b * half_width
        cx, cy = cx * half_width, cy * half_width
        c, s = torch.cos(rot), torch.sin(rot)
        px, py = ox - cx, oy - cy  # (R, E)
        op_x, op_y = (c * px + s * py) / a, (c * py - s * px) / b
        dp_x, dp_y = (c * dx + s * dy) / a, (c * dy - s * dx) / b
        dd = dp_x * dp_x + dp_y * dp_y
        cross = op_x * dp_y - op_y * dp_x
        root = torch.sqrt(torch.clamp(dd - cross * cross, min=0))
        length = 2 * root / dd
        if clip_to_image:
            mid = -(op_x * dp_x + op_y * dp_y) / dd
            s1, s2 = mid - root / dd, mid + root / dd
            clipped = torch.clamp(torch.minimum(s2, hi) - torch.maximum(s1, lo), min=0)
            length = torch.where((s1 >= lo) & (s2 <= hi), length, clipped)
        total += (value * length).sum(-1)
    return total.reshape(out_shape)
