"""Optuna sweep databases -> ``SweepRecord``: trials, best value and Optuna's own figures.

``make sweep`` keeps each study in ``logs/<task>/optuna_<study>.db`` (SQLite). The files are
opened read-only, so building the dashboard never changes a study, even one being written.
Parameter importances use Optuna's default evaluator (PED-ANOVA, which needs no scikit-learn).
"""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path
from typing import Any

__all__ = ["SweepRecord", "collect_sweeps", "read_sweeps"]


@dataclasses.dataclass
class SweepRecord:
    """One Optuna study (JSON-serialisable); ``figures`` holds plotly figure dicts."""

    id: str
    storage: str  # the database file, relative to the logs folder
    study: str
    direction: str
    n_trials: int
    n_complete: int
    best_value: float | None
    best_params: dict[str, Any]
    trials: list[dict[str, Any]]
    figures: dict[str, dict[str, Any]]
    problems: list[str]


def collect_sweeps(log_dir: Path) -> tuple[list[SweepRecord], list[str]]:
    """Every study in every ``*.db`` under ``log_dir``, and the databases that could not be read."""
    sweeps: list[SweepRecord] = []
    problems: list[str] = []
    for path in sorted(log_dir.rglob("*.db")):
        rel = path.relative_to(log_dir).as_posix()
        try:
            sweeps.extend(read_sweeps(path, rel))
        except Exception as err:  # not SQLite, not an Optuna schema, locked, ...
            text = str(err).strip().splitlines()
            reason = text[0][:200] if text else type(err).__name__
            problems.append(f"{rel}: not a readable Optuna study database ({reason})")
    return sweeps, problems


def read_sweeps(path: Path, rel: str) -> list[SweepRecord]:
    """The studies in one SQLite database; raises if it is not a readable Optuna database."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    url = f"sqlite:///file:{path.resolve()}?mode=ro&uri=true"
    storage = optuna.storages.RDBStorage(url)
    records = []
    for summary in optuna.get_all_study_summaries(storage=storage):
        study = optuna.load_study(study_name=summary.study_name, storage=storage)
        records.append(_record(study, rel))
    return records


def _record(study: Any, rel: str) -> SweepRecord:
    import optuna

    complete = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    direction = study.direction.name.lower()
    best = None
    if complete:
        pick = max if direction == "maximize" else min
        best = pick(complete, key=lambda t: t.value)
    trials = [
        {
            "number": t.number,
            "state": t.state.name.lower(),
            "value": _finite(t.value),
            "params": dict(t.params),  # made JSON-safe with all the data (page.py)
            "start": t.datetime_start.isoformat(sep=" ", timespec="seconds")
            if t.datetime_start
            else None,
        }
        for t in study.trials
    ]
    problems: list[str] = []
    figures = _figures(study, len(complete), problems)
    return SweepRecord(
        id=f"{rel}:{study.study_name}",
        storage=rel,
        study=study.study_name,
        direction=direction,
        n_trials=len(study.trials),
        n_complete=len(complete),
        best_value=_finite(best.value) if best else None,
        best_params=dict(best.params) if best else {},
        trials=trials,
        figures=figures,
        problems=problems,
    )


def _figures(study: Any, n_complete: int, problems: list[str]) -> dict[str, dict[str, Any]]:
    """Optuna's plotly figures: objective against trial, importances, parallel coordinates."""
    from optuna import visualization

    makers = {
        "history": lambda: visualization.plot_optimization_history(study),
        "importances": lambda: visualization.plot_param_importances(study),
        "parallel": lambda: visualization.plot_parallel_coordinate(study),
    }
    needs = {"history": 1, "importances": 2, "parallel": 1}
    figures = {}
    for name, make in makers.items():
        if n_complete < needs[name]:
            problems.append(f"{name}: needs at least {needs[name]} completed trials")
            continue
        try:
            figure = make()
        except Exception as err:  # an Optuna/plotly limitation: report it, keep the rest
            problems.append(f"{name}: {type(err).__name__}: {str(err).splitlines()[0][:200]}")
            continue
        figure.update_layout(margin={"l": 60, "r": 30, "t": 50, "b": 80})  # size: the page's
        figures[name] = json.loads(figure.to_json())
    return figures


def _finite(value: Any) -> float | None:
    return float(value) if value is not None and math.isfinite(value) else None
