"""The ``multi_run`` section at tiny sizes (the real benchmark is never a test): K LPD
trainings stepped one after another and as one vmapped model, streams on CUDA only."""

from __future__ import annotations

import time

import pytest
import torch

from conftest import TINY_FAN
from learnct.bench import multi_run
from learnct.bench.multi_run import MODES, benchmark_multi_run, format_rows
from learnct.physics import RayTransform

TINY = {"n_iter": 1, "hidden": 8}


def _batches(operator: RayTransform, k: int, device: str = "cpu"):
    gen = torch.Generator().manual_seed(0)
    out = []
    for _ in range(k):
        images = torch.rand(2, 1, 32, 32, generator=gen)
        out.append((images.to(device), operator(images).to(device)))
    return out


def test_multi_run_times_sequential_and_vmap_and_skips_streams_on_the_cpu():
    operator = RayTransform(TINY_FAN)
    results = benchmark_multi_run(
        "tiny", operator, _batches(operator, 2), ks=(1, 2), warmup=1, reps=2, model_options=TINY
    )
    assert [(r["K"], r["mode"]) for r in results] == [(k, m) for k in (1, 2) for m in MODES]
    for r in results:
        if r["mode"] == "streams":
            assert r["note"] == "CUDA only" and "steps_per_s" not in r
            continue
        assert r["note"] == "" and r["steps_per_s"] > 0 and r["step_mb"] >= 0
    rows = format_rows(results, torch.device("cpu"))
    sequential = [r for r in rows if r["mode"] == "sequential"]
    assert all(r["vs sequential"] == "1.00" for r in sequential)
    assert all(r["steps/s (all K)"] == "-" for r in rows if r["mode"] == "streams")


def test_a_round_of_k_models_counts_k_steps(monkeypatch):
    # every round "takes" 500 ms: K = 2 models make 4 steps/s, 250 ms per model step
    monkeypatch.setattr(
        multi_run, "interleaved_median_ms", lambda fns, device, reps: ({m: 500.0 for m in fns}, {})
    )
    operator = RayTransform(TINY_FAN)
    results = benchmark_multi_run(
        "tiny", operator, _batches(operator, 2), ks=(2,), warmup=0, reps=1, model_options=TINY
    )
    timed = [r for r in results if r["mode"] != "streams"]
    assert timed and all(r["steps_per_s"] == pytest.approx(4.0) for r in timed)
    assert all(r["ms_per_model_step"] == pytest.approx(250.0) for r in timed)


def test_the_ratio_is_to_the_sequential_row_of_the_same_batch():
    def result(batch, mode, rate):
        return {
            "setup": "s",
            "batch": batch,
            "K": 2,
            "mode": mode,
            "path": "eager",
            "steps_per_s": rate,
            "ms_per_model_step": 2e3 / rate,
            "note": "",
        }

    results = [
        result(1, "sequential", 10.0),
        result(1, "vmap", 20.0),
        result(5, "sequential", 4.0),
        result(5, "vmap", 2.0),
    ]
    rows = format_rows(results, torch.device("cpu"))
    assert [r["vs sequential"] for r in rows] == ["1.00", "2.00", "1.00", "0.50"]


def test_multi_run_budget_spent_lists_the_groups_as_not_run():
    operator = RayTransform(TINY_FAN)
    results = benchmark_multi_run(
        "tiny",
        operator,
        _batches(operator, 2),
        ks=(2,),
        model_options=TINY,
        deadline=time.perf_counter() - 1,
    )
    assert {r["note"] for r in results if r["mode"] != "streams"} == {
        "not run: section time budget spent"
    }
    assert not any("steps_per_s" in r for r in results)


@pytest.mark.gpu
def test_multi_run_streams_on_cuda():
    operator = RayTransform(TINY_FAN)
    results = benchmark_multi_run(
        "tiny",
        operator,
        _batches(operator, 2, "cuda"),
        ks=(2,),
        warmup=1,
        reps=2,
        model_options=TINY,
    )
    assert all(r["note"] == "" and r["steps_per_s"] > 0 for r in results)
