"""K models stepped as one (``learnct.methods.stacked``): the ray operators' vmap rule is the
per-sample operator, and one stacked step gives every model the loss and weights of its own
step alone (Adam with its learning rate, clipping at 1)."""

from __future__ import annotations

import pytest
import torch
from torch.func import vmap

from conftest import TINY_FAN
from learnct.bench.training import step_fn
from learnct.methods import LearnedPrimalDual
from learnct.methods.stacked import StackedTraining
from learnct.physics import RayTransform


def test_ray_ops_under_vmap_equal_the_per_sample_operator_and_its_gradient():
    operator = RayTransform(TINY_FAN)
    gen = torch.Generator().manual_seed(0)
    x = torch.rand(3, 2, 1, 32, 32, generator=gen, requires_grad=True)
    y = torch.rand(3, 2, 1, *TINY_FAN.sinogram_shape, generator=gen)
    forward = vmap(operator)(x)
    adjoint = vmap(operator.adjoint)(y)
    assert forward.shape == (3, 2, 1, *TINY_FAN.sinogram_shape)
    torch.testing.assert_close(forward, torch.stack([operator(xi) for xi in x]))
    torch.testing.assert_close(adjoint, torch.stack([operator.adjoint(yi) for yi in y]))
    # the vmapped dim anywhere (in_dims=1), and the gradient through the rule: A^T y
    torch.testing.assert_close(vmap(operator, in_dims=1)(x.transpose(0, 1)), forward)
    (forward * y).sum().backward()
    torch.testing.assert_close(x.grad, adjoint)


def _models(operator: RayTransform, k: int) -> list[LearnedPrimalDual]:
    models = []
    for seed in range(k):
        torch.manual_seed(seed)
        models.append(LearnedPrimalDual(operator, n_iter=2, hidden=8, n_panels=0))
    return models


@pytest.mark.parametrize("device", ["cpu", pytest.param("cuda", marks=pytest.mark.gpu)])
def test_stacked_step_equals_each_model_stepped_alone(device):
    operator = RayTransform(TINY_FAN)
    k, lrs = 3, [1e-3, 3e-3, 5e-4]
    gen = torch.Generator().manual_seed(1)
    images = torch.rand(k, 2, 1, 32, 32, generator=gen)
    sinograms = operator(images.flatten(0, 1)).unflatten(0, (k, 2))
    sinograms = sinograms + 0.05 * torch.randn(sinograms.shape, generator=gen)
    images, sinograms = images.to(device), sinograms.to(device)
    # copies of the initial weights
    stacked = StackedTraining([m.to(device) for m in _models(operator, k)], lrs)
    alone = [m.to(device) for m in _models(operator, k)]
    steps = [step_fn(m, images[i], sinograms[i], lr=lrs[i]) for i, m in enumerate(alone)]
    for _ in range(3):
        losses = stacked.step(sinograms, images)
        expected = torch.tensor([step() for step in steps], device=device)
        # CUDA's convolutions choose their algorithm per shape: K vmapped ones are not the
        # same kernels as one model's (measured on an H200: 2.6e-5 relative after 3 steps)
        rtol = 1e-5 if device == "cpu" else 1e-4
        torch.testing.assert_close(losses, expected, rtol=rtol, atol=1e-7)
    # Adam turns those rounding differences in near-zero gradients into whole steps of about
    # the learning rate times their sign's change (an H200: 1.1e-5 apart in 4 of 504 weights)
    atol = 1e-6 if device == "cpu" else 3e-5
    initial = _models(operator, 1)[0].to(device).state_dict()
    for i, model in enumerate(alone):
        trained = stacked.unstacked(i)
        for name, weight in model.state_dict().items():
            torch.testing.assert_close(trained[name], weight, rtol=1e-4, atol=atol)
        # the steps moved the weights by far more than the tolerance
        name = "net.dual_blocks.0.0.weight"
        if i == 0:
            assert (trained[name] - initial[name]).abs().max() > 1e-3


def test_stacked_training_needs_one_learning_rate_per_model():
    operator = RayTransform(TINY_FAN)
    with pytest.raises(ValueError, match="one learning rate per method"):
        StackedTraining(_models(operator, 2), [1e-3])


@pytest.mark.slow  # compiling the vmapped 2-iteration LPD and its backward: 25-60 s by load
def test_compiled_stacked_step_equals_the_eager_one():
    operator = RayTransform(TINY_FAN)
    gen = torch.Generator().manual_seed(2)
    images = torch.rand(2, 2, 1, 32, 32, generator=gen)
    sinograms = operator(images.flatten(0, 1)).unflatten(0, (2, 2))
    eager = StackedTraining(_models(operator, 2), [1e-3, 2e-3])
    compiled = StackedTraining(_models(operator, 2), [1e-3, 2e-3], fast_path="compiled")
    for _ in range(2):
        torch.testing.assert_close(
            compiled.step(sinograms, images), eager.step(sinograms, images), rtol=1e-5, atol=1e-7
        )
    for name, weight in eager.unstacked(1).items():
        torch.testing.assert_close(compiled.unstacked(1)[name], weight, rtol=1e-4, atol=1e-6)


def test_channels_last_methods_are_refused_with_the_setting_to_use():
    operator = RayTransform(TINY_FAN)
    models = [LearnedPrimalDual(operator, n_iter=1, channels_last=True) for _ in range(2)]
    with pytest.raises(ValueError, match="build them with channels_last=False"):
        StackedTraining(models, [1e-3, 1e-3])
