#!/usr/bin/env bash
# Fails (exit 1) when checked-in generated code differs from what its
# generator writes right now:
#   - the sync client src/wasmwiz/client.py and tests/test_sync.py, written
#     from aio.py and tests/test_async.py by scripts/unasync.py;
#   - the stubs in src/wasmwiz/_gen, written by scripts/generate.sh from ../proto.
set -euo pipefail
SDK_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CHECKED_IN="$SDK_DIR/src/wasmwiz/_gen"

# shellcheck source=dev-venv.sh
source "$SDK_DIR/scripts/dev-venv.sh"
if [[ ! -x "$VENV/bin/ruff" ]]; then
  ensure_dev_venv >&2
fi
"$VENV/bin/python" "$SDK_DIR/scripts/unasync.py" --check

tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT

"$SDK_DIR/scripts/generate.sh" "$tmp/_gen" >/dev/null 2>"$tmp/gen.log" || {
  cat "$tmp/gen.log" >&2
  echo "check-drift.sh: stub generation failed" >&2
  exit 1
}

if ! diff -r -u -x '__pycache__' "$CHECKED_IN" "$tmp/_gen" >"$tmp/drift.diff"; then
  echo "check-drift.sh: DRIFT: the Python stubs in sdk-python/src/wasmwiz/_gen do not match proto/." >&2
  echo "check-drift.sh: run sdk-python/scripts/generate.sh and commit the result. Differences:" >&2
  head -n 80 "$tmp/drift.diff" >&2
  exit 1
fi
echo "check-drift.sh: Python stubs match proto/ ($(find "$CHECKED_IN" -type f -not -path '*/__pycache__/*' | wc -l) files)"
