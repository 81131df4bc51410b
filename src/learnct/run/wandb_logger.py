"""``WandbLogger``: Lightning's W&B logger as learnct's runs use it (configs/logger/wandb.yaml).

- ``log_model`` (``false``, ``true`` or ``all``) uploads checkpoints as W&B model artifacts
  (``model-<run id>``); another value is an error that names it (Lightning's logger would
  upload nothing and say nothing).
- Only checkpoints ranked by a metric are uploaded: those of the ``model_checkpoint`` callback
  (the best by ``val/psnr``, what the test pass evaluates). ``true`` uploads the best one once,
  when training ends (aliases ``best`` and ``latest``); ``all`` uploads each new best as it is
  written. ``last.ckpt`` (the ``last_checkpoint`` callback, ``monitor: null``, rewritten at
  every validation so that a run can resume) is never uploaded: Lightning's logger uploaded it
  at every validation under ``all``, and under ``true`` gave it the ``best`` alias.
- W&B warned "The anonymous setting has no effect" at every run: Lightning passes
  ``anonymous=None`` to ``wandb.init``, and wandb 0.19+ warns for any value. It is left out.
"""

from __future__ import annotations

from typing import Any

from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.loggers import WandbLogger as LightningWandbLogger

__all__ = ["WandbLogger"]


class WandbLogger(LightningWandbLogger):
    """Lightning's ``WandbLogger`` that uploads only ranked checkpoints (module docstring)."""

    def __init__(self, *args: Any, log_model: bool | str = False, **kwargs: Any) -> None:
        if not (isinstance(log_model, bool) or log_model == "all"):
            raise ValueError(f"log_model must be false, true or all, got {log_model!r}")
        super().__init__(*args, log_model=log_model, **kwargs)
        if self._wandb_init.get("anonymous") is None:
            self._wandb_init.pop("anonymous", None)

    def after_save_checkpoint(self, checkpoint_callback: ModelCheckpoint) -> None:
        if checkpoint_callback.monitor is None:  # last.ckpt: a resume point, not a model
            return
        super().after_save_checkpoint(checkpoint_callback)
