"""The command line of a run: Hydra's task overrides of this process, the keys they set, and
the shell command they make (recorded in checkpoints and shown by reports)."""

from __future__ import annotations

import shlex
from collections.abc import Iterable

__all__ = ["command_line", "command_line_keys", "task_overrides"]


def task_overrides() -> list[str] | None:
    """This process's Hydra task overrides (``model=lpd``, ``+trainer.max_time=...``; a
    resumed run's folder keeps those of the command that started it); ``None`` outside a Hydra
    run (a config composed in-process: tests, notebooks)."""
    from hydra.core.hydra_config import HydraConfig

    if not HydraConfig.initialized():
        return None
    return [str(o) for o in HydraConfig.get().overrides.task]


def command_line_keys() -> set[str] | None:
    """The config keys and groups given on the command line (``test=true`` gives ``test``,
    ``+trainer.max_time=...`` ``trainer.max_time``); ``None`` outside a Hydra run."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    overrides = task_overrides()
    if overrides is None:
        return None
    return {o.key_or_group for o in OverridesParser.create().parse_overrides(overrides)}


def command_line(program: str, overrides: Iterable[str]) -> str:
    """``program`` and its ``overrides`` as one shell-quoted command line."""
    return shlex.join([program, *(str(o) for o in overrides)])
