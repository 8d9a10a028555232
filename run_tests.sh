#!/usr/bin/env bash
# Set up (virtual env + requirements) and run the test suite: bash run_tests.sh [pytest args]
set -euo pipefail
cd "$(dirname "$0")"
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
.venv/bin/python -m pip install -q --upgrade pip >/dev/null
.venv/bin/python -m pip install -q -r requirements.txt
exec .venv/bin/python -m pytest -q "$@" tests
