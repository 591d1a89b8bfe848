"""Exceptions raised by the WasmWiz clients, and the one place that makes them.

Every gRPC error of every call goes through :func:`from_rpc_error`, which reads
the status code, the message and the ``google.rpc.Status`` details that the
server puts in the ``grpc-status-details-bin`` trailer, and returns the
matching exception:

=====================  ===========================  ==========================
gRPC status            exception                    extra attributes
=====================  ===========================  ==========================
UNAUTHENTICATED        :class:`Unauthenticated`
  (no key at all)      :class:`MissingApiKey`       raised before any call
PERMISSION_DENIED      :class:`PermissionDenied`    ``error_info``
INVALID_ARGUMENT       :class:`InvalidArgument`     ``violations``, ``limit``
  (about the module)   :class:`InvalidModule`       ``violations``, ``limit``
NOT_FOUND              :class:`NotFound`            ``resource``
RESOURCE_EXHAUSTED     :class:`RateLimited`         ``retry_after``, ``quota_violations``
  (stored, api keys)   :class:`QuotaExceeded`       ``quota_violations``
UNAVAILABLE            :class:`Unavailable`         ``retry_after``
DEADLINE_EXCEEDED      :class:`DeadlineExceeded`
  (idle upload)        :class:`UploadIdle`          ``error_info``
anything else          :class:`WasmWizError`
=====================  ===========================  ==========================

A request past one of the tier's maxima (memory, fuel, timeout, output,
module, stdin, args and env, the whole message) has ``limit``, a
:class:`LimitExceeded` with the figures, and ``str()`` words it with the
option you set, in human units: ``memory 2 GiB is above the pro tier's 1 GiB``.

What the *guest* does (exit codes, traps, running out of fuel) is not an
error: it is reported in :class:`wasmwiz.Result`.

Example::

    import wasmwiz
    try:
        client.run(b"not wasm")
    except wasmwiz.InvalidModule as err:
        for v in err.violations:
            print(v.field, v.description)
    # module not a WebAssembly module ...
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from typing import Any, ClassVar, Optional, Union

import grpc
from google.protobuf.message import DecodeError
from google.rpc import error_details_pb2, status_pb2

__all__ = [
    "DeadlineExceeded",
    "ErrorInfo",
    "FieldViolation",
    "InvalidArgument",
    "InvalidModule",
    "LimitExceeded",
    "MissingApiKey",
    "NotFound",
    "PermissionDenied",
    "QuotaExceeded",
    "QuotaViolation",
    "RateLimited",
    "ResourceInfo",
    "Unauthenticated",
    "Unavailable",
    "UploadIdle",
    "WasmWizError",
    "from_rpc_error",
]

_STATUS_DETAILS_KEY = "grpc-status-details-bin"
_RETRY_AFTER_KEY = "retry-after"

#: Fields of a BadRequest violation that make an INVALID_ARGUMENT an
#: :class:`InvalidModule`: the module's bytes, size or reference in a run, and
#: any field of an upload (``start.size``, ``start.sha256``, ``chunk``).
_MODULE_FIELDS = (
    "module",
    "module_sha256",
    "module_size",
    "module_chunk",
    "source",
    "chunk",
    "size",
    "sha256",
    "start",
)


@dataclasses.dataclass(frozen=True)
class FieldViolation:
    """One bad field of a request (from ``google.rpc.BadRequest``).

    Attributes:
        field: The field's path, e.g. ``"module"`` or ``"limits.fuel"``.
        description: Why it was refused (for a limit: the maximum allowed).
        reason: A machine-readable reason, when the server gives one.
    """

    field: str
    description: str
    reason: str = ""


@dataclasses.dataclass(frozen=True)
class QuotaViolation:
    """One exhausted quota (from ``google.rpc.QuotaFailure``)."""

    subject: str
    description: str


@dataclasses.dataclass(frozen=True)
class ResourceInfo:
    """The resource an error is about (from ``google.rpc.ResourceInfo``)."""

    resource_type: str
    resource_name: str
    owner: str = ""
    description: str = ""


@dataclasses.dataclass(frozen=True)
class ErrorInfo:
    """Why an error happened, machine-readably (from ``google.rpc.ErrorInfo``)."""

    reason: str
    domain: str = ""
    metadata: Mapping[str, str] = dataclasses.field(default_factory=dict)


#: The ErrorInfo reason of a request past its tier's maximum.
LIMIT_EXCEEDED = "LIMIT_EXCEEDED"
#: The ErrorInfo reason of an upload the server abandoned for idling.
UPLOAD_IDLE = "UPLOAD_IDLE"

#: QuotaFailure subjects that waiting does not cure: something must be
#: deleted or revoked first.
_STANDING_QUOTAS = ("stored modules", "stored module bytes", "api keys")

#: API fields as the Python SDK's arguments name them.
_OPTION_NAMES = {
    "limits.memory_bytes": "memory",
    "limits.fuel": "fuel",
    "limits.timeout_ms": "timeout",
    "limits.max_output_bytes": "max_output",
    "limits.fs_bytes": "fs_bytes",
    "module_size": "module",
    "size": "module",
    "message": "request",
}


def human_size(size: int) -> str:
    """``2 GiB``, ``1.5 MiB``, ``512 bytes``: the units a person reads.

    >>> human_size(2 << 30), human_size(3 << 19), human_size(10)
    ('2 GiB', '1.5 MiB', '10 bytes')
    """
    for shift, unit in ((30, "GiB"), (20, "MiB"), (10, "KiB")):
        if size >= 1 << shift:
            value = size / (1 << shift)
            text = f"{value:.1f}".removesuffix(".0")
            return f"{text} {unit}"
    return f"{size} bytes"


def _amount(value: int, unit: str) -> str:
    if unit == "bytes":
        return human_size(value)
    if unit == "ms":
        return f"{value / 1000:g} s"
    if unit == "fuel":
        return f"{value:_}"
    if unit == "count":
        return f"{value} items"
    return f"{value} {unit}"


@dataclasses.dataclass(frozen=True)
class LimitExceeded:
    """A request past one of its tier's maxima (the server's ``LIMIT_EXCEEDED`` ErrorInfo).

    Attributes:
        field: The API field (``limits.memory_bytes``, ``stdin``, ``module``,
            ``args``, ``env``, ``message``, ``cases[2].stdin``, ...).
        requested: What the request asked for, in ``unit``.
        maximum: The tier's maximum, in ``unit``.
        unit: ``"bytes"``, ``"fuel"``, ``"ms"`` or ``"count"``.
        tier: The tier whose maximum it is (``""`` when it is the server's).

    Example:
        >>> LimitExceeded("limits.memory_bytes", 2 << 30, 1 << 30, "bytes", "pro").message
        "memory 2 GiB is above the pro tier's 1 GiB"
    """

    field: str
    requested: int
    maximum: int
    unit: str
    tier: str = ""

    @property
    def option(self) -> str:
        """The SDK argument that set the field (``limits={"memory": ...}``: ``memory``)."""
        return _OPTION_NAMES.get(self.field, self.field)

    @property
    def message(self) -> str:
        """The refusal in the caller's terms and human units."""
        whose = f"the {self.tier} tier's" if self.tier else "the server's"
        if self.field == "fs" or self.field.endswith(".fs"):
            return self._tree_message(whose)
        text = (
            f"{self.option} {_amount(self.requested, self.unit)} is above "
            f"{whose} {_amount(self.maximum, self.unit)}"
        )
        if self.field in ("args", "env") or self.field.endswith(".args"):
            text += " (args and env together, argv[0] included)"
        return text

    def _tree_message(self, whose: str) -> str:
        """An input tree past its limit (the bytes in force are ``fs_bytes``)."""
        if self.unit == "count":
            return (
                f"the files are {self.requested} entries (parent directories included), "
                f"above {whose} {self.maximum}"
            )
        return (
            f"the files hold {_amount(self.requested, self.unit)}, "
            f"above fs_bytes {_amount(self.maximum, self.unit)}"
        )

    @classmethod
    def from_error_info(cls, info: Optional[ErrorInfo]) -> Optional[LimitExceeded]:
        """The limit an ErrorInfo describes, or ``None`` when it is not one."""
        if info is None or info.reason != LIMIT_EXCEEDED:
            return None
        meta = info.metadata
        try:
            return cls(
                meta["field"],
                int(meta["requested"]),
                int(meta["maximum"]),
                meta.get("unit", ""),
                meta.get("tier", ""),
            )
        except (KeyError, ValueError):
            return None


class WasmWizError(Exception):
    """A call to the WasmWiz server failed.

    Raised for every gRPC error; subclasses name the common cases.

    Attributes:
        code: The gRPC status code (``grpc.StatusCode``).
        details: The server's message (gRPC calls it "details").
        violations: Bad request fields (``google.rpc.BadRequest``), if any.
        retry_after: Seconds the server asks to wait before retrying, if it
            said so (``google.rpc.RetryInfo`` or the ``retry-after`` header).
        quota_violations: Exhausted quotas (``google.rpc.QuotaFailure``).
        resource: The resource the error is about (``google.rpc.ResourceInfo``).
        error_info: Machine-readable reason (``google.rpc.ErrorInfo``).
        limit: The tier maximum the request passed (:class:`LimitExceeded`),
            if that is why it was refused.
        metadata: The call's trailing metadata, as (key, value) pairs.
        rpc_error: The ``grpc.RpcError`` this was made from, if any. It is
            kept here rather than chained (``raise ... from None``): grpc's
            own exception repeats the same status and adds nothing.

    Example::

        try:
            client.modules.get("0" * 64)
        except wasmwiz.WasmWizError as err:
            print(err.code.name, err.details)
        # NOT_FOUND module not found
    """

    #: The status code this class stands for (the base class: none in particular).
    default_code: ClassVar[grpc.StatusCode] = grpc.StatusCode.UNKNOWN

    def __init__(
        self,
        details: str = "",
        *,
        code: Optional[grpc.StatusCode] = None,
        violations: Iterable[FieldViolation] = (),
        retry_after: Optional[float] = None,
        quota_violations: Iterable[QuotaViolation] = (),
        resource: Optional[ResourceInfo] = None,
        error_info: Optional[ErrorInfo] = None,
        metadata: Iterable[tuple[str, Union[str, bytes]]] = (),
        rpc_error: Optional[BaseException] = None,
        limit: Optional[LimitExceeded] = None,
    ) -> None:
        self.code: grpc.StatusCode = code if code is not None else self.default_code
        self.details: str = details
        self.violations: tuple[FieldViolation, ...] = tuple(violations)
        self.retry_after: Optional[float] = retry_after
        self.quota_violations: tuple[QuotaViolation, ...] = tuple(quota_violations)
        self.resource: Optional[ResourceInfo] = resource
        self.error_info: Optional[ErrorInfo] = error_info
        self.metadata: tuple[tuple[str, Union[str, bytes]], ...] = tuple(metadata)
        self.rpc_error: Optional[BaseException] = rpc_error
        self.limit: Optional[LimitExceeded] = limit or LimitExceeded.from_error_info(error_info)
        super().__init__(self._describe())

    def _describe(self) -> str:
        """``CODE: details``, plus the violations and the retry delay the details do not say.

        The server's message often is the violation itself; repeating it
        would make ``str()`` say everything twice. A limit is worded in the
        caller's terms instead of the server's.
        """
        if self.limit is not None:
            said = self.limit.message
            return f"{self.code.name}: {self.details if said in self.details else said}"
        text = f"{self.code.name}: {self.details}" if self.details else self.code.name
        extra = [
            f"{v.field}: {v.description}"
            for v in self.violations
            if v.description not in self.details
        ]
        if extra:
            text += " (" + "; ".join(extra) + ")"
        if self.retry_after is not None and "retry" not in self.details.lower():
            text += f" [retry after {self.retry_after:g}s]"
        return text

    def __reduce__(self) -> tuple[Any, ...]:
        # Keep exceptions picklable (e.g. across multiprocessing) with their
        # details; grpc's call object is not picklable, so it stays behind.
        state = self.__dict__.copy()
        state["rpc_error"] = None
        return (_rebuild, (type(self), self.details, state))


def _rebuild(cls: type[WasmWizError], details: str, state: dict[str, Any]) -> WasmWizError:
    err = cls.__new__(cls)
    Exception.__init__(err, details)
    err.__dict__.update(state)
    return err


class Unauthenticated(WasmWizError):
    """The API key is missing, malformed, unknown, expired or revoked."""

    default_code = grpc.StatusCode.UNAUTHENTICATED


class MissingApiKey(Unauthenticated):
    """The client has no API key, so nothing was sent.

    Raised by every call that needs a key (all but ``health``) when neither
    ``api_key=`` nor ``$WASMWIZ_API_KEY`` gave one. A key the server refuses
    raises :class:`Unauthenticated` instead.
    """

    def __init__(self, details: str = "", **kwargs: Any) -> None:
        super().__init__(
            details
            or "no API key: pass api_key='wwz_...' or set WASMWIZ_API_KEY "
            "(nothing was sent to the server)",
            **kwargs,
        )


class PermissionDenied(WasmWizError):
    """The key is valid but may not make this call (e.g. an admin call with a user key)."""

    default_code = grpc.StatusCode.PERMISSION_DENIED


class InvalidArgument(WasmWizError):
    """The request was refused as invalid; ``violations`` names the fields.

    Example: a limit above the tier's maximum (field ``limits.fuel``, the
    maximum in the description).
    """

    default_code = grpc.StatusCode.INVALID_ARGUMENT


class InvalidModule(InvalidArgument):
    """The module was refused.

    It is not WebAssembly, fails validation, has no ``_start``, imports
    outside ``wasi_snapshot_preview1``, or is larger than the tier allows.

    ``violations`` lists what is wrong (field ``module``).
    """


class NotFound(WasmWizError):
    """The module (by sha256), key or user does not exist for this account.

    ``resource`` names it when the server says which.
    """

    default_code = grpc.StatusCode.NOT_FOUND


class RateLimited(WasmWizError):
    """The per-minute rate limit or the daily quota was hit.

    ``retry_after`` is the number of seconds to wait; ``quota_violations``
    says which allowance ran out.
    """

    default_code = grpc.StatusCode.RESOURCE_EXHAUSTED


class QuotaExceeded(WasmWizError):
    """A standing allowance is used up: stored modules or bytes, or live API keys.

    Waiting does not help (so it is not a :class:`RateLimited` and is never
    retried): delete modules or revoke a key first. ``quota_violations``
    names it (``stored modules``, ``stored module bytes``, ``api keys``).
    Uploads per minute and concurrent uploads are :class:`RateLimited`.
    """

    default_code = grpc.StatusCode.RESOURCE_EXHAUSTED


class Unavailable(WasmWizError):
    """The server is saturated, draining, or could not be reached.

    ``retry_after`` is set when the server suggested a delay.
    """

    default_code = grpc.StatusCode.UNAVAILABLE


class DeadlineExceeded(WasmWizError):
    """The call's client-side deadline (``timeout``) passed."""

    default_code = grpc.StatusCode.DEADLINE_EXCEEDED


class UploadIdle(DeadlineExceeded):
    """The server abandoned an upload that sent nothing for a while.

    The while is the tier's ``upload_idle_timeout`` (see
    :class:`wasmwiz.TierLimits`); the ``error_info`` metadata has ``timeout_ms``.
    """


_BY_CODE: dict[grpc.StatusCode, type[WasmWizError]] = {
    grpc.StatusCode.UNAUTHENTICATED: Unauthenticated,
    grpc.StatusCode.PERMISSION_DENIED: PermissionDenied,
    grpc.StatusCode.INVALID_ARGUMENT: InvalidArgument,
    grpc.StatusCode.NOT_FOUND: NotFound,
    grpc.StatusCode.RESOURCE_EXHAUSTED: RateLimited,
    grpc.StatusCode.UNAVAILABLE: Unavailable,
    grpc.StatusCode.DEADLINE_EXCEEDED: DeadlineExceeded,
}


def _call_method(obj: object, name: str) -> Any:
    method = getattr(obj, name, None)
    if not callable(method):
        return None
    try:
        return method()
    except Exception:  # pragma: no cover - defensive: odd RpcError subclasses
        return None


def metadata_pairs(raw: Any) -> list[tuple[str, Union[str, bytes]]]:
    """Normalise sync (tuple of pairs) and aio (``grpc.aio.Metadata``) metadata to pairs."""
    if not raw:
        return []
    pairs: list[tuple[str, Union[str, bytes]]] = []
    for item in raw:
        if isinstance(item, tuple) and len(item) == 2:
            pairs.append((str(item[0]), item[1]))
        else:  # a metadatum object with .key/.value
            pairs.append((str(getattr(item, "key", "")), getattr(item, "value", b"")))
    return pairs


def _parse_retry_after(value: Union[str, bytes]) -> Optional[float]:
    text = value.decode("ascii", "replace") if isinstance(value, bytes) else value
    try:
        seconds = float(text.strip())
    except ValueError:
        return None
    return max(seconds, 0.0)


def from_rpc_error(err: BaseException) -> WasmWizError:
    """Turn a gRPC error into the matching :class:`WasmWizError` subclass.

    The single choke point of the SDK: both clients call it for every failed
    call. Works with ``grpc.RpcError`` from the sync API and
    ``grpc.aio.AioRpcError`` from the asyncio API.

    Args:
        err: The exception raised by grpcio.

    Returns:
        The exception to raise (not raised here), with ``err`` as its
        ``rpc_error``; raise it ``from None``.
    """
    code = _call_method(err, "code")
    if not isinstance(code, grpc.StatusCode):
        code = grpc.StatusCode.UNKNOWN
    details = _call_method(err, "details")
    message = details if isinstance(details, str) else str(err)
    metadata = metadata_pairs(_call_method(err, "trailing_metadata"))

    violations: list[FieldViolation] = []
    quota: list[QuotaViolation] = []
    resource: Optional[ResourceInfo] = None
    error_info: Optional[ErrorInfo] = None
    retry_after: Optional[float] = None
    header_retry_after: Optional[float] = None

    for key, value in metadata:
        lowered = key.lower()
        if lowered == _STATUS_DETAILS_KEY and isinstance(value, bytes):
            try:
                status = status_pb2.Status.FromString(value)
            except DecodeError:
                continue
            if not message and status.message:
                message = status.message
            for any_detail in status.details:
                if any_detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
                    bad_request = error_details_pb2.BadRequest()
                    any_detail.Unpack(bad_request)
                    violations.extend(
                        FieldViolation(v.field, v.description, v.reason)
                        for v in bad_request.field_violations
                    )
                elif any_detail.Is(error_details_pb2.RetryInfo.DESCRIPTOR):
                    retry_info = error_details_pb2.RetryInfo()
                    any_detail.Unpack(retry_info)
                    delay = retry_info.retry_delay
                    retry_after = max(delay.seconds + delay.nanos / 1e9, 0.0)
                elif any_detail.Is(error_details_pb2.QuotaFailure.DESCRIPTOR):
                    quota_failure = error_details_pb2.QuotaFailure()
                    any_detail.Unpack(quota_failure)
                    quota.extend(
                        QuotaViolation(v.subject, v.description) for v in quota_failure.violations
                    )
                elif any_detail.Is(error_details_pb2.ResourceInfo.DESCRIPTOR):
                    info = error_details_pb2.ResourceInfo()
                    any_detail.Unpack(info)
                    resource = ResourceInfo(
                        info.resource_type, info.resource_name, info.owner, info.description
                    )
                elif any_detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
                    einfo = error_details_pb2.ErrorInfo()
                    any_detail.Unpack(einfo)
                    error_info = ErrorInfo(einfo.reason, einfo.domain, dict(einfo.metadata))
        elif lowered == _RETRY_AFTER_KEY:
            header_retry_after = _parse_retry_after(value)

    if retry_after is None:
        retry_after = header_retry_after

    cls = _BY_CODE.get(code, WasmWizError)
    if cls is RateLimited and any(v.subject in _STANDING_QUOTAS for v in quota):
        cls = QuotaExceeded
    if cls is DeadlineExceeded and error_info is not None and error_info.reason == UPLOAD_IDLE:
        cls = UploadIdle
    if cls is InvalidArgument and any(
        v.field == f or v.field.startswith(f + ".") for v in violations for f in _MODULE_FIELDS
    ):
        cls = InvalidModule

    return cls(
        message,
        code=code,
        violations=violations,
        retry_after=retry_after,
        quota_violations=quota,
        resource=resource,
        error_info=error_info,
        metadata=[(k, v) for k, v in metadata if k.lower() != _STATUS_DETAILS_KEY],
        rpc_error=err,
    )
