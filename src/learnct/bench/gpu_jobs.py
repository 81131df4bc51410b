"""One lent GPU's measurements (issues #21 and #24): jobs in priority order under a deadline.

``python -m learnct.bench.gpu_jobs --out DIR --deadline-s 540`` runs every job in its own
process with a time limit, so that a failure, a hang or a timeout loses that job alone, and
rewrites the tables after every job:

1. concurrently, for at most ``--warm-s`` seconds: the CUDA-marked tests and one short run of
   every compiled job, which fills inductor's on-disk caches (compiling LPD's step takes about
   a minute; the timed job's compile of the same graph then loads it). A compiled training job
   whose warm-up fails in CUDA graphs (its log names them) is timed without them (its note
   says so);
2. one after another, each alone on the GPU, most important first: LPD training steps, today's
   beside the fast path (``training_gpu.md``), LPD inference per slice (``inference_gpu.md``),
   the triton projector table with the gather and atomic adjoints (``projector_triton_gpu.md``),
   a Lightning run of the paper's LPD on the fast path (``lightning_gpu.md``, its
   ``train/steps_per_s``), the host synchronisations of 20 of its steps
   (``lightning_syncs_gpu.md``, :mod:`learnct.bench.sync_sites`), the projector section,
   multi_run. A job is skipped when less than its minimum is left.

``jobs.md`` lists every job with its outcome and seconds. ``--device cpu --quick``: the same
machinery on small CPU jobs (no compiled jobs, no warm-ups, no tests), as a dry run.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["Job", "json_line", "lightning_rate", "main", "plan", "run_plan"]

PY = [sys.executable]


def json_line(job: Job, stdout: str) -> Any:
    """The last line of ``stdout`` as JSON (a step's or an inference job's result)."""
    return json.loads(stdout.strip().splitlines()[-1])


def lightning_rate(job: Job, stdout: str) -> dict[str, Any]:
    """``train/steps_per_s`` of the job's Lightning run (its ``hydra.run.dir``'s CSV metrics,
    :func:`~learnct.run.results.read_metric_curves`): the median of the windows after the
    first (which holds the compile), the steps run, the checkpoints written."""
    from learnct.run.results import read_metric_curves

    folder = Path(next(a.split("=", 1)[1] for a in job.argv if a.startswith("hydra.run.dir=")))
    curves = read_metric_curves(folder)
    if not curves:
        raise RuntimeError(f"no CSV metrics under {folder}")
    rates = [value for _, value in curves.get("train/steps_per_s", [])]
    later = rates[1:] or rates
    return {
        "run": job.name,
        "steps/s": f"{statistics.median(later):.1f}" if later else "-",
        "windows": len(rates),
        "steps": max(step for points in curves.values() for step, _ in points),
        "checkpoints": " ".join(sorted(p.name for p in folder.rglob("*.ckpt"))),
    }


@dataclass
class Job:
    """One process: ``argv``, at most ``limit_s`` seconds, skipped under ``min_s`` left.
    ``read(job, stdout)`` makes its result (``None``: it writes its own files), a row or rows
    of the table ``table``; ``warm``: the argv of its phase-1 warm-up, ``fallback``: the argv
    to time instead when that warm-up fails in CUDA graphs."""

    name: str
    argv: list[str]
    limit_s: float
    read: Callable[[Job, str], Any] | None = None
    table: str | None = None
    min_s: float = 20.0
    warm: list[str] | None = None
    fallback: list[str] | None = None
    status: str = "not run"
    seconds: float = 0.0
    result: Any = None
    note: str = ""


def _one(kind: str, *args: str) -> list[str]:
    return [*PY, "-m", "learnct.bench.gpu_jobs", "one", kind, *args]


def plan(out: Path, device: str, quick: bool) -> list[Job]:
    """The jobs, most important first (module docstring)."""
    dev = ["--device", device]
    jobs: list[Job] = []

    def train(preset: str, batch: int, config: str, limit: float = 60) -> None:
        compiled = "compiled" in config
        step = [*PY, "-m", "learnct.bench.training", "lpd", preset, str(batch), config, *dev]
        warm = [*step, "--warmup", "2", "--reps", "1"] if compiled else None
        reps = ["--warmup", "1", "--reps", "2"] if quick else ["--warmup", "3", "--reps", "20"]
        argv = [*step, *reps]
        fallback = [*argv, "--no-graphs"] if compiled else None
        name = f"train {preset} b{batch} {config}"
        jobs.append(Job(name, argv, limit, json_line, "training", warm=warm, fallback=fallback))

    def infer(preset: str, configs: str, limit: float = 60) -> None:
        args = [preset, configs, *dev] + (["--quick"] if quick else [])
        compiled = ",".join(c for c in configs.split(",") if "compiled" in c)
        warm = _one("infer", preset, compiled, *dev, "--quick") if compiled else None
        name = f"infer {preset} {configs}"
        jobs.append(Job(name, _one("infer", *args), limit, json_line, "inference", warm=warm))

    if quick:  # the CPU dry run
        train("parallel_ellipses", 1, "baseline")
        train("parallel_ellipses", 1, "fast")
        infer("parallel_ellipses", "eager")
        steps = 20
    else:
        for preset, batch in (("fan_lowdose", 5), ("parallel_ellipses", 5), ("fan_mayo", 1)):
            train(preset, batch, "baseline")
            train(preset, batch, "fast+compiled+bf16", 150)
            if preset != "fan_mayo":  # channels-last: the profile's NCHW/NHWC conversions
                train(preset, batch, "fast+compiled+bf16+cl", 150)
        infer("fan_lowdose", "eager,compiled,compiled+cl", 120)
        infer("fan_mayo", "eager,compiled,compiled+cl", 150)
        triton = ["--presets", "fan_lowdose", "fan_mayo", "--batches", "1", "5", "8"]
        triton += ["--block-rays", "256", "--block-pixels", "32", "64", "128"]
        triton += ["--angle-chunks", "1", "2", "4", "8", "--layouts", "transposed", "--reps", "10"]
        tuning = [*PY, "-m", "learnct.bench.triton_tuning", *triton, "--out", str(out)]
        jobs.append(Job("triton projector (gather: blocks, angle chunks; atomic)", tuning, 120))
        steps = 1500
    run_dir = out / "lightning_run"
    lightning = [*PY, "-m", "learnct.train", "experiment=paper/lpd_parallel_ellipses"]
    lightning += ["logger=csv", "test=false", "data.val_size=4", "data.phantoms_on_device=true"]
    lightning += ["trainer.log_every_n_steps=100" if not quick else "trainer.log_every_n_steps=5"]
    lightning += [f"trainer.val_check_interval={steps}", "callbacks.progress_bar=null"]
    if quick:
        lightning += ["trainer=default", "data.batch_size=1", "trainer.fast_path=eager"]
    else:
        lightning += ["trainer.precision=bf16-mixed"]
    # Lightning's simple profiler: the host time of each hook, in the job's log
    run = [*lightning, f"hydra.run.dir={run_dir}", f"trainer.max_steps={steps}"]
    run += ["+trainer.profiler=simple"]
    warm = None
    if not quick:  # the compile, once
        warm = [*lightning, f"hydra.run.dir={out / 'lightning_warm'}", "trainer.max_steps=20"]
        warm[warm.index(f"trainer.val_check_interval={steps}")] = "trainer.val_check_interval=20"
    name = "lightning paper LPD, parallel_ellipses"
    jobs.append(Job(name, run, 120, lightning_rate, "lightning", min_s=60, warm=warm))
    # the host synchronisations of 20 of its steps (learnct.bench.sync_sites), compile cached
    sync_steps, start = (8, 3) if quick else (80, 40)
    syncs = [*lightning, f"hydra.run.dir={out / 'lightning_syncs'}"]
    syncs[syncs.index(f"trainer.val_check_interval={steps}")] = (
        f"trainer.val_check_interval={sync_steps}"
    )
    syncs += [f"trainer.max_steps={sync_steps}"]
    syncs += ["+callbacks.sync_sites._target_=learnct.bench.sync_sites.SyncSites"]
    syncs += [f"+callbacks.sync_sites.out={out / 'lightning_syncs_gpu.md'}"]
    syncs += [f"+callbacks.sync_sites.start={start}", "+callbacks.sync_sites.steps=20"]
    jobs.append(Job("lightning host syncs (sync debug mode)", syncs, 90, min_s=45))
    if not quick:
        train("fan_lowdose", 5, "fast")
        train("fan_lowdose", 5, "fast+compiled", 150)
        bench = [*PY, "-m", "learnct.bench", "--gpu", "--out", str(out), "--sections"]
        jobs.append(
            Job("projector section (sparse on the GPU vs triton)", [*bench, "projector"], 90)
        )
        jobs.append(
            Job("multi_run", [*bench, "multi_run", "--multi-run-budget-s", "50"], 80, min_s=60)
        )
        train("fan_lowdose", 2, "baseline")
        train("fan_lowdose", 2, "bf16")
    return jobs


def _start(argv: list[str], log: Path, **options: Any) -> subprocess.Popen:
    """``argv`` in a process group of its own (so that a timeout stops its children too),
    its stderr (and, unless ``options`` says otherwise, stdout) to ``log``."""
    with open(log, "w") as fh:  # the child holds its own copy of the handle
        options.setdefault("stdout", fh)
        return subprocess.Popen(argv, stderr=fh, start_new_session=True, text=True, **options)


def _stop(proc: subprocess.Popen) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()


def _run(argv: list[str], limit: float, log: Path) -> tuple[int | None, str]:
    """Run ``argv`` for at most ``limit`` seconds (stderr to ``log``): ``(rc, stdout)``, rc
    ``None`` on timeout."""
    proc = _start(argv, log, stdout=subprocess.PIPE)
    try:
        stdout, _ = proc.communicate(timeout=max(1.0, limit))
    except subprocess.TimeoutExpired:
        _stop(proc)
        return None, ""
    return proc.returncode, stdout


#: What a failed CUDA-graph capture or replay says (torch's cudagraph trees, the CUDA API).
CUDA_GRAPH_ERRORS = (
    "cudagraph",
    "cuda graph",
    "stream is capturing",
    "operation not permitted when stream",
)


def _last_line(path: Path) -> str:
    lines = [line for line in path.read_text(errors="replace").splitlines() if line.strip()]
    return lines[-1][:200] if lines else "(no output)"


def _warm_up(jobs: list[Job], tests: list[str] | None, out: Path, warm_s: float) -> None:
    """Phase 1: the warm-ups (and the tests) at once, for at most ``warm_s`` seconds; a job
    whose warm-up failed in CUDA graphs is timed with its ``fallback``."""
    procs = [
        (job, _start(job.warm, out / f"warm_{i:02d}.log"), out / f"warm_{i:02d}.log")
        for i, job in enumerate(jobs)
        if job.warm
    ]
    if tests:
        env = dict(os.environ, OMP_NUM_THREADS="4")
        log = out / "pytest_gpu.log"
        procs.append((None, _start(tests, log, env=env), log))
    start = time.monotonic()
    for job, proc, log in procs:
        try:
            rc = proc.wait(timeout=max(1.0, warm_s - (time.monotonic() - start)))
        except subprocess.TimeoutExpired:
            _stop(proc)
            rc = None
        what = "tests" if job is None else f"warm-up of {job.name}"
        print(f"[{time.monotonic() - start:5.0f} s] {what}: rc={rc}", flush=True)
        if job is None or rc == 0:
            continue
        job.note = f"warm-up rc={rc}: {_last_line(log)}"
        text = log.read_text(errors="replace").lower()
        if job.fallback and any(sign in text for sign in CUDA_GRAPH_ERRORS):
            job.argv, job.note = job.fallback, job.note + "; timed without CUDA graphs"


def _write_tables(jobs: list[Job], out: Path, header: str) -> None:
    """``<name>_gpu.md`` of the results so far, and ``jobs.md`` (a failure to write them is
    printed: the jobs go on)."""
    try:
        _tables(jobs, out, header)
    except Exception as err:  # the remaining jobs matter more than a table
        print(f"tables not written: {type(err).__name__}: {err}", flush=True)


def _tables(jobs: list[Job], out: Path, header: str) -> None:
    from learnct.bench.tables import markdown_table
    from learnct.bench.training import training_table

    tables: dict[str, list[dict]] = {}
    for job in jobs:
        if job.table and job.result:
            rows = job.result if isinstance(job.result, list) else [job.result]
            tables.setdefault(job.table, []).extend(rows)
    if "training" in tables:
        tables["training"] = training_table(tables["training"])
    for name, rows in tables.items():
        if rows:
            (out / f"{name}_gpu.md").write_text(
                f"# {name} benchmark\n\n{header}{markdown_table(rows)}"
            )
    summary = [
        {"job": j.name, "status": j.status, "seconds": f"{j.seconds:.0f}", "note": j.note}
        for j in jobs
    ]
    (out / "jobs.md").write_text(f"# GPU jobs\n\n{header}{markdown_table(summary)}")


def run_plan(
    jobs: list[Job],
    out: Path,
    deadline_s: float,
    warm_s: float,
    tests: list[str] | None,
    header: str,
) -> None:
    """Phase 1 (:func:`_warm_up`), then every job alone until ``deadline_s`` (module
    docstring)."""
    start = time.monotonic()
    if any(job.warm for job in jobs) or tests:
        _warm_up(jobs, tests, out, warm_s)
    for i, job in enumerate(jobs):
        left = deadline_s - (time.monotonic() - start)
        if left < job.min_s:
            job.status = f"skipped ({left:.0f} s left)"
            continue
        log = out / f"job_{i:02d}.log"
        t0 = time.monotonic()
        rc, stdout = _run(job.argv, min(job.limit_s, left - 5), log)
        job.seconds = time.monotonic() - t0
        job.status = "timed out" if rc is None else ("ok" if rc == 0 else f"failed rc={rc}")
        try:
            if rc == 0 and job.read is not None:
                job.result = job.read(job, stdout)
                if isinstance(job.result, dict) and job.note and "note" in job.result:
                    job.result["note"] = job.note
        except (ValueError, IndexError, RuntimeError, StopIteration) as err:
            job.status = f"unreadable: {err}"
        if job.status != "ok":
            job.note = (job.note + "; " if job.note else "") + _last_line(log)
        print(
            f"[{time.monotonic() - start:5.0f} s] {job.name}: {job.status} ({job.seconds:.0f} s)",
            flush=True,
        )
        _write_tables(jobs, out, header)
    _write_tables(jobs, out, header)  # the skipped ones too


def _one_job(argv: list[str]) -> None:
    """``one infer PRESET CONFIGS``: the inference rows of one setup as one JSON line."""
    parser = argparse.ArgumentParser(prog="gpu_jobs one infer")
    parser.add_argument("kind", choices=["infer"])
    parser.add_argument("preset")
    parser.add_argument("configs", help="comma-separated INFERENCE_CONFIGS names")
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args(argv)
    from learnct.bench.training import inference_rows

    configs = args.configs.split(",")
    print(json.dumps(inference_rows([args.preset], args.device, args.quick, configs)))


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["one"]:
        _one_job(argv[1:])
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True)
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--deadline-s", type=float, default=540)
    parser.add_argument("--warm-s", type=float, default=170)
    parser.add_argument("--quick", action="store_true", help="the CPU dry run")
    parser.add_argument("--no-tests", action="store_true")
    args = parser.parse_args(argv)
    from learnct.bench.tables import machine

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    jobs = plan(out, args.device, args.quick)
    tests = None
    if not args.no_tests and not args.quick:
        tests = [*PY, "-m", "pytest", "-m", "gpu", "-q", "-p", "no:cacheprovider", "--durations=15"]
        tests += ["tests/physics", "tests/methods", "tests/data", "tests/bench"]
    header = f"Machine: {machine(args.device)}\n\n"
    run_plan(jobs, out, args.deadline_s, args.warm_s, tests, header)


if __name__ == "__main__":
    main()
