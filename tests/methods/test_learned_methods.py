"""Learned methods overfit a small fixed batch; outputs have the right shape and device."""

from __future__ import annotations

import pytest
import torch

from conftest import TINY_FAN as GEOMETRY
from learnct.data.phantoms import random_ellipses, rasterize_ellipses
from learnct.methods import FBPUNet, LearnedGradientDescent, LearnedInverse, LearnedPrimalDual
from learnct.physics import RayTransform


@pytest.fixture(scope="module")
def fixed_batch():
    operator = RayTransform(GEOMETRY)
    gen = torch.Generator().manual_seed(0)
    image = torch.stack(
        [rasterize_ellipses(random_ellipses(gen, mean_count=8), 32) for _ in range(2)]
    )[:, None]
    image = image / image.amax((1, 2, 3), keepdim=True)
    sinogram = operator(image)
    sinogram = sinogram + 0.02 * sinogram.abs().mean() * torch.randn(sinogram.shape, generator=gen)
    return operator, image, sinogram


# (method, kwargs, steps, measured loss ratio after those steps)
CASES = {
    "lpd": (LearnedPrimalDual, {}, 100, 112),
    "lgd": (LearnedGradientDescent, {}, 100, 82),
    "learned_inverse": (LearnedInverse, {}, 100, 860),
    "fbpunet": (FBPUNet, {"depth": 3, "width": 16}, 100, 850),
}


@pytest.mark.parametrize("name", list(CASES))
def test_learned_method_overfits_a_fixed_batch(fixed_batch, name):
    operator, image, sinogram = fixed_batch
    cls, kwargs, steps, _ = CASES[name]
    torch.manual_seed(0)
    method = cls(operator, **kwargs)
    optimizer = torch.optim.Adam(method.parameters(), lr=1e-3, betas=(0.9, 0.99))
    losses = []
    for _ in range(steps):
        loss = method.loss_fn(method(sinogram), image)
        optimizer.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(method.parameters(), method.hparams.gradient_clip_val)
        optimizer.step()
        losses.append(loss.item())
    ratio = losses[0] / losses[-1]
    assert ratio > 30, f"{name}: loss {losses[0]:.4g} -> {losses[-1]:.4g} (x{ratio:.1f})"
    # Better than the trivial reconstruction (zero) by a wide margin.
    assert losses[-1] < 0.25 * float(image.square().mean())
    out = method.reconstruct(sinogram)
    assert out.shape == image.shape and out.device == sinogram.device
    assert method.training  # reconstruct restored the mode


@pytest.mark.parametrize("init", ["zero", "fbp"])
def test_unrolled_methods_start_options_and_batching(fixed_batch, init):
    operator, _, sinogram = fixed_batch
    for cls in (LearnedPrimalDual, LearnedGradientDescent):
        method = cls(operator, n_iter=2, init=init)
        both = method.reconstruct(sinogram)
        one_by_one = method.reconstruct(sinogram, batch_size=1)
        torch.testing.assert_close(both, one_by_one, rtol=1e-4, atol=1e-5)
        assert method.reconstruct(sinogram[0, 0]).shape == (32, 32)


def test_operator_norm_is_stored_for_checkpoints(fixed_batch):
    operator, _, sinogram = fixed_batch
    method = LearnedPrimalDual(operator, n_iter=1)
    method.reconstruct(sinogram)
    state = method.state_dict()
    assert float(state["op_norm"]) == pytest.approx(operator.norm())
    fresh = LearnedPrimalDual(operator, n_iter=1, operator_norm=123.0)
    fresh.load_state_dict(state)
    assert fresh.operator_norm() == pytest.approx(operator.norm())


def test_lgd_with_tv_input_and_checkpointing(fixed_batch):
    operator, image, sinogram = fixed_batch
    method = LearnedGradientDescent(operator, n_iter=2, tv_input=True, checkpoint=True)
    loss = method.loss_fn(method(sinogram), image)
    loss.backward()
    assert method.net.blocks[0][0].weight.grad.abs().sum() > 0


@pytest.mark.gpu
def test_learned_methods_run_on_cuda(fixed_batch):
    operator, image, sinogram = fixed_batch
    for cls, kwargs, _, _ in CASES.values():
        method = cls(operator, **kwargs).to("cuda")
        out = method.reconstruct(sinogram.cuda())
        assert out.shape == image.shape and out.device.type == "cuda"


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"filter": "bogus"}, "unknown filter 'bogus'"),
        ({"frequency_scaling": 3.0}, r"^frequency_scaling must be in \(0, 1\]"),
        ({"fbp_frequency_scaling": 0.0}, r"^fbp_frequency_scaling must be in \(0, 1\]"),
    ],
)
def test_fbpunet_checks_its_fbp_settings_by_their_own_names(kwargs, message):
    """A bad ``model.filter`` of FBP + U-Net is named as such when the model is made (not as the
    panels' ``fbp_filter``, and not at the first forward)."""
    with pytest.raises(ValueError, match=message):
        FBPUNet(RayTransform(GEOMETRY), depth=2, width=4, **kwargs)
