"""The table a sweep prints when it ends: every trial of the study (also those of earlier,
resumed invocations) with its number, state, value, parameters and run folder."""

from __future__ import annotations

import os
from typing import Any

__all__ = ["RUN_DIR", "trials_table"]

#: the trial's user attribute holding its run folder (set by the sweeper)
RUN_DIR = "run_dir"


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def _folder(path: str | None) -> str:
    """The run folder, relative to the working directory when it lies below it."""
    if not path:
        return "-"
    relative = os.path.relpath(path)
    return path if relative.startswith("..") else relative


def trials_table(study: Any) -> str:
    """A text table of ``study``'s trials in order of number; the best one marked ``*``."""
    trials = study.get_trials(deepcopy=False)
    try:
        best = study.best_trial.number
    except ValueError:  # no completed trial
        best = None
    names = sorted({name for t in trials for name in t.params})
    header = ["trial", "state", "value", *names, "run folder"]
    rows = [
        [
            f"{t.number}{'*' if t.number == best else ''}",
            t.state.name.lower(),
            _cell(t.value),
            *(_cell(t.params.get(name)) for name in names),
            _folder(t.user_attrs.get(RUN_DIR)),
        ]
        for t in trials
    ]
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    lines = [
        "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip()
        for row in [header, *rows]
    ]
    title = f"study {study.study_name}: {len(trials)} trials ({study.direction.name.lower()}"
    title += (
        f"; * best: trial {best}, value {_cell(study.best_value)})" if best is not None else ")"
    )
    return "\n".join([title, *lines])
