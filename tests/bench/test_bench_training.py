"""The ``training`` section on ``parallel_ellipses`` (the real benchmark is never a test)."""

from __future__ import annotations

import pytest
import torch

from learnct.bench.training import native_bf16, training_rows


@pytest.mark.slow  # LPD steps in-process and in a fresh interpreter: 37-165 s by load
def test_training_rows_quick_measure_time_and_memory():
    rows = training_rows([("parallel_ellipses", 1)], "cpu", quick=True)
    assert [r["flags"] for r in rows] == ["baseline", "bf16"]
    base, bf16 = rows
    assert base["note"] == "" and base["time / baseline"] == "1.00"
    assert float(base["ms per step"]) > 0
    # the step's peak (activations of 10 iterations at 128^2, > 10 MB) sits inside the total
    assert 10 < float(base["step peak MB"]) < float(base["total peak MB"])
    if native_bf16(torch.device("cpu")):
        assert float(bf16["ms per step"]) > 0 and bf16["note"] == ""
    else:
        assert bf16["note"].startswith("not run: this CPU has no native bf16")


@pytest.mark.slow  # LPD steps at 128^2 and the memory subprocesses: about a minute by load
def test_training_rows_time_the_fast_path_beside_today_with_the_same_loss():
    rows = training_rows(
        [("parallel_ellipses", 1)], "cpu", quick=True, configs=["baseline", "fast"]
    )
    base, fast = rows
    assert fast["flags"] == "fast" and fast["note"] == "" and float(fast["ms per step"]) > 0
    assert fast["loss"] == base["loss"]  # same weights, batch and steps: the same loss
