"""``resume``: the run a training command continues, and its checkpoint.

``resume=true`` continues the newest *unfinished* run of ``task_name`` whose settings
(:data:`~learnct.run.identity.IDENTITY_KEYS`: seed, physics, data, model, planned steps; not
the :data:`~learnct.run.identity.EXECUTION_KEYS`) equal the command's; ``resume=<run folder>``
continues exactly that run, refusing it when it has finished or was started with other
settings. The run goes on in its own folder from its ``last.ckpt`` (written atomically): step
count, optimiser, learning-rate schedule and data stream included, so a schedule can be run in
several sittings and ends where one uninterrupted run ends. A finished run is trained on with
``init_weights`` (a new run) instead.
"""

from __future__ import annotations

import logging
import shutil
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from learnct.run.config_checks import ConfigError
from learnct.run.identity import RunIdentity, differences, read_identity, run_settings
from learnct.run.results import LAST_CHECKPOINT, RESULTS_FILE, task_run_folders

__all__ = ["check_time_left", "find_resume_checkpoint", "is_finished", "resolve_resume"]


def is_finished(folder: Path, identity: RunIdentity | None = None) -> bool:
    """Whether the run in ``folder`` completed its training: its ``run.json`` (``identity``,
    read when not given) says so (a run stopped by ``max_time`` or a kill has not), or, for a
    run of an older learnct without one, it has a ``results.csv``."""
    identity = identity if identity is not None else read_identity(folder)
    if identity is not None:
        return bool(identity.get("finished"))
    return (Path(folder) / RESULTS_FILE).is_file()


def check_time_left(state: dict[str, Any], max_time: Any) -> None:
    """A run resumed under ``trainer.max_time`` (Lightning's ``Timer``: its elapsed training
    time is in the checkpoint) must have time left: one stopped by that limit would stop again
    at once and test the same weights anew. Raises :class:`ConfigError` with the fix."""
    saved = (state.get("callbacks") or {}).get("Timer")
    if max_time is None or not saved:
        return
    from lightning.pytorch.callbacks import Timer

    timer = Timer(duration=max_time)
    timer.load_state_dict(saved)
    left = timer.time_remaining()
    if left is not None and left <= 0:
        raise ConfigError(
            f"resume: the run has trained {timer.time_elapsed():.0f} s, all of its time limit "
            f"trainer.max_time={max_time!r}, so it would stop at once: raise the limit (e.g. "
            f"+trainer.max_time=00:02:00:00, days:hours:minutes:seconds, counting the time "
            "already trained) or drop it"
        )


def _why_not(folder: Path, settings: dict[str, Any] | None) -> str | None:
    """Why the run in ``folder`` cannot be resumed with ``settings`` (``None``: it can). A run
    of an older learnct (no ``run.json``) is checked by its checkpoint alone."""
    if not (folder / LAST_CHECKPOINT).is_file():
        return f"it has no {LAST_CHECKPOINT} (killed before its first checkpoint?)"
    identity = read_identity(folder)
    if is_finished(folder, identity):
        return (
            "its training finished; train on from its weights in a new run with "
            f"init_weights={folder / LAST_CHECKPOINT}"
        )
    changed = differences(identity.settings, settings) if identity and settings else []
    if changed:
        shown = "; ".join(changed[:3]) + ("; ..." if len(changed) > 3 else "")
        return (
            f"it was started with other settings ({shown}); a run started from init_weights "
            "resumes with the same init_weights (it gives the settings)"
        )
    return None


def find_resume_checkpoint(
    log_dir: str | Path,
    task_name: str,
    exclude: str | Path | None = None,
    settings: dict[str, Any] | None = None,
) -> Path:
    """``last.ckpt`` of the newest unfinished run of ``task_name`` under ``log_dir`` started
    with ``settings`` (``None``: any), skipping the folder ``exclude`` (the run that is
    starting). Raises ``FileNotFoundError`` saying where it looked and what it passed over."""
    skip = Path(exclude).resolve() if exclude is not None else None
    runs = Path(log_dir) / task_name / "runs"
    passed = []
    for folder in reversed(task_run_folders(Path(log_dir), task_name)):
        if folder.resolve() == skip:
            continue
        reason = _why_not(folder, settings)
        if reason is None:
            return folder / LAST_CHECKPOINT
        passed.append(f"{folder.name}: {reason}")
    if not passed:
        raise FileNotFoundError(
            f"resume=true: no run of task_name={task_name!r} to resume: no {runs}/*/"
            f"{LAST_CHECKPOINT}. Start it without resume=true (init_weights=<file.ckpt> "
            "starts from a checkpoint's weights)"
        )
    raise FileNotFoundError(
        f"resume=true: no unfinished run of task_name={task_name!r} with these settings under "
        f"{runs} (passed over: {' | '.join(passed[:3])}). Start a new run without resume, or "
        "name one: resume=<run folder>"
    )


def _named_checkpoint(name: str, log_dir: Path, task_name: str, settings: dict) -> Path:
    """``last.ckpt`` of the run folder ``name`` (a path, or a folder name under
    ``<log_dir>/<task_name>/runs``), which must be resumable with ``settings``."""
    folder = Path(name)
    if not folder.is_dir():
        folder = Path(log_dir) / task_name / "runs" / name
    if not folder.is_dir():
        raise FileNotFoundError(
            f"resume={name!r}: no such run folder (give logs/<task_name>/runs/<name>, or "
            "resume=true for the newest unfinished run)"
        )
    reason = _why_not(folder, settings)
    if reason is not None:
        raise FileNotFoundError(f"resume={name!r}: cannot continue {folder}: {reason}")
    return folder / LAST_CHECKPOINT


def _drop_unused_folder(folder: Path, run_dir: Path) -> None:
    """Remove the folder Hydra made for this command when the run continues in ``run_dir``
    and nothing but Hydra's own files (``.hydra/``, its log) was written there; Hydra's log
    goes on in ``run_dir`` (:func:`_move_file_logs`)."""
    from hydra.core.hydra_config import HydraConfig

    made_by_hydra = (
        HydraConfig.initialized()
        and Path(HydraConfig.get().runtime.output_dir).resolve() == folder.resolve()
    )
    if (
        not made_by_hydra
        or not folder.is_dir()
        or any(p.name != ".hydra" and p.suffix != ".log" for p in folder.iterdir())
    ):
        return
    _move_file_logs(folder, run_dir)
    shutil.rmtree(folder, ignore_errors=True)


def _move_file_logs(folder: Path, run_dir: Path) -> None:
    """Point this process's logging file handlers that write into ``folder`` (Hydra's
    ``<job>.log``) at the file of the same name in ``run_dir``, appending, with what they
    wrote so far: the resumed run's log gets this sitting's messages."""
    known = list(logging.root.manager.loggerDict.values())  # placeholders have no handlers
    loggers = [logging.getLogger(), *(lg for lg in known if isinstance(lg, logging.Logger))]
    for handler in {h for lg in loggers for h in lg.handlers}:
        if not isinstance(handler, logging.FileHandler):
            continue
        old = Path(handler.baseFilename)
        if old.parent.resolve() != folder.resolve():
            continue
        new = run_dir / old.name
        with handler.lock:
            handler.close()
            with open(new, "a") as out:
                out.write(old.read_text() if old.is_file() else "")
            handler.baseFilename, handler.mode = str(new), "a"
            handler.stream = handler._open()


def resolve_resume(cfg: DictConfig) -> Path | None:
    """The checkpoint that training continues from: with ``sitting_steps`` the sittings
    checkpoint (:mod:`learnct.run.sittings`), else with ``resume`` the
    ``last.ckpt`` of the run it names (see the module docstring), whose folder then becomes
    this run's ``paths.output_dir``. ``None``: a fresh run."""
    from learnct.run.atomic_checkpoint import remove_stale_temporaries

    if not cfg.get("train", True):
        return None
    from learnct.run.config_checks import in_sittings
    from learnct.run.sittings import resolve_sitting

    if in_sittings(cfg):
        return resolve_sitting(cfg)
    resume = cfg.get("resume", False)
    if not resume:
        return None
    settings = run_settings(cfg)
    try:
        if resume is True:
            ckpt = find_resume_checkpoint(
                cfg.paths.log_dir, cfg.task_name, cfg.paths.output_dir, settings
            )
        else:
            ckpt = _named_checkpoint(str(resume), cfg.paths.log_dir, cfg.task_name, settings)
    except FileNotFoundError as err:
        raise ConfigError(str(err)) from err
    run_dir = ckpt.parents[1]
    fresh = Path(cfg.paths.output_dir)
    if fresh.resolve() != run_dir.resolve():
        _drop_unused_folder(fresh, run_dir)
    OmegaConf.update(cfg, "paths.output_dir", str(run_dir), merge=False)
    for stale in remove_stale_temporaries(ckpt.parent):
        print(f"resume: removed {stale}, left by a save that was interrupted")
    return ckpt
