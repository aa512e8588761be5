#!/usr/bin/env bash
# Usage: bash tools/slurm_launch.sh SCRIPT PARTITION JOB_NAME [SCRIPT arguments]
# Runs tools/SCRIPT on a Slurm partition with srun, one task per GPU, and
# --launcher slurm (mmdet's slurm_train.sh / slurm_test.sh). Settings:
#   GPUS (8)           tasks in all, one per GPU
#   GPUS_PER_NODE      GPUs (and tasks) per node (GPUS, at most 8)
#   CPUS_PER_TASK (5)  CPU cores per task (data loading workers)
#   SRUN_ARGS ('')     more srun options, e.g. "--quotatype=auto"
#   PYTHON (python)    the interpreter on the nodes
#   DRY_RUN=1          print the srun command line instead of running it
set -euo pipefail
if [ $# -lt 3 ]; then
    echo "Usage: bash $0 SCRIPT PARTITION JOB_NAME [SCRIPT arguments]" >&2
    exit 2
fi
SCRIPT=$1
PARTITION=$2
JOB_NAME=$3
GPUS=${GPUS:-8}
GPUS_PER_NODE=${GPUS_PER_NODE:-$((GPUS < 8 ? GPUS : 8))}
CPUS_PER_TASK=${CPUS_PER_TASK:-5}
read -r -a EXTRA_SRUN_ARGS <<< "${SRUN_ARGS:-}"

COMMAND=(
    srun -p "$PARTITION"
    --job-name="$JOB_NAME"
    --gres=gpu:"$GPUS_PER_NODE"
    --ntasks="$GPUS"
    --ntasks-per-node="$GPUS_PER_NODE"
    --cpus-per-task="$CPUS_PER_TASK"
    --kill-on-bad-exit=1
    "${EXTRA_SRUN_ARGS[@]}"
    "${PYTHON:-python}" -u "$(dirname "$0")/$SCRIPT" "${@:4}" --launcher slurm
)
if [ "${DRY_RUN:-0}" = 1 ]; then
    printf '%q ' "${COMMAND[@]}"
    echo
else
    exec "${COMMAND[@]}"
fi
