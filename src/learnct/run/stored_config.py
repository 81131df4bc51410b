"""A config read back from disk is data, not code.

``make report`` and :func:`learnct.reporting.weights.verify_weights` rebuild methods, data and
physics from the configs stored in run folders (``config.json``) and beside committed weights
(``weights/config.json``). Run folders are copied between machines, and Hydra instantiates any
importable ``_target_`` (``torch.load``, ``os.system`` ...), so before anything is built from
such a file :func:`check_stored_targets` requires every ``_target_`` in the sections that are
instantiated (:data:`INSTANTIATED`) to be one of :func:`allowed_targets`: learnct's method classes,
``CTDataModule``, ``make_physics``, torch's optimisers and learning-rate schedulers and the
learning-rate factors of :mod:`learnct.methods.lr_schedules`, by exact name (a prefix would let
``learnct.<module>.os.system`` through). A stored config was written resolved, so an interpolation
(``${...}``, which can build a node) is refused too. A new class that the configs in ``configs/``
name in these sections must be added to :func:`allowed_targets`.

What a user types on the command line or writes in their own configs is their code and is not
restricted.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from learnct.run.results import ResultsError

__all__ = ["INSTANTIATED", "allowed_targets", "check_stored_targets"]

#: The sections of a stored config that are instantiated when it is read back.
INSTANTIATED = ("model", "data", "physics")


@functools.cache
def allowed_targets() -> frozenset[str]:
    """The ``_target_`` names a stored config may hold (see the module docstring)."""
    import torch.optim
    from torch.optim import lr_scheduler

    import learnct.data
    import learnct.methods
    import learnct.physics
    from learnct.methods import lr_schedules

    ours = [*learnct.methods.METHODS.values(), learnct.data.CTDataModule]
    ours.append(learnct.physics.make_physics)
    ours += [getattr(lr_schedules, name) for name in lr_schedules.__all__]
    names = set()
    for obj in ours:  # its own module's name and the package's that exports it
        names.add(f"{obj.__module__}.{obj.__qualname__}")
        for package in (learnct.methods, learnct.data, learnct.physics):
            if vars(package).get(obj.__name__) is obj:
                names.add(f"{package.__name__}.{obj.__name__}")
    for module, base in (
        (torch.optim, torch.optim.Optimizer),
        (lr_scheduler, lr_scheduler.LRScheduler),
    ):
        names |= {
            f"{module.__name__}.{name}"
            for name, obj in vars(module).items()
            if isinstance(obj, type)
            and issubclass(obj, base)
            and obj is not base
            and not name.startswith("_")
        }
    return frozenset(names)


def check_stored_targets(config: Mapping[str, Any], source: str | Path) -> None:
    """Raise :class:`ResultsError` naming ``source`` (the file ``config`` was read from), the
    key and the refused value unless every ``_target_`` in ``config``'s :data:`INSTANTIATED`
    sections is an :func:`allowed_targets` name and none of their values is an interpolation."""
    if not isinstance(config, Mapping):
        raise ResultsError(f"{source}: not a config (a JSON object)")
    for section in INSTANTIATED:
        _check(config.get(section), section, source)


def _check(node: Any, where: str, source: str | Path) -> None:
    if isinstance(node, Mapping):
        for key, value in node.items():
            if key == "_target_" and not (isinstance(value, str) and value in allowed_targets()):
                raise ResultsError(
                    f"{source}: {where}._target_={value!r} refused: a stored config may only "
                    "name learnct's methods, CTDataModule, make_physics, torch optimisers "
                    "or schedulers and learnct's learning-rate factors (rerun the run with "
                    "this code to rewrite its config)"
                )
            _check(value, f"{where}.{key}", source)
    elif isinstance(node, list | tuple):
        for index, value in enumerate(node):
            _check(value, f"{where}[{index}]", source)
    elif isinstance(node, str) and "${" in node:
        raise ResultsError(
            f"{source}: {where}={node!r} refused: a stored config is written resolved and "
            "holds no interpolations"
        )
