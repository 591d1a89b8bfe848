#!/usr/bin/env python3
"""Stream a module's output while it runs, with the sync or the asyncio client.

Usage::

    python examples/python/stream_output.py [--async] [MODULE] [ARG ...]

Default: ``examples/guests/progress.wasm 5``, which prints ``tick N`` lines
with CPU work in between, so you can watch them arrive one by one. The
server comes from ``WASMWIZ_URL`` (default ``http://127.0.0.1:8080``) and the
key from ``WASMWIZ_API_KEY``.
"""

from __future__ import annotations

import asyncio
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import wasmwiz

GUESTS = Path(__file__).resolve().parent.parent / "guests"
URL = os.environ.get("WASMWIZ_URL", "http://127.0.0.1:8080")


def show(event: wasmwiz.Event, started_at: float) -> None:
    """Print one event: output as it is, the rest as a note on stderr."""
    elapsed = time.monotonic() - started_at
    if isinstance(event, wasmwiz.Started):
        note = f"started execution {event.execution_id} (cache hit: {event.cache_hit})"
        print(f"[{elapsed:6.3f}s] {note}", file=sys.stderr)
    elif isinstance(event, wasmwiz.Stdout):
        print(f"[{elapsed:6.3f}s] stdout: {event.data.decode(errors='replace')}", end="")
        sys.stdout.flush()
    elif isinstance(event, wasmwiz.Stderr):
        print(f"[{elapsed:6.3f}s] stderr: {event.data.decode(errors='replace')}", end="")
    elif isinstance(event, wasmwiz.Finished):
        print(
            f"[{elapsed:6.3f}s] finished: {event.outcome.name}, exit {event.exit_code}, "
            f"fuel {event.fuel_consumed}",
            file=sys.stderr,
        )


def stream_sync(module: str, args: Sequence[str]) -> wasmwiz.Result:
    """Stream with the blocking client."""
    started_at = time.monotonic()
    with wasmwiz.Client(URL) as client, client.stream(module, args=args) as events:
        for event in events:
            show(event, started_at)
        return events.result()


async def stream_async(module: str, args: Sequence[str]) -> wasmwiz.Result:
    """Stream with the asyncio client."""
    started_at = time.monotonic()
    async with wasmwiz.AsyncClient(URL) as client, client.stream(module, args=args) as events:
        async for event in events:
            show(event, started_at)
        return await events.result()


def main(argv: list[str]) -> int:
    """Parse ``argv``, stream the run, exit like the guest."""
    use_async = "--async" in argv[1:]
    rest = [arg for arg in argv[1:] if arg != "--async"]
    module = rest[0] if rest else str(GUESTS / "progress.wasm")
    args = rest[1:] if rest else ["5"]
    try:
        result = asyncio.run(stream_async(module, args)) if use_async else stream_sync(module, args)
    except wasmwiz.WasmWizError as err:
        print(f"request failed: {err}", file=sys.stderr)
        return 2
    return 0 if result.ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
