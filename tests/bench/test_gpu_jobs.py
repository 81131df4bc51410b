"""The GPU jobs driver's machinery on stand-in jobs: results read and tabled after each job, a
hung job stopped at its limit, a job that would not fit skipped, a compiled training job whose
warm-up failed in CUDA graphs timed with its fallback (and not after another failure), a
Lightning run's metrics read."""

from __future__ import annotations

import json
import sys

from learnct.bench.gpu_jobs import Job, json_line, lightning_rate, plan, run_plan

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


def _prints(row: dict) -> list[str]:
    return _py(f"print({json.dumps(row)!r})")


def test_jobs_run_in_order_under_their_limits_and_the_deadline(tmp_path):
    fast = {**ROW, "config": "fast+compiled+bf16", "ms_per_step": 21.0}
    graphs = "raise RuntimeError('CUDA graph capture failed: stream is capturing')"
    jobs = [
        Job("baseline", _prints(ROW), 30, json_line, "training"),
        Job(
            "compiled",
            _py("raise SystemExit('the graphs path ran')"),
            30,
            json_line,
            "training",
            warm=_py(graphs),
            fallback=_prints(fast),
        ),
        Job(
            "other failure",
            _prints({**fast, "batch": 2}),
            30,
            json_line,
            "training",
            warm=_py("raise MemoryError('out of memory')"),
            fallback=_py("raise SystemExit('the fallback ran')"),
        ),
        Job("hangs", _py("import time; time.sleep(60)"), 2, min_s=1),
        Job("too long", _py("print('never')"), 30, min_s=10_000),
    ]
    run_plan(jobs, tmp_path, deadline_s=120, warm_s=30, tests=None, header="Machine: test\n\n")
    baseline, compiled, other, hangs, too_long = jobs
    assert baseline.status == "ok" and baseline.result["ms_per_step"] == 42.0
    assert compiled.status == "ok" and "timed without CUDA graphs" in compiled.note
    assert compiled.result["note"].startswith("warm-up rc=1")
    assert other.status == "ok" and "without CUDA graphs" not in other.note  # kept its graphs
    assert hangs.status == "timed out" and 1.5 < hangs.seconds < 10
    assert too_long.status.startswith("skipped")
    table = (tmp_path / "training_gpu.md").read_text()
    assert "| 42 | 1.00 |" in table and "| 21 | 0.50 |" in table  # time / baseline
    summary = (tmp_path / "jobs.md").read_text()
    assert "| hangs | timed out |" in summary and "| too long | skipped" in summary


def test_lightning_rate_reads_the_runs_metrics(tmp_path):
    run = tmp_path / "run" / "csv" / "version_0"
    run.mkdir(parents=True)
    lines = ["step,train/loss,train/steps_per_s,val/psnr", "99,0.1,2.5,", "199,0.05,50.0,"]
    lines += ["299,0.04,60.0,", "399,0.03,70.0,", "399,,,28.1"]
    (run / "metrics.csv").write_text("\n".join(lines) + "\n")
    (tmp_path / "run" / "last.ckpt").write_bytes(b"")
    job = Job("lightning", ["python", f"hydra.run.dir={tmp_path / 'run'}"], 10)
    result = lightning_rate(job, "")
    # the first window holds the compile: the median of the others
    assert result == {
        "run": "lightning",
        "steps/s": "60.0",
        "windows": 4,
        "steps": 400,
        "checkpoints": "last.ckpt",
    }


def test_every_compiled_inference_configuration_is_warmed_up(tmp_path):
    jobs = {job.name: job for job in plan(tmp_path, "cuda", quick=False)}
    job = jobs["infer fan_lowdose eager,compiled,compiled+cl"]
    assert job.warm is not None and "compiled,compiled+cl" in job.warm
    assert "eager" not in job.warm and jobs["train fan_lowdose b5 baseline"].warm is None
