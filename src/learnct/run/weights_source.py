"""Where a run's weights come from: the record every checkpoint of a ``learnct-train`` run
keeps (``checkpoint["learnct"]["source"]``, read by
:func:`learnct.methods.checkpoints.weights_source`), kept by sittings and stripped weights
and shown by the model cards."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from learnct.run.command_line import command_line, task_overrides
from learnct.run.identity import RunIdentity
from learnct.run.provenance import repository_path

__all__ = ["source_record"]


def source_record(
    cfg: DictConfig, identity: RunIdentity, commit: str, resume: Path | None
) -> dict[str, Any]:
    """``{"run_id", "task_name", "started", "commit", "command", "data_source",
    "train_photons_range", "started_from"}``: the run's id (``run.json``), its task and start,
    the code's commit, this process's command line (``learnct-train`` and its Hydra overrides;
    ``None`` outside Hydra), the data it trains on (``data.source``: ``ellipses``, ``ctlike``,
    ...; ``data.train_photons_range``: the range each sample's dose is drawn from, ``None``:
    the preset's one dose) and, for weights that
    started from trained ones, ``{"checkpoint", "steps", "source"}``: the ``init_weights``
    path, the optimiser steps that trained it and its own record (``{"run_id"}`` alone where
    the file kept only its run stamp; ``None``: not recorded).
    A resumed run keeps the ``started_from`` of the checkpoint it continues (for one saved
    before checkpoints kept it: from ``init_weights``, else from the steps it records)."""
    from learnct.methods.checkpoints import (
        read_checkpoint,
        steps_before,
        trained_by,
        trained_steps,
        weights_source,
    )

    overrides = task_overrides()
    record: dict[str, Any] = {
        "run_id": identity.id,
        "task_name": identity.get("task_name"),
        "started": identity.get("started"),
        "commit": commit,
        "command": None if overrides is None else command_line("learnct-train", overrides),
        "data_source": OmegaConf.select(cfg, "data.source"),
        "train_photons_range": _plain(OmegaConf.select(cfg, "data.train_photons_range")),
        "started_from": None,
    }
    continued = read_checkpoint(resume) if resume is not None else None
    if continued is not None and weights_source(continued) is not None:
        record["started_from"] = weights_source(continued)["started_from"]
    elif cfg.get("init_weights"):
        init = read_checkpoint(cfg.init_weights)
        record["started_from"] = {
            "checkpoint": repository_path(cfg.init_weights),
            "steps": trained_steps(init),
            "source": weights_source(init) or _id_only(trained_by(init)),
        }
    elif continued is not None and steps_before(continued) != 0:  # None: not recorded
        record["started_from"] = {
            "checkpoint": None,
            "steps": steps_before(continued),
            "source": None,
        }
    return record


def _id_only(run_id: str | None) -> dict[str, str] | None:
    """The record of weights that kept only their schedule's run id (exported before
    checkpoints recorded their run): ``{"run_id"}``; ``None`` where none is kept either."""
    return {"run_id": run_id} if run_id else None


def _plain(value: Any) -> Any:
    """A config value as plain Python (a list for a ``ListConfig``), for ``torch.save``."""
    return OmegaConf.to_container(value) if OmegaConf.is_config(value) else value
