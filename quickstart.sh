#!/usr/bin/env bash
# Main job: install the requirements into ./.venv (VENV=path for another place), then run the whole
# pipeline on packaged real data. Flags go to quickstart.py: --smoke, --full, --run_dir DIR, --overwrite.
set -euo pipefail
cd "$(dirname "$0")"
tools/setup_env.sh
exec "${VENV:-.venv}/bin/python" quickstart.py "$@"
