#!/usr/bin/env bash
# The Python SDK's one CI entry point: drift of generated code (stubs, the
# sync client), lint, format, types, tests.
#
#   sdk-python/scripts/test.sh [pytest args...]
#
# Creates sdk-python/.venv on first use (override: WASMWIZ_PY_VENV; the
# interpreter: PYTHON, default python3) and installs the SDK editable with its
# dev extras. The tests start the real server binary, which must already be
# built: $WASMWIZ_SERVER_BIN, else $CARGO_TARGET_DIR/debug/wasmwiz-server, else
# <repo>/target/debug/wasmwiz-server. Every step runs; the exit code is
# non-zero when any failed.
set -uo pipefail

SDK_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
REPO_DIR="$(cd "$SDK_DIR/.." && pwd)"
# shellcheck source=dev-venv.sh
source "$SDK_DIR/scripts/dev-venv.sh"
cd "$SDK_DIR"
ensure_dev_venv || exit 1

failed=()
step() {
  local name="$1"
  shift
  echo "== $name"
  if ! "$@"; then
    echo "!! $name FAILED"
    failed+=("$name")
  fi
}

step "generated code drift (stubs, sync client and tests)" "$SDK_DIR/scripts/check-drift.sh"
step "ruff check" "$VENV/bin/ruff" check src tests scripts "$REPO_DIR/examples/python"
step "ruff format" "$VENV/bin/ruff" format --check src tests scripts "$REPO_DIR/examples/python"
step "mypy --strict (package)" "$VENV/bin/mypy" --strict
step "mypy --strict (examples)" "$VENV/bin/mypy" --strict "$REPO_DIR/examples/python"
step "pytest" "$VENV/bin/python" -m pytest -p no:cacheprovider "$@"

if ((${#failed[@]})); then
  echo "sdk-python: FAILED: ${failed[*]}"
  exit 1
fi
echo "sdk-python: all checks passed"
