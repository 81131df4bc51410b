"""The run folder and its results: the one results schema, its writer and reader, run-folder
discovery and the choice of a run's checkpoint.

A run of task ``<task_name>`` lives in ``<log_dir>/<task_name>/runs/<date>/`` (a sweep job in
``<log_dir>/<task_name>/multiruns/<date>/<job>/``). After testing it holds ``results.csv``
(one row per test set, columns :data:`RESULT_FIELDS`) and ``config.json`` (the resolved config
plus ``provenance`` and :data:`TESTED_KEY`, the checkpoint its test scored); its
``ModelCheckpoint`` writes ``checkpoints/*.ckpt`` and ``checkpoints/last.ckpt``, and the
sitting that ends a schedule ``checkpoints/final.ckpt`` (its final weights, what it tests).
Training, evaluation, ``make report``, the dashboard and resuming all read run folders through
this module.
"""

from __future__ import annotations

import csv
import hashlib
import json
import math
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from learnct.run.atomic_files import atomic_open, atomic_write_text

__all__ = [
    "CONFIG_FILE",
    "LAST_CHECKPOINT",
    "REQUIRED_FIELDS",
    "RESULTS_FILE",
    "RESULT_FIELDS",
    "TESTED_KEY",
    "TEST_METRICS",
    "VALIDATION_COLUMNS",
    "ResultsError",
    "file_digest",
    "find_results",
    "find_run_folders",
    "n_images",
    "read_metric_curves",
    "read_overrides",
    "read_results",
    "read_run_config",
    "task_run_folders",
    "tested_checkpoint",
    "tested_record",
    "validation_points",
    "weights_folder_source",
    "write_results",
]

#: the columns of a learning curve (PSNR in dB, SSIM) and the logged metric of each
VALIDATION_COLUMNS = {"val_psnr": "val/psnr", "val_ssim": "val/ssim"}

RESULTS_FILE = "results.csv"
CONFIG_FILE = "config.json"
LAST_CHECKPOINT = "checkpoints/last.ckpt"
#: the CSV logger's metrics of a run, one file per version (a resumed run adds a version)
METRICS_GLOB = "csv/version_*/metrics.csv"

#: The test pass's metrics in a row (logged as ``test/<test set>/<name>``).
TEST_METRICS = ("psnr", "ssim", "ms_per_slice", "fbp_psnr", "fbp_ssim")
#: One row per (run, test set). psnr/ssim: per-image means (dB; data range max - min of the
#: truth); ms_per_slice: reconstruction time after warm-up; fbp_*: FBP on the same data;
#: train_steps: the optimiser steps that trained the tested weights, those of the weights it
#: started from (``init_weights``) included (empty for FBP and TV); trained_on: the data they
#: were last trained on (``data.source``, with the dose range where samples drew their dose
#: from one, e.g. ``ellipses at 1000-100000 photons``; a checkpoint saved before the range
#: was recorded gives its source alone, unless its committed weights folder says the range;
#: empty for FBP and TV, or not recorded); test_hash: digest of the test images and
#: noise; weights_hash: :func:`file_digest` of the checkpoint file the test loaded (empty: the
#: weights in memory, or nothing to load); the rest: where and with what it ran.
RESULT_FIELDS = (
    "method",
    "physics",
    "n_images",
    "train_steps",
    "trained_on",
    "test_set",
    *TEST_METRICS,
    "device",
    "commit",
    "run_dir",
    "test_hash",
    "weights_hash",
    "torch_version",
    "lightning_version",
    "python_version",
    "learnct_version",
)
#: Columns without which a results file is unreadable (older files may lack the others).
REQUIRED_FIELDS = ("method", "physics", "test_set", "psnr", "ssim")


def file_digest(path: str | Path) -> str:
    """The first 16 hex digits of the SHA-256 of the file's bytes: which checkpoint a results
    row tested (a file exported again under the same name has another)."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()[:16]


class ResultsError(ValueError):
    """A results file or run folder that cannot be read: names the file and the problem."""


def write_results(folder: Path, rows: list[dict[str, Any]], config: dict[str, Any]) -> Path:
    """Write ``results.csv`` (``rows``, columns :data:`RESULT_FIELDS`) and ``config.json``
    (``config``: the resolved config with its ``provenance``) into ``folder``, each atomically
    (:mod:`learnct.run.atomic_files`): a failed or killed write leaves the previous files whole,
    and a config that cannot be written changes neither file."""
    config_text = json.dumps(config, indent=1)
    path = folder / RESULTS_FILE
    with atomic_open(path, "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=RESULT_FIELDS)
        writer.writeheader()
        writer.writerows(rows)
    atomic_write_text(folder / CONFIG_FILE, config_text)
    return path


def read_results(path: Path, required: Iterable[str] = REQUIRED_FIELDS) -> list[dict[str, str]]:
    """The rows of a results file (values as text; a missing optional column reads as
    absent). Raises :class:`ResultsError` for an unreadable file, no rows or a missing
    ``required`` column."""
    try:
        with open(path, newline="") as fh:
            rows = list(csv.DictReader(fh))
    except (OSError, csv.Error, UnicodeDecodeError) as err:
        raise ResultsError(str(err)) from err
    missing = set(required) - set(rows[0] if rows else {})
    if not rows or missing:
        raise ResultsError(f"no rows or missing columns {sorted(missing)}")
    return rows


def n_images(row: dict[str, str]) -> int:
    """A row's number of test images; 0 where an older results file did not record it."""
    try:
        count = float(row.get("n_images") or 0)
    except ValueError:
        return 0
    return int(count) if math.isfinite(count) else 0


def find_results(log_dir: Path) -> list[Path]:
    """Every ``results.csv`` under ``log_dir``, sorted by path."""
    return sorted(Path(log_dir).glob(f"**/{RESULTS_FILE}"))


def find_run_folders(log_dir: Path) -> list[Path]:
    """Folders under ``log_dir`` that look like run folders (``*/runs/*``,
    ``*/multiruns/*/*``, or any folder with a ``.hydra/``, ``config.json``, ``results.csv`` or
    CSV metrics), never one inside another run's W&B or CSV output; sorted by path."""
    log_dir = Path(log_dir)
    found: set[Path] = set()
    for pattern in ("*/runs/*", "*/multiruns/*/*"):
        found.update(p for p in log_dir.glob(pattern) if p.is_dir())
    for marker in (".hydra", CONFIG_FILE, RESULTS_FILE):
        found.update(p.parent for p in log_dir.rglob(marker))
    found.update(p.parents[2] for p in log_dir.rglob(METRICS_GLOB))
    runs = [p for p in found if not {"wandb", "csv", ".hydra"} & set(p.relative_to(log_dir).parts)]
    return sorted(runs)


def task_run_folders(log_dir: Path, task_name: str) -> list[Path]:
    """The single-run folders of ``task_name`` that have a ``last.ckpt``, oldest first (run
    folders are named by their start time, so the name orders them)."""
    runs = Path(log_dir) / task_name / "runs"
    return sorted((p.parents[1] for p in runs.glob(f"*/{LAST_CHECKPOINT}")), key=lambda p: p.name)


def read_run_config(folder: Path) -> dict[str, Any]:
    """The resolved config a run wrote to ``<folder>/config.json``."""
    path = Path(folder) / CONFIG_FILE
    try:
        config = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, ValueError) as err:
        raise ResultsError(f"{path}: cannot read the run's config ({err})") from err
    if not isinstance(config, dict):
        raise ResultsError(f"{path}: not a config (a JSON object)")
    return config


def weights_folder_source(folder: Path) -> str | None:
    """The data the weights of a committed weights folder (``experiments/<setup>/weights``)
    were trained on: its ``config.json``'s ``data.source`` with the dose range where it has
    one (:func:`~learnct.methods.checkpoints.training_data`: ``ellipses``, ``ctlike at
    1000-100000 photons``). ``None`` where ``folder`` has no readable ``config.json`` naming
    a source (a run's ``checkpoints/`` folder, or a checkpoint kept anywhere else)."""
    from learnct.methods.checkpoints import config_training

    if not (Path(folder) / CONFIG_FILE).is_file():
        return None
    try:
        return config_training(read_run_config(folder))
    except ResultsError:
        return None


#: The ``config.json`` key of the checkpoint a run tested (:func:`tested_record`).
TESTED_KEY = "tested_checkpoint"


def read_overrides(folder: Path) -> list[str] | None:
    """The command-line overrides of the run in ``folder`` (Hydra's ``.hydra/overrides.yaml``);
    ``None`` where it has none (``hydra.output_subdir=null``). Raises :class:`ResultsError`
    for a file that is not a YAML list."""
    import yaml

    path = Path(folder) / ".hydra" / "overrides.yaml"
    if not path.is_file():
        return None
    try:
        overrides = yaml.safe_load(path.read_text())
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as err:
        raise ResultsError(f"{path}: unreadable ({str(err).splitlines()[0]})") from err
    if not isinstance(overrides, list):
        raise ResultsError(f"{path}: not a list of overrides")
    return [str(o) for o in overrides]


def tested_record(folder: Path, checkpoint: str | Path | None) -> str | None:
    """What ``config.json`` records of the checkpoint a run tested: its path relative to the
    run ``folder`` when inside it (the folder can move), else as given (``make eval``'s
    ``ckpt_path``, relative to where the command ran); ``None``: the weights in memory (or
    nothing to load: FBP, TV)."""
    if not checkpoint:
        return None
    try:
        return Path(checkpoint).resolve().relative_to(Path(folder).resolve()).as_posix()
    except ValueError:
        return str(checkpoint)


def tested_checkpoint(folder: Path, config: dict[str, Any]) -> Path:
    """The checkpoint a run tested, as its ``config.json`` records it (:func:`tested_record`:
    looked up in the run folder, then from here); for runs written before that record:
    ``ckpt_path`` for ``make eval`` runs, else the best checkpoint in ``<folder>/checkpoints``
    (``last.ckpt`` when it is the only one)."""
    if TESTED_KEY in config:
        recorded = config[TESTED_KEY]
        if not recorded:
            raise ResultsError(
                f"{folder}: its test scored the weights in memory and kept no checkpoint of "
                "them (callbacks.model_checkpoint off?): train it with checkpoints, or test a "
                "checkpoint with make eval"
            )
        return _existing(folder, recorded)
    given = config.get("ckpt_path")
    if given and not config.get("train", True):
        return _existing(folder, given)
    ckpts = sorted((Path(folder) / "checkpoints").glob("*.ckpt"))
    best = [p for p in ckpts if not p.name.startswith("last")]
    if best or ckpts:
        return (best or ckpts)[-1]
    raise ResultsError(f"{folder}: no checkpoint in {Path(folder) / 'checkpoints'}")


def _existing(folder: Path, given: str) -> Path:
    """A run's checkpoint path ``given``: absolute, or relative to the run ``folder`` or to
    here (where the command ran); ``ResultsError`` when none of them is a file."""
    path = Path(given)
    for candidate in [path] if path.is_absolute() else [Path(folder) / path, path]:
        if candidate.is_file():
            return candidate
    raise ResultsError(f"{folder}: its tested checkpoint {given} no longer exists")


def _version(path: Path) -> int:
    """The number of a ``csv/version_<k>/metrics.csv`` (``-1`` when it has none)."""
    suffix = path.parent.name.removeprefix("version_")
    return int(suffix) if suffix.isdigit() else -1


def read_metric_curves(
    folder: Path, names: Iterable[str] | None = None
) -> dict[str, list[tuple[int, float]]]:
    """The logged values of the metrics ``names`` (e.g. ``val/psnr``; ``None``: every metric)
    in the run ``folder``: ``{name: [(step, value), ...]}`` in step order, ``step`` the
    optimiser steps done when the value was logged (during training Lightning logs the count
    before the step that is running, so a validation after 1,000 steps is logged at 999: one
    is added in a fit's file; a validate-only file's steps, all 0, are the steps done), from
    every version
    of its Lightning CSV metrics (:data:`METRICS_GLOB`), the later version's value where two
    log the same step. Raises :class:`ResultsError` naming the file, line and column of an
    unreadable value."""
    wanted = None if names is None else tuple(names)
    values: dict[str, dict[int, float]] = {name: {} for name in wanted or ()}
    for path in sorted(Path(folder).glob(METRICS_GLOB), key=_version):
        try:
            with open(path, newline="") as fh:
                reader = csv.DictReader(fh)
                if reader.fieldnames is None or "step" not in reader.fieldnames:
                    raise ResultsError(f"{path}: no 'step' column")
                columns = wanted or [c for c in reader.fieldnames if c not in ("step", "epoch")]
                rows = list(reader)
                shift = int(_logged_by_a_fit(reader.fieldnames, rows))
                for line, row in enumerate(rows, start=2):
                    for name in columns:
                        text = row.get(name)
                        if not text:
                            continue
                        try:
                            step, value = int(float(row["step"])) + shift, float(text)
                        except (TypeError, ValueError):
                            raise ResultsError(
                                f"{path}: line {line} column {name}: {text!r} is not a number"
                            ) from None
                        values.setdefault(name, {})[step] = value
        except (OSError, UnicodeDecodeError, csv.Error) as err:
            raise ResultsError(f"{path}: cannot read the run's metrics ({err})") from err
    return {name: sorted(points.items()) for name, points in values.items() if points}


def _logged_by_a_fit(fields: Sequence[str], rows: list[dict[str, str]]) -> bool:
    """Whether a CSV metrics file was written during a fit: it has training metrics, or a
    step past 0 (``trainer.validate`` of a method with nothing to train logs at step 0)."""
    if any(f.startswith("train/") for f in fields):
        return True
    steps = (row.get("step") for row in rows)
    return any(_number(text) > 0 for text in steps if text)


def _number(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        return 0.0  # an unreadable step is reported where it is read


def validation_points(folder: Path) -> dict[int, dict[str, str]]:
    """The validation values of the run ``folder`` by step (:data:`VALIDATION_COLUMNS`,
    written with 4 decimals): ``{step: {"val_psnr": "36.8870", "val_ssim": "0.9439"}}``."""
    curves = read_metric_curves(folder, VALIDATION_COLUMNS.values())
    points: dict[int, dict[str, str]] = {}
    for column, name in VALIDATION_COLUMNS.items():
        for step, value in curves.get(name, []):
            points.setdefault(step, {})[column] = f"{value:.4f}"
    return points
