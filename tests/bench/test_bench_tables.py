"""Markdown tables and row labels of the benchmark files, and the median timer."""

from __future__ import annotations

from learnct.bench.tables import geometry_label, markdown_table
from learnct.bench.timing import median_ms
from learnct.physics import FanBeamGeometry, ParallelBeamGeometry


def test_markdown_table_puts_note_last_and_escapes_pipes():
    rows = [{"a": 1, "note": "x | y"}, {"a": 2, "b": "-"}]
    assert markdown_table(rows) == (
        "| a | b | note |\n|---|---|---|\n| 1 |  | x \\| y |\n| 2 | - |  |\n"
    )
    assert markdown_table([]) == "(no rows)\n"


def test_geometry_label():
    assert geometry_label(FanBeamGeometry(128, 360, 256)) == "fan 128^2, 360 x 256"
    assert geometry_label(ParallelBeamGeometry(17, 7, 25)) == "parallel 17^2, 7 x 25"


def test_median_ms_is_the_median():
    calls = []
    ms = median_ms(lambda: calls.append(1), warmup=2, reps=5)
    assert len(calls) == 7 and ms >= 0
