#!/usr/bin/env bash
# Checks Rust dependencies against the RustSec advisory database. Advisories
# we accept are listed in audit.toml with a written justification; any other
# advisory fails.
#
# Which database:
#   - $WASMWIZ_ADVISORY_DB when set (a snapshot directory; it must exist);
#   - else ../shared/advisory-db when it exists (CI's offline snapshot);
#   - else cargo-audit fetches the database itself, as it does by default.
# With CI=true a missing snapshot or a failed fetch fails the run. Outside
# CI, when no database can be had (no snapshot, no network), the audit is
# skipped with a loud notice and exit 0, so the test command still passes on
# a fresh clone. Advisories found always fail.
#
# npm and pip audits need their registries' advisory services (not a
# registry mirror), which CI cannot reach: they are not run here.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

in_ci() { [[ "${CI:-}" == "true" ]]; }

skip_loudly() {
  {
    echo "######################################################################"
    echo "## DEPENDENCY AUDIT DID NOT RUN: $1"
    echo "## Set WASMWIZ_ADVISORY_DB to a RustSec advisory-db snapshot, or allow"
    echo "## cargo-audit to fetch https://github.com/RustSec/advisory-db."
    echo "######################################################################"
  } >&2
  exit 0
}

DEFAULT_DB="$(pwd)/../shared/advisory-db"
DB=""
if [[ -n "${WASMWIZ_ADVISORY_DB:-}" ]]; then
  DB="$WASMWIZ_ADVISORY_DB"
  if [[ ! -d "$DB" ]]; then
    echo "advisory database not found at WASMWIZ_ADVISORY_DB=$DB" >&2
    exit 1
  fi
elif [[ -d "$DEFAULT_DB" ]]; then
  DB="$DEFAULT_DB"
elif in_ci; then
  echo "advisory database snapshot not found at $DEFAULT_DB (set WASMWIZ_ADVISORY_DB); CI=true needs it" >&2
  exit 1
fi

if ! command -v cargo-audit >/dev/null 2>&1; then
  echo "installing cargo-audit"
  if ! cargo install --locked cargo-audit >/dev/null; then
    in_ci && exit 1
    skip_loudly "cargo-audit is not installed and could not be installed"
  fi
fi

ignores=()
while IFS= read -r id; do
  ignores+=(--ignore "$id")
done < <(grep -oE '^id = "RUSTSEC-[0-9]+-[0-9]+"' audit.toml 2>/dev/null | cut -d'"' -f2)

if [[ -n "$DB" ]]; then
  exec cargo audit --no-fetch --db "$DB" --file Cargo.lock --deny warnings "${ignores[@]}"
fi

# No snapshot: cargo-audit fetches (or updates) its default database. It says
# "Loaded N security advisories" once it has one; a failure without that line
# means no database could be had, not that an advisory was found.
log="$(mktemp)"
trap 'rm -f "$log"' EXIT
status=0
cargo audit --file Cargo.lock --deny warnings "${ignores[@]}" 2>&1 | tee "$log" || status=$?
if [[ $status -ne 0 ]] && ! grep -q "Loaded [0-9]* security advisories" "$log"; then
  skip_loudly "no advisory snapshot, and cargo-audit could not fetch its database"
fi
exit "$status"
