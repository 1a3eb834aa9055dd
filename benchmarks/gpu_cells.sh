#!/usr/bin/env bash
# The speed grid's largest cells on a GPU machine, one prepared run inside a time budget.
#
# Each cell is `benchmarks/grid.py` (a fresh process per cell, Keras at its defaults and at
# jit_compile on/off x 32 steps per call, fitpipe at its defaults, the compute-only limits),
# MLP model, one repeat, in order of priority; a cell is started only while BUDGET seconds
# (default 420) are not spent, and is stopped when they are. Every table row is appended to
# $OUT/grid.log and every cell's figures to $OUT/cells.json as soon as the cell ends, so a
# run cut short still reports the cells it finished.
#
#   OUT=/tmp/out BUDGET=420 bash benchmarks/gpu_cells.sh
#   CELLS="64000:32:256:numpy" OUT=/tmp/out bash benchmarks/gpu_cells.sh   # a smoke run
#
# Needs TensorFlow with a GPU visible to it (the script stops at once when TensorFlow sees
# none, unless ALLOW_CPU=1) and fitpipe importable (`pip install -e .`, or `PYTHONPATH=src`).
# SITE=<dir>: the unpacked bundle of `benchmarks/gpu_bundle.sh` (TensorFlow and the CUDA 12
# libraries it loads, for a machine without them); the script then puts it and src/ first on
# PYTHONPATH, ptxas on PATH and in XLA's CUDA directory, and the cuSOLVER stand-in's folder
# on LD_LIBRARY_PATH (the one TensorFlow library that opens it does not look in site/).
#
# Seen on the device tool's H200 (2026-12-04, 16 cores): the 2,000,000 x 512 NumPy cell took
# 232-254 s, the same rows streamed from Parquet over 255 s, 2,000,000 x 32 over 152 s
# (119 s with KERAS="1/32"), 640,000 x 512 at batch 256 over 202 s.
set -u
OUT=${OUT:-/tmp/gpu-out}
BUDGET=${BUDGET:-420}
PYTHON=${PYTHON:-python3}
CELLS=${CELLS:-"2000000:512:1024:numpy 2000000:512:1024:parquet-streamed \
2000000:512:1024:parquet 2000000:32:1024:numpy 2000000:32:256:numpy \
2000000:32:1024:parquet-streamed 640000:512:256:numpy"}
KERAS=${KERAS:-"0/32 1/32"}
if [ -n "${SITE:-}" ]; then
    export PYTHONPATH="$SITE:$(cd "$(dirname "$0")/.." && pwd)/src"
    export PATH="$SITE/nvidia/cuda_nvcc/bin:$PATH"
    export XLA_FLAGS="--xla_gpu_cuda_data_dir=$SITE/nvidia/cuda_nvcc"
    export LD_LIBRARY_PATH="${LD_LIBRARY_PATH:-}:$SITE/nvidia/cusolver/lib"
    export PYTHONUNBUFFERED=1
fi
mkdir -p "$OUT"
start=$(date +%s)
log() { echo "$@" | tee -a "$OUT/grid.log"; }
cd "$(dirname "$0")/.." || exit 1

log "gpu_cells: $(date -u +%FT%TZ), $(nproc) cores, budget ${BUDGET} s"
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>&1 |
    tee -a "$OUT/grid.log"
TF_CPP_MIN_LOG_LEVEL=${CHECK_LOG_LEVEL:-1} "$PYTHON" - <<'EOF' 2>&1 | tee -a "$OUT/grid.log"
import os, sys, time
import tensorflow as tf
gpus = tf.config.list_physical_devices("GPU")
print("tensorflow", tf.__version__, "GPUs:", gpus)
if not gpus and os.environ.get("ALLOW_CPU") != "1":
    sys.exit("no GPU visible to TensorFlow: nothing to measure")
start = time.perf_counter()
a = tf.random.normal((4096, 4096))
for jit in (False, True):
    f = tf.function(lambda m: tf.reduce_sum(tf.matmul(m, m)), jit_compile=jit)
    print(f"matmul on {a.device}, jit={jit}:", float(f(a)) != 0.0)
print(f"GPU check {time.perf_counter() - start:.1f} s")
EOF
[ "${PIPESTATUS[0]}" -eq 0 ] || exit 2

for cell in $CELLS; do
    IFS=: read -r rows features batch source <<<"$cell"
    left=$((BUDGET - ($(date +%s) - start)))
    if [ "$left" -lt 45 ]; then
        log "not run (budget spent): $cell"
        continue
    fi
    began=$(date +%s)
    rm -f /tmp/gpu_cell.json
    timeout "$left" "$PYTHON" benchmarks/grid.py --rows "$rows" --features "$features" \
        --batch "$batch" --models mlp --inputs "$source" --repeats 1 --epochs 2 \
        --keras $KERAS --json /tmp/gpu_cell.json 2>&1 | tee -a "$OUT/grid.log"
    log "cell $cell: $(($(date +%s) - began)) s"
    [ -f /tmp/gpu_cell.json ] && cat /tmp/gpu_cell.json >>"$OUT/cells.json"
done
log "gpu_cells: done in $(($(date +%s) - start)) s"
