"""Sittings: a training schedule run in parts, each continuing exactly where the last stopped.

``sitting_steps=N`` trains ``N`` more optimiser steps (at most to ``trainer.max_steps``;
``sitting_minutes=M``: or until ``M`` minutes of training have passed, at the next step; or
at the step a Ctrl-C or ``SIGTERM`` arrives in), then saves a resumable checkpoint to
``sitting_dir`` (default
``experiments/<setup>/sittings/<task_name>/last.ckpt``, kept in the repository between
sittings) and stops. The same command again finds that checkpoint and continues from it: the
weights, the optimiser's moments, the learning-rate schedule (its ``last_epoch``: the cosine
keeps its ``T_max = trainer.max_steps``), the step count and loop progress, and the data
stream (the ``CTDataModule`` state: the next phantom index and the noise counter), so ``k``
sittings end where one uninterrupted run of ``max_steps`` ends (a true resume, not a warm
restart). The sitting that reaches ``max_steps`` saves the final weights (the schedule's
model, as the papers report it) as its run folder's ``checkpoints/final.ckpt`` and tests that
file; earlier sittings do not test. ``init_weights`` starts the
first sitting of a fine-tune from other weights; later sittings, the same command, continue
the sittings checkpoint (which then holds the weights) and do not load it again.
``sitting_save_minutes=S`` saves the same checkpoint every ``S`` minutes on the way too, so
a sitting killed without warning loses at most ``S`` minutes.

Beside it, ``curve.csv`` keeps the schedule's validation curve (step, ``val/psnr``,
``val/ssim``, the steps skipped as non-finite so far, run id: :func:`update_sitting_curve`),
rewritten at each save and each validation from the run folder's CSV metrics and the points of the
earlier sittings, whose run folders may be gone (another machine or session): ``make report``
draws the whole schedule from it.

The checkpoint keeps only what resuming needs (:data:`RESUME_KEYS`, the DataModule's and the
precision plugin's state) and of the callbacks only the non-finite guard's count of skipped
steps (:data:`CARRIED_CALLBACKS`; best-checkpoint bookkeeping starts afresh each sitting); no
DataModule hyper-parameters. A sitting continues only a checkpoint
whose settings (:data:`~learnct.run.identity.IDENTITY_KEYS`, except the
:data:`~learnct.run.identity.EXECUTION_KEYS`) equal the command's, under the run id it carries.
"""

from __future__ import annotations

import csv
import os
import shutil
import signal
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, NamedTuple

import lightning as L
import torch
from omegaconf import DictConfig

from learnct.methods.checkpoints import load_checkpoint_file, run_stamp, steps_before
from learnct.run.atomic_checkpoint import atomic_torch_save
from learnct.run.atomic_files import TEMP_SUFFIX, atomic_open
from learnct.run.config_checks import ConfigError, planned_steps
from learnct.run.identity import RunIdentity, differences, new_identity, run_settings
from learnct.run.nonfinite import NONFINITE_METRIC, NonFiniteGuard
from learnct.run.results import VALIDATION_COLUMNS, read_metric_curves, validation_points

__all__ = [
    "CARRIED_CALLBACKS",
    "RESUME_KEYS",
    "SittingEnd",
    "SittingProgress",
    "read_sitting_curve",
    "resolve_sitting",
    "sitting_checkpoint",
    "sitting_identity",
    "sitting_progress",
    "strip_for_resume",
    "update_sitting_curve",
]

SITTING_CHECKPOINT = "last.ckpt"
SITTING_CURVE = "curve.csv"
#: the columns of a sitting curve: the step, PSNR (dB), SSIM, the training steps skipped as
#: non-finite up to that step (the last count logged before it) and the schedule's run id
CURVE_FIELDS = ("step", *VALIDATION_COLUMNS, "nonfinite_steps", "run_id")
#: The callbacks whose state a sittings checkpoint carries (by their checkpoint key): the
#: guard's count of skipped steps, so that it counts over the whole schedule.
CARRIED_CALLBACKS = (NonFiniteGuard.__qualname__,)
#: The entries of a Lightning checkpoint that a true resume reads: weights, optimiser and
#: scheduler states, loop progress and step count, learnct's method/geometry record and run
#: stamp, and the method's hyper-parameters (checked against the command's architecture).
RESUME_KEYS = (
    "state_dict",
    "optimizer_states",
    "lr_schedulers",
    "loops",
    "epoch",
    "global_step",
    "pytorch-lightning_version",
    "hyper_parameters",
    "hparams_name",
    "learnct",
    "learnct_run",
)


def sitting_checkpoint(cfg: DictConfig) -> Path:
    """Where the sittings of this command keep their checkpoint: ``<sitting_dir>/last.ckpt``."""
    return Path(cfg.sitting_dir) / SITTING_CHECKPOINT


def strip_for_resume(checkpoint: dict[str, Any], state_keys: tuple[str, ...]) -> dict[str, Any]:
    """``checkpoint`` with only :data:`RESUME_KEYS`, ``state_keys`` (the DataModule's and
    precision plugin's entries, named by their class) and the :data:`CARRIED_CALLBACKS`'
    states, tensors detached on the CPU."""
    keep = set(RESUME_KEYS) | set(state_keys)
    slim = {k: v for k, v in checkpoint.items() if k in keep}
    carried = {
        k: v for k, v in (checkpoint.get("callbacks") or {}).items() if k in CARRIED_CALLBACKS
    }
    if carried:
        slim["callbacks"] = carried
    return _to_cpu(slim)


def _to_cpu(value: Any) -> Any:
    if isinstance(value, torch.Tensor):
        return value.detach().cpu()
    if isinstance(value, dict):
        return {k: _to_cpu(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(_to_cpu(v) for v in value)
    return value


class SittingProgress(NamedTuple):
    """Where the schedule of a sittings checkpoint stands."""

    run_id: str
    settings: dict[str, Any]  # what the schedule trains (learnct.run.identity.run_settings)
    method: str  # the method's class name
    step: int  # optimiser steps done
    planned: int | None  # the schedule's trainer.max_steps (None: unbounded)
    steps_before: int | None = 0  # those of the weights it started from (None: not recorded)

    @property
    def ended(self) -> bool:
        return self.planned is not None and self.step >= self.planned


def sitting_progress(folder: Path) -> SittingProgress | None:
    """The progress of the sittings checkpoint ``folder/last.ckpt``; ``None`` when there is
    none or it carries no run stamp. Raises ``ValueError`` naming a file that cannot be read
    (truncated, a merge conflict, a Git LFS pointer)."""
    path = Path(folder) / SITTING_CHECKPOINT
    if not path.is_file():
        return None
    try:
        state = load_checkpoint_file(path, mmap=True)
    except Exception as err:  # torch.load's errors differ by how the file is broken
        raise ValueError(
            f"sittings: {path} cannot be read ({type(err).__name__}: {err}); restore it "
            f"(git checkout -- {path}) or remove it to start that schedule anew"
        ) from err
    stamp = run_stamp(state)
    if stamp is None:
        return None
    settings = dict(stamp.get("settings") or {})
    return SittingProgress(
        run_id=str(stamp["id"]),
        settings=settings,
        method=str((state.get("learnct") or {}).get("method", "?")),
        step=int(state.get("global_step", 0)),
        planned=planned_steps(settings.get("trainer.max_steps")),
        steps_before=steps_before(state),
    )


def resolve_sitting(cfg: DictConfig) -> Path | None:
    """The sittings checkpoint this command continues (``None``: the first sitting). Refuses a
    checkpoint of other settings, or one whose schedule has already ended."""
    path = sitting_checkpoint(cfg)
    if not path.is_file():
        return None
    try:
        progress = sitting_progress(path.parent)
    except ValueError as err:
        raise ConfigError(str(err)) from err
    if progress is None:
        raise ConfigError(f"sittings: {path} carries no run stamp: it is not a sitting")
    changed = differences(progress.settings, run_settings(cfg))
    if changed:
        shown = "; ".join(changed[:3]) + ("; ..." if len(changed) > 3 else "")
        raise ConfigError(
            f"sittings: {path} was trained with other settings ({shown}): run the "
            f"command of its first sitting, or move the file away to start a new schedule"
        )
    if progress.ended:  # its planned end is this command's (the same settings)
        raise ConfigError(
            f"sittings: the schedule of {path} has ended (step {progress.step} of "
            f"{progress.planned}); "
            "test it with make eval EXP=<this experiment> CKPT=<that file>, or move it away to "
            "start again"
        )
    return path


def sitting_identity(cfg: DictConfig, checkpoint: Path | None) -> RunIdentity:
    """A new identity for this sitting's run folder, under the run id of ``checkpoint`` (the
    schedule's first sitting) when it continues one."""
    identity = new_identity(cfg)
    progress = None if checkpoint is None else sitting_progress(Path(checkpoint).parent)
    if progress is not None:
        identity["id"] = progress.run_id
    return identity


class SittingEnd(L.Callback):
    """Stops training ``steps`` optimiser steps after it started, or once ``minutes`` of
    training (from the start of training: loading and building before it are not counted)
    have passed (at the step that passes them; ``None``: no such bound), or at
    ``trainer.max_steps``, and saves the resumable checkpoint (:func:`strip_for_resume`) to
    ``target``, atomically, with the schedule's curve beside it (:func:`update_sitting_curve`).

    ``save_minutes``: it also saves them every that many minutes of training and goes on, so a
    sitting killed without warning (a lost machine or session, out of memory) loses at most
    that much. An interrupt (Ctrl-C, ``SIGINT``) or ``SIGTERM`` (``kill``, a batch system's or
    lease's end) ends the sitting at the end of the step it arrives in, saved the same way; a
    second one aborts without saving. The decisions are rank 0's (broadcast under DDP), so
    every rank saves and stops at the same step."""

    def __init__(
        self,
        steps: int | None,
        target: str | Path,
        minutes: float | None = None,
        save_minutes: float | None = None,
    ) -> None:
        self.steps = None if steps is None else int(steps)
        self.seconds = None if minutes is None else 60.0 * float(minutes)
        self.save_seconds = None if save_minutes is None else 60.0 * float(save_minutes)
        self.target = Path(target)
        self.stop_at: int | None = None
        self.started: float | None = None
        self.saved_at: float | None = None  # when the last save of this sitting began
        self.run_id: str | None = None  # the schedule's, once a checkpoint is saved
        self.signal: str | None = None  # the name of a stop signal received
        self._handlers: dict[int, Any] = {}
        self._pid = os.getpid()

    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        """Clear what a save killed half-way left in the sittings folder."""
        if trainer.is_global_zero:
            _remove_save_leftovers(self.target.parent)

    def on_sanity_check_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        """Catch the stop signals before any loader starts its workers (forked workers inherit
        the handler, which ignores the signal there: Ctrl-C reaches the whole process group),
        and after Lightning set its own (its SIGTERM handler would end the run unsaved)."""
        self._catch_stop_signals()

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.started = self.saved_at = time.monotonic()
        self.stop_at = None if self.steps is None else trainer.global_step + self.steps
        planned = planned_steps(trainer.max_steps)
        if planned is not None:
            self.stop_at = min(self.stop_at or planned, planned)
        self._catch_stop_signals()  # without a sanity check, here

    def _catch_stop_signals(self) -> None:
        """Route SIGINT and SIGTERM to :meth:`_on_signal` (main thread only: Python sets
        handlers there); :meth:`_release_signals` puts the previous handlers back."""
        if self._handlers or threading.current_thread() is not threading.main_thread():
            return
        self._pid = os.getpid()
        for signum in (signal.SIGINT, signal.SIGTERM):
            self._handlers[signum] = signal.signal(signum, self._on_signal)

    def _release_signals(self) -> None:
        """Put back the handlers replaced, where this callback's are still set (after
        Lightning's teardown, which restores its own originals, they are not)."""
        for signum, handler in self._handlers.items():
            if signal.getsignal(signum) == self._on_signal:
                signal.signal(signum, handler)
        self._handlers = {}

    def _on_signal(self, signum: int, frame: Any) -> None:
        if os.getpid() != self._pid:  # a forked loader worker: the main process decides
            return
        name = signal.Signals(signum).name
        if self.signal is not None:  # the second: abort now, as without this callback
            self._release_signals()
            raise KeyboardInterrupt(f"{name} again: aborted without saving the sitting")
        self.signal = name
        # os.write, not print: the signal may arrive while the main thread is printing
        os.write(
            2,
            f"\nsitting: {name} received: saving and stopping at the end of this step "
            "(send it again to abort without saving)\n".encode(),
        )

    def on_train_batch_end(self, trainer: L.Trainer, *args: Any) -> None:
        now = time.monotonic()
        by_steps = self.stop_at is not None and trainer.global_step >= self.stop_at
        elapsed = 0.0 if self.started is None else now - self.started
        stop = by_steps or self.signal is not None
        stop = stop or (self.seconds is not None and elapsed >= self.seconds)
        since_save = 0.0 if self.saved_at is None else now - self.saved_at
        save = stop or (self.save_seconds is not None and since_save >= self.save_seconds)
        if trainer.world_size > 1:  # rank 0's clock and signals decide for every rank
            stop, save = trainer.strategy.broadcast((stop, save), src=0)
        if not save:
            return
        self.saved_at = now
        self.save(trainer)
        if stop:
            trainer.should_stop = True
        else:  # a save on the way: the curve so far beside it (the end's is on_train_end's)
            self._write_curve(trainer)

    def save(self, trainer: L.Trainer) -> None:
        """Write the checkpoint of ``trainer`` now to ``target`` (rank 0 writes)."""
        self.target.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=self.target.parent, prefix=".sitting-") as tmp:
            full_path = Path(tmp) / "full.ckpt"
            trainer.save_checkpoint(full_path, weights_only=False)  # every rank; rank 0 writes
            if not trainer.is_global_zero:
                return
            full = torch.load(full_path, map_location="cpu", weights_only=True)
            keys = tuple(
                type(obj).__qualname__ for obj in (trainer.datamodule, trainer.precision_plugin)
            )
            atomic_torch_save(strip_for_resume(full, keys), self.target)
            stamp = run_stamp(full)
            self.run_id = None if stamp is None else str(stamp["id"])
        print(f"sitting: step {trainer.global_step} saved to {self.target}", flush=True)

    def _write_curve(self, trainer: L.Trainer) -> None:
        """The sitting's validation points so far into ``curve.csv`` beside the checkpoint."""
        if self.run_id is None or not trainer.is_global_zero:
            return
        for logger in trainer.loggers:  # the CSV logger's buffered rows, on disk
            logger.save()
        update_sitting_curve(self.target.parent, Path(trainer.default_root_dir), self.run_id)

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        """Each validation's point into ``curve.csv`` at once (once a checkpoint was saved):
        a validation comes after the save of its step, so a sitting killed before its next
        save keeps the point, which its continuation does not measure again."""
        if not trainer.sanity_checking:
            self._write_curve(trainer)

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        """After the validation that a stop brings (Lightning validates when training is
        stopped): the sitting's curve into ``curve.csv`` beside the checkpoint; the signal
        handlers put back (before Lightning's teardown restores its own)."""
        self._release_signals()
        self._write_curve(trainer)

    def on_fit_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._release_signals()  # a fit that trained nothing has no on_train_end

    def on_exception(
        self, trainer: L.Trainer, pl_module: L.LightningModule, exception: BaseException
    ) -> None:
        self._release_signals()


def _remove_save_leftovers(folder: Path) -> None:
    """Delete what a save killed half-way left in the sittings folder ``folder``: its
    temporary folder (``.sitting-*``) and atomic writes' temporary files (``.*.tmp``)."""
    folder = Path(folder)
    for leftover in folder.glob(".sitting-*"):
        shutil.rmtree(leftover, ignore_errors=True)
    for leftover in folder.glob(f".*{TEMP_SUFFIX}"):
        leftover.unlink(missing_ok=True)


def read_sitting_curve(folder: Path) -> list[dict[str, str]]:
    """The points of ``folder/curve.csv`` (:data:`CURVE_FIELDS`); none if it is missing."""
    try:
        with open(Path(folder) / SITTING_CURVE, newline="") as fh:
            return list(csv.DictReader(fh))
    except OSError:
        return []


def update_sitting_curve(folder: Path, run_folder: Path, run_id: str) -> Path:
    """Rewrite ``folder/curve.csv``: the earlier sittings' points of schedule ``run_id`` (a
    file of another schedule is replaced) and the validation points of ``run_folder`` (which
    win a step they share), each with the skipped-step count last logged at or before it."""
    points = {int(p["step"]): p for p in read_sitting_curve(folder) if p.get("run_id") == run_id}
    skips = read_metric_curves(run_folder, [NONFINITE_METRIC]).get(NONFINITE_METRIC, [])
    for step, values in validation_points(run_folder).items():
        point = points.setdefault(step, {"step": str(step), "run_id": run_id})
        point.update(values)
        logged = [count for at, count in skips if at <= step]
        if logged:
            point["nonfinite_steps"] = str(int(logged[-1]))
    path = Path(folder) / SITTING_CURVE
    with atomic_open(path, "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=CURVE_FIELDS, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(points[s] for s in sorted(points))
    return path
