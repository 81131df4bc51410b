"""``learnct-eval`` / ``make eval EXP=<name> CKPT=<path>``: evaluate a checkpoint (or FBP/TV,
which need none) on the fixed test set; prints the results row and writes ``results.csv``."""

from __future__ import annotations

import hydra
from omegaconf import DictConfig

from learnct.run.build import CONFIG_DIR
from learnct.run.cli import run_from_cli

__all__ = ["main"]


@hydra.main(version_base="1.3", config_path=str(CONFIG_DIR), config_name="eval")
def main(cfg: DictConfig) -> float | None:
    return run_from_cli(cfg)


if __name__ == "__main__":
    main()
