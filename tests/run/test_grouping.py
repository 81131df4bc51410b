"""Logger grouping and names: a single run is grouped by experiment, a sweep job by its sweep
(Optuna: by study); each is named after its folder; a 2-job sweep through the submitit launcher
logs both jobs to W&B."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from hydra.core.hydra_config import HydraConfig

from learnct.run.grouping import job_type, run_group, run_name


@pytest.fixture
def hydra_config(compose_config):
    """Set HydraConfig as a Hydra job would, and clear it afterwards."""

    def set_config(overrides: list[str]) -> None:
        HydraConfig.instance().set_config(
            compose_config("train", overrides, return_hydra_config=True)
        )

    yield set_config
    HydraConfig.instance().cfg = None


def test_single_run_is_grouped_by_experiment_and_named_after_its_folder(hydra_config):
    folder = "logs/lpd/runs/2026-01-01_10-00-00_0a1b2c"
    assert run_group("lpd") == "lpd"  # no Hydra at all
    assert run_name("lpd", folder) == "lpd-2026-01-01_10-00-00_0a1b2c"
    hydra_config(["experiment=lpd"])
    assert (run_group("lpd"), run_name("lpd", folder), job_type()) == (
        "lpd",
        "lpd-2026-01-01_10-00-00_0a1b2c",
        "train",
    )


def test_the_wandb_logger_names_each_run_after_its_folder(compose_config, tmp_path):
    """Every run of an experiment was named ``lpd`` in W&B; now its folder tells them apart
    (a resumed run continues in its folder and keeps its name)."""
    names = {
        compose_config(
            "train", ["experiment=lpd", "logger=wandb"], tmp_path / run
        ).logger.wandb.name
        for run in ("2026-01-01_10-00-00_0a1b2c", "2026-01-01_10-00-00_3d4e5f")
    }
    assert names == {"lpd-2026-01-01_10-00-00_0a1b2c", "lpd-2026-01-01_10-00-00_3d4e5f"}


def test_sweep_jobs_are_grouped_by_sweep_and_study(hydra_config):
    hydra_config(["experiment=tv", "hydra.mode=MULTIRUN", "hydra.job.num=3"])
    sweep = Path(HydraConfig.get().sweep.dir).name
    assert re.fullmatch(r"\d{4}-\d\d-\d\d_\d\d-\d\d-\d\d_[0-9a-f]{6}", sweep)
    assert run_group("tv") == f"tv/sweep-{sweep}"
    # the sweep folder and the job: unique also when an Optuna study resumes at job 0
    assert (run_name("tv", "ignored"), job_type()) == (f"tv-{sweep}-3", "sweep")
    hydra_config(["experiment=tv", "hparams_search=tv_lambda"])
    assert run_group("tv") == "tv/tv_lambda"  # Optuna: one group per study, across resumes


@pytest.mark.slow
def test_two_job_sweep_on_the_submitit_launcher_logs_both_jobs(tmp_path, run_cli):
    out = run_cli(
        "train",
        [
            "-m",
            "experiment=fbp",
            "hydra/launcher=submitit_local",
            "model.filter=ram-lak,hann",
            "data.val_size=2",
            "data.test_size=2",
            "test=true",  # sweep jobs skip the test set unless told
            "callbacks=none",
            f"paths.log_dir={tmp_path}",
        ],
        env={"WANDB_MODE": "offline", "WANDB_SILENT": "true"},
        timeout=900,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    (sweep,) = (tmp_path / "fbp" / "multiruns").iterdir()
    for job in ("0", "1"):
        assert (sweep / job / "results.csv").is_file()  # each job tested and wrote its row
        (run_file,) = (sweep / job / "wandb").glob("offline-run-*/run-*.wandb")
        logged = run_file.read_bytes()
        assert f"fbp/sweep-{sweep.name}".encode() in logged  # W&B group = the sweep
        assert f"fbp-{sweep.name}-{job}".encode() in logged  # W&B name = the job's folder
        assert b"test/results" in logged and b"test/comparison" in logged  # table, figure
    jobs = [p for p in (sweep / ".submitit").iterdir() if p.name.isdigit()]
    assert len(jobs) == 2  # one submitit job per sweep point
