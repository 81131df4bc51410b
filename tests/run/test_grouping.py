"""Logger grouping: a single run is grouped by experiment, a sweep job by its sweep (Optuna:
by study), and a 2-job sweep through the submitit launcher logs both jobs to W&B."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from hydra import compose, initialize_config_dir
from hydra.core.hydra_config import HydraConfig

from learnct.run import CONFIG_DIR
from learnct.run.grouping import job_type, run_group, run_name


@pytest.fixture
def hydra_config():
    """Set HydraConfig as a Hydra job would, and clear it afterwards."""

    def set_config(overrides: list[str]) -> None:
        with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
            cfg = compose("train", overrides=overrides, return_hydra_config=True)
        HydraConfig.instance().set_config(cfg)

    yield set_config
    HydraConfig.instance().cfg = None


def test_single_run_is_grouped_by_experiment(hydra_config):
    assert run_group("lpd") == "lpd" and run_name("lpd") == "lpd"  # no Hydra at all
    hydra_config(["experiment=lpd"])
    assert (run_group("lpd"), run_name("lpd"), job_type()) == ("lpd", "lpd", "train")


def test_sweep_jobs_are_grouped_by_sweep_and_study(hydra_config):
    hydra_config(["experiment=tv", "hydra.mode=MULTIRUN", "hydra.job.num=3"])
    assert run_group("tv").startswith("tv/sweep-2")  # the sweep folder's date
    assert (run_name("tv"), job_type()) == ("tv-3", "sweep")
    hydra_config(["experiment=tv", "hparams_search=tv_lambda"])
    assert run_group("tv") == "tv/tv_lambda"  # Optuna: one group per study, across resumes


@pytest.mark.slow
def test_two_job_sweep_on_the_submitit_launcher_logs_both_jobs(tmp_path):
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "learnct.train",
            "-m",
            "experiment=fbp",
            "hydra/launcher=submitit_local",
            "model.filter=ram-lak,hann",
            "data.val_size=2",
            "data.test_size=2",
            "callbacks=none",
            f"paths.log_dir={tmp_path}",
        ],
        capture_output=True,
        text=True,
        env={**os.environ, "WANDB_MODE": "offline", "WANDB_SILENT": "true"},
        cwd=CONFIG_DIR.parent,
        timeout=900,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    (sweep,) = (tmp_path / "fbp" / "multiruns").iterdir()
    for job in ("0", "1"):
        assert (sweep / job / "results.csv").is_file()  # each job tested and wrote its row
        (run_file,) = (sweep / job / "wandb").glob("offline-run-*/run-*.wandb")
        logged = run_file.read_bytes()
        assert f"fbp/sweep-{sweep.name}".encode() in logged  # W&B group = the sweep
        assert f"fbp-{job}".encode() in logged  # W&B name = the job
        assert b"test/results" in logged and b"test/comparison" in logged  # table, figure
    jobs = [p for p in (sweep / ".submitit").iterdir() if p.name.isdigit()]
    assert len(jobs) == 2  # one submitit job per sweep point
