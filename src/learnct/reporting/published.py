"""Published numbers beside ours: ``experiments/published.yaml`` read and set against the
report's rows as a "Published numbers" section of ``experiments/<setup>/results.md``.

The file holds ``sources`` (id: citation) and per setup ``values`` (a paper's PSNR of one
method on one test set) and ``margins`` (a claim that a method is at least ``at_least_db`` dB
above each of ``over``). For a value the section shows ours, the published one and the
difference (ours - published, dB); for a margin, our margin (the method's PSNR minus the best
of ``over``) against the claimed one.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from learnct.run.provenance import repository_path
from learnct.run.results import ResultsError

__all__ = ["Margin", "Published", "PublishedValue", "published_markdown", "read_published"]


@dataclasses.dataclass(frozen=True)
class PublishedValue:
    method: str
    test_set: str
    psnr: float
    source: str


@dataclasses.dataclass(frozen=True)
class Margin:
    method: str
    test_set: str
    over: tuple[str, ...]
    at_least_db: float
    source: str


@dataclasses.dataclass(frozen=True)
class Published:
    """The published numbers of one setup, with the citations they name."""

    values: tuple[PublishedValue, ...]
    margins: tuple[Margin, ...]
    sources: dict[str, str]
    path: str = "experiments/published.yaml"  # the file they were read from


def _entry(cls: type, entry: Any, path: Path, sources: dict[str, str]) -> Any:
    fields = {f.name for f in dataclasses.fields(cls)}
    if not isinstance(entry, dict) or set(entry) != fields:
        raise ResultsError(f"{path}: {entry!r} is not a {cls.__name__} (keys {sorted(fields)})")
    if entry["source"] not in sources:
        raise ResultsError(f"{path}: source {entry['source']!r} is not under 'sources'")
    try:
        if cls is Margin:
            return Margin(
                str(entry["method"]),
                str(entry["test_set"]),
                tuple(str(m) for m in entry["over"]),
                float(entry["at_least_db"]),
                str(entry["source"]),
            )
        return PublishedValue(
            str(entry["method"]), str(entry["test_set"]), float(entry["psnr"]), entry["source"]
        )
    except (TypeError, ValueError) as err:
        raise ResultsError(f"{path}: {entry!r}: {err}") from err


def read_published(path: Path, setup: str) -> Published | None:
    """The published numbers of ``setup`` in ``path`` (``None``: no file, or none for it).
    Raises :class:`ResultsError` naming the file and the entry that is malformed."""
    from omegaconf import OmegaConf

    if not Path(path).is_file():
        return None
    try:
        data = OmegaConf.to_container(OmegaConf.load(path), resolve=True)
    except Exception as err:  # OSError, YAML and interpolation errors: name the file
        raise ResultsError(f"{path}: cannot read the published numbers ({err})") from err
    if not isinstance(data, dict) or not isinstance(data.get("sources"), dict):
        raise ResultsError(f"{path}: expected a mapping with 'sources' and one key per setup")
    section = data.get(setup)
    if section is None:
        return None
    if not isinstance(section, dict) or set(section) - {"values", "margins"}:
        raise ResultsError(f"{path}: {setup}: expected 'values' and/or 'margins'")
    sources = {str(k): " ".join(str(v).split()) for k, v in data["sources"].items()}
    return Published(
        values=tuple(_entry(PublishedValue, e, path, sources) for e in section.get("values") or []),
        margins=tuple(_entry(Margin, e, path, sources) for e in section.get("margins") or []),
        sources=sources,
        path=repository_path(path),
    )


def _row(rows: list[dict[str, str]], method: str, test_set: str) -> dict[str, str] | None:
    return next((r for r in rows if r["method"] == method and r["test_set"] == test_set), None)


def _ours(rows: list[dict[str, str]], method: str, test_set: str) -> float | None:
    """Our PSNR (dB) of ``method`` on ``test_set`` (``None``: no row, or none recorded)."""
    row = _row(rows, method, test_set)
    try:
        return None if row is None else float(row["psnr"])
    except (TypeError, ValueError):
        return None


def _steps(rows: list[dict[str, str]], method: str, test_set: str) -> str | None:
    """The optimiser steps that trained our row's weights, e.g. ``100,000`` (``None``: no
    row, nothing trained, or not recorded)."""
    row = _row(rows, method, test_set)
    try:
        return format(int(row.get("train_steps") or ""), ",d") if row is not None else None
    except ValueError:
        return None


def _with_steps(rows: list[dict[str, str]], method: str, test_set: str) -> str:
    """``method`` followed by its row's training steps where recorded: ``LGD (52,000 steps)``."""
    steps = _steps(rows, method, test_set)
    return method if steps is None else f"{method} ({steps} steps)"


def _num(value: float | None, spec: str = ".2f") -> str:
    return "-" if value is None else format(value, spec)


def published_markdown(rows: list[dict[str, str]], published: Published) -> str:
    """The "Published numbers" section for the report ``rows`` (PSNR in dB)."""
    lines = [
        "## Published numbers",
        "",
        f"From `{published.path}`; difference = ours - published (dB); our steps: the "
        "optimiser steps that trained our row's weights (`-`: nothing trained, or not "
        "recorded; the papers trained their learned methods 100k steps).",
        "",
        "| method | test set | ours (dB) | our steps | published (dB) | difference (dB) | source |",
        "|---|---|---|---|---|---|---|",
    ]
    for v in published.values:
        ours = _ours(rows, v.method, v.test_set)
        diff = None if ours is None else ours - v.psnr
        steps = _steps(rows, v.method, v.test_set) or "-"
        lines.append(
            f"| {v.method} | {v.test_set} | {_num(ours)} | {steps} | {v.psnr:.2f} | "
            f"{_num(diff, '+.2f')} | {v.source} |"
        )
    if published.margins:
        lines += [
            "",
            "| method | test set | above | ours: margin over the best of them (dB) | "
            "published margin (dB) | source |",
            "|---|---|---|---|---|---|",
        ]
    for m in published.margins:
        ours = _ours(rows, m.method, m.test_set)
        others = [_ours(rows, o, m.test_set) for o in m.over]
        known = [o for o in others if o is not None]
        margin = None if ours is None or not known else ours - max(known)
        missing = [o for o, v in zip(m.over, others, strict=True) if v is None]
        above = ", ".join(_with_steps(rows, o, m.test_set) for o in m.over if o not in missing)
        above += f" (no row: {', '.join(missing)})" if missing else ""
        method = _with_steps(rows, m.method, m.test_set)
        lines.append(
            f"| {method} | {m.test_set} | {above} | {_num(margin, '+.2f')} | "
            f"> {m.at_least_db:.1f} | {m.source} |"
        )
    used = sorted({e.source for e in (*published.values, *published.margins)})
    lines += ["", "Sources:", "", *(f"- {s}: {published.sources[s]}" for s in used)]
    return "\n".join(lines).rstrip() + "\n"
