#!/usr/bin/env bash
# The GPU measurements quoted in docs/speed.md (H100/H200; torch and triton
# suffice: the trunk and layers scopes need no mmcv/mmengine/mmdet). Usage:
#   bash tools/benchmark_gpu.sh [OUT_DIR [STEP ...]]
# Writes JSON, PNG charts and logs to OUT_DIR (default: benchmark_results).
# STEPs, in the order they run (default: all): exactness host bf16 layers
# tune fp32 profile compile. Each takes one to three minutes on an H200, so
# a lease of a few minutes per call can run them in two calls, e.g.
#   bash tools/benchmark_gpu.sh out exactness host bf16 layers
#   bash tools/benchmark_gpu.sh out tune fp32 profile compile
set -u
out=${1:-benchmark_results}
shift || true
steps=${*:-exactness host bf16 layers tune fp32 profile compile}
mkdir -p "$out"
py=${PYTHON:-python3}
export PYTHONUNBUFFERED=1
run() { echo "== $*"; "$@" 2>&1 | grep -v '^STAGE\|^USDT'; }
bench() { run $py tools/benchmark.py --device cuda --channels-last on \
    --warmup 5 --repeats 20 --out-dir "$out" "$@"; }
wanted() { [[ " $steps " == *" $1 "* ]]; }

nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv
$py -c 'import torch, triton; print("torch", torch.__version__, "triton", triton.__version__)'

# Exactness on the GPU first: numbers from a wrong kernel mean nothing.
if wanted exactness; then
  run $py tools/check_exactness.py --device cuda --impls fast torch \
      --dtypes fp32 bf16 fp16 | tee "$out/exactness.log" | tail -n 1
fi
# Host work per layer (operator calls and launches) with the real kernels.
if wanted host; then
  run $py tools/benchmark.py --scope host --device cuda --out-dir "$out" \
      | tee "$out/host.log"
fi
# The GPU target (bf16 autocast, channels-last) as MMDetection runs it:
# eager inference at batch 1, eager training at batch 2, then CUDA graphs;
# fast = the Triton kernels, torch = the reference compiled by inductor
# layer by layer (what the kernels must beat to exist), reference = eager.
if wanted bf16; then
  bench --dtypes bf16 --impls fast deploy torch reference --batch 1 \
      --modes infer | tee "$out/bf16_b1.log"
  bench --dtypes bf16 --impls fast deploy torch reference \
      | tee "$out/bf16.log"
  bench --dtypes bf16 --impls fast deploy torch --cuda-graph \
      | tee "$out/bf16_graph.log"
fi
# Layer by layer: which stage the gap comes from (graphs: GPU time only).
if wanted layers; then
  bench --scope layers --dtypes bf16 --impls fast deploy torch --cuda-graph \
      | tee "$out/layers_bf16_graph.log"
fi
# The inference kernels' launch settings, swept per layer shape.
if wanted tune; then
  timeout ${TUNE_TIMEOUT:-240} $py tools/analysis_tools/tune_kernels.py \
      --dtype bf16 2>&1 | tee "$out/tune_bf16.log"
fi
if wanted fp32; then
  bench --dtypes fp32 --impls fast deploy | tee "$out/fp32.log"
  bench --dtypes fp32 --impls fast deploy --cuda-graph \
      | tee "$out/fp32_graph.log"
fi
# Where the time goes.
if wanted profile; then
  run $py tools/analysis_tools/profile_trunk.py --impl deploy --mode infer \
      --channels-last --rows 30 > "$out/profile_deploy_infer.log"
  run $py tools/analysis_tools/profile_trunk.py --impl fast --mode train \
      --channels-last --rows 30 > "$out/profile_fast_train.log"
fi
# torch.compile of the whole model: the kernels (registered ops, which it
# keeps) against the reference compiled by inductor, side by side; last, it
# is slow.
if wanted compile; then
  timeout ${COMPILE_TIMEOUT:-240} $py tools/benchmark.py --device cuda \
      --channels-last on --warmup 5 --repeats 20 --out-dir "$out" \
      --dtypes bf16 --impls fast reference --compile 2>&1 \
      | grep -v '^STAGE\|^USDT' | tee "$out/bf16_compiled.log"
fi
cat "$out"/host.log "$out"/bf16_b1.log "$out"/bf16.log "$out"/bf16_graph.log "$out"/layers_bf16_graph.log \
    "$out"/fp32*.log "$out"/bf16_compiled.log 2>/dev/null | grep -h '^|'
