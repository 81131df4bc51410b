"""``resume=true``: find the checkpoint that continues the most recent run of a task.

A run of task ``<task_name>`` lives in ``<log_dir>/<task_name>/runs/<date>/`` and its
``ModelCheckpoint`` keeps ``checkpoints/last.ckpt`` (written atomically). Re-typing the
command of a killed run with ``resume=true`` continues the newest run folder that has one.
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["LAST_CHECKPOINT", "find_resume_checkpoint"]

LAST_CHECKPOINT = "checkpoints/last.ckpt"


def find_resume_checkpoint(
    log_dir: str | Path, task_name: str, exclude: str | Path | None = None
) -> Path:
    """``last.ckpt`` of the newest run of ``task_name`` under ``log_dir`` (run folders are
    named by their start time, so the name orders them), skipping the folder ``exclude`` (the
    run that is starting). Raises ``FileNotFoundError`` saying where it looked."""
    runs = Path(log_dir) / task_name / "runs"
    skip = Path(exclude).resolve() if exclude is not None else None
    candidates = sorted(
        (p for p in runs.glob(f"*/{LAST_CHECKPOINT}") if p.parents[1].resolve() != skip),
        key=lambda p: p.parents[1].name,
    )
    if not candidates:
        raise FileNotFoundError(
            f"resume=true: no run of task_name={task_name!r} to resume: no {runs}/*/"
            f"{LAST_CHECKPOINT}. Start it without resume=true, or pass ckpt_path=<file.ckpt>"
        )
    return candidates[-1]
