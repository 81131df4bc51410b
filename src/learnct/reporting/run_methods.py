"""Rebuild a finished run's method from its run folder: ``config.json`` (the resolved config
that ``learnct-train`` writes) plus, for learned methods, the checkpoint that was tested."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import hydra
from omegaconf import DictConfig, OmegaConf

from learnct.methods.base import ReconstructionMethod
from learnct.methods.checkpoints import load_weights
from learnct.physics import PhysicsPreset, RayTransform

__all__ = [
    "ReportError",
    "RunMethod",
    "load_run_config",
    "load_run_method",
    "method_checkpoint",
    "reference_datamodule",
]


class ReportError(ValueError):
    """A run folder that cannot be used for a figure: names the folder and what is wrong."""


@dataclasses.dataclass
class RunMethod:
    """A method rebuilt from a run folder, ready to ``reconstruct``."""

    name: str
    folder: Path
    cfg: DictConfig
    model: ReconstructionMethod
    checkpoint: Path | None


def load_run_config(folder: Path) -> DictConfig:
    """The resolved config a run wrote to ``<folder>/config.json``."""
    path = Path(folder) / "config.json"
    try:
        return OmegaConf.create(json.loads(path.read_text()))
    except (OSError, ValueError) as err:
        raise ReportError(f"{path}: cannot read the run's config ({err})") from err


def method_checkpoint(folder: Path, cfg: DictConfig) -> Path:
    """The checkpoint a run tested: ``ckpt_path`` for ``make eval`` runs, else the best
    checkpoint in ``<folder>/checkpoints`` (``last.ckpt`` when it is the only one)."""
    given = cfg.get("ckpt_path")
    if given and not cfg.get("train", True):
        path = Path(given)
        if not path.is_absolute() and not path.is_file():
            path = Path(folder) / given
        if not path.is_file():
            raise ReportError(f"{folder}: its checkpoint {given} no longer exists")
        return path
    ckpts = sorted((Path(folder) / "checkpoints").glob("*.ckpt"))
    best = [p for p in ckpts if not p.name.startswith("last")]
    if best or ckpts:
        return (best or ckpts)[-1]
    raise ReportError(f"{folder}: no checkpoint in {Path(folder) / 'checkpoints'}")


def load_run_method(folder: Path, operator: RayTransform) -> RunMethod:
    """Instantiate the run's model on ``operator`` and load the weights it was tested with."""
    cfg = load_run_config(folder)
    if "model" not in cfg:
        raise ReportError(f"{folder}/config.json has no model section")
    model = hydra.utils.instantiate(cfg.model, _partial_=True, _convert_="all")(operator=operator)
    checkpoint = None
    if getattr(model, "trainable", True):
        checkpoint = method_checkpoint(folder, cfg)
        try:
            load_weights(model, checkpoint, operator.geometry)
        except (ValueError, KeyError, RuntimeError) as err:
            raise ReportError(f"{folder}: {err}") from err
    model.eval()
    return RunMethod(type(model).__name__, Path(folder), cfg, model, checkpoint)


def reference_datamodule(
    cfg: DictConfig, preset: PhysicsPreset, operator: RayTransform, **overrides: Any
):
    """The test data of ``cfg`` (its data section) on ``preset``, with keyword overrides of the
    DataModule's arguments (e.g. ``photons``, ``test_size``), set up for testing."""
    datamodule = hydra.utils.instantiate(cfg.data, _partial_=True, _convert_="all")(
        physics=preset, operator=operator, **overrides
    )
    datamodule.setup("test")
    return datamodule
