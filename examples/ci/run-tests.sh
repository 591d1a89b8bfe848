#!/usr/bin/env bash
# Gate a CI build on a WebAssembly module's test cases, with the `wasmwiz` CLI.
#
#   examples/ci/run-tests.sh [MODULE.wasm [CASES.json]]
#
# Needs `wasmwiz` on PATH (`cargo install --path sdk-rust`) and:
#   WASMWIZ_URL       the server (default http://127.0.0.1:8080)
#   WASMWIZ_API_KEY   an API key (keep it in your CI's secrets)
# Optional:
#   WASMWIZ_MODULE    the module (default examples/guests/fib.wasm)
#   WASMWIZ_CASES     the cases file (default examples/ci/fib-cases.json)
#   WASMWIZ_JUNIT     where to write the JUnit XML report (default wasmwiz-junit.xml)
#
# Exits 0 when every case passed, 107 when one failed, and with the CLI's
# other codes when the tests could not run (108 key, 109 rate limit,
# 110 usage or invalid module, 111 server unreachable): see `wasmwiz --help`.
set -euo pipefail

module="${1:-${WASMWIZ_MODULE:-examples/guests/fib.wasm}}"
cases="${2:-${WASMWIZ_CASES:-examples/ci/fib-cases.json}}"
junit="${WASMWIZ_JUNIT:-wasmwiz-junit.xml}"

if ! command -v wasmwiz >/dev/null 2>&1; then
    echo "run-tests.sh: wasmwiz is not installed; run: cargo install --path sdk-rust" >&2
    exit 127
fi
if [ -z "${WASMWIZ_API_KEY:-}" ]; then
    echo "run-tests.sh: set WASMWIZ_API_KEY (from your CI's secrets)" >&2
    exit 108
fi

# Fail fast, in words, on a wrong URL or key (this uses no executions).
wasmwiz whoami

# One RunBatch call: the module is compiled once and every case runs on the
# server. --retry waits out rate limits instead of failing the build.
status=0
wasmwiz --retry batch "$cases" --module "$module" --junit "$junit" || status=$?

case "$status" in
    0) echo "run-tests.sh: every test case passed (report: $junit)" >&2 ;;
    102) echo "run-tests.sh: the batch timed out; cases left are errors in $junit" >&2 ;;
    107) echo "run-tests.sh: test cases failed (report: $junit)" >&2 ;;
    108) echo "run-tests.sh: the server refused WASMWIZ_API_KEY" >&2 ;;
    109) echo "run-tests.sh: rate limited; try again later or use a higher tier" >&2 ;;
    110) echo "run-tests.sh: bad module or cases file" >&2 ;;
    111) echo "run-tests.sh: cannot reach ${WASMWIZ_URL:-http://127.0.0.1:8080}" >&2 ;;
    *) echo "run-tests.sh: wasmwiz exited with $status" >&2 ;;
esac
exit "$status"
