"""Committed models by name: ``learnct.pretrained("lpd-fan_lowdose")``.

The committed weights live in ``experiments/<setup>/weights/<Method>.ckpt`` (written by
``make report WEIGHTS=1``, :mod:`learnct.reporting.weights`). A model's name is
``<method>-<setup>``, the method as in ``configs/model`` (``lpd``, ``lgd``, ``fbpunet``,
``learned_inverse``). A model is rebuilt from what its checkpoint stores, with no overrides:
the method class and every constructor argument (``hyper_parameters``), and the geometry it
was trained for (the ``learnct`` record), on a ``RayTransform`` of that geometry.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from learnct.methods.base import ReconstructionMethod
from learnct.methods.checkpoints import (
    apply_weights,
    checkpoint_geometry,
    read_checkpoint,
    stored_settings,
)
from learnct.physics.geometry import Geometry, geometry_differences
from learnct.physics.operator import RayTransform

__all__ = [
    "WEIGHTS_ROOT",
    "PretrainedModel",
    "check_run_geometry",
    "checkpoint_method",
    "load_pretrained",
    "pretrained_models",
    "pretrained_names",
]

#: Where the committed weights are: ``<repository>/experiments/<setup>/weights/``.
WEIGHTS_ROOT = Path(__file__).resolve().parents[3] / "experiments"


@dataclass(frozen=True)
class PretrainedModel:
    """A committed checkpoint: its name, file, method (config name and class), setup and
    variant (``weighted`` for ``LearnedPrimalDual-weighted.ckpt``; ``""``: none)."""

    name: str
    path: Path
    method: str
    class_name: str
    setup: str
    variant: str = ""

    @property
    def result_name(self) -> str:
        """The method's name in results tables (the method's ``result_name``; the file's
        stem): ``LearnedPrimalDual``, ``LearnedPrimalDual-weighted``."""
        return self.path.stem


def _method_classes() -> dict[str, tuple[str, type[ReconstructionMethod]]]:
    """Class name -> (config name, class) of every method."""
    from learnct.methods import METHODS

    return {cls.__name__: (name, cls) for name, cls in METHODS.items()}


def checkpoint_method(checkpoint: dict[str, Any], path: str | Path) -> type[ReconstructionMethod]:
    """The method class a learnct checkpoint (:func:`read_checkpoint`'s) was saved by."""
    class_name = checkpoint["learnct"].get("method")
    classes = _method_classes()
    if class_name not in classes:
        raise ValueError(f"checkpoint {path} is of an unknown method {class_name!r}")
    return classes[class_name][1]


def check_run_geometry(
    cls: type[ReconstructionMethod],
    own: Geometry,
    given: Geometry,
    name: str,
    allow_mismatch: bool,
    given_name: str = "the one given",
    how_own: str = "give no geometry",
) -> list[str]:
    """Whether the model ``name`` of class ``cls``, trained for ``own``, may run on ``given``
    (called ``given_name`` in the message, whose remedy says ``how_own`` runs it on its own):
    returns the differences (``"field: own != given"``; empty: the same acquisition). Raises
    ``ValueError`` listing them when they differ and the user did not ``allow_mismatch``, or
    ever for a ``fixed_geometry`` method (its weights' shapes are its geometry's)."""
    differ = geometry_differences(own, given)
    if differ and (cls.fixed_geometry or not allow_mismatch):
        remedy = (
            f"a {cls.__name__}'s weights fix the geometry it was trained for, so it runs on "
            f"that one only ({how_own})"
            if cls.fixed_geometry
            else f"run it on its own ({how_own}), or allow the mismatch "
            "(--allow-geometry-mismatch; results unvalidated)"
        )
        raise ValueError(
            f"{name} was trained for another geometry than {given_name} "
            f"({'; '.join(f'{d} (model != given)' for d in differ)}): {remedy}"
        )
    return differ


def pretrained_models(root: Path = WEIGHTS_ROOT) -> dict[str, PretrainedModel]:
    """Every committed checkpoint under ``root`` (``<setup>/weights/<Class>.ckpt``, a variant
    ``<Class>-<variant>.ckpt``: its method's ``result_name``), by name (``lpd-fan_lowdose``,
    ``lpd-weighted-fan_lowdose``)."""
    classes = _method_classes()
    models = {}
    for path in sorted(Path(root).glob("*/weights/*.ckpt")):
        class_name, _, variant = path.stem.partition("-")
        if class_name not in classes:
            continue
        method, setup = classes[class_name][0], path.parents[1].name
        name = "-".join(part for part in (method, variant, setup) if part)
        models[name] = PretrainedModel(name, path, method, class_name, setup, variant)
    return models


def pretrained_names(root: Path = WEIGHTS_ROOT) -> list[str]:
    """The names :func:`load_pretrained` accepts (``lpd-fan_lowdose``, ...)."""
    return sorted(pretrained_models(root))


def resolve_checkpoint(name_or_path: str | Path, root: Path = WEIGHTS_ROOT) -> Path:
    """The checkpoint file of a committed model's name, or ``name_or_path`` itself when it is
    a file; else a ``ValueError`` listing the names."""
    if not isinstance(name_or_path, (str, os.PathLike)):
        raise ValueError(
            "give a committed model's name (learnct.pretrained_names()) or a checkpoint's "
            f"path, got {type(name_or_path).__name__} {name_or_path!r}"
        )
    models = pretrained_models(root)
    if str(name_or_path) in models:
        return models[str(name_or_path)].path
    if Path(name_or_path).is_file():
        return Path(name_or_path)
    raise ValueError(
        f"{str(name_or_path)!r} is neither a committed model nor a checkpoint file: choose one "
        f"of {sorted(models) or '(none committed)'} or give the path of a .ckpt"
    )


def load_pretrained(
    name_or_path: str | Path,
    expected: type[ReconstructionMethod] | None = None,
    backend: str = "auto",
    geometry: Geometry | None = None,
    channels_last: bool = True,
    autocast: str | None = None,
    compile: bool = False,
) -> ReconstructionMethod:
    """The method of a committed model's name or of a checkpoint file, in eval mode on the
    CPU, built from the checkpoint alone (class, constructor arguments and geometry); call
    ``.to(device)`` to move it. ``expected``: refuse a checkpoint of another class.
    ``geometry``: run it on this geometry instead of its own (the caller has asked for it:
    :func:`check_run_geometry`, mismatch allowed). ``channels_last``: a
    learned method's CNN in channels-last layout (the same values; LPD reconstructs 1.2-1.6x
    faster on a CPU). ``autocast``, ``compile``: a learned method's execution flags (see
    :class:`~learnct.methods.learned.LearnedMethod`), those given here, not those the model
    trained with (bf16 is slow on CPUs without it; TorchInductor needs a C++ compiler).
    Raises ``ValueError`` naming the problem."""
    path = resolve_checkpoint(name_or_path)
    checkpoint = read_checkpoint(path)
    cls = checkpoint_method(checkpoint, path)
    class_name = cls.__name__
    if expected is not None and not issubclass(cls, expected):
        raise ValueError(
            f"checkpoint {path} is a {class_name} checkpoint, not {expected.__name__}: load it "
            f"with {class_name}.from_pretrained or learnct.pretrained"
        )
    own = checkpoint_geometry(checkpoint, path)
    if geometry is not None:
        check_run_geometry(
            cls, own, geometry, f"checkpoint {path}", True, how_own="pass geometry=None"
        )
    operator = RayTransform(geometry or own, backend=backend)
    settings = stored_settings(cls, checkpoint, everything=True)
    if cls.takes_execution_flags:
        settings.update(channels_last=channels_last, autocast=autocast, compile=compile)
    model = cls(operator, **settings)
    apply_weights(model, checkpoint, path)
    return model.eval()
