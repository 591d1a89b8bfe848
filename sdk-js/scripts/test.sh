#!/usr/bin/env bash
# The one entry point CI calls for the JS SDK and the playground:
#   npm ci → drift check (generated code, built playground) → strict type
#   checks → build → SDK tests on Node over gRPC and gRPC-web against a real
#   server → end-to-end tests in headless Chromium.
# Needs: the server binary (WASMWIZ_SERVER_BIN, else $CARGO_TARGET_DIR/debug/
# wasmwiz-server, else <repo>/target/debug/wasmwiz-server), Chromium
# (CHROMIUM_PATH, else /usr/bin/chromium; `apt-get install chromium`), Node 20+.
# Exits non-zero on any failure; ends with the line "N passed, N failed".
set -uo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n==> %s\n' "$*"; }
die() { printf 'sdk-js/scripts/test.sh: %s\n' "$*" >&2; exit 1; }

repo="$(cd .. && pwd)"
if [ -n "${WASMWIZ_SERVER_BIN:-}" ]; then bin="$WASMWIZ_SERVER_BIN"
elif [ -n "${CARGO_TARGET_DIR:-}" ]; then bin="$CARGO_TARGET_DIR/debug/wasmwiz-server"
else bin="$repo/target/debug/wasmwiz-server"; fi
chromium="${CHROMIUM_PATH:-/usr/bin/chromium}"

step "npm ci"
npm ci --no-audit --no-fund || die "npm ci failed"

step "check:drift"
npm run -s check:drift || die "generated code or built playground out of date"

step "type checks (strict)"
npx --no-install tsc -p tsconfig.json --noEmit || die "tsc (src) failed"
npx --no-install tsc -p tsconfig.test.json --noEmit || die "tsc (tests) failed"
npx --no-install tsc -p playground/tsconfig.json --noEmit || die "tsc (playground) failed"

step "build"
npm run -s build || die "build failed"

npm run -s build:test || die "building tests failed"

[ -x "$bin" ] || die "server binary not found at $bin (build it: cargo build -p wasmwiz-server)"
[ -x "$chromium" ] || die "chromium not found at $chromium (apt-get install chromium)"
export WASMWIZ_SERVER_BIN="$bin" CHROMIUM_PATH="$chromium"

results="$(mktemp -d)"
trap 'rm -rf "$results"' EXIT
failed_suites=0

step "SDK tests (Node; gRPC and gRPC-web against a real server)"
node --test --test-reporter=spec --test-reporter-destination=stdout \
  --test-reporter=tap --test-reporter-destination="$results/sdk.tap" \
  build/test/*.test.js || failed_suites=$((failed_suites + 1))

step "end-to-end tests (headless Chromium)"
node --test --test-reporter=spec --test-reporter-destination=stdout \
  --test-reporter=tap --test-reporter-destination="$results/e2e.tap" \
  build/test/e2e/*.test.js || failed_suites=$((failed_suites + 1))

count() { cat "$results"/*.tap 2>/dev/null | awk -v k="# $1" '$1" "$2 == k { n += $3 } END { print n + 0 }'; }
pass="$(count pass)"
fail="$(count fail)"
cancelled="$(count cancelled)"
fail=$((fail + cancelled))
skipped="$(count skipped)"
echo
echo "sdk-js: $pass passed, $fail failed, $skipped skipped"
echo "$pass passed, $fail failed"
if [ "$failed_suites" -ne 0 ] || [ "$fail" -ne 0 ]; then exit 1; fi
