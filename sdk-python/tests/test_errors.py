"""Each exception class, raised from a real server answer."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest

import wasmwiz
from conftest import EMPTY_MODULE, ENV_IMPORT_MODULE, Server, guest, start_server


def test_unauthenticated(server: Server) -> None:
    # api_key="" sends no key at all (even when $WASMWIZ_API_KEY is set).
    for key in ("wwz_nosuchkey_0000000000000000000000", "garbage", ""):
        with wasmwiz.Client(server.url, api_key=key) as client:
            with pytest.raises(wasmwiz.Unauthenticated) as info:
                client.run(guest("hello"))
            assert info.value.code is grpc.StatusCode.UNAUTHENTICATED
            assert isinstance(info.value, wasmwiz.WasmWizError)
            with pytest.raises(wasmwiz.Unauthenticated):
                client.whoami()


def test_permission_denied(server: Server) -> None:
    with server.client(server.free_key) as client:
        with pytest.raises(wasmwiz.PermissionDenied) as info:
            client.admin.list_keys()
        assert info.value.code is grpc.StatusCode.PERMISSION_DENIED
        assert info.value.error_info is not None  # the server explains why (ErrorInfo)
        with pytest.raises(wasmwiz.PermissionDenied):
            client.admin.create_key("someone@test.local", "unlimited", admin=True)


@pytest.mark.parametrize(
    ("module", "what"),
    [
        (b"this is not WebAssembly", "not wasm"),
        (EMPTY_MODULE, "no _start"),
        (ENV_IMPORT_MODULE, "imports env.f"),
    ],
)
def test_invalid_module(client: wasmwiz.Client, module: bytes, what: str) -> None:
    with pytest.raises(wasmwiz.InvalidModule) as info:
        client.run(module)
    err = info.value
    assert err.code is grpc.StatusCode.INVALID_ARGUMENT, what
    assert err.violations, what
    assert any(v.field == "module" for v in err.violations), err.violations
    with pytest.raises(wasmwiz.InvalidModule):
        client.modules.put(module)


def test_invalid_module_names_the_bad_import(client: wasmwiz.Client) -> None:
    with pytest.raises(wasmwiz.InvalidModule) as info:
        client.upload(ENV_IMPORT_MODULE)
    text = " ".join(v.description for v in info.value.violations) + info.value.details
    assert "env" in text


def test_invalid_argument_limit_above_tier(server: Server) -> None:
    with server.client(server.new_key("free")) as client:
        with pytest.raises(wasmwiz.InvalidArgument) as info:
            client.run(guest("hello"), limits={"fuel": 10**13})
    err = info.value
    assert not isinstance(err, wasmwiz.InvalidModule)
    fields = {v.field: v.description for v in err.violations}
    assert "limits.fuel" in fields, err.violations
    assert "1000000000000" in fields["limits.fuel"] or "10^12" in fields["limits.fuel"]


def test_not_found(client: wasmwiz.Client) -> None:
    missing = "0" * 64
    with pytest.raises(wasmwiz.NotFound) as info:
        client.run(missing)
    assert info.value.code is grpc.StatusCode.NOT_FOUND
    assert info.value.resource is not None
    assert missing in info.value.resource.resource_name
    with pytest.raises(wasmwiz.NotFound):
        client.modules.get(missing)
    with pytest.raises(wasmwiz.NotFound):
        client.run_batch(missing, [{"stdin": ""}])


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


def test_deadline_exceeded(server: Server) -> None:
    with server.client(timeout=0.5) as client:
        started = time.monotonic()
        with pytest.raises(wasmwiz.DeadlineExceeded):
            client.run(guest("loop"), limits={"timeout": 10})
        assert time.monotonic() - started < 5
        # A per-call timeout overrides the client's.
        assert client.run(guest("hello"), timeout=30).ok


def test_unavailable_when_nothing_listens() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    policy = wasmwiz.Retry(max_attempts=2, initial_backoff=0.2, jitter=0)
    with wasmwiz.Client(f"http://127.0.0.1:{port}", api_key="k", retry=policy) as client:
        started = time.monotonic()
        with pytest.raises(wasmwiz.Unavailable):
            client.whoami(timeout=5)
        assert time.monotonic() - started >= 0.2  # it retried once


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
