#!/usr/bin/env bash
# Usage: bash tools/slurm_test.sh PARTITION JOB_NAME CONFIG CHECKPOINT [test.py options]
# GPUS, GPUS_PER_NODE, CPUS_PER_TASK, SRUN_ARGS, DRY_RUN: see slurm_launch.sh.
if [ $# -lt 4 ]; then
    echo "Usage: bash $0 PARTITION JOB_NAME CONFIG CHECKPOINT [test.py options]" >&2
    exit 2
fi
exec bash "$(dirname "$0")/slurm_launch.sh" test.py "$1" "$2" "$3" "$4" \
    "${@:5}"
