"""``resume=true`` / ``ckpt_path``: the checkpoint a training run continues from.

A run of task ``<task_name>`` keeps ``checkpoints/last.ckpt`` (written atomically) in its run
folder (:mod:`learnct.run.results`). Re-typing the command of a killed run with ``resume=true``
continues the newest run folder that has one, in that folder: step count, optimiser, scheduler
and data stream included.
"""

from __future__ import annotations

from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from learnct.run.config_checks import ConfigError
from learnct.run.results import LAST_CHECKPOINT, task_run_folders

__all__ = ["find_resume_checkpoint", "resolve_resume"]


def find_resume_checkpoint(
    log_dir: str | Path, task_name: str, exclude: str | Path | None = None
) -> Path:
    """``last.ckpt`` of the newest run of ``task_name`` under ``log_dir``, skipping the folder
    ``exclude`` (the run that is starting). Raises ``FileNotFoundError`` saying where it
    looked."""
    skip = Path(exclude).resolve() if exclude is not None else None
    folders = [p for p in task_run_folders(Path(log_dir), task_name) if p.resolve() != skip]
    if not folders:
        runs = Path(log_dir) / task_name / "runs"
        raise FileNotFoundError(
            f"resume=true: no run of task_name={task_name!r} to resume: no {runs}/*/"
            f"{LAST_CHECKPOINT}. Start it without resume=true, or pass ckpt_path=<file.ckpt>"
        )
    return folders[-1] / LAST_CHECKPOINT


def resolve_resume(cfg: DictConfig) -> Path | None:
    """The checkpoint that training continues from: ``ckpt_path``, or with ``resume=true``
    the ``last.ckpt`` of the newest run of ``task_name``, whose folder then becomes this run's
    ``paths.output_dir`` (the run goes on where it stopped). ``None``: a fresh run."""
    from learnct.run.atomic_checkpoint import remove_stale_temporaries

    if not cfg.get("train", True):
        return None
    if cfg.get("ckpt_path"):
        return Path(cfg.ckpt_path)
    if not cfg.get("resume", False):
        return None
    try:
        ckpt = find_resume_checkpoint(cfg.paths.log_dir, cfg.task_name, cfg.paths.output_dir)
    except FileNotFoundError as err:
        raise ConfigError(str(err)) from err
    run_dir = ckpt.parents[1]
    OmegaConf.update(cfg, "paths.output_dir", str(run_dir), merge=False)
    for stale in remove_stale_temporaries(ckpt.parent):
        print(f"resume: removed {stale}, left by a save that was interrupted")
    return ckpt
