"""Plumbing shared by the sync and asyncio clients.

Everything here is transport-free: parsing the URL, resolving what
``module=`` means, hashing and chunking modules, and building request
messages. The two clients only differ in how they call the stubs.
"""

from __future__ import annotations

import dataclasses
import datetime
import hashlib
import os
import re
from collections.abc import AsyncIterable, AsyncIterator, Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, Callable, Generic, Optional, Protocol, TypeVar, Union
from urllib.parse import urlsplit

from google.protobuf import timestamp_pb2

from ._proto import account_pb2, execution_pb2, module_pb2, receipt_pb2
from ._types import BatchCase, ModuleInfo, TierLimits
from ._version import __version__
from .errors import FieldViolation, InvalidArgument, InvalidModule, LimitExceeded, human_size
from .files import FilesLike, Filesystem, as_filesystem, check_collect, check_total
from .limits import Limits, LimitsLike

#: Modules up to this size are sent inline with the run request; larger ones
#: are uploaded in chunks first (skipped when the server has them) and run by hash.
INLINE_LIMIT = 1024 * 1024
#: Chunk size of uploads.
CHUNK_SIZE = 1024 * 1024
#: gRPC message size limit of the channel (PutModule and Run carry whole modules).
MAX_MESSAGE_BYTES = 260 * 1024 * 1024
#: Input files up to this many bytes in all travel inside the ``Run`` request;
#: more are streamed over ``Execute`` as ``fs_chunk`` pieces of at most 1 MiB.
FS_INLINE_LIMIT = 1024 * 1024

USER_AGENT = f"wasmwiz-python/{__version__}"
#: Where a client connects without ``url=`` or ``$WASMWIZ_URL``: the server's default address.
DEFAULT_URL = "http://127.0.0.1:8080"

_SHA256 = re.compile(r"^(?:sha256:)?([0-9a-fA-F]{64})$")

#: What ``module=`` accepts: a path (``str`` or ``os.PathLike``), the module's
#: bytes, its sha256 (64 hex digits, optionally prefixed ``sha256:``) or a
#: :class:`ModuleInfo`.
ModuleLike = Union[str, "os.PathLike[str]", bytes, bytearray, memoryview, ModuleInfo]
#: What :meth:`upload` accepts: a path or the module's bytes.
UploadLike = Union[str, "os.PathLike[str]", bytes, bytearray, memoryview]
#: Bytes for stdin or expected output; ``str`` is UTF-8 encoded.
Data = Union[bytes, bytearray, memoryview, str]


#: A binary stream to read stdin from (an open file, ``sys.stdin.buffer``, ...).
class Readable(Protocol):
    """Anything with ``read(n) -> bytes``."""

    def read(self, size: int = ..., /) -> bytes:
        """Read at most ``size`` bytes; ``b""`` at the end."""
        ...


#: What ``stdin=`` of the sync client accepts: all of it at once (``Data``),
#: or chunks fed to the guest while it runs (an iterable of bytes, or a file).
StdinLike = Union[Data, Iterable[Data], Readable]
#: What ``stdin=`` of the asyncio client accepts: ``StdinLike`` or an async iterable.
AsyncStdinLike = Union[StdinLike, AsyncIterable[Data]]
#: Chunk size when stdin is read from a file.
STDIN_CHUNK = 64 * 1024
#: Upload progress callback: ``progress(bytes_done, bytes_total)``.
ProgressCallback = Callable[[int, int], Any]
#: What ``cases=`` of :meth:`run_batch` accepts per case.
CaseLike = Union[BatchCase, Mapping[str, Any]]
#: What ``cache=`` accepts: ``None`` (off), ``"use"`` or ``"refresh"``.
CacheLike = Optional[str]

_CACHE_POLICIES = {
    None: receipt_pb2.CACHE_POLICY_UNSPECIFIED,
    "off": receipt_pb2.CACHE_POLICY_UNSPECIFIED,
    "use": receipt_pb2.CACHE_POLICY_USE,
    "refresh": receipt_pb2.CACHE_POLICY_REFRESH,
}


def cache_policy(cache: CacheLike) -> receipt_pb2.CachePolicy.ValueType:
    """``cache=`` as the ``CachePolicy`` the server takes; anything else is refused."""
    try:
        return _CACHE_POLICIES[cache]
    except (KeyError, TypeError):
        said = f"cache must be None, 'use' or 'refresh', not {cache!r}"
        raise InvalidArgument(said, violations=[FieldViolation("cache", said)]) from None


def refuse_streamed_cache(cache: CacheLike) -> None:
    """Streamed stdin cannot be part of the cache's key: refuse it as the server would."""
    if cache_policy(cache) != receipt_pb2.CACHE_POLICY_UNSPECIFIED:
        said = (
            "streamed stdin cannot be part of the result cache's key: give stdin whole "
            "(bytes or str), or leave cache unset"
        )
        raise InvalidArgument(
            f"{said} (checked before sending)", violations=[FieldViolation("cache", said)]
        )


def refuse_unsendable_submit(stdin: object, fs: Optional[InputFs]) -> None:
    """A detached run is one message: refuse streamed stdin or files above 1 MiB before sending."""
    if is_streamed(stdin):
        said = "a detached execution takes stdin whole (bytes or str), not streamed"
        raise InvalidArgument(
            f"{said} (checked before sending)", violations=[FieldViolation("stdin", said)]
        )
    if streams_files(fs):
        said = (
            f"a detached execution's input files travel in its one request: at most "
            f"{human_size(FS_INLINE_LIMIT)} in all"
        )
        raise InvalidArgument(
            f"{said} (checked before sending)", violations=[FieldViolation("files", said)]
        )


# --------------------------------------------------------------------------- connection


@dataclasses.dataclass(frozen=True)
class Target:
    """Where to connect: ``host:port`` and whether to use TLS."""

    address: str
    secure: bool


def parse_url(url: Optional[str]) -> Target:
    """Parse ``http://host:port`` (plaintext) or ``https://host[:port]`` (TLS).

    ``None`` reads the ``WASMWIZ_URL`` environment variable, else uses
    :data:`DEFAULT_URL` (a server started with no options, as the CLI does).
    A bare ``host:port`` means plaintext.
    """
    if url is None:
        url = os.environ.get("WASMWIZ_URL") or DEFAULT_URL
    if "://" not in url:
        url = "http://" + url
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https"):
        raise ValueError(f"unsupported URL scheme {parts.scheme!r}: use http:// or https://")
    if not parts.hostname:
        raise ValueError(f"no host in URL {url!r}")
    if parts.path not in ("", "/"):
        raise ValueError(f"a WasmWiz URL has no path: {url!r}")
    secure = parts.scheme == "https"
    port = parts.port or (443 if secure else 80)
    host = parts.hostname
    if ":" in host:  # IPv6 literal
        host = f"[{host}]"
    return Target(f"{host}:{port}", secure)


def resolve_api_key(api_key: Optional[str]) -> Optional[str]:
    """The key to send: ``api_key``, else ``$WASMWIZ_API_KEY``, else none."""
    if api_key is not None:
        return api_key
    return os.environ.get("WASMWIZ_API_KEY") or None


def channel_options(
    extra: Sequence[tuple[str, Any]], user_agent: Optional[str]
) -> list[tuple[str, Any]]:
    """gRPC channel options: big messages, our user agent, then the caller's."""
    agent = USER_AGENT if not user_agent else f"{user_agent} {USER_AGENT}"
    options: list[tuple[str, Any]] = [
        ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
        ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
        ("grpc.primary_user_agent", agent),
    ]
    options.extend(extra)
    return options


def call_metadata(api_key: Optional[str]) -> tuple[tuple[str, str], ...]:
    """Per-call metadata (the bearer key)."""
    if not api_key:
        return ()
    return (("authorization", f"Bearer {api_key}"),)


def effective_timeout(call_timeout: Optional[float], default: Optional[float]) -> Optional[float]:
    """A call's deadline in seconds: its own ``timeout=``, else the client's."""
    return call_timeout if call_timeout is not None else default


# --------------------------------------------------------------------------- modules


@dataclasses.dataclass(frozen=True)
class Source:
    """What ``module=`` resolved to: a stored module's hash, bytes, or a file.

    Exactly one of ``sha256``-only (a reference), ``data`` or ``path`` is the
    origin; ``sha256`` may also be filled in for bytes/files once hashed.
    """

    sha256: Optional[str] = None
    data: Optional[bytes] = None
    path: Optional[Path] = None
    size: int = 0

    @property
    def is_reference(self) -> bool:
        """True for a module known only by its sha256."""
        return self.data is None and self.path is None


def normalize_sha256(value: str) -> Optional[str]:
    """The lowercase hex digest if ``value`` looks like a sha256, else ``None``."""
    match = _SHA256.match(value.strip())
    return match.group(1).lower() if match else None


def resolve_module(module: ModuleLike, inline_limit: int) -> Source:
    """Resolve ``module=``; small files are read into memory, large ones stay on disk.

    A ``str`` of 64 hex digits (or ``sha256:<hex>``) is a stored module's hash;
    any other ``str`` and any ``os.PathLike`` is a file path.
    """
    if isinstance(module, ModuleInfo):
        return Source(sha256=module.sha256, size=module.size)
    if isinstance(module, (bytes, bytearray, memoryview)):
        data = bytes(module)
        return Source(data=data, size=len(data))
    if isinstance(module, str):
        digest = normalize_sha256(module)
        if digest is not None:
            return Source(sha256=digest)
    if isinstance(module, (str, os.PathLike)):
        path = Path(module)
        size = path.stat().st_size  # FileNotFoundError for a missing file
        if size <= inline_limit:
            data = path.read_bytes()
            return Source(data=data, size=len(data))
        return Source(path=path, size=size)
    raise TypeError(
        "module must be a path, bytes, a sha256 hex string or a ModuleInfo, "
        f"not {type(module).__name__}"
    )


#: Modules up to this size are sent without checking them against the tier
#: first: every tier takes them, and the check costs one ``WhoAmI``.
SIZE_CHECK_THRESHOLD = 1024 * 1024


def needs_size_check(source: Source) -> bool:
    """True for module bytes large enough to check against the tier before sending."""
    return not source.is_reference and source.size > SIZE_CHECK_THRESHOLD


def module_too_large(size: int, limits: TierLimits) -> Optional[InvalidModule]:
    """The error to raise, without sending anything, for a module above the tier's maximum.

    It reads like the server's own refusal (``INVALID_ARGUMENT`` on
    ``module`` with :class:`~wasmwiz.LimitExceeded`), but ``rpc_error`` is
    ``None``: no bytes left this machine.
    """
    if size <= limits.max_module_bytes:
        return None
    limit = LimitExceeded("module", size, limits.max_module_bytes, "bytes", limits.tier)
    return InvalidModule(
        f"{limit.message} (checked before uploading)",
        violations=[
            FieldViolation(
                "module", f"the maximum is {limits.max_module_bytes}; this module has {size}"
            )
        ],
        limit=limit,
    )


def upload_source(module: UploadLike) -> Source:
    """Resolve what :meth:`upload` accepts: a path or bytes (never read big files whole)."""
    if isinstance(module, (bytes, bytearray, memoryview)):
        data = bytes(module)
        return Source(data=data, size=len(data))
    if isinstance(module, (str, os.PathLike)):
        path = Path(module)
        return Source(path=path, size=path.stat().st_size)
    raise TypeError(f"upload() takes a path or bytes, not {type(module).__name__}")


def iter_chunks(source: Source, chunk_size: int) -> Iterator[bytes]:
    """The module's bytes in chunks of at most ``chunk_size``."""
    if source.data is not None:
        view = memoryview(source.data)
        for offset in range(0, len(view), chunk_size):
            yield bytes(view[offset : offset + chunk_size])
        return
    if source.path is None:
        raise ValueError("a module reference has no bytes")
    with source.path.open("rb") as handle:
        while True:
            chunk = handle.read(chunk_size)
            if not chunk:
                return
            yield chunk


def hash_source(source: Source, chunk_size: int = CHUNK_SIZE) -> Source:
    """Fill in ``sha256`` (and the exact ``size``) of bytes or a file."""
    if source.sha256 is not None and not source.is_reference:
        return source
    digest = hashlib.sha256()
    size = 0
    for chunk in iter_chunks(source, chunk_size):
        digest.update(chunk)
        size += len(chunk)
    return dataclasses.replace(source, sha256=digest.hexdigest(), size=size)


def upload_requests(
    source: Source,
    chunk_size: int,
    progress: Optional[ProgressCallback],
) -> Iterator[module_pb2.UploadModuleRequest]:
    """``start`` then the chunks; calls ``progress`` as each chunk is taken."""
    start = module_pb2.UploadStart(size=source.size)
    if source.sha256 is not None:
        start.sha256 = source.sha256
    yield module_pb2.UploadModuleRequest(start=start)
    done = 0
    if progress is not None:
        progress(0, source.size)
    for chunk in iter_chunks(source, chunk_size):
        yield module_pb2.UploadModuleRequest(chunk=chunk)
        done += len(chunk)
        if progress is not None:
            progress(done, source.size)


# --------------------------------------------------------------------------- requests


def to_bytes(value: Data, what: str) -> bytes:
    """``str`` -> UTF-8; bytes-likes -> bytes."""
    if isinstance(value, str):
        return value.encode("utf-8")
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value)
    raise TypeError(f"{what} must be bytes or str, not {type(value).__name__}")


def check_args(args: Sequence[str]) -> list[str]:
    """argv[1..] as a list of str (a lone ``str`` is refused: it is not a list)."""
    if isinstance(args, (str, bytes)):
        raise TypeError("args must be a sequence of strings, e.g. ['--n', '3'], not a string")
    result = list(args)
    for arg in result:
        if not isinstance(arg, str):
            raise TypeError(f"every arg must be a str, not {type(arg).__name__}")
    return result


def check_env(env: Optional[Mapping[str, str]]) -> dict[str, str]:
    """The guest's environment as a dict of str (nothing is inherited)."""
    if env is None:
        return {}
    result = dict(env)
    for key, value in result.items():
        if not isinstance(key, str) or not isinstance(value, str):
            raise TypeError("env must map str to str")
    return result


@dataclasses.dataclass(frozen=True)
class InputFs:
    """What ``files=`` and ``collect=`` resolved to.

    ``tree`` is ``None`` when only ``collect`` was given: the guest still
    gets an (empty) filesystem.
    """

    tree: Optional[Filesystem]
    collect: list[str]

    @property
    def total_bytes(self) -> int:
        """Bytes of all input file contents."""
        return self.tree.total_bytes if self.tree is not None else 0

    def inline(self) -> execution_pb2.Filesystem:
        """The whole tree as one ``Filesystem`` message."""
        entries = self.tree.to_entries() if self.tree is not None else []
        return execution_pb2.Filesystem(entries=entries, collect=self.collect)


def fs_limit(limits: LimitsLike) -> Optional[int]:
    """``fs_bytes`` of ``limits=``, when given."""
    coerced = Limits.coerce(limits)
    return coerced.fs_bytes if coerced is not None else None


def input_fs(
    files: Optional[FilesLike], collect: Sequence[str], limits: LimitsLike, field: str = "fs"
) -> Optional[InputFs]:
    """Resolve and check ``files=``/``collect=``; ``None``: the guest gets no filesystem.

    Paths were checked as the tree was built; the total is checked here
    against ``limits.fs_bytes`` when one is given.
    """
    tree = as_filesystem(files)
    patterns = check_collect(collect)
    if tree is None and not patterns:
        return None
    fs = InputFs(tree, patterns)
    check_total(fs.total_bytes, fs_limit(limits), field)
    return fs


def streams_files(fs: Optional[InputFs]) -> bool:
    """True when the input files are too big for one ``Run`` message (:data:`FS_INLINE_LIMIT`)."""
    return fs is not None and fs.total_bytes > FS_INLINE_LIMIT


def run_request(
    source: Source,
    *,
    stdin: Data,
    args: Sequence[str],
    env: Optional[Mapping[str, str]],
    limits: LimitsLike,
    seed: Optional[int],
    expected_stdout: Optional[Data],
    program_name: Optional[str],
    keep_module: bool,
    fs: Optional[InputFs] = None,
    cache: CacheLike = None,
    receipt: bool = False,
) -> execution_pb2.RunRequest:
    """Build a ``RunRequest`` for an inline module or a stored one (files inline)."""
    request = execution_pb2.RunRequest(
        stdin=to_bytes(stdin, "stdin"),
        args=check_args(args),
        env=check_env(env),
        program_name=program_name or "",
        random_seed=seed or 0,
        keep_module=keep_module,
        cache=cache_policy(cache),
        receipt=receipt,
    )
    if source.data is not None:
        request.module = source.data
    elif source.sha256 is not None:
        request.module_sha256 = source.sha256
    else:  # pragma: no cover - files are uploaded before we get here
        raise ValueError("a module file must be uploaded before running it by hash")
    coerced = Limits.coerce(limits)
    if coerced is not None:
        request.limits.CopyFrom(coerced.to_proto())
    if expected_stdout is not None:
        request.expected_stdout = to_bytes(expected_stdout, "expected_stdout")
    if fs is not None:
        request.fs.CopyFrom(fs.inline())
    return request


def is_streamed(stdin: object) -> bool:
    """True when ``stdin`` is fed while the guest runs (not given all at once)."""
    return not isinstance(stdin, (bytes, bytearray, memoryview, str))


def iter_stdin(stdin: StdinLike) -> Iterator[bytes]:
    """The chunks of a streamed ``stdin``: read from a file, or taken from an iterable."""
    if isinstance(stdin, (bytes, bytearray, memoryview, str)):
        yield to_bytes(stdin, "stdin")
        return
    read = getattr(stdin, "read", None)
    if callable(read):
        while True:
            chunk = read(STDIN_CHUNK)
            if not chunk:
                return
            yield to_bytes(chunk, "stdin chunk")
    elif isinstance(stdin, Iterable):
        for chunk in stdin:
            yield to_bytes(chunk, "stdin chunk")
    else:
        raise TypeError(
            f"stdin must be bytes, str, an iterable of bytes or a file, not {type(stdin).__name__}"
        )


def execute_head(
    source: Source,
    *,
    stdin: Optional[Data],
    args: Sequence[str],
    env: Optional[Mapping[str, str]],
    limits: LimitsLike,
    seed: Optional[int],
    expected_stdout: Optional[Data],
    program_name: Optional[str],
    keep_module: bool,
    chunk_size: int,
    fs: Optional[InputFs] = None,
    cache: CacheLike = None,
    receipt: bool = False,
    interactive: bool = False,
) -> Iterator[execution_pb2.ExecuteRequest]:
    """The first messages of an ``Execute`` stream.

    ``start``, then the module's chunks when it is sent inline. ``stdin=None``
    means streamed stdin (``stream_stdin``): the caller follows with the
    filesystem's pieces (:func:`fs_requests`, when ``fs`` is given), then
    ``stdin_chunk``s and ``stdin_eof``.
    """
    start = execution_pb2.ExecuteStart(
        args=check_args(args),
        env=check_env(env),
        program_name=program_name or "",
        random_seed=seed or 0,
        keep_module=keep_module,
        stream_stdin=stdin is None,
        cache=cache_policy(cache),
        receipt=receipt,
        interactive=interactive,
    )
    if stdin is not None:
        start.stdin = to_bytes(stdin, "stdin")
    if fs is not None:
        start.fs.CopyFrom(execution_pb2.Filesystem(collect=fs.collect))
    if source.data is not None:
        start.module_size = source.size
    elif source.sha256 is not None:
        start.module_sha256 = source.sha256
    else:  # pragma: no cover - files are uploaded before we get here
        raise ValueError("a module file must be uploaded before running it by hash")
    coerced = Limits.coerce(limits)
    if coerced is not None:
        start.limits.CopyFrom(coerced.to_proto())
    if expected_stdout is not None:
        start.expected_stdout = to_bytes(expected_stdout, "expected_stdout")
    yield execution_pb2.ExecuteRequest(start=start)
    if source.data is not None:
        for chunk in iter_chunks(source, chunk_size):
            yield execution_pb2.ExecuteRequest(module_chunk=chunk)


_I = TypeVar("_I")


class CapturingIterator(Generic[_I]):
    """A request iterator that remembers the exception it raised.

    grpcio consumes request iterators on its own thread and turns their
    exceptions into a bare CANCELLED; the clients re-raise the original.
    """

    def __init__(self, inner: Iterator[_I]) -> None:
        self._inner = inner
        self.error: Optional[BaseException] = None

    def __iter__(self) -> Iterator[_I]:
        return self

    def __next__(self) -> _I:
        try:
            return next(self._inner)
        except StopIteration:
            raise
        except BaseException as err:
            self.error = err
            if isinstance(err, Exception):
                raise
            # grpcio's request thread ends the call on an Exception only; a
            # KeyboardInterrupt (^C in a progress callback) would kill that
            # thread and leave the call hanging. The client re-raises `err`.
            raise RuntimeError("the request iterator was interrupted") from None


class CapturingAsyncIterator(Generic[_I]):
    """The asyncio twin of :class:`CapturingIterator`."""

    def __init__(self, inner: AsyncIterator[_I]) -> None:
        self._inner = inner
        self.error: Optional[BaseException] = None

    def __aiter__(self) -> AsyncIterator[_I]:
        return self

    async def __anext__(self) -> _I:
        try:
            return await self._inner.__anext__()
        except StopAsyncIteration:
            raise
        except BaseException as err:
            self.error = err
            raise


def fs_requests(fs: InputFs, piece_size: int) -> Iterator[execution_pb2.ExecuteRequest]:
    """The input tree as ``fs_chunk`` messages (files in pieces), then ``fs_eof``."""
    if fs.tree is not None:
        for entry in fs.tree.iter_pieces(piece_size):
            yield execution_pb2.ExecuteRequest(fs_chunk=entry)
    yield execution_pb2.ExecuteRequest(fs_eof=True)


def next_or_none(iterator: Iterator[_I]) -> Optional[_I]:
    """The iterator's next item, or ``None`` at its end (to step it from another thread)."""
    return next(iterator, None)


def stdin_chunk_request(chunk: bytes) -> execution_pb2.ExecuteRequest:
    """One ``stdin_chunk`` message."""
    return execution_pb2.ExecuteRequest(stdin_chunk=chunk)


def stdin_eof_request() -> execution_pb2.ExecuteRequest:
    """The ``stdin_eof`` message that ends the guest's stdin."""
    return execution_pb2.ExecuteRequest(stdin_eof=True)


def batch_case(
    case: CaseLike,
    index: int = 0,
    shared: Optional[InputFs] = None,
    fs_bytes: Optional[int] = None,
) -> execution_pb2.BatchCase:
    """Build a ``BatchCase`` from a :class:`BatchCase` or a dict of its fields.

    The case's own files are checked against ``fs_bytes`` together with the
    batch's ``shared`` files (the case starts from a copy of them).
    """
    if isinstance(case, Mapping):
        unknown = set(case) - {"stdin", "args", "expected_stdout", "name", "files", "collect"}
        if unknown:
            raise TypeError(f"unknown case field(s) {sorted(unknown)}")
        case = BatchCase(**case)
    if not isinstance(case, BatchCase):
        raise TypeError(f"a case must be a BatchCase or a dict, not {type(case).__name__}")
    msg = execution_pb2.BatchCase(
        stdin=to_bytes(case.stdin, "stdin"), args=check_args(case.args), name=case.name
    )
    if case.expected_stdout is not None:
        msg.expected_stdout = to_bytes(case.expected_stdout, "expected_stdout")
    own = input_fs(case.files, case.collect, None)
    if own is not None:
        check_total(_merged_total(shared, own), fs_bytes, field=f"cases[{index}].fs")
        msg.fs.CopyFrom(own.inline())
    return msg


def _merged_total(shared: Optional[InputFs], own: InputFs) -> int:
    """File bytes of a case's tree: the batch's files with the case's over them."""
    if shared is None or shared.tree is None:
        return own.total_bytes
    if own.tree is None:
        return shared.total_bytes
    return own.tree.total_bytes + shared.tree.total_bytes_except(own.tree.paths)


def run_batch_request(
    source: Source,
    cases: Sequence[CaseLike],
    *,
    env: Optional[Mapping[str, str]],
    limits: LimitsLike,
    seed: Optional[int],
    program_name: Optional[str],
    fs: Optional[InputFs] = None,
) -> execution_pb2.RunBatchRequest:
    """Build a ``RunBatchRequest`` (the shared tree and each case's files inline)."""
    fs_bytes = fs_limit(limits)
    request = execution_pb2.RunBatchRequest(
        cases=[batch_case(case, index, fs, fs_bytes) for index, case in enumerate(cases)],
        env=check_env(env),
        program_name=program_name or "",
        random_seed=seed or 0,
    )
    if source.data is not None:
        request.module = source.data
    elif source.sha256 is not None:
        request.module_sha256 = source.sha256
    else:  # pragma: no cover
        raise ValueError("a module file must be uploaded before running it by hash")
    coerced = Limits.coerce(limits)
    if coerced is not None:
        request.limits.CopyFrom(coerced.to_proto())
    if fs is not None:
        request.fs.CopyFrom(fs.inline())
    return request


def batch_request_builder(
    cases: Sequence[CaseLike],
    *,
    env: Optional[Mapping[str, str]],
    limits: LimitsLike,
    seed: Optional[int],
    program_name: Optional[str],
    fs: Optional[InputFs],
    cache: CacheLike = None,
    receipt: bool = False,
) -> Callable[[Source], execution_pb2.RunBatchRequest]:
    """Check the cases now (their files too); build the request once the module is resolved."""
    cases = list(cases)
    fs_bytes = fs_limit(limits)
    checked = [batch_case(case, index, fs, fs_bytes) for index, case in enumerate(cases)]
    policy = cache_policy(cache)

    def build(source: Source) -> execution_pb2.RunBatchRequest:
        request = run_batch_request(
            source, [], env=env, limits=limits, seed=seed, program_name=program_name, fs=fs
        )
        request.cases.extend(checked)
        request.cache = policy
        request.receipt = receipt
        return request

    return build


def usage_request(days: Optional[int], email: Optional[str] = None) -> account_pb2.GetUsageRequest:
    """Build a ``GetUsageRequest``."""
    return account_pb2.GetUsageRequest(email=email or "", days=days or 0)


def hash_arg(sha256: object) -> str:
    """A sha256 argument (hex string or ModuleInfo) as lowercase hex."""
    if isinstance(sha256, ModuleInfo):
        return sha256.sha256
    if not isinstance(sha256, str):
        raise TypeError(f"expected a sha256 hex string, not {type(sha256).__name__}")
    return normalize_sha256(sha256) or sha256


def timestamp_proto(value: Optional[datetime.datetime]) -> Optional[timestamp_pb2.Timestamp]:
    """A ``Timestamp`` from a datetime (naive = UTC); ``None`` stays ``None``."""
    if value is None:
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=datetime.timezone.utc)
    stamp = timestamp_pb2.Timestamp()
    stamp.FromDatetime(value.astimezone(datetime.timezone.utc))
    return stamp


# --------------------------------------------------------------------------- health

HEALTH_CHECK_METHOD = "/grpc.health.v1.Health/Check"
HEALTH_STATUSES = ("UNKNOWN", "SERVING", "NOT_SERVING", "SERVICE_UNKNOWN")


def encode_health_request(service: str) -> bytes:
    """Serialize ``grpc.health.v1.HealthCheckRequest{service}`` (field 1, string)."""
    raw = service.encode("utf-8")
    return b"\x0a" + _varint(len(raw)) + raw if raw else b""


def decode_health_response(data: bytes) -> str:
    """Parse ``HealthCheckResponse.status`` (field 1, enum) into its name."""
    status = 0
    i = 0
    while i < len(data):
        key, i = _read_varint(data, i)
        field, wire_type = key >> 3, key & 7
        if wire_type == 0:
            value, i = _read_varint(data, i)
            if field == 1:
                status = value
        elif wire_type == 2:
            length, i = _read_varint(data, i)
            i += length
        else:  # not produced by the health service
            break
    return HEALTH_STATUSES[status] if status < len(HEALTH_STATUSES) else "UNKNOWN"


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _read_varint(data: bytes, i: int) -> tuple[int, int]:
    shift = 0
    result = 0
    while i < len(data):
        byte = data[i]
        i += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            break
        shift += 7
    return result, i
