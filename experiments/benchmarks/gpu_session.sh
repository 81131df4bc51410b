#!/usr/bin/env bash
# One lent-GPU session in one command (issue #7 benchmarks, issue #9 GPU training):
#   A. `python -m learnct.bench --gpu`, one section per process, alone on the GPU;
#   B. the CUDA-marked tests, beside short GPU training runs of LPD, LGD and FBP+U-Net on
#      fan_lowdose (sized from a measured step time to end before the deadline).
# Run from the repository root on a CUDA machine with torch, Lightning and torchmetrics; hydra,
# omegaconf and antlr4 come from .gpu_site/ when the machine lacks them. Everything it makes
# goes to $OUT (default /tmp/gpu_session): bench *.md, logs, stripped checkpoints.
#   OUT=/tmp/x DEADLINE_S=560 bash experiments/benchmarks/gpu_session.sh
set -u
START=$(date +%s)
DEADLINE_S=${DEADLINE_S:-560}
export OUT=${OUT:-/tmp/gpu_session}
mkdir -p "$OUT/bench" "$OUT/runs"
export PYTHONPATH="$PWD/src:$PWD/.gpu_site${PYTHONPATH:+:$PYTHONPATH}"
export PYTHONUNBUFFERED=1 WANDB_MODE=disabled LEARNCT_CACHE_DIR=/tmp/learnct-cache
left() { echo $((DEADLINE_S - ($(date +%s) - START))); }
# seconds left minus a margin, at least 30 (a non-positive timeout would run unbounded or fail)
budget() { local b=$(($(left) - $1)); echo $((b > 30 ? b : 30)); }
say() { echo "[$(($(date +%s) - START)) s] $*"; }

say "machine"
nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.sm --format=csv
python3 -c "import torch, triton, lightning; print('torch', torch.__version__, 'triton',
triton.__version__, 'lightning', lightning.__version__, torch.cuda.get_device_name())"

say "A. benchmarks (alone on the GPU)"
for spec in projector:110 fbp:30 methods:120 training:170; do
    section=${spec%%:*}
    limit=${spec##*:}
    say "bench $section (limit ${limit} s)"
    timeout "$limit" python3 -m learnct.bench --gpu --sections "$section" --out "$OUT/bench" \
        >"$OUT/bench/$section.log" 2>&1
    say "bench $section rc=$?"
    tail -n 25 "$OUT/bench/$section.log"
done

say "B. step-time probe (bf16, batch 5, fan_lowdose)"
probe() {
    BACKEND=$1 python3 - <<'EOF'
import os
import time
import torch
from learnct.methods.training_benchmark import build_method, make_batch, step_fn
from learnct.physics import RayTransform, fan_lowdose
dev = torch.device("cuda")
op = RayTransform(fan_lowdose().geometry, backend=os.environ["BACKEND"])
images, sino = make_batch("fan_lowdose", op, 5, dev)
for name in ("lpd", "lgd", "fbpunet"):
    step = step_fn(build_method(name, op, {"autocast": "bf16"}, dev), images, sino)
    for _ in range(5):
        step()
    torch.cuda.synchronize()
    t = time.perf_counter()
    for _ in range(20):
        step()
    torch.cuda.synchronize()
    print(name, round((time.perf_counter() - t) / 20 * 1e3, 2))
EOF
}
backend=auto
probe auto >"$OUT/probe.txt" 2>&1
if ! grep -q "^lpd " "$OUT/probe.txt"; then  # the auto (triton) path failed: train without it
    backend=matrix_free
    probe matrix_free >>"$OUT/probe.txt" 2>&1
fi
cat "$OUT/probe.txt"
# Three runs share the GPU: each step is assumed to take the sum of the solo steps plus
# Lightning's and the on-device simulation's overhead (x1.5 + 6 ms).
train_s=$(budget 75)
sum_ms=$(awk 'NF==2 && $2+0 > 0 {s += $2} END {print (s > 0 ? s : 100)}' "$OUT/probe.txt")
steps=$(awk -v t="$train_s" -v s="$sum_ms" 'BEGIN {n = int(t * 1000 / (s * 1.5 + 6)); print (n < 200 ? 200 : n)}')
val=$((steps / 8 > 50 ? steps / 8 : 50))
cap=$(printf "00:00:%02d:%02d" $(((train_s + 20) / 60)) $(((train_s + 20) % 60)))
say "training ($backend): $steps steps each, validation every $val, cap $cap; pytest beside"

OMP_NUM_THREADS=4 timeout "$(budget 30)" python3 -m pytest -m gpu -q -p no:cacheprovider \
    tests/physics tests/methods tests/data >"$OUT/pytest_gpu.log" 2>&1 &
pytest_pid=$!
pids=()
for exp in lpd lgd fbpunet; do
    OMP_NUM_THREADS=4 timeout "$(budget 25)" python3 -m learnct.train experiment=$exp \
        trainer=gpu logger=csv task_name=${exp}_gpu physics.backend=$backend \
        data.batch_size=5 trainer.max_steps="$steps" trainer.val_check_interval="$val" \
        +trainer.max_time="$cap" hydra.run.dir="$OUT/runs/$exp" \
        >"$OUT/train_$exp.log" 2>&1 &
    pids+=($!)
done
for p in "${pids[@]}"; do wait "$p"; say "train pid $p rc=$?"; done
wait "$pytest_pid"
say "pytest rc=$?"
tail -n 15 "$OUT/pytest_gpu.log"
for exp in lpd lgd fbpunet; do
    echo "== $exp"
    tail -n 6 "$OUT/train_$exp.log"
done

say "C. pack"
python3 - <<'EOF'
import os
from pathlib import Path
import torch
from learnct.reporting.weights import strip_checkpoint
out = Path(os.environ["OUT"])
for exp in ("lpd", "lgd", "fbpunet"):
    found = sorted((out / "runs" / exp / "checkpoints").glob("*.ckpt"))
    ckpts = [c for c in found if c.stem != "last"] or found  # the best, else last.ckpt
    if ckpts:  # float16 keeps FBP+U-Net under the 16 MB a returned file may have
        slim = strip_checkpoint(ckpts[-1], out / f"{exp}_fp16.ckpt", dtype=torch.float16)
        print(exp, ckpts[-1], slim.stat().st_size)
EOF
find "$OUT/runs" -name "*.ckpt" -delete
tar -C "$OUT" -czf "$OUT/results.tgz" bench runs probe.txt pytest_gpu.log train_lpd.log \
    train_lgd.log train_fbpunet.log && rm -rf "$OUT/bench" "$OUT/runs"
say "done"
