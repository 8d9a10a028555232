#!/usr/bin/env bash
# Train DLA60 with the high-accuracy recipe (configs/DLA/DLA60_best.yaml: label smoothing 0.1,
# 5-epoch warmup + cosine, global batch 512) on 4 GPUs; logs go to ./log/workerlog.N.
#
#   DATA_DIR=/path/to/ILSVRC2012 bash run_train_dla60_best.sh [-o key=value ...]
#
# DATA_DIR (default ./dataset/ILSVRC2012/) must hold train_list.txt and val_list.txt, whose
# image paths are relative to it. Extra arguments are passed on to tools/train.py.
# Environment: PYTHON (default python), GPUS (default 0,1,2,3).
set -euo pipefail

# A relative DATA_DIR given by the caller is relative to the caller's directory.
if [ -n "${DATA_DIR:-}" ] && [ "${DATA_DIR#/}" = "$DATA_DIR" ]; then
    DATA_DIR="$PWD/$DATA_DIR"
fi
cd "$(dirname "$0")"

PYTHON="${PYTHON:-python}"
GPUS="${GPUS:-0,1,2,3}"
DATA_DIR="${DATA_DIR:-./dataset/ILSVRC2012/}"
DATA_DIR="${DATA_DIR%/}/"
if [ "${DATA_DIR#/}" = "$DATA_DIR" ]; then
    DATA_DIR="$PWD/${DATA_DIR#./}"       # the default, relative to this directory
fi

for path in "$DATA_DIR" "${DATA_DIR}train_list.txt" "${DATA_DIR}val_list.txt"; do
    if [ ! -e "$path" ]; then
        echo "error: ImageNet data not found: '$path' does not exist." >&2
        echo "Set DATA_DIR to the ILSVRC2012 root that holds train_list.txt and val_list.txt," >&2
        echo "e.g.  DATA_DIR=/data/ILSVRC2012 bash $0" >&2
        exit 1
    fi
done

# Paddle's launcher warns at import about a C++ build cache it never uses (README "Quiet logs")
export PYTHONWARNINGS="ignore:No ccache found${PYTHONWARNINGS:+,$PYTHONWARNINGS}"
exec "$PYTHON" -m paddle.distributed.launch --gpus="$GPUS" --log_dir ./log tools/train.py \
    -c ./configs/DLA/DLA60_best.yaml \
    -o TRAIN.data_dir="$DATA_DIR" \
    -o TRAIN.file_list="${DATA_DIR}train_list.txt" \
    -o VALID.data_dir="$DATA_DIR" \
    -o VALID.file_list="${DATA_DIR}val_list.txt" \
    "$@"
