"""Checkpoint identity: which method and geometry a checkpoint was trained for.

``ReconstructionMethod.on_save_checkpoint`` stores ``checkpoint["learnct"] = {"method",
"geometry", "steps_before", "source"}`` (``steps_before``: the optimiser steps of the weights
the run started from, so that :func:`trained_steps` counts a warm-started model's whole
training; ``source``: the run that trained them, :func:`weights_source`);
``check_checkpoint`` refuses a URL, a missing file, and a file that is truncated, corrupt, not
a learnct checkpoint (it loads weights-only, so a pickled object is refused, never run), or
from another method or geometry, with a message that says which.
Every checkpoint a run, ``make report`` or the weights check loads is checked here first.
``load_weights`` starts a model from a checkpoint's weights (a warm start: the optimiser, the
schedule and the step count start afresh). ``drop_instance_norm_statistics`` lets a batch-norm
checkpoint load into the same net with ``norm=instance``.

Every reader of a checkpoint file goes through :func:`load_checkpoint_file`; within
:func:`reading_checkpoints_once` (a run's start: its settings, resume, sitting and weight
checks) each file is read from disk once, however many of them read it.
"""

from __future__ import annotations

import contextlib
import inspect
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch

from learnct.physics.geometry import (
    Geometry,
    geometry_differences,
    geometry_from_record,
    geometry_record,
)

__all__ = [
    "apply_weights",
    "architecture_settings",
    "check_architecture",
    "check_checkpoint",
    "checkpoint_geometry",
    "checkpoint_identity",
    "drop_instance_norm_statistics",
    "fit_state_dict",
    "load_checkpoint_file",
    "load_weights",
    "read_checkpoint",
    "reading_checkpoints_once",
    "run_stamp",
    "steps_after",
    "steps_before",
    "stored_settings",
    "trained_by",
    "trained_steps",
    "training_source",
    "weights_source",
]

#: What a batch norm holds beside its weight and bias, and an instance norm does not.
_RUNNING_STATISTICS = ("running_mean", "running_var", "num_batches_tracked")


def drop_instance_norm_statistics(model: torch.nn.Module, state_dict: dict[str, Any]) -> list[str]:
    """Remove from ``state_dict`` (in place) the batch-norm running statistics of the layers
    that are instance norms without running statistics in ``model``, and return their keys.

    Batch norm in training normalises each channel by the mean and variance over the batch and
    the pixels, and at test by running averages of them. At batch size 1 the training-time
    statistics are one image's, which is what ``InstanceNorm2d(affine=True)`` computes at train
    and test alike, with the same weight and bias. So a batch-norm net trained at batch size 1
    is evaluated as trained with ``model.norm=instance``; its running averages, which fit the
    training images' intensities only, are dropped.
    """
    instance = {
        name
        for name, module in model.named_modules()
        if isinstance(module, torch.nn.InstanceNorm2d) and not module.track_running_stats
    }
    dropped = [
        key
        for key in state_dict
        if "." in key
        and key.rsplit(".", 1)[1] in _RUNNING_STATISTICS
        and key.rsplit(".", 1)[0] in instance
    ]
    for key in dropped:
        del state_dict[key]
    return dropped


#: The files loaded within :func:`reading_checkpoints_once`, by (resolved path, mtime, size);
#: ``None`` outside it.
_loaded: dict[tuple[str, int, int], Any] | None = None


@contextlib.contextmanager
def reading_checkpoints_once() -> Iterator[None]:
    """Within this context :func:`load_checkpoint_file` reads each file once (a file changed
    since, in modification time or size, is read again); what it loaded is dropped at the
    end. Nested uses share the outermost one's files."""
    global _loaded
    if _loaded is not None:
        yield
        return
    _loaded = {}
    try:
        yield
    finally:
        _loaded = None


def load_checkpoint_file(path: str | Path, mmap: bool = False) -> Any:
    """``torch.load(path, map_location="cpu", weights_only=True)``: read once per file within
    :func:`reading_checkpoints_once` (the same object to every reader: do not modify it).
    ``mmap``: the tensors memory-mapped, not read (for readers of the metadata only)."""
    if _loaded is None:
        return torch.load(path, map_location="cpu", weights_only=True, mmap=mmap)
    stat = Path(path).stat()
    key = (str(Path(path).resolve()), stat.st_mtime_ns, stat.st_size)
    if key not in _loaded:
        _loaded[key] = torch.load(path, map_location="cpu", weights_only=True, mmap=mmap)
    return _loaded[key]


def checkpoint_identity(method: object, geometry: Geometry) -> dict[str, Any]:
    """What ``on_save_checkpoint`` records: the method's class name and every geometry field."""
    return {"method": type(method).__name__, "geometry": geometry_record(geometry)}


def read_checkpoint(path: str | Path, mmap: bool = False) -> dict[str, Any]:
    """Load ``path``, a local file (never a URL), weights only, on the CPU, and check it is a
    learnct checkpoint (it has the ``learnct`` record); returns the checkpoint dict. Raises
    ``ValueError`` naming the problem. ``mmap``: the tensors memory-mapped, not read (for
    readers of its records only)."""
    if "://" in str(path):
        raise ValueError(
            f"{path} is a URL: checkpoints are only loaded from local files (download it, "
            "check where it comes from, and pass its path)"
        )
    path = Path(path)
    if path.is_dir():
        patterns = ("*.ckpt", "checkpoints/*.ckpt", "runs/*/checkpoints/*.ckpt")
        found = [p for pattern in patterns for p in sorted(path.glob(pattern))][:3]
        hint = f" (it holds {', '.join(str(p) for p in found)})" if found else ""
        raise ValueError(
            f"checkpoint {path} is a folder: give a checkpoint file{hint}, e.g. a run's "
            "checkpoints/last.ckpt"
        )
    if not path.is_file():
        raise ValueError(f"checkpoint {path} does not exist")
    try:
        checkpoint = load_checkpoint_file(path, mmap=mmap)
    except Exception as err:  # truncated zip, wrong format, unpicklable content
        raise ValueError(
            f"checkpoint {path} is truncated or corrupt ({type(err).__name__}: "
            f"{str(err).splitlines()[0][:200]})"
        ) from err
    identity = checkpoint.get("learnct") if isinstance(checkpoint, dict) else None
    if not isinstance(identity, dict):
        raise ValueError(f"{path} is not a learnct checkpoint (no 'learnct' record)")
    return checkpoint


def checkpoint_geometry(checkpoint: dict[str, Any], path: str | Path) -> Geometry:
    """The geometry a checkpoint (from :func:`read_checkpoint`) was trained for."""
    try:
        return geometry_from_record(checkpoint["learnct"]["geometry"])
    except (KeyError, TypeError, ValueError) as err:
        raise ValueError(f"checkpoint {path} records no valid geometry ({err})") from err


def check_checkpoint(path: str | Path, method_name: str, geometry: Geometry) -> dict[str, Any]:
    """:func:`read_checkpoint`, then check it belongs to ``method_name`` on ``geometry``;
    returns the checkpoint dict. Raises ``ValueError`` naming the problem."""
    checkpoint = read_checkpoint(path)
    identity = checkpoint["learnct"]
    if identity.get("method") != method_name:
        raise ValueError(
            f"checkpoint {path} is a {identity.get('method')} checkpoint, not {method_name}: "
            f"evaluate it with the matching experiment"
        )
    diff = geometry_differences(checkpoint_geometry(checkpoint, path), geometry)
    if diff:
        raise ValueError(
            f"checkpoint {path} was trained for another geometry ({', '.join(diff)}): use its "
            "physics"
        )
    return checkpoint


#: Settings that change how a method runs, not what it computes.
EXECUTION = frozenset({"checkpoint", "operator_norm", "autocast", "compile", "channels_last"})
#: Settings of the learned methods that change no weight's name or shape.
NOT_ARCHITECTURE = EXECUTION | {"init", "filter", "frequency_scaling", "tv_eps"}
NOT_ARCHITECTURE |= {"kwargs", "self", "operator"}


def _same(a: Any, b: Any) -> bool:
    try:
        return bool(a == b)
    except Exception:  # tensors, arrays: compare their text
        return repr(a) == repr(b)


def _hydra_value(value: Any) -> str:
    """``value`` as a Hydra command-line value: null, true/false, [1,2] without spaces."""
    if value is None or isinstance(value, bool | list | tuple | dict):
        return json.dumps(value, separators=(",", ":"))
    return str(value)


def constructor_arguments(cls: type) -> list[str]:
    """Every constructor argument of method class ``cls``: its ``__init__``'s and its bases'
    (each passes the rest on to the next; ``cls``'s first)."""
    from learnct.methods.base import ReconstructionMethod  # which imports this module

    params = [
        p
        for c in cls.__mro__
        if issubclass(c, ReconstructionMethod) and "__init__" in vars(c)
        for p in inspect.signature(c.__init__).parameters
    ]
    return [p for p in dict.fromkeys(params) if p not in ("self", "kwargs")]


def _own_parameters(cls: type) -> list[str]:
    """The constructor arguments of method class ``cls`` and of its bases that the shared
    :class:`~learnct.methods.base.ReconstructionMethod` does not have (``cls``'s first)."""
    from learnct.methods.base import ReconstructionMethod

    shared = {"operator", *inspect.signature(ReconstructionMethod.__init__).parameters}
    return [p for p in constructor_arguments(cls) if p not in shared]


def architecture_settings(model: torch.nn.Module) -> list[str]:
    """The constructor arguments of ``model``'s class (and its bases) that the shared base
    does not have and that can change its weights' names or shapes (``n_iter``, ``hidden``,
    ``depth``, ...)."""
    return [k for k in _own_parameters(type(model)) if k not in NOT_ARCHITECTURE]


def fit_state_dict(model: torch.nn.Module, state: dict[str, Any], adapt: bool = True) -> list[str]:
    """Make the weights ``state`` fit ``model`` in place: batch-norm running statistics that
    ``norm=instance`` does not use are left out, and with ``adapt`` (not when resuming: the
    optimiser's moments keep the old shapes) a method's ``adapt_state_dict`` makes the weights
    of a related architecture fit (same function). Returns a note per change."""
    notes = []
    if drop_instance_norm_statistics(model, state):
        notes.append("batch-norm running statistics unused by norm=instance, left out")
    adapt_state_dict = getattr(model, "adapt_state_dict", None)
    if adapt and callable(adapt_state_dict):
        notes += adapt_state_dict(state)
    return notes


def check_architecture(
    model: torch.nn.Module, checkpoint: dict[str, Any], path: str | Path
) -> None:
    """Raise ``ValueError`` unless ``checkpoint``'s weights fit ``model`` key for key and shape;
    the message names the architecture settings that differ (from the checkpoint's
    hyperparameters) as the overrides that fit it, e.g. ``model.depth=3``."""
    _fitted_state(model, checkpoint, path)


def _fitted_state(
    model: torch.nn.Module, checkpoint: dict[str, Any], path: str | Path
) -> tuple[dict[str, Any], list[str]]:
    """``checkpoint``'s weights made to fit ``model`` (instance-norm statistics dropped,
    :meth:`adapt_state_dict`) and the notes saying what was changed; ``ValueError`` as
    :func:`check_architecture` says when they do not fit."""
    saved = checkpoint.get("state_dict")
    if not isinstance(saved, dict):
        raise ValueError(f"checkpoint {path} holds no state_dict (no weights)")
    saved = dict(saved)
    notes = fit_state_dict(model, saved)
    own = model.state_dict()
    missing = sorted(set(own) - set(saved))
    unexpected = sorted(set(saved) - set(own))
    reshaped = sorted(
        k
        for k in set(own) & set(saved)
        if not isinstance(saved[k], torch.Tensor) or own[k].shape != saved[k].shape
    )
    if not (missing or unexpected or reshaped):
        return saved, notes
    parts = [
        f"{label} {', '.join(keys[:3])}{' ...' if len(keys) > 3 else ''}"
        for label, keys in (
            ("missing", missing),
            ("unexpected", unexpected),
            ("shape differs:", reshaped),
        )
        if keys
    ]
    theirs = checkpoint.get("hyper_parameters")
    theirs = theirs if isinstance(theirs, dict) else {}
    ours = getattr(model, "hparams", None)
    ours = dict(ours) if isinstance(ours, dict) else {}
    differ = [
        k
        for k in architecture_settings(model)
        if k in theirs and k in ours and not _same(theirs[k], ours[k])
    ]
    fix = (
        "use the settings it was trained with: "
        + " ".join(f"model.{k}={_hydra_value(theirs[k])}" for k in differ)
        if differ
        else "its architecture settings (model.*) differ; use the ones it was trained with"
    )
    raise ValueError(
        f"checkpoint {path} does not fit this {type(model).__name__} ({'; '.join(parts)}): {fix}"
    )


def stored_settings(
    cls: type, checkpoint: dict[str, Any], everything: bool = False
) -> dict[str, Any]:
    """The constructor arguments of method class ``cls`` that ``checkpoint`` stores in its
    hyperparameters: with ``everything`` all of them (what rebuilds the trained model as it
    was), else only the method's own (not the shared base's) that shape the trained function
    (architecture, FBP filter, start: ``depth``, ``n_iter``, ``init``, ...), not the execution
    flags (``checkpoint``, ``autocast``, ``compile``, ``channels_last``) or ``operator_norm``."""
    saved = checkpoint.get("hyper_parameters")
    saved = saved if isinstance(saved, dict) else {}
    if everything:  # the class's and its bases' (loss, fbp_filter, ...)
        params = [
            p
            for c in cls.__mro__
            if "__init__" in vars(c)
            for p in inspect.signature(c.__init__).parameters
        ]
    else:
        params = [p for p in _own_parameters(cls) if p not in EXECUTION]
    return {
        k: saved[k]
        for k in dict.fromkeys(params)
        if k in saved and k not in ("self", "operator", "kwargs")
    }


def steps_before(checkpoint: dict[str, Any]) -> int | None:
    """The optimiser steps of the weights a checkpoint's run started from (``init_weights``;
    0 for a run from scratch); ``None`` where the checkpoint does not record them (saved
    before ``learnct.steps_before`` existed, or from such a checkpoint)."""
    identity = checkpoint.get("learnct")
    return identity.get("steps_before") if isinstance(identity, dict) else None


def weights_source(checkpoint: dict[str, Any]) -> dict[str, Any] | None:
    """The run that trained a checkpoint's weights (``learnct.source``, written by
    :func:`learnct.run.weights_source.source_record`: run id, task, start, commit, command,
    and ``started_from`` back along ``init_weights``); ``None`` for weights saved before
    checkpoints recorded it, or trained outside ``learnct-train``."""
    identity = checkpoint.get("learnct")
    source = identity.get("source") if isinstance(identity, dict) else None
    return source if isinstance(source, dict) else None


def run_stamp(checkpoint: Any) -> dict[str, Any] | None:
    """A checkpoint's run stamp (``learnct_run``: the schedule's ``id``, and in a run's own
    checkpoints its ``settings``, :mod:`learnct.run.identity`); ``None`` where it has none
    that names a run (saved outside ``learnct-train``, or before stamps existed)."""
    stamp = checkpoint.get("learnct_run") if isinstance(checkpoint, dict) else None
    return stamp if isinstance(stamp, dict) and stamp.get("id") else None


def trained_by(checkpoint: dict[str, Any]) -> str | None:
    """The run id of the schedule that trained a checkpoint's weights: its run stamp
    (:func:`run_stamp`, which stripped weights keep) or its :func:`weights_source` record;
    ``None`` where neither names one."""
    if (stamp := run_stamp(checkpoint)) is not None:
        return str(stamp["id"])
    source = weights_source(checkpoint) or {}
    return str(source["run_id"]) if source.get("run_id") else None


def training_data(source: Any, photons_range: Any = None) -> str | None:
    """The training data that a table compares weights on: the source (``data.source``, e.g.
    ``ellipses``), with the doses where each sample drew its own from a range
    (``data.train_photons_range``, photons per detector pixel): ``"ctlike at 1000-100000
    photons"``; ``None`` where ``source`` is not a name."""
    if not isinstance(source, str):
        return None
    if photons_range is None:
        return source
    low, high = (_photons(float(v)) for v in photons_range)
    return f"{source} at {low}-{high} photons"


def config_training(config: dict[str, Any]) -> str | None:
    """:func:`training_data` of a stored config's ``data`` section (a run's or a weights
    folder's ``config.json``; one written before the dose range existed has none); ``None``
    where it names no source, or its range is not two doses."""
    data = config.get("data")
    if not isinstance(data, dict):
        return None
    try:
        return training_data(data.get("source"), data.get("train_photons_range"))
    except (TypeError, ValueError):  # not two doses: not a run's data section
        return None


def _photons(dose: float) -> str:
    """A dose as written in a label: whole numbers whole (``1000000``, not ``1e+06``)."""
    return f"{dose:.0f}" if dose.is_integer() else f"{dose:g}"


def recorded_training(record: dict[str, Any] | None) -> str | None:
    """:func:`training_data` of a run's source record (:func:`weights_source`); records
    written before ``train_photons_range`` was kept give their source alone (a committed
    weights folder's ``config.json`` says the rest for its files); ``None``: no source."""
    if not isinstance(record, dict):
        return None
    return training_data(record.get("data_source"), record.get("train_photons_range"))


def training_source(checkpoint: dict[str, Any]) -> str | None:
    """The data a checkpoint's weights were last trained on (:func:`recorded_training` of its
    :func:`weights_source`), e.g. ``ellipses`` or ``ctlike at 1000-100000 photons``; ``None``
    where not recorded (saved before checkpoints recorded it)."""
    return recorded_training(weights_source(checkpoint))


def trained_steps(checkpoint: dict[str, Any]) -> int | None:
    """The optimiser steps that trained a checkpoint's weights: its run's (``global_step``)
    plus those of the weights that run started from (:func:`steps_before`); ``None`` where
    the latter are not recorded."""
    return steps_after(steps_before(checkpoint), int(checkpoint.get("global_step") or 0))


def steps_after(before: int | None, steps: int) -> int | None:
    """The optimiser steps of weights trained ``steps`` more from weights trained ``before``
    (``None``: unknown, and so the result)."""
    return None if before is None else int(before) + steps


def load_weights(model: torch.nn.Module, path: str | Path, geometry: Geometry) -> int | None:
    """Copy the weights of checkpoint ``path`` (full or stripped, float32 or float16) into
    ``model`` after ``check_checkpoint`` and ``check_architecture``. Returns the optimiser
    steps that trained them (:func:`trained_steps`; ``None``: not recorded). Raises
    ``ValueError`` naming the problem."""
    checkpoint = check_checkpoint(path, type(model).__name__, geometry)
    return apply_weights(model, checkpoint, path)


def apply_weights(
    model: torch.nn.Module, checkpoint: dict[str, Any], path: str | Path
) -> int | None:
    """Copy the weights of a checked ``checkpoint`` (read from ``path``) into ``model`` after
    ``check_architecture``, and record the optimiser steps that trained them as the model's
    ``steps_before`` and ``trained_steps`` (a run from them counts on) and the data they
    trained on as its ``trained_on`` (:func:`training_source`); returns that count
    (:func:`trained_steps`; ``None``: not recorded, and so unknown for the run too)."""
    state, notes = _fitted_state(model, checkpoint, path)
    for note in notes:
        print(f"{path}: {note}")
    model.load_state_dict(state)  # casts float16 weights to the model's dtype
    steps = trained_steps(checkpoint)
    model.steps_before = model.trained_steps = steps
    model.trained_on = training_source(checkpoint)
    return steps
