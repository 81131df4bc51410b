"""Config -> the run's parts: physics (preset and operator), DataModule, method, loggers,
callbacks and trainer.

The physics is built once (preset -> geometry -> ``RayTransform``) and injected into both the
DataModule (simulation) and the method (reconstruction), so the two never disagree. A
component's own argument checks become a :class:`ConfigError` that names its config group.
torch and Lightning are imported inside the functions: a config mistake fails before they load.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import TYPE_CHECKING, Any

import hydra
from omegaconf import DictConfig, OmegaConf

from learnct.run.config_checks import ConfigError

if TYPE_CHECKING:
    import lightning as L

    from learnct.physics import PhysicsPreset, RayTransform

__all__ = [
    "CONFIG_DIR",
    "GEOMETRY_OVERRIDES",
    "build_component",
    "build_datamodule",
    "build_method",
    "build_physics",
    "build_trainer",
    "instantiate_all",
    "user_errors",
]

#: The Hydra configs of the repository (``configs/`` beside ``src/``).
CONFIG_DIR = Path(__file__).resolve().parents[3] / "configs"
#: ``physics.*`` keys that replace a field of the preset's geometry when set.
GEOMETRY_OVERRIDES = ("image_size", "n_angles", "n_detectors")


def user_errors() -> tuple[type[Exception], ...]:
    """Errors that are the user's to fix: printed as one line, exit status 2."""
    from learnct.data.errors import DataError

    return (ConfigError, DataError)


def build_physics(cfg: DictConfig) -> tuple[PhysicsPreset, RayTransform]:
    """The run's physics preset (with any ``physics.photons`` and geometry overrides) and its
    operator."""
    from learnct.physics import PRESETS, RayTransform

    name = OmegaConf.select(cfg, "physics.preset")
    if name not in PRESETS:
        raise ConfigError(f"physics.preset={name!r} is not valid: choose one of {sorted(PRESETS)}")
    preset = PRESETS[name]()
    photons = cfg.physics.get("photons")
    if photons is not None:
        try:
            preset = dataclasses.replace(preset, photons=photons)
        except ValueError as err:
            raise ConfigError(f"physics.{err}") from err
    preset = _with_geometry_overrides(preset, cfg)
    try:
        operator = RayTransform(preset.geometry, backend=cfg.physics.get("backend", "auto"))
    except ValueError as err:
        raise ConfigError(f"physics.backend: {err}") from err
    return preset, operator


def _with_geometry_overrides(preset: PhysicsPreset, cfg: DictConfig) -> PhysicsPreset:
    """``preset`` with the non-null ``physics.{image_size,n_angles,n_detectors}``; the
    geometry's own validation becomes a ``ConfigError`` naming the keys."""
    changes = {k: cfg.physics.get(k) for k in GEOMETRY_OVERRIDES if cfg.physics.get(k) is not None}
    if not changes:
        return preset
    geometry = preset.geometry
    fields = {f.name: getattr(geometry, f.name) for f in dataclasses.fields(geometry) if f.init}
    try:
        geometry = type(geometry)(**{**fields, **changes})
    except ValueError as err:
        keys = ", ".join(f"physics.{k}={v}" for k, v in changes.items())
        raise ConfigError(f"{keys} on the {preset.name} geometry: {err}") from err
    return dataclasses.replace(preset, geometry=geometry)


def build_component(group: str, build: Any) -> Any:
    """``build()``, with a component's own argument checks reported as a ``ConfigError`` of
    the config group (``data: batch_size must be ...``)."""
    from hydra.errors import InstantiationException
    from lightning.fabric.utilities.exceptions import MisconfigurationException

    try:
        return build()
    except (ValueError, TypeError, InstantiationException, MisconfigurationException) as err:
        if isinstance(err, user_errors()):
            raise
        cause = err
        while isinstance(cause, InstantiationException) and cause.__cause__ is not None:
            cause = cause.__cause__
        message = str(cause).strip().splitlines()[0] if str(cause).strip() else repr(cause)
        raise ConfigError(f"{group}: {message} (check the {group}.* settings)") from err


def build_datamodule(cfg: DictConfig, preset: PhysicsPreset, operator: RayTransform) -> Any:
    """``cfg.data`` instantiated on the run's preset and operator (passed as objects)."""
    return build_component(
        "data",
        lambda: hydra.utils.instantiate(cfg.data, _partial_=True, _convert_="all")(
            physics=preset, operator=operator
        ),
    )


def build_method(cfg: DictConfig, operator: RayTransform) -> Any:
    """``cfg.model`` instantiated on the run's operator."""
    return build_component(
        "model",
        lambda: hydra.utils.instantiate(cfg.model, _partial_=True, _convert_="all")(
            operator=operator
        ),
    )


def instantiate_all(group: DictConfig | None) -> list[Any]:
    """Every non-null entry of a config group of objects (loggers, callbacks)."""
    if not group:
        return []
    return [hydra.utils.instantiate(c) for c in group.values() if c is not None]


def build_trainer(cfg: DictConfig, loggers: list[Any], callbacks: list[Any], **overrides: Any):
    """``cfg.trainer`` with ``loggers`` (none: no logging), ``callbacks`` and atomic
    checkpoint writes; ``overrides`` replace trainer arguments (e.g. ``devices=1``)."""
    from learnct.run.atomic_checkpoint import AtomicCheckpointIO

    trainer: L.Trainer = build_component(
        "trainer",
        lambda: hydra.utils.instantiate(
            cfg.trainer,
            logger=loggers or False,
            callbacks=callbacks,
            plugins=[AtomicCheckpointIO()],
            **overrides,
        ),
    )
    return trainer
