"""Triton kernels of Joseph's ray transform (see ``learnct.physics.joseph``), ray-driven.

Imported lazily by the ``triton`` backend (importing it imports ``triton``). The ray-driven
kernels read each ray's line (``learnct.physics.joseph.joseph_lines``, float64), then walk the
ray's ``N`` primary steps. Along the primary axis Joseph's fractional
secondary index is affine in the step ``k``:

    x-major (|d_x| >= |d_y|):  frac(k) = c - (o_y - o_x d_y/d_x) / px - (k - c) d_y/d_x
    y-major:                   frac(k) = c + (o_x - o_y d_x/d_y) / px - (k - c) d_x/d_y

(``c = (N-1)/2``, ``o`` the ray origin in mm, ``d`` its unit direction), and with
``l = floor(frac)``, ``u = frac - l`` the step contributes ``px/|d_primary| * ((1-u) f[l] +
u f[l+1])`` (pixels outside the image count 0). The forward kernel gathers these samples.
Two adjoints: ``joseph_gather_adjoint_kernel`` (the backend's default) is pixel-driven and
recomputes, for the few rays per angle near each pixel, the forward's ``frac`` with the same
expression (``_frac``), so it meets the same entries without atomics, deterministically;
``joseph_adjoint_kernel`` scatters the same weights with atomic adds.

Images and sinograms are in the column layout of ``QuarterTurnLayout``: ``(N*N, C)`` and
``(rays, C)`` row-major, so one sample reads or writes ``C`` contiguous values (the batch and
its quarter-turned copies), and the geometry of a ray is computed once for all of them.

``TRANSPOSED`` (coalesced access): the image buffer is ``(2, N*N, C)``, the image and its
transpose. Neighbouring rays of one angle step to neighbouring secondary indices; read in the
plane whose rows run along the secondary axis (y-major rays: the image, x-major rays: its
transpose), their samples are ``C`` values apart instead of ``N*C``, so at small ``C`` (batch
1: ``C = 4``) a ray block reads a few contiguous segments instead of one per ray. The adjoint
scatters into both planes; the caller adds the transposed plane back.
"""

from __future__ import annotations

import triton
import triton.language as tl

__all__ = ["joseph_adjoint_kernel", "joseph_forward_kernel", "joseph_gather_adjoint_kernel"]


@triton.jit
def _ray_steps(
    rays_ptr,
    rays,
    n_rays,
    N: tl.constexpr,
    TRANSPOSED: tl.constexpr,
):
    """Per ray, from the ray table (``TritonBackend.ray_table``): offset ``f0`` and slope
    ``g`` of ``frac`` (float64), step length (mm), the plane offset and the pixel strides along
    the primary and secondary axes, and the block's range of useful steps."""
    valid = rays < n_rays
    f0 = tl.load(rays_ptr + 4 * rays, mask=valid, other=0.0)
    g = tl.load(rays_ptr + 4 * rays + 1, mask=valid, other=0.0)
    step = tl.load(rays_ptr + 4 * rays + 2, mask=valid, other=0.0)
    x_major = tl.load(rays_ptr + 4 * rays + 3, mask=valid, other=1.0) != 0.0
    centre = (N - 1) / 2
    # steps where -1 < frac < N (the others have both samples outside), one step of margin
    g_safe = tl.where(g == 0.0, 1e-30, g)
    k_a = centre + (-1.0 - f0) / g_safe
    k_b = centre + (N - f0) / g_safe
    k_lo = tl.minimum(tl.maximum(tl.floor(tl.minimum(k_a, k_b)) - 1.0, 0.0), N * 1.0)
    k_hi = tl.minimum(tl.maximum(tl.ceil(tl.maximum(k_a, k_b)) + 2.0, 0.0), N * 1.0)
    k_start = tl.min(tl.where(valid, k_lo, N * 1.0), axis=0).to(tl.int32)
    k_end = tl.max(tl.where(valid, k_hi, 0.0), axis=0).to(tl.int32)
    if TRANSPOSED:  # pixel (y, x) of plane 0 is at y N + x, of plane 1 (transpose) at x N + y
        plane = tl.where(x_major, N * N, 0)
        prim_stride = tl.where(x_major, N, N)
        sec_stride = tl.where(x_major, 1, 1)
    else:
        plane = tl.where(x_major, 0, 0)
        prim_stride = tl.where(x_major, 1, N)
        sec_stride = tl.where(x_major, N, 1)
    return f0, g, step, plane, prim_stride, sec_stride, k_start, k_end


@triton.jit
def _frac(f0, g, k, N: tl.constexpr):
    """Joseph's fractional secondary index of a ray at primary step ``k``: the one expression
    every kernel evaluates, so the gather adjoint meets the forward's samples bit for bit."""
    return f0 + g * (k - (N - 1) / 2)


@triton.jit
def joseph_forward_kernel(
    image_ptr,
    sino_ptr,
    rays_ptr,
    n_rays,
    n_cols,
    N: tl.constexpr,
    BLOCK_RAYS: tl.constexpr,
    BLOCK_COLS: tl.constexpr,
    WIDE: tl.constexpr,
    TRANSPOSED: tl.constexpr,
):
    """``sino[r, :] = sum_k step_r ((1-u) image[p_lo, :] + u image[p_hi, :])``."""
    rays = tl.program_id(0) * BLOCK_RAYS + tl.arange(0, BLOCK_RAYS)
    cols = tl.program_id(1) * BLOCK_COLS + tl.arange(0, BLOCK_COLS)
    dtype = sino_ptr.dtype.element_ty
    f0, g, step, plane, prim_stride, sec_stride, k_start, k_end = _ray_steps(
        rays_ptr, rays, n_rays, N, TRANSPOSED
    )
    f0 = f0.to(dtype)
    g = g.to(dtype)
    ray_ok = rays < n_rays
    col_ok = (cols < n_cols)[None, :]
    acc = tl.zeros((BLOCK_RAYS, BLOCK_COLS), dtype=dtype)
    for k in range(k_start, k_end):
        frac = _frac(f0, g, k, N)
        lower = tl.floor(frac)
        u = (frac - lower)[:, None]
        lo = lower.to(tl.int32)
        pix = plane + lo * sec_stride + k * prim_stride
        if WIDE:
            pix = pix.to(tl.int64)
        ptr = image_ptr + pix[:, None] * n_cols + cols[None, :]
        ok_lo = (ray_ok & (lo >= 0) & (lo < N))[:, None] & col_ok
        ok_hi = (ray_ok & (lo >= -1) & (lo < N - 1))[:, None] & col_ok
        v_lo = tl.load(ptr, mask=ok_lo, other=0.0)
        v_hi = tl.load(ptr + sec_stride[:, None] * n_cols, mask=ok_hi, other=0.0)
        acc += (1 - u) * v_lo + u * v_hi
    out = acc * step.to(dtype)[:, None]
    rows = rays.to(tl.int64) if WIDE else rays
    tl.store(sino_ptr + rows[:, None] * n_cols + cols[None, :], out, mask=ray_ok[:, None] & col_ok)


@triton.jit
def joseph_adjoint_kernel(
    sino_ptr,
    image_ptr,
    rays_ptr,
    n_rays,
    n_cols,
    N: tl.constexpr,
    BLOCK_RAYS: tl.constexpr,
    BLOCK_COLS: tl.constexpr,
    WIDE: tl.constexpr,
    TRANSPOSED: tl.constexpr,
):
    """``image[p_lo, :] += step_r (1-u) sino[r, :]``, ``image[p_hi, :] += step_r u sino[r, :]``
    (atomic adds into a zeroed image): the transpose of ``joseph_forward_kernel``."""
    rays = tl.program_id(0) * BLOCK_RAYS + tl.arange(0, BLOCK_RAYS)
    cols = tl.program_id(1) * BLOCK_COLS + tl.arange(0, BLOCK_COLS)
    dtype = sino_ptr.dtype.element_ty
    f0, g, step, plane, prim_stride, sec_stride, k_start, k_end = _ray_steps(
        rays_ptr, rays, n_rays, N, TRANSPOSED
    )
    f0 = f0.to(dtype)
    g = g.to(dtype)
    ray_ok = rays < n_rays
    col_ok = (cols < n_cols)[None, :]
    rows = rays.to(tl.int64) if WIDE else rays
    values = tl.load(
        sino_ptr + rows[:, None] * n_cols + cols[None, :], mask=ray_ok[:, None] & col_ok, other=0.0
    )
    values = values * step.to(dtype)[:, None]
    for k in range(k_start, k_end):
        frac = _frac(f0, g, k, N)
        lower = tl.floor(frac)
        u = (frac - lower)[:, None]
        lo = lower.to(tl.int32)
        pix = plane + lo * sec_stride + k * prim_stride
        if WIDE:
            pix = pix.to(tl.int64)
        ptr = image_ptr + pix[:, None] * n_cols + cols[None, :]
        ok_lo = (ray_ok & (lo >= 0) & (lo < N))[:, None] & col_ok
        ok_hi = (ray_ok & (lo >= -1) & (lo < N - 1))[:, None] & col_ok
        tl.atomic_add(ptr, (1 - u) * values, mask=ok_lo, sem="relaxed")
        tl.atomic_add(ptr + sec_stride[:, None] * n_cols, u * values, mask=ok_hi, sem="relaxed")


@triton.jit
def joseph_gather_adjoint_kernel(
    sino_ptr,
    image_ptr,
    gather_ptr,
    trig_ptr,
    params_ptr,
    n_angles,
    n_cols,
    angles_per_chunk,
    N: tl.constexpr,
    N_DET: tl.constexpr,
    FAN: tl.constexpr,
    WINDOW: tl.constexpr,
    BLOCK_PIX: tl.constexpr,
    BLOCK_COLS: tl.constexpr,
    WIDE: tl.constexpr,
):
    """``image[p, :] = sum_(angle, ray) w_(ray, p) sino[ray, :]``, pixel-driven, no atomics.

    Program ``(i, j, c)`` sums the angles ``[c A_c, (c + 1) A_c)`` (``A_c`` =
    ``angles_per_chunk``) into plane ``c`` of ``image`` (``(chunks, N*N, n_cols)``): small
    images get more programs than pixel blocks, and the caller adds the planes in a fixed
    order (deterministic).

    Per pixel and angle only rays passing within one pixel of the pixel's centre can sample
    it: those of the ``WINDOW`` detectors from ``floor(det_p - half)`` on (``det_p`` the
    pixel's projection onto the detector, ``half`` from ``TritonBackend``). For each, the
    kernel recomputes the ray's ``frac`` at the pixel's primary step with the forward's own
    expression (``_frac``, the same ``f0, g`` in the same dtype), so it finds the same
    ``lower`` and ``u``: the entries of the forward, summed in a fixed order (deterministic).
    ``gather_ptr``: per ray ``(f0, g, +-step)`` in the image's dtype, the sign of the step
    the primary axis (+ x-major)."""
    pix = tl.program_id(0) * BLOCK_PIX + tl.arange(0, BLOCK_PIX)
    cols = tl.program_id(1) * BLOCK_COLS + tl.arange(0, BLOCK_COLS)
    dtype = image_ptr.dtype.element_ty
    pix_ok = pix < N * N
    col_ok = (cols < n_cols)[None, :]
    row = pix // N
    col = pix % N
    px = tl.load(params_ptr).to(tl.float32)
    inv_spacing = 1.0 / tl.load(params_ptr + 1).to(tl.float32)
    source_radius = tl.load(params_ptr + 2).to(tl.float32)
    source_to_detector = tl.load(params_ptr + 3).to(tl.float32)
    half = tl.load(params_ptr + 4).to(tl.float32)
    x = (col.to(tl.float32) - (N - 1) / 2) * px  # pixel centre (mm)
    y = ((N - 1) / 2 - row.to(tl.float32)) * px
    acc = tl.zeros((BLOCK_PIX, BLOCK_COLS), dtype=dtype)
    chunk = tl.program_id(2)
    a_start = chunk * angles_per_chunk
    a_end = tl.minimum(a_start + angles_per_chunk, n_angles)
    for a in range(a_start, a_end):
        cos = tl.load(trig_ptr + 2 * a).to(tl.float32)
        sin = tl.load(trig_ptr + 2 * a + 1).to(tl.float32)
        along = x * cos + y * sin  # p . omega (mm)
        if FAN:  # through the source at -R_s omega_perp onto the flat detector
            t = source_to_detector * along / (source_radius + y * cos - x * sin)
        else:
            t = along
        first = tl.floor(t * inv_spacing + (N_DET - 1) / 2 - half).to(tl.int32)
        for j in tl.static_range(WINDOW):
            det = first + j
            ray = a * N_DET + det
            ok = pix_ok & (det >= 0) & (det < N_DET)
            f0 = tl.load(gather_ptr + 3 * ray, mask=ok, other=0.0)
            g = tl.load(gather_ptr + 3 * ray + 1, mask=ok, other=0.0)
            step = tl.load(gather_ptr + 3 * ray + 2, mask=ok, other=1.0)
            x_major = step > 0
            k = tl.where(x_major, col, row)
            sec = tl.where(x_major, row, col)
            frac = _frac(f0, g, k, N)
            lower = tl.floor(frac)
            u = frac - lower
            lo = lower.to(tl.int32)
            ok = ok & ((lo == sec) | (lo == sec - 1))
            weight = tl.where(lo == sec, 1 - u, u) * tl.abs(step)
            rows = ray.to(tl.int64) if WIDE else ray
            values = tl.load(
                sino_ptr + rows[:, None] * n_cols + cols[None, :],
                mask=ok[:, None] & col_ok,
                other=0.0,
            )
            acc += weight[:, None] * values
    out = pix.to(tl.int64) if WIDE else pix
    plane = chunk.to(tl.int64) if WIDE else chunk
    out = out + plane * (N * N)
    tl.store(image_ptr + out[:, None] * n_cols + cols[None, :], acc, mask=pix_ok[:, None] & col_ok)
