"""What the console entry points (``learnct-train``, ``learnct-eval``) do with a composed
config: run it, and turn failures into what a user or a sweep needs.

A user mistake (``ConfigError``, ``DataError``) prints one line and exits with status 2, a run
stopped by non-finite steps or with non-finite test results with status 1; outside a sweep
the config is checked before torch and Lightning load (~1 s, not ~15 s); the terminal shows
each library message once, without Lightning's tips and known deprecation noise
(:mod:`learnct.run.console`). In a sweep, a
failing job is recorded in ``<sweep dir>/failures.jsonl`` and counts as a failed trial, so the
other jobs go on.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

from omegaconf import DictConfig

from learnct.run.build import user_errors
from learnct.run.checkpoint_settings import resolve_checkpoint_names
from learnct.run.command_line import command_line_keys
from learnct.run.config_checks import ConfigError, validate_config
from learnct.run.identity import IDENTITY_FILE

__all__ = ["remove_refused_run_folder", "run_from_cli", "skip_test_in_sweep_job"]


#: the files a refused command wrote in its run folder: Hydra's ``.hydra/`` and job log, the
#: printed config tree and the run's identity
REFUSED_RUN_FILES = (".hydra", "config_tree.log", IDENTITY_FILE)


def remove_refused_run_folder() -> None:
    """Remove what a refused command wrote into the run folder Hydra made for it
    (:data:`REFUSED_RUN_FILES` and Hydra's ``<job name>.log``), then the folder, its ``runs/``
    and its task folder where that leaves them empty: a refused command leaves no run for the
    dashboard and ``resume`` to find. A folder holding anything else (a ``hydra.run.dir`` with
    files of its own, a run that trained) is left whole; a DDP worker (``LOCAL_RANK`` > 0)
    removes nothing. Called only for commands refused before their run began (a user error
    raised once training or testing began, :data:`~learnct.run.pipeline.IN_RUN`, keeps the
    folder and its job log, even of a run that wrote no logger or checkpoint files)."""
    import os

    from hydra.core.hydra_config import HydraConfig

    if not HydraConfig.initialized() or os.environ.get("LOCAL_RANK", "0") != "0":
        return
    hydra_cfg = HydraConfig.get()
    folder = Path(hydra_cfg.runtime.output_dir)
    ours = (*REFUSED_RUN_FILES, f"{hydra_cfg.job.name}.log")
    if not folder.is_dir() or any(p.name not in ours for p in folder.iterdir()):
        return  # the folder holds more than this command wrote: left as it is
    for name in ours:
        path = folder / name
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path, ignore_errors=True)
        elif path.is_file():
            path.unlink(missing_ok=True)
    for empty in (
        folder,
        *([folder.parent, folder.parent.parent] if folder.parent.name == "runs" else []),
    ):
        try:
            empty.rmdir()
        except OSError:  # not empty (or gone)
            break


def _exit(err: BaseException, status: int, refused: bool = False) -> None:
    """Print ``err`` as one line and exit with ``status``; a ``refused`` command (a user
    mistake found before its run began) leaves no run folder behind."""
    print(f"error: {err}", file=sys.stderr, flush=True)
    if refused:
        remove_refused_run_folder()
    sys.exit(status)


def skip_test_in_sweep_job(cfg: DictConfig, job_number: int) -> None:
    """A training sweep's job tests only where its command line says ``test=true``: a grid
    (``learnct-train -m model.lam=10,20``) chooses a point on the validation set, and testing
    every point would invite choosing on the test set (``make report`` takes single runs
    only). Test the chosen point with a single run (or ``make eval``). Evaluation jobs
    (``learnct-eval -m``: ``train=false``, several checkpoints or doses) test, as they are
    meant to."""
    keys = command_line_keys() or set()
    if "test" in keys or not cfg.get("test", True) or cfg.get("train", True) is False:
        return
    cfg.test = False
    if job_number == 0:
        print(
            "sweep jobs skip the test set (choose on validation, then test the chosen point "
            "with a single run; test=true tests every job)",
            flush=True,
        )


def run_from_cli(cfg: DictConfig) -> float | None:
    """``run(cfg).objective``, with failures reported as the module docstring says (a failed
    sweep job returns ``None``: Optuna's failed trial)."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    hydra_cfg = HydraConfig.get() if HydraConfig.initialized() else None
    multirun = hydra_cfg is not None and hydra_cfg.mode == RunMode.MULTIRUN
    if multirun:
        skip_test_in_sweep_job(cfg, hydra_cfg.job.num)
    else:
        try:
            for note in resolve_checkpoint_names(cfg):
                print(note)
            validate_config(cfg)
        except ConfigError as err:
            _exit(err, 2, refused=True)

    import torch

    from learnct.run.console import quiet_console
    from learnct.run.nonfinite import NonFiniteResultsError, NonFiniteTrainingError
    from learnct.run.pipeline import IN_RUN, finish_wandb, run
    from learnct.run.sweep_failures import record_failure

    torch.set_float32_matmul_precision("high")
    quiet_console()
    try:
        return run(cfg, checked=not multirun).objective
    except Exception as err:
        finish_wandb()
        if multirun:
            path = record_failure(hydra_cfg.sweep.dir, cfg, err)
            print(
                f"sweep job {hydra_cfg.job.num} failed ({type(err).__name__}: {err}); "
                f"recorded in {path}; the sweep goes on",
                file=sys.stderr,
                flush=True,
            )
            return None
        if isinstance(err, user_errors()):  # its folder kept where raised once the run began
            _exit(err, 2, refused=not getattr(err, IN_RUN, False))
        if isinstance(err, (NonFiniteTrainingError, NonFiniteResultsError)):
            _exit(err, 1)
        raise
