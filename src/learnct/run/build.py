"""Config -> the run's parts: physics (preset and operator), DataModule, method, loggers,
callbacks and trainer.

The physics is built once (preset -> geometry -> ``RayTransform``) and injected into both the
DataModule (simulation) and the method (reconstruction), so the two never disagree. A
component's own argument checks become a :class:`ConfigError` that names its config group.
torch and Lightning are imported inside the functions: a config mistake fails before they load.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import TYPE_CHECKING, Any

import hydra
from omegaconf import DictConfig, OmegaConf, open_dict

from learnct.run.config_checks import ConfigError

if TYPE_CHECKING:
    import lightning as L

    from learnct.physics import Physics, PhysicsPreset, RayTransform

__all__ = [
    "CONFIG_DIR",
    "build_component",
    "build_datamodule",
    "build_method",
    "build_physics",
    "build_trainer",
    "instantiate_all",
    "trainer_config",
    "user_errors",
]

#: The Hydra configs of the repository (``configs/`` beside ``src/``).
CONFIG_DIR = Path(__file__).resolve().parents[3] / "configs"


def user_errors() -> tuple[type[Exception], ...]:
    """Errors that are the user's to fix: printed as one line, exit status 2."""
    from learnct.data.errors import DataError

    return (ConfigError, DataError)


def build_physics(cfg: DictConfig) -> Physics:
    """The run's physics from ``cfg.physics`` (target :func:`learnct.physics.make_physics`):
    the preset with any ``photons`` and geometry overrides, and its operator; a bad value is a
    ``ConfigError`` naming it. A run folder written before the group had a ``_target_`` reads
    as that target. With ``trainer.fast_path`` the operator skips its NaN/inf input check."""
    section = OmegaConf.select(cfg, "physics")
    if not isinstance(section, DictConfig):
        raise ConfigError("physics: the config has no physics section (physics=<preset name>)")
    physics = OmegaConf.merge({"_target_": "learnct.physics.make_physics"}, section)
    built = build_component("physics", lambda: hydra.utils.instantiate(physics, _convert_="all"))
    if OmegaConf.select(cfg, "trainer.fast_path"):
        # no NaN/inf check per projection (a host read each): on the fast path the on-device
        # non-finite guard (learnct.run.nonfinite) watches every training step instead
        built[1].check_finite = False
    return built


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
    """``cfg.model`` instantiated on the run's operator, with the training step of
    ``trainer.fast_path`` (when set; see :mod:`learnct.methods.fast_path`) and, for the
    learned methods, the layout of ``trainer.channels_last``."""
    trainer = cfg.get("trainer") or {}
    fast_path = trainer.get("fast_path")
    extra: dict[str, Any] = {} if fast_path is None else {"fast_path": fast_path}
    if trainer.get("channels_last") and _takes_execution_flags(cfg.model):
        extra["channels_last"] = True
    return build_component(
        "model",
        lambda: hydra.utils.instantiate(cfg.model, _partial_=True, _convert_="all")(
            operator=operator, **extra
        ),
    )


def _takes_execution_flags(model: DictConfig) -> bool:
    """Whether the method class of ``model`` (its ``_target_``) takes the execution flags."""
    try:
        cls = hydra.utils.get_class(str(model.get("_target_")))
    except Exception:  # an unknown target: instantiating it reports the problem
        return False
    return bool(getattr(cls, "takes_execution_flags", False))


#: ``trainer`` keys that are learnct's, not Lightning's: ``build_method`` hands them to the method.
METHOD_KEYS = ("fast_path", "channels_last")


def trainer_config(cfg: DictConfig) -> DictConfig:
    """``cfg.trainer`` without the keys that are learnct's, not the Trainer's
    (:data:`METHOD_KEYS`). A copy of the whole config, so that the trainer's interpolations
    still resolve (when instantiated) against it."""
    root = copy.deepcopy(cfg)
    with open_dict(root.trainer):
        for key in METHOD_KEYS:
            root.trainer.pop(key, None)
    return root.trainer


def instantiate_all(group: DictConfig | None) -> list[Any]:
    """Every non-null entry of a config group of objects (loggers, callbacks); an entry whose
    package is not installed (TensorBoard, MLflow: optional) is a ``ConfigError`` naming it
    and how to install it."""
    if not group:
        return []
    return [_instantiate_entry(c) for c in group.values() if c is not None]


def _instantiate_entry(entry: DictConfig) -> Any:
    from hydra.errors import InstantiationException

    try:
        return hydra.utils.instantiate(entry)
    except InstantiationException as err:
        cause = err.__cause__
        while cause is not None and not isinstance(cause, ModuleNotFoundError):
            cause = cause.__cause__
        if cause is None:
            raise
        reason = str(cause).strip().splitlines()[0]
        raise ConfigError(
            f"{entry._get_full_key(None)}: {entry.get('_target_')} needs a package that is not "
            f"installed ({reason}); the logger backends learnct is tested with: "
            "pip install -e '.[loggers]'"
        ) from err


def build_trainer(cfg: DictConfig, loggers: list[Any], callbacks: list[Any], **overrides: Any):
    """``cfg.trainer`` with ``loggers`` (none: no logging), ``callbacks`` and atomic
    checkpoint writes; ``overrides`` replace trainer arguments (e.g. ``devices=1``). Without a
    progress bar among ``callbacks`` (``callbacks.progress_bar=null``) there is none: Lightning
    would otherwise add its own (unless ``trainer.enable_progress_bar`` says otherwise)."""
    from lightning.pytorch.callbacks import ProgressBar

    from learnct.run.atomic_checkpoint import AtomicCheckpointIO

    if "enable_progress_bar" not in cfg.trainer and not any(
        isinstance(c, ProgressBar) for c in callbacks
    ):
        overrides.setdefault("enable_progress_bar", False)

    trainer: L.Trainer = build_component(
        "trainer",
        lambda: hydra.utils.instantiate(
            trainer_config(cfg),
            logger=loggers or False,
            callbacks=callbacks,
            plugins=[AtomicCheckpointIO()],
            **overrides,
        ),
    )
    return trainer
