"""Learned gradient descent (Adler and Öktem, "Solving ill-posed inverse problems using
iterative deep neural networks", Inverse Problems 2017).

For ``i = 1..n_iter``::

    [f, s] <- [f, s] + Lambda_i([f, s, A^T (A f - g), (optionally) grad TV(f)])

with the image ``f``, a memory ``s`` of ``n_memory`` channels (zero at the start) and a block
``conv3x3(32) -> PReLU -> conv3x3(32) -> PReLU -> conv3x3(1 + n_memory)`` with separate
weights per iteration. The operator comes in as callables (normalised by ``||A||`` in
``learnct.methods.LearnedGradientDescent``).
"""

from __future__ import annotations

import torch
from torch import nn

from learnct.checks import check_int
from learnct.nets.blocks import ConvBlock, Operator, UnrolledNet
from learnct.nets.finite_differences import tv_gradient

__all__ = ["LearnedGradientDescentNet", "tv_gradient"]


class LearnedGradientDescentNet(UnrolledNet):
    """Learned gradient descent (see module docstring).

    Args:
        n_iter: unrolled iterations (10).
        n_memory: memory channels carried between iterations (5, as in the paper; 0: none).
        hidden: channels of the hidden convolutions (32).
        tv_input: also feed the gradient of smoothed TV of ``f`` (``tv_eps`` smoothing).
        checkpoint, autocast, channels_last: see :class:`~learnct.nets.blocks.UnrolledNet`.
    """

    def __init__(
        self,
        n_iter: int = 10,
        n_memory: int = 5,
        hidden: int = 32,
        tv_input: bool = False,
        tv_eps: float = 1e-2,
        checkpoint: bool = False,
        autocast: str | None = None,
        channels_last: bool = False,
    ) -> None:
        super().__init__(n_iter, checkpoint, autocast, channels_last)
        check_int("n_memory", n_memory, 0)
        check_int("hidden", hidden, 1)
        if not tv_eps > 0:
            raise ValueError(f"tv_eps must be > 0, got {tv_eps!r}")
        self.n_memory = n_memory
        self.tv_input, self.tv_eps = bool(tv_input), float(tv_eps)
        n_in = 1 + n_memory + 1 + int(self.tv_input)
        self.blocks = nn.ModuleList(ConvBlock(n_in, 1 + n_memory, hidden) for _ in range(n_iter))
        self._layout_blocks()

    def _iteration(
        self, i: int, x: torch.Tensor, g: torch.Tensor, op: Operator, op_adjoint: Operator
    ) -> tuple[torch.Tensor]:
        f = x[:, :1]
        inputs = [x, op_adjoint(op(f) - g)]
        if self.tv_input:
            inputs.append(tv_gradient(f, self.tv_eps))
        update = self._block(self.blocks[i], self._cat(inputs))
        return (x + update,)  # float32 (type promotion) whatever the block's dtype

    def forward(
        self, g: torch.Tensor, op: Operator, op_adjoint: Operator, f0: torch.Tensor
    ) -> torch.Tensor:
        """Images ``(B, 1, N, N)`` from data ``g`` ``(B, 1, A, D)``, starting at ``f0``."""
        memory = f0.new_zeros(f0.shape[0], self.n_memory, *f0.shape[2:])
        (x,) = self._unroll((self._cat([f0, memory]),), g, op, op_adjoint)
        return x[:, :1].contiguous()
