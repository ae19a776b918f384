#!/usr/bin/env bash
# Train a config on GPUS processes of this node, or of NNODES nodes (run it on
# every node with its NODE_RANK and the same MASTER_ADDR / PORT), with
# MMEngine's pytorch launcher (MMDetection's tools/dist_train.sh):
#   bash tools/dist_train.sh configs/mmcast/distill_cityscapes.py 8 [--resume ...]
#   NNODES=2 NODE_RANK=0 MASTER_ADDR=10.0.0.1 bash tools/dist_train.sh CONFIG 8
# On a machine without a GPU set MMCAST_CPU_DIST=1 (gloo).

CONFIG=$1
GPUS=$2
NNODES=${NNODES:-1}
NODE_RANK=${NODE_RANK:-0}
PORT=${PORT:-29500}
MASTER_ADDR=${MASTER_ADDR:-"127.0.0.1"}

PYTHONPATH="$(dirname $0)/..":$PYTHONPATH \
python -m torch.distributed.run \
    --nnodes=$NNODES \
    --node_rank=$NODE_RANK \
    --master_addr=$MASTER_ADDR \
    --nproc_per_node=$GPUS \
    --master_port=$PORT \
    $(dirname "$0")/train.py \
    $CONFIG \
    --launcher pytorch ${@:3}
