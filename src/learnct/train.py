"""``learnct-train`` / ``make train EXP=<name>``: train (or, for FBP and TV, evaluate) one method
from a Hydra config, then test it on the fixed test set and print a results row. The run itself
is :func:`learnct.run.run`; failures are reported by :func:`learnct.run.cli.run_from_cli`."""

from __future__ import annotations

import hydra
from omegaconf import DictConfig

from learnct.run.build import CONFIG_DIR
from learnct.run.cli import run_from_cli

__all__ = ["main"]


@hydra.main(version_base="1.3", config_path=str(CONFIG_DIR), config_name="train")
def main(cfg: DictConfig) -> float | None:
    return run_from_cli(cfg)


if __name__ == "__main__":
    main()
