# Generated from test_interactive_async.py by scripts/unasync.py. DO NOT EDIT:
# change test_interactive_async.py and run sdk-python/scripts/unasync.py.
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


def test_answers_a_line_written_while_it_runs(server: Server) -> None:
    with server.client() as client:
        with client.interactive(guest("calc")) as session:
            session.write("1+2\n")
            seen = b""
            for event in session:
                if isinstance(event, wasmwiz.Stdout):
                    seen += event.data
                    if b"= 3\n" in seen:
                        break
            session.close()
            result = session.result()
    assert result.outcome == wasmwiz.Outcome.SUCCESS
    assert answers(result.text) == [3]
    assert result.text.endswith("bye\n")


def test_writes_reach_the_guest_in_the_order_they_were_made(server: Server) -> None:
    with server.client() as client:
        session = client.interactive(guest("calc"))
        for i in range(1, 21):
            session.write(f"{i}*10\n")
        session.close()
        result = session.result()
    assert answers(result.text) == [i * 10 for i in range(1, 21)]


def test_the_stdin_argument_goes_before_the_writes(server: Server) -> None:
    with server.client() as client:
        session = client.interactive(guest("calc"), stdin="2+2\n")
        session.write("3+3\n")
        session.close()
        result = session.result()
    assert answers(result.text) == [4, 6]


def test_a_write_after_close_is_refused(server: Server) -> None:
    with server.client() as client:
        session = client.interactive(guest("calc"))
        session.close()
        with pytest.raises(wasmwiz.WasmWizError) as caught:
            session.write("1\n")
        session.result()
    assert caught.value.code == grpc.StatusCode.FAILED_PRECONDITION


def test_cancel_stops_a_guest_waiting_for_input(server: Server) -> None:
    with server.client() as client:
        session = client.interactive(guest("calc"))
        for event in session:
            if isinstance(event, wasmwiz.Stdout) and b">" in event.data:
                break
        session.cancel()
        with pytest.raises(wasmwiz.WasmWizError):
            session.result()


def test_idle_timeout_ends_a_guest_left_waiting_for_input(server: Server) -> None:
    with server.client() as client:
        session = client.interactive(guest("calc"), limits={"idle_timeout": "300ms"})
        result = session.result()
    assert result.outcome == wasmwiz.Outcome.TIMEOUT
    assert "idle" in result.message.lower()
