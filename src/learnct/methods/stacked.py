"""K independent copies of one method trained as one (issue #21: several runs per GPU).

A 128^2 training step cannot fill a GPU; a sweep's K trials (the same architecture with
different seeds or learning rates) can, when their parameters are stacked along a new leading
dimension (``torch.func.stack_module_state``) and one forward runs all K models with
``torch.func.vmap(functional_call(...))`` over the stacked parameters and over K batches. The
loss is the sum of the K losses, whose gradient with respect to model k's parameters is model
k's own gradient (the models share nothing), so one ``backward`` gives all K gradients.

Each model then takes the step it would take alone (Lightning's step: gradient-norm clipping,
then Adam), per model:

- clipping: ``g_k <- g_k min(1, c / (||g_k|| + 1e-6))`` with ``||g_k||`` the norm over all of
  model k's gradients (``torch.nn.utils.clip_grad_norm_`` of model k alone);
- Adam (``torch.optim.Adam``'s update, per element): ``m <- b1 m + (1 - b1) g``,
  ``v <- b2 v + (1 - b2) g^2``, ``p <- p - lr_k / (1 - b1^t) * m / (sqrt(v) / sqrt(1 - b2^t)
  + eps)``, with ``lr_k`` model k's learning rate (a ``(K,)`` tensor, so one update serves all
  K; ``torch.optim.Adam`` takes one learning rate per parameter tensor, hence these few lines
  of ``torch._foreach_*`` arithmetic instead).

The ray transforms run under ``vmap`` through their batching rule (the K models' batches are
one batch of ``K B`` images, :mod:`learnct.physics.ray_ops`); their registered autograd does
not compose with ``torch.func.grad``, so the gradients come from ``torch.autograd`` outside
the vmap. :meth:`StackedTraining.unstacked` gives model k's trained weights back as a state
dict for its own method (checkpoints stay one per run).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch.func import functional_call, stack_module_state, vmap

from learnct.methods.base import ReconstructionMethod
from learnct.methods.fast_path import check_fast_path, compile_step

__all__ = ["StackedTraining"]


class StackedTraining:
    """One training step for K models of the same architecture at once (module docstring).

    Args:
        methods: the K methods (same class and parameter shapes; their current weights are
            copied into the stack, the methods themselves are not changed by :meth:`step`).
        lrs: the K learning rates.
        betas, eps: Adam's (the LPD paper's betas by default).
        clip: the gradient-norm clipping threshold per model (``None``: no clipping).
        fast_path: ``None``/``"eager"``: the vmapped forward runs eagerly; ``"compiled"``: it
            is one ``torch.compile(fullgraph=True)`` graph (with its backward), replayed as CUDA
            graphs on CUDA (as :mod:`learnct.methods.fast_path`'s compiled step).
    """

    def __init__(
        self,
        methods: Sequence[ReconstructionMethod],
        lrs: Sequence[float],
        betas: tuple[float, float] = (0.9, 0.99),
        eps: float = 1e-8,
        clip: float | None = 1.0,
        fast_path: str | None = None,
    ) -> None:
        if len(methods) < 1 or len(lrs) != len(methods):
            raise ValueError(
                f"StackedTraining needs one learning rate per method: got {len(methods)} "
                f"methods and {len(lrs)} learning rates"
            )
        kinds = {type(m) for m in methods}
        if len(kinds) != 1:
            raise ValueError(
                f"StackedTraining stacks one architecture, got {sorted(map(str, kinds))}"
            )
        if any(getattr(m, "channels_last", False) for m in methods):
            raise ValueError(
                "StackedTraining stacks NCHW methods (a layout query is not allowed under "
                "vmap): build them with channels_last=False"
            )
        for method in methods:  # ||A|| known (a buffer) before it is stacked and traced
            norm = getattr(method, "operator_norm_tensor", None)
            if norm is not None:
                norm()
        self.template = methods[0]
        self.k = len(methods)
        params, self.buffers = stack_module_state(list(methods))  # raises on shape mismatch
        self.params = {name: p for name, p in params.items() if p.requires_grad}
        self.frozen = {name: p for name, p in params.items() if not p.requires_grad}
        self.betas, self.eps, self.clip = betas, eps, clip
        self.t = 0
        device = next(iter(self.params.values())).device
        self.lr = torch.as_tensor(list(lrs), dtype=torch.float32, device=device)
        tensors = list(self.params.values())
        self._exp_avg = [torch.zeros_like(p) for p in tensors]
        self._exp_avg_sq = [torch.zeros_like(p) for p in tensors]
        # the learning rates broadcast to each parameter's shape: the foreach ops' fast path
        self._lr = [self.lr.view(-1, *[1] * (p.dim() - 1)).expand_as(p).clone() for p in tensors]
        self.template.train()
        self.fast_path = check_fast_path(fast_path)
        self._graphs = fast_path == "compiled" and device.type == "cuda"
        self._losses = self.losses
        if fast_path == "compiled":
            self._losses = compile_step(self.losses, self.template, device)

    def losses(self, sinograms: torch.Tensor, images: torch.Tensor) -> torch.Tensor:
        """The K training losses ``(K,)`` of ``sinograms`` ``(K, B, 1, A, D)`` against
        ``images`` ``(K, B, 1, N, N)``, model k on batch k (with the autograd graph)."""
        template = self.template

        def one(params, buffers, sinogram, image):
            reconstruction = functional_call(template, (params, buffers), (sinogram,))
            return template.loss_fn(reconstruction, image)

        state = {**self.params, **self.frozen}
        return vmap(one)(state, self.buffers, sinograms, images)

    def step(self, sinograms: torch.Tensor, images: torch.Tensor) -> torch.Tensor:
        """One training step of every model; returns the K losses (detached, no host read)."""
        if self._graphs:
            torch.compiler.cudagraph_mark_step_begin()  # the last step's outputs are dropped
        losses = self._losses(sinograms, images)
        tensors = list(self.params.values())
        grads = list(torch.autograd.grad(losses.sum(), tensors))
        with torch.no_grad():
            if self.clip is not None:
                self._clip(grads)
            self._adam(tensors, grads)
        return losses.detach().clone()  # a CUDA graph's output is overwritten by its replay

    def _clip(self, grads: list[torch.Tensor]) -> None:
        """Scale each model's gradients to norm at most ``clip`` (as clip_grad_norm_)."""
        norm = torch.cat([g.flatten(1) for g in grads], dim=1).norm(dim=1)  # (K,): 2 kernels
        coef = (self.clip / (norm + 1e-6)).clamp(max=1.0)
        torch._foreach_mul_(grads, [coef.view(-1, *[1] * (g.dim() - 1)) for g in grads])

    def _adam(self, params: list[torch.Tensor], grads: list[torch.Tensor]) -> None:
        """Adam's update with each model's learning rate (module docstring)."""
        b1, b2 = self.betas
        self.t += 1
        torch._foreach_lerp_(self._exp_avg, grads, 1 - b1)
        torch._foreach_mul_(self._exp_avg_sq, b2)
        torch._foreach_addcmul_(self._exp_avg_sq, grads, grads, value=1 - b2)
        denom = torch._foreach_sqrt(self._exp_avg_sq)
        torch._foreach_div_(denom, math.sqrt(1 - b2**self.t))
        torch._foreach_add_(denom, self.eps)
        update = torch._foreach_mul(self._exp_avg, self._lr)
        torch._foreach_div_(update, denom)
        torch._foreach_add_(params, update, alpha=-1 / (1 - b1**self.t))

    def unstacked(self, k: int) -> dict[str, torch.Tensor]:
        """Model ``k``'s parameters and buffers as a state dict (for ``load_state_dict``)."""
        state = {**self.params, **self.frozen, **self.buffers}
        return {name: t[k].detach().clone() for name, t in state.items()}
