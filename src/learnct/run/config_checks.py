"""Cheap checks of a composed run config, before anything is built.

Each error is a :class:`ConfigError` that names the key, the value and what is allowed, so a
typo in a command line fails at once with a one-line message instead of a traceback from deep
inside torch, Lightning or Hydra. What the components check themselves when they are built
(geometry, model and data arguments) ``learnct.run.build`` reports the same way.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from learnct.checks import is_int

__all__ = ["ACCELERATORS", "ConfigError", "validate_config"]

ACCELERATORS = ("auto", "cpu", "gpu", "cuda", "mps", "tpu")


class ConfigError(ValueError):
    """A user mistake in the composed config: names the key, the value and what is allowed."""


def _get(cfg: DictConfig, key: str) -> Any:
    return OmegaConf.select(cfg, key, default=None)


def _has(cfg: DictConfig, key: str) -> bool:
    return OmegaConf.select(cfg, key, default="__missing__") != "__missing__"


def check_choice(cfg: DictConfig, key: str, allowed: Iterable[str]) -> None:
    """``key`` must be one of ``allowed`` (when the config has it)."""
    allowed = sorted(allowed)
    if _has(cfg, key) and _get(cfg, key) not in allowed:
        raise ConfigError(f"{key}={_get(cfg, key)!r} is not valid: choose one of {allowed}")


def check_int(cfg: DictConfig, key: str, minimum: int, nullable: bool = False) -> None:
    """``key`` must be an integer >= ``minimum`` (or null when ``nullable``)."""
    if not _has(cfg, key):
        return
    value = _get(cfg, key)
    if value is None and nullable:
        return
    if not is_int(value) or value < minimum:
        null = " or null" if nullable else ""
        raise ConfigError(f"{key}={value!r} is not valid: it must be an integer >= {minimum}{null}")


def validate_config(cfg: DictConfig) -> None:
    """Check the keys a user most often gets wrong; raises :class:`ConfigError`."""
    from learnct.config_names import BACKEND_NAMES, FILTERS, LOSS_NAMES, PRESET_NAMES, SOURCES

    check_int(cfg, "seed", 0)
    check_choice(cfg, "physics.preset", PRESET_NAMES)
    check_choice(cfg, "physics.backend", ["auto", *BACKEND_NAMES])
    check_int(cfg, "physics.image_size", 2, nullable=True)
    check_int(cfg, "physics.n_angles", 1, nullable=True)
    check_int(cfg, "physics.n_detectors", 1, nullable=True)
    check_choice(cfg, "data.source", SOURCES)
    for key in ("val_source", "test_source"):
        value = _get(cfg, f"data.{key}")
        for source in [value] if isinstance(value, str) else (value or []):
            if source not in SOURCES:
                raise ConfigError(
                    f"data.{key} names {source!r}, which is not valid: choose from "
                    f"{sorted(SOURCES)}"
                )
    check_int(cfg, "data.batch_size", 1)
    check_int(cfg, "data.eval_batch_size", 1, nullable=True)
    for split in ("train", "val", "test"):
        check_int(cfg, f"data.{split}_size", 1, nullable=True)
    check_int(cfg, "data.num_workers", 0)
    for key in ("model.filter", "model.fbp_filter"):
        check_choice(cfg, key, FILTERS)
    check_choice(cfg, "model.loss", LOSS_NAMES)
    check_choice(cfg, "trainer.accelerator", ACCELERATORS)
    max_steps = _get(cfg, "trainer.max_steps")
    if _has(cfg, "trainer.max_steps") and not (
        is_int(max_steps) and (max_steps == -1 or max_steps >= 1)
    ):
        raise ConfigError(
            f"trainer.max_steps={max_steps!r} is not valid: it must be an integer >= 1, or -1 "
            "(no limit: trainer.max_epochs decides)"
        )
    check_int(cfg, "max_nonfinite_steps", 1, nullable=True)
    resume = _get(cfg, "resume")
    if not (resume in (None, True, False) or (isinstance(resume, str) and resume)):
        raise ConfigError(
            f"resume={resume!r} is not valid: use true, false or a run folder "
            "(logs/<task_name>/runs/<name>)"
        )
    if _get(cfg, "resume") and _get(cfg, "ckpt_path"):
        raise ConfigError(
            f"resume=true and ckpt_path={_get(cfg, 'ckpt_path')!r} both say where to resume "
            "from: set only one (resume=true continues the newest run of this task_name)"
        )
    init_weights = _get(cfg, "init_weights")
    if init_weights is not None and not isinstance(init_weights, str):
        raise ConfigError(f"init_weights={init_weights!r} is not valid: give a checkpoint path")
    if init_weights and _get(cfg, "train") is False:
        raise ConfigError(
            f"init_weights={init_weights!r} only starts training; to evaluate a checkpoint "
            "use ckpt_path=... (make eval EXP=<name> CKPT=<file>)"
        )
    if init_weights and (_get(cfg, "resume") or _get(cfg, "ckpt_path")):
        raise ConfigError(
            f"init_weights={init_weights!r} starts a new run from weights, and resume/ckpt_path "
            "continue an old one: set only one (to resume a run that began from init_weights, "
            "drop init_weights: its last.ckpt already holds the weights)"
        )
    if init_weights and not Path(init_weights).is_file():
        raise ConfigError(f"init_weights={init_weights!r}: no such checkpoint file")
