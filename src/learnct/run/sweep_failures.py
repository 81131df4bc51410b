"""Failed sweep jobs are recorded, not fatal.

Hydra's multirun stops at the first job that raises. ``learnct-train``'s entry point instead
catches the error of a sweep job, appends it to ``<sweep dir>/failures.jsonl`` (job number,
overrides, output folder, resolved config, error and traceback) and returns ``None``, which the
Optuna sweeper records as a FAILED trial (the basic sweeper ignores return values); the other
jobs go on. :class:`SweepFailureSummary` (a Hydra callback in ``configs/hydra/default.yaml``)
prints how many jobs failed when the sweep ends.
"""

from __future__ import annotations

import datetime
import json
import sys
import traceback
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf

__all__ = ["FAILURES_FILE", "SweepFailureSummary", "read_failures", "record_failure"]

FAILURES_FILE = "failures.jsonl"


def record_failure(sweep_dir: str | Path, cfg: DictConfig, error: BaseException) -> Path:
    """Append one failed job (from inside the job: reads ``HydraConfig``) to the sweep's
    ``failures.jsonl``; returns the file."""
    from hydra.core.hydra_config import HydraConfig

    hydra_cfg = HydraConfig.get()
    try:
        config = OmegaConf.to_container(cfg, resolve=True)
    except Exception:  # an unresolvable config is itself a possible failure
        config = OmegaConf.to_container(cfg, resolve=False)
    record = {
        "time": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "job": hydra_cfg.job.num,
        "overrides": list(hydra_cfg.overrides.task),
        "output_dir": hydra_cfg.runtime.output_dir,
        "error": f"{type(error).__name__}: {error}",
        "traceback": "".join(traceback.format_exception(error)),
        "config": config,
    }
    path = Path(sweep_dir) / FAILURES_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as fh:
        fh.write(json.dumps(record, default=str) + "\n")
    return path


def read_failures(sweep_dir: str | Path) -> list[dict[str, Any]]:
    """The records of ``failures.jsonl`` in ``sweep_dir`` (empty when no job failed)."""
    path = Path(sweep_dir) / FAILURES_FILE
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


class SweepFailureSummary(Callback):
    """Hydra callback: at the end of a multirun, print the failed jobs and where they are
    recorded."""

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        sweep_dir = Path(config.hydra.sweep.dir)
        failures = read_failures(sweep_dir)
        if not failures:
            return
        lines = [f"{len(failures)} sweep job(s) failed (see {sweep_dir / FAILURES_FILE}):"]
        for f in failures:
            lines.append(f"  job {f['job']} {' '.join(f['overrides'])}: {f['error'][:300]}")
        print("\n".join(lines), file=sys.stderr, flush=True)
