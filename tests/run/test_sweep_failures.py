"""A sweep job that fails is recorded with its config and the sweep goes on (Optuna marks the
trial FAILED and keeps its error)."""

from __future__ import annotations

import optuna
import pytest

from conftest import CONFIG_DIR
from learnct.run.sweep_failures import read_failures


@pytest.mark.slow
def test_failing_optuna_trials_are_recorded_and_the_others_complete(tmp_path, run_cli):
    (tmp_path / "fbp").mkdir()
    # fbp_filter's search, with a frequency scaling FBP refuses: those trials fail
    search = (CONFIG_DIR / "hparams_search" / "fbp_filter.yaml").read_text()
    search = search.replace("interval(0.3, 1.0)", "choice(-1.0, 0.8)")
    assert "choice(-1.0, 0.8)" in search
    (tmp_path / "configs" / "hparams_search").mkdir(parents=True)
    (tmp_path / "configs" / "hparams_search" / "failing.yaml").write_text(search)
    out = run_cli(
        "train",
        [
            "-m",
            "experiment=fbp",
            f"hydra.searchpath=[file://{tmp_path / 'configs'}]",
            "hparams_search=failing",
            "hydra.sweeper.n_trials=4",
            "data.val_size=2",
            "logger=csv",
            "callbacks=none",
            f"paths.log_dir={tmp_path}",
        ],
    )
    assert out.returncode == 0, out.stderr[-3000:]
    storage = f"sqlite:///{tmp_path / 'fbp' / 'optuna_fbp_filter.db'}"
    trials = optuna.load_study(study_name="fbp_filter", storage=storage).trials
    states = {t.number: t.state for t in trials}
    failed = [t for t in trials if t.state == optuna.trial.TrialState.FAIL]
    complete = [t for t in trials if t.state == optuna.trial.TrialState.COMPLETE]
    assert len(trials) == 4 and failed and complete, states
    assert all(t.params["model.frequency_scaling"] == -1.0 for t in failed)
    for t in failed:  # Optuna's FAIL state, with the job's error on the trial
        assert t.user_attrs["error"].startswith("ConfigError: model: frequency_scaling must be")
        assert f"\n{t.number}      fail" in out.stdout  # a row of the closing trials table
    assert all(15 < t.value < 45 for t in complete)

    (sweep_dir,) = (tmp_path / "fbp" / "multiruns").iterdir()
    records = read_failures(sweep_dir)
    assert len(records) == len(failed)
    for record in records:
        assert "model.frequency_scaling=-1.0" in record["overrides"]
        assert record["config"]["model"]["frequency_scaling"] == -1.0
        assert record["error"].startswith("ConfigError: model: frequency_scaling must be in")
        assert "Traceback" in record["traceback"]
    assert f"{len(failed)} sweep job(s) failed (see {sweep_dir / 'failures.jsonl'})" in out.stderr
