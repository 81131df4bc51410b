"""``resume=true``: a run killed mid-epoch (SIGKILL) continues from its last checkpoint with
the same step count, optimiser, scheduler and data stream, and ends where an uninterrupted run
ends; the newest run of the task is found, and wrong checkpoints are refused."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from conftest import TINY_LGD
from learnct.methods.checkpoints import check_checkpoint, weights_source
from learnct.physics import PRESETS
from learnct.run.config_checks import ConfigError
from learnct.run.identity import read_identity
from learnct.run.resume import find_resume_checkpoint

KILLER = '''
import os, signal
import lightning as L

class KillAtStep(L.Callback):
    """SIGKILL the process once the trainer reaches ``step`` (mid-epoch, no clean-up)."""

    def __init__(self, step):
        self.step = step

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        if trainer.global_step >= self.step:
            os.kill(os.getpid(), signal.SIGKILL)
'''

STEPS = ["trainer.max_steps=6", "trainer.val_check_interval=2", "test=false"]


def _train_cli(run_cli, tmp_path: Path, *overrides: str) -> subprocess.CompletedProcess:
    """The tiny LGD run as task ``killed`` under ``tmp_path/logs``, with ``tmp_path`` (where
    ``killer.py`` lies) importable."""
    return run_cli(
        "train",
        [*TINY_LGD, *STEPS, "task_name=killed", f"paths.log_dir={tmp_path / 'logs'}", *overrides],
        env={"PYTHONPATH": os.pathsep.join([str(tmp_path), *sys.path])},
    )


@pytest.mark.slow
def test_run_killed_mid_epoch_resumes_to_the_same_end_as_an_uninterrupted_run(
    tmp_path, compose_config, run_config, run_cli
):
    (tmp_path / "killer.py").write_text(KILLER)
    killed = _train_cli(
        run_cli,
        tmp_path,
        "+callbacks.killer._target_=killer.KillAtStep",
        "+callbacks.killer.step=3",
    )
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
    (run_dir,) = (tmp_path / "logs" / "killed" / "runs").iterdir()
    at_kill = torch.load(run_dir / "checkpoints" / "last.ckpt", weights_only=True)
    assert at_kill["global_step"] == 2  # the checkpoint of the validation at step 2

    identity = read_identity(run_dir)
    assert identity is not None and "finished" not in identity  # killed: resumable
    resumed = _train_cli(run_cli, tmp_path, "resume=true")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert f"resuming from {run_dir / 'checkpoints' / 'last.ckpt'} (step 2)" in resumed.stdout
    # it went on in the killed run's folder, under the same id, and left no empty folder behind
    assert list((tmp_path / "logs" / "killed" / "runs").iterdir()) == [run_dir]
    # and its log there got the resumed sitting's messages (Hydra's file handler moved along)
    assert "Restored all states from the checkpoint" in (run_dir / "train.log").read_text()
    assert read_identity(run_dir).id == identity.id and read_identity(run_dir)["finished"]
    last = check_checkpoint(
        run_dir / "checkpoints" / "last.ckpt",
        "LearnedGradientDescent",
        PRESETS["fan_lowdose"]().geometry,
    )  # it continued in the killed run's folder and left a checkpoint that loads
    assert last["global_step"] == 6
    assert not list((run_dir / "checkpoints").glob(".*.tmp"))

    reference_dir = tmp_path / "reference"
    run_config(compose_config("train", [*TINY_LGD, *STEPS], reference_dir))
    reference = torch.load(reference_dir / "checkpoints" / "last.ckpt", weights_only=True)
    assert reference["global_step"] == 6
    # same data stream (images and noise), optimiser moments and learning-rate schedule
    assert last["datamodule_hyper_parameters"] == reference["datamodule_hyper_parameters"]
    assert (
        last["CTDataModule"]
        == reference["CTDataModule"]
        == {
            "train_noise_batches": 6,
            "train_stream_next": 6,
        }
    )
    assert last["lr_schedulers"] == reference["lr_schedulers"]
    assert last["lr_schedulers"][0]["last_epoch"] == 6
    for a, b in zip(
        last["optimizer_states"][0]["state"].values(),
        reference["optimizer_states"][0]["state"].values(),
        strict=True,
    ):
        assert int(a["step"]) == int(b["step"]) == 6
        torch.testing.assert_close(a["exp_avg_sq"], b["exp_avg_sq"], rtol=1e-5, atol=0)
    for name, weight in reference["state_dict"].items():
        torch.testing.assert_close(last["state_dict"][name], weight, rtol=1e-5, atol=1e-7)


def test_a_run_started_from_init_weights_resumes_with_the_same_command(tmp_path, run_cli):
    """Its model settings came from init_weights (hidden 8, not the config's 32): the same
    command plus resume=true takes them again and continues the killed run."""
    (tmp_path / "killer.py").write_text(KILLER)
    source = _train_cli(run_cli, tmp_path, "model.hidden=8", "task_name=source")
    assert source.returncode == 0, source.stderr[-2000:]
    (source_dir,) = (tmp_path / "logs" / "source" / "runs").iterdir()
    warm = [f"init_weights={source_dir / 'checkpoints' / 'last.ckpt'}"]
    killer = ["+callbacks.killer._target_=killer.KillAtStep", "+callbacks.killer.step=3"]
    killed = _train_cli(run_cli, tmp_path, *warm, *killer)
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
    resumed = _train_cli(run_cli, tmp_path, *warm, "resume=true")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "started this run; continuing" in resumed.stdout
    (run_dir,) = (tmp_path / "logs" / "killed" / "runs").iterdir()
    last = torch.load(run_dir / "checkpoints" / "last.ckpt", weights_only=True)
    assert last["global_step"] == 6 and last["hyper_parameters"]["hidden"] == 8
    # the weights' source: the resuming command, and the start the killed part recorded
    source_ckpt = torch.load(source_dir / "checkpoints" / "last.ckpt", weights_only=True)
    record = weights_source(last)
    assert record["command"].startswith("learnct-train ") and "resume=true" in record["command"]
    assert record["run_id"] == last["learnct_run"]["id"]
    assert record["started_from"]["source"] == weights_source(source_ckpt)
    assert record["started_from"]["checkpoint"].endswith("checkpoints/last.ckpt")


def _fake_run(log_dir: Path, task: str, name: str, checkpoint: dict | None) -> Path:
    folder = log_dir / task / "runs" / name / "checkpoints"
    folder.mkdir(parents=True)
    if checkpoint is not None:
        torch.save(checkpoint, folder / "last.ckpt")
    return folder.parent


def test_finds_the_newest_run_with_a_last_checkpoint(tmp_path):
    _fake_run(tmp_path, "lpd", "2026-01-01_10-00-00", {})
    newest = _fake_run(tmp_path, "lpd", "2026-01-02_09-00-00", {})
    _fake_run(tmp_path, "lpd", "2026-01-03_08-00-00", None)  # killed before its first save
    _fake_run(tmp_path, "tv", "2026-01-04_08-00-00", {})  # another task
    current = _fake_run(tmp_path, "lpd", "2026-01-05_08-00-00", {})  # the run now starting
    found = find_resume_checkpoint(tmp_path, "lpd", exclude=current)
    assert found == newest / "checkpoints" / "last.ckpt"
    with pytest.raises(FileNotFoundError, match=r"task_name='lgd'.*lgd/runs/\*/checkpoints"):
        find_resume_checkpoint(tmp_path, "lgd")


def test_resume_without_a_previous_run_says_where_it_looked(tmp_path, compose_config, run_config):
    cfg = compose_config(
        "train", [*TINY_LGD, "resume=true", f"paths.log_dir={tmp_path}"], tmp_path / "new"
    )
    with pytest.raises(ConfigError, match=r"no run of task_name='lgd' to resume: no .*last\.ckpt"):
        run_config(cfg)


def test_resume_refuses_a_checkpoint_of_another_method_or_geometry(
    tmp_path, compose_config, run_config
):
    geometry = PRESETS["fan_lowdose"]().geometry
    identity = {"method": "LearnedPrimalDual", "geometry": {"kind": geometry.kind}}
    old = _fake_run(tmp_path, "lgd", "2026-01-01_10-00-00", {"learnct": identity})
    cfg = compose_config(
        "train", [*TINY_LGD, "resume=true", f"paths.log_dir={tmp_path}"], tmp_path / "new"
    )
    with pytest.raises(
        ConfigError, match=r"resume: checkpoint .* is a LearnedPrimalDual checkpoint"
    ):
        run_config(cfg)
    assert cfg.paths.output_dir == str(old)  # it would have continued in the old run's folder
    (old / "checkpoints" / "last.ckpt").write_bytes(b"PK\x03\x04 truncated")
    with pytest.raises(ConfigError, match=r"resume: checkpoint .* is truncated or corrupt"):
        run_config(
            compose_config(
                "train", [*TINY_LGD, "resume=true", f"paths.log_dir={tmp_path}"], tmp_path / "n"
            )
        )


def test_resume_refuses_a_checkpoint_of_another_architecture_naming_the_fix(
    tmp_path, compose_config, run_config
):
    from learnct.methods import LearnedGradientDescent
    from learnct.methods.checkpoints import checkpoint_identity
    from learnct.physics import RayTransform

    geometry = PRESETS["fan_lowdose"]().geometry
    model = LearnedGradientDescent(RayTransform(geometry), n_iter=2)
    saved = {
        "learnct": checkpoint_identity(model, geometry),
        "state_dict": model.state_dict(),
        "hyper_parameters": dict(model.hparams),
    }
    _fake_run(tmp_path, "lgd", "2026-01-01_10-00-00", saved)
    cfg = compose_config(
        "train", [*TINY_LGD, "resume=true", f"paths.log_dir={tmp_path}"], tmp_path / "new"
    )
    with pytest.raises(
        ConfigError, match=r"resume: checkpoint .* does not fit .*: .* model\.n_iter=2$"
    ):
        run_config(cfg)


def test_init_weights_with_resume_refuses_a_run_that_started_elsewhere(tmp_path):
    from learnct.run.pipeline import _check_started_from

    def save(name: str, global_step: int, steps_before: int) -> Path:
        path = tmp_path / f"{name}.ckpt"
        torch.save({"global_step": global_step, "learnct": {"steps_before": steps_before}}, path)
        return path

    source = save("source", 6, 0)  # 6 steps trained
    _check_started_from(str(source), save("warm", 3, 6))  # started from them: fine
    with pytest.raises(ConfigError, match="did not start from those weights"):
        _check_started_from(str(source), save("scratch", 3, 0))  # a run from zero


def test_a_run_stopped_by_its_time_limit_is_not_resumed_under_the_same_limit():
    """``+trainer.max_time``: Lightning's Timer keeps the training time in the checkpoint, so
    a run that used all of it would stop at once when resumed, and test the same weights
    anew; refused with the fix. Time left, or no limit now: it goes on."""
    from lightning.pytorch.callbacks import Timer

    from learnct.run.resume import check_time_left

    timer = Timer(duration="00:00:01:00")
    timer.load_state_dict({"time_elapsed": {"train": 61.5}})
    state = {"callbacks": {"Timer": timer.state_dict()}}  # as Lightning saves it
    message = (
        r"^resume: the run has trained 62 s, all of its time limit "
        r"trainer.max_time='00:00:01:00', so it would stop at once: raise the limit"
    )
    with pytest.raises(ConfigError, match=message):
        check_time_left(state, "00:00:01:00")
    check_time_left(state, "00:00:02:00")  # 58 s left
    check_time_left(state, {"minutes": 2})  # Lightning's other spelling
    check_time_left(state, None)
    check_time_left({"callbacks": {}}, "00:00:01:00")  # trained without a limit
