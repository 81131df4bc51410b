"""The ``make report`` table: per (method, test set) of one setup, the run with the most test
images (the most recent of equals, so a quick check on 4 images never replaces a 64-image row),
gathered from the run folders' ``results.csv`` under ``logs/`` and written as
``experiments/<setup>/results.{csv,md}`` with the command that made each run."""

from __future__ import annotations

import csv
import fnmatch
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from learnct.physics.presets import PRESETS, preset_differences, section_preset
from learnct.run.atomic_files import atomic_open, atomic_write_text
from learnct.run.command_line import command_line
from learnct.run.provenance import repository_path
from learnct.run.results import (
    REQUIRED_FIELDS,
    RESULT_FIELDS,
    ResultsError,
    find_results,
    n_images,
    read_overrides,
    read_results,
    read_run_config,
    tested_checkpoint,
)

__all__ = [
    "COLUMNS",
    "ROUNDING",
    "collect_results",
    "keep_committed",
    "physics_changes",
    "physics_difference",
    "read_table",
    "run_command",
    "test_data_notes",
    "write_report",
]

#: decimals of the numbers shown (report tables, dashboard): PSNR in dB, SSIM, ms per slice
ROUNDING = {"psnr": 2, "ssim": 4, "ms_per_slice": 1, "fbp_psnr": 2, "fbp_ssim": 4}

#: the report's columns: a run's results fields (:data:`RESULT_FIELDS`) without the setup (one
#: table per setup), FBP's SSIM and the Python version; then the run's command. FBP's PSNR on
#: the run's own test data stays: it shows how far rows of different ``test_hash`` differ.
COLUMNS = (
    *(f for f in RESULT_FIELDS if f not in ("physics", "fbp_ssim", "python_version")),
    "config",
)


def read_table(path: Path) -> list[dict[str, str]]:
    """The rows of a report table (``experiments/<setup>/results.csv``: :data:`COLUMNS`);
    :class:`ResultsError` when it cannot be read or lacks a required column."""
    return read_results(path, required=[f for f in REQUIRED_FIELDS if f in COLUMNS])


def run_command(folder: Path) -> str:
    """The command line that made the run in ``folder``: ``learnct-eval`` where its
    ``config.json`` says ``train: false``, else ``learnct-train``, then its Hydra overrides
    (``.hydra/overrides.yaml``), shell-quoted. ``""`` where the folder does not record them."""
    try:
        overrides = read_overrides(folder)
    except ResultsError:  # unreadable: the command is unknown
        return ""
    if overrides is None:  # no Hydra folder (hydra.output_subdir=null)
        return ""
    try:
        train = read_run_config(folder).get("train", True)
    except ResultsError:
        train = True
    program = "learnct-train" if train is not False else "learnct-eval"
    return command_line(program, overrides)


def _posix(pattern: str) -> str:
    """A run-folder pattern with ``/`` separators and no trailing one."""
    return pattern.replace("\\", "/").rstrip("/") or "."


def physics_changes(section: object, setup: str) -> list[tuple[str, object, object]]:
    """Where the physics of a run's config section (its ``physics`` group: ``preset`` and
    overrides such as ``photons``) differ from the preset ``setup``
    (:func:`~learnct.physics.presets.preset_differences`: ``(setting, run's value, preset's
    value)``). ``[]`` where they are the preset's, or where the section names no preset (a run
    that wrote none is taken at its word); ``ValueError`` where the section's physics cannot
    be rebuilt."""
    if not isinstance(section, dict) or "preset" not in section:
        return []
    return preset_differences(section_preset(section), PRESETS[setup]())


def physics_difference(config: dict[str, Any], setup: str) -> str | None:
    """How the physics of a run (its ``config.json``, :func:`_run_config`) differ from the
    preset ``setup`` (:func:`physics_changes`), e.g. ``"photons 1000.0 (fan_lowdose:
    10000.0)"``; ``None`` where they are the preset's or the config records no physics."""
    try:
        changes = physics_changes(config.get("physics"), setup)
    except ValueError as err:
        return f"physics that cannot be rebuilt ({err})"
    return ", ".join(f"{k} {run!s} ({setup}: {ours!s})" for k, run, ours in changes) or None


def collect_results(
    log_dir: Path, setup: str, exclude: Sequence[str] = (), trained_on: str | None = None
) -> tuple[list[dict[str, str]], list[str]]:
    """One row per (method, test set) for ``setup``: the run with the most test images, the
    most recent of equals; and messages on what was skipped (unreadable files, sweep jobs
    under ``multiruns/``, runs whose physics are not the preset's:
    :func:`physics_difference`, weights trained on other data than ``trained_on``, e.g.
    CT-like fine-tunes or weights trained over a dose range beside ellipse-trained rows at the
    preset's dose: a row's ``trained_on``, where recorded, as the config of the run that
    trained its weights says where that is found (:func:`_config_trained_on`);
    ``None``: any, ``exclude`` patterns that matched nothing). ``exclude``: glob
    patterns of run folders relative to ``log_dir`` (e.g. ``eval_*``, ``eval_fbpunet`` or
    ``lpd/runs/2026-11-26*``) to leave out; a pattern that matches a folder leaves out every
    run under it."""
    best: dict[tuple[str, str], tuple[tuple[int, float], dict[str, str]]] = {}
    problems, used, sweep_jobs = [], set(), []
    other_data: dict[str, str] = {}  # run folder -> the data its weights trained on
    for path in find_results(log_dir):
        run = path.parent.relative_to(log_dir)
        if "multiruns" in run.parts[:-1]:  # <task>/multiruns/<start>/<job>
            sweep_jobs.append(run.as_posix())
            continue
        matched = _matching(run, exclude)
        if matched:
            used |= matched
            continue
        try:
            rows = read_results(path)
        except ResultsError as err:
            problems.append(f"skipped unreadable results: {path}: {err}")
            continue
        config = _run_config(path.parent)
        if any(row["physics"] == setup for row in rows):
            difference = physics_difference(config, setup)
            if difference is not None:
                problems.append(
                    f"left out {path.parent}: its physics are not the {setup} preset's "
                    f"({difference}); a table compares methods on the preset's own data (a "
                    "dose curve: make report ARGS=--dose)"
                )
                continue
        stamp = path.stat().st_mtime
        training = _config_trained_on(path.parent, config) if trained_on is not None else None
        for row in rows:
            # where the run is now (a run folder moved from a worktree or another machine
            # keeps the run_dir it was written with)
            row["_folder"] = row["run_dir"] = str(path.parent)
            if row["physics"] != setup:
                continue
            if training is not None and row.get("trained_on"):
                row["trained_on"] = training
            if trained_on is not None and row.get("trained_on") not in (None, "", trained_on):
                other_data.setdefault(str(path.parent), row["trained_on"])
                continue
            key = (row["method"], row["test_set"])
            rank = (n_images(row), stamp)
            if key not in best or rank > best[key][0]:
                best[key] = (rank, row)
    if sweep_jobs:
        problems.append(
            f"left out {len(sweep_jobs)} tested sweep job(s) (e.g. {sweep_jobs[0]}): a sweep "
            "chooses on validation, so the table takes single runs; test the chosen point with "
            "make train or make eval"
        )
    problems += [
        f"left out {folder}: its weights were trained on {source} data, not {trained_on} as "
        f"the {setup} table's (a table compares methods trained on one kind of data; commit "
        "them under a setup name of their own: python -m learnct.reporting.run_weights --out "
        f"experiments/{setup}_{_folder_name(source)}; CT-like ones are compared on real CT by "
        "make report-real-ct)"
        for folder, source in other_data.items()
    ]
    problems += [
        f"--exclude {pattern!r} matched no run folder under {log_dir}/ (patterns are relative "
        "to it, e.g. 'eval_*')"
        for pattern in exclude
        if pattern not in used
    ]
    rows = [row for _, row in best.values()]
    rows.sort(key=lambda r: (r["test_set"], float(r["psnr"] or "nan")))
    return rows, problems


def _matching(run: Path, exclude: Sequence[str]) -> set[str]:
    """The ``exclude`` patterns that match the run folder ``run`` (relative to the log
    folder) or a folder above it."""
    folders = [f.as_posix() for f in (run, *run.parents) if f != Path(".") or run == f]
    return {
        pattern
        for pattern in exclude
        if any(fnmatch.fnmatchcase(f, _posix(pattern)) for f in folders)
    }


def _run_config(folder: Path) -> dict[str, Any]:
    """The ``config.json`` of the run in ``folder``; ``{}`` where it cannot be read (a run
    taken at its word: no physics to compare, no training to look up)."""
    try:
        return read_run_config(folder)
    except ResultsError:
        return {}


def _config_trained_on(folder: Path, config: dict[str, Any]) -> str | None:
    """The data the weights a run tested were trained on, as the ``config.json`` of the run
    that trained them says (:func:`~learnct.methods.checkpoints.config_training`): the run
    itself where it trained, else (``learnct-eval``) the run whose ``checkpoints/`` hold the
    tested file (``config``: the run's own, :func:`_run_config`). What its rows'
    ``trained_on`` says, but also for rows written before the dose range was recorded (they
    said ``ellipses`` for weights trained at 1000-100000 photons). ``None`` where no such
    config is found (a committed weights file: its row says its folder's training already)."""
    from learnct.methods.checkpoints import config_training

    if not config:  # the run's own config.json could not be read
        return None
    try:
        if config.get("train") is not True:
            checkpoint = tested_checkpoint(folder, config)
            if checkpoint.parent.name != "checkpoints":
                return None
            config = read_run_config(checkpoint.parents[1])
    except ResultsError:
        return None
    return config_training(config) if config.get("train") is True else None


def _folder_name(training: str) -> str:
    """A folder name for weights trained on ``training`` data (``ctlike``, ``ellipses at
    1000-100000 photons`` -> ``ellipses_1000_100000_photons``)."""
    return "_".join(w for w in re.split(r"[^A-Za-z0-9]+", training) if w and w != "at")


def _fmt(value: str, spec: str) -> str:
    try:
        return format(float(value), spec)
    except (TypeError, ValueError):
        return "-"


def _code(text: str) -> str:
    """``text`` as Markdown inline code inside a table cell (``-`` when empty)."""
    escaped = text.replace("|", "\\|")  # a bare | would end the cell
    return f"`{escaped}`" if text else "-"


def _train_steps(row: dict[str, str]) -> int | None:
    try:
        return int(row.get("train_steps") or "")
    except ValueError:
        return None


def _size(row: dict[str, str]) -> str:
    steps = _train_steps(row)
    return f"{n_images(row)} images" + (f", {steps} steps" if steps is not None else "")


def _covers(run: dict[str, str], written: dict[str, str]) -> bool:
    """Whether ``run``'s row may replace the ``written`` one: as many test images at least and,
    where the written row records its training steps, as many steps at least."""
    steps, written_steps = _train_steps(run), _train_steps(written)
    enough_steps = written_steps is None or (steps is not None and steps >= written_steps)
    return n_images(run) >= n_images(written) and enough_steps


def keep_committed(
    rows: list[dict[str, str]], committed: Path, hint: str = ""
) -> tuple[list[dict[str, str]], list[str]]:
    """``rows`` merged with the table already written at ``committed`` (e.g. the committed
    ``experiments/<setup>/results.csv``): per (method, test set) a new row replaces the written
    one only if its run tested at least as many images and, where the written row records its
    training steps, trained at least as many (an old short local run does not replace a
    committed full schedule); written rows without such a run stay. Returns the rows and a line
    for each written row kept (ending in ``hint``) or replaced. Raises :class:`ResultsError`
    for a written table that cannot be read (its rows would be lost)."""
    if not committed.exists():
        return rows, []  # nothing written yet
    try:
        old = read_table(committed)
    except ResultsError as err:
        raise ResultsError(
            f"{committed} cannot be read ({err}): its rows would be lost; mend it (e.g. from "
            "git), or pass --replace to write the runs' rows alone"
        ) from err
    new = {(r["method"], r["test_set"]): r for r in rows}
    kept, notes = [], []
    for row in old:
        key = (row["method"], row["test_set"])
        run = new.get(key)
        if run is not None and _covers(run, row):
            notes.append(
                f"replaced the written row of {key[0]} on {key[1]} with {run['_folder']} "
                f"({_size(run)})"
            )
            continue
        kept.append(row)
        new.pop(key, None)
        smaller = f" over {run['_folder']} ({_size(run)})" if run is not None else ""
        notes.append(f"kept the written row of {key[0]} on {key[1]} ({_size(row)}){smaller}{hint}")
    merged = [*kept, *new.values()]
    merged.sort(key=lambda r: (r["test_set"], float(r["psnr"] or "nan")))
    return merged, notes


def test_data_notes(rows: list[dict[str, str]]) -> list[str]:
    """A line per test set whose rows were tested on different data (more than one
    ``test_hash``: other physics overrides, another noise draw, or the float rounding of
    another machine), naming the rows of each and their FBP PSNR on that data (dB), so that
    the reader sees how far the data differ; none where every row has one hash."""
    notes = []
    for test_set in sorted({r["test_set"] for r in rows}):
        groups: dict[str, list[dict[str, str]]] = {}
        for row in rows:
            if row["test_set"] == test_set and row.get("test_hash"):
                groups.setdefault(row["test_hash"], []).append(row)
        if len(groups) < 2:
            continue
        parts = []
        for test_hash, members in groups.items():
            fbp = sorted({_fmt(r.get("fbp_psnr"), ".2f") for r in members} - {"-"})
            methods = ", ".join(r["method"] for r in members)
            known = f" (FBP {'/'.join(fbp)} dB)" if fbp else ""
            parts.append(f"{test_hash[:8]}: {methods}{known}")
        notes.append(
            f"{test_set}: the rows were tested on {len(groups)} versions of the test data "
            f"(test_hash {'; '.join(parts)})"
        )
    return notes


def _rounded(row: dict[str, str]) -> dict[str, str]:
    """A row as written: numbers rounded (:data:`ROUNDING`), ``run_dir`` relative to the
    working folder (the repository) when it lies inside it."""
    out = dict(row)
    for key, digits in ROUNDING.items():
        try:
            out[key] = f"{float(row[key]):.{digits}f}"
        except (KeyError, TypeError, ValueError):
            pass
    if row.get("run_dir"):
        out["run_dir"] = repository_path(row["run_dir"])
    return out


def write_report(
    rows: list[dict[str, str]], setup: str, out_dir: Path, appendix: str = ""
) -> tuple[Path, Path]:
    """Write ``results.csv`` and ``results.md`` for ``setup`` under ``out_dir/<setup>/``, each
    atomically (:mod:`learnct.run.atomic_files`: a failed or killed write leaves the previous
    file whole); ``appendix``: Markdown sections after the table (the published numbers)."""
    folder = out_dir / setup
    csv_path, md_path = folder / "results.csv", folder / "results.md"
    rows = [{**r, "config": run_command(Path(r["_folder"]))} if "_folder" in r else r for r in rows]
    rows = [_rounded(r) for r in rows]
    markdown = _markdown(rows, setup) + (f"\n{appendix}" if appendix else "")
    with atomic_open(csv_path, "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=COLUMNS, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
    atomic_write_text(md_path, markdown)
    return csv_path, md_path


def _markdown(rows: list[dict[str, str]], setup: str) -> str:
    """The table of ``rows`` as ``results.md``, with the digits of ``results.csv`` (rounding
    once: an SSIM of 0.99650 written as 0.9965 is not shown rounded again as 0.997)."""
    digits = {key: f".{n}f" for key, n in ROUNDING.items()}
    lines = [
        f"# Results on `{setup}`",
        "",
        "Per-image PSNR and SSIM (data range max - min of the truth) averaged over the fixed "
        "test set; steps: the optimiser steps that trained the tested weights, those of the "
        "weights a run started from (`init_weights`) included (`-`: not recorded, or nothing "
        "to train); runtime in ms per slice after warm-up; config: the command that made the "
        "run (`make train`/`make eval` run these). Produced by `make report`.",
        "",
        "| method | test set | images | steps | PSNR (dB) | SSIM | ms per slice | device "
        "| commit | config |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    notes = test_data_notes(rows)
    for r in rows:
        lines.append(
            f"| {r['method']} | {r['test_set']} | {r.get('n_images') or '-'} | "
            f"{_fmt(r.get('train_steps'), ',.0f')} | "
            f"{_fmt(r['psnr'], digits['psnr'])} | {_fmt(r['ssim'], digits['ssim'])} | "
            f"{_fmt(r.get('ms_per_slice'), digits['ms_per_slice'])} | "
            f"{r.get('device', '')} | {r.get('commit', '')} | "
            f"{_code(r.get('config') or '')} |"
        )
    if notes:
        lines += [
            "",
            "Test data differ between rows (`fbp_psnr` in `results.csv`: FBP on each "
            "row's own data):",
            "",
            *(f"- {note}" for note in notes),
        ]
    return "\n".join(lines) + "\n"
