# Generated from test_jobs_async.py by scripts/unasync.py. DO NOT EDIT:
# change test_jobs_async.py and run sdk-python/scripts/unasync.py.
"""Detached executions (``submit`` and its handle) on the real server.

Written once, for the asyncio client; ``tests/test_jobs_sync.py`` is
generated from this file by ``scripts/unasync.py``.
"""

from __future__ import annotations

import grpc
import pytest

import wasmwiz
from conftest import Server, guest


def test_submit_returns_an_id_and_result_waits_for_the_output(server: Server) -> None:
    with server.client() as client:
        job = client.submit(guest("echo"), stdin=b"detached hello")
        assert job.execution_id
        result = job.result()
    assert result.outcome == wasmwiz.Outcome.SUCCESS
    assert result.stdout == b"detached hello"


def test_events_go_from_started_to_finished_in_order(server: Server) -> None:
    with server.client() as client:
        job = client.submit(guest("progress"), args=["3"])
        events = [event for event in job.events()]
    assert isinstance(events[0], wasmwiz.Started)
    assert isinstance(events[-1], wasmwiz.Finished)
    stdout = b"".join(e.data for e in events if isinstance(e, wasmwiz.Stdout))
    assert stdout == b"tick 0\ntick 1\ntick 2\ndone\n"


def test_a_handle_rebuilt_from_the_id_gets_the_stored_result(server: Server) -> None:
    with server.client() as client:
        submitted = client.submit(guest("echo"), stdin=b"kept")
        submitted.result()
        info = client.get_execution(submitted.execution_id)
        again = client.execution(submitted.execution_id).result()
    assert info.state == wasmwiz.ExecutionState.FINISHED
    assert info.stdout == b"kept"
    assert info.finished is not None
    assert info.finished.outcome == wasmwiz.Outcome.SUCCESS
    assert len(info.attempt_execution_ids) == 1
    stored = info.result()
    assert stored is not None
    assert stored.stdout == b"kept"
    assert stored.execution_id == submitted.execution_id
    assert again.stdout == b"kept"


def test_list_executions_shows_the_accounts_runs_newest_first(server: Server) -> None:
    with server.client(server.new_key("unlimited")) as client:
        first = client.submit(guest("hello"))
        first.result()
        second = client.submit(guest("hello"))
        second.result()
        listed = client.list_executions()
        finished = client.list_executions("finished", limit=1)
    assert [s.execution_id for s in listed] == [second.execution_id, first.execution_id]
    assert listed[0].outcome == wasmwiz.Outcome.SUCCESS
    assert listed[0].created_at is not None
    assert [s.execution_id for s in finished] == [second.execution_id]


def test_another_accounts_execution_is_not_found(server: Server) -> None:
    with server.client() as owner, server.client(server.new_key("free")) as other:
        job = owner.submit(guest("hello"))
        with pytest.raises(wasmwiz.NotFound):
            other.get_execution(job.execution_id)


def test_cancel_stops_a_running_execution(server: Server) -> None:
    with server.client() as client:
        job = client.submit(guest("loop"), limits={"timeout": 30})
        state = job.cancel()
        with pytest.raises(wasmwiz.WasmWizError) as caught:
            job.result()
        summary = job.status()
    assert state == wasmwiz.ExecutionState.CANCELLED
    assert summary.state == wasmwiz.ExecutionState.CANCELLED
    assert caught.value.code == grpc.StatusCode.CANCELLED


def test_submit_batch_makes_one_execution_per_case(server: Server) -> None:
    with server.client() as client:
        batch = client.submit_batch(guest("echo"), [{"stdin": "a"}, {"stdin": "b"}])
        outputs = [(client.execution(i).result()).stdout for i in batch.execution_ids]
    assert batch.batch_id
    assert outputs == [b"a", b"b"]


def test_streamed_stdin_is_refused_before_sending(server: Server) -> None:
    with server.client() as client:
        with pytest.raises(wasmwiz.InvalidArgument) as caught:
            client.submit(guest("echo"), stdin=iter([b"a"]))  # type: ignore[arg-type]
    assert caught.value.violations[0].field == "stdin"


def test_a_list_page_above_the_servers_maximum_is_refused(server: Server) -> None:
    with server.client() as client:
        with pytest.raises(ValueError, match="500"):
            client.list_executions(page_size=501)


def test_a_webhook_url_without_a_secret_is_invalid(server: Server) -> None:
    with server.client(server.new_key("free")) as client:
        with pytest.raises(wasmwiz.InvalidArgument) as caught:
            client.submit(guest("hello"), webhook_url="https://example.com/hook")
    assert any(v.field == "webhook_url" for v in caught.value.violations)
