# Generated from test_cache_async.py by scripts/unasync.py. DO NOT EDIT:
# change test_cache_async.py and run sdk-python/scripts/unasync.py.
"""The result cache and signed receipts, against the real server.

Written once, for the asyncio client; ``tests/test_cache_sync.py`` is
generated from this file by ``scripts/unasync.py``. Each test uses its own
key (so its own account): cache entries are per account.
"""

from __future__ import annotations

import uuid

import pytest

import wasmwiz
from conftest import Server, guest
from wasmwiz import receipt


def unique_stdin() -> bytes:
    """Stdin no other test sends, so the first run is always a miss."""
    return f"cache {uuid.uuid4()}\n".encode()


def test_second_run_with_cache_use_is_a_hit_from_the_first(server: Server) -> None:
    with server.client(server.new_key()) as client:
        stdin = unique_stdin()
        first = client.run(guest("echo"), stdin=stdin, cache="use")
        second = client.run(guest("echo"), stdin=stdin, cache="use")
    assert not first.result_cache_hit
    assert first.cached_from == ""
    assert second.result_cache_hit
    assert second.cached_from == first.execution_id
    assert second.stdout == first.stdout == stdin


def test_runs_without_cache_never_hit(server: Server) -> None:
    with server.client(server.new_key()) as client:
        stdin = unique_stdin()
        client.run(guest("echo"), stdin=stdin, cache="use")
        again = client.run(guest("echo"), stdin=stdin)
    assert not again.result_cache_hit


def test_cache_refresh_runs_again(server: Server) -> None:
    with server.client(server.new_key()) as client:
        stdin = unique_stdin()
        client.run(guest("echo"), stdin=stdin, cache="use")
        refreshed = client.run(guest("echo"), stdin=stdin, cache="refresh")
        after = client.run(guest("echo"), stdin=stdin, cache="use")
    assert not refreshed.result_cache_hit
    assert after.cached_from == refreshed.execution_id


def test_stream_reports_the_hit_in_started(server: Server) -> None:
    with server.client(server.new_key()) as client:
        stdin = unique_stdin()
        first = client.run(guest("echo"), stdin=stdin, cache="use")
        events = [event for event in client.stream(guest("echo"), stdin=stdin, cache="use")]
    started = events[0]
    assert isinstance(started, wasmwiz.Started)
    assert started.result_cache_hit
    assert started.cached_from == first.execution_id


def test_streamed_stdin_with_cache_is_refused_before_sending(
    client: wasmwiz.Client,
) -> None:
    with pytest.raises(wasmwiz.InvalidArgument) as caught:
        client.run(guest("echo"), stdin=iter([b"a", b"b"]), cache="use")
    assert [v.field for v in caught.value.violations] == ["cache"]
    assert "streamed stdin cannot be part of the result cache's key" in caught.value.details


def test_unknown_cache_policy_is_refused(client: wasmwiz.Client) -> None:
    with pytest.raises(wasmwiz.InvalidArgument) as caught:
        client.run(guest("echo"), stdin=b"x", cache="always")
    assert [v.field for v in caught.value.violations] == ["cache"]


def test_batch_cases_report_cache_hits(server: Server) -> None:
    with server.client(server.new_key()) as client:
        cases = [{"stdin": unique_stdin(), "name": "a"}, {"stdin": unique_stdin(), "name": "b"}]
        first = client.run_batch(guest("echo"), cases, cache="use")
        second = client.run_batch(guest("echo"), cases, cache="use")
    assert [case.result_cache_hit for case in first] == [False, False]
    assert [case.result_cache_hit for case in second] == [True, True]
    assert [case.cached_from for case in second] == [case.execution_id for case in first]


def test_usage_counts_cache_hits_and_fuel_saved(server: Server) -> None:
    with server.client(server.new_key()) as client:
        stdin = unique_stdin()
        first = client.run(guest("echo"), stdin=stdin, cache="use")
        client.run(guest("echo"), stdin=stdin, cache="use")
        usage = client.account.usage()
    assert usage.cache_hits == 1
    assert usage.fuel_saved == first.fuel_consumed


def test_run_without_receipt_has_none(client: wasmwiz.Client) -> None:
    result = client.run(guest("echo"), stdin=b"x")
    assert result.receipt is None


def test_receipt_verifies_offline_with_the_server_info_key(
    client: wasmwiz.Client,
) -> None:
    result = client.run(guest("echo"), stdin=b"signed\n", receipt=True)
    assert result.receipt is not None
    info = client.server_info()
    verified = receipt.verify(result.receipt, info.key(result.receipt.key_id))
    verified.check_stdout(result.stdout)
    assert verified.statement.execution_id == result.execution_id
    assert verified.statement.fuel_consumed == result.fuel_consumed


def test_batch_case_receipts_verify(client: wasmwiz.Client) -> None:
    batch = client.run_batch(guest("echo"), [{"stdin": "p"}, {"stdin": "q"}], receipt=True)
    info = client.server_info()
    for case in batch:
        assert case.receipt is not None
        receipt.verify(case.receipt, info.key(case.receipt.key_id)).check_stdout(case.stdout)


def test_server_info_needs_no_key(server: Server) -> None:
    with wasmwiz.Client(server.url, api_key="") as anonymous:
        info = anonymous.server_info()
    assert info.server_version
    assert info.wasmi_version
    assert info.receipt_keys[0].current
    assert all(len(key.public_key) == 32 for key in info.receipt_keys)


def test_server_info_key_lookup_of_an_unknown_id_fails(
    client: wasmwiz.Client,
) -> None:
    info = client.server_info()
    with pytest.raises(KeyError):
        info.key("0000000000000000")
