"""Execution flags: the projector stays float32 under autocast, bf16 CNN blocks, compile,
channels-last layout."""

from __future__ import annotations

import pytest
import torch
from lightning.pytorch.plugins.precision import MixedPrecision

from conftest import TINY_FAN as GEOMETRY
from learnct.methods import LearnedGradientDescent, LearnedPrimalDual
from learnct.nets.execution import compiled_graphs
from learnct.physics import fbp


@pytest.fixture(scope="module")
def data(operator):
    gen = torch.Generator().manual_seed(0)
    image = torch.rand(2, 1, 32, 32, generator=gen)
    return image, operator(image) + 0.1 * torch.randn(2, 1, 40, 48, generator=gen)


def test_operator_and_fbp_compute_float32_under_autocast(operator, data):
    image, sinogram = data
    ref_forward, ref_adjoint = operator(image), operator.adjoint(sinogram)
    ref_fbp = fbp(sinogram, GEOMETRY)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        forward, adjoint = operator(image), operator.adjoint(sinogram)
        recon = fbp(sinogram, GEOMETRY)
        from_bf16 = operator(image.bfloat16())  # a bf16 activation is upcast, not refused
    for ours, ref in ((forward, ref_forward), (adjoint, ref_adjoint), (recon, ref_fbp)):
        assert ours.dtype == torch.float32
        torch.testing.assert_close(ours, ref, rtol=0, atol=0)
    assert from_bf16.dtype == torch.float32
    torch.testing.assert_close(from_bf16, operator(image.bfloat16().float()), rtol=0, atol=0)


def test_operator_gradient_under_autocast_is_the_float32_adjoint(operator, data):
    image, sinogram = data
    x = image.bfloat16().requires_grad_(True)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        y = operator(x)
    (y * sinogram).sum().backward()
    assert x.grad.dtype == torch.bfloat16  # the gradient comes back in the input's dtype
    torch.testing.assert_close(x.grad, operator.adjoint(sinogram).bfloat16(), rtol=0, atol=0)


def _conv_dtypes(method) -> list[torch.dtype]:
    dtypes: list[torch.dtype] = []
    for module in method.modules():
        if isinstance(module, torch.nn.Conv2d):
            module.register_forward_hook(lambda m, i, o: dtypes.append(o.dtype))
    return dtypes


def _loss_and_grads(method, image, sinogram):
    loss = torch.nn.functional.mse_loss(method(sinogram), image)
    loss.backward()
    grads = torch.cat([p.grad.flatten() for p in method.parameters()])
    return loss.detach(), grads


@pytest.mark.parametrize("cls", [LearnedPrimalDual, LearnedGradientDescent])
def test_bf16_blocks_give_gradients_close_to_float32(operator, data, cls):
    image, sinogram = data
    results = {}
    for autocast in (None, "bf16"):
        torch.manual_seed(0)
        method = cls(operator, n_iter=4, operator_norm=operator.norm(), autocast=autocast)
        dtypes = _conv_dtypes(method)
        results[autocast] = _loss_and_grads(method, image, sinogram)
        assert set(dtypes) == {torch.float32 if autocast is None else torch.bfloat16}
        assert len(dtypes) == 4 * 3 * (2 if cls is LearnedPrimalDual else 1)
    (loss32, grad32), (loss16, grad16) = results[None], results["bf16"]
    assert torch.isfinite(loss16) and torch.isfinite(grad16).all()
    # bf16 keeps 8 mantissa bits (relative rounding 2^-9 = 0.2 %) per operation. Measured
    # here: loss off by 0.04 % (LPD) / 0.13 % (LGD), gradient vector by 0.9 % / 0.35 %
    # (relative L2); the bounds leave 5x margin, while the gradient of a differently
    # initialised net is off by 100-140 %
    assert abs(loss16 - loss32) / loss32 < 1e-2
    assert ((grad16 - grad32).norm() / grad32.norm()).item() < 0.05


def test_lightning_bf16_mixed_keeps_the_operator_float32(operator, data):
    image, sinogram = data
    outputs = []
    operator.register_forward_hook(lambda m, i, o: outputs.append((i[0].dtype, o.dtype)))
    try:
        torch.manual_seed(0)
        method = LearnedPrimalDual(operator, n_iter=2, operator_norm=operator.norm())
        with MixedPrecision("bf16-mixed", "cpu").forward_context():
            loss = torch.nn.functional.mse_loss(method(sinogram), image)
        loss.backward()
    finally:
        operator._forward_hooks.clear()
    assert outputs and all(o == (torch.float32, torch.float32) for o in outputs)
    assert torch.isfinite(loss)
    assert all(torch.isfinite(p.grad).all() for p in method.parameters())


def test_checkpointing_with_bf16_gives_the_same_gradients(operator, data):
    image, sinogram = data
    grads = []
    for checkpoint in (False, True):
        torch.manual_seed(0)
        method = LearnedPrimalDual(
            operator,
            n_iter=3,
            operator_norm=operator.norm(),
            autocast="bf16",
            checkpoint=checkpoint,
        )
        grads.append(_loss_and_grads(method, image, sinogram)[1])
    torch.testing.assert_close(grads[0], grads[1], rtol=0, atol=0)


def test_unknown_autocast_is_refused(operator):
    with pytest.raises(ValueError, match="unknown autocast 'fp8'"):
        LearnedPrimalDual(operator, autocast="fp8")


@pytest.mark.slow
def test_compiled_blocks_match_eager_and_keep_parameter_names(operator, data):
    image, sinogram = data
    methods = []
    for compile in (False, True):
        torch.manual_seed(0)
        methods.append(
            LearnedPrimalDual(operator, n_iter=2, operator_norm=operator.norm(), compile=compile)
        )
    eager, compiled = methods
    assert list(eager.state_dict()) == list(compiled.state_dict())
    graphs = compiled_graphs()
    (loss_e, grad_e), (loss_c, grad_c) = (_loss_and_grads(m, image, sinogram) for m in methods)
    assert compiled_graphs() > graphs  # Dynamo really compiled the blocks
    torch.testing.assert_close(loss_c, loss_e, rtol=1e-5, atol=0)
    torch.testing.assert_close(grad_c, grad_e, rtol=1e-4, atol=1e-6)
    with torch.no_grad():
        torch.testing.assert_close(compiled(sinogram), eager(sinogram), rtol=1e-5, atol=1e-6)


@pytest.mark.gpu
def test_cuda_bf16_mixed_lpd_step_keeps_the_operator_float32(operator, data):
    image, sinogram = (t.cuda() for t in data)
    ref = operator(image)
    torch.manual_seed(0)
    method = LearnedPrimalDual(operator, n_iter=2, operator_norm=operator.norm()).cuda()
    with MixedPrecision("bf16-mixed", "cuda").forward_context():
        forward = operator(image)
        loss = torch.nn.functional.mse_loss(method(sinogram), image)
    loss.backward()
    assert forward.dtype == torch.float32
    torch.testing.assert_close(forward, ref, rtol=1e-5, atol=1e-4)
    assert torch.isfinite(loss)


@pytest.mark.parametrize("name", ["lpd", "lgd", "fbpunet", "learned_inverse"])
def test_channels_last_computes_the_same_step_in_nhwc(operator, data, name):
    """``channels_last``: every convolution's weight and multi-channel input is channels-last
    (without the flag none is), and the loss, the gradients and the state dict are the same."""
    from learnct.bench.methods import build_untrained

    image, sinogram = data
    results, layouts = {}, {}
    for channels_last in (False, True):
        torch.manual_seed(0)
        method = build_untrained(name, operator, {"channels_last": channels_last})
        assert "channels_last" not in method.hparams  # an execution setting
        seen: list[bool] = []
        for module in method.modules():
            if isinstance(module, torch.nn.Conv2d):
                module.register_forward_hook(lambda m, i, o, seen=seen: _record(seen, m, i[0]))
        results[channels_last] = (_loss_and_grads(method, image, sinogram), method.state_dict())
        layouts[channels_last] = seen
    assert layouts[True] and all(layouts[True]) and not any(layouts[False])
    ((loss, grads), state), ((loss_cl, grads_cl), state_cl) = results[False], results[True]
    torch.testing.assert_close(loss_cl, loss, rtol=1e-5, atol=0)
    torch.testing.assert_close(grads_cl, grads, rtol=1e-4, atol=1e-6)
    assert list(state_cl) == list(state)
    for key, value in state.items():  # (batch norm's running statistics: rounding)
        torch.testing.assert_close(state_cl[key], value, rtol=1e-4, atol=1e-6)


def _record(seen: list[bool], conv: torch.nn.Conv2d, x: torch.Tensor) -> None:
    """Whether a convolution with a multi-channel input ran on channels-last input and
    weight (a single channel's layout is ambiguous: not recorded)."""
    if x.shape[1] > 1:
        nhwc = x.is_contiguous(memory_format=torch.channels_last) and not x.is_contiguous()
        # (a 1x1 kernel's two layouts are the same memory)
        seen.append(nhwc and conv.weight.is_contiguous(memory_format=torch.channels_last))
