"""``NonFiniteGuard``: skip training steps whose loss or gradients are not finite, and stop the
run after ``max_consecutive`` such steps in a row.

A skipped step leaves the parameters and the optimiser's moments untouched (its gradients are
dropped before ``optimizer.step``, and torch optimisers skip parameters without a gradient);
the batch is consumed, and the step counter and the learning-rate schedule move on. With fp16
mixed precision the GradScaler already skips such steps (and lowers its scale), so the guard
only counts them. With a fused optimiser (``fused=True``: the fast path on CUDA, see
:mod:`learnct.methods.fast_path`) nothing is read per step: the guard hands the optimiser a
device flag (``found_inf``, as the GradScaler does) with which the fused kernel leaves the
weights, moments and step count as they are, counts skips on the device, and reads the counts
every ``trainer.log_every_n_steps`` steps (the run then stops up to that many steps after the
``max_consecutive``-th skip in a row; the weights are still the last finite step's). Skips are
counted (``train/nonfinite_steps``, saved in checkpoints) and warned about (on the
host path the warning names the loss and the parameters whose gradient was not finite). After
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
from learnct.methods.fast_path import has_grad_scaler

__all__ = [
    "NONFINITE_METRIC",
    "NonFiniteGuard",
    "NonFiniteResultsError",
    "NonFiniteTrainingError",
    "check_finite_results",
]


#: the logged count of skipped steps so far (one value per logged step)
NONFINITE_METRIC = "train/nonfinite_steps"


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


def _what_is_not_finite(
    module: torch.nn.Module, params: list[torch.Tensor], loss: torch.Tensor | None
) -> str:
    """Which of a skipped step's loss and gradients were not finite, read only on a skip:
    ``"loss nan"``, or the loss and the parameters with a non-finite gradient (the first
    three by name, and how many)."""
    names = {id(p): name for name, p in module.named_parameters()}
    bad = [
        names.get(id(p), "?")
        for p in params
        if p.grad is not None and not bool(torch.isfinite(p.grad).all())
    ]
    parts = [] if loss is None else [f"loss {float(loss.float().sum()):.4g}"]
    if bad:
        shown = ", ".join(bad[:3]) + (", ..." if len(bad) > 3 else "")
        parts.append(f"non-finite gradients in {len(bad)} of {len(params)} tensors: {shown}")
    return "; ".join(parts) or "no loss or gradients seen"


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
        # fused optimisers: device counts since the last read (skips, current and longest run)
        self._on_device: tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None = None

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
        loss, self._loss = self._loss, None
        if loss is not None:
            values.append(loss.float().sum())  # NaN and inf survive the sum
        if optimizer.defaults.get("fused") and not has_grad_scaler(trainer):
            self._skip_on_device(trainer, pl_module, optimizer, values)
            return
        finite = all(bool(torch.isfinite(v)) for v in values)
        if finite:
            self.consecutive = 0
        else:
            what = _what_is_not_finite(pl_module, params, loss)
            if not has_grad_scaler(trainer):
                # the optimiser then leaves every weight as is (with fp16 AMP, the GradScaler
                # skips the step itself and lowers its scale: its overflows are counted only)
                optimizer.zero_grad(set_to_none=True)
            self.consecutive += 1
            self.skipped += 1
            self._warn(
                f"step {trainer.global_step}: non-finite loss or gradient, step skipped ({what})"
            )
        pl_module.log(NONFINITE_METRIC, float(self.skipped), on_step=True, on_epoch=False)
        self._stop_if_too_many(trainer)

    def _skip_on_device(
        self,
        trainer: L.Trainer,
        pl_module: L.LightningModule,
        optimizer: torch.optim.Optimizer,
        values: list[torch.Tensor],
    ) -> None:
        """The fused optimiser's ``found_inf`` (1.0: skip this step), counted on the device;
        the counts are read every ``trainer.log_every_n_steps`` steps."""
        if not values:
            return
        finite = torch.stack([torch.isfinite(v).all() for v in values]).all()
        optimizer.found_inf = (~finite).float()
        if self._on_device is None:
            zero = torch.zeros((), dtype=torch.int64, device=finite.device)
            self._on_device = (zero, zero.clone() + self.consecutive, zero.clone())
        skipped, run, longest = self._on_device
        run = torch.where(finite, 0, run + 1)
        self._on_device = (skipped + (~finite).long(), run, torch.maximum(longest, run))
        every = max(1, int(getattr(trainer, "log_every_n_steps", 1) or 1))
        if (trainer.global_step + 1) % every == 0:
            self._read_device_counts(trainer, pl_module)

    def _fold_device_counts(self) -> tuple[int, int]:
        """Fold the device counts into ``skipped``/``consecutive`` (one host read; none if
        there are none): the new skips and the longest run of skips since the last read."""
        if self._on_device is None:
            return 0, 0
        skipped, run, longest = (int(t) for t in torch.stack(self._on_device).cpu())
        self._on_device = None
        self.skipped += skipped
        self.consecutive = run
        return skipped, longest

    def _read_device_counts(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        """Fold the device counts (:meth:`_fold_device_counts`), warn about new skips, log
        them and stop after ``max_consecutive`` in a row."""
        skipped, longest = self._fold_device_counts()
        if skipped:
            where = f"steps up to {trainer.global_step}: {skipped} with a non-finite loss or "
            self._warn(where + "gradient skipped")
        pl_module.log(NONFINITE_METRIC, float(self.skipped), on_step=True, on_epoch=False)
        self._stop_if_too_many(trainer, longest)

    def _warn(self, what: str) -> None:
        warnings.warn(
            f"{what} ({self.consecutive} in a row, {self.skipped} in all; the run stops after "
            f"{self.max_consecutive} in a row: max_nonfinite_steps)",
            RuntimeWarning,
            stacklevel=3,
        )

    def _stop_if_too_many(self, trainer: L.Trainer, longest: int = 0) -> None:
        """:class:`NonFiniteTrainingError` after ``max_consecutive`` skips in a row (the
        current run of skips, or the ``longest`` since the last read of the device counts)."""
        if max(self.consecutive, longest) >= self.max_consecutive:
            self.consecutive = max(self.consecutive, longest)
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
        """The counts, with the device's not yet read (a checkpoint between two reads)."""
        self._fold_device_counts()
        return {"skipped": self.skipped, "consecutive": self.consecutive}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.skipped = int(state_dict.get("skipped", 0))
        self.consecutive = int(state_dict.get("consecutive", 0))
