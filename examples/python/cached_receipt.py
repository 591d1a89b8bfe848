#!/usr/bin/env python3
"""Run a module twice with the result cache, then verify its receipt offline.

Usage::

    python examples/python/cached_receipt.py [STDIN-TEXT]

The first run executes ``examples/guests/echo.wasm`` and asks for a signed
receipt; the second, with the same inputs, is answered from the result cache
(the module does not run again) and carries the same receipt. The receipt is
then checked offline with the public key from ``server_info()`` (needs
``pip install 'wasmwiz[receipts]'``). The server comes from ``WASMWIZ_URL`` and
the key from ``WASMWIZ_API_KEY``.
"""

from __future__ import annotations

import sys
from pathlib import Path

import wasmwiz
from wasmwiz import receipt

ECHO = Path(__file__).resolve().parent.parent / "guests" / "echo.wasm"


def main(argv: list[str]) -> int:
    """Run, run again from the cache, verify; print what happened."""
    stdin = argv[1] if len(argv) > 1 else "cached hello\n"
    with wasmwiz.Client(timeout=60) as client:
        first = client.run(ECHO, stdin=stdin, cache="use", receipt=True)
        again = client.run(ECHO, stdin=stdin, cache="use", receipt=True)
        info = client.server_info()
    print(f"first run: cache hit {first.result_cache_hit}, fuel {first.fuel_consumed}")
    print(f"second run: cache hit {again.result_cache_hit}, from {again.cached_from}")
    if again.receipt is None:
        print("the server sent no receipt", file=sys.stderr)
        return 1
    verified = receipt.verify(again.receipt, info.key(again.receipt.key_id))
    verified.check_stdout(again.stdout)
    print(f"receipt verified: execution {verified.statement.execution_id}, key {verified.key_id}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
