#!/usr/bin/env bash
# One lent-GPU session (issue #7 benchmarks, issue #9 GPU training), in one or two calls:
#   bench: the triton layout/block tuning table, then `python -m learnct.bench --gpu`, one
#          section per process, each alone on the GPU;
#   tests: the CUDA-marked tests (beside the training runs when `train` is in PARTS);
#   sittings: paper-scale schedules in sittings that end by time (issue #22; see that part);
#   train: GPU training runs on SETUP (physics preset, default fan_lowdose) at batch BATCH
#          (default 5), sized from a measured step time to end before the deadline, then
#          packed as float16 stripped checkpoints.
# Run from the repository root on a CUDA machine with torch, Lightning and torchmetrics; hydra,
# omegaconf and antlr4 come from .gpu_site/ when the machine lacks them. Everything it makes
# goes to $OUT (default /tmp/gpu_session): bench *.md, logs, checkpoints, results.tgz.
# Session 2 (gpu_session.md) ran two calls back to back on the warm machine:
#   PARTS="bench tests" BENCH_SECTIONS="projector:60 fbp:30 methods:150" DEADLINE_S=330 bash ...
#   PARTS=train TRAIN="lpd fbpunet3:fbpunet" ARGS_fbpunet3="model.depth=3" DEADLINE_S=565 bash ...
# Sections that run to their limits leave training the rest of DEADLINE_S (at least 30 s).
# TRAIN lists the runs, each an experiment name or run:experiment (default "lpd lgd fbpunet"; a
# run name is a shell identifier); ARGS_<run> adds Hydra overrides to one, e.g.
# TRAIN="lpd unet3:fbpunet" ARGS_unet3="model.depth=3"
# ARGS_lpd="init_weights=experiments/fan_lowdose/weights/LearnedPrimalDual.ckpt".
# The step-time probe times each experiment's default model (ARGS_<run> not applied).
# fan_mayo (512^2, 1000 x 1000 rays; issue #9's learned rows, trained on 512^2 ellipses):
#   PARTS=train SETUP=fan_mayo BATCH=1 TRAIN="fbpunet lgd lpd" ARGS_fbpunet="model.norm=instance" \
#   COMMON_ARGS="test=false"   (no 512^2 test pass in the deadline; evaluate with make eval)
# Batch norm at batch 1 learns per-image statistics that its test-time running averages do not
# reproduce, hence model.norm=instance (session 8 trained with batch norm and evaluated with
# model.norm=instance, which computes the same). LPD needs 3.4 GB at batch 1 in bf16, so
# model.checkpoint=true (1.5x slower) only matters on cards under about 8 GB.
# COMMON_ARGS adds Hydra overrides to every run.
# Issues #21 and #24's measurements run from learnct.bench.gpu_jobs instead (session 14: each
# measurement in its own process under one deadline, the compiled ones warmed side by side):
#   python3 -m learnct.bench.gpu_jobs --out $OUT/r --deadline-s 535 --warm-s 170
# with PYTHONPATH=$PWD/src:$PWD/.gpu_site (carry .gpu_site); it wrote training_gpu.md,
# inference_gpu.md, projector_triton_gpu.md, projector_gpu.md, multi_run_gpu.md and jobs.md in
# 555 s. What it did not reach: multi_run's compiled groups
#   PARTS=bench TRITON_TUNING=0 BENCH_SECTIONS="multi_run:420" DEADLINE_S=440 \
#   bash experiments/benchmarks/gpu_session.sh
# TRITON_TUNING=0 skips the triton layout/block tuning table (100 s).
set -u
START=$(date +%s)
DEADLINE_S=${DEADLINE_S:-560}
PARTS=${PARTS:-bench tests train}
SETUP=${SETUP:-fan_lowdose}
BATCH=${BATCH:-5}
if [[ ! $SETUP =~ ^[a-z_]+$ || ! -f configs/physics/$SETUP.yaml ]]; then
    echo "SETUP='$SETUP' is not a physics preset: one of $(ls configs/physics | sed 's/.yaml//' | tr '\n' ' ')" >&2
    exit 2
fi
if [[ ! $BATCH =~ ^[1-9][0-9]*$ ]]; then
    echo "BATCH='$BATCH' must be a positive integer" >&2
    exit 2
fi
TRAIN=$(echo ${TRAIN:-lpd lgd fbpunet})  # trimmed
for spec in $TRAIN; do
    if [[ ! ${spec%%:*} =~ ^[A-Za-z_][A-Za-z0-9_]*$ ]]; then
        echo "TRAIN: run name '${spec%%:*}' is not a shell identifier (ARGS_<run> needs one)" >&2
        exit 2
    fi
done
BENCH_SECTIONS=${BENCH_SECTIONS:-projector:60 fbp:30 methods:150 training:170}
TRITON_TUNING=${TRITON_TUNING:-1}
export OUT=${OUT:-/tmp/gpu_session}
mkdir -p "$OUT/bench" "$OUT/runs"
export PYTHONPATH="$PWD/src:$PWD/.gpu_site${PYTHONPATH:+:$PYTHONPATH}"
export SETUP BATCH PYTHONUNBUFFERED=1 WANDB_MODE=disabled LEARNCT_CACHE_DIR=/tmp/learnct-cache
left() { echo $((DEADLINE_S - ($(date +%s) - START))); }
# seconds left minus a margin, at least 30 (a non-positive timeout would run unbounded or fail)
budget() { local b=$(($(left) - $1)); echo $((b > 30 ? b : 30)); }
say() { echo "[$(($(date +%s) - START)) s] $*"; }
has() { [[ " $PARTS " == *" $1 "* ]]; }
PYTEST=(python3 -m pytest -m gpu -q -p no:cacheprovider tests/physics tests/methods tests/data)

say "machine; parts: $PARTS"
nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.sm --format=csv
python3 -c "import torch, triton, lightning; print('torch', torch.__version__, 'triton',
triton.__version__, 'lightning', lightning.__version__, torch.cuda.get_device_name())"

if has bench; then
    if [[ $TRITON_TUNING != 0 ]]; then
        say "bench: triton layouts, block sizes, gather vs atomic adjoint (limit 150 s)"
        timeout 150 python3 -m learnct.bench.triton_tuning --presets fan_mayo fan_lowdose \
            --batches 1 8 --block-rays 64 128 256 --out "$OUT/bench" >"$OUT/bench/triton.log" 2>&1
        say "bench triton rc=$?"
        grep "^|" "$OUT/bench/triton.log" | tail -n 30
    fi
    for spec in $BENCH_SECTIONS; do
        section=${spec%%:*}
        limit=${spec##*:}
        say "bench $section (limit ${limit} s)"
        extra=()
        if [[ $section == multi_run ]]; then  # its own budget, inside the limit
            extra=(--multi-run-budget-s $((limit - ${MULTI_RUN_MARGIN_S:-40})))
        fi
        timeout "$limit" python3 -m learnct.bench --gpu --sections "$section" --out "$OUT/bench" \
            "${extra[@]}" >"$OUT/bench/$section.log" 2>&1
        say "bench $section rc=$?"
        tail -n 25 "$OUT/bench/$section.log"
    done
fi

if has tests && ! has train; then
    say "CUDA tests"
    OMP_NUM_THREADS=8 timeout "$(budget 20)" "${PYTEST[@]}" >"$OUT/pytest_gpu.log" 2>&1
    say "pytest rc=$?"
    tail -n 15 "$OUT/pytest_gpu.log"
fi

if has train; then
    say "step-time probe (bf16, batch $BATCH, $SETUP): $TRAIN"
    probe() {
        BACKEND=$1 RUNS="$TRAIN" python3 - <<'EOF'
import os
import time
import torch
from learnct.bench.training import build_method, make_batch, step_fn
from learnct.physics import PRESETS, RayTransform
dev = torch.device("cuda")
setup = os.environ["SETUP"]
op = RayTransform(PRESETS[setup]().geometry, backend=os.environ["BACKEND"])
images, sino = make_batch(setup, op, int(os.environ["BATCH"]), dev)
for run in os.environ["RUNS"].split():
    name = run.split(":")[-1]  # run:experiment
    step = step_fn(build_method(name, op, {"autocast": "bf16"}, dev), images, sino)
    for _ in range(5):
        step()
    torch.cuda.synchronize()
    t = time.perf_counter()
    for _ in range(20):
        step()
    torch.cuda.synchronize()
    print(run, round((time.perf_counter() - t) / 20 * 1e3, 2))
EOF
    }
    backend=auto
    probe auto >"$OUT/probe.txt" 2>&1
    first=${TRAIN%% *}
    if ! grep -q "^${first} " "$OUT/probe.txt"; then  # the auto (triton) path failed
        backend=matrix_free
        probe matrix_free >>"$OUT/probe.txt" 2>&1
    fi
    cat "$OUT/probe.txt"
    # The runs share the GPU: each step is assumed to take the sum of the solo steps plus
    # Lightning's and the on-device simulation's overhead (x1.5 + 6 ms).
    train_s=$(budget 75)
    sum_ms=$(awk 'NF==2 && $2+0 > 0 {s += $2} END {print (s > 0 ? s : 100)}' "$OUT/probe.txt")
    steps=$(awk -v t="$train_s" -v s="$sum_ms" \
        'BEGIN {n = int(t * 1000 / (s * 1.5 + 6)); print (n < 200 ? 200 : n)}')
    val=$((steps / 10 > 50 ? steps / 10 : 50))
    cap=$(printf "00:00:%02d:%02d" $(((train_s + 20) / 60)) $(((train_s + 20) % 60)))
    say "training ($backend): $steps steps each, validation every $val, cap $cap"

    pytest_pid=
    if has tests; then
        OMP_NUM_THREADS=4 timeout "$(budget 30)" "${PYTEST[@]}" >"$OUT/pytest_gpu.log" 2>&1 &
        pytest_pid=$!
    fi
    pids=()
    for spec in $TRAIN; do
        run=${spec%%:*}
        exp=${spec##*:}
        extra_name="ARGS_$run"
        # word splitting of the extra overrides is intended, globbing is not
        # shellcheck disable=SC2086
        set -f
        OMP_NUM_THREADS=4 timeout "$(budget 25)" python3 -m learnct.train experiment="$exp" \
            trainer=gpu logger=csv task_name="${run}_gpu" physics="$SETUP" \
            tags="[$exp,$SETUP]" physics.backend=$backend data.batch_size="$BATCH" \
            trainer.max_steps="$steps" trainer.val_check_interval="$val" \
            +trainer.max_time="$cap" hydra.run.dir="$OUT/runs/$run" ${COMMON_ARGS:-} \
            ${!extra_name:-} \
            >"$OUT/train_$run.log" 2>&1 &
        pids+=($!)
        set +f
    done
    for p in "${pids[@]}"; do wait "$p"; say "train pid $p rc=$?"; done
    if [[ -n $pytest_pid ]]; then
        wait "$pytest_pid"
        say "pytest rc=$?"
        tail -n 15 "$OUT/pytest_gpu.log"
    fi
    for spec in $TRAIN; do
        echo "== ${spec%%:*}"
        grep -E "starting from|^results|Error|test/psnr" "$OUT/train_${spec%%:*}.log" | tail -n 5
    done

    say "pack"
    python3 - <<'EOF'
import os
from pathlib import Path
import torch
from learnct.reporting.weights import strip_checkpoint
out = Path(os.environ["OUT"])
for run in sorted((out / "runs").iterdir()):
    found = sorted((run / "checkpoints").glob("*.ckpt"))
    ckpts = [c for c in found if c.stem != "last"] or found  # the best, else last.ckpt
    if ckpts:  # float16 keeps a returned file small (16 MB at most come back)
        slim = strip_checkpoint(ckpts[-1], out / f"{run.name}_fp16.ckpt", dtype=torch.float16)
        print(run.name, ckpts[-1], slim.stat().st_size)
EOF
    find "$OUT/runs" -name "*.ckpt" -delete
fi

if has sittings; then
    # Paper-scale schedules (issue #22) in sittings that end by time: each experiment of
    # SITTINGS (default: LGD on parallel_ellipses and fan_lowdose, LPD on fan_lowdose: the
    # paper runs whose sitting checkpoints are small enough to come back and be committed,
    # see gpu_session.md; LPD on parallel_ellipses finished on the CPU) trains side
    # by side with the others for SITTING_MINUTES (default: what the deadline leaves, less 3
    # minutes for start-up, which a sitting's clock does not count, and saving), then saves
    # its resumable checkpoint to experiments/<setup>/sittings/<task>/last.ckpt, which comes
    # back in sittings.tgz: unpack it in the repository root and commit it; the same call
    # next time continues every schedule. bf16-mixed on the fast path (the papers trained in
    # float32; the projector stays float32).
    minutes=${SITTING_MINUTES:-$(awk -v s="$(left)" 'BEGIN {m = (s - 180) / 60; print (m > 1 ? int(m) : 1)}')}
    say "sittings of $minutes min: ${SITTINGS:=paper/lgd_parallel_ellipses paper/lgd_fan_lowdose paper/lpd_fan_lowdose}"
    pids=()
    for exp in $SITTINGS; do
        name=${exp##*/}
        OMP_NUM_THREADS=4 timeout "$(budget 20)" python3 -m learnct.train experiment="$exp" \
            logger=csv callbacks.progress_bar=null trainer.precision=bf16-mixed \
            data.phantoms_on_device=true sitting_minutes="$minutes" \
            hydra.run.dir="$OUT/runs/$name" >"$OUT/sitting_$name.log" 2>&1 &
        pids+=($!)
    done
    for p in "${pids[@]}"; do wait "$p"; say "sitting pid $p rc=$?"; done
    grep -h -E "resuming from|sitting ended|sitting:|Error" "$OUT"/sitting_*.log
    find "$OUT/runs" -name "*.ckpt" -delete  # the runs' own checkpoints; the sittings' come back
    tar -czf "$OUT/sittings.tgz" experiments/*/sittings
    ls -la "$OUT/sittings.tgz"
fi

say "archive"
logs=$(cd "$OUT" && ls probe.txt pytest_gpu.log train_*.log sitting_*.log 2>/dev/null)
# shellcheck disable=SC2086
tar -C "$OUT" -czf "$OUT/results.tgz" bench runs $logs && rm -rf "$OUT/bench" "$OUT/runs" \
    && (cd "$OUT" && rm -f $logs)
say "done"
