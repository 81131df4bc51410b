"""``learnct-report`` / ``make report SETUP=<physics preset>``: gather the latest test results
of every method on one setup into ``experiments/<setup>/results.csv`` and ``results.md``.

It reads the ``results.csv`` that every ``make train`` / ``make eval`` run writes into its run
folder under ``logs/``; for each (method, test set) the most recent run wins, and the table
shows its number of test images (compare rows of equal test sets). Runs whose results file is
unreadable are listed, not fatal.
"""

from __future__ import annotations

import argparse
import csv
from pathlib import Path

from learnct.physics import PRESETS

__all__ = ["collect_results", "main", "write_report"]

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
)


def collect_results(log_dir: Path, setup: str) -> tuple[list[dict[str, str]], list[str]]:
    """Latest row per (method, test set) for ``setup``, and the files that could not be read."""
    latest: dict[tuple[str, str], tuple[float, dict[str, str]]] = {}
    problems = []
    for path in sorted(log_dir.glob("**/results.csv")):
        try:
            with open(path, newline="") as fh:
                rows = list(csv.DictReader(fh))
            missing = {"method", "physics", "test_set", "psnr", "ssim"} - set(
                rows[0] if rows else {}
            )
            if not rows or missing:
                raise ValueError(f"no rows or missing columns {sorted(missing)}")
        except (OSError, ValueError, csv.Error, UnicodeDecodeError) as err:
            problems.append(f"{path}: {err}")
            continue
        stamp = path.stat().st_mtime
        for row in rows:
            if row["physics"] != setup:
                continue
            key = (row["method"], row["test_set"])
            if key not in latest or stamp > latest[key][0]:
                latest[key] = (stamp, row)
    rows = [row for _, row in latest.values()]
    rows.sort(key=lambda r: (r["test_set"], float(r["psnr"] or "nan")))
    return rows, problems


def _fmt(value: str, spec: str) -> str:
    try:
        return format(float(value), spec)
    except (TypeError, ValueError):
        return "-"


def write_report(rows: list[dict[str, str]], setup: str, out_dir: Path) -> tuple[Path, Path]:
    """Write ``results.csv`` and ``results.md`` for ``setup`` under ``out_dir/<setup>/``."""
    folder = out_dir / setup
    folder.mkdir(parents=True, exist_ok=True)
    csv_path, md_path = folder / "results.csv", folder / "results.md"
    with open(csv_path, "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=COLUMNS, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
    lines = [
        f"# Results on `{setup}`",
        "",
        "Per-image PSNR and SSIM (data range max - min of the truth) averaged over the fixed "
        "test set; runtime in ms per slice after warm-up. Produced by `make report`.",
        "",
        "| method | test set | images | PSNR (dB) | SSIM | ms per slice | device | commit |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['method']} | {r['test_set']} | {r.get('n_images') or '-'} | "
            f"{_fmt(r['psnr'], '.2f')} | "
            f"{_fmt(r['ssim'], '.3f')} | {_fmt(r['ms_per_slice'], '.1f')} | "
            f"{r.get('device', '')} | {r.get('commit', '')} |"
        )
    md_path.write_text("\n".join(lines) + "\n")
    return csv_path, md_path


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--setup", default="fan_lowdose", help=f"one of {sorted(PRESETS)}")
    parser.add_argument("--logs", default="logs", help="folder of the run folders")
    parser.add_argument("--out", default="experiments", help="where <setup>/results.* go")
    args = parser.parse_args(argv)
    if args.setup not in PRESETS:
        parser.error(f"unknown setup {args.setup!r}: choose one of {sorted(PRESETS)}")
    rows, problems = collect_results(Path(args.logs), args.setup)
    for problem in problems:
        print(f"skipped unreadable results: {problem}")
    if not rows:
        parser.exit(
            1,
            f"no results for {args.setup!r} under {args.logs}/: run make train EXP=<method> "
            "(or make eval) first\n",
        )
    csv_path, md_path = write_report(rows, args.setup, Path(args.out))
    print(md_path.read_text())
    print(f"written: {csv_path}, {md_path}")


if __name__ == "__main__":
    main()
