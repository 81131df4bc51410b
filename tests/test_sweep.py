"""``make sweep``: a Hydra multirun with the Optuna sweeper whose study persists in SQLite and
resumes; the objective is the validation metric of each job."""

from __future__ import annotations

import subprocess
from pathlib import Path

import optuna

from conftest import CONFIG_DIR

SEARCHES = sorted(p.stem for p in (CONFIG_DIR / "hparams_search").glob("*.yaml"))


def _sweep(run_cli, log_dir: Path, trials: int) -> subprocess.CompletedProcess:
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
        ],
    )


def test_search_spaces_ship():
    assert {"tv_lambda", "lpd", "fbp_filter"} <= set(SEARCHES)


def test_optuna_sweep_persists_and_resumes(tmp_path, run_cli):
    (tmp_path / "fbp").mkdir()
    first = _sweep(run_cli, tmp_path, trials=2)
    assert first.returncode == 0, first.stderr[-2000:]
    storage = f"sqlite:///{tmp_path / 'fbp' / 'optuna_fbp_filter.db'}"
    study = optuna.load_study(study_name="fbp_filter", storage=storage)
    values = [t.value for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    assert len(values) == 2 and all(15 < v < 45 for v in values)  # validation PSNR in dB
    assert {"model.filter", "model.frequency_scaling"} <= set(study.trials[0].params)
    second = _sweep(run_cli, tmp_path, trials=1)  # the same command again adds to the same study
    assert second.returncode == 0, second.stderr[-2000:]
    study = optuna.load_study(study_name="fbp_filter", storage=storage)
    assert len(study.trials) == 3
