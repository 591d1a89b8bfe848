#!/usr/bin/env bash
# Runs every test of the repository: lint (Rust fmt and clippy, dependency
# advisories, deployment files, alert rules with promtool, drift of every generated file: Python stubs
# and sync client, JS stubs, the built playground), Rust (unit + integration
# tests on SQLite and, when reachable, PostgreSQL and Redis), then the Python
# and JS SDKs (lint, tests against the real server binary, browser end-to-end
# tests in headless Chromium).
#
#   scripts/test.sh [lint|rust|python|js]...   (default: all of them)
#
# Installs what it needs: system packages via scripts/install-deps.sh (when
# root), a Python venv, npm packages. Every part runs; the exit code is
# non-zero when any failed, and a summary line closes the run.
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
REPO="$(pwd)"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$REPO/target}"
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"
export WASMWIZ_SERVER_BIN="${WASMWIZ_SERVER_BIN:-$CARGO_TARGET_DIR/debug/wasmwiz-server}"

parts=("$@")
[[ ${#parts[@]} -eq 0 ]] && parts=(lint rust python js)

passed=0
failed=0
failures=()
step() {
  local name="$1"
  shift
  echo
  echo "=============== $name"
  if "$@"; then
    passed=$((passed + 1))
  else
    failed=$((failed + 1))
    failures+=("$name")
    echo "!!!!!!!!!!!!!!! $name FAILED"
  fi
}

# promtool checks the alert rules and runs their unit tests; without it the
# step fails under CI=true; elsewhere it says so and passes.
alert_rules() {
  if ! command -v promtool >/dev/null 2>&1; then
    echo "promtool not found (Debian package prometheus; scripts/install-deps.sh installs it)"
    [[ "${CI:-}" != "true" ]]
    return
  fi
  promtool check rules deploy/prometheus/rules.yml &&
    promtool test rules deploy/prometheus/rules.test.yml
}

# The JS drift check runs the pinned generators from node_modules.
js_drift() {
  (cd sdk-js && npm ci --no-audit --no-fund >/dev/null && npm run -s check:drift)
}

./scripts/install-deps.sh || echo "warning: could not install system packages (not root?)"

for part in "${parts[@]}"; do
  case "$part" in
    lint)
      step "cargo fmt" cargo fmt --all -- --check
      step "cargo clippy" cargo clippy --workspace --all-targets --locked -- -D warnings
      step "dependency advisories" ./scripts/audit.sh
      step "deployment files" python3 scripts/check-deploy.py
      step "alert rules (promtool)" alert_rules
      step "python generated code (stubs, sync client)" ./sdk-python/scripts/check-drift.sh
      step "js generated code and built playground" js_drift
      ;;
    rust)
      step "cargo test" cargo test --workspace --locked
      ;;
    python)
      step "server binary" cargo build -p wasmwiz-server --locked
      step "python sdk" ./sdk-python/scripts/test.sh
      ;;
    js)
      step "server binary" cargo build -p wasmwiz-server --locked
      step "js sdk and playground" ./sdk-js/scripts/test.sh
      ;;
    *)
      echo "unknown part: $part (use lint, rust, python, js)"
      failed=$((failed + 1))
      failures+=("$part")
      ;;
  esac
done

echo
echo "=============== summary"
if [[ $failed -gt 0 ]]; then
  echo "failed parts: ${failures[*]}"
fi
echo "parts: $passed passed, $failed failed"
[[ $failed -eq 0 ]]
