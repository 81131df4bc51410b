"""``learnct-report`` / ``make report SETUP=<physics preset> [DOSE=1]``: gather every method's
largest (then newest) test run on one setup into ``experiments/<setup>/``:

- ``results.csv`` and ``results.md``: the table (method, test set, PSNR, SSIM, ms per slice,
  device, commit, and the command that made the run: ``learnct-train`` or ``learnct-eval``
  with its Hydra overrides, from the run's ``.hydra/overrides.yaml`` and ``config.json``);
- ``comparison.png``: one test slice through every method, with error maps and a zoom;
- with ``--dose``: ``dose_curve.csv`` and ``dose_curve.png``, PSNR/SSIM against photons.

It reads the ``results.csv`` that every ``make train`` / ``make eval`` run writes into its run
folder under ``logs/``; for each (method, test set) the run with the most test images wins,
the most recent among equals (a quick check on 4 images never replaces a 64-image row), and the
table shows that number of images (compare rows of equal test sets). ``--exclude`` leaves out
run folders by pattern. The figures rebuild each method from its run with the most test images
(``config.json`` and the checkpoint it was tested with). Runs whose files are unreadable are
listed, not fatal.
"""

from __future__ import annotations

import argparse
import csv
import fnmatch
import json
import math
import shlex
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from learnct.methods import METHODS
from learnct.physics import PRESETS

__all__ = ["collect_results", "main", "write_dose_curve", "write_figure", "write_report"]

DEFAULT_DOSES = (1e3, 3e3, 1e4, 3e4, 1e5)

COLUMNS = (
    "method",
    "test_set",
    "n_images",
    "psnr",
    "ssim",
    "ms_per_slice",
    "device",
    "commit",
    "run_dir",
    "test_hash",
    "torch_version",
    "lightning_version",
    "config",
)


def run_command(folder: Path) -> str:
    """The command line that made the run in ``folder``: ``learnct-eval`` where its
    ``config.json`` says ``train: false``, else ``learnct-train``, then its Hydra overrides
    (``.hydra/overrides.yaml``), shell-quoted. ``""`` where the folder does not record them."""
    from omegaconf import OmegaConf

    try:
        overrides = OmegaConf.to_container(OmegaConf.load(folder / ".hydra" / "overrides.yaml"))
    except (OSError, ValueError):  # no Hydra folder (hydra.output_subdir=null) or unreadable
        return ""
    if not isinstance(overrides, list):
        return ""
    try:
        train = json.loads((folder / "config.json").read_text()).get("train", True)
    except (OSError, ValueError, AttributeError):
        train = True
    program = "learnct-train" if train is not False else "learnct-eval"
    return " ".join([program, *(shlex.quote(str(o)) for o in overrides)])


def _n_images(row: dict[str, str]) -> int:
    """A row's number of test images; 0 where an older results.csv did not record it."""
    try:
        count = float(row.get("n_images") or 0)
    except ValueError:
        return 0
    return int(count) if math.isfinite(count) else 0


def _posix(pattern: str) -> str:
    """A run-folder pattern with ``/`` separators and no trailing one."""
    return pattern.replace("\\", "/").rstrip("/") or "."


def collect_results(
    log_dir: Path, setup: str, exclude: Sequence[str] = ()
) -> tuple[list[dict[str, str]], list[str]]:
    """One row per (method, test set) for ``setup``: the run with the most test images, the
    most recent of equals; and messages on what was skipped (unreadable files, ``exclude``
    patterns that matched nothing). ``exclude``: glob patterns of run folders relative to
    ``log_dir`` (e.g. ``eval_*``, ``eval_fbpunet`` or ``lpd/runs/2026-11-26*``) to leave out;
    a pattern that matches a folder leaves out every run under it."""
    best: dict[tuple[str, str], tuple[tuple[int, float], dict[str, str]]] = {}
    problems, used = [], set()
    for path in sorted(log_dir.glob("**/results.csv")):
        run = path.parent.relative_to(log_dir)
        folders = [f.as_posix() for f in (run, *run.parents) if f != Path(".") or run == f]
        matched = {
            pattern
            for pattern in exclude
            if any(fnmatch.fnmatchcase(f, _posix(pattern)) for f in folders)
        }
        if matched:
            used |= matched
            continue
        try:
            with open(path, newline="") as fh:
                rows = list(csv.DictReader(fh))
            missing = {"method", "physics", "test_set", "psnr", "ssim"} - set(
                rows[0] if rows else {}
            )
            if not rows or missing:
                raise ValueError(f"no rows or missing columns {sorted(missing)}")
        except (OSError, ValueError, csv.Error, UnicodeDecodeError) as err:
            problems.append(f"skipped unreadable results: {path}: {err}")
            continue
        stamp = path.stat().st_mtime
        for row in rows:
            row["_folder"] = str(path.parent)
            if row["physics"] != setup:
                continue
            key = (row["method"], row["test_set"])
            rank = (_n_images(row), stamp)
            if key not in best or rank > best[key][0]:
                best[key] = (rank, row)
    problems += [
        f"--exclude {pattern!r} matched no run folder under {log_dir}/ (patterns are relative "
        "to it, e.g. 'eval_*')"
        for pattern in exclude
        if pattern not in used
    ]
    rows = [row for _, row in best.values()]
    rows.sort(key=lambda r: (r["test_set"], float(r["psnr"] or "nan")))
    return rows, problems


def _fmt(value: str, spec: str) -> str:
    try:
        return format(float(value), spec)
    except (TypeError, ValueError):
        return "-"


def _code(text: str) -> str:
    """``text`` as Markdown inline code inside a table cell (``-`` when empty)."""
    escaped = text.replace("|", "\\|")  # a bare | would end the cell
    return f"`{escaped}`" if text else "-"


def write_report(rows: list[dict[str, str]], setup: str, out_dir: Path) -> tuple[Path, Path]:
    """Write ``results.csv`` and ``results.md`` for ``setup`` under ``out_dir/<setup>/``."""
    folder = out_dir / setup
    folder.mkdir(parents=True, exist_ok=True)
    csv_path, md_path = folder / "results.csv", folder / "results.md"
    rows = [{**r, "config": run_command(Path(r["_folder"]))} if "_folder" in r else r for r in rows]
    with open(csv_path, "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=COLUMNS, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
    lines = [
        f"# Results on `{setup}`",
        "",
        "Per-image PSNR and SSIM (data range max - min of the truth) averaged over the fixed "
        "test set; runtime in ms per slice after warm-up; config: the command that made the "
        "run (`make train`/`make eval` run these). Produced by `make report`.",
        "",
        "| method | test set | images | PSNR (dB) | SSIM | ms per slice | device | commit "
        "| config |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['method']} | {r['test_set']} | {r.get('n_images') or '-'} | "
            f"{_fmt(r['psnr'], '.2f')} | "
            f"{_fmt(r['ssim'], '.3f')} | {_fmt(r['ms_per_slice'], '.1f')} | "
            f"{r.get('device', '')} | {r.get('commit', '')} | "
            f"{_code(r.get('config') or '')} |"
        )
    md_path.write_text("\n".join(lines) + "\n")
    return csv_path, md_path


def _method_order(name: str) -> int:
    names = [cls.__name__ for cls in METHODS.values()]
    return names.index(name) if name in names else len(names)


def _load_methods(rows: list[dict[str, str]]) -> tuple[list[Any], Any, Any, Any]:
    """Each method rebuilt from its run with the most test images (methods that cannot be are
    reported and left out),
    the reference config (the first method's) and its physics preset and operator."""
    from learnct.reporting import ReportError, load_run_method
    from learnct.reporting.run_methods import load_run_config
    from learnct.train import ConfigError, build_physics

    # a method's figures use its run with the most test images (its main test run, not an
    # extra evaluation on two scans); among equals the first test set in name order
    chosen: dict[str, dict[str, str]] = {}
    for row in rows:
        if row["method"] not in chosen or _n_images(row) > _n_images(chosen[row["method"]]):
            chosen[row["method"]] = row
    folders = {name: row["_folder"] for name, row in chosen.items()}
    methods, reference, preset, operator = [], None, None, None
    for name in sorted(folders, key=_method_order):
        try:
            if reference is None:
                reference = load_run_config(Path(folders[name]))
                preset, operator = build_physics(reference)
            methods.append(load_run_method(Path(folders[name]), operator))
        except (ReportError, ConfigError) as err:
            print(f"left out of the figures: {name}: {err}")
    return methods, reference, preset, operator


def write_figure(
    methods: list[Any],
    reference: Any,
    preset: Any,
    operator: Any,
    folder: Path,
    test_set: str | None = None,
    window: tuple[float, float] | None = None,
) -> Path:
    """``comparison.png``: the first slice of ``test_set`` (default: Shepp-Logan when the
    test set has it, else the first test set) through every method; ``window``: grey range."""
    import torch

    from learnct.reporting import comparison_figure, reference_datamodule

    datamodule = reference_datamodule(reference, preset, operator, test_size=1)
    names = datamodule.sources["test"]
    if test_set is None:
        test_set = "shepp_logan" if "shepp_logan" in names else names[0]
    if test_set not in names:
        raise ValueError(f"test set {test_set!r} is not in this setup's test sets {names}")
    loaders = datamodule.test_dataloader()
    loaders = loaders if isinstance(loaders, list) else [loaders]
    raw = next(iter(loaders[names.index(test_set)]))
    batch = datamodule.simulate({k: v[:1] if torch.is_tensor(v) else v for k, v in raw.items()})
    recons = [(m.name, m.model.reconstruct(batch.sinogram)[0, 0]) for m in methods]
    noise = f"{preset.photons:g} photons" if preset.noise == "poisson" else preset.noise
    title = f"{preset.name}: {test_set} test slice 0, {noise}"
    if window is not None:
        title += f"; images in [{window[0]:g}, {window[1]:g}]"
    path = folder / "comparison.png"
    return comparison_figure(batch.image[0, 0], recons, path, title, window=window)


def write_dose_curve(
    methods: list[Any],
    reference: Any,
    preset: Any,
    operator: Any,
    folder: Path,
    photons: tuple[float, ...],
    n_images: int,
    test_set: str | None = None,
) -> tuple[Path, Path]:
    """``dose_curve.csv`` and ``dose_curve.png``: every method on the first ``n_images`` of
    ``test_set`` (default: the first test set) simulated at each dose in ``photons``."""
    from learnct.reporting import DOSE_FIELDS, dose_curve, plot_dose_curve, reference_datamodule

    if preset.noise != "poisson":
        raise ValueError(
            f"a dose curve needs a Poisson preset; {preset.name!r} uses {preset.noise} noise"
        )
    names = reference_datamodule(reference, preset, operator, test_size=1).sources["test"]
    test_set = test_set or names[0]
    if test_set not in names:
        raise ValueError(f"test set {test_set!r} is not in this setup's test sets {names}")

    def make(dose: float) -> Any:
        return reference_datamodule(
            reference,
            preset,
            operator,
            photons=dose,
            test_size=n_images,
            test_source=[test_set],
        )

    rows = dose_curve(methods, make, photons)
    csv_path = folder / "dose_curve.csv"
    with open(csv_path, "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=DOSE_FIELDS)
        writer.writeheader()
        writer.writerows(rows)
    png = plot_dose_curve(rows, folder / "dose_curve.png", trained_photons=preset.photons)
    return csv_path, png


def write_weights(
    methods: list[Any],
    reference: Any,
    preset: Any,
    operator: Any,
    folder: Path,
    n_images: int,
    max_mb: float | None = 8.0,
) -> list[Path]:
    """``weights/<Method>.ckpt`` (stripped, at most ``max_mb`` each), ``weights/check.csv``
    and ``weights/config.json``: see :mod:`learnct.reporting.weights`."""
    from learnct.reporting import reference_datamodule
    from learnct.reporting.weights import export_weights, write_weights_config

    datamodule = reference_datamodule(reference, preset, operator, test_size=n_images)
    ckpts, check = export_weights(methods, folder / "weights", datamodule, n_images, max_mb)
    if not ckpts:
        return []
    return [*ckpts, check, write_weights_config(reference, folder / "weights")]


def _window(text: str) -> tuple[float, float]:
    try:
        lo, hi = (float(x) for x in text.split(","))
    except ValueError as err:
        raise argparse.ArgumentTypeError(f"--window wants two numbers lo,hi: {err}") from err
    if not (math.isfinite(lo) and math.isfinite(hi) and lo < hi):
        raise argparse.ArgumentTypeError(f"--window needs finite lo < hi, got {text!r}")
    return lo, hi


def _doses(text: str) -> tuple[float, ...]:
    try:
        doses = tuple(float(x) for x in text.split(","))
    except ValueError as err:
        raise argparse.ArgumentTypeError(f"--photons wants numbers like 1e3,1e4: {err}") from err
    if not doses or any(not d > 0 for d in doses):
        raise argparse.ArgumentTypeError(f"--photons must be positive, got {text!r}")
    return doses


def main(argv: list[str] | None = None) -> None:
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
    parser.add_argument("--test-set", default=None, help="test set of the figures")
    parser.add_argument(
        "--window",
        type=_window,
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
        "--weights",
        action="store_true",
        help="also copy the learned methods' checkpoints (stripped) to <setup>/weights/ with "
        "check.csv, their PSNR on the first --check-images test images",
    )
    parser.add_argument("--check-images", type=int, default=4, help="images per check row")
    parser.add_argument(
        "--weights-max-mb",
        type=float,
        default=8.0,
        help="largest checkpoint --weights writes: larger ones are stored in float16, and "
        "left out if still larger (default 8)",
    )
    args = parser.parse_args(argv)
    if args.dose_images < 1:
        parser.error(f"--dose-images must be at least 1, got {args.dose_images}")
    if not args.weights_max_mb > 0:
        parser.error(f"--weights-max-mb must be positive, got {args.weights_max_mb}")
    if args.setup not in PRESETS:
        parser.error(f"unknown setup {args.setup!r}: choose one of {sorted(PRESETS)}")
    rows, problems = collect_results(Path(args.logs), args.setup, args.exclude)
    for problem in problems:
        print(problem)
    if not rows:
        parser.exit(
            1,
            f"no results for {args.setup!r} under {args.logs}/: run make train EXP=<method> "
            "(or make eval) first\n",
        )
    csv_path, md_path = write_report(rows, args.setup, Path(args.out))
    print(md_path.read_text())
    written = [csv_path, md_path]
    if not args.no_figure or args.dose or args.weights:
        methods, reference, preset, operator = _load_methods(rows)
        folder = Path(args.out) / args.setup
        try:
            if methods and not args.no_figure:
                written.append(
                    write_figure(
                        methods, reference, preset, operator, folder, args.test_set, args.window
                    )
                )
            if methods and args.dose:
                written.extend(
                    write_dose_curve(
                        methods,
                        reference,
                        preset,
                        operator,
                        folder,
                        args.photons,
                        args.dose_images,
                        args.test_set,
                    )
                )
            if methods and args.weights:
                written.extend(
                    write_weights(
                        methods,
                        reference,
                        preset,
                        operator,
                        folder,
                        args.check_images,
                        args.weights_max_mb,
                    )
                )
        except ValueError as err:
            parser.exit(1, f"make report: {err}\n")
    print("written: " + ", ".join(str(p) for p in written))


if __name__ == "__main__":
    main()
