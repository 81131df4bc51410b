"""Building blocks shared by the unrolled networks."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn
from torch.utils.checkpoint import checkpoint

from learnct.checks import check_int
from learnct.nets.execution import block_autocast, cat_channels, check_autocast, to_layout

__all__ = ["ConvBlock", "Operator", "UnrolledNet", "count_parameters"]

#: A linear map on batched tensors, e.g. ``RayTransform.forward`` or ``RayTransform.adjoint``.
Operator = Callable[[torch.Tensor], torch.Tensor]


class ConvBlock(nn.Sequential):
    """``conv3x3(hidden) -> PReLU -> conv3x3(hidden) -> PReLU -> conv3x3(out)`` (the update
    block of Adler and Öktem's learned gradient / primal-dual schemes).

    PReLU is per channel (``num_parameters = hidden``), as in the LPD paper's parameter count.
    Convolutions use Xavier-uniform weights and zero biases.
    """

    def __init__(self, in_channels: int, out_channels: int, hidden: int = 32) -> None:
        super().__init__(
            nn.Conv2d(in_channels, hidden, 3, padding=1),
            nn.PReLU(hidden),
            nn.Conv2d(hidden, hidden, 3, padding=1),
            nn.PReLU(hidden),
            nn.Conv2d(hidden, out_channels, 3, padding=1),
        )
        for m in self:
            if isinstance(m, nn.Conv2d):
                nn.init.xavier_uniform_(m.weight)
                nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # the layers in order, as nn.Sequential does; defined here so that Module.compile()
        # compiles it (in torch 2.13 Dynamo silently skips nn.Sequential's own forward)
        for layer in self:
            x = layer(x)
        return x


class UnrolledNet(nn.Module):
    """The loop of the unrolled nets (LGD, LPD): ``n_iter`` iterations of
    ``state = self._iteration(i, *state, *inputs)``, each recomputed in the backward pass when
    ``checkpoint`` (``torch.utils.checkpoint``, non-reentrant: same gradients, memory for one
    iteration instead of ``n_iter``), with the CNN blocks run by :meth:`_block` under
    ``autocast`` (``"bf16"``: bfloat16; the state and the operator stay float32, see
    :mod:`learnct.nets.execution`). With ``channels_last`` the blocks' weights, their inputs
    and the iterations' state are channels-last (:meth:`_layout`, :meth:`_cat`). Subclasses
    define ``_iteration`` and build their blocks before calling :meth:`_layout_blocks`.
    """

    def __init__(
        self, n_iter: int, checkpoint: bool, autocast: str | None, channels_last: bool = False
    ) -> None:
        super().__init__()
        check_int("n_iter", n_iter, 1)
        self.n_iter = n_iter
        self.checkpoint = bool(checkpoint)
        self.autocast = check_autocast(autocast)
        self.channels_last = bool(channels_last)

    def _layout_blocks(self) -> None:
        """The blocks' convolution weights in the net's layout (values unchanged)."""
        if self.channels_last:
            self.to(memory_format=torch.channels_last)

    def _layout(self, x: torch.Tensor) -> torch.Tensor:
        """``x`` in the net's layout (channels-last or as it is)."""
        return to_layout(x, self.channels_last)

    def _cat(self, tensors: list[torch.Tensor]) -> torch.Tensor:
        """The channel concatenation of ``tensors`` in the net's layout."""
        return cat_channels(tensors, self.channels_last)

    def _block(self, block: nn.Module, x: torch.Tensor) -> torch.Tensor:
        """``block(x)`` under the net's ``autocast``, ``x`` in the net's layout."""
        with block_autocast(self.autocast, x.device):
            return block(self._layout(x))

    def _unroll(self, state: tuple[torch.Tensor, ...], *inputs: object) -> tuple[torch.Tensor, ...]:
        """``state`` after the ``n_iter`` iterations."""
        for i in range(self.n_iter):
            if self.checkpoint and torch.is_grad_enabled():
                state = checkpoint(self._iteration, i, *state, *inputs, use_reentrant=False)
            else:
                state = self._iteration(i, *state, *inputs)
        return state


def count_parameters(module: nn.Module, trainable_only: bool = True) -> int:
    """Number of (trainable) parameters of ``module``."""
    return sum(p.numel() for p in module.parameters() if p.requires_grad or not trainable_only)
