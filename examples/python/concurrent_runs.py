#!/usr/bin/env python3
"""Run many executions at once with the asyncio client.

Usage::

    python examples/python/concurrent_runs.py [COUNT]

Sends COUNT (default 20) different stdins through ``echo.wasm`` concurrently
and checks every answer. The module is uploaded once first, then run by its
sha256. The server comes from ``WASMWIZ_URL`` (default
``http://127.0.0.1:8080``) and the key from ``WASMWIZ_API_KEY``.
"""

from __future__ import annotations

import asyncio
import os
import sys
import time
from pathlib import Path

import wasmwiz

ECHO = Path(__file__).resolve().parent.parent / "guests" / "echo.wasm"


async def run_all(count: int) -> int:
    """Run ``count`` echo executions concurrently; return how many were right."""
    url = os.environ.get("WASMWIZ_URL", "http://127.0.0.1:8080")
    async with wasmwiz.AsyncClient(url, timeout=120, retry=True) as client:
        module = await client.upload(ECHO)
        inputs = [f"message {i}\n".encode() for i in range(count)]
        started = time.monotonic()
        results = await asyncio.gather(*(client.run(module, stdin=data) for data in inputs))
        elapsed = time.monotonic() - started
    correct = sum(result.stdout == data for result, data in zip(results, inputs))
    print(f"{correct}/{count} correct in {elapsed:.2f}s ({count / elapsed:.0f} runs/s)")
    return correct


def main(argv: list[str]) -> int:
    """Parse ``argv`` and run."""
    count = int(argv[1]) if len(argv) > 1 else 20
    try:
        correct = asyncio.run(run_all(count))
    except wasmwiz.WasmWizError as err:
        print(f"request failed: {err}", file=sys.stderr)
        return 2
    return 0 if correct == count else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
