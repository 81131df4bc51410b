"""``make sweep``: a Hydra multirun with learnct's Optuna sweeper (src/hydra_plugins) whose study
persists in SQLite and resumes; the objective is the validation metric of each job; trials are
pruned from their validation curves; the sweep ends with a table of all trials."""

from __future__ import annotations

import subprocess
from pathlib import Path

import optuna
import pytest
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

from conftest import CONFIG_DIR, TINY_LGD
from learnct.run.sweep_space import search_space
from learnct.run.sweep_study import check_fixed_overrides
from learnct.run.sweep_table import RUN_DIR, trials_table

SEARCHES = sorted(p.stem for p in (CONFIG_DIR / "hparams_search").glob("*.yaml"))
TrialState = optuna.trial.TrialState


def _sweep(run_cli, log_dir: Path, trials: int, *extra: str) -> subprocess.CompletedProcess:
    return run_cli(
        "train",
        [
            "-m",
            "experiment=fbp",
            "hparams_search=fbp_filter",
            f"hydra.sweeper.n_trials={trials}",
            "data.val_size=2",
            "logger=csv",
            "callbacks=none",
            f"paths.log_dir={log_dir}",
            *extra,
        ],
    )


def test_search_spaces_ship():
    assert {"tv_lambda", "lpd", "fbp_filter"} <= set(SEARCHES)


def test_search_space_from_override_grammar():
    space, fixed = search_space(
        {
            "model.filter": "choice(ram-lak, hann)",
            "model.lam": "tag(log, interval(0.2, 200.0))",
            "model.frequency_scaling": "interval(0.3, 1.0)",
            "model.iterations": "range(100, 301, 100)",
            "model.hidden": "tag(int, interval(8, 32))",
        },
        ["experiment=tv", "model.lam=1,2", "+tags=[a]"],
    )
    assert fixed == ["experiment=tv", "+tags=[a]"]
    assert space == {
        "model.filter": CategoricalDistribution(["ram-lak", "hann"]),
        "model.lam": CategoricalDistribution([1, 2]),  # the command line wins
        "model.frequency_scaling": FloatDistribution(0.3, 1.0),
        "model.iterations": IntDistribution(100, 300, step=100),
        "model.hidden": IntDistribution(8, 32),
    }
    log_space, _ = search_space({"x": "tag(log, interval(1e-4, 1e-2))"}, [])
    assert log_space["x"].log
    with pytest.raises(ValueError, match="x: range\\(\\) takes no log tag"):
        search_space({"x": "tag(log, range(1, 5))"}, [])


def test_a_study_keeps_the_overrides_of_its_objective_not_of_its_machines():
    study = optuna.create_study(direction="maximize")
    check_fixed_overrides(study, ["experiment=tv", "trainer.devices=2", "logger=csv"])
    check_fixed_overrides(study, ["experiment=lpd"])  # nothing measured yet: re-recorded
    assert study.user_attrs["fixed_overrides"] == ['experiment="lpd"']
    study.add_trial(optuna.trial.create_trial(value=1.0))
    # another machine: other devices, workers, loggers and paths: the same objective
    check_fixed_overrides(
        study, ["experiment=lpd", "data.num_workers=4", "paths.log_dir=/x", "logger=wandb"]
    )
    with pytest.raises(ValueError, match=r"only in this command: data=\"real_ct\""):
        check_fixed_overrides(study, ["experiment=lpd", "data=real_ct"])


def test_trials_table_lists_every_trial():
    study = optuna.create_study(study_name="s", direction="maximize")
    for value, state in ((20.5, TrialState.COMPLETE), (None, TrialState.FAIL), (31.25, None)):
        trial = study.ask({"lam": FloatDistribution(1, 100), "f": CategoricalDistribution(["a"])})
        trial.set_user_attr(RUN_DIR, f"/elsewhere/multiruns/x/{trial.number}")
        study.tell(trial, value, state=state)
    lines = trials_table(study).splitlines()
    assert lines[0] == "study s: 3 trials (maximize; * best: trial 2, value 31.25)"
    assert lines[1].split() == ["trial", "state", "value", "f", "lam", "run", "folder"]
    rows = [line.split() for line in lines[2:]]
    assert [r[:3] for r in rows] == [
        ["0", "complete", "20.5"],
        ["1", "fail", "-"],
        ["2*", "complete", "31.25"],
    ]
    assert [r[-1] for r in rows] == [f"/elsewhere/multiruns/x/{n}" for n in range(3)]
    lam = study.trials[1].params["lam"]
    assert rows[1][4] == f"{lam:.4g}"


def test_optuna_sweep_persists_and_resumes(tmp_path, run_cli):
    first = _sweep(run_cli, tmp_path, 2)  # also makes logs/fbp/ for the study
    assert first.returncode == 0, first.stderr[-2000:]
    storage = f"sqlite:///{tmp_path / 'fbp' / 'optuna_fbp_filter.db'}"
    # the schema is current Optuna's (what optuna-dashboard and load_study open)
    rdb = optuna.storages.RDBStorage(storage)
    assert rdb.get_current_version() == rdb.get_head_version()
    study = optuna.load_study(study_name="fbp_filter", storage=storage)
    values = [t.value for t in study.trials if t.state == TrialState.COMPLETE]
    assert len(values) == 2 and all(15 < v < 45 for v in values)  # validation PSNR in dB
    assert {"model.filter", "model.frequency_scaling"} <= set(study.trials[0].params)
    # the same command again: completed trials count, so nothing more to run
    again = _sweep(run_cli, tmp_path, 2)
    assert again.returncode == 0 and "Launching" not in again.stdout, again.stderr[-2000:]
    third = _sweep(run_cli, tmp_path, 3)  # a larger budget adds one trial to the study
    assert third.returncode == 0, third.stderr[-2000:]
    study = optuna.load_study(study_name="fbp_filter", storage=storage)
    assert [t.state for t in study.trials] == [TrialState.COMPLETE] * 3
    assert study.trials[2].params != study.trials[0].params  # the seeded sampler is reseeded
    # the closing table: every trial of the study with its value and run folder
    table = third.stdout[third.stdout.index("study fbp_filter: 3 trials") :].splitlines()
    for trial, row in zip(study.trials, table[2:5], strict=True):
        cells = row.split()
        assert cells[0].rstrip("*") == str(trial.number) and cells[2] == f"{trial.value:.4g}"
        run_dir = Path(trial.user_attrs[RUN_DIR])
        assert cells[-1] == str(run_dir) and (run_dir / ".hydra" / "config.yaml").is_file()
    assert f"* best: trial {study.best_trial.number}" in table[0]
    # other fixed overrides (another objective) into the same study: refused, nothing run
    other = _sweep(run_cli, tmp_path, 4, "data.val_size=3")
    assert other.returncode == 2 and "Launching" not in other.stdout
    assert "Traceback" not in other.stderr  # one line, as every user mistake
    assert other.stderr.strip().splitlines()[-1].startswith("error: the study 'fbp_filter' was")
    assert "only in the study: data.val_size=2" in other.stderr
    assert "only in this command: data.val_size=3" in other.stderr
    assert len(optuna.load_study(study_name="fbp_filter", storage=storage).trials) == 3


PRUNED_SEARCH = """# @package _global_
defaults:
  - override /hydra/sweeper: optuna
optimized_metric: val/psnr
test: false
hydra:
  mode: MULTIRUN
  sweeper:
    study_name: pruned
    storage: sqlite:///${paths.log_dir}/${task_name}/optuna_pruned.db
    direction: maximize
    n_trials: 2
    n_jobs: 2
    pruner:  # any validation PSNR below 100 dB is hopeless: pruned at its first report
      _target_: optuna.pruners.ThresholdPruner
      lower: 100.0
    params:
      model.optimizer.lr: tag(log, interval(1.0e-4, 1.0e-3))
"""


@pytest.mark.slow
def test_trials_are_pruned_from_their_validation_curve(tmp_path, run_cli):
    """Two parallel trials (submitit_local: one process each, as on SLURM) report their
    validation PSNR at steps 2, 4, 6; the pruner stops both at step 2."""
    (tmp_path / "configs" / "hparams_search").mkdir(parents=True)
    (tmp_path / "configs" / "hparams_search" / "pruned.yaml").write_text(PRUNED_SEARCH)
    out = run_cli(
        "train",
        [
            "-m",
            *TINY_LGD,
            f"hydra.searchpath=[file://{tmp_path / 'configs'}]",
            "hparams_search=pruned",
            "hydra/launcher=submitit_local",
            "trainer.max_steps=6",
            "trainer.val_check_interval=2",
            "callbacks.model_checkpoint=null",
            f"paths.log_dir={tmp_path}",
        ],
        timeout=900,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    storage = f"sqlite:///{tmp_path / 'lgd' / 'optuna_pruned.db'}"
    trials = optuna.load_study(study_name="pruned", storage=storage).trials
    assert [t.state for t in trials] == [TrialState.PRUNED] * 2, [t.user_attrs for t in trials]
    for trial in trials:
        assert list(trial.intermediate_values) == [2]  # stopped at its first validation
        assert trial.user_attrs["pruned_at_step"] == 2
        assert 5 < trial.value < 40 and trial.value == trial.intermediate_values[2]
        run_dir = Path(trial.user_attrs[RUN_DIR])
        assert (run_dir / "checkpoints" / "last.ckpt").is_file()  # a normal run, stopped early
    assert "pruned" in out.stdout[out.stdout.index("study pruned: 2 trials") :]


def test_a_grid_chooses_on_validation_and_its_tests_stay_out_of_the_report(tmp_path, run_cli):
    """``learnct-train -m model.filter=a,b`` (Hydra's basic sweeper) skips the test set unless
    the command line says ``test=true``; tested sweep jobs are left out of ``make report``
    (a table of single runs: picking the best grid point there would choose on test data).
    An evaluation grid (``learnct-eval -m``) tests."""
    from learnct.reporting.table import collect_results

    grid = ["-m", "experiment=fbp", "model.filter=ram-lak,hann", "data.val_size=2"]
    fixed = ["data.test_size=2", "logger=csv", "callbacks=none", f"paths.log_dir={tmp_path}"]
    untested = run_cli("train", [*grid, *fixed])
    assert untested.returncode == 0, untested.stderr[-2000:]
    assert "sweep jobs skip the test set" in untested.stdout
    jobs = sorted((tmp_path / "fbp" / "multiruns").glob("*/[0-9]"))
    assert len(jobs) == 2 and not any((job / "results.csv").exists() for job in jobs)
    assert all((job / "csv").is_dir() for job in jobs)  # validated: the objective was logged

    tested = run_cli("train", [*grid, *fixed, "test=true"])
    assert tested.returncode == 0, tested.stderr[-2000:]
    assert "skip the test set" not in tested.stdout
    results = sorted((tmp_path / "fbp" / "multiruns").glob("*/[0-9]/results.csv"))
    assert len(results) == 2
    rows, problems = collect_results(tmp_path, "fan_lowdose")
    assert rows == [] and problems[0].startswith("left out 2 tested sweep job(s)")

    # learnct-eval -m (train=false: several checkpoints, filters or doses) tests every job
    evaluated = run_cli("evaluate", [*grid[:-1], *fixed[:-1], f"paths.log_dir={tmp_path / 'ev'}"])
    assert evaluated.returncode == 0, evaluated.stderr[-2000:]
    assert len(list((tmp_path / "ev").glob("*/multiruns/*/[0-9]/results.csv"))) == 2
