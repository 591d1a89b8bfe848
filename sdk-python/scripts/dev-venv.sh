# Sourced by test.sh and check-drift.sh: the SDK's dev venv.
#
# VENV is sdk-python/.venv (override: WASMWIZ_PY_VENV; the interpreter:
# PYTHON, default python3). ensure_dev_venv creates it on first use and
# installs the SDK editable with its pinned dev extras (ruff, mypy, pytest).
SDK_DIR="${SDK_DIR:-$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)}"
VENV="${WASMWIZ_PY_VENV:-$SDK_DIR/.venv}"
PYTHON="${PYTHON:-python3}"

ensure_dev_venv() {
  if [[ ! -x "$VENV/bin/python" ]]; then
    echo "== creating $VENV"
    "$PYTHON" -m venv "$VENV" || return 1
  fi
  echo "== installing wasmwiz[dev] (editable)"
  "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check -e "$SDK_DIR[dev]"
}
