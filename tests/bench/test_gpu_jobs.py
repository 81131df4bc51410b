"""The GPU jobs driver's machinery on stand-in jobs: results read and tabled after each job, a
hung job stopped at its limit, a job that would not fit skipped, a compiled training job whose
warm-up failed timed without CUDA graphs."""

from __future__ import annotations

import json
import sys

from learnct.bench.gpu_jobs import Job, run_plan

ROW = {
    "method": "lpd",
    "setup": "fan_lowdose",
    "batch": 5,
    "config": "baseline",
    "device": "cpu",
    "note": "",
    "step_peak_mb": 10.0,
    "total_peak_mb": 20.0,
    "ms_per_step": 42.0,
    "loss": 0.01,
}


def _py(code: str) -> list[str]:
    return [sys.executable, "-c", code]


def test_jobs_run_in_order_under_their_limits_and_the_deadline(tmp_path):
    fast = {**ROW, "config": "fast+compiled+bf16", "ms_per_step": 21.0}
    jobs = [
        Job("baseline", _py(f"print({json.dumps(ROW)!r})"), 30, "train"),
        Job(
            "compiled",
            _py(f"print({json.dumps(fast)!r})"),
            30,
            "train",
            warm=_py("raise SystemExit('CUDA graphs failed')"),
        ),
        Job("hangs", _py("import time; time.sleep(60)"), 2, min_s=1),
        Job("too long", _py("print('never')"), 30, min_s=10_000),
    ]
    run_plan(jobs, tmp_path, deadline_s=120, warm_s=30, tests=None, header="Machine: test\n\n")
    baseline, compiled, hangs, too_long = jobs
    assert baseline.status == "ok" and baseline.result["ms_per_step"] == 42.0
    assert compiled.argv[-1] == "--no-graphs" and "timed without CUDA graphs" in compiled.note
    assert compiled.status == "ok" and compiled.result["note"].startswith("warm-up rc=1")
    assert hangs.status == "timed out" and 1.5 < hangs.seconds < 10
    assert too_long.status.startswith("skipped")
    table = (tmp_path / "training_gpu.md").read_text()
    assert "| 42 | 1.00 |" in table and "| 21 | 0.50 |" in table  # time / baseline
    summary = (tmp_path / "jobs.md").read_text()
    assert "| hangs | timed out |" in summary and "| too long | skipped" in summary
