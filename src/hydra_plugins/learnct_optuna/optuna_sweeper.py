"""``hydra/sweeper=optuna``: learnct's Hydra sweeper on Optuna's ask/tell interface.

It reads the same ``hydra.sweeper`` keys as hydra-optuna-sweeper did (configs/hparams_search):
``params`` (Hydra's ``choice``/``interval``/``range`` syntax, :mod:`learnct.run.sweep_space`),
``direction``, ``n_trials``, ``n_jobs``, ``sampler``, ``storage`` and ``study_name``, plus
``pruner`` (an Optuna pruner, :mod:`learnct.run.sweep_pruning`). Each batch asks Optuna for
``n_jobs`` trials, runs them as ordinary jobs through Hydra's launcher (one after another with
the basic launcher, in parallel with ``hydra/launcher=slurm`` or ``submitit_local``) and tells
Optuna each job's return value, FAIL for a job that failed (with its error as the trial's
``error`` attribute) or PRUNED for one its pruner stopped. The study is created or loaded
(``load_if_exists``) in ``storage``, so the same command again resumes it (with the same fixed
overrides, :mod:`learnct.run.sweep_study`; others are refused): completed and pruned
trials count toward ``n_trials``, failed ones do not (this invocation still runs at most
``n_trials`` new ones), and the sampler is reseeded (a seeded sampler would otherwise repeat the
first invocation's draws). At the end every trial of the study is printed as a table.

Module-level imports stay light (Hydra imports this module in every ``learnct-train`` call).
"""

# no `from __future__ import annotations`: Hydra execs this module outside sys.modules, where
# dataclasses cannot resolve string annotations

import sys
from dataclasses import dataclass
from typing import Any

from hydra.core.config_store import ConfigStore
from hydra.core.plugins import Plugins
from hydra.core.utils import JobReturn
from hydra.plugins.sweeper import Sweeper
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig


@dataclass
class OptunaSweeperConf:
    _target_: str = "hydra_plugins.learnct_optuna.optuna_sweeper.OptunaSweeper"
    direction: str = "minimize"  # or maximize (one objective: cfg.optimized_metric)
    study_name: str | None = None
    storage: str | None = None  # an SQLAlchemy URL (sqlite:///...); null: in memory
    n_trials: int = 20
    n_jobs: int = 1  # trials per batch, launched together
    sampler: Any = None  # an Optuna sampler (_target_); null: Optuna's default (TPE)
    pruner: Any = None  # an Optuna pruner (_target_); null: no pruning
    params: dict[str, str] | None = None  # parameter -> search space (override grammar)
    trial: int | None = None  # set by the sweeper in each job: the trial it evaluates


ConfigStore.instance().store(
    group="hydra/sweeper", name="optuna", node=OptunaSweeperConf, provider="learnct"
)


class OptunaSweeper(Sweeper):
    """See the module docstring."""

    def __init__(self, **conf: Any) -> None:
        self.conf = OptunaSweeperConf(**conf)

    def setup(
        self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig
    ) -> None:
        self.hydra_context = hydra_context
        self.config = config
        self.launcher = Plugins.instance().instantiate_launcher(
            hydra_context=hydra_context, task_function=task_function, config=config
        )

    def sweep(self, arguments: list[str]) -> None:
        try:
            study, space, fixed = self._study(arguments)
        except ValueError as err:  # a user mistake in the sweep's settings: one line
            print(f"error: {err}", file=sys.stderr, flush=True)
            sys.exit(2)
        self._run_trials(study, space, fixed)

    def _study(self, arguments: list[str]) -> tuple[Any, dict[str, Any], list[str]]:
        """The study (created or loaded), its search space and fixed overrides; ValueError
        for settings that cannot run (a pruner without storage, another study's overrides)."""
        import optuna

        from learnct.run.sweep_space import search_space
        from learnct.run.sweep_study import check_fixed_overrides

        conf = self.conf
        if conf.pruner is not None and conf.storage is None:
            raise ValueError(
                "hydra.sweeper.pruner needs hydra.sweeper.storage (the jobs report their "
                "validation curves to the study there): set an sqlite:/// or other RDB URL"
            )
        if conf.n_jobs < 1:
            raise ValueError(f"hydra.sweeper.n_jobs must be at least 1, got {conf.n_jobs}")
        space, fixed = search_space(conf.params or {}, arguments)
        study = optuna.create_study(
            study_name=conf.study_name,
            storage=conf.storage,
            sampler=conf.sampler,
            pruner=conf.pruner or optuna.pruners.NopPruner(),
            direction=conf.direction,
            load_if_exists=True,
        )
        check_fixed_overrides(study, fixed)  # one objective per study
        return study, space, fixed

    def _run_trials(self, study: Any, space: dict[str, Any], fixed: list[str]) -> None:
        """Ask, launch and tell batches of trials until this invocation's budget is spent or
        the study has ``n_trials`` finished ones; then print every trial."""
        import optuna

        from learnct.run.sweep_table import trials_table

        conf = self.conf
        if study.get_trials(deepcopy=False):  # resumed: a seeded sampler would repeat its
            study.sampler.reseed_rng()  # first trials' draws
        finished = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)
        budget = conf.n_trials  # this invocation's new trials
        job = 0
        while budget > 0:
            left = conf.n_trials - len(study.get_trials(deepcopy=False, states=finished))
            if left <= 0:
                break
            trials = [study.ask(space) for _ in range(min(conf.n_jobs, budget, left))]
            batch = [
                [
                    *fixed,
                    *(f"{k}={v}" for k, v in t.params.items()),
                    f"hydra.sweeper.trial={t.number}",
                ]
                for t in trials
            ]
            try:
                self.validate_batch_is_legal(batch)  # a bad override fails here, at once
            except Exception:
                for t in trials:
                    study.tell(t, state=optuna.trial.TrialState.FAIL)
                raise
            returns = self.launcher.launch(batch, initial_job_idx=job)
            for index, (trial, ret) in enumerate(zip(trials, returns, strict=True)):
                _tell(study, trial, ret, self.config.hydra.sweep.dir, job + index)
            job += len(trials)
            budget -= len(trials)
        print(trials_table(study), flush=True)


def _tell(study: Any, trial: Any, ret: JobReturn, sweep_dir: str, job: int) -> None:
    """Record one job's outcome in its trial (run folder, error) and finish the trial."""
    import optuna

    from learnct.run.sweep_failures import read_failures
    from learnct.run.sweep_pruning import PRUNED_AT_STEP
    from learnct.run.sweep_table import RUN_DIR

    if ret.hydra_cfg is not None:
        trial.set_user_attr(RUN_DIR, ret.hydra_cfg.hydra.runtime.output_dir)
    try:
        value, error = ret.return_value, None
    except Exception as err:  # the job raised past learnct's own handling
        value, error = None, f"{type(err).__name__}: {err}"
    if value is None and error is None:  # recorded by the job (run/cli.py)
        records = [r for r in read_failures(sweep_dir) if r["job"] == job]
        error = records[-1]["error"] if records else "the job returned no objective"
    if error is not None:
        trial.set_user_attr("error", error[:2000])
        print(f"trial {trial.number} failed: {error[:300]}", file=sys.stderr, flush=True)
        study.tell(trial, state=optuna.trial.TrialState.FAIL)
    elif PRUNED_AT_STEP in trial.storage.get_trial_user_attrs(trial._trial_id):  # the job's
        study.tell(trial, state=optuna.trial.TrialState.PRUNED)
    else:
        study.tell(trial, float(value))


__all__ = ["OptunaSweeper", "OptunaSweeperConf"]
