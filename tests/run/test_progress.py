"""The progress bar of a max_steps run: one bar over the run, ``step k/max_steps``, no
``v_num`` (Lightning's read "Epoch 0/-2", restarted at every epoch and showed ``v_num``)."""

from __future__ import annotations

import lightning as L
from toy_module import ToyModule

from learnct.run.progress import StepProgressBar


class _Watch(L.Callback):
    """Records the training bar after every training batch (runs after the bar's own hook)."""

    def __init__(self, bar: StepProgressBar) -> None:
        self.bar, self.seen = bar, []

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        task = self.bar.progress.tasks[self.bar.train_progress_bar_id]
        metrics = self.bar.get_metrics(trainer, pl_module)
        self.seen.append((task.description.strip(), task.completed, task.total, set(metrics)))


def test_one_bar_counts_the_steps_of_the_whole_run_without_v_num(tmp_path):
    bar = StepProgressBar()
    watch = _Watch(bar)
    trainer = L.Trainer(
        max_steps=5,
        max_epochs=-1,
        accelerator="cpu",
        logger=L.pytorch.loggers.CSVLogger(tmp_path),  # a logger: Lightning's bar shows v_num
        callbacks=[bar, watch],
        enable_checkpointing=False,
        enable_model_summary=False,
        val_check_interval=2,
        num_sanity_val_steps=0,
    )
    trainer.fit(ToyModule(train_batches=2))  # 3 epochs of 2 batches
    assert [(d, c, t) for d, c, t, _ in watch.seen] == [(f"step {k}/5", k, 5) for k in range(1, 6)]
    assert all("v_num" not in metrics and "train/loss" in metrics for *_, metrics in watch.seen)


def test_a_run_without_max_steps_keeps_the_epoch_description(tmp_path):
    bar = StepProgressBar()
    watch = _Watch(bar)
    trainer = L.Trainer(
        max_epochs=2,
        accelerator="cpu",
        logger=False,
        callbacks=[bar, watch],
        enable_checkpointing=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
    )
    trainer.fit(ToyModule(train_batches=2))
    assert [(d, c, t) for d, c, t, _ in watch.seen] == [
        ("Epoch 0/1", 1, 2),
        ("Epoch 0/1", 2, 2),
        ("Epoch 1/1", 1, 2),
        ("Epoch 1/1", 2, 2),
    ]
