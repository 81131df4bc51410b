"""The Learned Primal-Dual network (Adler and Öktem, IEEE TMI 2018).

For ``i = 1..n_iter`` with primal memory ``f`` (``n_primal`` channels) and dual memory ``h``
(``n_dual`` channels), both initialised to zero (or the primal to an initial image)::

    h <- h + Gamma_i([h, A f[:, 1], g])          dual block: n_dual + 2 input channels
    f <- f + Lambda_i([f, A^T h[:, 0]])          primal block: n_primal + 1 input channels

With ``weighted`` (a dose-aware extension, not in the paper) the dual block also gets the
statistical weights ``w`` of the data (inverse variances up to a factor per sample, see
:func:`learnct.physics.noise.statistical_weights`) and the weighted residual
``w * (A f[:, 1] - g)``, the gradient of the weighted least-squares data term
``||A f - g||_W^2 / 2`` in data space: ``n_dual + 4`` input channels.

Each block is ``conv3x3(32) -> PReLU -> conv3x3(32) -> PReLU -> conv3x3(out)`` with separate
weights per iteration; the reconstruction is ``f[:, 0]``. With the defaults (10 iterations,
5 + 5 channels, 32 hidden, per-channel PReLU) the net has 253,220 parameters, the paper's
count.

The operator is passed to ``forward`` as two callables. The paper (and
``learnct.methods.LearnedPrimalDual``) uses the normalised operator ``A / ||A||`` and data
``g / ||A||``, so the net sees data of order one whatever the geometry.
"""

from __future__ import annotations

import torch
from torch import nn

from learnct.checks import check_int
from learnct.nets.blocks import ConvBlock, Operator, UnrolledNet

__all__ = ["LearnedPrimalDualNet"]


class LearnedPrimalDualNet(UnrolledNet):
    """Learned Primal-Dual (see module docstring).

    Args:
        n_iter: number of unrolled iterations (10 in the paper).
        n_primal, n_dual: channels of the primal and dual memories (5 and 5).
        hidden: channels of the hidden convolutions (32).
        checkpoint: recompute each iteration's activations in the backward pass (for 512^2
            training), about 30 % more compute; autocast: the conv blocks' dtype;
            channels_last: weights, activations and memories channels-last (see
            :class:`~learnct.nets.blocks.UnrolledNet`).
        weighted: the dual blocks also take the statistical weights and the weighted residual
            (``forward`` then needs ``weights``).
    """

    #: dual-block input channels besides the dual memory: ``A f[:, 1]`` and ``g`` (and, when
    #: weighted, ``w`` and ``w * (A f[:, 1] - g)``)
    PLAIN_INPUTS, WEIGHTED_INPUTS = 2, 4

    def __init__(
        self,
        n_iter: int = 10,
        n_primal: int = 5,
        n_dual: int = 5,
        hidden: int = 32,
        checkpoint: bool = False,
        autocast: str | None = None,
        weighted: bool = False,
        channels_last: bool = False,
    ) -> None:
        super().__init__(n_iter, checkpoint, autocast, channels_last)
        check_int("n_primal", n_primal, 2)
        check_int("n_dual", n_dual, 1)
        check_int("hidden", hidden, 1)
        self.n_primal, self.n_dual, self.weighted = n_primal, n_dual, bool(weighted)
        inputs = self.WEIGHTED_INPUTS if self.weighted else self.PLAIN_INPUTS
        self.dual_blocks = nn.ModuleList(
            ConvBlock(n_dual + inputs, n_dual, hidden) for _ in range(n_iter)
        )
        self.primal_blocks = nn.ModuleList(
            ConvBlock(n_primal + 1, n_primal, hidden) for _ in range(n_iter)
        )
        self._layout_blocks()

    def _iteration(
        self,
        i: int,
        f: torch.Tensor,
        h: torch.Tensor,
        g: torch.Tensor,
        op: Operator,
        op_adjoint: Operator,
        w: torch.Tensor | None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        af = op(f[:, 1:2])
        extra = () if w is None else (w, w * (af - g))
        dual_input = self._cat([h, af, g, *extra])
        h = h + self._block(self.dual_blocks[i], dual_input)  # float32 (type promotion)
        primal_input = self._cat([f, op_adjoint(h[:, 0:1])])
        f = f + self._block(self.primal_blocks[i], primal_input)
        return f, h

    def forward(
        self,
        g: torch.Tensor,
        op: Operator,
        op_adjoint: Operator,
        f0: torch.Tensor | None = None,
        image_shape: tuple[int, int] | None = None,
        weights: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Reconstruct images ``(B, 1, N, N)`` from data ``g`` ``(B, 1, A, D)``.

        Args:
            op, op_adjoint: the (normalised) operator and its adjoint on batched tensors.
            f0: optional initial image ``(B, 1, N, N)``, copied into every primal channel;
                ``None`` starts from zero (the paper).
            image_shape: ``(N, N)`` for the zero start (default: found by one adjoint).
            weights: the statistical weights ``(B, 1, A, D)`` of ``g``; required by a weighted
                net, refused by a plain one.
        """
        if self.weighted != (weights is not None):
            raise ValueError(
                "a weighted LearnedPrimalDualNet needs weights (statistical_weights of the data)"
                if self.weighted
                else "this LearnedPrimalDualNet is not weighted: build it with weighted=True "
                "to pass weights"
            )
        b = g.shape[0]
        if f0 is None:
            if image_shape is None:
                image_shape = tuple(op_adjoint(g[:1]).shape[2:])
            f = g.new_zeros(b, self.n_primal, *image_shape)
        else:
            f = f0.expand(-1, self.n_primal, -1, -1).contiguous()
        h = g.new_zeros(b, self.n_dual, *g.shape[2:])
        f, h = self._unroll((self._layout(f), self._layout(h)), g, op, op_adjoint, weights)
        return f[:, 0:1].contiguous()
