"""W&B checkpoint artifacts (``logger.wandb.log_model``): only the best checkpoint is uploaded,
never ``last.ckpt`` (Lightning's logger uploaded it at every validation under ``all`` and gave
it the ``best`` alias under ``true``); a value other than false, true or all is refused."""

from __future__ import annotations

import lightning as L
import pytest
from toy_module import ToyModule
from wandb_files import offline_run

from conftest import TINY_LGD
from learnct.run import ConfigError
from learnct.run.wandb_fallback import reset_wandb
from learnct.run.wandb_logger import WandbLogger


def _fit_with_wandb(tmp_path, monkeypatch, log_model):
    """Three validations, at steps 2, 4 and 6 (each a new best) with the two checkpoint callbacks of
    configs/callbacks/default.yaml; returns the offline run and the checkpoint folder."""
    monkeypatch.setenv("WANDB_MODE", "offline")  # not offline=True: Lightning refuses log_model
    monkeypatch.setenv("WANDB_SILENT", "true")
    monkeypatch.setenv("WANDB_DATA_DIR", str(tmp_path / "wandb-data"))
    reset_wandb()  # W&B's process-wide settings may hold an earlier test's mode
    logger = WandbLogger(save_dir=tmp_path, project="ckpt", log_model=log_model)
    folder = tmp_path / "checkpoints"
    best = L.pytorch.callbacks.ModelCheckpoint(
        dirpath=folder, filename="step_{step:06d}", monitor="val/psnr", mode="max",
        save_top_k=1, auto_insert_metric_name=False,
    )  # fmt: skip
    last = L.pytorch.callbacks.ModelCheckpoint(
        dirpath=folder, filename="last", monitor=None, save_top_k=1, enable_version_counter=False
    )
    trainer = L.Trainer(
        max_steps=6,
        accelerator="cpu",
        logger=logger,
        callbacks=[best, last],
        val_check_interval=2,  # (1 would save at epoch ends: Lightning reads it as 1.0)
        num_sanity_val_steps=0,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    trainer.fit(ToyModule(train_batches=10))
    logger.experiment.finish()
    reset_wandb()
    return offline_run(tmp_path), folder


def _models(run):
    return [(sorted(aliases), meta["original_filename"]) for _, kind, aliases, meta in run.artifacts
            if kind == "model"]  # fmt: skip


def test_log_model_true_uploads_the_best_checkpoint_once(tmp_path, monkeypatch):
    run, folder = _fit_with_wandb(tmp_path, monkeypatch, log_model=True)
    assert sorted(p.name for p in folder.iterdir()) == ["last.ckpt", "step_000006.ckpt"]
    assert _models(run) == [(["best", "latest"], "step_000006.ckpt")]


def test_log_model_all_uploads_each_new_best_and_never_last_ckpt(tmp_path, monkeypatch):
    run, _ = _fit_with_wandb(tmp_path, monkeypatch, log_model="all")
    assert _models(run) == [(["best", "latest"], f"step_00000{k}.ckpt") for k in (2, 4, 6)]


def test_a_bad_log_model_is_a_config_error(compose_config, run_config, tmp_path):
    cfg = compose_config(
        "train",
        [
            *TINY_LGD,
            "trainer.max_steps=1",
            "trainer.val_check_interval=1",
            "logger=wandb",
            "logger.wandb.log_model=best",
        ],
        tmp_path,
    )
    with pytest.raises(ConfigError) as err:
        run_config(cfg)
    assert str(err.value) == (
        "logger: log_model must be false, true or all, got 'best' (check the logger.* settings)"
    )
