#!/usr/bin/env bash
# The GPU check in one command (tools/gpu_check.py --help): on a CUDA machine, under 8 minutes, a report in
# runs/gpu_check/gpu_check_report.md; without CUDA one line and exit 0. Uses $VENV (default ./.venv) when it exists.
set -euo pipefail
cd "$(dirname "$0")/.."
python=${VENV:-.venv}/bin/python
[ -x "$python" ] || python=python3
exec "$python" tools/gpu_check.py "$@"
