"""Committed weights from run folders directly: for a setup folder without a results table
(e.g. ``experiments/fan_lowdose_ctlike``: the fan_lowdose methods fine-tuned on CT-like
phantoms, whose only test is the real-CT table, :mod:`learnct.reporting.real_ct`), or one
whose table's runs are not all here (``make report WEIGHTS=1`` needs them all), such as
``parallel_ellipses``' schedules, run in sittings over several sessions and tested by
``make eval`` of their sittings checkpoints.

The checkpoint each run tested (its ``config.json``'s ``tested_checkpoint``: the best by
validation PSNR, ``checkpoints/step_*.ckpt``, or a sittings schedule's final weights; never
chosen on a test set) is stripped into ``<out>/weights/<Method>.ckpt`` with ``check.csv`` and
``config.json`` (:func:`learnct.reporting.outputs.write_weights`) and its model card. The
check rows are measured on the first ``n_images`` images of the runs' test sets where they are
synthetic (phantoms from the seed: ``parallel_ellipses``' ellipses and Shepp-Logan), else of
their *validation* source (the test source of a ``data=real_ct`` run is a folder of slices that
is not committed), so ``tests/test_committed_weights.py`` can re-measure them from committed
files alone.

``python -m learnct.reporting.run_weights --out experiments/fan_lowdose_ctlike RUN [RUN ...]``

``--replace``: put the runs' models in place of the same methods' checkpoints of an existing
``<out>/weights/`` (or add a method it does not hold yet: a schedule that ended after the
others), keep the others, and re-measure every check row (the check data may have changed
since they were written, e.g. the CT-like phantoms). ``--remeasure`` with no runs:
only re-measure the check rows (:func:`~learnct.reporting.weights.remeasure_checks`).
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf

__all__ = ["remeasure_weights", "replace_weights", "weights_from_runs"]


def weights_from_runs(runs: Sequence[Path], out: Path, n_images: int = 4) -> list[Path]:
    """Write ``out/weights/`` (checkpoints, ``check.csv``, ``config.json``, model cards) from
    the run folders ``runs`` (each a learned method of one physics); returns what was written."""
    from learnct.reporting.model_cards import write_model_cards
    from learnct.reporting.outputs import write_weights

    methods, reference, preset, operator = _run_methods(runs)
    written = write_weights(methods, reference, preset, operator, Path(out), n_images)
    return [*written, *write_model_cards(Path(out))]


def replace_weights(runs: Sequence[Path], out: Path) -> list[str]:
    """Put the models of ``runs`` in place of the same methods' checkpoints in ``out/weights/``
    (a method it does not hold yet is added, checked on the test sets of the rows there: a
    schedule that ends after the others), keep the others, re-measure every check row and the
    model cards; returns the re-measured rows (old -> new)."""

    from learnct.methods.checkpoints import check_checkpoint
    from learnct.reporting.weights import (
        WEIGHTS_MAX_MB,
        check_same_setup,
        load_weights_config,
        read_check_rows,
        strip_checkpoint,
        with_check_runs,
        write_check,
    )
    from learnct.run.provenance import repository_path

    folder = Path(out) / "weights"
    methods, _, _, operator = _run_methods(runs)
    stored = load_weights_config(folder)
    for method in methods:
        check_same_setup(method, stored, folder, "run_weights without --replace, every run")
        check_checkpoint(method.checkpoint, type(method.model).__name__, operator.geometry)
    rows = read_check_rows(folder)
    # restored (or removed, if new) on failure: checkpoints, their cards and the check rows
    files = [folder / f"{m.name}{ext}" for m in methods for ext in (".ckpt", ".md")]
    files.append(folder / "check.csv")
    kept = {path: path.read_bytes() for path in files if path.is_file()}
    try:
        for method in methods:
            target = folder / f"{method.name}.ckpt"
            if target.name not in {row["file"] for row in rows}:  # added: rows to measure
                rows += _added_rows(rows, method.name, target.name)
            strip_checkpoint(method.checkpoint, target, max_mb=WEIGHTS_MAX_MB)
        # the check rows of the swapped files name their new run (the model cards' rows)
        runs = {f"{m.name}.ckpt": repository_path(m.folder) for m in methods}
        write_check(folder / "check.csv", with_check_runs(rows, runs))
        return remeasure_weights(out)
    except BaseException:  # the committed files as they were, the added ones gone
        for path in files:
            if path in kept:
                path.write_bytes(kept[path])
            else:
                path.unlink(missing_ok=True)
        raise


def _added_rows(rows: list[dict[str, str]], name: str, file_name: str) -> list[dict[str, str]]:
    """The check rows of a method added to a weights folder, to be measured: one per test set
    of the ``rows`` there, on as many images as they are."""
    if not rows:
        raise ValueError(
            "check.csv has no rows to take the test sets from: write the folder "
            "without --replace, with every method's run"
        )
    test_sets = dict.fromkeys(row["test_set"] for row in rows)
    counts = {row["n_images"] for row in rows}
    if len(counts) > 1:
        raise ValueError(
            f"check.csv's rows use different image counts ({', '.join(sorted(counts))}): "
            "re-measure the folder on one (run_weights without --replace, every run)"
        )
    return [
        {"method": name, "file": file_name, "test_set": test_set,
         "n_images": rows[0]["n_images"], "psnr": "", "ssim": ""}
        for test_set in test_sets
    ]  # fmt: skip


def remeasure_weights(out: Path) -> list[str]:
    """Re-measure every check row of ``out/weights/`` and rewrite the model cards; returns the
    rows (old -> new)."""
    from learnct.reporting.model_cards import write_model_cards
    from learnct.reporting.weights import remeasure_checks

    lines = remeasure_checks(Path(out) / "weights")
    write_model_cards(Path(out))
    return lines


def _run_methods(runs: Sequence[Path]) -> tuple[list, Any, Any, Any]:
    """The learned methods of ``runs`` (one per method, each with its checkpoint) and the
    first run's config (test source set to what the check measures:
    :func:`_check_on_committed_data`), physics and operator."""
    from learnct.physics.presets import preset_differences
    from learnct.reporting.run_methods import load_run_config, load_run_method
    from learnct.reporting.weights import stored_preset
    from learnct.run.build import build_physics

    if not runs:
        raise ValueError("no run folders given: name the runs whose weights to commit")
    reference = load_run_config(Path(runs[0]))
    preset, operator = build_physics(reference)
    _check_on_committed_data(reference)
    methods = [load_run_method(Path(run), operator) for run in runs]  # geometry checked
    for method in methods:  # each run's config as the check sees it
        _check_on_committed_data(method.cfg)
    names = [m.name for m in methods]
    if len(set(names)) != len(names):
        raise ValueError(f"two runs of one method among {names}: give one run per method")
    physics = stored_preset(
        OmegaConf.to_container(reference, resolve=True), Path(runs[0]) / "config.json"
    )
    for method in methods:
        if method.checkpoint is None:
            raise ValueError(f"{method.folder}: {method.name} has no weights to commit")
        mine = stored_preset(
            OmegaConf.to_container(method.cfg, resolve=True), method.folder / "config.json"
        )
        if changes := preset_differences(mine, physics):
            named = ", ".join(f"{k} {ours} ({theirs})" for k, ours, theirs in changes)
            raise ValueError(
                f"{method.folder}: its physics differ from {runs[0]}'s ({named}): one weights "
                "folder holds weights of one physics (its config.json records them)"
            )
        print(f"{method.name}: {method.checkpoint}", flush=True)
    return methods, reference, preset, operator


def _check_on_committed_data(cfg: Any) -> None:
    """Set ``cfg``'s test source to what the check rows measure: its test sources where all are
    synthetic (phantoms made from the seed), else its validation source (the slices of a
    ``folder`` test set are not committed)."""
    from learnct.config_names import source_names
    from learnct.data.sources import SYNTHETIC_SOURCES

    test = cfg.data.source if cfg.data.test_source is None else cfg.data.test_source
    if not set(source_names(test, "data.test_source")) <= SYNTHETIC_SOURCES:
        OmegaConf.update(cfg, "data.test_source", cfg.data.val_source)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m learnct.reporting.run_weights", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("runs", type=Path, nargs="*", help="run folders (logs/<task>/runs/*)")
    parser.add_argument("--out", type=Path, required=True, help="experiments/<setup name>")
    parser.add_argument("--n-images", type=int, default=4, help="check images per method")
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument(
        "--replace",
        action="store_true",
        help="swap the runs' models into the existing weights/ (a method not there yet is added), "
        "keep the others, re-measure",
    )
    mode.add_argument(
        "--remeasure", action="store_true", help="only re-measure weights/check.csv (no runs)"
    )
    args = parser.parse_args(argv)
    if args.remeasure != (not args.runs):
        parser.error("--remeasure takes no run folders; the other modes need at least one")
    if args.remeasure or args.replace:
        if args.replace:
            lines = replace_weights(args.runs, args.out)
        else:
            lines = remeasure_weights(args.out)
        print("\n".join(["re-measured weights/check.csv:", *lines]))
        return 0
    for path in weights_from_runs(args.runs, args.out, args.n_images):
        print(f"written: {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
