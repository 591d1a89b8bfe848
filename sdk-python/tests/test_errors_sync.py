# Generated from test_errors_async.py by scripts/unasync.py. DO NOT EDIT:
# change test_errors_async.py and run sdk-python/scripts/unasync.py.
"""Each exception class, raised from a real server answer.

Written once, for the asyncio client; ``tests/test_errors_sync.py`` is
generated from this file by ``scripts/unasync.py``.
"""

from __future__ import annotations

import socket
import time

import grpc
import pytest

import wasmwiz
from conftest import EMPTY_MODULE, ENV_IMPORT_MODULE, Server, guest, padded_module


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


def test_a_limit_error_names_the_option_in_human_units(server: Server) -> None:
    with server.client(server.new_key("pro")) as client:
        with pytest.raises(wasmwiz.InvalidArgument) as info:
            client.run(guest("hello"), limits={"memory": "2GiB"})
    err = info.value
    assert str(err) == "INVALID_ARGUMENT: memory 2 GiB is above the pro tier's 1 GiB"
    assert err.limit == wasmwiz.LimitExceeded(
        "limits.memory_bytes", 2 << 30, 1 << 30, "bytes", "pro"
    )
    assert [v.field for v in err.violations] == ["limits.memory_bytes"]


def test_a_module_above_the_tier_is_refused_before_it_is_sent(server: Server) -> None:
    module = padded_module(guest("hello").read_bytes(), 11 << 20)
    with server.client(server.new_key("free")) as client:
        for call in (client.run, client.upload, client.modules.put):
            with pytest.raises(wasmwiz.InvalidModule) as info:
                call(module)
            err = info.value
            assert err.rpc_error is None, "raised by the client, not the server"
            assert err.limit == wasmwiz.LimitExceeded(
                "module", len(module), 10 << 20, "bytes", "free"
            )
            assert "is above the free tier's 10 MiB" in str(err), str(err)


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
