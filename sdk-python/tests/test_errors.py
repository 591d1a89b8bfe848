"""Errors of a whole server's state: rate limits, draining, saturation.

These drive the server from several threads at once, so they are written for
the blocking client only; every other error is tested for both clients in
``test_errors_async.py`` / ``test_errors_sync.py``.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest

import wasmwiz
from conftest import Server, guest, padded_module, start_server


def test_rate_limited_then_retry_honours_retry_after(server: Server) -> None:
    key = server.new_key("free")
    with server.client(key) as client:
        err = None
        for _ in range(15):
            try:
                client.run(guest("hello"))
            except wasmwiz.RateLimited as caught:
                err = caught
                break
        assert err is not None, "15 runs within a minute were never rate limited (free: 10/min)"
        assert err.code is grpc.StatusCode.RESOURCE_EXHAUSTED
        assert err.retry_after is not None
        assert 0 < err.retry_after <= 60
        assert err.quota_violations, "RESOURCE_EXHAUSTED should carry QuotaFailure"
        assert any(k == "retry-after" for k, _ in err.metadata)
    with server.client(key, retry=wasmwiz.Retry(max_attempts=3, max_retry_after=65)) as patient:
        started = time.monotonic()
        result = patient.run(guest("hello"))
        waited = time.monotonic() - started
    assert result.ok
    assert waited >= err.retry_after - 1.0  # retry-after is whole seconds


@pytest.fixture
def draining_server(tmp_path: Path) -> Iterator[Server]:
    srv = start_server(tmp_path / "drain")
    yield srv
    srv.process.stop()


def test_unavailable_while_draining(draining_server: Server) -> None:
    """A draining server refuses new work with UNAVAILABLE and finishes what runs."""
    client = draining_server.client()
    started = threading.Event()
    outcome: list[object] = []

    def long_run() -> None:
        try:
            with client.stream(guest("loop"), limits={"timeout": 2}) as events:
                for event in events:
                    if isinstance(event, wasmwiz.Started):
                        started.set()
                outcome.append(events.result().outcome)
        except Exception as exc:  # pragma: no cover - reported below
            outcome.append(exc)
        finally:
            started.set()

    worker = threading.Thread(target=long_run)
    worker.start()
    assert started.wait(30)
    draining_server.process.terminate()
    time.sleep(0.2)
    with pytest.raises(wasmwiz.Unavailable) as info:
        for _ in range(50):  # until the server has noticed the signal
            client.run(guest("hello"), timeout=10)
            time.sleep(0.05)
    assert info.value.code is grpc.StatusCode.UNAVAILABLE
    worker.join(30)
    assert outcome, "the in-flight execution never finished"
    assert outcome[0] in (wasmwiz.Outcome.TIMEOUT, wasmwiz.Outcome.CANCELLED), outcome
    client.close()
    assert draining_server.process.stop() == 0


@pytest.fixture
def saturated_server(tmp_path: Path) -> Iterator[Server]:
    """A server that runs one execution at a time and queues none."""
    srv = start_server(
        tmp_path / "busy", "[sandbox]\nmax_running = 1\nmax_queue = 0\nmax_queue_wait_ms = 100\n"
    )
    yield srv
    srv.process.stop()


def test_unavailable_when_saturated_then_retry(saturated_server: Server) -> None:
    """Past the bounded queue the server answers UNAVAILABLE with RetryInfo."""
    client = saturated_server.client()
    started = threading.Event()
    outcome: list[object] = []

    def long_run() -> None:
        try:
            with client.stream(guest("loop"), limits={"timeout": 1.5}) as events:
                for event in events:
                    if isinstance(event, wasmwiz.Started):
                        started.set()
                outcome.append(events.result().outcome)
        finally:
            started.set()

    worker = threading.Thread(target=long_run)
    worker.start()
    assert started.wait(30)
    with pytest.raises(wasmwiz.Unavailable) as info:
        client.run(guest("hello"))
    err = info.value
    assert err.code is grpc.StatusCode.UNAVAILABLE
    assert err.retry_after is not None
    assert err.retry_after > 0
    # With retries on, the same call waits (retry_after each time) until the slot frees up.
    with saturated_server.client(retry=wasmwiz.Retry(max_attempts=10, jitter=0)) as patient:
        assert patient.run(guest("hello")).ok
    worker.join(30)
    assert outcome == [wasmwiz.Outcome.TIMEOUT]
    client.close()


# Replaces the free tier (``admin create-key`` knows only the default tiers).
_SMALL_TIER = """
[tiers.free]
per_minute = 100
per_day = 1000
max_module_bytes = 4194304
max_stdin_bytes = 1048576
max_memory_bytes = 134217728
max_fuel = 1000000000000
max_timeout_ms = 5000
max_output_bytes = 1048576
max_concurrent = 2
max_stored_modules = 1
upload_idle_timeout_ms = 300
"""


@pytest.fixture(scope="module")
def small_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A server whose free tier stores one module and ends uploads idle for 0.3 s."""
    srv = start_server(tmp_path_factory.mktemp("small"), _SMALL_TIER)
    yield srv
    srv.process.stop()


def test_a_full_module_store_is_a_quota_not_a_rate_limit(small_server: Server) -> None:
    hello = guest("hello").read_bytes()
    with small_server.client(small_server.new_key("free"), retry=True) as client:
        client.upload(hello)
        with pytest.raises(wasmwiz.QuotaExceeded) as info:
            client.upload(padded_module(hello, 16))
    err = info.value
    assert not isinstance(err, wasmwiz.RateLimited), "waiting does not free storage"
    assert err.code is grpc.StatusCode.RESOURCE_EXHAUSTED
    assert [v.subject for v in err.quota_violations] == ["stored modules"]


def test_an_upload_left_idle_is_told_apart_from_a_client_deadline(small_server: Server) -> None:
    module = padded_module(guest("hello").read_bytes(), 256 << 10)

    def stall(done: int, total: int) -> None:
        if done < total:
            time.sleep(1.5)  # five times the tier's idle timeout

    with small_server.client(small_server.new_key("free")) as client:
        with pytest.raises(wasmwiz.UploadIdle) as info:
            client.upload(module, progress=stall, chunk_size=64 << 10)
    err = info.value
    assert isinstance(err, wasmwiz.DeadlineExceeded)
    assert err.error_info is not None
    assert err.error_info.metadata["timeout_ms"] == "300"
