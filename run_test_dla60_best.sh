#!/usr/bin/env bash
# Evaluate the DLA60 trained by run_train_dla60_best.sh (output/DLA60/best_model/ppcls.pdparams)
# on the ImageNet validation set (resize 256, center crop 224), on one device.
#
#   DATA_DIR=/path/to/ILSVRC2012 bash run_test_dla60_best.sh [-o key=value ...]
#
# DATA_DIR (default ./dataset/ILSVRC2012/) must hold val_list.txt, whose image paths are
# relative to it. Extra arguments are passed on to tools/eval.py.
# Environment: PYTHON (default python), CUDA_VISIBLE_DEVICES (default 0).
set -euo pipefail

# A relative DATA_DIR given by the caller is relative to the caller's directory.
if [ -n "${DATA_DIR:-}" ] && [ "${DATA_DIR#/}" = "$DATA_DIR" ]; then
    DATA_DIR="$PWD/$DATA_DIR"
fi
cd "$(dirname "$0")"

PYTHON="${PYTHON:-python}"
export CUDA_VISIBLE_DEVICES="${CUDA_VISIBLE_DEVICES:-0}"
DATA_DIR="${DATA_DIR:-./dataset/ILSVRC2012/}"
DATA_DIR="${DATA_DIR%/}/"
if [ "${DATA_DIR#/}" = "$DATA_DIR" ]; then
    DATA_DIR="$PWD/${DATA_DIR#./}"       # the default, relative to this directory
fi
WEIGHTS=output/DLA60/best_model/ppcls

for path in "$DATA_DIR" "${DATA_DIR}val_list.txt"; do
    if [ ! -e "$path" ]; then
        echo "error: ImageNet data not found: '$path' does not exist." >&2
        echo "Set DATA_DIR to the ILSVRC2012 root that holds val_list.txt," >&2
        echo "e.g.  DATA_DIR=/data/ILSVRC2012 bash $0" >&2
        exit 1
    fi
done
if [ ! -f "$WEIGHTS.pdparams" ]; then
    echo "error: trained weights not found: '$PWD/$WEIGHTS.pdparams' does not exist." >&2
    echo "Train first with run_train_dla60_best.sh (it saves the best epoch there), or put" >&2
    echo "the DLA60 weights at that path." >&2
    exit 1
fi

exec "$PYTHON" tools/eval.py \
    -c ./configs/DLA/DLA60_best.yaml \
    -o pretrained_model="$WEIGHTS" \
    -o load_static_weights=False \
    -o VALID.data_dir="$DATA_DIR" \
    -o VALID.file_list="${DATA_DIR}val_list.txt" \
    "$@"
