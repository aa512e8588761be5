#!/usr/bin/env bash
# Set up everything mmdet-scconv needs in a virtual environment at ./.venv.
#
# Usage: bash tools/install.sh
#
# * torch: if .venv already has a torch (e.g. a CUDA build you installed
#   yourself), it is kept; otherwise the CPU build torch==2.13.0 is installed.
# * mmcv 2.1.0 has no wheel for recent torch, so it is built from source with
#   its ops, with MAX_JOBS parallel jobs (default: all cores). With a CPU
#   torch older than 2.14 pip builds it (about 6 minutes on 2 cores) and
#   caches the wheel. Otherwise it is built from its source with the C++
#   standard torch's headers need (C++20 from torch 2.14 on) and, with a
#   CUDA torch, with its CUDA ops: this needs the CUDA toolkit (nvcc) of
#   torch's CUDA major version, checked first, and builds the ops even where
#   no GPU is visible (a login node), for TORCH_CUDA_ARCH_LIST (default:
#   the GPUs of this node, or else the architectures torch was built for).
# * setuptools is pinned <81 because mmcv's setup.py and mmengine's config
#   scopes import pkg_resources.
# * triton (the [triton] extra) brings SCConv's GPU kernels; torch's CUDA
#   wheels ship it anyway, and on the CPU the tests run the kernels in
#   Triton's interpreter.
# * onnx, onnxscript, onnxruntime and openvino (the [export] extra) export
#   detectors to ONNX and OpenVINO's IR (tools/deployment/pytorch2onnx.py)
#   and run them on the CPU.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
PY=.venv/bin/python
PIP=("$PY" -m pip)
MMCV=mmcv==2.1.0

"${PIP[@]}" install --upgrade pip 'setuptools>=77,<81' wheel ninja
if "$PY" -c 'import torch' 2>/dev/null; then
  echo "[install] keeping the installed torch $("$PY" -c 'import torch; print(torch.__version__)')"
else
  "${PIP[@]}" install torch==2.13.0
fi
"${PIP[@]}" install 'numpy' 'mmengine==0.10.7' 'pycocotools'

# Prints "CUDA_HOME NVCC_VERSION" for torch's CUDA toolkit, after checking
# that it exists and matches torch's CUDA major version; exits 1 saying
# what to install otherwise.
check_cuda_toolkit() {
  "$PY" - <<'EOF'
import os.path as osp
import re
import subprocess
import sys

import torch
from torch.utils.cpp_extension import CUDA_HOME

wanted = torch.version.cuda
nvcc = osp.join(CUDA_HOME, 'bin', 'nvcc') if CUDA_HOME else None
headers = osp.join(CUDA_HOME or '', 'include', 'cuda_runtime.h')
if nvcc is None or not osp.isfile(nvcc) or not osp.isfile(headers):
    sys.exit(
        f'[install] torch {torch.__version__} is built for CUDA {wanted}, '
        f'and mmcv compiles its CUDA ops with the CUDA toolkit, which is '
        f'not here (CUDA_HOME={CUDA_HOME}: torch looks at CUDA_HOME, then '
        f'nvcc on PATH, then /usr/local/cuda, for bin/nvcc and '
        f'include/cuda_runtime.h). '
        f'Install the CUDA {wanted.split(".")[0]}.x toolkit (e.g. '
        f'"module load cuda/{wanted}" on a cluster, or conda install -c '
        f'nvidia cuda-toolkit={wanted}) and set CUDA_HOME to it, then run '
        f'this again; or keep a CPU torch.')
release = re.search(r'release (\d+\.\d+)',
                    subprocess.check_output([nvcc, '--version'], text=True))
found = release.group(1) if release else '?'
if found.split('.')[0] != wanted.split('.')[0]:
    sys.exit(
        f'[install] torch {torch.__version__} is built for CUDA {wanted}, '
        f'but the CUDA toolkit at {CUDA_HOME} is {found}: torch builds '
        f'extensions only with its own CUDA major version. Point CUDA_HOME '
        f'at a CUDA {wanted.split(".")[0]}.x toolkit, or install the torch '
        f'for CUDA {found}.')
print(CUDA_HOME, found)
EOF
}

# The header directories of the CUDA libraries that torch's wheel installs
# (site-packages/nvidia/*/include): torch's headers include some of them
# (cusparse.h ...), which a minimal CUDA toolkit lacks.
nvidia_wheel_includes() {
  "$PY" -c '
import glob, os.path as osp, sysconfig
root = osp.join(sysconfig.get_paths()["purelib"], "nvidia")
print(":".join(sorted(glob.glob(osp.join(root, "*", "include")))))'
}

# The CUDA architectures torch itself was built for, as TORCH_CUDA_ARCH_LIST
# wants them ("7.5;8.0;9.0+PTX").
torch_cuda_archs() {
  "$PY" -c '
import re, torch
flags = torch.cuda.get_arch_list() or torch._C._cuda_getArchFlags().split()
archs = [re.fullmatch(r"sm_(\d+)(\d)([a-z]?)", f) for f in flags]
print(";".join(f"{a[1]}.{a[2]}{a[3]}" for a in archs if a) + "+PTX")'
}

install_mmcv() {
  local cxx_std torch_cuda toolkit cuda_home nvcc_version includes src_dir
  cxx_std=$("$PY" -c 'import torch; v = tuple(int(p) for p in torch.__version__.split("+")[0].split(".")[:2]); print("c++20" if v >= (2, 14) else "c++17")')
  torch_cuda=$("$PY" -c 'import torch; print(torch.version.cuda or "")')
  export MMCV_WITH_OPS=1
  export MAX_JOBS=${MAX_JOBS:-$(nproc)}
  if [ -z "$torch_cuda" ] && [ "$cxx_std" = c++17 ]; then
    "${PIP[@]}" install --no-build-isolation "$MMCV"
    return
  fi
  if [ -n "$torch_cuda" ]; then
    toolkit=$(check_cuda_toolkit)
    read -r cuda_home nvcc_version <<< "$toolkit"
    echo "[install] building mmcv's CUDA ops with CUDA $nvcc_version at $cuda_home"
    export CUDA_HOME=$cuda_home FORCE_CUDA=1
    includes=$(nvidia_wheel_includes)
    if [ -n "$includes" ]; then
      export CPATH="$includes${CPATH:+:$CPATH}"
    fi
    if [ -z "${TORCH_CUDA_ARCH_LIST:-}" ] && ! "$PY" -c 'import torch, sys; sys.exit(not torch.cuda.is_available())'; then
      TORCH_CUDA_ARCH_LIST=$(torch_cuda_archs)
      export TORCH_CUDA_ARCH_LIST
      echo "[install] no GPU visible: CUDA ops for torch's architectures $TORCH_CUDA_ARCH_LIST (TORCH_CUDA_ARCH_LIST overrides)"
    fi
  fi
  # mmcv's setup.py fixes -std=c++17; torch's headers may need more. Built
  # from a local copy of its source: pip does not cache a wheel built for
  # one torch where another torch would find it.
  src_dir=$(mktemp -d)
  "${PIP[@]}" download --no-deps --no-build-isolation --no-binary mmcv "$MMCV" \
    -d "$src_dir"
  tar xzf "$src_dir"/mmcv-*.tar.gz -C "$src_dir"
  sed -i "s/-std=c++17/-std=$cxx_std/g" "$src_dir"/mmcv-*/setup.py
  echo "[install] building mmcv with -std=$cxx_std and $MAX_JOBS jobs"
  "${PIP[@]}" install --no-build-isolation "$src_dir"/mmcv-*/
  rm -rf "$src_dir"
}

if "$PY" -c 'import mmcv, mmcv.ops' 2>/dev/null; then
  echo "[install] keeping the installed mmcv $("$PY" -c 'import mmcv; print(mmcv.__version__)')"
else
  install_mmcv
fi
"${PIP[@]}" install 'mmdet==3.3.0'
"${PIP[@]}" install --no-build-isolation -e '.[tests,triton,export]'
echo "[install] done: activate with 'source .venv/bin/activate'"
