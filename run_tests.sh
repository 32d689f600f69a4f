#!/usr/bin/env bash
# Install everything the tests need into ./.venv, then run the whole test suite.
set -uo pipefail
cd "$(dirname "$0")"
tools/setup_env.sh --test || exit 1
"${VENV:-.venv}/bin/python" -m pytest -q tests "$@"
rc=$?
# pytest exits 5 when it collected no tests: that is a failure, not a pass.
[ $rc -eq 5 ] && echo "pytest collected no tests" >&2 && exit 1
exit $rc
