"""Composing small training configs for the reliability tests."""

from __future__ import annotations

from pathlib import Path

from hydra import compose, initialize_config_dir
from omegaconf import DictConfig

from learnct.run import CONFIG_DIR

#: LGD with one iteration on a few images: seconds per run on a CPU.
TINY_LGD = [
    "experiment=lgd",
    "model.n_iter=1",
    "data.batch_size=1",
    "data.eval_batch_size=2",
    "data.val_size=2",
    "data.test_size=2",
    "data.train_size=50",
    "logger=csv",
    "callbacks=default",
    "callbacks.progress_bar=null",
]


def compose_train(overrides: list[str], output_dir: Path, config: str = "train") -> DictConfig:
    """The ``train`` (or ``eval``) config with ``overrides``, writing to ``output_dir``."""
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        return compose(config, overrides=[f"paths.output_dir={output_dir}", *overrides])
