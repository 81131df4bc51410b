"""How runs are named: their folders, and their group and name in the loggers (W&B
``group``/``name``/``job_type``).

A run folder is ``<log_dir>/<task_name>/runs/<start time>_<token>`` (a sweep's
``multiruns/<start time>_<token>/<job>``), where the token is random per process, so that two
runs started in the same second never share a folder (``learnct_run_token``).

A single run is grouped by its experiment (``task_name``). A job of a sweep is grouped by the
sweep: ``<task_name>/<study_name>`` for Optuna sweeps (the study persists across resumed
invocations, so all of its trials share one group) and ``<task_name>/sweep-<date>`` for
Hydra's basic sweeper. Every run is named after its experiment and its folder, so that the
name is unique and leads to the folder: ``<task_name>-<start time>_<token>`` for a single run
(a resumed run keeps the name of the run it continues), ``<task_name>-<start time>_<token>-<job
number>`` for a sweep job (a resumed Optuna study's jobs restart at job 0, so the job number
alone would repeat within its group). Registered as the OmegaConf resolvers ``learnct_group``,
``learnct_run_name`` and ``learnct_job_type`` (configs/logger).
"""

from __future__ import annotations

import secrets
from pathlib import Path

from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import OmegaConf

from learnct.run.config_checks import ConfigError, task_folder_name

__all__ = ["job_type", "register_resolvers", "run_group", "run_name", "run_token", "task_folder"]

#: this process's token (6 hex digits: 16.7 million values)
_TOKEN = secrets.token_hex(3)


def _multirun() -> tuple[bool, object | None]:
    if not HydraConfig.initialized():
        return False, None
    hydra_cfg = HydraConfig.get()
    return hydra_cfg.mode == RunMode.MULTIRUN, hydra_cfg


def run_group(task_name: str) -> str:
    """The logger group of this run (see the module docstring)."""
    multirun, hydra_cfg = _multirun()
    if not multirun:
        return task_name
    study = hydra_cfg.sweeper.get("study_name")
    if study:
        return f"{task_name}/{study}"
    return f"{task_name}/sweep-{Path(hydra_cfg.sweep.dir).name}"


def run_name(task_name: str, output_dir: str) -> str:
    """The logger name of the run whose folder is ``output_dir`` (see the module docstring)."""
    multirun, hydra_cfg = _multirun()
    if multirun:
        return f"{task_name}-{Path(hydra_cfg.sweep.dir).name}-{hydra_cfg.job.num}"
    return f"{task_name}-{Path(output_dir).name}"


def job_type() -> str:
    """``sweep`` for the jobs of a multirun, ``train`` otherwise."""
    return "sweep" if _multirun()[0] else "train"


def task_folder(task_name: str) -> str:
    """The folder of ``task_name``'s runs under the log folder; ``invalid_task_name`` for a
    name that is not one folder name (e.g. ``../../x``), so that Hydra's run folder stays
    inside ``logs/`` until the config check refuses the name in one line."""
    try:
        return task_folder_name(task_name)
    except ConfigError:
        return "invalid_task_name"


def run_token() -> str:
    """The random token of this process that makes its run folder's name unique."""
    return _TOKEN


def register_resolvers() -> None:
    """Make the resolvers available to the configs (idempotent)."""
    OmegaConf.register_new_resolver("learnct_group", run_group, replace=True)
    OmegaConf.register_new_resolver("learnct_run_name", run_name, replace=True)
    OmegaConf.register_new_resolver("learnct_job_type", job_type, replace=True)
    # cached like Hydra's ${now:}: a sweep's jobs (also on other processes) share one folder
    OmegaConf.register_new_resolver("learnct_run_token", run_token, replace=True, use_cache=True)
    OmegaConf.register_new_resolver("learnct_task_folder", task_folder, replace=True)
