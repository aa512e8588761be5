#!/usr/bin/env bash
# The style checks (settings in setup.cfg, as mmdet's): flake8, isort, yapf.
# Fix what they report with: .venv/bin/isort . && .venv/bin/yapf -ir $PATHS
set -euo pipefail
cd "$(dirname "$0")/.."
PATHS=(mmdet_scconv tools tests configs setup.py)
.venv/bin/flake8 "${PATHS[@]}"
.venv/bin/isort --check-only --diff "${PATHS[@]}"
.venv/bin/yapf --diff --recursive "${PATHS[@]}"
echo "[lint] clean"
