#!/usr/bin/env python3
"""Run one WebAssembly module on WasmWiz and print what it wrote.

Usage::

    python examples/python/run_module.py [MODULE] [ARG ...] [< stdin]

MODULE is a ``.wasm`` path or the sha256 of a module stored before (default:
``examples/guests/hello.wasm``); the ARGs become the guest's argv[1..], and
stdin is streamed to the guest when it is not a terminal. The server comes from
``WASMWIZ_URL`` (default ``http://127.0.0.1:8080``) and the key from
``WASMWIZ_API_KEY``. Exits with the guest's exit code (1 when it did not exit,
2 when the server refused the request).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import wasmwiz

DEFAULT_MODULE = Path(__file__).resolve().parent.parent / "guests" / "hello.wasm"


def main(argv: list[str]) -> int:
    """Run the module named in ``argv`` and report the result."""
    module = argv[1] if len(argv) > 1 else str(DEFAULT_MODULE)
    # A file object as stdin is fed to the guest while it runs (the Execute RPC).
    stdin: wasmwiz.StdinLike = b"" if sys.stdin is None or sys.stdin.isatty() else sys.stdin.buffer
    url = os.environ.get("WASMWIZ_URL", "http://127.0.0.1:8080")
    try:
        # retry=True waits out rate limits (honouring the server's retry-after).
        with wasmwiz.Client(url, timeout=60, retry=True) as client:
            result = client.run(
                module,
                stdin=stdin,
                args=argv[2:],
                limits=wasmwiz.Limits(memory="64MiB", timeout=5),
            )
    except wasmwiz.InvalidModule as err:
        print(f"the server refused the module: {err}", file=sys.stderr)
        for violation in err.violations:
            print(f"  {violation.field}: {violation.description}", file=sys.stderr)
        return 2
    except wasmwiz.WasmWizError as err:
        print(f"request failed: {err}", file=sys.stderr)
        return 2

    sys.stdout.buffer.write(result.stdout)
    sys.stdout.flush()
    sys.stderr.buffer.write(result.stderr)
    detail = f" ({result.trap_kind})" if result.trap_kind else ""
    print(
        f"[{result.outcome.name}{detail}] exit={result.exit_code} "
        f"fuel={result.fuel_consumed} time={result.duration * 1000:.1f}ms "
        f"memory={result.memory_peak // 1024}KiB execution={result.execution_id}",
        file=sys.stderr,
    )
    return result.exit_code if result.exit_code >= 0 else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
