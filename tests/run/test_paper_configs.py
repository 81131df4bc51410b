"""``make train EXP=paper/<method>_<setup>``: the paper-scale experiments compose, and the
composed schedule is the LPD paper's (REFERENCES.md): Adam lr 1e-3 betas (0.9, 0.99), cosine
decay to 0 over 100k steps, gradient norm clip 1, batch 5; LPD starts from zero."""

from __future__ import annotations

import subprocess

import lightning as L
import pytest

from conftest import CONFIG_DIR, REPO_ROOT
from learnct.run.build import build_datamodule, build_method, build_physics, build_trainer

PAPER = sorted(p.stem for p in (CONFIG_DIR / "experiment" / "paper").glob("*.yaml"))


def test_every_method_and_setup_of_the_issue_has_a_paper_experiment():
    assert PAPER == sorted(
        [
            *(
                f"{m}_{s}"
                for m in ("lpd", "lgd", "fbpunet")
                for s in ("parallel_ellipses", "fan_lowdose")
            ),
            "learned_inverse_parallel_ellipses",
        ]
    )


@pytest.mark.parametrize("name", PAPER)
def test_paper_experiment_composes_to_the_paper_schedule(name, compose_config, tmp_path):
    cfg = compose_config("train", [f"experiment=paper/{name}"], tmp_path)
    method, setup = name.rsplit("_", 2)[0], "_".join(name.split("_")[-2:])
    assert cfg.physics.preset == setup
    assert cfg.task_name == f"paper_{name}"
    assert cfg.model.optimizer._target_ == "torch.optim.Adam"
    assert cfg.model.optimizer.lr == 1e-3
    assert list(cfg.model.optimizer.betas) == [0.9, 0.99]
    assert cfg.model.scheduler._target_ == "torch.optim.lr_scheduler.CosineAnnealingLR"
    assert cfg.model.scheduler.eta_min == 0.0
    assert "T_max" not in cfg.model.scheduler  # T_max = the run's steps (trainer.max_steps)
    assert cfg.model.scheduler_interval == "step"
    assert cfg.trainer.max_steps == 100_000
    assert cfg.data.batch_size == 5
    assert cfg.trainer.gradient_clip_val == 1.0  # the trainer reads model.gradient_clip_val
    assert cfg.trainer.precision == "32-true"
    assert cfg.trainer.accelerator == "auto"  # a GPU when there is one
    assert cfg.trainer.fast_path == "compiled"
    assert cfg.data.phantoms_on_device
    # a trainer on the command line picks the device
    on_cpu = compose_config("train", [f"experiment=paper/{name}", "trainer=cpu"], tmp_path)
    assert (on_cpu.trainer.accelerator, on_cpu.trainer.deterministic) == ("cpu", True)
    assert on_cpu.trainer.precision == "32-true" and on_cpu.trainer.max_steps == 100_000
    if method in ("lpd", "lgd"):
        assert cfg.model.init == "zero"


class _Stop(Exception):
    pass


class _Capture(L.Callback):
    """Record the optimiser and scheduler the trainer built, then stop before any step."""

    def on_train_start(self, trainer, pl_module):
        self.optimizer = trainer.optimizers[0]
        self.config = trainer.lr_scheduler_configs[0]
        raise _Stop


def test_paper_lpd_builds_the_paper_optimiser_and_cosine_schedule(compose_config, tmp_path):
    """What Lightning builds from ``paper/lpd_parallel_ellipses`` (on the CPU): Adam with the
    paper's settings, cosine annealing stepped per optimiser step with T_max 100k, clip 1."""
    cfg = compose_config(
        "train",
        ["experiment=paper/lpd_parallel_ellipses", "trainer=cpu", "data.val_size=1"],
        tmp_path,
    )
    preset, operator = build_physics(cfg)
    model = build_method(cfg, operator)
    capture = _Capture()
    trainer = build_trainer(cfg, [], [capture])
    with pytest.raises(_Stop):
        trainer.fit(model, datamodule=build_datamodule(cfg, preset, operator))
    group = capture.optimizer.param_groups[0]
    assert type(capture.optimizer).__name__ == "Adam"
    assert (group["lr"], group["betas"]) == (1e-3, (0.9, 0.99))
    assert type(capture.config.scheduler).__name__ == "CosineAnnealingLR"
    assert capture.config.scheduler.T_max == 100_000
    assert capture.config.scheduler.eta_min == 0.0
    assert capture.config.interval == "step"
    assert trainer.gradient_clip_val == 1.0
    assert trainer.max_steps == 100_000
    assert model.hparams.init == "zero"


def test_make_train_reaches_the_paper_experiments():
    """``make train EXP=paper/<method>_<setup>`` passes the Makefile's check (a dry run)."""
    dry = subprocess.run(
        ["make", "-n", "train", "EXP=paper/lpd_parallel_ellipses"],
        capture_output=True,
        text=True,
        cwd=REPO_ROOT,
        check=False,
    )
    assert "learnct.train experiment=paper/lpd_parallel_ellipses" in dry.stdout, dry.stderr


def test_make_eval_tests_a_paper_experiment_under_a_one_folder_task_name():
    """``make eval EXP=paper/<name>``: the task name is one folder (``eval_paper_<name>``)."""
    dry = subprocess.run(
        ["make", "-n", "eval", "EXP=paper/lpd_parallel_ellipses", "CKPT=x.ckpt"],
        capture_output=True,
        text=True,
        cwd=REPO_ROOT,
        check=False,
    )
    command = "experiment=paper/lpd_parallel_ellipses task_name=eval_paper_lpd_parallel_ellipses"
    assert f"learnct.evaluate {command} ckpt_path=x.ckpt" in dry.stdout, dry.stderr
