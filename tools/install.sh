#!/usr/bin/env bash
# Set up everything mmdet-scconv needs in a virtual environment at ./.venv.
#
# Usage: bash tools/install.sh
#
# * torch: if .venv already has a torch (e.g. a CUDA build you installed
#   yourself), it is kept; otherwise the CPU build torch==2.13.0 is installed.
# * mmcv 2.1.0 has no wheel for this torch, so it is built from source with its
#   ops (about 6 minutes on 2 cores; pip caches the wheel for later runs).
# * setuptools is pinned <81 because mmcv's setup.py and mmengine's config
#   scopes import pkg_resources.
# * triton (the [triton] extra) brings SCConv's GPU kernels; torch's CUDA
#   wheels ship it anyway, and on the CPU the tests run the kernels in
#   Triton's interpreter.
# * onnx, onnxscript and onnxruntime (the [export] extra) export detectors to
#   ONNX (tools/deployment/pytorch2onnx.py) and run them on the CPU.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
PIP=(.venv/bin/python -m pip)

"${PIP[@]}" install --upgrade pip 'setuptools>=77,<81' wheel ninja
if .venv/bin/python -c 'import torch' 2>/dev/null; then
  echo "[install] keeping the installed torch $(.venv/bin/python -c 'import torch; print(torch.__version__)')"
else
  "${PIP[@]}" install torch==2.13.0
fi
"${PIP[@]}" install 'numpy' 'mmengine==0.10.7' 'pycocotools'
if .venv/bin/python -c 'import mmcv, mmcv.ops' 2>/dev/null; then
  echo "[install] keeping the installed mmcv $(.venv/bin/python -c 'import mmcv; print(mmcv.__version__)')"
else
  MMCV_WITH_OPS=1 MAX_JOBS=${MAX_JOBS:-2} "${PIP[@]}" install --no-build-isolation 'mmcv==2.1.0'
fi
"${PIP[@]}" install 'mmdet==3.3.0'
"${PIP[@]}" install --no-build-isolation -e '.[tests,triton,export]'
echo "[install] done: activate with 'source .venv/bin/activate'"
