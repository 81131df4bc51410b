"""The fast training path: the ray transforms as custom operators compile without graph
breaks, the compiled step gives the eager loss and gradients, and ``trainer.fast_path`` trains
through Lightning to the default path's loss."""

from __future__ import annotations

import csv
import functools

import pytest
import torch

from learnct.methods import LearnedPrimalDual
from learnct.methods.fast_path import compile_step, optimizer_options
from learnct.nets.execution import compiled_graphs
from learnct.physics import ParallelBeamGeometry, RayTransform

GEOMETRY = ParallelBeamGeometry(image_size=32, n_angles=12, n_detectors=46)


def _lpd(**kwargs) -> LearnedPrimalDual:
    torch.manual_seed(0)
    operator = RayTransform(GEOMETRY)
    return LearnedPrimalDual(operator, n_iter=2, hidden=8, operator_norm=30.0, **kwargs)


def _data(operator: RayTransform) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(1)
    image = torch.rand(2, 1, 32, 32, generator=gen)
    return operator(image) + 0.05 * torch.randn(2, 1, 12, 46, generator=gen), image


def _loss_and_grads(step, method, sinogram, image):
    method.zero_grad(set_to_none=True)
    loss = step(sinogram, image)
    loss.backward()
    return loss.detach(), [p.grad.clone() for p in method.parameters()]


def test_ray_transform_ops_have_adjoint_gradients():
    operator = RayTransform(GEOMETRY)
    gen = torch.Generator().manual_seed(2)
    x = torch.rand(1, 1, 32, 32, generator=gen, dtype=torch.float64, requires_grad=True)
    y = torch.rand(1, 1, 12, 46, generator=gen, dtype=torch.float64, requires_grad=True)
    v = torch.rand(1, 1, 12, 46, generator=gen, dtype=torch.float64)
    (operator(x) * v).sum().backward()
    torch.testing.assert_close(x.grad, operator.adjoint(v))  # d<Ax, v>/dx = A^T v
    u = torch.rand(1, 1, 32, 32, generator=gen, dtype=torch.float64)
    (operator.adjoint(y) * u).sum().backward()
    torch.testing.assert_close(y.grad, operator(u))
    key = operator._op_ids["cpu"]  # the registry id of the CPU backend
    for op, arg in ((torch.ops.learnct.ray_forward, x), (torch.ops.learnct.ray_adjoint, y)):
        torch.library.opcheck(op, (arg.detach().requires_grad_(), key))  # fake impl, autograd


def test_compiled_lpd_step_has_no_graph_breaks_and_matches_eager():
    method = _lpd()
    sinogram, image = _data(method.operator)
    eager_loss, eager_grads = _loss_and_grads(method.training_loss, method, sinogram, image)
    explained = torch._dynamo.explain(method.training_loss)(sinogram, image)
    assert explained.graph_break_count == 0, explained.break_reasons
    assert explained.graph_count == 1
    compiled = torch.compile(method.training_loss, fullgraph=True)
    loss, grads = _loss_and_grads(compiled, method, sinogram, image)
    torch.testing.assert_close(loss, eager_loss, rtol=1e-5, atol=1e-7)
    for ours, ref in zip(grads, eager_grads, strict=True):
        torch.testing.assert_close(ours, ref, rtol=1e-4, atol=1e-6)


def test_a_method_compiles_before_its_first_eager_call():
    """``compile_step`` chooses the operator's backend before tracing: a fresh method (its
    operator never called) compiles whole; a plain ``torch.compile`` broke the graph there
    (the backend choice imports and registers)."""
    method = _lpd()
    gen = torch.Generator().manual_seed(1)
    sinogram, image = (
        torch.rand(2, 1, 12, 46, generator=gen),
        torch.rand(2, 1, 32, 32, generator=gen),
    )
    assert method.operator._by_device == {}  # nothing chosen yet
    loss = compile_step(method.training_loss, method, torch.device("cpu"))(sinogram, image)
    torch.testing.assert_close(loss, method.training_loss(sinogram, image), rtol=1e-5, atol=1e-7)


def test_fast_path_optimizer_options():
    adam = functools.partial(torch.optim.Adam, lr=1e-3)
    assert optimizer_options(adam, torch.device("cuda")) == {"fused": True}
    assert optimizer_options(adam, torch.device("cpu")) == {"foreach": True}
    assert optimizer_options(functools.partial(adam, foreach=False), torch.device("cpu")) == {}


TINY_LPD = [
    "experiment=lpd",
    "model.n_iter=2",
    "model.hidden=8",
    "data.batch_size=2",
    "data.eval_batch_size=2",
    "data.val_size=2",
    "data.train_size=50",
    "logger=csv",
    "callbacks=default",
    "callbacks.progress_bar=null",
    "trainer.max_steps=4",
    "trainer.val_check_interval=4",
    "trainer.log_every_n_steps=1",
    "test=false",
]


def _train(compose_config, run_config, tmp_path, fast_path: str) -> tuple[dict, list[float]]:
    cfg = compose_config("train", [*TINY_LPD, f"trainer.fast_path={fast_path}"], tmp_path)
    run_config(cfg)
    (metrics,) = tmp_path.glob("csv/version_*/metrics.csv")
    with open(metrics) as fh:  # the default path logs train/loss_step, the fast path train/loss
        rows = list(csv.DictReader(fh))
    losses = [float(v) for r in rows if (v := r.get("train/loss") or r.get("train/loss_step"))]
    last = torch.load(tmp_path / "checkpoints" / "last.ckpt", weights_only=True)
    return last["state_dict"], losses


@pytest.fixture(scope="module")
def default_run(tmp_path_factory):
    from conftest import _compose_config
    from learnct.run.pipeline import run

    return _train(_compose_config, run, tmp_path_factory.mktemp("default"), "null")


@pytest.mark.parametrize("fast_path", ["eager", "compiled"])
def test_fast_path_trains_through_lightning_as_the_default_path(
    default_run, fast_path, tmp_path, compose_config, run_config
):
    graphs = compiled_graphs()
    weights, losses = _train(compose_config, run_config, tmp_path, fast_path)
    assert compiled_graphs() - graphs == (fast_path == "compiled")  # one graph, no breaks
    ref_weights, ref_losses = default_run
    assert len(losses) == 4 and losses == pytest.approx(ref_losses, rel=1e-4)
    for name, value in ref_weights.items():
        torch.testing.assert_close(weights[name], value, rtol=1e-4, atol=1e-5, msg=name)


def test_bf16_mixed_clips_a_fused_optimizers_gradients(
    compose_config, run_config, tmp_path, monkeypatch
):
    """Lightning's mixed-precision plugin refuses to clip a fused optimiser's gradients (the
    fast path's fused Adam on CUDA under bf16-mixed raised); without a GradScaler they are
    true gradients, and the method clips them itself. Fused Adam exists on the CPU too."""
    import learnct.methods.base as base

    monkeypatch.setattr(base, "optimizer_options", lambda factory, device: {"fused": True})
    clipped = []
    clip = torch.nn.utils.clip_grad_norm_
    monkeypatch.setattr(
        torch.nn.utils, "clip_grad_norm_", lambda p, v, *a, **k: clipped.append(v) or clip(p, v)
    )
    overrides = [*TINY_LPD, "trainer.fast_path=eager", "trainer.precision=bf16-mixed"]
    run_config(compose_config("train", overrides, tmp_path))
    assert clipped == [1.0] * 4  # the LPD paper's clip, every step
    last = torch.load(tmp_path / "checkpoints" / "last.ckpt", weights_only=True)
    assert last["optimizer_states"][0]["param_groups"][0]["fused"] is True


def _trainer(precision_plugin: object, clip: float | None) -> object:
    """What configure_optimizers and configure_gradient_clipping read of a Trainer."""
    from types import SimpleNamespace

    return SimpleNamespace(
        precision_plugin=precision_plugin, gradient_clip_val=clip, estimated_stepping_batches=10
    )


def _optimizer(method) -> torch.optim.Optimizer:
    configured = method.configure_optimizers()
    return configured["optimizer"] if isinstance(configured, dict) else configured


@pytest.mark.parametrize("algorithm", ["norm", "value"])
def test_a_fused_optimizers_gradients_are_clipped_by_norm_or_value(algorithm, monkeypatch):
    """Without a GradScaler the method clips a fused optimiser's gradients itself, by
    Lightning's ``gradient_clip_algorithm``."""
    from types import SimpleNamespace

    import learnct.methods.base as base

    monkeypatch.setattr(base, "optimizer_options", lambda factory, device: {"fused": True})
    method = _lpd(fast_path="eager")
    method._trainer = _trainer(SimpleNamespace(), 0.01)
    optimizer = _optimizer(method)
    assert optimizer.defaults["fused"] is True
    for p in method.parameters():
        p.grad = torch.full_like(p, 5.0)
    method.configure_gradient_clipping(optimizer, 0.01, algorithm)
    grads = [p.grad for p in method.parameters()]
    if algorithm == "value":
        assert all(float(g.abs().max()) == pytest.approx(0.01) for g in grads)
    else:
        assert float(torch.nn.utils.get_total_norm(grads)) == pytest.approx(0.01, rel=1e-4)


@pytest.mark.parametrize(("clip", "expected"), [(1.0, "foreach"), (None, "fused")])
def test_fp16s_grad_scaler_takes_foreach_adam_when_clipping(clip, expected, monkeypatch):
    """fp16 mixed precision scales the gradients until the step: clipping them needs
    Lightning's unscaling, which a fused optimiser does not allow; without clipping fused
    stays."""
    from types import SimpleNamespace

    import learnct.methods.base as base

    monkeypatch.setattr(base, "optimizer_options", lambda factory, device: {"fused": True})
    method = _lpd(fast_path="eager")
    method._trainer = _trainer(SimpleNamespace(scaler=object()), clip)
    assert _optimizer(method).defaults[expected] is True


@pytest.mark.gpu
def test_compiled_step_replays_as_cuda_graphs_with_the_eager_loss():
    """On CUDA the compiled step (``mode="reduce-overhead"``, CUDA graphs) replays with the
    eager step's loss and gradients (the custom ops run the GPU backend inside the graphs)."""
    from learnct.bench.training import step_fn

    method = _lpd().cuda()
    sinogram, image = (t.cuda() for t in _data(method.operator))
    eager_loss, eager_grads = _loss_and_grads(method.training_loss, method, sinogram, image)
    compiled = torch.compile(method.training_loss, fullgraph=True, mode="reduce-overhead")
    for _ in range(3):  # warm-up, record, replay
        torch.compiler.cudagraph_mark_step_begin()
        loss, grads = _loss_and_grads(compiled, method, sinogram, image)
    torch.testing.assert_close(loss, eager_loss, rtol=1e-4, atol=1e-6)
    for ours, ref in zip(grads, eager_grads, strict=True):
        torch.testing.assert_close(ours, ref, rtol=1e-3, atol=1e-5)
    # the parameters' gradients live in the CUDA-graph pool of the function above: free them
    # (as the training loop's zero_grad does) before another compiled function records
    method.zero_grad(set_to_none=True)
    del loss, grads
    fast = _lpd(fast_path="compiled").cuda()
    step = step_fn(fast, image, sinogram)
    losses = [float(step()) for _ in range(4)]
    assert all(torch.isfinite(torch.tensor(losses))) and losses[-1] < losses[0]


@pytest.mark.parametrize("channels_last", [False, True])
@pytest.mark.parametrize("name", ["lgd", "fbpunet", "learned_inverse", "lpd"])
def test_every_learned_methods_step_traces_as_one_graph(name, channels_last):
    """The compiled fast path holds for every learned method (LPD here with the FBP start),
    in either memory layout."""
    from learnct.bench.methods import build_untrained

    flags = {"init": "fbp"} if name == "lpd" else {}
    method = build_untrained(
        name, RayTransform(GEOMETRY), {**flags, "channels_last": channels_last}
    )
    sinogram, image = _data(method.operator)
    explained = torch._dynamo.explain(method.training_loss)(sinogram, image)
    assert (explained.graph_count, explained.graph_break_count) == (1, 0), explained.break_reasons


@pytest.mark.parametrize(("fast_path", "checks"), [("null", True), ("eager", False)])
def test_the_fast_path_operator_reads_nothing_to_check_inputs(
    fast_path, checks, compose_config, tmp_path
):
    """On the fast path the projector skips its NaN/inf input check (a host read per call);
    the default path keeps it and names a NaN input."""
    from learnct.run import build_physics

    cfg = compose_config("train", [*TINY_LPD, f"trainer.fast_path={fast_path}"], tmp_path)
    _, operator = build_physics(cfg)
    assert operator.check_finite is checks
    image = torch.full((1, 1, *operator.domain_shape[-2:]), float("nan"))
    if checks:
        with pytest.raises(ValueError, match="NaN or inf"):
            operator(image)
    else:
        assert torch.isnan(operator(image)).any()


@pytest.mark.parametrize("first_channels_last", [False, True])
def test_a_sitting_continues_in_the_other_memory_layout(
    first_channels_last, compose_config, run_config, tmp_path, monkeypatch
):
    """``trainer.channels_last`` is an execution setting: a schedule started in one layout
    continues in the other (a GPU sitting after a CPU one). The checkpoint's Adam moments keep
    the layout they were saved in; fused Adam on CUDA (the fast path there) refuses moments
    whose strides differ from their parameters' (pytorch#106951; the CPU's fused Adam does not
    check), so the method lays them out as its parameters before training."""
    import learnct.methods.base as base
    from conftest import TINY_LPD as SITTING_LPD

    monkeypatch.setattr(base, "optimizer_options", lambda factory, device: {"fused": True})
    sittings = tmp_path / "sittings"
    for k, channels_last in enumerate((first_channels_last, not first_channels_last)):
        overrides = [
            *SITTING_LPD,
            f"sitting_dir={sittings}",
            "sitting_steps=2",
            "trainer.fast_path=eager",
            f"trainer.channels_last={str(channels_last).lower()}",
            "test=false",
        ]
        run_config(compose_config("train", overrides, tmp_path / f"sitting{k}"))
    last = torch.load(sittings / "last.ckpt", weights_only=True)
    assert last["global_step"] == 4
    moments = [s["exp_avg"] for s in last["optimizer_states"][0]["state"].values()]
    convs = [m for m in moments if m.dim() == 4]
    assert convs and all(
        m.is_contiguous(memory_format=torch.channels_last) != first_channels_last for m in convs
    )


def test_a_fused_optimizer_gets_gradients_in_their_parameters_strides():
    """The compiled backward returns the U-Net's NCHW 1x1 convolution weights' gradients with
    channels-last strides (the same memory; pytorch#126585), which fused Adam on CUDA refuses
    ("must have same dtype, device, and layout"): the method copies just those into their
    parameters' strides before a fused optimiser steps."""
    from learnct.bench.methods import build_untrained

    torch._dynamo.reset()
    method = build_untrained(
        "fbpunet", RayTransform(GEOMETRY), {"channels_last": False, "fast_path": "compiled"}
    )
    sinogram, image = _data(method.operator)
    compile_step(method.training_loss, method, torch.device("cpu"))(sinogram, image).backward()
    params = list(method.parameters())
    mislaid = [p for p in params if p.grad.stride() != p.stride()]
    assert mislaid  # what the compiled backward gives (else this test checks nothing)
    grads = [p.grad for p in params]
    method.on_before_optimizer_step(torch.optim.Adam(params, foreach=True))  # not fused: as is
    assert all(p.grad is g for p, g in zip(params, grads, strict=True))
    method.on_before_optimizer_step(torch.optim.Adam(params, fused=True))
    assert all(p.grad.stride() == p.stride() for p in params)
    for p, g in zip(params, grads, strict=True):
        torch.testing.assert_close(p.grad, g, rtol=0, atol=0)


def test_a_resumed_optimizer_runs_with_this_runs_options():
    """A CPU sitting's foreach Adam resumed as this run's fused Adam (a GPU sitting): torch's
    ``load_state_dict`` takes the saved groups' options, so the optimiser would run foreach,
    which refuses the non-finite guard's ``found_inf``. After ``own_execution_options`` it is
    fused again: a step with ``found_inf`` = 1 leaves the weights as they are."""
    from learnct.methods.fast_path import own_execution_options

    saved_weight = torch.nn.Parameter(torch.ones(3, 2, 3, 3))
    saving = torch.optim.Adam([saved_weight], foreach=True)
    saved_weight.grad = torch.ones_like(saved_weight)
    saving.step()
    weight = torch.nn.Parameter(saved_weight.detach().clone())
    resumed = torch.optim.Adam([weight], fused=True)
    resumed.load_state_dict(saving.state_dict())
    assert not resumed.param_groups[0]["fused"]  # what torch does
    own_execution_options(resumed)
    assert resumed.param_groups[0]["fused"] and not resumed.param_groups[0]["foreach"]
    weight.grad = torch.ones_like(weight)
    before = weight.detach().clone()
    resumed.found_inf = torch.ones(())
    resumed.step()
    torch.testing.assert_close(weight.detach(), before, rtol=0, atol=0)
    resumed.found_inf = torch.zeros(())
    resumed.step()
    assert not torch.equal(weight.detach(), before)
    assert int(resumed.state[weight]["step"]) == 2  # the saved step, the skip, this one


def test_a_cpu_sitting_continues_on_a_fused_optimizer(
    compose_config, run_config, tmp_path, monkeypatch
):
    """A schedule whose first sitting ran foreach Adam (the CPU) continues with fused Adam (the
    fast path on CUDA; fused Adam exists on the CPU too): the non-finite guard hands the fused
    optimiser ``found_inf``, which a foreach Adam restored from the checkpoint's groups refuses."""
    import learnct.methods.base as base
    from conftest import TINY_LPD as SITTING_LPD

    sittings = tmp_path / "sittings"
    for k, fused in enumerate((False, True)):
        if fused:
            monkeypatch.setattr(base, "optimizer_options", lambda factory, device: {"fused": True})
        overrides = [*SITTING_LPD, f"sitting_dir={sittings}", "sitting_steps=2"]
        overrides += ["trainer.fast_path=eager", "test=false"]
        run_config(compose_config("train", overrides, tmp_path / f"sitting{k}"))
    last = torch.load(sittings / "last.ckpt", weights_only=True)
    assert last["global_step"] == 4
    assert last["optimizer_states"][0]["param_groups"][0]["fused"] is True
