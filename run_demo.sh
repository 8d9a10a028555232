#!/usr/bin/env bash
# The quick-start demo, end to end on CPU: set up, write the digits dataset, train DLA46_c with
# two CPU processes (paddle.distributed.launch), then evaluate the best model.
#   bash run_demo.sh            (logs in ./log/workerlog.N, weights in ./output/DLA46_c/)
set -euo pipefail
cd "$(dirname "$0")"
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
.venv/bin/python -m pip install -q --upgrade pip >/dev/null
.venv/bin/python -m pip install -q -r requirements.txt
CFG=configs/quick_start/DLA46_c_digits.yaml
.venv/bin/python tools/prepare_demo_data.py --out dataset/digits
# Paddle's launcher warns at import about a C++ build cache it never uses (README "Quiet logs")
export PYTHONWARNINGS="ignore:No ccache found${PYTHONWARNINGS:+,$PYTHONWARNINGS}"
.venv/bin/python -m paddle.distributed.launch --nproc_per_node 2 --log_dir log \
    tools/train.py -c "$CFG" "$@"
.venv/bin/python tools/eval.py -c "$CFG" -o pretrained_model=output/DLA46_c/best_model/ppcls
