"""``learnct-report`` / ``make report SETUP=<physics preset> [DOSE=1]``: gather every method's
largest (then newest) test run on one setup into ``experiments/<setup>/``:

- ``results.csv`` and ``results.md``: the table (method, test set, images, training steps,
  PSNR, SSIM, ms per slice, device, commit, and the command that made the run:
  ``learnct-train`` or ``learnct-eval`` with its Hydra overrides, from the run's
  ``.hydra/overrides.yaml`` and ``config.json``); ``results.md`` then sets the published
  numbers of ``--published`` (``experiments/published.yaml``) beside ours
  (:mod:`learnct.reporting.published`);
- ``curves.csv`` and ``curves.png``: validation PSNR against step, one line per method
  (:mod:`learnct.reporting.curves`);
- ``comparison.png``: one test slice through every method, with error maps and a zoom;
- with ``--dose``: ``dose_curve.csv`` and ``dose_curve.png``, PSNR/SSIM against photons;
  with ``--dose-real-ct ROOT`` also ``dose_curve_real_ct.*`` on the real CT slices of
  ``ROOT/test`` (the folder source at their physical size).
- a model card ``weights/<Method>.md`` beside every committed checkpoint
  (:mod:`learnct.reporting.model_cards`), always; ``--cards-only``: nothing else.

It reads the ``results.csv`` that every ``make train`` / ``make eval`` run writes into its run
folder under ``logs/``; for each (method, test set) the run with the most test images wins,
the most recent among equals (a quick check on 4 images never replaces a 64-image row), and the
table shows that number of images (compare rows of equal test sets). ``--exclude`` leaves out
run folders by pattern. A row already written in ``<out>/<setup>/results.csv`` (the committed
table) is replaced only by a run that tested at least as many images, and the figures are then
redrawn only if every row has its run here (``--replace`` writes the runs as they are); with
``--weights`` the methods without weights that have their run here (e.g. a new TV-WLS row) are
then still re-measured into ``weights/check.csv`` (the other rows stay). Numbers
are rounded and run folders relative to the repository (the working folder), the kept written
rows too: with no new runs, the written table is re-rendered so. The figures rebuild each
method from its run with the most test images (``config.json`` and the checkpoint it was
tested with).
Runs whose files are unreadable are listed, not fatal.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from learnct.checks import window_argument
from learnct.physics import PRESETS
from learnct.reporting.curves import write_curves
from learnct.reporting.model_cards import write_model_cards
from learnct.reporting.outputs import load_methods, write_dose_curve, write_figure, write_weights
from learnct.reporting.published import published_markdown, read_published
from learnct.reporting.table import (
    collect_results,
    keep_committed,
    test_data_notes,
    write_report,
)
from learnct.reporting.weights import WEIGHTS_MAX_MB, update_weightless_checks
from learnct.run.results import ResultsError, weights_folder_source

__all__ = ["main"]

DEFAULT_DOSES = (1e3, 3e3, 1e4, 3e4, 1e5)


def _doses(text: str) -> tuple[float, ...]:
    from learnct.physics.presets import check_photons

    try:
        return tuple(check_photons(float(x)) for x in text.split(","))
    except ValueError as err:
        raise argparse.ArgumentTypeError(f"--photons wants doses like 1e3,1e4: {err}") from err


def _parser() -> argparse.ArgumentParser:
    """The command line of ``make report`` (``python -m learnct.reporting``)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--setup", default="fan_lowdose", help=f"one of {sorted(PRESETS)}")
    parser.add_argument("--logs", default="logs", help="folder of the run folders")
    parser.add_argument("--out", default="experiments", help="where <setup>/results.* go")
    parser.add_argument(
        "--exclude",
        action="append",
        default=[],
        metavar="PATTERN",
        help="leave out run folders matching this glob, relative to --logs (e.g. 'eval_*'; a "
        "folder leaves out every run under it); repeatable",
    )
    parser.add_argument(
        "--no-figure", action="store_true", help="skip comparison.png (the table only)"
    )
    parser.add_argument(
        "--replace",
        action="store_true",
        help="write the table of the runs under --logs as it is; without it a row already in "
        "<out>/<setup>/results.csv is replaced only by a run that tested at least as many images",
    )
    parser.add_argument(
        "--published",
        default=None,
        help="published numbers set beside ours in results.md (default: <out>/published.yaml, "
        "none where it is missing; a file given must exist)",
    )
    parser.add_argument("--test-set", default=None, help="test set of the figures")
    parser.add_argument(
        "--window",
        type=window_argument,
        default=None,
        help="grey range lo,hi of comparison.png's images (default: the truth's min,max); "
        "0.8,1.2 is a soft-tissue window (HU -200..200) for CT",
    )
    parser.add_argument("--dose", action="store_true", help="also write the dose curve")
    parser.add_argument(
        "--photons",
        type=_doses,
        default=DEFAULT_DOSES,
        help="doses of the dose curve, photons per detector pixel (default 1e3,3e3,1e4,3e4,1e5)",
    )
    parser.add_argument("--dose-images", type=int, default=8, help="test images per dose")
    parser.add_argument(
        "--dose-real-ct",
        type=Path,
        default=None,
        metavar="ROOT",
        help="with --dose, also the dose curve on the real CT slices of ROOT/test (e.g. "
        "data/real_ct from make data-real-ct; at their physical size): dose_curve_real_ct.*",
    )
    parser.add_argument(
        "--weights",
        action="store_true",
        help="also copy the learned methods' checkpoints (stripped) to <setup>/weights/ with "
        "check.csv, their PSNR on the first --check-images test images",
    )
    parser.add_argument("--check-images", type=int, default=4, help="images per check row")
    parser.add_argument(
        "--weights-max-mb",
        type=float,
        default=WEIGHTS_MAX_MB,
        help="largest checkpoint --weights writes: larger ones are stored in float16, and "
        f"left out if still larger (default {WEIGHTS_MAX_MB:g})",
    )
    parser.add_argument(
        "--cards-only",
        action="store_true",
        help="only (re)write the model cards beside the committed weights of --setup (from the "
        "committed checkpoints and tables; needs no runs)",
    )
    return parser


def main(argv: list[str] | None = None) -> None:
    parser = _parser()
    args = parser.parse_args(argv)
    if args.dose_images < 1:
        parser.error(f"--dose-images must be at least 1, got {args.dose_images}")
    if not args.weights_max_mb > 0:
        parser.error(f"--weights-max-mb must be positive, got {args.weights_max_mb}")
    if args.setup not in PRESETS:
        parser.error(f"unknown setup {args.setup!r}: choose one of {sorted(PRESETS)}")
    if args.cards_only:
        try:
            cards = write_model_cards(Path(args.out) / args.setup)
        except ValueError as err:  # an unreadable committed table or checkpoint
            parser.exit(1, f"make report: {err}\n")
        print("written: " + (", ".join(str(p) for p in cards) or "no committed weights"))
        return
    # the kind of training data the table compares: that of its committed weights
    trained_on = weights_folder_source(Path(args.out) / args.setup / "weights")
    rows, problems = collect_results(Path(args.logs), args.setup, args.exclude, trained_on)
    for problem in problems:
        print(problem)
    if not args.replace:
        try:
            hint = f" (--replace writes the runs under {args.logs}/ instead)"
            rows, notes = keep_committed(rows, Path(args.out) / args.setup / "results.csv", hint)
        except ResultsError as err:
            parser.exit(1, f"make report: {err}\n")
        for note in notes:
            print(note)
    if not rows:
        parser.exit(
            1,
            f"no results for {args.setup!r} under {args.logs}/: run make train EXP=<method> "
            "(or make eval) first\n",
        )
    try:
        if args.published is not None and not Path(args.published).is_file():
            raise ResultsError(f"--published {args.published} does not exist (omit it for none)")
        published = read_published(
            Path(args.published or Path(args.out) / "published.yaml"), args.setup
        )
    except ResultsError as err:
        parser.exit(1, f"make report: {err}\n")
    for note in test_data_notes(rows):
        print(f"warning: {note}")
    appendix = published_markdown(rows, published) if published is not None else ""
    csv_path, md_path = write_report(rows, args.setup, Path(args.out), appendix)
    print(md_path.read_text())
    curves, problems = write_curves(rows, Path(args.logs), Path(args.out) / args.setup)
    for problem in problems:
        print(problem)
    written = [csv_path, md_path, *curves]
    without_run = sorted({r["method"] for r in rows if "_folder" not in r})
    if without_run and (not args.no_figure or args.dose or args.weights):
        print(
            f"figures, dose curve and weights not redrawn: {', '.join(without_run)} kept their "
            f"written rows (no run of theirs under {args.logs}/ is as large), so the figures "
            "would not match the table"
        )
        if args.weights:
            try:
                written.extend(_check_weightless(args, rows))
            except ValueError as err:
                parser.exit(1, f"make report: {err}\n")
    elif not args.no_figure or args.dose or args.weights:
        try:
            written.extend(_redraw(args, rows))
        except ValueError as err:
            parser.exit(1, f"make report: {err}\n")
    try:  # from what is now written
        written.extend(write_model_cards(Path(args.out) / args.setup))
    except ValueError as err:  # an unreadable committed table or checkpoint
        print("written: " + ", ".join(str(p) for p in written))
        parser.exit(1, f"make report: the model cards were not written: {err}\n")
    print("written: " + ", ".join(str(p) for p in written))


def _check_weightless(args: argparse.Namespace, rows: list[dict]) -> list[Path]:
    """The check rows of the methods without weights (FBP, TV, TV-WLS) whose run is here, beside
    the written ones (:func:`~learnct.reporting.weights.update_weightless_checks`)."""
    ran = [r for r in rows if "_folder" in r]
    methods = load_methods(ran)[0] if ran else []
    return update_weightless_checks(methods, Path(args.out) / args.setup / "weights")


def _redraw(args: argparse.Namespace, rows: list[dict]) -> list[Path]:
    """The figure, dose curves (the test set's; the real slices' with ``--dose-real-ct``) and
    committed weights, from the methods of ``rows``' run folders; returns the files written.
    Raises ``ValueError`` naming the problem."""
    methods, reference, preset, operator = load_methods(rows)
    if not methods:
        return []
    folder = Path(args.out) / args.setup
    built = (methods, reference, preset, operator, folder)
    written = []
    if not args.no_figure:
        written.append(write_figure(*built, args.test_set, args.window))
    if args.dose:
        doses = (args.photons, args.dose_images)
        written.extend(write_dose_curve(*built, *doses, args.test_set))
        if args.dose_real_ct is not None:
            written.extend(write_dose_curve(*built, *doses, folder_root=args.dose_real_ct))
    if args.weights:
        written.extend(write_weights(*built, args.check_images, args.weights_max_mb))
    return written


if __name__ == "__main__":
    main()
