"""Collect runs, sweeps and setups into one data model and write the dashboard folder."""

from __future__ import annotations

import argparse
import dataclasses
from datetime import datetime
from pathlib import Path
from typing import Any

from learnct.dashboard.page import asset_name, write_site
from learnct.dashboard.runs import collect_runs
from learnct.dashboard.setups import collect_setups
from learnct.dashboard.sweeps import collect_sweeps
from learnct.run.provenance import repository_path

__all__ = ["Summary", "build_dashboard", "main"]


@dataclasses.dataclass
class Summary:
    """What a build wrote and found."""

    index: Path
    n_runs: int
    n_sweeps: int
    n_setups: int
    problems: list[str]  # "<where>: <what is wrong>", one per broken file


def build_dashboard(log_dir: Path, experiments_dir: Path, out: Path) -> Summary:
    """Read ``log_dir`` and ``experiments_dir`` and write the dashboard into ``out``."""
    log_dir, experiments_dir, out = Path(log_dir), Path(experiments_dir), Path(out)
    if not log_dir.is_dir() and not experiments_dir.is_dir():
        raise FileNotFoundError(
            f"neither {log_dir} nor {experiments_dir} exists: train something first "
            "(make train EXP=<method>) or point --logs/--experiments at your folders"
        )
    runs = collect_runs(log_dir) if log_dir.is_dir() else []
    sweeps, db_problems = collect_sweeps(log_dir) if log_dir.is_dir() else ([], [])
    setups = collect_setups(experiments_dir, skip=out)

    images: dict[str, str] = {}

    def copy(source: str, *parts: str) -> str:
        name = asset_name(*parts)
        images[name] = source
        return f"assets/img/{name}"

    run_data = []
    for run in runs:
        item = dataclasses.asdict(run)
        item["images"] = {
            label: copy(src, run.id, f"{label}.png") for label, src in run.images.items()
        }
        item["panels"] = [
            {
                "step": p["step"],
                "epoch": p["epoch"],
                "src": copy(p["file"], run.id, "panels", Path(p["file"]).name),
            }
            for p in run.panels
        ]
        run_data.append(item)
    setup_data = []
    for setup in setups:
        item = dataclasses.asdict(setup)
        item["images"] = {
            name: copy(src, "setup", setup.name, name) for name, src in setup.images.items()
        }
        setup_data.append(item)

    problems = [f"{r.id}: {p}" for r in runs for p in r.problems]
    problems += db_problems
    problems += [f"{s.id}: {p}" for s in sweeps for p in s.problems]
    problems += [f"experiments/{s.name}: {p}" for s in setups for p in s.problems]
    data: dict[str, Any] = {
        "generated": datetime.now().isoformat(sep=" ", timespec="seconds"),
        "logs": repository_path(log_dir.resolve()),
        "experiments": repository_path(experiments_dir.resolve()),
        "runs": run_data,
        "sweeps": [dataclasses.asdict(s) for s in sweeps],
        "setups": setup_data,
        "problems": db_problems,
    }
    index = write_site(data, images, out)
    return Summary(index, len(runs), len(sweeps), len(setups), problems)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--logs", default="logs", help="folder of the run folders and sweeps")
    parser.add_argument("--experiments", default="experiments", help="make report's folder")
    parser.add_argument("--out", default="experiments/dashboard", help="where index.html goes")
    args = parser.parse_args(argv)
    try:
        summary = build_dashboard(Path(args.logs), Path(args.experiments), Path(args.out))
    except FileNotFoundError as err:
        parser.exit(1, f"learnct-dashboard: {err}\n")
    for problem in summary.problems:
        print(f"listed with a problem: {problem}")
    print(
        f"{summary.n_runs} runs, {summary.n_sweeps} sweeps, {summary.n_setups} setups: "
        f"open {summary.index.resolve().as_uri()}"
    )


if __name__ == "__main__":
    main()
