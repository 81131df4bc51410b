"""A checkpoint's own settings win over the config's defaults: ``make eval CKPT=...`` and
``init_weights=...`` build the method as the checkpoint stores it. Both also take a committed
model's name (``CKPT=lpd-fan_lowdose``: :mod:`learnct.methods.pretrained`), which
:func:`resolve_checkpoint_names` replaces by its file before anything reads the config.

A learned method's checkpoint stores its constructor arguments (``hyper_parameters``). Before
the method is built, every setting that shapes the trained function (architecture, FBP
filter, start: :func:`~learnct.methods.checkpoints.stored_settings`) is taken from the
checkpoint unless the user set it on the command line; each one that differs from the config
is printed. This needs the command line: in a Hydra run (``learnct-train``, ``learnct-eval``,
``make eval``); a config composed in-process (tests, notebooks) is taken as given, every
setting as if the user had set it. A setting the user did set is kept: if it does not fit the
weights, ``check_architecture`` refuses the checkpoint and names the values that fit.
"""

from __future__ import annotations

from typing import Any

from omegaconf import DictConfig, open_dict

from learnct.run.command_line import command_line_keys
from learnct.run.config_checks import ConfigError

__all__ = [
    "adopt_checkpoint_settings",
    "command_line_model_keys",
    "resolve_checkpoint_names",
]

#: The config keys that name a checkpoint to load.
CHECKPOINT_KEYS = ("ckpt_path", "init_weights")


def resolve_checkpoint_names(cfg: DictConfig) -> list[str]:
    """Replace a committed model's name in ``ckpt_path`` or ``init_weights`` by its checkpoint
    file; returns a note per replacement. A value that looks like a name (no ``/``, no
    ``.ckpt``) but is neither a file nor a committed model raises a ``ConfigError`` listing the
    names; paths are left to the checks that follow."""
    from pathlib import Path

    notes = []
    for key in CHECKPOINT_KEYS:
        value = cfg.get(key)
        if not isinstance(value, str) or "/" in value or value.endswith(".ckpt"):
            continue
        if Path(value).is_file():
            continue
        from learnct.methods.pretrained import pretrained_models  # torch: only for a name

        models = pretrained_models()
        if value not in models:
            raise ConfigError(
                f"{key}={value!r} is neither a checkpoint file nor a committed model: give a "
                f"path to a .ckpt or one of {sorted(models)}"
            )
        with open_dict(cfg):
            cfg[key] = str(models[value].path)
        notes.append(f"{key}={value} is the committed model {models[value].path}")
    return notes


def command_line_model_keys() -> set[str] | None:
    """The ``model.<key>`` settings given on the command line; ``None`` outside a Hydra
    run."""
    keys = command_line_keys()
    if keys is None:
        return None
    return {key.split(".", 2)[1] for key in keys if key.startswith("model.")}


def _checkpoint_to_load(cfg: DictConfig) -> tuple[str, Any] | None:
    """(config key, path) of the checkpoint whose settings the method takes: the one to test
    (``train=false``), or the weights training starts from."""
    if not cfg.get("train", True):
        return ("ckpt_path", cfg.get("ckpt_path")) if cfg.get("ckpt_path") else None
    if cfg.get("init_weights"):
        return "init_weights", cfg.init_weights
    return None


def adopt_checkpoint_settings(cfg: DictConfig, user_keys: set[str] | None = None) -> list[str]:
    """Set ``cfg.model``'s settings to those the checkpoint to load stores, except the keys in
    ``user_keys`` (default: :func:`command_line_model_keys`); returns a note per changed
    setting. Nothing for FBP/TV, when no checkpoint is loaded, or outside a Hydra run with no
    ``user_keys``."""
    import hydra

    from learnct.methods.checkpoints import read_checkpoint, stored_settings

    user_keys = command_line_model_keys() if user_keys is None else user_keys
    chosen = _checkpoint_to_load(cfg)
    target = cfg.get("model", {}).get("_target_")
    if user_keys is None or chosen is None or target is None:
        return []
    cls = hydra.utils.get_class(target)
    if not getattr(cls, "trainable", True):
        return []
    key, path = chosen
    try:
        checkpoint = read_checkpoint(path)
    except ValueError as err:
        raise ConfigError(f"{key}: {err}") from err
    if checkpoint["learnct"].get("method") != cls.__name__:
        return []  # check_checkpoint refuses it with the matching experiment to use
    notes = []
    with open_dict(cfg.model):
        upgrades = getattr(cls, "init_upgrades", frozenset()) if key == "init_weights" else ()
        for name, value in stored_settings(cls, checkpoint).items():
            if name in user_keys or name in upgrades:
                continue
            if name not in cfg.model or cfg.model[name] != value:
                was = cfg.model.get(name, "<unset>")
                notes.append(f"model.{name}={value!r} from {key} (the config had {was!r})")
                cfg.model[name] = value
    return notes
