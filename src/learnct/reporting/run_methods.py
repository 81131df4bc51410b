"""Rebuild a finished run's method from its run folder (:mod:`learnct.run.results`): its
``config.json`` (a stored config: only learnct's own targets, :mod:`learnct.run.stored_config`)
plus, for learned methods, the checkpoint that was tested. A folder that cannot be used raises
:class:`~learnct.run.results.ResultsError` naming it and what is wrong."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import hydra
from omegaconf import DictConfig, OmegaConf

from learnct.methods.base import ReconstructionMethod
from learnct.methods.checkpoints import load_weights
from learnct.physics import PhysicsPreset, RayTransform
from learnct.run.results import CONFIG_FILE, ResultsError, read_run_config, tested_checkpoint
from learnct.run.stored_config import check_stored_targets

__all__ = ["RunMethod", "load_run_config", "load_run_method", "reference_datamodule"]


@dataclasses.dataclass
class RunMethod:
    """A method rebuilt from a run folder, ready to ``reconstruct``."""

    name: str
    folder: Path
    cfg: DictConfig
    model: ReconstructionMethod
    checkpoint: Path | None


def load_run_config(folder: Path) -> DictConfig:
    """The resolved config a run wrote to ``<folder>/config.json``, after
    :func:`~learnct.run.stored_config.check_stored_targets`: only learnct's own classes are
    instantiated from it."""
    config = read_run_config(folder)
    check_stored_targets(config, Path(folder) / CONFIG_FILE)
    return OmegaConf.create(config)


def load_run_method(folder: Path, operator: RayTransform) -> RunMethod:
    """Instantiate the run's model on ``operator`` and load the weights it was tested with."""
    cfg = load_run_config(folder)
    if "model" not in cfg:
        raise ResultsError(f"{folder}/config.json has no model section")
    model = hydra.utils.instantiate(cfg.model, _partial_=True, _convert_="all")(operator=operator)
    checkpoint = None
    if getattr(model, "trainable", True):
        checkpoint = tested_checkpoint(folder, OmegaConf.to_container(cfg))
        try:
            load_weights(model, checkpoint, operator.geometry)
        except (ValueError, KeyError, RuntimeError) as err:
            raise ResultsError(f"{folder}: {err}") from err
    model.eval()
    return RunMethod(model.result_name, Path(folder), cfg, model, checkpoint)


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
