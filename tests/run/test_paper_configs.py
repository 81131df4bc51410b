"""``make train EXP=paper/<method>_<setup>``: the paper-scale experiments compose, each to its
paper's schedule: the LPD paper's (REFERENCES.md: Adam lr 1e-3 betas (0.9, 0.99), cosine decay
to 0 over 100k steps, gradient norm clip 1, batch 5; LPD from zero) for every method but
learned gradient descent, which trains as its own paper's published code does (RMSProp lr 1e-3
with inverse-time decay every 500 steps, batch 20, no clipping, from the FBP)."""

from __future__ import annotations

import subprocess

import lightning as L
import pytest

from conftest import PAPER_EXPERIMENTS, REPO_ROOT
from learnct.run.build import build_datamodule, build_method, build_physics, build_trainer

PAPER = [name.removeprefix("paper/") for name in PAPER_EXPERIMENTS]


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


def _lpd_paper_schedule(cfg) -> None:
    assert cfg.model.optimizer._target_ == "torch.optim.Adam"
    assert cfg.model.optimizer.lr == 1e-3
    assert list(cfg.model.optimizer.betas) == [0.9, 0.99]
    assert cfg.model.scheduler._target_ == "torch.optim.lr_scheduler.CosineAnnealingLR"
    assert cfg.model.scheduler.eta_min == 0.0
    assert "T_max" not in cfg.model.scheduler  # T_max = the run's steps (trainer.max_steps)
    assert cfg.data.batch_size == 5
    assert cfg.trainer.gradient_clip_val == 1.0  # the trainer reads model.gradient_clip_val


def _lgd_paper_schedule(cfg) -> None:
    assert cfg.model.optimizer._target_ == "torch.optim.RMSprop"
    # nothing of the model config's Adam (betas) or cosine (eta_min) is left in a merge
    assert set(cfg.model.optimizer) == {"_target_", "_partial_", "lr", "alpha", "eps"}
    assert set(cfg.model.scheduler) == {"_target_", "_partial_", "lr_lambda"}
    assert (cfg.model.optimizer.lr, cfg.model.optimizer.alpha) == (1e-3, 0.9)
    assert cfg.model.scheduler._target_ == "torch.optim.lr_scheduler.LambdaLR"
    decay = cfg.model.scheduler.lr_lambda
    assert decay._target_ == "learnct.methods.lr_schedules.InverseTimeDecay"
    assert (decay.decay_steps, decay.decay_rate, decay.staircase) == (500, 1.0, True)
    assert cfg.data.batch_size == 20
    assert cfg.trainer.gradient_clip_val is None
    assert cfg.model.init == "fbp"


@pytest.mark.parametrize("name", PAPER)
def test_paper_experiment_composes_to_its_paper_schedule(name, compose_config, tmp_path):
    cfg = compose_config("train", [f"experiment=paper/{name}"], tmp_path)
    method, setup = name.rsplit("_", 2)[0], "_".join(name.split("_")[-2:])
    assert cfg.physics.preset == setup
    assert cfg.task_name == f"paper_{name}"
    (_lgd_paper_schedule if method == "lgd" else _lpd_paper_schedule)(cfg)
    assert cfg.model.scheduler_interval == "step"
    assert cfg.trainer.max_steps == 100_000
    assert cfg.trainer.precision == "32-true"
    assert cfg.trainer.accelerator == "auto"  # a GPU when there is one
    assert cfg.trainer.fast_path == "compiled"
    assert cfg.data.phantoms_on_device
    # a trainer on the command line picks the device
    on_cpu = compose_config("train", [f"experiment=paper/{name}", "trainer=cpu"], tmp_path)
    assert (on_cpu.trainer.accelerator, on_cpu.trainer.deterministic) == ("cpu", True)
    assert on_cpu.trainer.precision == "32-true" and on_cpu.trainer.max_steps == 100_000
    if method == "lpd":
        assert cfg.model.init == "zero"


class _Stop(Exception):
    pass


class _Capture(L.Callback):
    """Record the optimiser and scheduler the trainer built, then stop before any step."""

    def on_train_start(self, trainer, pl_module):
        self.optimizer = trainer.optimizers[0]
        self.config = trainer.lr_scheduler_configs[0]
        raise _Stop


def _built(compose_config, tmp_path, name: str) -> tuple[_Capture, L.Trainer, L.LightningModule]:
    """What Lightning builds from ``paper/<name>`` on the CPU: the captured optimiser and
    scheduler, the trainer and the method."""
    cfg = compose_config(
        "train", [f"experiment=paper/{name}", "trainer=cpu", "data.val_size=1"], tmp_path
    )
    preset, operator = build_physics(cfg)
    model = build_method(cfg, operator)
    capture = _Capture()
    trainer = build_trainer(cfg, [], [capture])
    with pytest.raises(_Stop):
        trainer.fit(model, datamodule=build_datamodule(cfg, preset, operator))
    return capture, trainer, model


def test_paper_lpd_builds_the_paper_optimiser_and_cosine_schedule(compose_config, tmp_path):
    """What Lightning builds from ``paper/lpd_parallel_ellipses`` (on the CPU): Adam with the
    paper's settings, cosine annealing stepped per optimiser step with T_max 100k, clip 1."""
    capture, trainer, model = _built(compose_config, tmp_path, "lpd_parallel_ellipses")
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


def test_paper_lgd_builds_its_papers_rmsprop_and_inverse_time_decay(compose_config, tmp_path):
    """``paper/lgd_parallel_ellipses`` on the CPU: RMSProp with TF1's decay and epsilon, the
    learning rate 1e-3 / (1 + floor(k / 500)) per optimiser step, no clipping, batches of 20."""
    capture, trainer, model = _built(compose_config, tmp_path, "lgd_parallel_ellipses")
    group = capture.optimizer.param_groups[0]
    assert type(capture.optimizer).__name__ == "RMSprop"
    assert (group["lr"], group["alpha"], group["eps"]) == (1e-3, 0.9, 1e-10)
    scheduler = capture.config.scheduler
    assert type(scheduler).__name__ == "LambdaLR" and capture.config.interval == "step"
    decay = scheduler.lr_lambdas[0]
    rates = [1e-3 * decay(k) for k in (0, 499, 500, 1000, 100_000)]
    assert rates == pytest.approx([1e-3, 1e-3, 5e-4, 1e-3 / 3, 1e-3 / 201])
    assert trainer.gradient_clip_val is None
    assert trainer.datamodule.batch_size == 20
    assert model.hparams.init == "fbp"
