"""The ``multi_run`` section at tiny sizes (the real benchmark is never a test): K LPD
trainings stepped one after another and as one vmapped model, streams on CUDA only."""

from __future__ import annotations

import time

import pytest
import torch

from conftest import TINY_FAN
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
        # K steps per round: steps/s times the per-model step time is one second per second
        assert r["steps_per_s"] * r["ms_per_model_step"] / 1e3 == pytest.approx(1.0)
    rows = format_rows(results, torch.device("cpu"))
    sequential = [r for r in rows if r["mode"] == "sequential"]
    assert all(r["vs sequential"] == "1.00" for r in sequential)
    assert all(r["steps/s (all K)"] == "-" for r in rows if r["mode"] == "streams")


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
