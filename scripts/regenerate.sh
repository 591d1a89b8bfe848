#!/usr/bin/env bash
# Regenerates every SDK's generated code from proto/ (the Rust code is
# generated at build time and needs nothing here). CI fails on drift:
# sdk-python/scripts/check-drift.sh and `npm run check:drift` in sdk-js.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
./sdk-python/scripts/generate.sh
(cd sdk-js && npm ci --no-audit --no-fund && npm run generate && npm run build:playground)
