"""Learning-rate factors for ``torch.optim.lr_scheduler.LambdaLR`` that torch does not ship.

:class:`InverseTimeDecay` is TensorFlow 1's ``tf.train.inverse_time_decay``, the schedule of the
learned gradient paper's published training code (Adler and Öktem, "Solving ill-posed inverse
problems using iterative deep neural networks", Inverse Problems 2017;
``adler-j/learned_gradient_tomography``: RMSProp, lr 1e-3, ``decay_steps=500``,
``decay_rate=1``, staircase), used by ``configs/schedule/lgd_paper.yaml``. A factor is a
callable object, not a closure: ``LambdaLR.state_dict`` saves its settings (its ``__dict__``,
plain numbers that load with ``torch.load(weights_only=True)``) with the checkpoint, and a
Hydra ``_target_`` names it in the run's config.
"""

from __future__ import annotations

import math

__all__ = ["InverseTimeDecay"]


class InverseTimeDecay:
    """The factor ``1 / (1 + decay_rate * t)`` of the base learning rate at step ``k``, with
    ``t = floor(k / decay_steps)`` (``staircase``) or ``k / decay_steps``.

    ``LambdaLR(optimizer, lr_lambda=InverseTimeDecay(500))`` with base lr 1e-3 gives 1e-3 for
    steps 0-499, 5e-4 for 500-999, 3.3e-4 for 1000-1499, ... and 5.0e-6 at step 100,000."""

    def __init__(self, decay_steps: int, decay_rate: float = 1.0, staircase: bool = True) -> None:
        if isinstance(decay_steps, bool) or not isinstance(decay_steps, int) or decay_steps < 1:
            raise ValueError(f"decay_steps must be a positive integer, got {decay_steps!r}")
        if not (math.isfinite(decay_rate) and decay_rate >= 0):
            raise ValueError(f"decay_rate must be a finite number >= 0, got {decay_rate!r}")
        self.decay_steps, self.decay_rate, self.staircase = decay_steps, decay_rate, staircase

    def __call__(self, step: int) -> float:
        t = step // self.decay_steps if self.staircase else step / self.decay_steps
        return 1.0 / (1.0 + self.decay_rate * t)

    def __repr__(self) -> str:
        return (
            f"InverseTimeDecay(decay_steps={self.decay_steps}, decay_rate={self.decay_rate}, "
            f"staircase={self.staircase})"
        )
