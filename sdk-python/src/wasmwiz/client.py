# Generated from aio.py by scripts/unasync.py. DO NOT EDIT:
# change aio.py and run sdk-python/scripts/unasync.py.
"""The blocking client, :class:`Client`.

This file is generated from the asyncio client (``aio.py``) by
``scripts/unasync.py``, so both have the same
methods, arguments and docstrings. Only I/O lives here; requests, results,
limits and errors are built by the shared modules.

Example::

    import wasmwiz
    with wasmwiz.Client("http://127.0.0.1:8080", api_key="wwz_...") as client:
        result = client.run("hello.wasm", limits={"memory": "64MiB", "timeout": 2.5})
        print(result.outcome.name, result.text)
    # SUCCESS Hello, WasmWiz!
"""

from __future__ import annotations

import builtins
import dataclasses
import datetime
import threading
from collections.abc import Iterator, Mapping, Sequence
from types import TracebackType
from typing import TYPE_CHECKING, Any, Callable, Generic, Optional, TypeVar, Union, cast

import grpc

from . import _common
from . import _sync_io as _io
from ._common import (
    CHUNK_SIZE,
    INLINE_LIMIT,
    CacheLike,
    CaseLike,
    Data,
    InputFs,
    ModuleLike,
    ProgressCallback,
    Source,
    StdinLike,
    UploadLike,
)
from ._jobs import (
    ExecutionInfo,
    ExecutionState,
    ExecutionSummary,
    SubmittedBatch,
    _InfoAssembler,
    check_page_size,
)
from ._proto import (
    account_pb2,
    account_pb2_grpc,
    admin_pb2,
    admin_pb2_grpc,
    execution_pb2,
    execution_pb2_grpc,
    module_pb2,
    module_pb2_grpc,
    server_pb2,
    server_pb2_grpc,
)
from ._types import (
    ApiKey,
    BatchResult,
    CaseResult,
    Event,
    ModuleInfo,
    NewApiKey,
    RateLimit,
    Result,
    ServerInfo,
    TierLimits,
    Usage,
    User,
    WhoAmI,
    _BatchAssembler,
    _event_from_proto,
    _ResultBuilder,
)
from .errors import MissingApiKey, NotFound, WasmWizError, from_rpc_error, metadata_pairs
from .files import PIECE_SIZE, FilesLike
from .limits import LimitsLike
from .retry import Retry, RetryLike

if TYPE_CHECKING:
    from ._sync_io import StreamCall

__all__ = [
    "Account",
    "Admin",
    "BatchStream",
    "Client",
    "DetachedExecution",
    "ExecutionStream",
    "Modules",
]

_T = TypeVar("_T")
_M = TypeVar("_M")
_Self = TypeVar("_Self", bound="_ServerStream[Any, Any]")


class _ServerStream(Generic[_M, _T]):
    """A server stream that converts messages and maps errors.

    The call starts on the first ``__next__``: ``resolve`` finds (and, when
    big, uploads) the module once, then ``open_call`` starts the RPC; errors
    that arrive before the first message are retried per the client's
    :class:`Retry` (unless ``retryable`` is false).
    """

    def __init__(
        self,
        client: Client,
        resolve: Callable[[], Source],
        open_call: Callable[[Source], StreamCall[_M]],
        convert: Callable[[_M], Optional[_T]],
        *,
        retryable: bool = True,
        local_error: Optional[Callable[[], Optional[BaseException]]] = None,
    ) -> None:
        self._client = client
        self._resolve = resolve
        self._open_call = open_call
        self._convert = convert
        self._retryable = retryable
        self._local_error = local_error
        self._call: Optional[StreamCall[_M]] = None
        self._messages: Optional[Iterator[_M]] = None
        self._first: Optional[_M] = None
        self._done = False
        self._rate_limit: Optional[RateLimit] = None

    def _open(self) -> None:
        try:
            source = self._resolve()
        except BaseException:
            self._done = True
            raise

        def attempt() -> tuple[StreamCall[_M], Iterator[_M], Optional[_M]]:
            call = self._open_call(source)
            messages = call.__iter__()
            try:
                first: Optional[_M] = messages.__next__()
            except StopIteration:
                first = None
            except BaseException:
                call.cancel()
                raise
            return call, messages, first

        try:
            call, messages, self._first = self._client._retrying(attempt, retry=self._retryable)
        except (WasmWizError, _io.Cancelled):
            # A failed start is final: iterating again yields nothing.
            self._done = True
            self._raise_local()
            raise
        except BaseException:
            self._done = True
            raise
        self._call, self._messages = call, messages
        try:
            metadata = call.initial_metadata()
            self._rate_limit = RateLimit._from_metadata(metadata_pairs(metadata))
        except grpc.RpcError:  # pragma: no cover - metadata of a failed call
            self._rate_limit = None
        if self._first is None:
            self._done = True

    def __iter__(self) -> Iterator[_T]:
        return self

    def __next__(self) -> _T:
        if self._call is None and not self._done:
            self._open()
        while True:
            if self._first is not None:
                msg, self._first = self._first, None
            elif self._done:
                raise StopIteration
            else:
                assert self._messages is not None
                try:
                    msg = self._messages.__next__()
                except StopIteration:
                    self._done = True
                    raise
                except grpc.RpcError as err:
                    self._done = True
                    self._raise_local()
                    raise from_rpc_error(err) from None
                except _io.Cancelled:
                    self._done = True
                    self._raise_local()
                    raise
            item = self._convert(msg)
            if item is not None:
                return item

    def _raise_local(self) -> None:
        """Raise what our request iterator raised, if that is why the call failed."""
        local = self._local_error() if self._local_error is not None else None
        if local is not None:
            raise local from None

    def cancel(self) -> None:
        """Stop the call; the server cancels the execution (``Outcome.CANCELLED``)."""
        if self._call is not None and not self._done:
            self._call.cancel()
        self._done = True

    def close(self) -> None:
        """Same as :meth:`cancel` (so ``contextlib.closing`` works)."""
        self.cancel()

    def __enter__(self: _Self) -> _Self:
        return self

    def __exit__(
        self,
        exc_type: Optional[type[BaseException]],
        exc: Optional[BaseException],
        tb: Optional[TracebackType],
    ) -> None:
        self.cancel()


class ExecutionStream(_ServerStream[execution_pb2.ExecuteEvent, Event]):
    r"""The events of one execution, as they arrive (from :meth:`Client.stream`).

    Iterate it for :class:`~wasmwiz.Started`, then :class:`~wasmwiz.Stdout` /
    :class:`~wasmwiz.Stderr` chunks in the order the guest wrote them, then
    the collected files' :class:`~wasmwiz.FilePiece`\ s, then one
    :class:`~wasmwiz.Finished`. Use it as a context manager to cancel the
    execution when you stop early; :meth:`result` collects the rest.

    Example::

        with client.stream("progress.wasm", args=["3"]) as events:
            for event in events:
                if isinstance(event, wasmwiz.Stdout):
                    print(event.data.decode(), end="")
    """

    def __init__(
        self,
        client: Client,
        resolve: Callable[[], Source],
        open_call: Callable[[Source], StreamCall[execution_pb2.ExecuteEvent]],
        *,
        retryable: bool = True,
        local_error: Optional[Callable[[], Optional[BaseException]]] = None,
    ) -> None:
        super().__init__(
            client,
            resolve,
            open_call,
            _event_from_proto,
            retryable=retryable,
            local_error=local_error,
        )
        self._builder = _ResultBuilder()

    def __next__(self) -> Event:
        event = super().__next__()
        self._builder.add(event)
        return event

    @property
    def rate_limit(self) -> Optional[RateLimit]:
        """The response's ``ratelimit-*`` headers, once the call started."""
        return self._rate_limit

    def result(self) -> Result:
        """Consume the remaining events and return the :class:`~wasmwiz.Result`.

        Raises:
            WasmWizError: The call failed, or the stream ended without a
                ``finished`` event.
        """
        for _ in self:
            pass
        if self._builder.finished is None:
            raise WasmWizError(
                "the server ended the stream before the execution finished",
                code=grpc.StatusCode.INTERNAL,
            )
        return self._builder.build(self._rate_limit)


class BatchStream(_ServerStream[execution_pb2.BatchEvent, CaseResult]):
    """Case results of a batch as each case finishes (any order of ``index``)."""

    def __init__(
        self,
        client: Client,
        resolve: Callable[[], Source],
        open_call: Callable[[Source], StreamCall[execution_pb2.BatchEvent]],
    ) -> None:
        super().__init__(client, resolve, open_call, _BatchAssembler())

    def result(self) -> BatchResult:
        """Consume the remaining results; return them in case order."""
        cases = [case for case in self]
        return BatchResult(tuple(sorted(cases, key=lambda case: case.index)))


class InteractiveSession:
    r"""A running interactive execution (from :meth:`Client.interactive`).

    :meth:`write` feeds the guest's stdin while it runs, :meth:`close` ends
    it (EOF), :meth:`cancel` stops the guest. Iterate the session for its
    events as they arrive (as :class:`ExecutionStream`), or await
    :meth:`result`. Bytes reach the guest in the order they were written.
    Used as a context manager, it cancels the execution when left early.

    Example::

        with client.interactive("calc.wasm") as session:
            session.write("1+2\n")
            session.close()
            print(session.result().text)  # > = 3\n> bye
    """

    def __init__(self, stream: ExecutionStream, stdin: _io.StdinQueue) -> None:
        self._stream = stream
        self._stdin = stdin
        self._closed = False

    def write(self, data: Data) -> None:
        """Send ``data`` (``str`` is UTF-8 encoded) to the guest's stdin.

        Raises:
            WasmWizError: FAILED_PRECONDITION after :meth:`close`, or once
                the execution has ended.
        """
        if self._closed:
            raise WasmWizError(
                "stdin was closed; no more writes", code=grpc.StatusCode.FAILED_PRECONDITION
            )
        if self._stream._done:
            raise WasmWizError(
                "the execution has ended; its stdin takes no more writes",
                code=grpc.StatusCode.FAILED_PRECONDITION,
            )
        chunk = _common.to_bytes(data, "data")
        if chunk:
            self._stdin.put(chunk)

    def close(self) -> None:
        """End the guest's stdin (EOF) after what was written; a second call does nothing."""
        if not self._closed:
            self._closed = True
            self._stdin.put(None)

    def cancel(self) -> None:
        """Stop the guest (the server cancels it); the session yields no more events."""
        self._closed = True
        self._stdin.end()
        self._stream.cancel()

    def __iter__(self) -> Iterator[Event]:
        return self

    def __next__(self) -> Event:
        return self._stream.__next__()

    def result(self) -> Result:
        """Consume the remaining events and return the :class:`~wasmwiz.Result`."""
        return self._stream.result()

    def __enter__(self) -> InteractiveSession:
        return self

    def __exit__(
        self,
        exc_type: Optional[type[BaseException]],
        exc: Optional[BaseException],
        tb: Optional[TracebackType],
    ) -> None:
        self.cancel()


#: Reconnections :meth:`DetachedExecution.events` makes in a row without
#: a new event before it gives up (the delay doubles from 0.1 s to 2 s).
WATCH_RECONNECTS = 5


class DetachedExecution:
    """A detached execution, by id (:meth:`Client.submit`, :meth:`Client.execution`).

    The execution runs on the server whether or not anyone watches: drop
    the handle, rebuild it later from :attr:`execution_id`, and collect the
    :meth:`result` then.

    Example::

        job = client.submit("echo.wasm", stdin=b"hi")
        print(job.execution_id)
        result = job.result()  # waits for it to finish
    """

    def __init__(self, client: Client, execution_id: str) -> None:
        self._client = client
        self.execution_id = execution_id

    def __repr__(self) -> str:
        return f"DetachedExecution({self.execution_id!r})"

    def _watch(self, timeout: Optional[float]) -> _ServerStream[execution_pb2.ExecuteEvent, Event]:
        client = self._client
        deadline = _common.effective_timeout(timeout, client.timeout)
        request = execution_pb2.WatchExecutionRequest(execution_id=self.execution_id)

        def resolve() -> Source:
            return Source()

        def open_call(_: Source) -> StreamCall[execution_pb2.ExecuteEvent]:
            return client._stubs().execution.WatchExecution(
                request, timeout=deadline, metadata=client._metadata
            )

        return _ServerStream(client, resolve, open_call, _event_from_proto)

    def events(self, *, timeout: Optional[float] = None) -> Iterator[Event]:
        r"""Every event of the execution: what already happened, then the rest as it happens.

        The server replays from :class:`~wasmwiz.Started`; the iteration
        ends after :class:`~wasmwiz.Finished` (or when the execution is
        cancelled). A dropped connection (``UNAVAILABLE``) is reconnected
        (up to ``WATCH_RECONNECTS`` times in a row) and the replayed events
        already yielded are skipped, so none is seen twice.

        Example::

            for event in job.events():
                if isinstance(event, wasmwiz.Stdout):
                    print(event.data.decode(), end="")
        """
        delivered = 0
        failures = 0
        while True:
            stream = self._watch(timeout)
            seen = 0
            try:
                for event in stream:
                    seen += 1
                    if seen <= delivered:
                        continue  # replayed: yielded before the reconnection
                    delivered += 1
                    failures = 0
                    yield event
                return
            except WasmWizError as err:
                if err.code != grpc.StatusCode.UNAVAILABLE or failures >= WATCH_RECONNECTS:
                    raise
                _io.sleep(min(0.1 * 2**failures, 2.0))
                failures += 1
            finally:
                stream.cancel()

    def result(self, *, timeout: Optional[float] = None) -> Result:
        """Wait for the execution to finish and return its :class:`~wasmwiz.Result`.

        ``result.execution_id`` is the execution's id (its attempts' usage
        records are :attr:`ExecutionInfo.attempt_execution_ids`).

        Raises:
            WasmWizError: CANCELLED when it was cancelled, or the error that
                refused its request when a replica began it.
        """
        builder = _ResultBuilder()
        for event in self.events(timeout=timeout):
            builder.add(event)
        if builder.finished is not None:
            return builder.build()
        info = self.get(timeout=timeout)
        if info.state is ExecutionState.CANCELLED:
            raise WasmWizError(
                f"execution {self.execution_id} was cancelled", code=grpc.StatusCode.CANCELLED
            )
        raise WasmWizError(
            info.error or f"execution {self.execution_id} ended without a result",
            code=grpc.StatusCode.INTERNAL,
        )

    def get(self, *, timeout: Optional[float] = None) -> ExecutionInfo:
        """Everything the server holds of it now: state, attempts, webhooks and all output.

        Follows ``GetExecution``'s pages (about 4 MiB each) to the end.
        """
        client = self._client
        assembler = _InfoAssembler()
        token = ""
        while True:
            request = execution_pb2.GetExecutionRequest(
                execution_id=self.execution_id, page_token=token
            )
            page = client._unary(client._stubs().execution.GetExecution, request, timeout)
            assembler.add(page)
            token = page.next_page_token
            if not token:
                return assembler.build()

    def status(self, *, timeout: Optional[float] = None) -> ExecutionSummary:
        """Its state, attempts and outcome (one ``GetExecution`` page; output not kept)."""
        client = self._client
        request = execution_pb2.GetExecutionRequest(execution_id=self.execution_id)
        page = client._unary(client._stubs().execution.GetExecution, request, timeout)
        return ExecutionSummary._from_proto(page.execution)

    def cancel(self, *, timeout: Optional[float] = None) -> ExecutionState:
        """Cancel it: a queued one at once, a running one within a lease renewal.

        Returns:
            ``ExecutionState.CANCELLED``, or ``FINISHED`` when it had
            already ended.
        """
        client = self._client
        request = execution_pb2.CancelExecutionRequest(execution_id=self.execution_id)
        response = client._unary(client._stubs().execution.CancelExecution, request, timeout)
        return ExecutionState(response.state)


def _execute_requests(
    head: Iterator[execution_pb2.ExecuteRequest],
    fs: Optional[InputFs],
    stdin: Optional[StdinLike],
    piece_size: int,
) -> Iterator[execution_pb2.ExecuteRequest]:
    """``start``, module chunks, the input files' pieces and ``fs_eof``, then streamed stdin.

    Local files are read one piece at a time (off the event loop, in the
    asyncio client). ``stdin``
    ``None`` means it went whole in ``start``.
    """
    yield from head
    if fs is not None:
        pieces = _common.fs_requests(fs, piece_size)
        while True:
            piece = _io.run_blocking(_common.next_or_none, pieces)
            if piece is None:
                break
            yield piece
    if stdin is None:
        return
    for data in _io.stdin_chunks(stdin):
        if data:
            yield _common.stdin_chunk_request(data)
    yield _common.stdin_eof_request()


class _Stubs:
    """The service stubs over one channel."""

    def __init__(self, channel: grpc.Channel) -> None:
        self.channel = channel
        self.execution = execution_pb2_grpc.ExecutionServiceStub(channel)
        self.modules = module_pb2_grpc.ModuleServiceStub(channel)
        self.account = account_pb2_grpc.AccountServiceStub(channel)
        self.admin = admin_pb2_grpc.AdminServiceStub(channel)
        self.server = server_pb2_grpc.ServerServiceStub(channel)


class Client:
    """WasmWiz client; thread-safe; the channel opens on first use.

    Close it with ``client.close()`` or ``with``.

    Args:
        url: ``"http://host:port"`` (plaintext) or ``"https://host"`` (TLS).
            ``None`` reads ``$WASMWIZ_URL``, else ``http://127.0.0.1:8080``.
        api_key: The ``wwz_...`` key; ``None`` reads ``$WASMWIZ_API_KEY``.
            Without one, calls that need a key raise
            :class:`~wasmwiz.MissingApiKey` before anything is sent.
        timeout: Default deadline of every call in seconds (``None``: no
            deadline). Each method also takes ``timeout=``.
        retry: ``True`` or a :class:`~wasmwiz.Retry` to retry rate-limited
            and unavailable calls, honouring the server's ``retry-after``.
        root_certificates: PEM roots for ``https://`` (default: the system's).
        user_agent: Prepended to the ``wasmwiz-python/VERSION`` user agent.
        options: Extra gRPC channel options.
        inline_limit: Modules up to this many bytes are sent with the run
            request; larger ones are uploaded first (see :meth:`upload`).
        chunk_size: Upload chunk size in bytes.

    Attributes:
        modules: Stored modules (:class:`Modules`).
        account: The caller's account and keys (:class:`Account`).
        admin: Operator calls, admin keys only (:class:`Admin`).

    Example::

        with wasmwiz.Client("http://127.0.0.1:8080", api_key=key) as client:
            print(client.run(b"...wasm bytes...", stdin=b"hi").stdout)
    """

    def __init__(
        self,
        url: Optional[str] = None,
        api_key: Optional[str] = None,
        timeout: Optional[float] = None,
        *,
        retry: RetryLike = None,
        root_certificates: Optional[bytes] = None,
        user_agent: Optional[str] = None,
        options: Sequence[tuple[str, Any]] = (),
        inline_limit: int = INLINE_LIMIT,
        chunk_size: int = CHUNK_SIZE,
    ) -> None:
        self._target = _common.parse_url(url)
        self._options = _common.channel_options(options, user_agent)
        self._root_certificates = root_certificates
        self.target = self._target.address
        self.timeout = timeout
        self.retry: Optional[Retry] = Retry.coerce(retry)
        self._auth = _common.call_metadata(_common.resolve_api_key(api_key))
        self._inline_limit = inline_limit
        self._chunk_size = chunk_size
        self._stubs_lock = threading.Lock()
        self._stubs_cache: Optional[_Stubs] = None
        self._tier_limits: Optional[TierLimits] = None
        self.modules = Modules(self)
        self.account = Account(self)
        self.admin = Admin(self)

    # ------------------------------------------------------------------ lifecycle

    def _stubs(self) -> _Stubs:
        """The channel's stubs; the channel is made on first use (once, under a lock)."""
        with self._stubs_lock:
            if self._stubs_cache is None:
                if self._target.secure:
                    credentials = grpc.ssl_channel_credentials(
                        root_certificates=self._root_certificates
                    )
                    channel = grpc.secure_channel(
                        self._target.address, credentials, options=self._options
                    )
                else:
                    channel = grpc.insecure_channel(self._target.address, options=self._options)
                self._stubs_cache = _Stubs(channel)
            return self._stubs_cache

    def close(self) -> None:
        """Close the channel (cancels calls still running)."""
        with self._stubs_lock:
            stubs, self._stubs_cache = self._stubs_cache, None
        if stubs is not None:
            stubs.channel.close()

    def __enter__(self) -> Client:
        self._stubs()
        return self

    def __exit__(
        self,
        exc_type: Optional[type[BaseException]],
        exc: Optional[BaseException],
        tb: Optional[TracebackType],
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Client({self.target!r})"

    # ------------------------------------------------------------------ plumbing

    @property
    def _metadata(self) -> tuple[tuple[str, str], ...]:
        """Per-call metadata; raises :class:`~wasmwiz.MissingApiKey` when there is no key."""
        if not self._auth:
            raise MissingApiKey()
        return self._auth

    def _retrying(self, attempt_fn: Callable[[], _T], *, retry: bool = True) -> _T:
        """Run ``attempt_fn``; map gRPC errors; retry per :attr:`retry` (if ``retry``)."""
        attempt = 1
        while True:
            try:
                try:
                    return attempt_fn()
                except grpc.RpcError as err:
                    raise from_rpc_error(err) from None
            except WasmWizError as err:
                delay = self.retry.delay(attempt, err) if self.retry and retry else None
                if delay is None:
                    raise
                _io.sleep(delay)
                attempt += 1

    def _unary(
        self,
        method: Callable[..., _T],
        request: Any,
        timeout: Optional[float],
        *,
        authenticated: bool = True,
    ) -> _T:
        deadline = _common.effective_timeout(timeout, self.timeout)

        def attempt() -> _T:
            metadata = self._metadata if authenticated else ()
            return method(request, timeout=deadline, metadata=metadata)

        return self._retrying(attempt)

    def _check_module_size(self, source: Source, timeout: Optional[float]) -> None:
        """Refuse a module above the tier's maximum before any of its bytes are sent.

        Only modules above ``SIZE_CHECK_THRESHOLD`` (1 MiB) are checked; the
        tier's limits come from one ``WhoAmI`` per client, kept for its life.
        """
        if not _common.needs_size_check(source):
            return
        if self._tier_limits is None:
            self._tier_limits = self.account.whoami(timeout=timeout).limits
        refused = _common.module_too_large(source.size, self._tier_limits)
        if refused is not None:
            raise refused

    def _runnable(self, module: ModuleLike, timeout: Optional[float]) -> Source:
        """Resolve ``module``; upload it first when it is too big to send inline."""
        source = _io.run_blocking(_common.resolve_module, module, self._inline_limit)
        self._check_module_size(source, timeout)
        if source.is_reference or (source.data is not None and source.size <= self._inline_limit):
            return source
        info = self._upload_source(source, None, self._chunk_size, timeout)
        return Source(sha256=info.sha256, size=info.size)

    # ------------------------------------------------------------------ execution

    def stream(
        self,
        module: ModuleLike,
        stdin: StdinLike = b"",
        args: Sequence[str] = (),
        env: Optional[Mapping[str, str]] = None,
        limits: LimitsLike = None,
        seed: Optional[int] = None,
        expected_stdout: Optional[Data] = None,
        *,
        files: Optional[FilesLike] = None,
        collect: Sequence[str] = (),
        program_name: Optional[str] = None,
        keep_module: bool = False,
        cache: CacheLike = None,
        receipt: bool = False,
        timeout: Optional[float] = None,
    ) -> ExecutionStream:
        r"""Run a module and yield its events as they arrive.

        Takes the same arguments as :meth:`run`. The call starts on the first
        iteration.

        Returns:
            An :class:`ExecutionStream` (iterator and context manager).

        Example::

            for event in client.stream("progress.wasm", args=["3"]):
                print(event)
            # Started(module_sha256='…', cache_hit=False, limits=Limits(…), execution_id='…',
            #         result_cache_hit=False, cached_from='')
            # Stdout(data=b'tick 0\n')
            # …
            # Finished(outcome=<Outcome.SUCCESS: 1>, exit_code=0, …)
        """
        deadline = _common.effective_timeout(timeout, self.timeout)
        fs = _common.input_fs(files, collect, limits)
        streamed = _common.is_streamed(stdin)
        if streamed:
            _common.refuse_streamed_cache(cache)
        else:
            _common.cache_policy(cache)

        def resolve() -> Source:
            return self._runnable(module, timeout)

        if streamed or _common.streams_files(fs):
            # stdin fed while the guest runs, or input files too big for one
            # message: the bidirectional Execute RPC. Streamed stdin is not
            # retried: its iterator cannot be replayed.
            def open_execute(source: Source) -> StreamCall[execution_pb2.ExecuteEvent]:
                head = _common.execute_head(
                    source,
                    stdin=None if streamed else cast(Data, stdin),
                    args=args,
                    env=env,
                    limits=limits,
                    seed=seed,
                    expected_stdout=expected_stdout,
                    program_name=program_name,
                    keep_module=keep_module,
                    chunk_size=self._chunk_size,
                    fs=fs,
                    cache=cache,
                    receipt=receipt,
                )
                requests = _common.CapturingIterator(
                    _execute_requests(
                        head, fs, stdin if streamed else None, min(self._chunk_size, PIECE_SIZE)
                    )
                )
                pumps.append(requests)
                return self._stubs().execution.Execute(
                    requests, timeout=deadline, metadata=self._metadata
                )

            pumps: list[_common.CapturingIterator[execution_pb2.ExecuteRequest]] = []
            return ExecutionStream(
                self,
                resolve,
                open_execute,
                retryable=not streamed,
                local_error=lambda: pumps[-1].error if pumps else None,
            )

        data = cast(Data, stdin)

        def open_call(source: Source) -> StreamCall[execution_pb2.ExecuteEvent]:
            request = _common.run_request(
                source,
                stdin=data,
                args=args,
                env=env,
                limits=limits,
                seed=seed,
                expected_stdout=expected_stdout,
                program_name=program_name,
                keep_module=keep_module,
                fs=fs,
                cache=cache,
                receipt=receipt,
            )
            return self._stubs().execution.Run(request, timeout=deadline, metadata=self._metadata)

        return ExecutionStream(self, resolve, open_call)

    def interactive(
        self,
        module: ModuleLike,
        stdin: Data = b"",
        args: Sequence[str] = (),
        env: Optional[Mapping[str, str]] = None,
        limits: LimitsLike = None,
        seed: Optional[int] = None,
        *,
        files: Optional[FilesLike] = None,
        collect: Sequence[str] = (),
        program_name: Optional[str] = None,
        keep_module: bool = False,
        timeout: Optional[float] = None,
    ) -> InteractiveSession:
        r"""Start an interactive execution: its stdin stays open for writes.

        Runs over ``Execute`` with ``stream_stdin`` and ``interactive``: the
        server counts only the guest's running time against ``timeout``,
        bounds each wait for input by the tier's idle timeout and the whole
        session by its session length. ``stdin`` is sent first; the other
        arguments are those of :meth:`run` (no result cache: a person types
        the input). Not a coroutine: the call starts on the first iteration
        (writes made before are queued).

        Example::

            session = client.interactive("calc.wasm")
            session.write("6*7\n")
            session.close()
            result = session.result()
            print(result.text)  # > = 42\n> bye
        """
        deadline = _common.effective_timeout(timeout, self.timeout)
        fs = _common.input_fs(files, collect, limits)
        first = _common.to_bytes(stdin, "stdin")
        queue = _io.StdinQueue()

        def resolve() -> Source:
            return self._runnable(module, timeout)

        def typed() -> Iterator[bytes]:
            if first:
                yield first
            yield from queue.chunks()

        def open_execute(source: Source) -> StreamCall[execution_pb2.ExecuteEvent]:
            head = _common.execute_head(
                source,
                stdin=None,
                args=args,
                env=env,
                limits=limits,
                seed=seed,
                expected_stdout=None,
                program_name=program_name,
                keep_module=keep_module,
                chunk_size=self._chunk_size,
                fs=fs,
                interactive=True,
            )
            requests = _common.CapturingIterator(
                _execute_requests(head, fs, typed(), min(self._chunk_size, PIECE_SIZE))
            )
            pumps.append(requests)
            return self._stubs().execution.Execute(
                requests, timeout=deadline, metadata=self._metadata
            )

        pumps: list[_common.CapturingIterator[execution_pb2.ExecuteRequest]] = []
        stream = ExecutionStream(
            self,
            resolve,
            open_execute,
            retryable=False,
            local_error=lambda: pumps[-1].error if pumps else None,
        )
        return InteractiveSession(stream, queue)

    def run(
        self,
        module: ModuleLike,
        stdin: StdinLike = b"",
        args: Sequence[str] = (),
        env: Optional[Mapping[str, str]] = None,
        limits: LimitsLike = None,
        seed: Optional[int] = None,
        expected_stdout: Optional[Data] = None,
        *,
        files: Optional[FilesLike] = None,
        collect: Sequence[str] = (),
        program_name: Optional[str] = None,
        keep_module: bool = False,
        cache: CacheLike = None,
        receipt: bool = False,
        timeout: Optional[float] = None,
    ) -> Result:
        r"""Run a module to completion.

        Args:
            module: A path, the module's bytes, or the sha256 of a module
                stored before. Modules above ``inline_limit`` (1 MiB) are
                uploaded first (skipped when the server has them) and run
                by hash. Modules above 1 MiB are checked against the tier's
                ``max_module_bytes`` first, without sending them.
            stdin: The guest's whole stdin (``bytes``; ``str`` is UTF-8
                encoded), or chunks fed to it while it runs: an iterable of
                bytes (e.g. a generator) or a binary file. Fed stdin uses the bidirectional
                ``Execute`` RPC and is never retried.
            args: argv[1..].
            env: The guest's environment (nothing else is inherited).
            limits: A :class:`~wasmwiz.Limits` or a dict of its arguments,
                e.g. ``{"memory": "64MiB", "timeout": 2.5}``.
            seed: Seed of the guest's ``random_get``.
            expected_stdout: When given, ``result.verdict`` says whether
                stdout matched it.
            files: The guest's input files: a mapping of path (relative,
                ``/``-separated) to contents, or a :class:`~wasmwiz.Filesystem`
                (also directories and symlinks; see
                :func:`~wasmwiz.files_from_dir`). Given (even empty), the guest
                gets a writable in-memory ``/``; paths and, with
                ``limits={"fs_bytes": ...}``, the total size are checked before
                anything is sent. Files above 1 MiB in all are streamed over
                ``Execute`` in 1 MiB pieces.
            collect: Glob patterns (``"out/*.png"``, ``"**"``) of files to get
                back in ``result.files``: each regular file that matches and
                was created or changed. Gives the guest a filesystem too.
            program_name: argv[0] (default ``main.wasm``).
            keep_module: With inline bytes, also store the module on the server.
            cache: ``"use"``: answer from the server's result cache when the
                same inputs ran before for this account (``result.result_cache_hit``,
                ``result.cached_from``), else run and store the result;
                ``"refresh"``: run and replace what the cache holds; ``None``
                (default): off. Needs stdin given whole: with streamed stdin it
                is refused (:class:`~wasmwiz.InvalidArgument` on ``cache``)
                before anything is sent.
            receipt: Ask for a signed receipt of the execution
                (``result.receipt``; see :mod:`wasmwiz.receipt`).
            timeout: Client-side deadline in seconds (overrides the client's).

        Returns:
            The :class:`~wasmwiz.Result`. Guest failures (traps, nonzero exits,
            limits) are results, not exceptions.

        Raises:
            MissingApiKey: The client has no API key.
            InvalidModule: The module is not an acceptable WASI command.
            InvalidArgument: E.g. a limit above the tier's maximum.
            NotFound: No stored module has that sha256.
            RateLimited: The rate limit or daily quota was hit.
            WasmWizError: Any other failure of the call.

        Example::

            r = client.run("echo.wasm", stdin=b"hi", limits={"fuel": "1e9"})
            print(r.stdout, r.outcome.name, r.exit_code)  # b'hi' SUCCESS 0
            r = client.run("fsreport.wasm", files={"input/a.txt": "a b\n"}, collect=["out/*"])
            print(r.files["out/report.txt"].decode())
        """
        return self.stream(
            module,
            stdin,
            args,
            env,
            limits,
            seed,
            expected_stdout,
            files=files,
            collect=collect,
            program_name=program_name,
            keep_module=keep_module,
            cache=cache,
            receipt=receipt,
            timeout=timeout,
        ).result()

    def stream_batch(
        self,
        module: ModuleLike,
        cases: Sequence[CaseLike],
        *,
        env: Optional[Mapping[str, str]] = None,
        limits: LimitsLike = None,
        seed: Optional[int] = None,
        program_name: Optional[str] = None,
        files: Optional[FilesLike] = None,
        collect: Sequence[str] = (),
        cache: CacheLike = None,
        receipt: bool = False,
        timeout: Optional[float] = None,
    ) -> BatchStream:
        """Like :meth:`run_batch`, yielding each :class:`~wasmwiz.CaseResult` as it finishes."""
        deadline = _common.effective_timeout(timeout, self.timeout)
        fs = _common.input_fs(files, collect, limits)
        request_of = _common.batch_request_builder(
            cases,
            env=env,
            limits=limits,
            seed=seed,
            program_name=program_name,
            fs=fs,
            cache=cache,
            receipt=receipt,
        )

        def resolve() -> Source:
            return self._runnable(module, timeout)

        def open_call(source: Source) -> StreamCall[execution_pb2.BatchEvent]:
            return self._stubs().execution.RunBatch(
                request_of(source), timeout=deadline, metadata=self._metadata
            )

        return BatchStream(self, resolve, open_call)

    def run_batch(
        self,
        module: ModuleLike,
        cases: Sequence[CaseLike],
        *,
        env: Optional[Mapping[str, str]] = None,
        limits: LimitsLike = None,
        seed: Optional[int] = None,
        program_name: Optional[str] = None,
        files: Optional[FilesLike] = None,
        collect: Sequence[str] = (),
        cache: CacheLike = None,
        receipt: bool = False,
        timeout: Optional[float] = None,
    ) -> BatchResult:
        """Run one module against many test cases (compiled once).

        Each case counts as one execution against rate limits and quotas.

        Args:
            module: As for :meth:`run`.
            cases: :class:`~wasmwiz.BatchCase` objects or dicts with ``stdin``,
                ``args``, ``expected_stdout``, ``name``, ``files``, ``collect``.
            env: Environment of every case.
            limits: Limits of each case.
            seed: PRNG seed of every case.
            program_name: argv[0] of every case.
            files: The tree every case starts from (each gets its own copy),
                as for :meth:`run`; a case's own ``files`` go over it. Sent
                inline: the whole request is one message.
            collect: Glob patterns of files every case sends back (in each
                :attr:`CaseResult.files`); a case may add its own.
            cache: The result cache policy of every case, as for :meth:`run`
                (each case is its own entry: ``case.result_cache_hit``).
            receipt: A signed receipt for every case (``case.receipt``).
            timeout: Client-side deadline of the whole batch, in seconds.

        Returns:
            A :class:`~wasmwiz.BatchResult`: the case results in case order.

        Example::

            batch = client.run_batch("echo.wasm", [
                {"stdin": "a", "expected_stdout": "a", "name": "same"},
                {"stdin": "b", "expected_stdout": "c", "name": "differs"},
            ])
            print(batch.ok, [case.name for case in batch.failed])  # False ['differs']
        """
        return self.stream_batch(
            module,
            cases,
            env=env,
            limits=limits,
            seed=seed,
            program_name=program_name,
            files=files,
            collect=collect,
            cache=cache,
            receipt=receipt,
            timeout=timeout,
        ).result()

    # ------------------------------------------------------------------ detached

    def submit(
        self,
        module: ModuleLike,
        stdin: Data = b"",
        args: Sequence[str] = (),
        env: Optional[Mapping[str, str]] = None,
        limits: LimitsLike = None,
        seed: Optional[int] = None,
        expected_stdout: Optional[Data] = None,
        *,
        webhook_url: Optional[str] = None,
        files: Optional[FilesLike] = None,
        collect: Sequence[str] = (),
        program_name: Optional[str] = None,
        keep_module: bool = False,
        cache: CacheLike = None,
        receipt: bool = False,
        timeout: Optional[float] = None,
    ) -> DetachedExecution:
        """Queue a run on the server and return at once; collect it later by id.

        Takes the arguments of :meth:`run` (stdin whole, input files at most
        1 MiB in all: the request is one message), checked by the server as
        ``Run`` would check them, plus ``webhook_url``: where the server POSTs
        a signed summary when it ends (see :mod:`wasmwiz.webhooks`; the
        account needs a secret first, :meth:`Account.rotate_webhook_secret`).

        Returns:
            An :class:`DetachedExecution`; its ``execution_id`` rebuilds
            it later (:meth:`execution`).

        Raises:
            InvalidArgument: The run, or ``webhook_url`` (not https, a
                private address, no secret yet).
            RateLimited: Too many executions queued or running (100).

        Example::

            job = client.submit("echo.wasm", stdin=b"hi", webhook_url="https://ci.example/hook")
            print(job.result().stdout)  # b'hi'
        """
        fs = _common.input_fs(files, collect, limits)
        _common.refuse_unsendable_submit(stdin, fs)
        _common.cache_policy(cache)
        source = self._runnable(module, timeout)
        run = _common.run_request(
            source,
            stdin=stdin,
            args=args,
            env=env,
            limits=limits,
            seed=seed,
            expected_stdout=expected_stdout,
            program_name=program_name,
            keep_module=keep_module,
            fs=fs,
            cache=cache,
            receipt=receipt,
        )
        request = execution_pb2.SubmitExecutionRequest(run=run, webhook_url=webhook_url or "")
        response = self._unary(self._stubs().execution.SubmitExecution, request, timeout)
        return DetachedExecution(self, response.execution_id)

    def execution(self, execution_id: str) -> DetachedExecution:
        """The handle of a detached execution submitted before (no call is made).

        Example::

            job = client.execution(saved_id)
            print(job.status().state)
        """
        if not isinstance(execution_id, str) or not execution_id:
            raise ValueError("execution_id must be a non-empty string")
        return DetachedExecution(self, execution_id)

    def get_execution(self, execution_id: str, *, timeout: Optional[float] = None) -> ExecutionInfo:
        """Shortcut for ``client.execution(execution_id).get()``.

        Raises:
            NotFound: No execution of this account has that id.
        """
        return self.execution(execution_id).get(timeout=timeout)

    def list_executions(
        self,
        state: Union[ExecutionState, str, None] = None,
        *,
        limit: Optional[int] = None,
        page_size: int = 50,
        timeout: Optional[float] = None,
    ) -> builtins.list[ExecutionSummary]:
        """The account's detached executions, newest first (follows pages up to ``limit``).

        Args:
            state: Only those in this :class:`~wasmwiz.ExecutionState` (or
                its name, ``"queued"``); ``None``: all.
            limit: At most this many (``None``: every page).
            page_size: Per call, 1 to 500.
            timeout: Client-side deadline of each call, in seconds.

        Example::

            for summary in client.list_executions("finished", limit=10):
                print(summary.execution_id, summary.outcome.name)
        """
        wanted = ExecutionState._coerce(state)
        check_page_size(page_size)
        found: builtins.list[ExecutionSummary] = []
        token = ""
        while limit is None or len(found) < limit:
            request = execution_pb2.ListExecutionsRequest(
                state=cast(execution_pb2.ExecutionState.ValueType, wanted.value),
                page_size=page_size,
                page_token=token,
            )
            response = self._unary(self._stubs().execution.ListExecutions, request, timeout)
            found.extend(ExecutionSummary._from_proto(msg) for msg in response.executions)
            token = response.next_page_token
            if not token:
                break
        return found if limit is None else found[:limit]

    def submit_batch(
        self,
        module: ModuleLike,
        cases: Sequence[CaseLike],
        *,
        webhook_url: Optional[str] = None,
        env: Optional[Mapping[str, str]] = None,
        limits: LimitsLike = None,
        seed: Optional[int] = None,
        program_name: Optional[str] = None,
        files: Optional[FilesLike] = None,
        collect: Sequence[str] = (),
        cache: CacheLike = None,
        receipt: bool = False,
        timeout: Optional[float] = None,
    ) -> SubmittedBatch:
        """Queue a batch (the arguments of :meth:`run_batch`): one detached execution per case.

        The webhook fires per case, then once more (``"batch.ended"``) when
        the last case has ended. Handles of the cases:
        ``[client.execution(i) for i in batch.execution_ids]``.
        """
        fs = _common.input_fs(files, collect, limits)
        request_of = _common.batch_request_builder(
            cases,
            env=env,
            limits=limits,
            seed=seed,
            program_name=program_name,
            fs=fs,
            cache=cache,
            receipt=receipt,
        )
        source = self._runnable(module, timeout)
        request = execution_pb2.SubmitBatchRequest(
            batch=request_of(source), webhook_url=webhook_url or ""
        )
        response = self._unary(self._stubs().execution.SubmitBatch, request, timeout)
        return SubmittedBatch(response.batch_id, tuple(response.execution_ids))

    # ------------------------------------------------------------------ shortcuts

    def upload(
        self,
        module: UploadLike,
        progress: Optional[ProgressCallback] = None,
        *,
        chunk_size: Optional[int] = None,
        timeout: Optional[float] = None,
    ) -> ModuleInfo:
        """Upload a module in chunks; skipped when the server already has it.

        The sha256 is computed locally first; when this account already
        stores that module, nothing is sent and the returned info has
        ``already_existed=True``.

        Args:
            module: A path or the module's bytes.
            progress: Called as ``progress(bytes_done, bytes_total)`` as
                chunks are handed to gRPC (from a gRPC thread), and once with
                ``(total, total)`` when the upload is skipped. What it raises
                is raised from here, as itself.
            chunk_size: Bytes per chunk (default 1 MiB).
            timeout: Client-side deadline in seconds.

        Returns:
            The stored module's :class:`~wasmwiz.ModuleInfo`; run it with
            ``client.run(info.sha256)`` (or ``client.run(info)``).

        Example::

            info = client.upload("big.wasm", progress=lambda done, total: print(done, total))
        """
        source = _common.upload_source(module)
        return self._upload_source(source, progress, chunk_size or self._chunk_size, timeout)

    def _upload_source(
        self,
        source: Source,
        progress: Optional[ProgressCallback],
        chunk_size: int,
        timeout: Optional[float],
    ) -> ModuleInfo:
        self._check_module_size(source, timeout)
        source = _io.run_blocking(_common.hash_source, source)
        assert source.sha256 is not None
        try:
            existing = self.modules.get(source.sha256, timeout=timeout)
        except NotFound:
            pass
        else:
            if progress is not None:
                progress(source.size, source.size)
            return dataclasses.replace(existing, already_existed=True)
        deadline = _common.effective_timeout(timeout, self.timeout)

        def attempt() -> module_pb2.ModuleInfo:
            return _io.stream_unary(
                self._stubs().modules.UploadModule,
                _common.upload_requests(source, chunk_size, progress),
                timeout=deadline,
                metadata=self._metadata,
            )

        return ModuleInfo._from_proto(self._retrying(attempt))

    def whoami(self, *, timeout: Optional[float] = None) -> WhoAmI:
        """Shortcut for :meth:`Account.whoami`."""
        return self.account.whoami(timeout=timeout)

    def server_info(self, *, timeout: Optional[float] = None) -> ServerInfo:
        """The server's version, engine and the public keys that verify receipts.

        Needs no API key.

        Example::

            info = client.server_info()
            verified = wasmwiz.receipt.verify(result.receipt, info.key(result.receipt.key_id))
        """
        response = self._unary(
            self._stubs().server.GetServerInfo,
            server_pb2.GetServerInfoRequest(),
            timeout,
            authenticated=False,
        )
        return ServerInfo._from_proto(response)

    def health(self, service: str = "", *, timeout: Optional[float] = None) -> str:
        """The server's ``grpc.health.v1`` status: ``"SERVING"``, ``"NOT_SERVING"``, ...

        Needs no API key. ``service`` names one service (``""``: the server).
        """
        method = self._stubs().channel.unary_unary(
            _common.HEALTH_CHECK_METHOD,
            request_serializer=_common.encode_health_request,
            response_deserializer=_common.decode_health_response,
        )
        return self._unary(method, service, timeout, authenticated=False)


class Modules:
    """Modules stored for the account (``client.modules``).

    Modules are content-addressed by sha256 and visible per account; run a
    stored one with ``client.run(sha256)``.
    """

    def __init__(self, client: Client) -> None:
        self._client = client

    def upload(
        self,
        module: UploadLike,
        progress: Optional[ProgressCallback] = None,
        *,
        chunk_size: Optional[int] = None,
        timeout: Optional[float] = None,
    ) -> ModuleInfo:
        """Same as :meth:`Client.upload`."""
        return self._client.upload(module, progress, chunk_size=chunk_size, timeout=timeout)

    def put(self, module: UploadLike, *, timeout: Optional[float] = None) -> ModuleInfo:
        """Store a module in one message (no chunking, no dedup check).

        Example::

            info = client.modules.put(Path("hello.wasm").read_bytes())
            client.run(info.sha256)
        """
        source = _common.upload_source(module)
        self._client._check_module_size(source, timeout)
        source = _io.run_blocking(_common.hash_source, source)
        data = b"".join(_common.iter_chunks(source, CHUNK_SIZE))
        request = module_pb2.PutModuleRequest(module=data, sha256=source.sha256)
        response = self._client._unary(self._client._stubs().modules.PutModule, request, timeout)
        return ModuleInfo._from_proto(response)

    def get(self, sha256: str, *, timeout: Optional[float] = None) -> ModuleInfo:
        """A stored module's info (size, imports, exports, created).

        Raises:
            NotFound: This account has no module with that hash.
        """
        request = module_pb2.GetModuleRequest(sha256=_common.hash_arg(sha256))
        response = self._client._unary(self._client._stubs().modules.GetModule, request, timeout)
        return ModuleInfo._from_proto(response)

    def exists(self, sha256: str, *, timeout: Optional[float] = None) -> bool:
        """True when this account stores a module with that hash."""
        try:
            self.get(sha256, timeout=timeout)
        except NotFound:
            return False
        return True

    def list(
        self,
        *,
        limit: Optional[int] = None,
        page_size: int = 100,
        details: bool = False,
        timeout: Optional[float] = None,
    ) -> builtins.list[ModuleInfo]:
        """The account's modules, newest first (follows pages up to ``limit``).

        Each has ``import_count`` and ``export_count``; ``details=True`` also
        fills ``imports`` and ``exports`` (larger pages).
        """
        return [
            info
            for info in self.iter(
                limit=limit, page_size=page_size, details=details, timeout=timeout
            )
        ]

    def iter(
        self,
        *,
        limit: Optional[int] = None,
        page_size: int = 100,
        details: bool = False,
        timeout: Optional[float] = None,
    ) -> Iterator[ModuleInfo]:
        """Iterate over the account's modules, newest first, page by page (see :meth:`list`)."""
        token = ""
        count = 0
        while True:
            request = module_pb2.ListModulesRequest(
                page_size=page_size, page_token=token, include_details=details
            )
            response = self._client._unary(
                self._client._stubs().modules.ListModules, request, timeout
            )
            for msg in response.modules:
                if limit is not None and count >= limit:
                    return
                count += 1
                yield ModuleInfo._from_proto(msg)
            token = response.next_page_token
            if not token or (limit is not None and count >= limit):
                return

    def delete(self, sha256: str, *, timeout: Optional[float] = None) -> None:
        """Remove the module from this account.

        Raises:
            NotFound: This account has no module with that hash.
        """
        request = module_pb2.DeleteModuleRequest(sha256=_common.hash_arg(sha256))
        self._client._unary(self._client._stubs().modules.DeleteModule, request, timeout)


class Account:
    """The caller's own account (``client.account``)."""

    def __init__(self, client: Client) -> None:
        self._client = client

    def whoami(self, *, timeout: Optional[float] = None) -> WhoAmI:
        """Who the key belongs to, its tier's limits and what is left of its allowance.

        Example::

            me = client.account.whoami()
            print(me.tier, me.remaining_this_minute)  # free 9
        """
        response = self._client._unary(
            self._client._stubs().account.WhoAmI, account_pb2.WhoAmIRequest(), timeout
        )
        return WhoAmI._from_proto(response)

    def usage(self, days: Optional[int] = None, *, timeout: Optional[float] = None) -> Usage:
        """The caller's usage over the last ``days`` UTC days (default 30)."""
        response = self._client._unary(
            self._client._stubs().account.GetUsage, _common.usage_request(days), timeout
        )
        return Usage._from_proto(response)

    def create_key(
        self,
        label: str = "",
        *,
        expires_at: Optional[datetime.datetime] = None,
        timeout: Optional[float] = None,
    ) -> NewApiKey:
        """A new key for the caller (same user, tier and admin flag).

        The secret (``.key``) is returned only this once.
        """
        request = account_pb2.CreateMyApiKeyRequest(
            label=label, expires_at=_common.timestamp_proto(expires_at)
        )
        response = self._client._unary(
            self._client._stubs().account.CreateMyApiKey, request, timeout
        )
        return NewApiKey._from_proto(response)

    def list_keys(self, *, timeout: Optional[float] = None) -> list[ApiKey]:
        """The caller's keys (public facts only)."""
        response = self._client._unary(
            self._client._stubs().account.ListMyApiKeys, account_pb2.ListMyApiKeysRequest(), timeout
        )
        return [ApiKey._from_proto(key) for key in response.keys]

    def revoke_key(self, key_id: str, *, timeout: Optional[float] = None) -> None:
        """Revoke one of the caller's keys by its id."""
        request = account_pb2.RevokeMyApiKeyRequest(key_id=key_id)
        self._client._unary(self._client._stubs().account.RevokeMyApiKey, request, timeout)

    def rotate_webhook_secret(self, *, timeout: Optional[float] = None) -> str:
        """A new secret that signs this account's webhooks (``whsec_...``); the old one stops.

        It is returned only this once: store it where the receiver reads it
        (see :func:`wasmwiz.webhooks.verify`).
        """
        response = self._client._unary(
            self._client._stubs().account.RotateWebhookSecret,
            account_pb2.RotateWebhookSecretRequest(),
            timeout,
        )
        return response.secret


class Admin:
    """Operator calls (``client.admin``); every one needs an admin key.

    Raises:
        PermissionDenied: From every method, with a non-admin key.
    """

    def __init__(self, client: Client) -> None:
        self._client = client

    def create_user(self, email: str, tier: str = "", *, timeout: Optional[float] = None) -> User:
        """Create a user (tier default ``free``)."""
        request = admin_pb2.CreateUserRequest(email=email, tier=tier)
        response = self._client._unary(self._client._stubs().admin.CreateUser, request, timeout)
        return User._from_proto(response.user)

    def set_tier(self, email: str, tier: str, *, timeout: Optional[float] = None) -> User:
        """Move a user to another tier."""
        request = admin_pb2.SetTierRequest(email=email, tier=tier)
        response = self._client._unary(self._client._stubs().admin.SetTier, request, timeout)
        return User._from_proto(response.user)

    def create_key(
        self,
        email: str,
        tier: str = "",
        *,
        admin: bool = False,
        label: str = "",
        expires_at: Optional[datetime.datetime] = None,
        timeout: Optional[float] = None,
    ) -> NewApiKey:
        """Create a key for ``email`` (the user is created when unknown).

        A non-empty ``tier`` also sets the user's tier. The secret (``.key``)
        is returned only this once.

        Example::

            key = client.admin.create_key("ci@example.com", "basic")
            ci = wasmwiz.Client(url, api_key=key.key)
        """
        request = admin_pb2.CreateApiKeyRequest(
            email=email,
            tier=tier,
            admin=admin,
            label=label,
            expires_at=_common.timestamp_proto(expires_at),
        )
        response = self._client._unary(self._client._stubs().admin.CreateApiKey, request, timeout)
        return NewApiKey(response.key, response.key_id)

    def list_keys(
        self, email: Optional[str] = None, *, timeout: Optional[float] = None
    ) -> list[ApiKey]:
        """Keys of one user, or of everyone."""
        request = admin_pb2.ListApiKeysRequest(email=email or "")
        response = self._client._unary(self._client._stubs().admin.ListApiKeys, request, timeout)
        return [ApiKey._from_proto(key) for key in response.keys]

    def revoke_key(self, key_id: str, *, timeout: Optional[float] = None) -> None:
        """Revoke any key by its id."""
        request = admin_pb2.RevokeApiKeyRequest(key_id=key_id)
        self._client._unary(self._client._stubs().admin.RevokeApiKey, request, timeout)

    def usage(
        self,
        email: Optional[str] = None,
        days: Optional[int] = None,
        *,
        timeout: Optional[float] = None,
    ) -> Usage:
        """Usage of one user, or of everyone (``email=None``)."""
        response = self._client._unary(
            self._client._stubs().admin.GetUsage, _common.usage_request(days, email), timeout
        )
        return Usage._from_proto(response)
