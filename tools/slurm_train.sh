#!/usr/bin/env bash
# Usage: bash tools/slurm_train.sh PARTITION JOB_NAME CONFIG WORK_DIR [train.py options]
# e.g. GPUS=16 bash tools/slurm_train.sh dev scconv_r50 \
#          configs/retinanet_scconv_r50_coco.py work_dirs/scconv_r50
# GPUS, GPUS_PER_NODE, CPUS_PER_TASK, SRUN_ARGS, DRY_RUN: see slurm_launch.sh.
if [ $# -lt 4 ]; then
    echo "Usage: bash $0 PARTITION JOB_NAME CONFIG WORK_DIR [train.py options]" >&2
    exit 2
fi
exec bash "$(dirname "$0")/slurm_launch.sh" train.py "$1" "$2" "$3" \
    --work-dir "$4" "${@:5}"
