"""Pretrained weights for ``experiments/<setup>/weights/``: each learned method's tested
checkpoint, stripped to what inference needs, plus ``check.csv`` with its PSNR/SSIM on the
first few fixed test images, so that a test can prove the weights still give the table.

A stripped checkpoint keeps ``state_dict``, ``hyper_parameters``, the ``learnct`` identity
(method, geometry, steps of the weights its run started from), ``global_step`` and Lightning's
version record: it loads with ``make eval CKPT=...``,
``<Method>.load_from_checkpoint(path, operator=A)`` and ``torch.load(weights_only=True)``,
but cannot resume training (no optimizer or loop state).

The methods without weights (FBP, TV, TV-WLS) get check rows too (``file`` empty):
``config.json`` keeps their model sections (``methods``), from which the check rebuilds them.
A new one can be added beside the written rows without the other methods' runs
(:func:`update_weightless_checks`).

Committed weights stay small: a checkpoint over ``max_mb`` in float32 is stored with its
floating tensors in float16 (half the bytes; the check rows are measured with the weights as
stored), and one still over ``max_mb`` is left out with a message.
"""

from __future__ import annotations

import csv
import io
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from learnct.evaluation import evaluate
from learnct.reporting.run_methods import RunMethod, reference_datamodule
from learnct.run.atomic_files import atomic_open, atomic_write_text
from learnct.run.provenance import repository_path

__all__ = [
    "CHECK_FIELDS",
    "check_rows",
    "check_same_setup",
    "export_weights",
    "load_weights_config",
    "read_check_rows",
    "remeasure_checks",
    "stored_preset",
    "strip_checkpoint",
    "update_weightless_checks",
    "verify_weights",
    "with_check_runs",
    "write_weights_config",
]

#: run_dir: the run folder a checkpoint was exported from (as ``results.csv`` names runs), so
#: that its model card shows that run's table rows; empty for FBP and TV, and in files written
#: before it was recorded
CHECK_FIELDS = ("method", "file", "test_set", "n_images", "psnr", "ssim", "run_dir")
#: the largest committed checkpoint (MB): larger ones are stored in float16
WEIGHTS_MAX_MB = 8.0
#: data keys that change how batches are loaded, not which images a check measures
LOADER_KEYS = frozenset({"batch_size", "eval_batch_size", "num_workers"})
KEEP = ("state_dict", "hyper_parameters", "learnct", "pytorch-lightning_version", "epoch")
KEEP += ("global_step",)


def _narrowed(value: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """``value`` in ``dtype`` if it is a floating tensor with more than one entry that stays
    finite there; else unchanged (scalars such as a stored ``||A||`` keep their precision)."""
    if not value.is_floating_point() or value.numel() <= 1:
        return value
    cast = value.to(dtype)
    return cast if torch.isfinite(cast).all() or not torch.isfinite(value).all() else value


def _same(a: Any, b: Any) -> bool:
    """Whether two checkpoint entries hold equal values (tensors: dtype, shape and entries)."""
    if isinstance(a, torch.Tensor) or isinstance(b, torch.Tensor):
        return (
            isinstance(a, torch.Tensor)
            and isinstance(b, torch.Tensor)
            and a.dtype == b.dtype
            and a.shape == b.shape
            and torch.equal(a, b)
        )
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    return type(a) is type(b) and a == b


def _narrowed_dict(slim: dict[str, Any], dtype: torch.dtype) -> dict[str, Any]:
    return {**slim, "state_dict": {k: _narrowed(v, dtype) for k, v in slim["state_dict"].items()}}


def _saved_bytes(entries: dict[str, Any]) -> int:
    buffer = io.BytesIO()
    torch.save(entries, buffer)
    return buffer.tell()


def strip_checkpoint(
    source: Path, target: Path, dtype: torch.dtype | None = None, max_mb: float | None = None
) -> Path:
    """Write ``source``'s inference part to ``target`` (atomically: temp file + rename), with
    the state dict's floating tensors cast to ``dtype`` when given (e.g. ``torch.float16``;
    ``load_state_dict`` casts them back to the model's dtype), or, with ``max_mb``, to float16
    when they would take more than ``max_mb`` as stored; scalars, and tensors that would
    overflow, keep their dtype. A ``target`` that already holds the same entries is left
    untouched, and equal entries give equal bytes (no churn of committed weights). The run id
    of the schedule that trained it is kept (``learnct_run``, without the run's settings), so
    that a test of the file continues that schedule's learning curve in ``make report`` (a
    file exported before that is rewritten once when exported again, with a new digest)."""
    from learnct.methods.checkpoints import run_stamp

    full = torch.load(source, map_location="cpu", weights_only=True)
    slim = {k: full[k] for k in KEEP if k in full}
    if (stamp := run_stamp(full)) is not None:  # the schedule that trained it (its curve)
        slim["learnct_run"] = {"id": stamp["id"]}
    if dtype is not None:
        slim = _narrowed_dict(slim, dtype)
    elif max_mb is not None and _saved_bytes(slim) > max_mb * 2**20:
        slim = _narrowed_dict(slim, torch.float16)
    target = Path(target)
    if target.exists():  # also when it is ``source`` (already stripped): nothing to write
        try:
            if _same(torch.load(target, map_location="cpu", weights_only=True), slim):
                return target
        except Exception:  # unreadable or foreign file: rewrite it
            pass
    target.parent.mkdir(parents=True, exist_ok=True)
    # torch.save names the archive's records after the file: write under the target's own name
    # in a temporary folder beside it, so that equal entries give equal bytes
    with tempfile.TemporaryDirectory(dir=target.parent, prefix=".strip-") as tmp:
        staged = Path(tmp) / target.name
        torch.save(slim, staged)
        os.replace(staged, target)
    return target


def check_rows(
    method: RunMethod, file_name: str, datamodule: Any, n_images: int
) -> list[dict[str, Any]]:
    """PSNR/SSIM of ``method`` on the first ``n_images`` of every test set of ``datamodule``."""
    return [
        {
            "method": method.name,
            "file": file_name,
            "test_set": name,
            "n_images": scores.n_images,
            "psnr": round(scores.mean_psnr, 4),
            "ssim": round(scores.mean_ssim, 5),
        }
        for name, scores in evaluate(method.model.reconstruct, datamodule, n_images).items()
    ]


def export_weights(
    methods: Sequence[RunMethod],
    folder: Path,
    datamodule: Any,
    n_images: int = 4,
    max_mb: float | None = WEIGHTS_MAX_MB,
) -> tuple[list[Path], Path]:
    """Strip every learned method's checkpoint into ``folder/<method>.ckpt`` (float16 where
    float32 is over ``max_mb``; left out where float16 is too) and write ``folder/check.csv``
    with each written checkpoint's PSNR/SSIM as stored and the run it came from, and those of
    the methods without weights (FBP, TV; ``file`` empty); returns the checkpoint paths and the
    check file."""
    folder = Path(folder)
    written, rows = [], []
    for method in methods:
        if method.checkpoint is None:  # FBP, TV: nothing to ship, their numbers are checked
            rows.extend(check_rows(method, "", datamodule, n_images))
            continue
        name = f"{method.name}.ckpt"
        target = strip_checkpoint(method.checkpoint, folder / name, max_mb=max_mb)
        if max_mb is not None and target.stat().st_size > max_mb * 2**20:
            size = target.stat().st_size / 2**20
            if Path(method.checkpoint).resolve() != target.resolve():  # never the source
                target.unlink()
            print(
                f"weights: {name} left out: {size:.1f} MB in float16 is over the "
                f"{max_mb:g} MB limit (--weights-max-mb)"
            )
            continue
        # measure what is stored (float16-rounded where narrowed), then restore the model
        stored = torch.load(target, map_location="cpu", weights_only=True)["state_dict"]
        original = {k: v.clone() for k, v in method.model.state_dict().items()}
        method.model.load_state_dict(stored)
        try:
            run_dir = repository_path(method.folder)
            rows.extend(
                {**r, "run_dir": run_dir} for r in check_rows(method, name, datamodule, n_images)
            )
        finally:
            method.model.load_state_dict(original)
        written.append(target)
    check = folder / "check.csv"
    rows += _rows_of_other_checkpoints(folder, {p.name for p in written})
    if any(row["file"] for row in rows):
        write_check(check, rows)
    elif check.exists():  # it would list checkpoints that are gone
        check.unlink()
    return written, check


def _rows_of_other_checkpoints(folder: Path, written: set[str]) -> list[dict[str, str]]:
    """The written check rows of the checkpoints in ``folder`` not written now (a method whose
    run did not load this time): kept, so that every committed checkpoint stays checked."""
    if not (folder / "check.csv").is_file():
        return []
    return [
        row
        for row in read_check_rows(folder)
        if row.get("file") and row["file"] not in written and (folder / row["file"]).is_file()
    ]


def write_check(path: Path, rows: Sequence[dict[str, Any]]) -> Path:
    """``check.csv`` at ``path`` (atomically): the rows' :data:`CHECK_FIELDS`."""
    with atomic_open(path, "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=CHECK_FIELDS, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
    return Path(path)


def write_weights_config(cfg: Any, folder: Path, models: dict[str, Any] | None = None) -> Path:
    """``folder/config.json``: the physics and data sections the check was computed with, and
    ``methods``: the model sections of the methods without weights (``models``, by name)."""
    import json

    from omegaconf import OmegaConf

    def plain(node: Any) -> Any:
        return OmegaConf.to_container(node, resolve=True) if OmegaConf.is_config(node) else node

    keep = plain(cfg)
    keep = {k: keep[k] for k in ("physics", "data", "seed")}
    if models:
        keep["methods"] = {name: plain(model) for name, model in models.items()}
    return atomic_write_text(Path(folder) / "config.json", json.dumps(keep, indent=1))


def _weights_file(folder: Path, name: str) -> Path:
    path = Path(folder) / name
    if not path.is_file():
        from learnct.run.results import ResultsError

        raise ResultsError(
            f"{folder}: no {name}, so its weights cannot be checked or reused: write it with "
            "make report SETUP=<setup> WEIGHTS=1"
        )
    return path


def load_weights_config(folder: Path) -> dict[str, Any]:
    """``folder/config.json`` of a weights folder (physics, data and seed of the check rows,
    ``methods``: the model sections of FBP and TV), checked like any stored config before
    anything uses it: only learnct's own targets, its ``methods`` too
    (:mod:`learnct.run.stored_config`), and its data sources
    (:func:`~learnct.run.config_checks.check_sources`). A ``ResultsError`` with the fix when it is
    missing, naming it when it is not valid."""
    from omegaconf import OmegaConf

    from learnct.run.config_checks import check_sources
    from learnct.run.results import ResultsError, read_run_config
    from learnct.run.stored_config import check_stored_targets

    path = _weights_file(folder, "config.json")
    stored = read_run_config(path.parent)  # JSON, an object: else a ResultsError naming it
    check_stored_targets(stored, path)
    for model in (stored.get("methods") or {}).values():
        check_stored_targets({"model": model}, path)
    data = stored.get("data")
    try:
        if not isinstance(data, dict) or "source" not in data:
            raise ValueError(f"data={data!r} is not valid: a data section with a source")
        check_sources(OmegaConf.create({"data": data}))  # as a run's config is checked
    except ValueError as err:
        raise ResultsError(f"{path}: {err}; write it again with make report WEIGHTS=1") from None
    return stored


def with_check_runs(rows: Sequence[dict[str, str]], runs: dict[str, str]) -> list[dict[str, str]]:
    """Check rows with the ``run_dir`` of each file in ``runs`` set (file name -> the run
    folder it now comes from, as ``results.csv`` names runs); the others keep theirs."""
    return [{**row, "run_dir": runs.get(row["file"], row.get("run_dir") or "")} for row in rows]


def read_check_rows(folder: Path) -> list[dict[str, str]]:
    """The rows of ``folder/check.csv`` (:data:`CHECK_FIELDS`); a ``ResultsError`` with the fix
    when it is missing."""
    with open(_weights_file(folder, "check.csv"), newline="") as fh:
        return list(csv.DictReader(fh))


def _differ(run: Any, stored: Any) -> bool:
    """Whether a run's config section differs from ``config.json``'s in a key both name (a
    key added to the configs since ``config.json`` was written takes its default there)."""
    if isinstance(run, dict) and isinstance(stored, dict):
        return any(_differ(run[k], stored[k]) for k in run.keys() & stored.keys())
    return run != stored


def stored_preset(stored: dict[str, Any], path: Path) -> Any:
    """The physics preset a stored config (``path``: a run's or a weights folder's
    ``config.json``) records in its ``physics`` section
    (:func:`~learnct.physics.presets.section_preset`); ``ValueError`` naming ``path``."""
    from learnct.physics.presets import section_preset

    section = stored.get("physics")
    try:
        if not isinstance(section, dict):
            raise ValueError("it has no physics section")
        return section_preset(section)
    except ValueError as err:
        raise ValueError(f"{path}: {err}") from err


def check_same_setup(method: RunMethod, stored: dict[str, Any], folder: Path, fix: str) -> None:
    """Raise ``ValueError`` when the run of ``method`` differs from ``folder/config.json``
    (``stored``) in its physics (what they measure:
    :func:`~learnct.physics.presets.preset_differences`), its data (but :data:`LOADER_KEYS`)
    or seed, in a key both name: its check rows would measure another test set; ``fix`` names
    the command that writes the whole folder."""
    from omegaconf import OmegaConf

    from learnct.methods.checkpoints import config_training
    from learnct.physics.presets import preset_differences

    mine = OmegaConf.to_container(method.cfg, resolve=True)
    mine["data"] = {k: v for k, v in mine.get("data", {}).items() if k not in LOADER_KEYS}
    physics = (
        stored_preset(mine, method.folder / "config.json"),
        stored_preset(stored, folder / "config.json"),
    )
    differ = ["physics"] if preset_differences(*physics) else []
    differ += [k for k in ("data", "seed") if _differ(mine.get(k), stored.get(k))]
    if "data" not in differ and config_training(mine) != config_training(stored):  # doses
        differ.append("data")
    if differ:
        raise ValueError(
            f"{method.folder}: its {', '.join(differ)} differ from {folder}/config.json's: "
            f"write all of weights/ with {fix} present"
        )


def update_weightless_checks(methods: Sequence[RunMethod], folder: Path) -> list[Path]:
    """Re-measure the methods without weights among ``methods`` (e.g. a new TV-WLS row beside
    written rows whose runs are not here) into ``folder/check.csv`` and their model sections
    into ``folder/config.json``'s ``methods``, on as many images as the written rows; every
    other method's rows stay as written. Raises ``ValueError`` when a run's physics, data or
    seed differ from ``config.json``'s (:func:`check_same_setup`: its check would measure
    another test set)."""
    import json

    from omegaconf import OmegaConf

    from learnct.run import build_physics

    folder = Path(folder)
    weightless = [m for m in methods if m.checkpoint is None]
    if not weightless:
        return []
    stored = load_weights_config(folder)
    rows = read_check_rows(folder)
    for method in weightless:  # keys config.json lacks take their defaults in the check
        check_same_setup(method, stored, folder, "make report WEIGHTS=1 with every row's run")
    n_images = int(rows[0]["n_images"]) if rows else 4
    cfg = OmegaConf.create(stored)
    preset, operator = build_physics(cfg)
    datamodule = reference_datamodule(cfg, preset, operator, test_size=n_images)
    names = {m.name for m in weightless}
    rows = [r for r in rows if r["method"] not in names]
    for method in weightless:  # rebuilt on config.json's operator, as the check does
        rebuilt = _weightless_method(method.name, method.cfg.model, folder, cfg, operator)
        rows.extend(check_rows(rebuilt, "", datamodule, n_images))
        stored.setdefault("methods", {})[method.name] = OmegaConf.to_container(
            method.cfg.model, resolve=True
        )
    write_check(folder / "check.csv", rows)
    config = atomic_write_text(folder / "config.json", json.dumps(stored, indent=1))
    return [folder / "check.csv", config]


def _weightless_method(name: str, model_cfg: Any, folder: Path, cfg: Any, operator: Any):
    """FBP or TV rebuilt from its model section in ``config.json`` (already checked like a
    stored config: :mod:`learnct.run.stored_config`)."""
    import hydra

    if model_cfg is None:
        raise ValueError(f"{folder}/config.json: no methods.{name} for its check rows")
    factory = hydra.utils.instantiate(model_cfg, _partial_=True, _convert_="all")
    model = factory(operator=operator).eval()
    return RunMethod(name, folder, cfg, model, None)


def verify_weights(folder: Path) -> list[tuple[dict[str, str], float, float]]:
    """Reload every checkpoint listed in ``folder/check.csv`` as ``learnct.pretrained`` does
    (:func:`~learnct.methods.pretrained.load_pretrained`) and re-measure it the same way; returns
    ``(row, psnr, ssim)`` per row, for the caller to compare with the row. ``config.json`` may
    name only learnct's own targets (:mod:`learnct.run.stored_config`), and each checkpoint
    must be a local learnct checkpoint of its method, loaded weights-only."""

    from omegaconf import OmegaConf

    from learnct.methods.checkpoints import (
        check_checkpoint,
        read_checkpoint,
        reading_checkpoints_once,
    )
    from learnct.methods.pretrained import checkpoint_method, load_pretrained
    from learnct.run import build_physics
    from learnct.run.results import ResultsError

    folder = Path(folder)
    stored = load_weights_config(folder)  # checked before anything else is read
    models = stored.get("methods") or {}
    rows = read_check_rows(folder)
    cfg = OmegaConf.create(stored)
    preset, operator = build_physics(cfg)
    results = []
    for key in dict.fromkeys((r["method"], r["file"]) for r in rows):
        name, file_name = key
        mine = [r for r in rows if (r["method"], r["file"]) == key]
        if not file_name:  # FBP, TV: rebuilt from their stored settings
            method = _weightless_method(name, models.get(name), folder, cfg, operator)
        else:
            path = folder / file_name
            with reading_checkpoints_once():  # the checks, then the load: one read
                saved_by = checkpoint_method(read_checkpoint(path), path).__name__
                check_checkpoint(path, saved_by, operator.geometry)  # local, weights only
                model = load_pretrained(path)  # as learnct.pretrained builds it
            if not name == path.stem == model.result_name:
                # e.g. a weighted LPD listed, or saved, as the plain one (its card and name)
                raise ResultsError(
                    f"{folder / 'check.csv'} lists {file_name} as {name}, but it holds a "
                    f"{model.result_name}: export it again (make report WEIGHTS=1, saved as "
                    f"{model.result_name}.ckpt)"
                )
            method = RunMethod(name, folder, cfg, model, path)
        n_images = int(mine[0]["n_images"])
        datamodule = reference_datamodule(cfg, preset, operator, test_size=n_images)
        measured = {r["test_set"]: r for r in check_rows(method, file_name, datamodule, n_images)}
        for row in mine:
            got = measured[row["test_set"]]
            results.append((row, got["psnr"], got["ssim"]))
    return results


def remeasure_checks(folder: Path) -> list[str]:
    """Re-measure every row of ``folder/check.csv`` from the committed files alone (as
    :func:`verify_weights` does) and write the new values: after an intended change of what
    the check measures (e.g. the CT-like phantoms it runs on) or of a checkpoint. Returns a
    line per row, ``"<method> on <test set>: <old> -> <new> dB"``."""
    checked = verify_weights(folder)
    rows = [{**row, "psnr": psnr, "ssim": ssim} for row, psnr, ssim in checked]
    write_check(Path(folder) / "check.csv", rows)
    return [
        f"{row['method']} on {row['test_set']}: {row['psnr'] or '(new)'} -> {psnr:.4f} dB"
        for row, psnr, _ in checked
    ]
