"""A sweep's study holds one objective: the fixed overrides it was started with are recorded in
the study (user attribute ``fixed_overrides``) and a later sweep into the same study must
give the same ones, or it would add trials of another objective (``data=real_ct`` after an
ellipse sweep, say) to the study and read the old trials' best as its own."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

__all__ = ["FIXED_OVERRIDES", "check_fixed_overrides", "objective_overrides"]

#: the study's user attribute holding the sorted fixed overrides it was started with
FIXED_OVERRIDES = "fixed_overrides"


def objective_overrides(fixed: Iterable[str]) -> list[str]:
    """The fixed overrides that define a trial's objective, sorted: all but Hydra's own
    (``hydra.*``: the sweeper's budget, the launcher), which change how trials run, not what
    they measure."""
    return sorted(o for o in fixed if not o.lstrip("+~").startswith("hydra."))


def check_fixed_overrides(study: Any, fixed: Iterable[str]) -> None:
    """Record ``fixed``'s objective overrides in a study that has none recorded (new, or
    started before they were recorded); raise ``ValueError`` naming the differences and the
    fix when the study was started with others."""
    wanted = objective_overrides(fixed)
    recorded = study.user_attrs.get(FIXED_OVERRIDES)
    if recorded is None:
        study.set_user_attr(FIXED_OVERRIDES, wanted)
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
