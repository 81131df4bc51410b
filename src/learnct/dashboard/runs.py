"""Run folders -> ``RunRecord``: what one ``learnct-train`` / ``learnct-eval`` run wrote.

A run folder is ``logs/<task>/runs/<timestamp>/`` or ``logs/<task>/multiruns/<timestamp>/<job>/``
(any folder under ``logs/`` with a ``.hydra/``, ``config.json``, ``results.csv`` or CSV metrics
counts). Every file is optional; what is missing or unreadable is recorded in
``RunRecord.problems`` instead of raising, so one broken run never stops the dashboard.
"""

from __future__ import annotations

import dataclasses
import math
import re
from datetime import datetime
from pathlib import Path
from typing import Any

import yaml

from learnct.physics.presets import PRESETS
from learnct.reporting.table import ROUNDING, physics_changes
from learnct.run.provenance import repository_path
from learnct.run.results import (
    RESULTS_FILE,
    TEST_METRICS,
    ResultsError,
    find_run_folders,
    read_metric_curves,
    read_overrides,
    read_results,
    read_run_config,
)

__all__ = ["RunRecord", "collect_runs", "read_run"]

# a run folder's start time, then (since run folders are unique) a random token
STAMP = re.compile(r"(\d{4}-\d{2}-\d{2}_\d{2}-\d{2}-\d{2})(?:_[0-9a-f]+)?")
# a validation panel PNG (learnct.methods.base.log_panels): epoch and global step
PANEL = re.compile(r"epoch(\d+)_step(\d+)\.png")
#: significant digits of the dashboard's other floats (curves, hyperparameters, scores)
SIGNIFICANT = 5
# model config keys that are switches rather than hyperparameters worth a table column
_NOT_HPARAMS = {
    *("_target_", "_partial_", "checkpoint", "loss", "gradient_clip_val"),
    *("scheduler", "scheduler_interval"),
}


@dataclasses.dataclass
class RunRecord:
    """Everything the dashboard shows about one run folder (JSON-serialisable)."""

    id: str  # path relative to the logs folder, e.g. "lpd/runs/2026-11-25_16-18-09"
    path: str
    experiment: str  # the config's task_name
    method: str | None = None
    physics: str | None = None
    hparams: dict[str, Any] = dataclasses.field(default_factory=dict)
    overrides: list[str] = dataclasses.field(default_factory=list)
    sweep: str | None = None  # Optuna study name of a sweep job
    date: str | None = None  # ISO 8601, from the folder name (else its modification time)
    commit: str | None = None
    steps: int | None = None
    val_psnr_best: float | None = None
    tests: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    curves: dict[str, dict[str, list[float]]] = dataclasses.field(default_factory=dict)
    checkpoints: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    images: dict[str, str] = dataclasses.field(default_factory=dict)  # label -> source file
    # the validation panels over training: {"step", "epoch", "file"} by step
    panels: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    wandb: list[str] = dataclasses.field(default_factory=list)  # offline W&B run folders
    config: dict[str, Any] | None = None
    problems: list[str] = dataclasses.field(default_factory=list)


def collect_runs(log_dir: Path) -> list[RunRecord]:
    """A ``RunRecord`` for every run folder under ``log_dir``."""
    return [read_run(folder, log_dir) for folder in find_run_folders(log_dir)]


def read_run(folder: Path, log_dir: Path) -> RunRecord:
    """Read one run folder; problems are recorded in the record, never raised."""
    rel = folder.relative_to(log_dir).as_posix()
    record = RunRecord(id=rel, path=repository_path(folder), experiment=rel.split("/")[0])
    record.date = _run_date(folder)
    _read_config(folder, record)
    _read_results(folder, record)
    _describe_physics(record)
    _read_metrics(folder, record)
    _read_checkpoints(folder, record)
    if (folder / "comparison.png").is_file():
        record.images["comparison"] = str(folder / "comparison.png")
    record.panels = _panels(folder)
    record.wandb = sorted(
        p.relative_to(folder).as_posix() for p in folder.glob("wandb/*run-*") if p.is_dir()
    )
    # the last logged training step, or a checkpoint's later one (the logs are every N steps)
    steps = [c.get("global_step") for c in record.checkpoints] + [record.steps]
    steps = [s for s in steps if s is not None]
    record.steps = max(steps) if steps else None
    return record


def _run_date(folder: Path) -> str:
    for part in reversed(folder.parts):
        match = STAMP.fullmatch(part)
        if match:
            return datetime.strptime(match.group(1), "%Y-%m-%d_%H-%M-%S").isoformat(sep=" ")
    return datetime.fromtimestamp(folder.stat().st_mtime).isoformat(sep=" ", timespec="seconds")


def _load_yaml(path: Path, record: RunRecord) -> Any:
    try:
        return yaml.safe_load(path.read_text())
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as err:
        record.problems.append(f"{path.name}: unreadable YAML ({_first_line(err)})")
        return None


def _read_config(folder: Path, record: RunRecord) -> None:
    """The resolved ``config.json`` (written after testing), else ``.hydra/config.yaml``."""
    config: Any = None
    json_path, yaml_path = folder / "config.json", folder / ".hydra" / "config.yaml"
    if json_path.is_file():
        try:
            config = read_run_config(folder)
        except ResultsError as err:
            record.problems.append(f"config.json: unreadable ({_reason(err, json_path)})")
    if config is None and yaml_path.is_file():
        config = _load_yaml(yaml_path, record)
    if not isinstance(config, dict):
        if not json_path.is_file() and not yaml_path.is_file():
            record.problems.append("no .hydra/config.yaml or config.json: the config is unknown")
        elif config is not None:
            record.problems.append("config is not a mapping")
        return
    record.config = config
    record.experiment = str(config.get("task_name") or record.experiment)
    model = config.get("model") if isinstance(config.get("model"), dict) else {}
    target = model.get("_target_")
    record.method = str(target).rsplit(".", 1)[-1] if target else None
    physics = config.get("physics") if isinstance(config.get("physics"), dict) else {}
    record.physics = physics.get("preset")
    record.hparams = _hparams(config, model, physics)

    try:
        record.overrides = read_overrides(folder) or record.overrides
    except ResultsError as err:
        overrides = folder / ".hydra" / "overrides.yaml"
        record.problems.append(f"overrides.yaml: unreadable ({_reason(err, overrides)})")
    hydra_path = folder / ".hydra" / "hydra.yaml"
    if hydra_path.is_file():
        hydra_cfg = _load_yaml(hydra_path, record)
        choices = _get(hydra_cfg, "hydra", "runtime", "choices") or {}
        if isinstance(choices, dict) and choices.get("hparams_search"):
            # the Optuna study the job belongs to (its name defaults to the search's)
            study = _get(hydra_cfg, "hydra", "sweeper", "study_name")
            record.sweep = str(study or choices["hparams_search"])


def _describe_physics(record: RunRecord) -> None:
    """A run whose physics differ from its preset's (``physics.photons=1e3``) is shown with the
    difference, ``"fan_lowdose, photons 1000.0"``, not as the preset's own data."""
    section = (record.config or {}).get("physics")
    if record.physics not in PRESETS or not isinstance(section, dict):
        return
    try:
        changes = physics_changes(section, record.physics)
    except ValueError as err:
        record.problems.append(f"physics cannot be rebuilt ({_first_line(err)})")
        return
    record.physics = ", ".join([record.physics, *(f"{k} {run}" for k, run, _ in changes)])


def _hparams(config: dict, model: dict, physics: dict) -> dict[str, Any]:
    """The knobs worth a column: the model's scalar settings, lr, batch size and dose."""
    out = {
        k: v
        for k, v in model.items()
        if k not in _NOT_HPARAMS and isinstance(v, (int, float, str, bool)) and v is not None
    }
    lr = _get(model, "optimizer", "lr")
    if lr is not None:
        out["lr"] = lr
        batch = _get(config, "data", "batch_size")
        if batch is not None:
            out["batch"] = batch
    if physics.get("photons") is not None:
        out["photons"] = physics["photons"]
    return {k: _round(v) for k, v in out.items()}


def _read_results(folder: Path, record: RunRecord) -> None:
    path = folder / RESULTS_FILE
    if not path.is_file():
        if record.config is None or record.config.get("test", True):
            record.problems.append(
                "no results.csv: the run has not been tested (still running, interrupted or failed)"
            )
        return
    try:
        rows = read_results(path, required=("method", "test_set", "psnr", "ssim"))
        tests = []
        for row in rows:
            test = {"test_set": row["test_set"]}
            for field in ("n_images", *TEST_METRICS):
                value = _number(row.get(field), f"results.csv column {field}")
                test[field] = _round(value, ROUNDING.get(field))
            tests.append(test)
    except (ResultsError, ValueError) as err:
        record.problems.append(f"results.csv: unreadable ({_first_line(err)})")
        return
    record.tests = tests
    record.method = rows[0]["method"] or record.method
    record.physics = rows[0].get("physics") or record.physics
    record.commit = rows[0].get("commit") or None


def _read_metrics(folder: Path, record: RunRecord) -> None:
    """Training/validation curves from every ``csv/version_*/metrics.csv`` (resumed runs add
    versions; :func:`learnct.run.results.read_metric_curves`), keyed by metric name; test
    metrics are left to ``results.csv``."""
    try:
        logged = read_metric_curves(folder)
    except ResultsError as err:
        record.problems.append(f"unreadable metrics: {str(err).replace(f'{folder}/', '')}")
        return
    curves = {
        name: {"step": [step for step, _ in points], "value": [_round(v) for _, v in points]}
        for name, points in logged.items()
        if not name.startswith("test/")
    }
    record.curves = curves
    best = curves.get("val/psnr_best") or curves.get("val/psnr")
    if best and best["value"]:
        record.val_psnr_best = _round(max(best["value"]), ROUNDING["psnr"])
    train_steps = [s for name, c in curves.items() if name.startswith("train/") for s in c["step"]]
    if train_steps:
        record.steps = int(max(train_steps))


def _read_checkpoints(folder: Path, record: RunRecord) -> None:
    """Metadata of ``checkpoints/*.ckpt`` (memory-mapped: the weights are not read)."""
    paths = sorted((folder / "checkpoints").glob("*.ckpt"))
    if not paths:
        return
    from learnct.methods.checkpoints import load_checkpoint_file, trained_steps

    for path in paths:
        info: dict[str, Any] = {"file": path.name, "size_mb": round(path.stat().st_size / 1e6, 2)}
        try:
            checkpoint = load_checkpoint_file(path, mmap=True)
            if not isinstance(checkpoint, dict):
                raise ValueError("not a checkpoint dictionary")
        except Exception as err:  # truncated zip, wrong format, unpicklable content
            record.problems.append(f"checkpoints/{path.name}: {_checkpoint_error(err)}")
            continue
        info["global_step"] = checkpoint.get("global_step")
        info["epoch"] = checkpoint.get("epoch")
        identity = checkpoint.get("learnct")
        if isinstance(identity, dict):
            info["trained_steps"] = trained_steps(checkpoint)  # with its init_weights' steps
            info["method"] = identity.get("method")
            geometry = identity.get("geometry") or {}
            info["geometry"] = ", ".join(
                f"{k} {geometry[k]}"
                for k in ("kind", "image_size", "n_angles", "n_detectors")
                if k in geometry
            )
        else:
            info["method"] = None
            info["geometry"] = "unknown (no learnct record: saved by an older version)"
        for state in (checkpoint.get("callbacks") or {}).values():
            if isinstance(state, dict) and state.get("best_model_score") is not None:
                info["monitor"] = state.get("monitor")
                info["best_score"] = _round(_number(state["best_model_score"], "best_model_score"))
        record.checkpoints.append(info)


def _checkpoint_error(err: Exception) -> str:
    """Say why a checkpoint could not be read: refused objects, or a damaged file."""
    refused = re.search(r"Unsupported global: GLOBAL ([\w.]+)", str(err))
    if refused:
        return (
            f"holds a pickled {refused.group(1)}, which a weights-only load refuses (saved by "
            "an older learnct?): its metadata is not shown"
        )
    return f"truncated or corrupt ({type(err).__name__}: {_first_line(err)})"


def _panels(folder: Path) -> list[dict[str, Any]]:
    """The validation panel PNGs by step: ``panels/`` (every logger), or
    ``csv/version_*/panels/`` (runs of older versions, CSV logger only)."""
    found = {}
    for path in [*folder.glob("csv/version_*/panels/*.png"), *folder.glob("panels/*.png")]:
        match = PANEL.fullmatch(path.name)
        if match:
            step = int(match.group(2))
            found[step] = {"step": step, "epoch": int(match.group(1)), "file": str(path)}
    return [found[step] for step in sorted(found)]


def _round(value: Any, decimals: int | None = None) -> Any:
    """A float rounded to ``decimals`` places, else to :data:`SIGNIFICANT` significant digits;
    other values as they are."""
    if not isinstance(value, float) or not math.isfinite(value) or value == 0:
        return value
    if decimals is None:
        decimals = SIGNIFICANT - 1 - math.floor(math.log10(abs(value)))
    return round(value, decimals)


def _get(tree: Any, *keys: str) -> Any:
    for key in keys:
        if not isinstance(tree, dict):
            return None
        tree = tree.get(key)
    return tree


def _number(value: Any, what: str) -> float | None:
    """A finite float, ``None`` for an empty cell; ``ValueError`` naming ``what`` otherwise."""
    if value is None or value == "":
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{what}: {str(value)[:40]!r} is not a number") from None
    return number if math.isfinite(number) else None


def _reason(err: ResultsError, path: Path) -> str:
    """What a run-folder reader found wrong with ``path``, without the path (the dashboard
    names the run): the library's error it caught, else its own message."""
    return _first_line(err.__cause__ or str(err).removeprefix(f"{path}: "))


def _first_line(err: BaseException | str) -> str:
    """The first sentence of an error message (library messages go on with advice)."""
    text = str(err).strip()
    line = text.splitlines()[0] if text else type(err).__name__
    return line.split(". ")[0][:200]
