#!/usr/bin/env bash
# Runs the whole test suite from .venv. Kept as a script so `make test` stays one line.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=.venv/bin/python
mkdir -p .artifacts
exec "$PY" -m pytest -n 2 --dist loadgroup -q "$@"
