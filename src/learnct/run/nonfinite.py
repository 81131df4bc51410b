"""``NonFiniteGuard``: skip training steps whose loss or gradients are not finite, and stop the
run after ``max_consecutive`` such steps in a row.

A skipped step leaves the parameters and the optimiser's moments untouched (its gradients are
dropped before ``optimizer.step``, and torch optimisers skip parameters without a gradient);
the batch is consumed, and the step counter and the learning-rate schedule move on. With fp16
mixed precision the GradScaler already skips such steps (and lowers its scale), so the guard
only counts them. Skips are
counted (``train/nonfinite_steps``, saved in checkpoints) and warned about. After
``max_consecutive`` in a row the guard raises :class:`NonFiniteTrainingError`: the weights
never took a non-finite update, so every checkpoint on disk is a good one.

After testing, :func:`check_finite_results` raises :class:`NonFiniteResultsError` for a
results row with a NaN or infinite metric, before it is written.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from typing import Any

import lightning as L
import torch

from learnct.checks import check_int

__all__ = [
    "NonFiniteGuard",
    "NonFiniteResultsError",
    "NonFiniteTrainingError",
    "check_finite_results",
]


class NonFiniteTrainingError(RuntimeError):
    """Too many consecutive training steps with a non-finite loss or gradient."""


class NonFiniteResultsError(RuntimeError):
    """Test metrics that are NaN or infinite: the reconstructions (or the measurements) were."""


def check_finite_results(rows: Sequence[dict[str, Any]], metrics: Sequence[str]) -> None:
    """:class:`NonFiniteResultsError` naming each test set's non-finite ``metrics``, if any
    row has one (``None``, a metric not measured, is fine)."""
    bad = {
        row["test_set"]: [
            f"{name}={row[name]}"
            for name in metrics
            if row.get(name) is not None and not math.isfinite(row[name])
        ]
        for row in rows
    }
    found = "; ".join(
        f"{test_set}: {', '.join(values)}" for test_set, values in bad.items() if values
    )
    if found:
        raise NonFiniteResultsError(
            f"the test results are not finite ({found}); no results.csv written. The "
            "reconstructions hold NaN or inf: if FBP's (fbp_*) do too, the simulated "
            "measurements do (check physics.* and the data), else the method (check its "
            "checkpoint and model.* settings)"
        )


class NonFiniteGuard(L.Callback):
    """See the module docstring.

    Args:
        max_consecutive: non-finite steps in a row that stop the run (>= 1).
    """

    def __init__(self, max_consecutive: int = 10) -> None:
        check_int("max_consecutive", max_consecutive)
        self.max_consecutive = max_consecutive
        self.consecutive = 0
        self.skipped = 0
        self._loss: torch.Tensor | None = None

    def on_before_backward(
        self, trainer: L.Trainer, pl_module: L.LightningModule, loss: torch.Tensor
    ) -> None:
        self._loss = loss.detach()

    def on_before_optimizer_step(
        self, trainer: L.Trainer, pl_module: L.LightningModule, optimizer: torch.optim.Optimizer
    ) -> None:
        params = [p for group in optimizer.param_groups for p in group["params"]]
        grads = [p.grad for p in params if p.grad is not None]
        values = [torch.nn.utils.get_total_norm(grads)] if grads else []
        if self._loss is not None:
            values.append(self._loss.float().sum())  # NaN and inf survive the sum
        self._loss = None
        finite = all(bool(torch.isfinite(v)) for v in values)
        if finite:
            self.consecutive = 0
        else:
            if getattr(trainer.precision_plugin, "scaler", None) is None:
                # the optimiser then leaves every weight as is (with fp16 AMP, the GradScaler
                # skips the step itself and lowers its scale: its overflows are counted only)
                optimizer.zero_grad(set_to_none=True)
            self.consecutive += 1
            self.skipped += 1
            warnings.warn(
                f"step {trainer.global_step}: non-finite loss or gradient, step skipped "
                f"({self.consecutive} in a row, {self.skipped} in all; the run stops after "
                f"{self.max_consecutive} in a row: max_nonfinite_steps)",
                RuntimeWarning,
                stacklevel=2,
            )
        pl_module.log("train/nonfinite_steps", float(self.skipped), on_step=True, on_epoch=False)
        if self.consecutive >= self.max_consecutive:
            folders = sorted({str(cb.dirpath) for cb in trainer.checkpoint_callbacks})
            kept = (
                f"the checkpoints in {', '.join(folders)} are intact"
                if folders
                else "no checkpoints are kept (no ModelCheckpoint callback)"
            )
            raise NonFiniteTrainingError(
                f"training stopped at step {trainer.global_step}: {self.consecutive} steps in a "
                f"row had a non-finite loss or gradient (max_nonfinite_steps="
                f"{self.max_consecutive}; {self.skipped} skipped in all). The weights are those "
                f"of the last finite step and {kept}. Lower the learning rate "
                "(model.optimizer.lr), check the data for NaN/inf, or raise max_nonfinite_steps."
            )

    def state_dict(self) -> dict[str, Any]:
        return {"skipped": self.skipped, "consecutive": self.consecutive}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.skipped = int(state_dict.get("skipped", 0))
        self.consecutive = int(state_dict.get("consecutive", 0))
