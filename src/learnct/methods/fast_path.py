"""The fast training path (``trainer.fast_path``, issue #21): a training step without host
reads, optionally compiled whole.

- ``"eager"``: the step's loss is accumulated on the device and read (and logged as
  ``train/loss``) once every ``trainer.log_every_n_steps`` steps, instead of a torchmetrics
  mean updated (and checked for NaN, a host read) every step; Adam and the other torch
  optimisers that take them run ``fused=True`` on CUDA (one kernel for all parameters, and
  the :class:`~learnct.run.nonfinite.NonFiniteGuard` then skips a non-finite step on the device
  through the optimiser's ``found_inf``) and ``foreach=True`` elsewhere, and under fp16
  mixed precision with clipping (whose GradScaler leaves scaled gradients: Lightning must
  unscale them to clip). Gradient clipping (``gradient_clip_val``,
  ``torch.nn.utils.clip_grad_norm_``) runs on the device; a fused optimiser's gradients are
  clipped by the method (``ReconstructionMethod.configure_gradient_clipping``: Lightning's
  mixed-precision plugin refuses them, also under bf16, where they are true gradients).
- ``"compiled"``: the same, and the step's forward and loss (reconstruction, loss; the
  backward through AOTAutograd) are one ``torch.compile(fullgraph=True)`` graph, the ray
  transforms being opaque custom operators (:mod:`learnct.physics.ray_ops`). On CUDA with
  ``mode="reduce-overhead"``: the step is captured as CUDA graphs once and replayed.

Neither changes a parameter, a checkpoint or the loss beyond float rounding.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable

import torch

__all__ = [
    "FAST_PATHS",
    "check_fast_path",
    "compile_mode",
    "compile_step",
    "grads_in_parameter_strides",
    "has_grad_scaler",
    "moments_in_parameter_strides",
    "optimizer_options",
    "own_execution_options",
]

FAST_PATHS = ("eager", "compiled")


def check_fast_path(fast_path: str | None) -> str | None:
    """``fast_path`` if valid (``None`` or one of ``FAST_PATHS``), else ``ValueError``."""
    if fast_path is not None and fast_path not in FAST_PATHS:
        raise ValueError(
            f"unknown fast_path {fast_path!r}: choose null (today's step) or one of {FAST_PATHS}"
        )
    return fast_path


def compile_mode(device: torch.device) -> str:
    """``torch.compile``'s mode for a compiled step on ``device``: CUDA graphs on CUDA."""
    return "reduce-overhead" if device.type == "cuda" else "default"


def compile_step(
    fn: Callable, module: torch.nn.Module, device: torch.device, cuda_graphs: bool = True
) -> Callable:
    """``torch.compile(fn, fullgraph=True)`` in :func:`compile_mode` (``cuda_graphs=False``:
    inductor's default mode on CUDA too), after choosing the backend of every
    :class:`~learnct.physics.RayTransform` in ``module`` for ``device``: the choice imports
    and registers a backend, which a trace cannot do (a method compiled before its first eager
    call broke the full graph)."""
    from learnct.physics.operator import RayTransform

    for sub in module.modules():
        if isinstance(sub, RayTransform):
            sub.backend_name_for(device.type)
    mode = compile_mode(device) if cuda_graphs or device.type != "cuda" else "default"
    return torch.compile(fn, fullgraph=True, mode=mode)


def has_grad_scaler(trainer: object) -> bool:
    """Whether ``trainer``'s precision plugin scales the loss (fp16 mixed precision's
    GradScaler: the gradients it leaves are scaled until the optimiser step)."""
    plugin = getattr(trainer, "precision_plugin", None)
    return getattr(plugin, "scaler", None) is not None


def optimizer_options(factory: Callable, device: torch.device) -> dict[str, bool]:
    """``{"fused": True}`` on CUDA, else ``{"foreach": True}``, for an optimiser class (or a
    partial of one) that takes the option and does not set it; ``{}`` otherwise."""
    func = getattr(factory, "func", factory)
    bound = getattr(factory, "keywords", {}) or {}
    try:
        params = inspect.signature(func).parameters
    except (TypeError, ValueError):
        return {}
    option = "fused" if device.type == "cuda" else "foreach"
    if option not in params or "fused" in bound or "foreach" in bound:
        return {}
    return {option: True}


def _mislaid(value: object, param: torch.Tensor) -> bool:
    """Whether ``value`` is a tensor of ``param``'s shape with other strides."""
    return (
        isinstance(value, torch.Tensor)
        and value.shape == param.shape
        and value.stride() != param.stride()
    )


def _laid_out_as(value: torch.Tensor, param: torch.Tensor) -> torch.Tensor:
    """A copy of ``value`` with ``param``'s strides."""
    return value.new_empty_strided(param.shape, param.stride()).copy_(value)


def grads_in_parameter_strides(optimizer: torch.optim.Optimizer) -> None:
    """For a fused optimiser, which on CUDA refuses any other ("must have same dtype, device,
    and layout"): each gradient in its parameter's strides. A compiled backward may return a
    gradient with other strides for the same memory (pytorch#126585: a 1x1 or single-input-
    channel convolution's weight); only those are copied."""
    if not optimizer.defaults.get("fused"):
        return
    for group in optimizer.param_groups:
        for param in group["params"]:
            if _mislaid(param.grad, param):
                param.grad = _laid_out_as(param.grad, param)


def moments_in_parameter_strides(optimizer: torch.optim.Optimizer) -> None:
    """Each optimiser state tensor of a parameter's shape in that parameter's strides: the
    moments of a checkpoint keep the layout they were saved in (``trainer.channels_last`` of
    the run that saved them), and fused Adam refuses mismatched strides."""
    for param, state in optimizer.state.items():
        for key, value in state.items():
            if _mislaid(value, param):
                state[key] = _laid_out_as(value, param)


def own_execution_options(optimizer: torch.optim.Optimizer) -> None:
    """After a checkpoint's optimiser state is loaded: its parameter groups run as this run
    built the optimiser (``fused``, ``foreach``: :func:`optimizer_options`), not as the run
    that saved it (``load_state_dict`` takes the saved groups' options: a CPU sitting's
    foreach Adam resumed on CUDA would run foreach and ignore the non-finite guard's
    ``found_inf``). The state is loaded again under this run's options, which puts Adam's
    step counts where its implementation wants them (fused: on the parameters' device)."""
    options = {k: optimizer.defaults[k] for k in ("fused", "foreach") if k in optimizer.defaults}
    groups = optimizer.param_groups
    if all(group.get(k) == v for group in groups for k, v in options.items()):
        return
    state = optimizer.state_dict()
    for group in state["param_groups"]:
        group.update(options)
    optimizer.load_state_dict(state)
