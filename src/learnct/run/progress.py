"""``StepProgressBar``: Lightning's rich progress bar for runs measured in optimiser steps.

learnct trains for ``trainer.max_steps`` with ``max_epochs: -1``, so Lightning's bar read
"Epoch 0/-2", restarted at every epoch of the data stream and showed ``v_num``, the last
characters of the logger's version (a W&B run id), which means nothing here. This bar has one
training bar over the whole run, described as ``step 120/1000`` (a resumed run starts at its
step), and no ``v_num``. Runs without ``max_steps`` (epoch-based debug configs) keep
Lightning's epoch description.
"""

from __future__ import annotations

from typing import Any

import lightning as L
from lightning.pytorch.callbacks import RichProgressBar

__all__ = ["StepProgressBar"]


class StepProgressBar(RichProgressBar):
    """A ``RichProgressBar`` counting optimiser steps (module docstring)."""

    def _by_steps(self) -> bool:
        return self.trainer.max_steps > 0

    @property
    def total_train_batches(self) -> int | float:
        return self.trainer.max_steps if self._by_steps() else super().total_train_batches

    def _get_train_description(self, current_epoch: int) -> str:
        if not self._by_steps():
            return super()._get_train_description(current_epoch)
        description = f"step {self.trainer.global_step}/{self.trainer.max_steps}"
        return f"{description:{len(self.validation_description)}}"

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self._by_steps() and self.train_progress_bar_id is not None:
            return  # one bar for the whole run, not one per epoch
        super().on_train_epoch_start(trainer, pl_module)

    def on_train_batch_end(
        self,
        trainer: L.Trainer,
        pl_module: L.LightningModule,
        outputs: Any,
        batch: Any,
        batch_idx: int,
    ) -> None:
        if not self._by_steps():
            super().on_train_batch_end(trainer, pl_module, outputs, batch, batch_idx)
            return
        if self.is_enabled and self.train_progress_bar_id is None:  # resumed mid-epoch
            self._initialize_train_progress_bar_id()
        if self.is_enabled and self.progress is not None:
            description = self._get_train_description(trainer.current_epoch)
            theme = self.theme.description
            self.progress.update(
                self.train_progress_bar_id,
                completed=trainer.global_step,
                description=f"[{theme}]{description}" if theme else description,
            )
        self._update_metrics(trainer, pl_module)
        self.refresh()

    def get_metrics(self, trainer: L.Trainer, pl_module: L.LightningModule) -> dict[str, Any]:
        metrics = super().get_metrics(trainer, pl_module)
        metrics.pop("v_num", None)
        return metrics
