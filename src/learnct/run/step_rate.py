"""``StepRate``: the training throughput, logged as ``train/steps_per_s``.

Every ``trainer.log_every_n_steps`` optimiser steps it logs the steps per second of wall time
since its last log, over training steps alone (a validation in between starts a new window).
It reads no device value itself: on the fast path (:mod:`learnct.methods.fast_path`) the loss
is read on the host at the same steps, which bounds how far the host runs ahead of the GPU, so
over a window the rate is the device's; on today's step every step is read.
"""

from __future__ import annotations

import time
from typing import Any

import lightning as L
from lightning.pytorch.callbacks import Callback

__all__ = ["StepRate"]


class StepRate(Callback):
    """Logs ``train/steps_per_s`` (module docstring)."""

    def __init__(self) -> None:
        self._start: tuple[int, float] | None = None  # (global step, perf_counter seconds)

    def _restart(self, trainer: L.Trainer, *_: Any) -> None:
        self._start = (trainer.global_step, time.perf_counter())

    on_train_start = _restart
    on_validation_end = _restart

    def on_train_batch_end(
        self,
        trainer: L.Trainer,
        pl_module: L.LightningModule,
        outputs: Any,
        batch: Any,
        batch_idx: int,
    ) -> None:
        every, step = trainer.log_every_n_steps, trainer.global_step
        if self._start is None or every < 1 or step % every or step <= self._start[0]:
            return  # (a later micro-batch of an accumulated step keeps the window open)
        now = time.perf_counter()
        seconds = now - self._start[1]
        if seconds > 0:
            rate = (step - self._start[0]) / seconds
            pl_module.log("train/steps_per_s", rate, on_step=True, batch_size=1)
        self._start = (step, now)
