"""A sweep whose Optuna sqlite storage sits in a folder that does not exist yet (a new
``task_name``) gets that folder before the sweeper opens the database."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from omegaconf import OmegaConf

from learnct.run.sweep_storage import SweepStorageFolder, sqlite_storage_path


def test_sqlite_storage_path() -> None:
    assert sqlite_storage_path("sqlite:////tmp/a/b.db") == Path("/tmp/a/b.db")
    assert sqlite_storage_path("sqlite:///logs/x/s.db") == Path("logs/x/s.db")
    assert sqlite_storage_path("sqlite:///:memory:") is None
    assert sqlite_storage_path("postgresql://host/db") is None
    assert sqlite_storage_path(None) is None


def test_callback_makes_the_storage_folder_of_a_new_task(tmp_path: Path, compose_config) -> None:
    cfg = compose_config(
        "train",
        [
            "experiment=tv",
            "hparams_search=tv_lambda",
            "task_name=tv_brand_new",
            f"paths.log_dir={tmp_path}/logs",
        ],
        return_hydra_config=True,
    )
    callbacks = OmegaConf.to_container(cfg.hydra.callbacks)
    assert callbacks["sweep_storage"]["_target_"] == "learnct.run.sweep_storage.SweepStorageFolder"
    db = tmp_path / "logs" / "tv_brand_new" / "optuna_tv_lambda.db"
    assert not db.parent.exists()
    SweepStorageFolder().on_multirun_start(config=cfg)
    assert db.parent.is_dir()
    sqlite3.connect(db).close()  # what Optuna's storage does first: it now opens
