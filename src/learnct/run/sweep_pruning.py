"""Pruning a sweep trial from its validation curve (a job of ``hydra/sweeper=optuna`` whose
search sets ``hydra.sweeper.pruner``).

After every validation the job reports ``optimized_metric`` to its Optuna trial at the
optimiser step (Lightning's ``global_step``; the training stream is one long epoch, so the epoch
would not tell validations apart). When the study's pruner says the curve is hopeless, training
stops there (``trainer.should_stop``) and the trial gets the user attribute ``pruned_at_step``:
the run ends as a normal run (folder, checkpoints, W&B run) and the sweeper tells Optuna the
trial was PRUNED. The job reaches its trial through the study's storage (``hydra.sweeper.storage``,
``study_name``) and the trial number the sweeper sets (``hydra.sweeper.trial``).
"""

from __future__ import annotations

from typing import Any

import lightning as L
from omegaconf import DictConfig

__all__ = ["PRUNED_AT_STEP", "TrialPruning", "trial_pruning"]

#: the trial's user attribute the job sets when its pruner stops it (read by the sweeper)
PRUNED_AT_STEP = "pruned_at_step"


class TrialPruning(L.Callback):
    """Reports ``monitor`` to ``trial`` after each validation; stops training when the study's
    pruner prunes the trial (rank 0 decides, every rank stops)."""

    def __init__(self, trial: Any, monitor: str) -> None:
        self.trial = trial
        self.monitor = monitor

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        value = trainer.callback_metrics.get(self.monitor)
        if trainer.sanity_checking or value is None:
            return
        prune = False
        if trainer.is_global_zero:
            self.trial.report(float(value), step=trainer.global_step)
            prune = self.trial.should_prune()
            if prune:
                self.trial.set_user_attr(PRUNED_AT_STEP, trainer.global_step)
        if trainer.strategy.broadcast(prune):
            print(f"trial {self.trial.number} pruned at step {trainer.global_step}: stopping")
            trainer.should_stop = True


def trial_pruning(cfg: DictConfig) -> TrialPruning | None:
    """The pruning callback of this job, or ``None`` outside a pruned Optuna sweep."""
    from hydra.core.hydra_config import HydraConfig

    if not HydraConfig.initialized():
        return None
    sweeper = HydraConfig.get().sweeper
    if sweeper.get("trial") is None or sweeper.get("pruner") is None:
        return None
    import optuna
    from hydra.utils import instantiate

    pruner = instantiate(sweeper.pruner)
    study = optuna.load_study(study_name=sweeper.study_name, storage=sweeper.storage, pruner=pruner)
    trial_id = study._storage.get_trial_id_from_study_id_trial_number(
        study._study_id, sweeper.trial
    )
    return TrialPruning(optuna.trial.Trial(study, trial_id), cfg.optimized_metric)
