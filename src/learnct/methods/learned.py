"""Learned methods: fully learned, FBP + U-Net, learned gradient descent, Learned Primal-Dual.

Scaling: LGD and LPD apply the normalised operator ``A_s = A / ||A||`` and its adjoint to data
``g_s = g / ||A||`` (so ``A_s f = g_s`` for the true image ``f``, in its own units), as in
Adler and Öktem's papers: inputs are of order one and the same hyperparameters work across
geometries. ``||A||`` comes from ``operator.norm()`` (power iteration, once) unless
``operator_norm`` is given, and is stored in the checkpoint (buffer ``op_norm``).

Execution flags of every learned method (:mod:`learnct.nets.execution`; they change neither
parameters nor checkpoints): ``autocast="bf16"`` runs the CNN blocks in bfloat16 with the
operator and FBP in float32, ``compile=True`` compiles the CNN blocks with TorchInductor,
``channels_last=True`` keeps their weights and activations channels-last (NHWC strides).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import ClassVar

import torch
from torch import nn

from learnct.methods.base import ReconstructionMethod
from learnct.nets.execution import block_autocast, check_autocast, compile_blocks
from learnct.nets.gradient_descent import LearnedGradientDescentNet
from learnct.nets.learned_inverse import LearnedInverseNet
from learnct.nets.primal_dual import LearnedPrimalDualNet
from learnct.nets.unet import UNet
from learnct.physics.fbp import fbp
from learnct.physics.noise import check_attenuation, statistical_weights
from learnct.physics.operator import RayTransform

__all__ = [
    "FBPUNet",
    "LearnedGradientDescent",
    "LearnedInverse",
    "LearnedMethod",
    "LearnedPrimalDual",
    "NormalisedLearnedMethod",
    "UnrolledMethod",
]

INITS = ("zero", "fbp")


class LearnedMethod(ReconstructionMethod):
    """The base of the learned methods: the execution flags.

    Args:
        autocast: ``"bf16"``: the CNN blocks in bfloat16 (operator and FBP in float32);
            ``None``: float32.
        compile: compile the CNN blocks (``torch.compile``, TorchInductor): those the method
            passes to :meth:`prepare_blocks`.
        channels_last: the CNN blocks' weights and activations in channels-last layout (the
            convolutions' native layout on cuDNN and oneDNN; same values). An execution
            setting (``trainer.channels_last``), not a hyperparameter: not saved in checkpoints.
        **kwargs: see :class:`ReconstructionMethod`.
    """

    takes_execution_flags: ClassVar[bool] = True

    def __init__(
        self,
        operator: RayTransform,
        autocast: str | None = None,
        compile: bool = False,
        channels_last: bool = False,
        **kwargs,
    ) -> None:
        check_autocast(autocast)
        super().__init__(operator, **kwargs)
        self.channels_last = bool(channels_last)

    def prepare_blocks(self, blocks: Iterable[nn.Module]) -> None:
        """``blocks`` in the method's layout (``channels_last``), then compiled in place
        (``compile=True``)."""
        blocks = list(blocks)
        if self.channels_last:
            for block in blocks:
                block.to(memory_format=torch.channels_last)
        if self.hparams.compile:
            compile_blocks(blocks)


class NormalisedLearnedMethod(LearnedMethod):
    """A learned method on data divided by ``||A||``: ``||A||`` on demand (a buffer, so
    checkpoints carry it) and the scaled operator pair.

    Args:
        operator_norm: ``||A||`` if known (skips the power iteration).
        **kwargs: see :class:`LearnedMethod`.
    """

    needs_operator_norm: ClassVar[bool] = True

    def __init__(
        self, operator: RayTransform, operator_norm: float | None = None, **kwargs
    ) -> None:
        if operator_norm is not None and not (
            isinstance(operator_norm, (int, float)) and operator_norm > 0
        ):
            raise ValueError(f"operator_norm must be a positive number, got {operator_norm!r}")
        super().__init__(operator, **kwargs)
        self.register_buffer("op_norm", torch.tensor(float(operator_norm or 0.0)))
        self._norm_known = False

    def operator_norm(self) -> float:
        """``||A||`` (power iteration on first use unless given or loaded)."""
        if float(self.op_norm) <= 0:
            self.op_norm.fill_(self.operator.norm())
        return float(self.op_norm)

    def operator_norm_tensor(self) -> torch.Tensor:
        """``||A||`` as the 0-d buffer on the module's device: no host read once it is known
        (the first eager call checks it, computing it if needed; compiled code trusts it)."""
        if not torch.compiler.is_compiling() and not self._norm_known:
            self.operator_norm()
            self._norm_known = True
        return self.op_norm

    def on_fit_start(self) -> None:
        """``||A||`` known before the first step (compiled steps read it, never compute it)."""
        super().on_fit_start()
        self.operator_norm_tensor()

    def scaled_operator(self):
        """``(A_s, A_s^T, c)`` with ``A_s = A / c``, ``c = ||A||`` (a 0-d tensor)."""
        c = self.operator_norm_tensor()
        op = self.operator
        return (lambda x: op(x) / c), (lambda y: op.adjoint(y) / c), c


class UnrolledMethod(NormalisedLearnedMethod):
    """An unrolled iterative method (LGD, LPD) on the normalised operator.

    Args:
        init: ``"zero"`` or ``"fbp"`` (the panels' FBP, no gradient) start.
        checkpoint: gradient checkpointing per iteration (same gradients, less memory: for
            512^2 training); the net reads it from ``hparams``.
        **kwargs: see :class:`NormalisedLearnedMethod`.
    """

    def __init__(
        self, operator: RayTransform, init: str = "zero", checkpoint: bool = False, **kwargs
    ) -> None:
        if init not in INITS:
            raise ValueError(f"unknown init {init!r}: choose one of {INITS}")
        super().__init__(operator, **kwargs)

    def fbp_start(self, sinogram: torch.Tensor) -> torch.Tensor | None:
        """The FBP of ``sinogram`` (no gradient) when ``init == "fbp"``, else None."""
        if self.hparams.init != "fbp":
            return None
        with torch.no_grad():
            return self.fbp(sinogram)


class LearnedInverse(NormalisedLearnedMethod):
    """Fully learned reconstruction: :class:`~learnct.nets.LearnedInverseNet` maps the data
    (divided by ``||A||``) straight to the image; the operator is never applied.

    Memory grows as ``N^2 * n_angles`` (see :func:`learnct.nets.learned_inverse_memory`, one
    tap): 3.4 M parameters and 0.08 GiB to train at 128^2 (fan_lowdose, 200 angles), 26 M and
    0.55 GiB at 256^2 with 400 angles, 263 M and 5.1 GiB at 512^2 with 1000 angles
    (fan_mayo); a dense data-to-image layer would need 0.84 G / 13 G / 262 G weights
    (12.5 GiB / 200 GiB / 3.8 TiB to train with Adam). LPD has 253,220 at every size.

    ``autocast="bf16"`` runs the net in bfloat16 (output float32); ``compile=True`` compiles it.
    """

    fixed_geometry = True

    def __init__(
        self, operator: RayTransform, taps: int = 1, hidden: int = 32, layers: int = 4, **kwargs
    ) -> None:
        super().__init__(operator, **kwargs)
        self.net = LearnedInverseNet(operator.geometry, taps=taps, hidden=hidden, layers=layers)
        self.prepare_blocks([self.net])

    def forward(self, sinogram: torch.Tensor) -> torch.Tensor:
        g = sinogram / self.operator_norm_tensor()
        with block_autocast(self.hparams.autocast, sinogram.device):
            return self.net(g).float()


class FBPUNet(LearnedMethod):
    """Learned post-processing (Jin et al. 2017): FBP, then a residual U-Net.

    Args:
        depth, width, norm, upsample: the U-Net's (see :class:`~learnct.nets.UNet`).
        filter, frequency_scaling: the FBP in front of the net (no gradient flows into it).
        autocast, compile, channels_last: the U-Net's execution flags (see
            :class:`LearnedMethod`).
    """

    def __init__(
        self,
        operator: RayTransform,
        depth: int = 4,
        width: int = 32,
        norm: str = "batch",
        upsample: str = "bilinear",
        filter: str = "hann",
        frequency_scaling: float = 1.0,
        **kwargs,
    ) -> None:
        super().__init__(operator, **self.with_own_fbp(filter, frequency_scaling, kwargs))
        self.unet = UNet(
            1, 1, depth=depth, width=width, norm=norm, residual=True, upsample=upsample
        )
        self.prepare_blocks([self.unet])

    def forward(self, sinogram: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            x0 = fbp(
                sinogram,
                self.geometry,
                filter=self.hparams.filter,
                frequency_scaling=self.hparams.frequency_scaling,
            )
        with block_autocast(self.hparams.autocast, x0.device):
            return self.unet(x0).float()


class LearnedGradientDescent(UnrolledMethod):
    """Learned gradient descent (Adler and Öktem 2017):
    ``f_{i+1} = f_i + Lambda_i(f_i, s_i, A_s^T (A_s f_i - g_s) [, grad TV(f_i)])``.

    Args:
        n_iter, n_memory, hidden: see :class:`~learnct.nets.LearnedGradientDescentNet`.
        tv_input: also feed the gradient of smoothed TV (``tv_eps``, image units).
        init, checkpoint, operator_norm, autocast, compile, channels_last: see
            :class:`UnrolledMethod`.
    """

    def __init__(
        self,
        operator: RayTransform,
        n_iter: int = 10,
        n_memory: int = 5,
        hidden: int = 32,
        tv_input: bool = False,
        tv_eps: float = 1e-2,
        **kwargs,
    ) -> None:
        super().__init__(operator, **kwargs)
        self.net = LearnedGradientDescentNet(
            n_iter=n_iter,
            n_memory=n_memory,
            hidden=hidden,
            tv_input=tv_input,
            tv_eps=tv_eps,
            checkpoint=self.hparams.checkpoint,
            autocast=self.hparams.autocast,
            channels_last=self.channels_last,
        )
        self.prepare_blocks(self.net.blocks)

    def forward(self, sinogram: torch.Tensor) -> torch.Tensor:
        op, op_adjoint, c = self.scaled_operator()
        f0 = self.fbp_start(sinogram)
        if f0 is None:
            n = self.geometry.image_size
            f0 = sinogram.new_zeros(sinogram.shape[0], 1, n, n)
        return self.net(sinogram / c, op, op_adjoint, f0)


class LearnedPrimalDual(UnrolledMethod):
    """Learned Primal-Dual (Adler and Öktem 2018), exactly the paper's architecture with the
    defaults (10 iterations, 5 + 5 channels, 32 hidden, 253,220 parameters); see
    :class:`~learnct.nets.LearnedPrimalDualNet`.

    Args:
        statistical_weights: dose-aware dual steps (not in the paper): the dual blocks also
            take the data's statistical weights ``w = exp(-mu g) / mean`` (inverse variances
            of the post-log data up to a factor per sample, as TV-WLS weighs its data term)
            and the weighted residual ``w * (A_s f - g_s)``; a plain LPD's weights start it
            (:meth:`adapt_state_dict`).
        mu: attenuation per image unit (1/mm) for the weights (0.02: images relative to water).
        init: ``"zero"`` (the paper) or ``"fbp"`` (FBP in every primal channel).
        checkpoint, operator_norm, autocast, compile, channels_last: see
            :class:`UnrolledMethod`.
    """

    init_upgrades: ClassVar[frozenset[str]] = frozenset({"statistical_weights"})

    def __init__(
        self,
        operator: RayTransform,
        n_iter: int = 10,
        n_primal: int = 5,
        n_dual: int = 5,
        hidden: int = 32,
        statistical_weights: bool = False,
        mu: float = 0.02,
        **kwargs,
    ) -> None:
        check_attenuation(mu)
        super().__init__(operator, **kwargs)
        self.net = LearnedPrimalDualNet(
            n_iter=n_iter,
            n_primal=n_primal,
            n_dual=n_dual,
            hidden=hidden,
            checkpoint=self.hparams.checkpoint,
            autocast=self.hparams.autocast,
            weighted=statistical_weights,
            channels_last=self.channels_last,
        )
        self.prepare_blocks([*self.net.dual_blocks, *self.net.primal_blocks])

    @property
    def result_name(self) -> str:
        """``LearnedPrimalDual``, or ``LearnedPrimalDual-weighted`` for dose-aware dual steps:
        two rows of a table (and two committed files), as TV and TV-WLS."""
        plain = super().result_name
        return f"{plain}-weighted" if self.hparams.statistical_weights else plain

    def forward(self, sinogram: torch.Tensor) -> torch.Tensor:
        op, op_adjoint, c = self.scaled_operator()
        f0 = self.fbp_start(sinogram)
        hp = self.hparams
        w = statistical_weights(sinogram, hp.mu) if hp.statistical_weights else None
        shape = self.geometry.image_shape
        return self.net(sinogram / c, op, op_adjoint, f0=f0, image_shape=shape, weights=w)

    def adapt_state_dict(self, state: dict[str, torch.Tensor]) -> list[str]:
        """A plain LPD's weights start a weighted one: each dual block's first convolution
        gets zero weights on the two new input channels (appended last), so the weighted LPD
        computes the plain one's function until it trains."""
        if not self.net.weighted:
            return []
        extra = self.net.WEIGHTED_INPUTS - self.net.PLAIN_INPUTS
        plain = []
        for i, block in enumerate(self.net.dual_blocks):
            key, (out, inputs, *kernel) = f"net.dual_blocks.{i}.0.weight", block[0].weight.shape
            w = state.get(key)
            if w is not None and tuple(w.shape) == (out, inputs - extra, *kernel):
                state[key] = torch.cat([w, w.new_zeros(out, extra, *kernel)], dim=1)
                plain.append(key)
        if not plain:
            return []
        return [
            f"the plain LPD weights of {len(plain)} dual blocks start statistical_weights=true "
            "(zero weights on its two new input channels: the same function until it trains)"
        ]
