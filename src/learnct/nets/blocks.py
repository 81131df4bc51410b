"""Building blocks shared by the unrolled networks."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

__all__ = ["ConvBlock", "Operator", "count_parameters"]

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


def count_parameters(module: nn.Module, trainable_only: bool = True) -> int:
    """Number of (trainable) parameters of ``module``."""
    return sum(p.numel() for p in module.parameters() if p.requires_grad or not trainable_only)
