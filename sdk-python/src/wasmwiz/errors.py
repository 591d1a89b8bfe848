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
INVALID_ARGUMENT       :class:`InvalidArgument`     ``violations``
  (about the module)   :class:`InvalidModule`       ``violations``
NOT_FOUND              :class:`NotFound`            ``resource``
RESOURCE_EXHAUSTED     :class:`RateLimited`         ``retry_after``, ``quota_violations``
UNAVAILABLE            :class:`Unavailable`         ``retry_after``
DEADLINE_EXCEEDED      :class:`DeadlineExceeded`
anything else          :class:`WasmWizError`
=====================  ===========================  ==========================

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
    "MissingApiKey",
    "NotFound",
    "PermissionDenied",
    "QuotaViolation",
    "RateLimited",
    "ResourceInfo",
    "Unauthenticated",
    "Unavailable",
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
        super().__init__(self._describe())

    def _describe(self) -> str:
        """``CODE: details``, plus the violations and the retry delay the details do not say.

        The server's message often is the violation itself; repeating it
        would make ``str()`` say everything twice.
        """
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


class Unavailable(WasmWizError):
    """The server is saturated, draining, or could not be reached.

    ``retry_after`` is set when the server suggested a delay.
    """

    default_code = grpc.StatusCode.UNAVAILABLE


class DeadlineExceeded(WasmWizError):
    """The call's client-side deadline (``timeout``) passed."""

    default_code = grpc.StatusCode.DEADLINE_EXCEEDED


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
