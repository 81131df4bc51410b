"""``configs/debug/``: ``make train EXP=<name> ARGS="debug=<fdr|overfit|limit|profiler>"``
composes with every experiment, changes only the trainer, data sizes, logger, callbacks and
task name (never the physics or the model), evaluates every validation and test image it
counts, and runs: ``debug=fdr`` trains one step and still tests and writes ``results.csv``."""

from __future__ import annotations

import csv
import math
from typing import Any

import hydra
import lightning as L
import pytest
from omegaconf import DictConfig, OmegaConf

from conftest import CONFIG_DIR, EXPERIMENTS
from learnct.run.build import trainer_config
from learnct.run.config_checks import validate_config

DEBUG = sorted(p.stem for p in (CONFIG_DIR / "debug").glob("*.yaml"))

#: what debug/default.yaml sets, and so every debug config
COMMON = {
    "task_name": "debug",
    "tags": ["debug"],
    "trainer.accelerator": "cpu",
    "trainer.devices": 1,
    "trainer.strategy": "auto",
    "trainer.precision": "32-true",
    "trainer.deterministic": True,
    "trainer.log_every_n_steps": 1,
    "trainer.max_steps": 4,
    "trainer.val_check_interval": 2,
    "data.num_workers": 0,
    "data.pin_memory": False,
    "data.val_size": 2,
    "data.test_size": 2,
    "data.eval_batch_size": 2,
}
#: what each debug config sets on top of COMMON
EXPECTED = {
    "default": {},
    "fdr": {"trainer.fast_dev_run": True},
    "overfit": {
        "trainer.overfit_batches": 1,
        "trainer.max_steps": 12,
        "trainer.val_check_interval": 6,
    },
    "limit": {
        "trainer.limit_train_batches": 2,
        "trainer.limit_val_batches": 2,
        "trainer.limit_test_batches": 2,
        "trainer.max_steps": 4,
        "trainer.val_check_interval": 2,
        "data.val_size": 4,
        "data.test_size": 4,
    },
    "profiler": {
        "trainer.profiler": "simple",
        "trainer.max_steps": 5,
        "trainer.val_check_interval": 5,
    },
}
CALLBACKS = {"model_checkpoint", "last_checkpoint", "progress_bar", "step_rate"}


def _flat(cfg: DictConfig) -> dict[str, Any]:
    """``cfg`` as ``{"dotted.key": value}`` (unresolved)."""
    out: dict[str, Any] = {}

    def walk(node: Any, prefix: str) -> None:
        if isinstance(node, dict) and node:
            for key, value in node.items():
                walk(value, f"{prefix}{key}.")
        else:
            out[prefix.rstrip(".")] = node

    walk(OmegaConf.to_container(cfg, resolve=False), "")
    return out


def _evaluated_batches(cfg: DictConfig, split: str) -> float:
    """How many batches of ``split`` (val or test) a run of ``cfg`` evaluates."""
    trainer = cfg.trainer
    if trainer.get("fast_dev_run"):
        return int(trainer.fast_dev_run)
    if split == "val" and trainer.get("overfit_batches"):
        return trainer.overfit_batches
    return trainer.get(f"limit_{split}_batches") or math.inf


def test_every_debug_config_ships():
    assert DEBUG == ["default", "fdr", "limit", "overfit", "profiler"]
    for name in DEBUG:
        text = (CONFIG_DIR / "debug" / f"{name}.yaml").read_text()
        assert text.startswith('# @package _global_\n# make train EXP=<name> ARGS="debug='), name


@pytest.mark.parametrize("debug", DEBUG)
@pytest.mark.parametrize("experiment", EXPERIMENTS)
def test_debug_config_composes_with_every_experiment(experiment, debug, compose_config, tmp_path):
    plain = compose_config("train", [f"experiment={experiment}", "logger=wandb"], tmp_path)
    cfg = compose_config("train", [f"experiment={experiment}", f"debug={debug}"], tmp_path)
    expected = {**COMMON, **EXPECTED[debug]}
    for key, value in expected.items():
        assert OmegaConf.select(cfg, key) == value, key
    assert list(cfg.logger) == ["csv"]  # no W&B run
    assert set(cfg.callbacks or {}) == ({"progress_bar"} if debug == "overfit" else CALLBACKS)
    # the physics and the model stay the experiment's: only the keys above differ
    before, after = _flat(plain), _flat(cfg)
    changed = {k for k in before.keys() | after.keys() if before.get(k) != after.get(k)}
    unexpected = {
        k for k in changed if k not in expected and not k.startswith(("logger.", "callbacks"))
    }
    assert not unexpected
    assert cfg.model == plain.model and cfg.physics == plain.physics
    # every validation and test image counted in the results is evaluated
    for split in ("val", "test"):
        batches = math.ceil(cfg.data[f"{split}_size"] / cfg.data.eval_batch_size)
        assert batches <= _evaluated_batches(cfg, split), split
    validate_config(cfg)


@pytest.mark.parametrize("debug", DEBUG)
def test_debug_trainers_build(debug, compose_config, tmp_path):
    """Lightning accepts every debug trainer config (and the eval config takes them too)."""
    cfg = compose_config("eval", ["experiment=lpd", f"debug={debug}"], tmp_path)
    assert cfg.train is False and cfg.task_name == "debug"
    trainer = hydra.utils.instantiate(  # trainer_config: without learnct's fast_path key
        trainer_config(cfg), logger=False, callbacks=[], enable_progress_bar=False
    )
    assert isinstance(trainer.strategy, L.pytorch.strategies.SingleDeviceStrategy)
    assert trainer.strategy.root_device.type == "cpu"
    assert trainer.fast_dev_run is (debug == "fdr")
    assert trainer.overfit_batches == (1 if debug == "overfit" else 0)
    assert trainer.limit_test_batches == {"fdr": 1, "limit": 2}.get(debug, 1.0)
    profiler = L.pytorch.profilers.SimpleProfiler
    assert isinstance(trainer.profiler, profiler) is (debug == "profiler")


@pytest.fixture
def trainer_stages(monkeypatch) -> dict[str, dict[str, Any]]:
    """What the run's Trainer did in each stage, read when the stage ends: optimizer steps,
    validation and test batches per loader, the training stream's next index, the profiler."""
    seen: dict[str, dict[str, Any]] = {}

    def spy(stage: str) -> None:
        original = getattr(L.Trainer, stage)

        def wrapper(self, *args, **kwargs):
            out = original(self, *args, **kwargs)
            seen[stage] = {
                "steps": self.global_step,
                "val_batches": list(self.num_val_batches),
                "test_batches": list(self.num_test_batches),
                "stream_next": getattr(self.datamodule, "train_stream_next", None),
                "profiler": self.profiler,
            }
            return out

        monkeypatch.setattr(L.Trainer, stage, wrapper)

    for stage in ("fit", "validate", "test"):
        spy(stage)
    return seen


def _results(folder) -> list[dict[str, str]]:
    with open(folder / "results.csv", newline="") as fh:
        return list(csv.DictReader(fh))


@pytest.mark.parametrize(
    ("experiment", "fast"),
    [("fbp", []), ("lpd", ["model.n_iter=2"])],
    ids=["fbp", "lpd"],
)
def test_fdr_trains_one_step_then_tests_and_writes_results(
    experiment, fast, compose_config, run_config, trainer_stages, tmp_path
):
    """fast_dev_run suppresses checkpoints and loggers; the test pass then uses the weights
    after the one step and results.csv is written as in a real run."""
    overrides = [f"experiment={experiment}", "debug=fdr", "callbacks.progress_bar=null", *fast]
    result = run_config(compose_config("train", overrides, tmp_path))
    if experiment == "fbp":  # nothing to train: validated, then tested
        assert "fit" not in trainer_stages
        assert trainer_stages["validate"]["val_batches"] == [1]
    else:
        assert trainer_stages["fit"]["steps"] == 1
        assert trainer_stages["fit"]["val_batches"] == [1]
        assert trainer_stages["fit"]["stream_next"] == 2  # one batch of 2 stream images
    assert trainer_stages["test"]["test_batches"] == [1, 1]  # one batch of each test set
    assert result.objective is not None and result.objective > 0  # val/psnr
    assert not (tmp_path / "checkpoints").exists()
    assert not list(tmp_path.glob("csv/*/metrics.csv"))

    rows = result.rows
    assert [r["test_set"] for r in rows] == ["ellipses", "shepp_logan"]
    assert [r["n_images"] for r in rows] == [2, 2]  # all of them, in the one test batch
    for row in rows:
        assert math.isfinite(row["psnr"]) and 0 < row["psnr"] < 80
        assert 15 < row["fbp_psnr"] < 45
        if experiment == "fbp":
            assert row["psnr"] == pytest.approx(row["fbp_psnr"])
    written = _results(tmp_path)
    assert [(r["method"], r["test_set"]) for r in written] == [
        (r["method"], r["test_set"]) for r in rows
    ]
    assert [float(r["psnr"]) for r in written] == pytest.approx([r["psnr"] for r in rows])
    assert (tmp_path / "comparison.png").stat().st_size > 10_000


TINY_FBPUNET = ["experiment=fbpunet", "model.depth=2", "model.width=8", "data.batch_size=2"]


def test_overfit_trains_on_one_fixed_batch_and_its_loss_falls(
    compose_config, run_config, trainer_stages, tmp_path
):
    overrides = [*TINY_FBPUNET, "debug=overfit"]
    run_config(compose_config("train", overrides, tmp_path))
    fit = trainer_stages["fit"]
    assert fit["steps"] == 12
    assert fit["stream_next"] == 2  # every step trained on stream images 0 and 1
    assert fit["val_batches"] == [1]
    (metrics,) = tmp_path.glob("csv/*/metrics.csv")
    with open(metrics, newline="") as fh:
        losses = [float(r["train/loss_step"]) for r in csv.DictReader(fh) if r["train/loss_step"]]
    assert len(losses) == 12
    assert losses[-1] < 0.5 * losses[0]


def test_limit_runs_two_short_epochs_with_checkpoints(
    compose_config, run_config, trainer_stages, tmp_path
):
    result = run_config(compose_config("train", [*TINY_FBPUNET, "debug=limit"], tmp_path))
    fit = trainer_stages["fit"]
    assert fit["steps"] == 4 and fit["val_batches"] == [2]
    assert fit["stream_next"] == 1000 + 2 * 2  # epoch 2 of the stream (train_size 1000)
    assert trainer_stages["test"]["test_batches"] == [2, 2]
    assert [r["n_images"] for r in result.rows] == [4, 4]
    checkpoints = sorted(p.name for p in (tmp_path / "checkpoints").glob("*.ckpt"))
    assert "last.ckpt" in checkpoints and any(n.startswith("step_") for n in checkpoints)


def test_profiler_times_every_training_step(compose_config, run_config, trainer_stages, tmp_path):
    run_config(compose_config("train", [*TINY_FBPUNET, "debug=profiler"], tmp_path))
    profiler = trainer_stages["fit"]["profiler"]
    assert isinstance(profiler, L.pytorch.profilers.SimpleProfiler)
    assert len(profiler.recorded_durations["run_training_batch"]) == 5
    assert all(t > 0 for t in profiler.recorded_durations["run_training_batch"])
