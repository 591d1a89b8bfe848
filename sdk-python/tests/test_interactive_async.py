"""Interactive sessions (``Execute``, ``stream_stdin`` + ``interactive``) on the real server.

Written once, for the asyncio client; ``tests/test_interactive_sync.py`` is
generated from this file by ``scripts/unasync.py``.
"""

from __future__ import annotations

import re

import grpc
import pytest

import wasmwiz
from conftest import Server, guest


def answers(text: str) -> list[int]:
    """The numbers calc printed (``= N`` lines), in order."""
    return [int(n) for n in re.findall(r"= (-?\d+)", text)]


async def test_answers_a_line_written_while_it_runs(server: Server) -> None:
    async with server.aclient() as client:
        async with client.interactive(guest("calc")) as session:
            await session.write("1+2\n")
            seen = b""
            async for event in session:
                if isinstance(event, wasmwiz.Stdout):
                    seen += event.data
                    if b"= 3\n" in seen:
                        break
            await session.close()
            result = await session.result()
    assert result.outcome == wasmwiz.Outcome.SUCCESS
    assert answers(result.text) == [3]
    assert result.text.endswith("bye\n")


async def test_writes_reach_the_guest_in_the_order_they_were_made(server: Server) -> None:
    async with server.aclient() as client:
        session = client.interactive(guest("calc"))
        for i in range(1, 21):
            await session.write(f"{i}*10\n")
        await session.close()
        result = await session.result()
    assert answers(result.text) == [i * 10 for i in range(1, 21)]


async def test_the_stdin_argument_goes_before_the_writes(server: Server) -> None:
    async with server.aclient() as client:
        session = client.interactive(guest("calc"), stdin="2+2\n")
        await session.write("3+3\n")
        await session.close()
        result = await session.result()
    assert answers(result.text) == [4, 6]


async def test_a_write_after_close_is_refused(server: Server) -> None:
    async with server.aclient() as client:
        session = client.interactive(guest("calc"))
        await session.close()
        with pytest.raises(wasmwiz.WasmWizError) as caught:
            await session.write("1\n")
        await session.result()
    assert caught.value.code == grpc.StatusCode.FAILED_PRECONDITION


async def test_cancel_stops_a_guest_waiting_for_input(server: Server) -> None:
    async with server.aclient() as client:
        session = client.interactive(guest("calc"))
        async for event in session:
            if isinstance(event, wasmwiz.Stdout) and b">" in event.data:
                break
        session.cancel()
        with pytest.raises(wasmwiz.WasmWizError):
            await session.result()


async def test_idle_timeout_ends_a_guest_left_waiting_for_input(server: Server) -> None:
    async with server.aclient() as client:
        session = client.interactive(guest("calc"), limits={"idle_timeout": "300ms"})
        result = await session.result()
    assert result.outcome == wasmwiz.Outcome.TIMEOUT
    assert "idle" in result.message.lower()
