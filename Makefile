# The two commands of README.md, plus helpers.
.PHONY: run test test-rust test-python test-js lint regenerate bench

# Run the server with its embedded defaults (SQLite in ./wasmwiz-data).
run:
	cargo run --release -p wasmwiz-server -- serve

# Every test of the repository (installs what it needs).
test:
	./scripts/test.sh

test-rust:
	./scripts/test.sh rust

test-python:
	./scripts/test.sh python

test-js:
	./scripts/test.sh js

lint:
	./scripts/test.sh lint

# Regenerate every SDK's generated code from proto/.
regenerate:
	./scripts/regenerate.sh

bench:
	cargo bench -p wasmwiz-server
