"""``learnct-train --help`` (configs/hydra/help/learnct.yaml) and ``trainer=cpu``."""

from __future__ import annotations

from conftest import CONFIG_DIR, EXPERIMENTS
from learnct.run.build import build_trainer


def test_help_lists_the_groups_their_options_and_the_main_keys(run_cli):
    done = run_cli("train", ["--help"], timeout=120)
    assert done.returncode == 0, done.stderr
    text = done.stdout
    assert text.startswith("learnct-train (make train EXP=<name>)")
    assert f"experiment: {', '.join(EXPERIMENTS)}\n" in text
    groups = ("data", "debug", "logger", "model", "model/optimizer", "model/scheduler", "physics")
    for group in (*groups, "trainer"):
        options = sorted(p.stem for p in (CONFIG_DIR / group).glob("*.yaml"))
        assert f"{group}: {', '.join(options)}\n" in text
    for usage in ('ARGS="debug=fdr"', 'ARGS="resume=true"', "make eval EXP=lpd CKPT="):
        assert usage in text
    for key in ("trainer.max_steps=", "logger=wandb", "init_weights=", "extras.print_config="):
        assert f"\n  {key}" in text
    assert "powered by Hydra" not in text and "== Config ==" not in text


def test_trainer_cpu_is_the_default_cpu_trainer(compose_config, tmp_path):
    cfg = compose_config("train", ["experiment=lpd", "trainer=cpu"], tmp_path)
    assert (cfg.trainer.accelerator, cfg.trainer.devices) == ("cpu", 1)
    assert (cfg.trainer.precision, cfg.trainer.deterministic) == ("32-true", True)
    assert cfg.trainer.max_steps == 300  # the experiment's, kept
    assert cfg.trainer == compose_config("train", ["experiment=lpd"], tmp_path).trainer
    trainer = build_trainer(cfg, [], [], enable_progress_bar=False)
    assert type(trainer.accelerator).__name__ == "CPUAccelerator"


def test_without_a_progress_bar_callback_there_is_no_bar(compose_config, tmp_path):
    """``callbacks.progress_bar=null`` removes the bar; Lightning would add its own (an epoch
    bar reading "Epoch 122/-2" in step-based runs) unless the trainer config asks for it."""
    from learnct.run.build import instantiate_all
    from learnct.run.progress import StepProgressBar

    cfg = compose_config("train", ["experiment=lpd"], tmp_path)
    bar = build_trainer(cfg, [], instantiate_all(cfg.callbacks)).progress_bar_callback
    assert isinstance(bar, StepProgressBar)
    assert build_trainer(cfg, [], []).progress_bar_callback is None
    asked = compose_config(
        "train", ["experiment=lpd", "+trainer.enable_progress_bar=true"], tmp_path
    )
    assert build_trainer(asked, [], []).progress_bar_callback is not None  # Lightning's own
