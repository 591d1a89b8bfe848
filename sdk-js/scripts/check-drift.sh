#!/usr/bin/env bash
# Fails when the checked-in generated code (src/gen) or the built playground
# (../server/assets/playground) differ from what the sources produce now.
# Fix with `npm run generate` and/or `npm run build:playground`.
set -euo pipefail
cd "$(dirname "$0")/.."

tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
status=0

npx --no-install buf generate --output "$tmp"
if ! diff -ru src/gen "$tmp/src/gen"; then
  echo "check:drift: src/gen is stale: run \`npm run generate\` in sdk-js/ and commit the result" >&2
  status=1
fi

node scripts/build-playground.mjs "$tmp/playground" >/dev/null
if ! diff -rq ../server/assets/playground "$tmp/playground"; then
  echo "check:drift: server/assets/playground is stale: run \`npm run build:playground\` in sdk-js/ and commit the result" >&2
  status=1
fi

if [ "$status" -eq 0 ]; then
  echo "check:drift: src/gen and server/assets/playground are up to date"
fi
exit "$status"
