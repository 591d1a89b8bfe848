"""Many runs at once: asyncio tasks on one AsyncClient, threads on one Client.

Not generated: concurrency is where the two clients differ by design.
"""

from __future__ import annotations

import asyncio
import uuid
from concurrent.futures import ThreadPoolExecutor

from conftest import Server, guest


def _inputs() -> list[bytes]:
    return [f"job {i}: {uuid.uuid4().hex}\n".encode() for i in range(50)]


async def test_fifty_concurrent_runs_on_one_async_client(server: Server) -> None:
    inputs = _inputs()
    async with server.aclient(timeout=120) as client:
        results = await asyncio.gather(*(client.run(guest("echo"), stdin=s) for s in inputs))
    assert [r.stdout for r in results] == inputs
    assert all(r.ok for r in results)
    assert len({r.execution_id for r in results}) == 50


def test_fifty_concurrent_runs_on_one_sync_client_from_threads(server: Server) -> None:
    inputs = _inputs()
    with server.client(timeout=120) as client, ThreadPoolExecutor(max_workers=16) as pool:
        results = list(pool.map(lambda s: client.run(guest("echo"), stdin=s), inputs))
    assert [r.stdout for r in results] == inputs
    assert all(r.ok for r in results)
    assert len({r.execution_id for r in results}) == 50
