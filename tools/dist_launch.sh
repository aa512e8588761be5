#!/usr/bin/env bash
# Usage: bash tools/dist_launch.sh SCRIPT NPROC [SCRIPT arguments]
# Runs tools/SCRIPT under torchrun with --launcher pytorch. Multi-node: set
# NNODES, NODE_RANK (0 on the master), MASTER_ADDR and PORT on every node.
# PYTHON picks the interpreter (default: python on PATH).
SCRIPT=$1
NPROC=$2
NNODES=${NNODES:-1}
NODE_RANK=${NODE_RANK:-0}
PORT=${PORT:-29500}
MASTER_ADDR=${MASTER_ADDR:-"127.0.0.1"}

"${PYTHON:-python}" -m torch.distributed.run \
    --nnodes="$NNODES" \
    --node_rank="$NODE_RANK" \
    --master_addr="$MASTER_ADDR" \
    --nproc_per_node="$NPROC" \
    --master_port="$PORT" \
    "$(dirname "$0")/$SCRIPT" \
    "${@:3}" \
    --launcher pytorch
