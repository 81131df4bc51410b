"""``train/steps_per_s``: steps per second of training time, every log_every_n_steps steps,
validations excluded (a fake clock: each training step takes 10 ms, a validation 1 s)."""

from __future__ import annotations

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


class _Record(L.Callback):
    def __init__(self) -> None:
        self.rates: dict[int, float] = {}

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if "train/steps_per_s" in trainer.callback_metrics and trainer.global_step % 3 == 0:
            self.rates[trainer.global_step] = float(trainer.callback_metrics["train/steps_per_s"])


def test_rate_of_training_steps_alone(tmp_path, monkeypatch):
    clock = _Clock()
    monkeypatch.setattr(step_rate, "time", SimpleNamespace(perf_counter=clock))
    record = _Record()
    trainer = L.Trainer(
        max_steps=12,
        max_epochs=-1,
        accelerator="cpu",
        logger=L.pytorch.loggers.CSVLogger(tmp_path),
        callbacks=[StepRate(), record],
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        log_every_n_steps=3,
        val_check_interval=4,  # validations after steps 4 and 8: 1 s each, not counted
        num_sanity_val_steps=0,
    )
    trainer.fit(_Timed(clock))
    assert sorted(record.rates) == [3, 6, 9, 12]
    for step, rate in record.rates.items():
        assert abs(rate - 100.0) < 1e-6, (step, rate)  # 10 ms per step, validations excluded
