"""A sweep's study holds one objective: the fixed overrides that define it are recorded in the
study (user attribute ``fixed_overrides``) and a later sweep into the same study must give the
same ones, or it would add trials of another objective (``data=real_ct`` after an ellipse
sweep, say) to the study and read the old trials' best as its own. Overrides of how trials run
(:data:`RUN_ONLY`, :data:`~learnct.run.identity.EXECUTION_KEYS`: the machine, the loggers, the
paths) are not compared, so machines that share a study may differ in them."""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from learnct.run.identity import EXECUTION_KEYS

__all__ = ["FIXED_OVERRIDES", "RUN_ONLY", "check_fixed_overrides", "objective_overrides"]

#: the study's user attribute holding the objective's overrides it was started with
FIXED_OVERRIDES = "fixed_overrides"
#: keys of overrides that change how trials run, not what they measure (each with its subkeys)
RUN_ONLY = (
    *EXECUTION_KEYS,
    "paths",
    "logger",
    "callbacks",
    "tags",
    "extras",
    "trainer.accelerator",
    "trainer.devices",
    "trainer.strategy",
    "trainer.num_nodes",
    "trainer.precision",
)


def _run_only(key: str) -> bool:
    return any(key == k or key.startswith(f"{k}.") for k in RUN_ONLY)


def objective_overrides(fixed: Iterable[str]) -> list[str]:
    """The fixed overrides that define a trial's objective, as sorted ``key=value`` strings
    with the values parsed (``02`` and ``2`` are one value): all but :data:`RUN_ONLY`."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    out = []
    for override in OverridesParser.create().parse_overrides(list(fixed)):
        key = override.key_or_group
        if _run_only(key):
            continue
        value = None if override.is_delete() else override.value()
        out.append(f"{key}={json.dumps(value, sort_keys=True, default=str)}")
    return sorted(out)


def check_fixed_overrides(study: Any, fixed: Iterable[str]) -> None:
    """Record ``fixed``'s objective overrides in a study that has no finished (complete or
    pruned) trial yet; raise ``ValueError`` naming the differences and the fix when a study
    with finished trials was started with others."""
    import optuna

    wanted = objective_overrides(fixed)
    recorded = study.user_attrs.get(FIXED_OVERRIDES)
    done = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)
    if recorded is None or not study.get_trials(deepcopy=False, states=done):
        study.set_user_attr(FIXED_OVERRIDES, wanted)  # new, or nothing measured yet
        return
    if list(recorded) == wanted:
        return
    only_study = sorted(set(recorded) - set(wanted))
    only_here = sorted(set(wanted) - set(recorded))
    raise ValueError(
        f"the study {study.study_name!r} was started with other fixed overrides (only in the "
        f"study: {' '.join(only_study) or '-'}; only in this command: "
        f"{' '.join(only_here) or '-'}): its trials measure another objective. Give this "
        "search its own study (hydra.sweeper.study_name=<new name>), or repeat the study's "
        "overrides to add trials to it"
    )
