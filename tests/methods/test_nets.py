"""Networks: parameter counts, shapes, checkpointing, gradients, finite differences."""

from __future__ import annotations

import pytest
import torch

from conftest import TINY_FAN as GEOMETRY
from learnct.nets import (
    LearnedGradientDescentNet,
    LearnedInverseNet,
    LearnedPrimalDualNet,
    UNet,
    learned_inverse_memory,
)
from learnct.nets.blocks import count_parameters
from learnct.nets.finite_differences import divergence, gradient, tv_gradient, tv_norm
from learnct.physics import RayTransform


def _scaled(op: RayTransform):
    c = op.norm()
    return (lambda x: op(x) / c), (lambda y: op.adjoint(y) / c), c


def test_lpd_has_the_papers_parameter_count():
    assert count_parameters(LearnedPrimalDualNet()) == 253_220


@pytest.mark.parametrize("size", [32, 37])
def test_unet_keeps_the_shape_and_is_residual(size):
    net = UNet(depth=3, width=8, norm="group")
    x = torch.randn(2, 1, size, size)
    assert net(x).shape == x.shape
    torch.nn.init.zeros_(net.out.weight)
    torch.nn.init.zeros_(net.out.bias)
    torch.testing.assert_close(net(x), x)


def test_finite_differences_are_adjoint_and_tv_gradient_is_exact():
    u = torch.randn(2, 1, 9, 11, dtype=torch.float64)
    p = torch.randn(2, 1, 2, 9, 11, dtype=torch.float64)
    assert torch.isclose((gradient(u) * p).sum(), -(u * divergence(p)).sum(), rtol=1e-12)
    u.requires_grad_(True)
    tv_norm(u, eps=0.1).sum().backward()
    torch.testing.assert_close(u.grad, tv_gradient(u.detach(), eps=0.1))


@pytest.mark.parametrize("net_cls", [LearnedPrimalDualNet, LearnedGradientDescentNet])
def test_checkpointing_gives_the_same_gradients(operator, net_cls):
    op, op_adjoint, c = _scaled(operator)
    torch.manual_seed(0)
    g = torch.rand(2, 1, *GEOMETRY.sinogram_shape) * 20 / c
    target = torch.rand(2, 1, 32, 32)
    grads = []
    for flag in (False, True):
        torch.manual_seed(1)
        net = net_cls(n_iter=3, checkpoint=flag)
        f0 = torch.zeros(2, 1, 32, 32)
        out = net(g, op, op_adjoint, f0)
        ((out - target) ** 2).mean().backward()
        grads.append([p.grad.clone() for p in net.parameters()])
    for a, b in zip(*grads, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-7)


def test_gradient_flows_through_the_operator_into_the_first_iteration(operator):
    op, op_adjoint, c = _scaled(operator)
    calls = {"forward": 0, "adjoint": 0}

    def counted_op(x):
        calls["forward"] += 1
        return op(x)

    def counted_adjoint(y):
        calls["adjoint"] += 1
        return op_adjoint(y)

    g = torch.rand(1, 1, *GEOMETRY.sinogram_shape) * 20 / c
    net = LearnedPrimalDualNet(n_iter=2)
    out = net(g, counted_op, counted_adjoint, image_shape=(32, 32))
    out.square().mean().backward()
    assert calls == {"forward": 2, "adjoint": 2}
    first_dual = net.dual_blocks[0][0].weight.grad
    # Input channel n_dual (= 5) of the first dual block is A f: with f = 0 it carries nothing,
    # but g (channel 6) reaches the output only through A^T, so the gradient crossed A^T.
    assert first_dual is not None and first_dual.abs().sum() > 0
    assert net.primal_blocks[0][0].weight.grad.abs().sum() > 0

    lgd = LearnedGradientDescentNet(n_iter=2)
    out = lgd(g, op, op_adjoint, torch.zeros(1, 1, 32, 32))
    out.square().mean().backward()
    # The only path from the first block's weights to the output through data: A^T (A f - g).
    assert lgd.blocks[0][0].weight.grad.abs().sum() > 0


def test_learned_inverse_net_shapes_and_memory_growth():
    net = LearnedInverseNet(GEOMETRY, taps=2)
    out = net(torch.rand(3, 1, *GEOMETRY.sinogram_shape))
    assert out.shape == (3, 1, 32, 32)
    assert count_parameters(net) == learned_inverse_memory(32, 40, 48, taps=2)["parameters"]
    small = learned_inverse_memory(128, 200, 256)
    large = learned_inverse_memory(512, 1000, 1000)
    assert small["parameters"] < 4e6  # trainable at 128^2 on a CPU
    assert large["parameters"] > 2.5e8 and large["train_gib"] > 4  # the talk's point
    assert large["dense_parameters"] > 2e11


@pytest.mark.parametrize("kind", ["fan", "parallel"])
def test_the_learned_backprojection_connects_each_pixel_to_the_detector_bins_its_rays_hit(kind):
    """``detector_coordinates`` (which detector bin the fully learned net's backprojection
    reads for each pixel and angle) agrees with the ray transform: the sinogram of a single
    pixel is centred on that bin at every angle (measured within 0.08 bins); a mirrored or
    shifted wiring would only show as a lower PSNR otherwise."""
    from learnct.nets.learned_inverse import detector_coordinates
    from learnct.physics import FanBeamGeometry, ParallelBeamGeometry

    make = FanBeamGeometry if kind == "fan" else ParallelBeamGeometry
    geometry = make(image_size=32, n_angles=12, n_detectors=64)
    operator = RayTransform(geometry, backend="matrix_free")
    bins = torch.arange(64, dtype=torch.float64)
    predicted = detector_coordinates(geometry)
    for pixel in (0, 5 * 32 + 7, 20 * 32 + 25, 31 * 32 + 3):
        image = torch.zeros(1, 1, 32, 32)
        image.view(-1)[pixel] = 1
        sinogram = operator(image)[0, 0].double()
        centroid = (sinogram * bins).sum(1) / sinogram.sum(1)
        assert (centroid - predicted[:, pixel]).abs().max() < 0.15, pixel
