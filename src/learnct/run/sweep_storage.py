"""Hydra callback: create the folder of a sweep's sqlite Optuna storage before the sweeper opens
it, so ``make sweep ... ARGS="task_name=<new name>"`` starts instead of failing with sqlite's
"unable to open database file" (the storage is ``logs/<task_name>/optuna_<study>.db``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf

__all__ = ["SweepStorageFolder", "sqlite_storage_path"]

_SQLITE = "sqlite:///"


def sqlite_storage_path(storage: object) -> Path | None:
    """The database file of an SQLAlchemy ``sqlite:///<path>`` URL, else ``None``."""
    if not isinstance(storage, str) or not storage.startswith(_SQLITE):
        return None
    path = storage[len(_SQLITE) :]
    return Path(path) if path and path != ":memory:" else None


class SweepStorageFolder(Callback):
    """Makes the parent folder of ``hydra.sweeper.storage`` when it is an sqlite file."""

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        path = sqlite_storage_path(OmegaConf.select(config, "hydra.sweeper.storage"))
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
