"""``train/steps_per_s``: steps per second of training time, every log_every_n_steps steps,
validations excluded (a fake clock: each training step takes 10 ms, a validation 1 s)."""

from __future__ import annotations

import csv
from types import SimpleNamespace

import lightning as L
from toy_module import ToyModule

from learnct.run import step_rate
from learnct.run.step_rate import StepRate


class _Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


class _Timed(ToyModule):
    def __init__(self, clock: _Clock) -> None:
        super().__init__(train_batches=4)
        self.clock = clock

    def training_step(self, batch, batch_idx):
        self.clock.now += 0.01
        return super().training_step(batch, batch_idx)

    def validation_step(self, batch, batch_idx):
        self.clock.now += 1.0
        super().validation_step(batch, batch_idx)


def _rates(tmp_path) -> dict[int, float]:
    (metrics,) = tmp_path.glob("lightning_logs/version_*/metrics.csv")
    with open(metrics) as fh:
        rows = [r for r in csv.DictReader(fh) if r.get("train/steps_per_s")]
    return {int(r["step"]) + 1: float(r["train/steps_per_s"]) for r in rows}  # 0-based step


def _fit(tmp_path, module: L.LightningModule, **options) -> None:
    trainer = L.Trainer(
        max_epochs=-1,
        accelerator="cpu",
        logger=L.pytorch.loggers.CSVLogger(tmp_path),
        callbacks=[StepRate()],
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        **options,
    )
    trainer.fit(module)


def test_rate_of_training_steps_alone(tmp_path, monkeypatch):
    clock = _Clock()
    monkeypatch.setattr(step_rate, "time", SimpleNamespace(perf_counter=clock))
    # validations after steps 4 and 8 take 1 s each: not counted
    _fit(tmp_path, _Timed(clock), max_steps=12, log_every_n_steps=3, val_check_interval=4)
    rates = _rates(tmp_path)
    assert sorted(rates) == [3, 6, 9, 12]
    for step, rate in rates.items():
        assert abs(rate - 100.0) < 1e-6, (step, rate)  # 10 ms per step


def test_rate_counts_optimiser_steps_when_gradients_accumulate(tmp_path, monkeypatch):
    """Two micro-batches of 10 ms per optimiser step: 50 steps/s in every window."""
    clock = _Clock()
    monkeypatch.setattr(step_rate, "time", SimpleNamespace(perf_counter=clock))
    options = {"max_steps": 6, "log_every_n_steps": 2, "accumulate_grad_batches": 2}
    _fit(tmp_path, _Timed(clock), limit_val_batches=0, **options)
    rates = _rates(tmp_path)
    assert sorted(rates) == [2, 4, 6]
    assert all(abs(rate - 50.0) < 1e-6 for rate in rates.values()), rates
