"""Checkpoint identity: which method and geometry a checkpoint was trained for.

``ReconstructionMethod.on_save_checkpoint`` stores ``checkpoint["learnct"] = {"method",
"geometry"}``; ``check_checkpoint`` refuses a file that is truncated, corrupt, not a learnct
checkpoint, or from another method or geometry, with a message that says which.
``load_weights`` starts a model from a checkpoint's weights (a warm start: the optimiser, the
schedule and the step count start afresh).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import torch

from learnct.physics.geometry import Geometry

__all__ = ["check_architecture", "check_checkpoint", "checkpoint_identity", "load_weights"]


def checkpoint_identity(method: object, geometry: Geometry) -> dict[str, Any]:
    """What ``on_save_checkpoint`` records: the method's class name and every geometry field."""
    fields = dataclasses.asdict(geometry)
    fields["kind"] = geometry.kind
    return {"method": type(method).__name__, "geometry": fields}


def check_checkpoint(path: str | Path, method_name: str, geometry: Geometry) -> dict[str, Any]:
    """Load ``path`` (weights only, on the CPU) and check it belongs to ``method_name`` on
    ``geometry``; returns the checkpoint dict. Raises ``ValueError`` naming the problem."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"checkpoint {path} does not exist")
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # truncated zip, wrong format, unpicklable content
        raise ValueError(
            f"checkpoint {path} is truncated or corrupt ({type(err).__name__}: "
            f"{str(err).splitlines()[0][:200]})"
        ) from err
    identity = checkpoint.get("learnct") if isinstance(checkpoint, dict) else None
    if not isinstance(identity, dict):
        raise ValueError(f"{path} is not a learnct checkpoint (no 'learnct' record)")
    if identity.get("method") != method_name:
        raise ValueError(
            f"checkpoint {path} is a {identity.get('method')} checkpoint, not {method_name}: "
            f"evaluate it with the matching experiment"
        )
    expected = checkpoint_identity(None, geometry)["geometry"]
    saved = identity.get("geometry", {})
    diff = sorted(k for k in expected if saved.get(k) != expected[k])
    if diff:
        details = ", ".join(f"{k}: {saved.get(k)!r} != {expected[k]!r}" for k in diff)
        raise ValueError(
            f"checkpoint {path} was trained for another geometry ({details}): use its physics"
        )
    return checkpoint


def check_architecture(
    model: torch.nn.Module, checkpoint: dict[str, Any], path: str | Path
) -> None:
    """Raise ``ValueError`` unless ``checkpoint``'s weights fit ``model`` key for key and shape;
    the message names the model settings that differ (from the checkpoint's hyperparameters)
    and the overrides that fit it, e.g. ``model.depth=3``."""
    saved = checkpoint.get("state_dict")
    if not isinstance(saved, dict):
        raise ValueError(f"checkpoint {path} holds no state_dict (no weights)")
    own = model.state_dict()
    missing = sorted(set(own) - set(saved))
    unexpected = sorted(set(saved) - set(own))
    reshaped = sorted(k for k in set(own) & set(saved) if own[k].shape != saved[k].shape)
    if not (missing or unexpected or reshaped):
        return
    parts = [
        f"{label} {', '.join(keys[:3])}{' ...' if len(keys) > 3 else ''}"
        for label, keys in (
            ("missing", missing),
            ("unexpected", unexpected),
            ("shape differs:", reshaped),
        )
        if keys
    ]
    theirs = checkpoint.get("hyper_parameters") or {}
    ours = dict(getattr(model, "hparams", {}))
    differ = sorted(k for k in theirs if k in ours and theirs[k] != ours[k])
    fix = (
        "use the settings it was trained with: "
        + " ".join(f"model.{k}={theirs[k]}" for k in differ)
        if differ
        else "its architecture settings (model.*) differ; use the ones it was trained with"
    )
    raise ValueError(
        f"checkpoint {path} does not fit this {type(model).__name__} ({'; '.join(parts)}): {fix}"
    )


def load_weights(model: torch.nn.Module, path: str | Path, geometry: Geometry) -> int:
    """Copy the weights of checkpoint ``path`` (full or stripped, float32 or float16) into
    ``model`` after ``check_checkpoint`` and ``check_architecture``. Returns the step the
    checkpoint was saved at (0 when it does not say). Raises ``ValueError`` naming the problem."""
    checkpoint = check_checkpoint(path, type(model).__name__, geometry)
    check_architecture(model, checkpoint, path)
    model.load_state_dict(checkpoint["state_dict"])  # casts float16 weights to the model's dtype
    return int(checkpoint.get("global_step") or 0)
