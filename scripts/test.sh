#!/usr/bin/env bash
# Runs the whole test suite: unit tests, store conformance on both backends, handler tests,
# runtime tests (as root), and the end-to-end suites with the skiff CLI, kubectl and the
# official Python client. Installs what it needs first.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/deps.sh
# The official Python client, in a virtualenv of its own.
if [ ! -x .venv/bin/python ] || ! .venv/bin/python -c 'import kubernetes' 2>/dev/null; then
  python3 -m venv .venv
  .venv/bin/pip install -q 'kubernetes>=31'
fi
export SKIFF_PYTHON="$PWD/.venv/bin/python"
# One build of the workspace (the e2e suites run the skiff binary it makes).
cargo build --workspace --all-targets
cargo nextest run --workspace --no-fail-fast "$@"
