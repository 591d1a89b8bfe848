"""Tests that need no server: limits, URLs, module resolution, retry, error mapping."""

from __future__ import annotations

import datetime
import hashlib
import pickle
from pathlib import Path
from typing import Any, Optional

import grpc
import pytest
from google.protobuf import any_pb2, duration_pb2
from google.rpc import error_details_pb2, status_pb2

import wasmwiz
from wasmwiz import _common
from wasmwiz.errors import from_rpc_error

# --------------------------------------------------------------------------- limits


def test_limits_accept_friendly_values() -> None:
    limits = wasmwiz.Limits(memory="64MiB", timeout=2.5, fuel="1e9", max_output="1 MB")
    assert limits.memory == 64 * 1024 * 1024
    assert limits.timeout == 2.5
    assert limits.fuel == 1_000_000_000
    assert limits.max_output == 1_000_000
    msg = limits.to_proto()
    assert (msg.memory_bytes, msg.timeout_ms, msg.fuel, msg.max_output_bytes) == (
        67108864,
        2500,
        10**9,
        10**6,
    )
    assert wasmwiz.Limits.from_proto(msg) == limits


@pytest.mark.parametrize(
    ("text", "expected"),
    [("64MiB", 64 << 20), ("1.5KiB", 1536), ("2 GB", 2 * 10**9), ("512k", 512 << 10), (7, 7)],
)
def test_parse_size(text: Any, expected: int) -> None:
    assert wasmwiz.parse_size(text) == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (2.5, 2.5),
        ("500ms", 0.5),
        ("2m", 120.0),
        ("1.5s", 1.5),
        (datetime.timedelta(milliseconds=250), 0.25),
    ],
)
def test_parse_duration(value: Any, expected: float) -> None:
    assert wasmwiz.parse_duration(value) == pytest.approx(expected)


@pytest.mark.parametrize("bad", ["64 parsecs", "-1", "lots", ""])
def test_parse_size_rejects(bad: str) -> None:
    with pytest.raises(ValueError, match="size"):
        wasmwiz.parse_size(bad)


def test_limits_coerce_mapping_and_unknown_keys() -> None:
    assert wasmwiz.Limits.coerce({"memory": "1MiB"}) == wasmwiz.Limits(memory=1 << 20)
    assert wasmwiz.Limits.coerce(None) is None
    with pytest.raises(TypeError, match="unknown limit"):
        wasmwiz.Limits.coerce({"memroy": "1MiB"})
    assert repr(wasmwiz.Limits(timeout="250ms")) == "Limits(timeout=0.25)"
    # Sub-millisecond timeouts are not rounded down to "the tier's default".
    assert wasmwiz.Limits(timeout=0.0001).to_proto().timeout_ms == 1


def test_limits_idle_timeout_goes_as_idle_timeout_ms() -> None:
    limits = wasmwiz.Limits(idle_timeout="1.5s")
    assert limits.idle_timeout == 1.5
    assert limits.to_proto().idle_timeout_ms == 1500
    assert wasmwiz.Limits.from_proto(limits.to_proto()) == limits
    assert wasmwiz.Limits.coerce({"idle_timeout": 30}) == wasmwiz.Limits(idle_timeout=30)
    assert repr(wasmwiz.Limits(idle_timeout="250ms")) == "Limits(idle_timeout=0.25)"


# --------------------------------------------------------------------------- urls and modules


def test_parse_url() -> None:
    assert _common.parse_url("http://127.0.0.1:5000") == _common.Target("127.0.0.1:5000", False)
    assert _common.parse_url("https://api.example.com") == _common.Target(
        "api.example.com:443", True
    )
    assert _common.parse_url("localhost:9") == _common.Target("localhost:9", False)
    with pytest.raises(ValueError, match="scheme"):
        _common.parse_url("ftp://x")
    with pytest.raises(ValueError, match="path"):
        _common.parse_url("http://x:1/api")


def test_url_and_key_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WASMWIZ_URL", "http://127.0.0.1:1")
    monkeypatch.setenv("WASMWIZ_API_KEY", "wwz_a_b")
    with wasmwiz.Client() as client:
        assert client.target == "127.0.0.1:1"
        assert client._metadata == (("authorization", "Bearer wwz_a_b"),)


@pytest.mark.parametrize("client_class", [wasmwiz.Client, wasmwiz.AsyncClient])
def test_url_defaults_to_the_servers_default_address(
    monkeypatch: pytest.MonkeyPatch, client_class: type[wasmwiz.Client]
) -> None:
    monkeypatch.delenv("WASMWIZ_URL", raising=False)
    assert client_class().target == "127.0.0.1:8080"


def test_missing_key_message_says_how_to_give_one() -> None:
    err = wasmwiz.MissingApiKey()
    assert isinstance(err, wasmwiz.Unauthenticated)
    assert str(err).startswith("UNAUTHENTICATED: no API key: pass api_key=")
    assert "WASMWIZ_API_KEY" in str(err)


def test_error_text_does_not_repeat_a_violation_the_details_say() -> None:
    violation = wasmwiz.FieldViolation("limits.fuel", "the maximum is 10")
    said = wasmwiz.InvalidArgument("limits.fuel: the maximum is 10", violations=[violation])
    assert str(said) == "INVALID_ARGUMENT: limits.fuel: the maximum is 10"
    unsaid = wasmwiz.InvalidArgument("bad request", violations=[violation])
    assert str(unsaid) == "INVALID_ARGUMENT: bad request (limits.fuel: the maximum is 10)"


def test_pickled_error_leaves_the_grpc_call_behind() -> None:
    err = wasmwiz.NotFound("module not found", rpc_error=RuntimeError("a grpc call"))
    again = pickle.loads(pickle.dumps(err))
    assert again.details == "module not found"
    assert again.rpc_error is None


def test_resolve_module_kinds(tmp_path: Path) -> None:
    digest = "ab" * 32
    assert _common.resolve_module(digest, 10).sha256 == digest
    assert _common.resolve_module("sha256:" + digest.upper(), 10).sha256 == digest
    assert _common.resolve_module(b"\x00asm", 10).data == b"\x00asm"
    small = tmp_path / "small.wasm"
    small.write_bytes(b"x" * 10)
    assert _common.resolve_module(str(small), 10).data == b"x" * 10
    big = tmp_path / "big.wasm"
    big.write_bytes(b"y" * 11)
    resolved = _common.resolve_module(big, 10)
    assert resolved.path == big
    assert resolved.data is None
    hashed = _common.hash_source(resolved, chunk_size=4)
    assert hashed.sha256 == hashlib.sha256(b"y" * 11).hexdigest()
    info = wasmwiz.ModuleInfo(sha256=digest, size=3)
    assert _common.resolve_module(info, 10).sha256 == digest
    with pytest.raises(FileNotFoundError):
        _common.resolve_module(tmp_path / "missing.wasm", 10)
    with pytest.raises(TypeError):
        _common.resolve_module(42, 10)  # type: ignore[arg-type]


def test_upload_requests_chunk_and_report_progress() -> None:
    source = _common.hash_source(_common.Source(data=b"z" * 25, size=25))
    seen: list[tuple[int, int]] = []
    requests = list(_common.upload_requests(source, 10, lambda d, t: seen.append((d, t))))
    assert requests[0].start.size == 25
    assert requests[0].start.sha256 == hashlib.sha256(b"z" * 25).hexdigest()
    assert [len(r.chunk) for r in requests[1:]] == [10, 10, 5]
    assert seen == [(0, 25), (10, 25), (20, 25), (25, 25)]


def test_request_validation() -> None:
    source = _common.Source(data=b"m", size=1)
    with pytest.raises(TypeError, match="sequence of strings"):
        _common.run_request(
            source,
            stdin=b"",
            args="--oops",
            env=None,
            limits=None,
            seed=None,
            expected_stdout=None,
            program_name=None,
            keep_module=False,
        )
    request = _common.run_request(
        source,
        stdin="hé",
        args=["a"],
        env={"K": "V"},
        limits={"fuel": 5},
        seed=7,
        expected_stdout="x",
        program_name="p",
        keep_module=True,
    )
    assert request.stdin == "hé".encode()
    assert request.HasField("expected_stdout")
    assert request.limits.fuel == 5
    assert request.random_seed == 7
    batch = _common.run_batch_request(
        _common.Source(sha256="cd" * 32),
        [{"stdin": "1", "expected_stdout": "2", "name": "n"}, wasmwiz.BatchCase(args=["x"])],
        env=None,
        limits=None,
        seed=None,
        program_name=None,
    )
    assert batch.module_sha256 == "cd" * 32
    assert batch.cases[0].HasField("expected_stdout")
    assert not batch.cases[1].HasField("expected_stdout")


def test_health_codec() -> None:
    assert _common.encode_health_request("") == b""
    assert _common.encode_health_request("a") == b"\x0a\x01a"
    assert _common.decode_health_response(b"\x08\x01") == "SERVING"
    assert _common.decode_health_response(b"\x08\x02") == "NOT_SERVING"
    assert _common.decode_health_response(b"") == "UNKNOWN"


# --------------------------------------------------------------------------- retry


def test_retry_delay_honours_retry_after() -> None:
    policy = wasmwiz.Retry(max_attempts=3, jitter=0.0)
    assert policy.delay(1, wasmwiz.RateLimited("slow down", retry_after=4.0)) == 4.0
    assert policy.delay(1, wasmwiz.Unavailable("x")) == 0.25
    assert policy.delay(2, wasmwiz.Unavailable("x")) == 0.5
    assert policy.delay(3, wasmwiz.Unavailable("x")) is None  # attempts used up
    assert policy.delay(1, wasmwiz.NotFound("x")) is None  # not retryable
    assert policy.delay(1, wasmwiz.RateLimited("quota", retry_after=86400.0)) is None
    assert wasmwiz.Retry.coerce(True) == wasmwiz.Retry()
    assert wasmwiz.Retry.coerce(False) is None


# --------------------------------------------------------------------------- error mapping


class FakeRpcError(grpc.RpcError):
    """Quacks like the errors grpcio raises (code/details/trailing_metadata)."""

    def __init__(
        self,
        code: grpc.StatusCode,
        details: str,
        metadata: tuple[tuple[str, Any], ...] = (),
    ) -> None:
        super().__init__(details)
        self._code = code
        self._details = details
        self._metadata = metadata

    def code(self) -> grpc.StatusCode:
        return self._code

    def details(self) -> Optional[str]:
        return self._details

    def trailing_metadata(self) -> tuple[tuple[str, Any], ...]:
        return self._metadata


def _status_bin(code: grpc.StatusCode, message: str, *details: Any) -> tuple[str, bytes]:
    status = status_pb2.Status(code=code.value[0], message=message)
    for detail in details:
        packed = any_pb2.Any()
        packed.Pack(detail)
        status.details.append(packed)
    return ("grpc-status-details-bin", status.SerializeToString())


def test_error_mapping_invalid_module() -> None:
    bad = error_details_pb2.BadRequest(
        field_violations=[
            error_details_pb2.BadRequest.FieldViolation(field="module", description="no _start")
        ]
    )
    err = from_rpc_error(
        FakeRpcError(
            grpc.StatusCode.INVALID_ARGUMENT,
            "invalid module",
            (_status_bin(grpc.StatusCode.INVALID_ARGUMENT, "invalid module", bad),),
        )
    )
    assert type(err) is wasmwiz.InvalidModule
    assert isinstance(err, wasmwiz.InvalidArgument)
    assert err.code is grpc.StatusCode.INVALID_ARGUMENT
    assert err.details == "invalid module"
    assert err.violations == (wasmwiz.FieldViolation("module", "no _start"),)
    assert "module: no _start" in str(err)


def test_error_mapping_limit_is_invalid_argument_not_module() -> None:
    bad = error_details_pb2.BadRequest(
        field_violations=[
            error_details_pb2.BadRequest.FieldViolation(field="limits.fuel", description="max 10")
        ]
    )
    err = from_rpc_error(
        FakeRpcError(
            grpc.StatusCode.INVALID_ARGUMENT,
            "limit",
            (_status_bin(grpc.StatusCode.INVALID_ARGUMENT, "limit", bad),),
        )
    )
    assert type(err) is wasmwiz.InvalidArgument


def test_error_mapping_rate_limited() -> None:
    retry = error_details_pb2.RetryInfo(
        retry_delay=duration_pb2.Duration(seconds=3, nanos=500_000_000)
    )
    quota = error_details_pb2.QuotaFailure(
        violations=[
            error_details_pb2.QuotaFailure.Violation(subject="user:x", description="10/min")
        ]
    )
    err = from_rpc_error(
        FakeRpcError(
            grpc.StatusCode.RESOURCE_EXHAUSTED,
            "rate limited",
            (
                ("retry-after", "4"),
                _status_bin(grpc.StatusCode.RESOURCE_EXHAUSTED, "rate limited", retry, quota),
            ),
        )
    )
    assert isinstance(err, wasmwiz.RateLimited)
    assert err.retry_after == 3.5  # RetryInfo is more precise than the header
    assert err.quota_violations == (wasmwiz.QuotaViolation("user:x", "10/min"),)
    header_only = from_rpc_error(
        FakeRpcError(grpc.StatusCode.RESOURCE_EXHAUSTED, "q", (("retry-after", "7"),))
    )
    assert header_only.retry_after == 7.0


def test_error_mapping_other_details() -> None:
    info = error_details_pb2.ResourceInfo(resource_type="module", resource_name="ab" * 32)
    err = from_rpc_error(
        FakeRpcError(
            grpc.StatusCode.NOT_FOUND,
            "no such module",
            (_status_bin(grpc.StatusCode.NOT_FOUND, "no such module", info),),
        )
    )
    assert isinstance(err, wasmwiz.NotFound)
    assert err.resource == wasmwiz.ResourceInfo("module", "ab" * 32)
    einfo = error_details_pb2.ErrorInfo(reason="ADMIN_REQUIRED", domain="wasmwiz")
    denied = from_rpc_error(
        FakeRpcError(
            grpc.StatusCode.PERMISSION_DENIED,
            "admin only",
            (_status_bin(grpc.StatusCode.PERMISSION_DENIED, "admin only", einfo),),
        )
    )
    assert isinstance(denied, wasmwiz.PermissionDenied)
    assert denied.error_info is not None
    assert denied.error_info.reason == "ADMIN_REQUIRED"
    for code, cls in [
        (grpc.StatusCode.UNAUTHENTICATED, wasmwiz.Unauthenticated),
        (grpc.StatusCode.UNAVAILABLE, wasmwiz.Unavailable),
        (grpc.StatusCode.DEADLINE_EXCEEDED, wasmwiz.DeadlineExceeded),
    ]:
        assert type(from_rpc_error(FakeRpcError(code, "x"))) is cls
    internal = from_rpc_error(FakeRpcError(grpc.StatusCode.INTERNAL, "boom"))
    assert type(internal) is wasmwiz.WasmWizError
    assert internal.code is grpc.StatusCode.INTERNAL
    garbage = from_rpc_error(
        FakeRpcError(grpc.StatusCode.INTERNAL, "x", (("grpc-status-details-bin", b"\xff\xff"),))
    )
    assert garbage.violations == ()


def test_errors_pickle() -> None:
    import pickle

    err = wasmwiz.RateLimited("slow", retry_after=2.0, code=grpc.StatusCode.RESOURCE_EXHAUSTED)
    clone = pickle.loads(pickle.dumps(err))
    assert type(clone) is wasmwiz.RateLimited
    assert clone.retry_after == 2.0
    assert clone.code is grpc.StatusCode.RESOURCE_EXHAUSTED


def test_new_api_key_repr_hides_secret() -> None:
    key = wasmwiz.NewApiKey("wwz_abc_supersecret", "abc")
    assert "supersecret" not in repr(key)


@pytest.mark.parametrize(
    "name", ["limits", "retry", "proto", "_types", "errors", "client", "aio", "_common", "files"]
)
def test_doctests(name: str) -> None:
    import doctest
    import importlib

    module = importlib.import_module(f"wasmwiz.{name}")
    failures, _ = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
    assert failures == 0


@pytest.mark.parametrize(
    ("limit", "said"),
    [
        (
            wasmwiz.LimitExceeded("limits.fuel", 10**13, 10**12, "fuel", "free"),
            "fuel 10_000_000_000_000 is above the free tier's 1_000_000_000_000",
        ),
        (
            wasmwiz.LimitExceeded("limits.timeout_ms", 60_000, 5_000, "ms", "free"),
            "timeout 60 s is above the free tier's 5 s",
        ),
        (
            wasmwiz.LimitExceeded("args", 301, 256, "count", "free"),
            "args 301 items is above the free tier's 256 items "
            "(args and env together, argv[0] included)",
        ),
        (
            wasmwiz.LimitExceeded("message", 3 << 19, 1 << 20, "bytes", ""),
            "request 1.5 MiB is above the server's 1 MiB",
        ),
    ],
)
def test_a_limit_is_worded_with_the_sdk_option_and_human_units(
    limit: wasmwiz.LimitExceeded, said: str
) -> None:
    assert limit.message == said


def test_a_limit_from_error_info_replaces_the_servers_wording() -> None:
    info = wasmwiz.ErrorInfo(
        "LIMIT_EXCEEDED",
        "wasmwiz",
        {
            "field": "stdin",
            "requested": "2097152",
            "maximum": "1048576",
            "unit": "bytes",
            "tier": "free",
        },
    )
    err = wasmwiz.InvalidArgument("stdin of 2097152 bytes ...", error_info=info)
    assert str(err) == "INVALID_ARGUMENT: stdin 2 MiB is above the free tier's 1 MiB"


# --------------------------------------------------------------------------- detached executions


def test_execution_state_by_name_and_refusal_of_unknown_names() -> None:
    assert wasmwiz.ExecutionState._coerce("queued") is wasmwiz.ExecutionState.QUEUED
    assert wasmwiz.ExecutionState._coerce(None) is wasmwiz.ExecutionState.UNSPECIFIED
    with pytest.raises(ValueError, match="queued, running, finished, cancelled"):
        wasmwiz.ExecutionState._coerce("done")


def test_a_submit_with_files_above_one_message_is_refused_before_sending() -> None:
    big = {"input/a.bin": b"x" * (_common.FS_INLINE_LIMIT + 1)}
    fs = _common.input_fs(big, (), None)
    with pytest.raises(wasmwiz.InvalidArgument) as caught:
        _common.refuse_unsendable_submit(b"", fs)
    assert caught.value.violations[0].field == "files"
