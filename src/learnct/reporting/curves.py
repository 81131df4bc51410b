"""Learning curves: validation PSNR (and SSIM) against the training step, one line per method,
written by ``make report`` as ``experiments/<setup>/curves.csv`` and ``curves.png``.

Each method's curve is that of the schedule that trained the weights its table row tested: the
row's run folder, joined with every run folder of the same run id (``run.json``: the sittings
and resumes of one schedule; for an evaluation, ``make eval``, the run id its tested
checkpoint records, up to that checkpoint's step, so that testing a schedule's checkpoint or
its committed weights again keeps the schedule's curve; an evaluation whose weights record no
run id, or whose schedule has no curve here, keeps the written curve), from the validation
metrics the CSV logger wrote (``val/psnr``, ``val/ssim``;
:func:`learnct.run.results.read_metric_curves`), and with the committed curve of its sittings
(``experiments/<setup>/sittings/*/curve.csv`` of the same run id: the sittings whose run
folders are gone, on another machine or in another session). A method whose row was kept
from the written table (no run of its here) keeps its written curve, as the table keeps its
row. FBP and TV (nothing to train) have one validation point: drawn as a dashed level across
the plot. A run started from trained weights (``init_weights``) is drawn at the optimiser
steps of its weights in all (its own plus those it started from, the checkpoints'
``steps_before``), so that it continues its source's curve instead of starting at 0. A
schedule still in progress (a sittings checkpoint under ``experiments/<setup>/
sittings/`` below its planned steps, that no table row draws to its last step) is drawn from
its committed curve as ``<method> (<task>: in progress, step <k> of <n>)``, dotted, so that a
long schedule's approach shows before it has a row.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from learnct.methods.checkpoints import read_checkpoint, steps_before, trained_by
from learnct.run.atomic_files import atomic_open
from learnct.run.identity import read_identity
from learnct.run.provenance import repository_path
from learnct.run.results import (
    VALIDATION_COLUMNS,
    ResultsError,
    find_run_folders,
    read_run_config,
    tested_checkpoint,
    validation_points,
)
from learnct.run.sittings import read_sitting_curve, sitting_progress

__all__ = ["CURVE_FIELDS", "collect_curves", "plot_curves", "write_curves"]

#: the columns of ``curves.csv``: PSNR in dB, SSIM, ``run_dir`` the run folder of the point
CURVE_FIELDS = ("method", "step", "val_psnr", "val_ssim", "run_dir")


@dataclass(frozen=True)
class _Tested:
    """The schedule that trained the weights a row's run tested: its run id (``None``: not
    known) and, for an evaluation, the tested checkpoint's step in that schedule (its curve
    ends there) and the steps of the weights the schedule started from (``None``: not
    recorded)."""

    run_id: str | None
    evaluation: bool = False
    step: int | None = None
    steps_before: int | None = None


def _tested(folder: Path) -> _Tested:
    """:class:`_Tested` of the run in ``folder``: its own run id (``run.json``), or for an
    evaluation (``learnct-eval``) the id its tested checkpoint records
    (:func:`~learnct.methods.checkpoints.trained_by`: a run's or a sittings checkpoint, or
    committed weights exported from one)."""
    try:
        config = read_run_config(folder)
    except ResultsError:
        config = {}
    if config.get("train") is False:
        try:
            checkpoint = read_checkpoint(tested_checkpoint(folder, config), mmap=True)
        except (ResultsError, ValueError):  # FBP, TV, or a file that is gone
            return _Tested(None, evaluation=True)
        step = int(checkpoint.get("global_step") or 0)
        return _Tested(trained_by(checkpoint), True, step, steps_before(checkpoint))
    identity = read_identity(folder)
    return _Tested(None if identity is None else identity.id)


def _schedule_folders(folder: Path, run_id: str | None, log_dir: Path) -> list[Path]:
    """``folder`` and every run folder under ``log_dir`` of the schedule ``run_id`` (its
    sittings and resumes), oldest first."""
    if run_id is None:
        return [folder]
    same = [
        f
        for f in find_run_folders(log_dir)
        if (other := read_identity(f)) is not None and other.id == run_id
    ]
    return sorted({*same, folder}, key=lambda f: f.name)


def _steps_before(folders: list[Path], run_id: str | None, sittings: Path) -> int | None:
    """The optimiser steps of the weights a schedule started from, as its checkpoints record
    them (0 from scratch): a checkpoint of its run ``folders``, else its sittings checkpoint
    under ``sittings`` (of ``run_id``). Where none records them: 0 if its config names no
    ``init_weights``, else ``None`` (not known)."""
    for path in (p for f in folders for p in sorted((f / "checkpoints").glob("*.ckpt"))):
        try:
            recorded = steps_before(read_checkpoint(path, mmap=True))
        except ValueError:  # unreadable: another one may tell
            continue
        if recorded is not None:
            return recorded
    for folder in sorted(sittings.glob("*/")) if run_id is not None else []:
        try:
            progress = sitting_progress(folder)
        except ValueError:  # an unreadable last.ckpt: not this schedule's
            continue
        if progress is not None and progress.run_id == run_id:
            if progress.steps_before is not None:
                return progress.steps_before
    try:
        config = read_run_config(folders[-1])
    except ResultsError:
        config = {}
    return None if config.get("init_weights") else 0


def _sitting_points(method: str, run_id: str | None, setup: Path) -> dict[int, dict[str, str]]:
    """The points of the sittings curves under ``setup/sittings`` of schedule ``run_id``."""
    points: dict[int, dict[str, str]] = {}
    if run_id is None:
        return points
    for sittings in sorted((setup / "sittings").glob("*/")):
        for p in _sitting_curve(method, sittings, run_id):
            points[int(p["step"])] = p
    return points


def _sitting_curve(method: str, sittings: Path, run_id: str) -> list[dict[str, str]]:
    """The points of ``sittings/curve.csv`` of schedule ``run_id``, as ``method``'s."""
    return [
        {
            "method": method,
            "step": p["step"],
            "run_dir": str(sittings),
            **{k: p[k] for k in VALIDATION_COLUMNS if p.get(k)},
        }
        for p in read_sitting_curve(sittings)
        if p.get("run_id") == run_id
    ]


def _in_progress_points(setup: Path, drawn: dict[str, int | None]) -> list[dict[str, str]]:
    """The committed curves of the schedules under ``setup/sittings`` that have not ended and
    that no table row draws up to their last step (``drawn``: run id -> the step its row's
    curve ends at, ``None``: all of it)."""
    points = []
    for folder in sorted((setup / "sittings").glob("*/")):
        try:
            progress = sitting_progress(folder)
        except ValueError as err:  # the curves of the other schedules are still drawn
            print(f"curves: left out {folder.name}: {err}")
            continue
        if progress is None or progress.ended:
            continue
        if progress.run_id in drawn:
            end = drawn[progress.run_id]  # a row's curve: None (all of it) or its last step
            if end is None or end >= progress.step:
                continue
        of = "" if progress.planned is None else f" of {progress.planned}"
        before = f", from weights of {progress.steps_before} steps" if progress.steps_before else ""
        method = f"{progress.method} ({folder.name}: in progress, step {progress.step}{of}{before})"
        for point in _sitting_curve(method, folder, progress.run_id):
            points.append({**point, "step": str(int(point["step"]) + (progress.steps_before or 0))})
    return points


def _run_curve(
    method: str, folders: Iterable[Path], points: dict[int, dict[str, str]] | None = None
) -> list[dict[str, str]]:
    """The validation points of ``method`` over ``folders`` (a later folder wins a step),
    on top of ``points`` (a sittings curve's)."""
    points = dict(points or {})
    for folder in folders:
        for step, values in validation_points(folder).items():
            point = points.setdefault(step, {"method": method, "step": str(step)})
            point.update(values, run_dir=str(folder))
    return [points[s] for s in sorted(points)]


def _read_written(path: Path) -> list[dict[str, str]]:
    try:
        with open(path, newline="") as fh:
            return list(csv.DictReader(fh))
    except OSError:
        return []


def collect_curves(
    rows: list[dict[str, str]], log_dir: Path, written: Path
) -> tuple[list[dict[str, str]], list[str], list[dict[str, str]]]:
    """Curve points (:data:`CURVE_FIELDS`) of the methods of the table ``rows``: from their
    runs (a row's ``_folder``), else the points already in ``written`` (``curves.csv``).
    Returns the points, a line per run whose metrics could not be read, and the points of
    the schedules in progress beside ``written`` (``sittings/``)."""
    folders: dict[str, Path | None] = {}
    for row in rows:
        folder = row.get("_folder")
        if folders.get(row["method"]) is None:
            folders[row["method"]] = Path(folder) if folder else None
    old = _read_written(written)
    points, problems = [], []
    drawn: dict[str, int | None] = {}
    for method, folder in folders.items():
        if folder is None:
            points += [p for p in old if p.get("method") == method]
            continue
        tested = _tested(folder)
        run_id = tested.run_id
        if run_id is not None:
            drawn[run_id] = tested.step
        try:
            schedule = _schedule_folders(folder, run_id, log_dir)
            curve = _run_curve(method, schedule, _sitting_points(method, run_id, written.parent))
        except ResultsError as err:
            problems.append(f"curves: skipped {method}: {err}")
            continue
        if tested.step is not None:  # the tested weights' step: later sittings are not theirs
            curve = [p for p in curve if int(p["step"]) <= tested.step]
        if not curve and tested.evaluation:
            kept = [p for p in old if p.get("method") == method]
            problems.append(
                f"curves: {method}'s row tests weights whose schedule has no curve here (its "
                f"run id {'not recorded' if run_id is None else run_id}): "
                + ("its written curve kept" if kept else "none drawn")
            )
            points += kept
            continue
        before = tested.steps_before
        if before is None:
            before = _steps_before(schedule, run_id, written.parent / "sittings")
        if before is None:
            problems.append(
                f"curves: {method} started from weights whose training steps are not recorded: "
                "its curve is drawn from its own step 0"
            )
        for point in curve:
            point["step"] = str(int(point["step"]) + (before or 0))
        points += curve
    return points, problems, _in_progress_points(written.parent, drawn)


def write_curves(
    rows: list[dict[str, str]], log_dir: Path, folder: Path
) -> tuple[list[Path], list[str]]:
    """Write ``curves.csv`` and ``curves.png`` into ``folder`` (``experiments/<setup>``) for
    the table ``rows`` (nothing when none of its methods has a curve); returns the files
    written and the problems met."""
    path = folder / "curves.csv"
    points, problems, in_progress = collect_curves(rows, log_dir, path)
    if not points:  # no method of the table has a curve here or written: nothing to draw
        return [], problems
    points += in_progress
    for point in points:
        point["run_dir"] = repository_path(point["run_dir"]) if point.get("run_dir") else ""
    folder.mkdir(parents=True, exist_ok=True)
    with atomic_open(path, "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=CURVE_FIELDS, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(points)
    dotted = {p["method"] for p in in_progress}
    return [path, plot_curves(points, folder / "curves.png", dotted)], problems


def plot_curves(points: list[dict[str, str]], path: Path, dotted: Iterable[str] = ()) -> Path:
    """Validation PSNR against step, one line per method (one point: a dashed level; the
    methods in ``dotted``, schedules in progress, dotted)."""
    dotted = set(dotted)
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    series: dict[str, list[tuple[int, float]]] = {}
    for p in points:
        if p.get("val_psnr"):
            series.setdefault(p["method"], []).append((int(p["step"]), float(p["val_psnr"])))
    steps = [s for values in series.values() for s, _ in values] or [0, 1]
    span = (min(steps), max(max(steps), min(steps) + 1))
    fig, ax = plt.subplots(figsize=(7, 4.5), dpi=110)
    for method, values in series.items():
        values.sort()
        if len(values) == 1:
            ax.plot(span, [values[0][1]] * 2, linestyle="--", label=method)
        else:
            style = ":" if method in dotted else "-"
            ax.plot(*zip(*values, strict=True), marker=".", linestyle=style, label=method)
    ax.set_xlabel("training steps of the weights (with those they started from)")
    ax.set_ylabel("validation PSNR (dB)")
    ax.grid(alpha=0.3)
    if series:
        ax.legend(fontsize=8)
    fig.tight_layout()
    with atomic_open(path, "wb") as fh:
        fig.savefig(fh, format="png")
    plt.close(fig)
    return path
