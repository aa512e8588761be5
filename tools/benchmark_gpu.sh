#!/usr/bin/env bash
# The GPU measurements of the README, in one go (H100/H200; torch and
# triton suffice for the trunk scope). Usage:
#   bash tools/benchmark_gpu.sh [OUT_DIR]
# Writes JSON, PNG charts and logs to OUT_DIR (default: benchmark_results).
set -u
out=${1:-benchmark_results}
mkdir -p "$out"
py=${PYTHON:-python3}
export PYTHONUNBUFFERED=1
step() { echo "== $*"; "$@" || echo "!! failed ($?): $*"; }

nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv
$py -c 'import torch, triton; print("torch", torch.__version__, "triton", triton.__version__)' \
    || $py -c 'import torch; print("torch", torch.__version__, "(no triton)")'

# Exactness of every path on the GPU first: numbers from a wrong kernel mean nothing.
step $py tools/check_exactness.py --device cuda 2>&1 | tee "$out/exactness.log"

# The GPU target: trunk, bf16 autocast, channels-last; fp32 and NCHW beside it.
step $py tools/benchmark.py --device cuda --dtypes bf16 fp32 \
    --channels-last both --warmup 5 --repeats 20 --out-dir "$out" \
    2>&1 | tee "$out/trunk.log"

# Where the time goes (bf16, channels-last).
for mode in infer train; do
    for impl in resnet fast; do
        step $py tools/analysis_tools/profile_trunk.py --impl $impl \
            --mode $mode --channels-last --rows 22 \
            2>&1 | grep -v '^STAGE\|^USDT' > "$out/profile_${impl}_${mode}.log"
    done
done
tail -n 30 "$out"/profile_fast_*.log
grep -h '^|' "$out/trunk.log"
