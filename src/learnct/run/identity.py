"""A run's identity: an id, and the settings that make its training what it is.

Every training run writes ``run.json`` into its folder when it starts (``id``, ``started``,
``task_name`` and ``settings``: the resolved :data:`IDENTITY_KEYS`), and
:class:`~learnct.run.identity_stamp.RunIdentityStamp` stamps the id and settings into each of
its checkpoints (``checkpoint["learnct_run"]``). ``resume`` continues a run only when its
settings equal the command's (the same data stream, model, optimiser and learning-rate
schedule: a true resume, not a warm restart) and its checkpoint carries the folder's id.
"""

from __future__ import annotations

import datetime
import json
import uuid
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from learnct.run.atomic_files import atomic_write_text

__all__ = [
    "EXECUTION_KEYS",
    "IDENTITY_FILE",
    "IDENTITY_KEYS",
    "RunIdentity",
    "differences",
    "new_identity",
    "read_identity",
    "run_settings",
    "write_identity",
]

IDENTITY_FILE = "run.json"
#: What a resumed run must share with the run it continues: the seed (data stream), physics,
#: data, model (architecture, optimiser, learning rate, schedule) and the planned step count
#: (the cosine schedule's length).
IDENTITY_KEYS = ("seed", "physics", "data", "model", "trainer.max_steps")
#: Settings under :data:`IDENTITY_KEYS` that say how a run executes, not what it trains: the
#: loader's processes and memory, where the ellipse phantoms are rasterised (the same images),
#: and the methods' execution settings (:data:`learnct.methods.checkpoints.EXECUTION`, spelled
#: out here so that checking a config loads no torch; a test keeps them equal: the blocks
#: compiled, recomputed in backward or in bfloat16 autocast, as ``trainer.precision``, which is
#: not part of the identity either). A run continues under other values of these (another
#: machine: a GPU run of a CPU sitting); :func:`differences` skips them.
EXECUTION_KEYS = (
    "data.num_workers",
    "data.pin_memory",
    "data.phantoms_on_device",
    "model.autocast",
    "model.channels_last",
    "model.checkpoint",
    "model.compile",
    "model.operator_norm",
)


class RunIdentity(dict):
    """``{"id", "started", "task_name", "settings"}`` (a JSON object)."""

    @property
    def id(self) -> str:
        return str(self["id"])

    @property
    def settings(self) -> dict[str, Any]:
        return dict(self.get("settings") or {})


def run_settings(cfg: DictConfig) -> dict[str, Any]:
    """The resolved values of :data:`IDENTITY_KEYS` in ``cfg`` (``None`` where absent)."""
    settings = {}
    for key in IDENTITY_KEYS:
        value = OmegaConf.select(cfg, key, default=None)
        settings[key] = (
            OmegaConf.to_container(value, resolve=True) if OmegaConf.is_config(value) else value
        )
    return settings


def new_identity(cfg: DictConfig) -> RunIdentity:
    """A fresh identity for a run of ``cfg``: a random id, the start time and its settings."""
    return RunIdentity(
        id=uuid.uuid4().hex[:12],
        started=datetime.datetime.now().isoformat(timespec="seconds"),
        task_name=cfg.get("task_name"),
        settings=run_settings(cfg),
    )


def write_identity(folder: Path, identity: RunIdentity) -> Path:
    """Write ``folder/run.json`` atomically (:mod:`learnct.run.atomic_files`)."""
    folder.mkdir(parents=True, exist_ok=True)
    return atomic_write_text(folder / IDENTITY_FILE, json.dumps(identity, indent=1, default=str))


def read_identity(folder: Path) -> RunIdentity | None:
    """The identity in ``folder/run.json``; ``None`` for a folder without one (a run of an
    older learnct) or an unreadable one."""
    try:
        data = json.loads((Path(folder) / IDENTITY_FILE).read_text())
    except (OSError, ValueError):
        return None
    return RunIdentity(data) if isinstance(data, dict) and "id" in data else None


def differences(old: dict[str, Any], new: dict[str, Any], prefix: str = "") -> list[str]:
    """``key: old -> new`` for every leaf that differs between two settings trees, except the
    :data:`EXECUTION_KEYS`. A key the old tree lacks is not compared: a setting added to
    learnct since the old run started (e.g. ``model.statistical_weights``), which that run had
    at its default."""
    out: list[str] = []
    for key in sorted(set(old) | set(new)):
        name = f"{prefix}{key}"
        if key not in old or name in EXECUTION_KEYS:
            continue
        a, b = old.get(key), new.get(key)
        if isinstance(a, dict) and isinstance(b, dict):
            out += differences(a, b, f"{name}.")
        elif a != b:
            out.append(f"{name}: {a!r} -> {b!r}")
    return out
