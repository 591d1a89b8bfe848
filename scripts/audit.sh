#!/usr/bin/env bash
# Checks Rust dependencies against the RustSec advisory snapshot in
# ../shared/advisory-db, offline. Advisories we accept are listed in
# audit.toml with a written justification; any other advisory fails.
# npm and pip audits need their registries' advisory services (not a
# registry mirror), which CI cannot reach: they are not run here.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
DB="${WASMWIZ_ADVISORY_DB:-$(pwd)/../shared/advisory-db}"
if [[ ! -d "$DB" ]]; then
  echo "advisory database not found at $DB (set WASMWIZ_ADVISORY_DB)" >&2
  exit 1
fi
if ! command -v cargo-audit >/dev/null 2>&1; then
  echo "installing cargo-audit"
  cargo install --locked cargo-audit >/dev/null
fi
ignores=()
while IFS= read -r id; do
  ignores+=(--ignore "$id")
done < <(grep -oE '^id = "RUSTSEC-[0-9]+-[0-9]+"' audit.toml 2>/dev/null | cut -d'"' -f2)
cargo audit --no-fetch --db "$DB" --file Cargo.lock --deny warnings "${ignores[@]}"
