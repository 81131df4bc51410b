"""``make report`` outputs -> ``SetupRecord``: per setup, the results table, the dose curve and
the figures under ``experiments/<setup>/``."""

from __future__ import annotations

import csv
import dataclasses
from pathlib import Path

__all__ = ["SetupRecord", "collect_setups"]

TABLES = ("results.csv", "dose_curve.csv")
FIGURES = ("comparison.png", "dose_curve.png")


@dataclasses.dataclass
class SetupRecord:
    """One ``experiments/<setup>/`` folder (JSON-serialisable)."""

    name: str
    tables: dict[str, dict[str, list]]  # file name -> {"columns": [...], "rows": [[...]]}
    images: dict[str, str]  # file name -> source path
    problems: list[str]


def collect_setups(experiments_dir: Path, skip: Path | None = None) -> list[SetupRecord]:
    """Every folder of ``experiments_dir`` holding a results table or figure of ``make report``
    (``skip``: the dashboard's own output folder)."""
    if not experiments_dir.is_dir():
        return []
    setups = []
    for folder in sorted(p for p in experiments_dir.iterdir() if p.is_dir()):
        if skip is not None and folder.resolve() == skip.resolve():
            continue
        present = [n for n in (*TABLES, *FIGURES) if (folder / n).is_file()]
        if not present:
            continue
        record = SetupRecord(name=folder.name, tables={}, images={}, problems=[])
        for name in TABLES:
            if (folder / name).is_file():
                _read_table(folder / name, record)
        extra = sorted(p.name for p in folder.glob("*.png") if p.name not in FIGURES)
        for name in (*FIGURES, *extra):
            if (folder / name).is_file():
                record.images[name] = str(folder / name)
        setups.append(record)
    return setups


def _read_table(path: Path, record: SetupRecord) -> None:
    try:
        with open(path, newline="") as fh:
            rows = list(csv.reader(fh))
        if len(rows) < 2:
            raise ValueError("no header and rows")
        width = len(rows[0])
        bad = [i + 1 for i, row in enumerate(rows) if len(row) != width]
        if bad:
            raise ValueError(f"line {bad[0]} has a different number of cells than the header")
    except (OSError, ValueError, csv.Error, UnicodeDecodeError) as err:
        record.problems.append(f"{path.name}: unreadable ({str(err).splitlines()[0][:200]})")
        return
    record.tables[path.name] = {"columns": rows[0], "rows": rows[1:]}
