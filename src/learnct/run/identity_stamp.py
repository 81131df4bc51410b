"""``RunIdentityStamp``: the run's id and settings in every checkpoint it saves
(``checkpoint["learnct_run"]``), so that a checkpoint names the run it belongs to
(:mod:`learnct.run.identity`), and where its weights come from
(``checkpoint["learnct_source"]``, :func:`source_record`: kept in stripped weights, shown by
the model cards).
"""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import Any

import lightning as L
from omegaconf import DictConfig

from learnct.run.identity import RunIdentity

__all__ = ["SOURCE_KEY", "RunIdentityStamp", "source_record"]

#: the checkpoint key of :func:`source_record`
SOURCE_KEY = "learnct_source"


def source_record(
    cfg: DictConfig, identity: RunIdentity, commit: str, resume: Path | None
) -> dict[str, Any]:
    """Where the weights a run trains come from: ``{"run_id", "task_name", "started",
    "commit", "command", "started_from"}``: the run's id (``run.json``), its task and start,
    the code's commit, the command line (``learnct-train`` and this process's Hydra overrides;
    ``None`` outside Hydra) and, for a start from ``init_weights``, that
    checkpoint (``{"checkpoint", "steps", "source"}``: its path, the optimiser steps that
    trained it and its own record, ``None`` for weights saved before checkpoints kept one). A
    resumed run keeps the ``started_from`` of the checkpoint it continues."""
    from learnct.methods.checkpoints import read_checkpoint, trained_steps

    record: dict[str, Any] = {
        "run_id": identity.id,
        "task_name": identity.get("task_name"),
        "started": identity.get("started"),
        "commit": commit,
        "command": _command(),
        "started_from": None,
    }
    if resume is not None:
        record["started_from"] = (read_checkpoint(resume).get(SOURCE_KEY) or {}).get("started_from")
    elif cfg.get("init_weights"):
        init = read_checkpoint(cfg.init_weights)
        record["started_from"] = {
            "checkpoint": _relative(cfg.init_weights),
            "steps": trained_steps(init),
            "source": init.get(SOURCE_KEY),
        }
    return record


def _command() -> str | None:
    """This process's command line: ``learnct-train`` and its Hydra overrides (a resumed run's
    folder keeps the overrides of the command that started it); ``None`` outside Hydra."""
    from hydra.core.hydra_config import HydraConfig

    try:
        overrides = HydraConfig.get().overrides.task
    except ValueError:  # not run by Hydra (a composed config)
        return None
    return shlex.join(["learnct-train", *overrides])


def _relative(path: str | Path) -> str:
    """``path`` relative to the working folder (the repository) where it lies inside it."""
    try:
        return Path(path).resolve().relative_to(Path.cwd().resolve()).as_posix()
    except ValueError:
        return str(path)


class RunIdentityStamp(L.Callback):
    """Writes ``{"id", "settings"}`` of ``identity`` into each checkpoint, and ``source``
    (:func:`source_record`) under :data:`SOURCE_KEY`."""

    def __init__(self, identity: RunIdentity, source: dict[str, Any] | None = None) -> None:
        self.identity = identity
        self.source = source

    def on_save_checkpoint(self, trainer: Any, pl_module: Any, checkpoint: dict) -> None:
        checkpoint["learnct_run"] = {"id": self.identity.id, "settings": self.identity.settings}
        if self.source is not None:
            checkpoint[SOURCE_KEY] = self.source
