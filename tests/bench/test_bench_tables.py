"""Markdown tables and row labels of the benchmark files, and the median timer."""

from __future__ import annotations

import pytest

from learnct.bench import timing
from learnct.bench.tables import geometry_label, markdown_table, milliseconds
from learnct.bench.timing import failure_note, interleaved_median_ms, median_ms
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


def test_milliseconds_keep_three_significant_figures_so_a_fast_call_is_not_zero():
    assert [milliseconds(v) for v in (1234.5, 12.345, 1.0, 0.012345, 4e-5, 9.9996)] == [
        "1234",
        "12.3",
        "1.00",
        "0.0123",
        "0.0000400",
        "10.0",
    ]
    assert milliseconds(0.0) == "0.0" and milliseconds(float("nan")) == "nan"


class FakeClock:
    """``time.perf_counter`` that advances only when a timed function says so (seconds)."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def advancing(self, durations_ms: list[float]):
        durations = iter(durations_ms)

        def fn() -> float:
            ms = next(durations)
            self.now += ms / 1e3
            return ms

        return fn


def test_median_ms_is_the_median_of_the_timed_runs_after_warmup(monkeypatch):
    clock = FakeClock()
    monkeypatch.setattr(timing.time, "perf_counter", clock)
    # two warm-up runs (50, 40 ms), then 5, 1, 3, 100, 2: median 3 (mean 22.2, minimum 1)
    fn = clock.advancing([50, 40, 5, 1, 3, 100, 2])
    assert median_ms(fn, warmup=2, reps=5) == pytest.approx(3.0)


def test_interleaved_median_ms_times_each_function_and_keeps_its_last_result(monkeypatch):
    clock = FakeClock()
    monkeypatch.setattr(timing.time, "perf_counter", clock)
    fns = {"a": clock.advancing([4, 8, 6]), "b": clock.advancing([30, 10, 20])}
    medians, last = interleaved_median_ms(fns, "cpu", reps=3)
    assert medians == pytest.approx({"a": 6.0, "b": 20.0}) and last == {"a": 6, "b": 20}


def test_failure_note_names_the_error_and_its_first_line():
    assert failure_note(RuntimeError("out of memory\ntrace")) == (
        "failed: RuntimeError: out of memory"
    )
    assert failure_note(MemoryError(), "memory") == "memory: MemoryError"
