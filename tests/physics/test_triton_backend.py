"""The ``triton`` backend beyond the shared suite (``test_ray_transform.py``): many columns,
float64, availability, ``auto``'s per-device choice; on a GPU, real sizes and no host syncs.

Without CUDA the kernels run in Triton's CPU interpreter (``tests/conftest.py`` sets
``TRITON_INTERPRET=1``), so these use tiny sizes; the ``gpu`` tests use the real ones.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import textwrap

import pytest
import torch

from learnct.physics import FanBeamGeometry, ParallelBeamGeometry, RayTransform
from learnct.physics.backends.triton_backend import TritonBackend
from learnct.physics.presets import PRESETS

REASON = TritonBackend.unavailable_reason()
needs_triton = pytest.mark.skipif(REASON is not None, reason=str(REASON))
DEVICE = TritonBackend.devices()[0]

SMALL = {
    "fan": FanBeamGeometry(image_size=16, n_angles=8, n_detectors=24),
    "parallel-odd": ParallelBeamGeometry(image_size=17, n_angles=7, n_detectors=25),
}


def _rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return ((a.cpu() - b.cpu()).norm() / b.cpu().norm()).item()


@needs_triton
@pytest.mark.parametrize("geometry", [pytest.param(g, id=k) for k, g in SMALL.items()])
def test_many_columns_and_float64_agree_with_sparse(geometry):
    """17 images x m turned copies > 64 columns: several column blocks per ray block."""
    op = RayTransform(geometry, backend="triton")
    reference = RayTransform(geometry, backend="sparse")
    gen = torch.Generator().manual_seed(0)
    x = torch.rand(17, 1, *geometry.image_shape, generator=gen)
    y = torch.rand(17, 1, *geometry.sinogram_shape, generator=gen)
    assert _rel(op(x.to(DEVICE)), reference(x)) < 1e-5
    assert _rel(op.adjoint(y.to(DEVICE)), reference.adjoint(y)) < 1e-5
    x64, y64 = x[:2].double(), y[:2].double()
    fwd64, adj64 = op(x64.to(DEVICE)), op.adjoint(y64.to(DEVICE))
    assert fwd64.dtype == adj64.dtype == torch.float64
    # sparse stores float32 entries: float64 agrees to float32 rounding of the weights
    assert _rel(fwd64, reference(x64)) < 1e-6
    assert _rel(adj64, reference.adjoint(y64)) < 1e-6


@needs_triton
@pytest.mark.parametrize("geometry", [pytest.param(g, id=k) for k, g in SMALL.items()])
def test_transposed_and_single_plane_layouts_give_the_same_projections(geometry):
    """x-major rays read the transposed plane in the default layout: the same sums."""
    from learnct.physics.backends.triton_backend import TritonBackend

    gen = torch.Generator().manual_seed(1)
    x = torch.rand(3, 1, *geometry.image_shape, generator=gen, dtype=torch.float64)
    y = torch.rand(3, 1, *geometry.sinogram_shape, generator=gen, dtype=torch.float64)
    one, two = TritonBackend(geometry, transposed=False), TritonBackend(geometry, transposed=True)
    x, y = x.to(DEVICE), y.to(DEVICE)
    assert _rel(two.forward(x), one.forward(x)) < 1e-12
    assert _rel(two.adjoint(y), one.adjoint(y)) < 1e-12
    # and the default is the exact transpose: <A x, y> = <x, A^T y>
    lhs, rhs = (two.forward(x) * y).sum(), (x * two.adjoint(y)).sum()
    assert abs(lhs - rhs).item() < 1e-12 * abs(lhs).item()


@needs_triton
@pytest.mark.parametrize("geometry", [pytest.param(g, id=k) for k, g in SMALL.items()])
def test_gather_adjoint_is_deterministic_and_equals_the_atomic_scatter(geometry):
    """The pixel-driven adjoint finds every entry the ray-driven one scatters (float64: to
    rounding), is the exact transpose, and two calls agree bit for bit."""
    gen = torch.Generator().manual_seed(2)
    x = torch.rand(3, 1, *geometry.image_shape, generator=gen, dtype=torch.float64)
    y = torch.rand(3, 1, *geometry.sinogram_shape, generator=gen, dtype=torch.float64)
    gather = TritonBackend(geometry)
    scatter = TritonBackend(geometry, atomic_adjoint=True)
    x, y = x.to(DEVICE), y.to(DEVICE)
    aty = gather.adjoint(y)
    assert _rel(aty, scatter.adjoint(y)) < 1e-13
    lhs, rhs = (gather.forward(x) * y).sum(), (x * aty).sum()
    assert abs(lhs - rhs).item() < 1e-13 * abs(lhs).item()
    y32 = y.float()
    assert torch.equal(gather.adjoint(y32), gather.adjoint(y32))


@needs_triton
@pytest.mark.parametrize("chunks", [3, 100])
def test_gather_adjoint_in_angle_chunks_is_the_same_transpose(chunks):
    """The angles split among programs (3 chunks of the 6 base angles, or more chunks than
    angles: one angle each) give the unchunked adjoint to float rounding, deterministically."""
    geometry = FanBeamGeometry(image_size=16, n_angles=24, n_detectors=24)  # 6 base angles
    gen = torch.Generator().manual_seed(3)
    y = torch.rand(2, 1, *geometry.sinogram_shape, generator=gen, dtype=torch.float64)
    y = y.to(DEVICE)
    whole = TritonBackend(geometry).adjoint(y)
    chunked = TritonBackend(geometry, angle_chunks=chunks)
    assert _rel(chunked.adjoint(y), whole) < 1e-14
    y32 = y.float()
    assert torch.equal(chunked.adjoint(y32), chunked.adjoint(y32))
    with pytest.raises(ValueError, match="angle_chunks must be a positive integer"):
        TritonBackend(geometry, angle_chunks=0)


@pytest.mark.parametrize("preset", ["fan_lowdose", "fan_mayo", "lodopab", "parallel_ellipses"])
def test_gather_window_holds_every_ray_that_samples_a_pixel(preset):
    """``joseph_window``'s bound at real sizes: each non-zero entry's detector lies within
    the half-width of its pixel's projection (float64, some angles of each quadrant)."""
    from learnct.physics.joseph import joseph_entries, joseph_window

    geometry = PRESETS[preset]().geometry
    n, n_det = geometry.image_size, geometry.n_detectors
    angles = torch.linspace(0, geometry.n_angles - 1, 9).round().long()
    pixels, weights = joseph_entries(geometry, angles)
    theta = geometry.angles(torch.float64)[angles][:, None, None]
    centre = (n - 1) / 2
    x = ((pixels % n).double() - centre) * geometry.pixel_size
    y = (centre - (pixels // n).double()) * geometry.pixel_size
    along = x * torch.cos(theta) + y * torch.sin(theta)
    if isinstance(geometry, FanBeamGeometry):
        depth = geometry.source_radius + y * torch.cos(theta) - x * torch.sin(theta)
        along = geometry.source_to_detector * along / depth
    projected = along / geometry.detector_spacing + (n_det - 1) / 2
    detector = torch.arange(n_det, dtype=torch.float64)[None, :, None]
    offset = (detector - projected)[weights > 0].abs().max().item()
    half = joseph_window(geometry)
    assert offset < half
    assert offset > 0.5 * half  # a bound, not a loose one


def test_default_layout_is_transposed_only_for_large_images_and_few_columns():
    """The measured choice (projector_triton_gpu.md): two planes at 512^2 batch 1-2 only."""
    large = TritonBackend(PRESETS["fan_mayo"]().geometry)
    small = TritonBackend(PRESETS["fan_lowdose"]().geometry)
    assert [large.uses_transposed(c) for c in (4, 8, 32)] == [True, True, False]
    assert [small.uses_transposed(c) for c in (4, 8, 32)] == [False, False, False]
    assert TritonBackend(SMALL["fan"], transposed=True).uses_transposed(64)
    assert not TritonBackend(PRESETS["fan_mayo"]().geometry, transposed=False).uses_transposed(4)


def test_unavailable_without_cuda_outside_interpret_mode(monkeypatch):
    monkeypatch.setenv("TRITON_INTERPRET", "0")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    if importlib.util.find_spec("triton") is not None:
        assert "CUDA" in TritonBackend.unavailable_reason()
    assert TritonBackend.devices() == ("cuda",)
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *args: None)
    assert "not installed" in TritonBackend.unavailable_reason()
    monkeypatch.setenv("TRITON_INTERPRET", "1")
    assert TritonBackend.devices() == ("cpu",)
    with pytest.raises(ValueError, match="power of two"):
        TritonBackend(SMALL["fan"], block_rays=48)
    with pytest.raises(ValueError, match="block_pixels must be a power of two"):
        TritonBackend(SMALL["fan"], block_pixels=100)


def test_auto_runs_cuda_inputs_on_triton_and_keeps_the_cpu_choice(monkeypatch):
    geometry = SMALL["fan"]
    monkeypatch.setattr(TritonBackend, "unavailable_reason", classmethod(lambda cls: None))
    monkeypatch.setattr(TritonBackend, "devices", classmethod(lambda cls: ("cuda",)))
    op = RayTransform(geometry)
    assert (op.backend_name, op.backend_name_for("cpu")) == ("sparse", "sparse")
    assert op.backend_name_for("cuda") == "triton"
    assert RayTransform(geometry, matrix_budget_bytes=1000).backend_name_for("cuda") == "triton"
    # an explicit backend is never replaced
    assert RayTransform(geometry, backend="matrix_free").backend_name_for("cuda") == "matrix_free"
    monkeypatch.setattr(TritonBackend, "unavailable_reason", classmethod(lambda cls: "absent"))
    assert RayTransform(geometry).backend_name_for("cuda") == "sparse"


#: Compiles both kernels for an H100 (sm_90) with Triton's own compiler and ptxas, no GPU needed,
#: in a process without ``TRITON_INTERPRET`` (the interpreter does not type-check the kernels).
_COMPILE_FOR_SM90 = textwrap.dedent(
    """
    import triton
    from triton.backends.compiler import GPUTarget
    from triton.compiler import ASTSource
    from learnct.physics.backends import triton_kernels as kernels

    def compile_sm90(kernel, pointers, values, ints=2):
        types = pointers + ["i32"] * ints
        signature = dict(
            zip(kernel.arg_names, types + ["constexpr"] * len(values), strict=True)
        )
        constexprs = {(len(types) + i,): v for i, v in enumerate(values)}
        # arguments divisible by 16, as Triton specialises them at run time
        attrs = {(i,): [["tt.divisibility", 16]] for i in range(len(types))}
        source = ASTSource(kernel, signature, constexprs, attrs)
        compiled = triton.compile(source, target=GPUTarget("cuda", 90, 32))
        assert compiled.asm["cubin"]
        return compiled.asm["ptx"]

    for kernel in (kernels.joseph_forward_kernel, kernels.joseph_adjoint_kernel):
        for dtype, wide, transposed in (("fp32", False, True), ("fp32", False, False),
                                        ("fp64", True, True)):
            ptx = compile_sm90(
                kernel, [f"*{dtype}", f"*{dtype}", "*fp64"], (362, 64, 32, wide, transposed)
            )
            if dtype == "fp32":  # 16-byte accesses: the batch columns are contiguous
                assert "ld.global.v4" in ptx or "atom.global.gpu.relaxed.add.v4" in ptx
    for dtype, fan, wide in (("fp32", True, False), ("fp64", False, True)):
        pointers = [f"*{dtype}", f"*{dtype}", f"*{dtype}", "*fp64", "*fp64"]
        ptx = compile_sm90(
            kernels.joseph_gather_adjoint_kernel, pointers, (362, 513, fan, 6, 64, 32, wide), 3
        )
        assert "atom." not in ptx  # the gather adjoint never adds atomically
        if dtype == "fp32":
            assert "ld.global.v4" in ptx
    print("compiled")
    """
)


@pytest.mark.skipif(importlib.util.find_spec("triton") is None, reason="triton is not installed")
def test_kernels_compile_for_an_h100(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    env["TRITON_CACHE_DIR"] = str(tmp_path)
    env["PYTHONPATH"] = os.pathsep.join(p for p in sys.path if p)
    result = subprocess.run(
        [sys.executable, "-c", _COMPILE_FOR_SM90],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "compiled" in result.stdout


@pytest.mark.gpu
@pytest.mark.parametrize("preset", ["fan_mayo", "lodopab"])
def test_real_sizes_agree_with_matrix_free_and_are_adjoint(preset):
    geometry = PRESETS[preset]().geometry
    op = RayTransform(geometry, backend="triton")
    reference = RayTransform(geometry, backend="matrix_free")
    gen = torch.Generator().manual_seed(1)
    x = torch.rand(2, 1, *geometry.image_shape, generator=gen).cuda()
    y = torch.rand(2, 1, *geometry.sinogram_shape, generator=gen).cuda()
    ax, aty = op(x), op.adjoint(y)
    assert _rel(ax, reference(x)) < 1e-5
    assert _rel(aty, reference.adjoint(y)) < 1e-5
    lhs = (ax.double() * y.double()).sum()
    rhs = (x.double() * aty.double()).sum()
    err = (lhs - rhs).abs() / (op.norm() * x.double().norm() * y.double().norm())
    assert err.item() < 1e-5


@pytest.mark.gpu
@pytest.mark.parametrize("batch", [1, 8])
def test_gather_adjoint_at_fan_mayo_is_deterministic_and_equals_the_scatter(batch):
    geometry = PRESETS["fan_mayo"]().geometry
    gather = TritonBackend(geometry)
    scatter = TritonBackend(geometry, atomic_adjoint=True)
    gen = torch.Generator().manual_seed(3)
    y = torch.rand(batch, 1, *geometry.sinogram_shape, generator=gen).cuda()
    aty = gather.adjoint(y)
    assert torch.equal(aty, gather.adjoint(y))
    assert _rel(aty, scatter.adjoint(y)) < 1e-6


@pytest.mark.gpu
def test_cuda_projection_has_no_host_round_trip():
    """Once the geometry table is on the GPU, forward, adjoint and their gradients never
    synchronise with the host (``check_finite`` off: that check is a host sync)."""
    geometry = FanBeamGeometry(image_size=128, n_angles=200, n_detectors=256)
    op = RayTransform(geometry, backend="triton", check_finite=False)
    x = torch.rand(2, 1, *geometry.image_shape, device="cuda", requires_grad=True)
    y = torch.rand(2, 1, *geometry.sinogram_shape, device="cuda")
    op.adjoint(op(x))  # warm-up: compiles the kernels, uploads the geometry
    torch.cuda.set_sync_debug_mode("error")
    try:
        (op(x) * y).sum().backward()
        op.adjoint(y)
    finally:
        torch.cuda.set_sync_debug_mode("default")


@pytest.mark.gpu
def test_auto_projects_cuda_inputs_with_triton_like_cpu_inputs_with_sparse():
    geometry = PRESETS["fan_lowdose"]().geometry
    op = RayTransform(geometry)
    reference = RayTransform(geometry, backend="sparse")
    assert (op.backend_name, op.backend_name_for("cuda")) == ("sparse", "triton")
    x = torch.rand(3, 1, *geometry.image_shape)
    assert _rel(op(x.cuda()), reference(x)) < 1e-5
    # the norm comes from the CUDA backend, equal to sparse's ...
    assert op.norm() == pytest.approx(reference.norm(), rel=1e-4)
    assert op.backend._cpu is None  # ... and auto's CPU choice never built its matrix
