"""The asyncio client, :class:`AsyncClient` (over ``grpc.aio``).

It has the same methods as :class:`wasmwiz.Client`, as coroutines;
:meth:`AsyncClient.stream` returns an async iterator.

Example::

    import asyncio, wasmwiz
    async def main() -> None:
        async with wasmwiz.AsyncClient("http://127.0.0.1:8080", api_key="wwz_...") as client:
            results = await asyncio.gather(
                *(client.run("echo.wasm", stdin=f"job {i}") for i in range(50))
            )
            print(sum(r.ok for r in results))
    asyncio.run(main())
    # 50
"""

from __future__ import annotations

import asyncio
import builtins
import dataclasses
import datetime
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Iterator, Mapping, Sequence
from types import TracebackType
from typing import Any, Callable, Generic, Optional, TypeVar, Union, cast

import grpc
import grpc.aio

from . import _common
from ._common import (
    CHUNK_SIZE,
    INLINE_LIMIT,
    AsyncStdinLike,
    CaseLike,
    Data,
    ModuleLike,
    ProgressCallback,
    Source,
    UploadLike,
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
    Usage,
    User,
    WhoAmI,
    _event_from_proto,
    _ResultBuilder,
)
from .errors import NotFound, WasmWizError, from_rpc_error, metadata_pairs
from .limits import LimitsLike
from .retry import Retry, RetryLike

__all__ = [
    "AsyncAccount",
    "AsyncAdmin",
    "AsyncBatchStream",
    "AsyncClient",
    "AsyncExecutionStream",
    "AsyncModules",
]

_T = TypeVar("_T")
_M = TypeVar("_M")
_Self = TypeVar("_Self", bound="_AsyncServerStream[Any, Any]")

_StreamCall = Union[grpc.aio.UnaryStreamCall[Any, _M], grpc.aio.StreamStreamCall[Any, _M]]
#: What ``read()`` returns at the end of a stream (not in grpc's type stubs).
_EOF: object = getattr(grpc.aio, "EOF")  # noqa: B009


class _AsyncServerStream(Generic[_M, _T]):
    """A server stream as an async iterator that converts messages and maps errors.

    The call starts on the first ``__anext__``: ``resolve`` finds (and, when
    big, uploads) the module once, then ``open_call`` starts the RPC; errors
    that arrive before the first message are retried per the client's
    :class:`Retry` (unless ``retryable`` is false).
    """

    def __init__(
        self,
        client: AsyncClient,
        resolve: Callable[[], Awaitable[Source]],
        open_call: Callable[[Source], _StreamCall[_M]],
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
        self._call: Optional[_StreamCall[_M]] = None
        self._first: Optional[_M] = None
        self._done = False
        self._rate_limit: Optional[RateLimit] = None

    async def _open(self) -> None:
        try:
            source = await self._resolve()
        except BaseException:
            self._done = True
            raise

        async def attempt() -> tuple[_StreamCall[_M], Optional[_M]]:
            call = self._open_call(source)
            try:
                first = await call.read()
            except BaseException:
                call.cancel()
                raise
            return call, None if first is _EOF else cast(_M, first)

        try:
            call, self._first = await self._client._retrying(attempt, retry=self._retryable)
        except (WasmWizError, asyncio.CancelledError) as err:
            # grpc.aio cancels the call when our request iterator raised.
            self._done = True  # a failed start is final: iterating again yields nothing
            self._raise_local(err)
            raise
        except BaseException:
            self._done = True
            raise
        self._call = call
        try:
            metadata = await call.initial_metadata()
            self._rate_limit = RateLimit._from_metadata(metadata_pairs(metadata))
        except grpc.RpcError:  # pragma: no cover - metadata of a failed call
            self._rate_limit = None
        if self._first is None:
            self._done = True

    def __aiter__(self) -> AsyncIterator[_T]:
        return self

    async def __anext__(self) -> _T:
        if self._call is None and not self._done:
            await self._open()
        while True:
            if self._first is not None:
                msg, self._first = self._first, None
            elif self._done:
                raise StopAsyncIteration
            else:
                assert self._call is not None
                try:
                    read = await self._call.read()
                except grpc.RpcError as err:
                    self._done = True
                    self._raise_local(err)
                    raise from_rpc_error(err) from err
                except asyncio.CancelledError as err:
                    self._done = True
                    self._raise_local(err)
                    raise
                if read is _EOF:
                    self._done = True
                    raise StopAsyncIteration
                msg = cast(_M, read)
            item = self._convert(msg)
            if item is not None:
                return item

    def _raise_local(self, err: BaseException) -> None:
        """Raise what our request iterator raised, if that is why the call failed."""
        local = self._local_error() if self._local_error is not None else None
        if local is not None:
            raise local from err

    def cancel(self) -> None:
        """Stop the call; the server cancels the execution (``Outcome.CANCELLED``)."""
        if self._call is not None and not self._done:
            self._call.cancel()
        self._done = True

    async def aclose(self) -> None:
        """Same as :meth:`cancel` (so ``contextlib.aclosing`` works)."""
        self.cancel()

    async def __aenter__(self: _Self) -> _Self:
        return self

    async def __aexit__(
        self,
        exc_type: Optional[type[BaseException]],
        exc: Optional[BaseException],
        tb: Optional[TracebackType],
    ) -> None:
        self.cancel()


class AsyncExecutionStream(_AsyncServerStream[execution_pb2.ExecuteEvent, Event]):
    """The events of one execution, as an async iterator (from :meth:`AsyncClient.stream`).

    Example::

        async with client.stream("progress.wasm", args=["3"]) as events:
            async for event in events:
                if isinstance(event, wasmwiz.Stdout):
                    print(event.data.decode(), end="")
    """

    def __init__(
        self,
        client: AsyncClient,
        resolve: Callable[[], Awaitable[Source]],
        open_call: Callable[[Source], _StreamCall[execution_pb2.ExecuteEvent]],
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

    async def __anext__(self) -> Event:
        event = await super().__anext__()
        self._builder.add(event)
        return event

    @property
    def rate_limit(self) -> Optional[RateLimit]:
        """The response's ``ratelimit-*`` headers, once the call started."""
        return self._rate_limit

    async def result(self) -> Result:
        """Consume the remaining events and return the :class:`~wasmwiz.Result`."""
        async for _ in self:
            pass
        if self._builder.finished is None:
            raise WasmWizError(
                "the server ended the stream before the execution finished",
                code=grpc.StatusCode.INTERNAL,
            )
        return self._builder.build(self._rate_limit)


class AsyncBatchStream(_AsyncServerStream[execution_pb2.BatchEvent, CaseResult]):
    """Case results of a batch as each case finishes (any order of ``index``)."""

    def __init__(
        self,
        client: AsyncClient,
        resolve: Callable[[], Awaitable[Source]],
        open_call: Callable[[Source], _StreamCall[execution_pb2.BatchEvent]],
    ) -> None:
        super().__init__(client, resolve, open_call, CaseResult._from_proto)

    async def result(self) -> BatchResult:
        """Consume the remaining results; return them in case order."""
        cases = [case async for case in self]
        return BatchResult(tuple(sorted(cases, key=lambda case: case.index)))


async def _execute_requests(
    head: Iterator[execution_pb2.ExecuteRequest], stdin: AsyncStdinLike
) -> AsyncIterator[execution_pb2.ExecuteRequest]:
    """``start``, module chunks, then stdin as it comes, then ``stdin_eof``."""
    for request in head:
        yield request
    if isinstance(stdin, AsyncIterable):
        async for chunk in stdin:
            data = _common.to_bytes(chunk, "stdin chunk")
            if data:
                yield _common.stdin_chunk_request(data)
    else:  # an iterable or a file: read on the event loop (use an async iterable to wait)
        for data in _common.iter_stdin(stdin):
            if data:
                yield _common.stdin_chunk_request(data)
    yield _common.stdin_eof_request()


class _Stubs:
    def __init__(self, channel: grpc.aio.Channel) -> None:
        self.execution = execution_pb2_grpc.ExecutionServiceStub(channel)
        self.modules = module_pb2_grpc.ModuleServiceStub(channel)
        self.account = account_pb2_grpc.AccountServiceStub(channel)
        self.admin = admin_pb2_grpc.AdminServiceStub(channel)


class AsyncClient:
    """Asyncio WasmWiz client (``grpc.aio``). Takes the same arguments as :class:`~wasmwiz.Client`.

    Use it from one event loop; the channel opens on first use. Close it
    with ``await client.close()`` or ``async with``.

    Args:
        url: ``"http://host:port"`` or ``"https://host"``; ``None`` reads ``$WASMWIZ_URL``.
        api_key: The ``wwz_...`` key; ``None`` reads ``$WASMWIZ_API_KEY``.
        timeout: Default deadline of every call, in seconds.
        retry: ``True`` or a :class:`~wasmwiz.Retry` to retry rate-limited
            and unavailable calls, honouring the server's ``retry-after``.
        root_certificates: PEM roots for ``https://``.
        user_agent: Prepended to the SDK's user agent.
        options: Extra gRPC channel options.
        inline_limit: Modules up to this many bytes are sent inline.
        chunk_size: Upload chunk size in bytes.

    Example::

        async with wasmwiz.AsyncClient(url, api_key=key) as client:
            result = await client.run("hello.wasm")
            async for event in client.stream("progress.wasm", args=["3"]):
                print(event)
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
        self._metadata = _common.call_metadata(_common.resolve_api_key(api_key))
        self._inline_limit = inline_limit
        self._chunk_size = chunk_size
        self._channel: Optional[grpc.aio.Channel] = None
        self._stubs_cache: Optional[_Stubs] = None
        self.modules = AsyncModules(self)
        self.account = AsyncAccount(self)
        self.admin = AsyncAdmin(self)

    # ------------------------------------------------------------------ lifecycle

    def _stubs(self) -> _Stubs:
        if self._stubs_cache is None:
            if self._target.secure:
                credentials = grpc.ssl_channel_credentials(
                    root_certificates=self._root_certificates
                )
                self._channel = grpc.aio.secure_channel(
                    self._target.address, credentials, options=self._options
                )
            else:
                self._channel = grpc.aio.insecure_channel(
                    self._target.address, options=self._options
                )
            self._stubs_cache = _Stubs(self._channel)
        return self._stubs_cache

    async def close(self) -> None:
        """Close the channel (cancels calls still running)."""
        if self._channel is not None:
            channel, self._channel, self._stubs_cache = self._channel, None, None
            await channel.close()

    async def __aenter__(self) -> AsyncClient:
        self._stubs()
        return self

    async def __aexit__(
        self,
        exc_type: Optional[type[BaseException]],
        exc: Optional[BaseException],
        tb: Optional[TracebackType],
    ) -> None:
        await self.close()

    def __repr__(self) -> str:
        return f"AsyncClient({self.target!r})"

    # ------------------------------------------------------------------ plumbing

    async def _retrying(self, attempt_fn: Callable[[], Awaitable[_T]], *, retry: bool = True) -> _T:
        """Await ``attempt_fn()``; map gRPC errors; retry per :attr:`retry` (if ``retry``)."""
        attempt = 1
        while True:
            try:
                try:
                    return await attempt_fn()
                except grpc.RpcError as err:
                    raise from_rpc_error(err) from err
            except WasmWizError as err:
                delay = self.retry.delay(attempt, err) if self.retry and retry else None
                if delay is None:
                    raise
                await asyncio.sleep(delay)
                attempt += 1

    async def _unary(
        self,
        method: Callable[..., Awaitable[_T]],
        request: Any,
        timeout: Optional[float],
    ) -> _T:
        deadline = _common.effective_timeout(timeout, self.timeout)

        async def attempt() -> _T:
            return await method(request, timeout=deadline, metadata=self._metadata)

        return await self._retrying(attempt)

    async def _runnable(self, module: ModuleLike, timeout: Optional[float]) -> Source:
        loop = asyncio.get_running_loop()
        source = await loop.run_in_executor(
            None, _common.resolve_module, module, self._inline_limit
        )
        if source.is_reference or (source.data is not None and source.size <= self._inline_limit):
            return source
        info = await self._upload_source(source, None, self._chunk_size, timeout)
        return Source(sha256=info.sha256, size=info.size)

    # ------------------------------------------------------------------ execution

    def stream(
        self,
        module: ModuleLike,
        stdin: AsyncStdinLike = b"",
        args: Sequence[str] = (),
        env: Optional[Mapping[str, str]] = None,
        limits: LimitsLike = None,
        seed: Optional[int] = None,
        expected_stdout: Optional[Data] = None,
        *,
        program_name: Optional[str] = None,
        keep_module: bool = False,
        timeout: Optional[float] = None,
    ) -> AsyncExecutionStream:
        """Run a module; iterate the result with ``async for`` for its events as they arrive.

        Same arguments as :meth:`run`. Not a coroutine: the call starts on
        the first ``__anext__``. ``stdin`` may also be an async iterable of
        bytes, fed to the guest as it yields (the ``Execute`` RPC).

        Example::

            async for event in client.stream("progress.wasm", args=["3"]):
                print(event)
        """
        deadline = _common.effective_timeout(timeout, self.timeout)

        async def resolve() -> Source:
            return await self._runnable(module, timeout)

        if _common.is_streamed(stdin):
            # stdin is fed while the guest runs: the bidirectional Execute RPC.
            # Not retried: the stdin iterator cannot be replayed.
            def open_execute(source: Source) -> _StreamCall[execution_pb2.ExecuteEvent]:
                head = _common.execute_head(
                    source,
                    args=args,
                    env=env,
                    limits=limits,
                    seed=seed,
                    expected_stdout=expected_stdout,
                    program_name=program_name,
                    keep_module=keep_module,
                    chunk_size=self._chunk_size,
                )
                requests = _common.CapturingAsyncIterator(_execute_requests(head, stdin))
                pumps.append(requests)
                return self._stubs().execution.Execute(
                    requests, timeout=deadline, metadata=self._metadata
                )

            pumps: list[_common.CapturingAsyncIterator[execution_pb2.ExecuteRequest]] = []
            return AsyncExecutionStream(
                self,
                resolve,
                open_execute,
                retryable=False,
                local_error=lambda: pumps[-1].error if pumps else None,
            )

        data = cast(Data, stdin)

        def open_call(source: Source) -> _StreamCall[execution_pb2.ExecuteEvent]:
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
            )
            return self._stubs().execution.Run(request, timeout=deadline, metadata=self._metadata)

        return AsyncExecutionStream(self, resolve, open_call)

    async def run(
        self,
        module: ModuleLike,
        stdin: AsyncStdinLike = b"",
        args: Sequence[str] = (),
        env: Optional[Mapping[str, str]] = None,
        limits: LimitsLike = None,
        seed: Optional[int] = None,
        expected_stdout: Optional[Data] = None,
        *,
        program_name: Optional[str] = None,
        keep_module: bool = False,
        timeout: Optional[float] = None,
    ) -> Result:
        """Run a module to completion; see :meth:`wasmwiz.Client.run`.

        Example::

            result = await client.run("echo.wasm", stdin=b"hi")
            print(result.stdout)  # b'hi'
        """
        return await self.stream(
            module,
            stdin,
            args,
            env,
            limits,
            seed,
            expected_stdout,
            program_name=program_name,
            keep_module=keep_module,
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
        timeout: Optional[float] = None,
    ) -> AsyncBatchStream:
        """Like :meth:`run_batch`, yielding each :class:`~wasmwiz.CaseResult` as it finishes."""
        deadline = _common.effective_timeout(timeout, self.timeout)
        cases = list(cases)

        async def resolve() -> Source:
            return await self._runnable(module, timeout)

        def open_call(source: Source) -> _StreamCall[execution_pb2.BatchEvent]:
            request = _common.run_batch_request(
                source, cases, env=env, limits=limits, seed=seed, program_name=program_name
            )
            return self._stubs().execution.RunBatch(
                request, timeout=deadline, metadata=self._metadata
            )

        return AsyncBatchStream(self, resolve, open_call)

    async def run_batch(
        self,
        module: ModuleLike,
        cases: Sequence[CaseLike],
        *,
        env: Optional[Mapping[str, str]] = None,
        limits: LimitsLike = None,
        seed: Optional[int] = None,
        program_name: Optional[str] = None,
        timeout: Optional[float] = None,
    ) -> BatchResult:
        """Run one module against many cases; see :meth:`wasmwiz.Client.run_batch`."""
        return await self.stream_batch(
            module,
            cases,
            env=env,
            limits=limits,
            seed=seed,
            program_name=program_name,
            timeout=timeout,
        ).result()

    # ------------------------------------------------------------------ shortcuts

    async def upload(
        self,
        module: UploadLike,
        progress: Optional[ProgressCallback] = None,
        *,
        chunk_size: Optional[int] = None,
        timeout: Optional[float] = None,
    ) -> ModuleInfo:
        """Upload a module in chunks; skipped when the server already has it.

        See :meth:`wasmwiz.Client.upload`. ``progress(done, total)`` is called
        on the event loop after each chunk is written.
        """
        source = _common.upload_source(module)
        return await self._upload_source(source, progress, chunk_size or self._chunk_size, timeout)

    async def _upload_source(
        self,
        source: Source,
        progress: Optional[ProgressCallback],
        chunk_size: int,
        timeout: Optional[float],
    ) -> ModuleInfo:
        loop = asyncio.get_running_loop()
        source = await loop.run_in_executor(None, _common.hash_source, source)
        assert source.sha256 is not None
        try:
            existing = await self.modules.get(source.sha256, timeout=timeout)
        except NotFound:
            pass
        else:
            if progress is not None:
                progress(source.size, source.size)
            return dataclasses.replace(existing, already_existed=True)
        deadline = _common.effective_timeout(timeout, self.timeout)

        async def attempt() -> module_pb2.ModuleInfo:
            call = self._stubs().modules.UploadModule(timeout=deadline, metadata=self._metadata)
            try:
                for request in _common.upload_requests(source, chunk_size, progress):
                    await call.write(request)
                await call.done_writing()
            except grpc.RpcError:
                raise
            except BaseException:
                call.cancel()
                raise
            return await call

        response = await self._retrying(attempt)
        return ModuleInfo._from_proto(response)

    async def whoami(self, *, timeout: Optional[float] = None) -> WhoAmI:
        """Shortcut for :meth:`AsyncAccount.whoami`."""
        return await self.account.whoami(timeout=timeout)

    async def health(self, service: str = "", *, timeout: Optional[float] = None) -> str:
        """The server's ``grpc.health.v1`` status: ``"SERVING"``, ``"NOT_SERVING"``, ..."""
        self._stubs()
        assert self._channel is not None
        method = self._channel.unary_unary(
            _common.HEALTH_CHECK_METHOD,
            request_serializer=_common.encode_health_request,
            response_deserializer=_common.decode_health_response,
        )
        return cast(str, await self._unary(method, service, timeout))


class AsyncModules:
    """Modules stored for the account (``client.modules``); see :class:`wasmwiz.client.Modules`."""

    def __init__(self, client: AsyncClient) -> None:
        self._client = client

    async def upload(
        self,
        module: UploadLike,
        progress: Optional[ProgressCallback] = None,
        *,
        chunk_size: Optional[int] = None,
        timeout: Optional[float] = None,
    ) -> ModuleInfo:
        """Same as :meth:`AsyncClient.upload`."""
        return await self._client.upload(module, progress, chunk_size=chunk_size, timeout=timeout)

    async def put(self, module: UploadLike, *, timeout: Optional[float] = None) -> ModuleInfo:
        """Store a module in one message (no chunking, no dedup check)."""
        loop = asyncio.get_running_loop()
        source = await loop.run_in_executor(
            None, lambda: _common.hash_source(_common.upload_source(module))
        )
        data = b"".join(_common.iter_chunks(source, CHUNK_SIZE))
        request = module_pb2.PutModuleRequest(module=data, sha256=source.sha256)
        response = await self._client._unary(
            self._client._stubs().modules.PutModule, request, timeout
        )
        return ModuleInfo._from_proto(response)

    async def get(self, sha256: str, *, timeout: Optional[float] = None) -> ModuleInfo:
        """A stored module's info. Raises :class:`~wasmwiz.NotFound` when absent."""
        request = module_pb2.GetModuleRequest(sha256=_common.hash_arg(sha256))
        response = await self._client._unary(
            self._client._stubs().modules.GetModule, request, timeout
        )
        return ModuleInfo._from_proto(response)

    async def exists(self, sha256: str, *, timeout: Optional[float] = None) -> bool:
        """True when this account stores a module with that hash."""
        try:
            await self.get(sha256, timeout=timeout)
        except NotFound:
            return False
        return True

    async def list(
        self, *, limit: Optional[int] = None, page_size: int = 100, timeout: Optional[float] = None
    ) -> builtins.list[ModuleInfo]:
        """The account's modules, newest first (follows pages up to ``limit``)."""
        return [info async for info in self.iter(limit=limit, page_size=page_size, timeout=timeout)]

    async def iter(
        self, *, limit: Optional[int] = None, page_size: int = 100, timeout: Optional[float] = None
    ) -> AsyncIterator[ModuleInfo]:
        """Iterate over the account's modules, newest first, page by page."""
        token = ""
        count = 0
        while True:
            request = module_pb2.ListModulesRequest(page_size=page_size, page_token=token)
            response = await self._client._unary(
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

    async def delete(self, sha256: str, *, timeout: Optional[float] = None) -> None:
        """Remove the module from this account. Raises :class:`~wasmwiz.NotFound` when absent."""
        request = module_pb2.DeleteModuleRequest(sha256=_common.hash_arg(sha256))
        await self._client._unary(self._client._stubs().modules.DeleteModule, request, timeout)


class AsyncAccount:
    """The caller's own account (``client.account``); see :class:`wasmwiz.client.Account`."""

    def __init__(self, client: AsyncClient) -> None:
        self._client = client

    async def whoami(self, *, timeout: Optional[float] = None) -> WhoAmI:
        """Who the key belongs to, its tier's limits and what is left of its allowance."""
        response = await self._client._unary(
            self._client._stubs().account.WhoAmI, account_pb2.WhoAmIRequest(), timeout
        )
        return WhoAmI._from_proto(response)

    async def usage(self, days: Optional[int] = None, *, timeout: Optional[float] = None) -> Usage:
        """The caller's usage over the last ``days`` UTC days (default 30)."""
        response = await self._client._unary(
            self._client._stubs().account.GetUsage, _common.usage_request(days), timeout
        )
        return Usage._from_proto(response)

    async def create_key(
        self,
        label: str = "",
        *,
        expires_at: Optional[datetime.datetime] = None,
        timeout: Optional[float] = None,
    ) -> NewApiKey:
        """A new key for the caller (same user, tier and admin flag); the secret is shown once."""
        request = account_pb2.CreateMyApiKeyRequest(
            label=label, expires_at=_common.timestamp_proto(expires_at)
        )
        response = await self._client._unary(
            self._client._stubs().account.CreateMyApiKey, request, timeout
        )
        return NewApiKey(response.key, response.key_id)

    async def list_keys(self, *, timeout: Optional[float] = None) -> list[ApiKey]:
        """The caller's keys (public facts only)."""
        response = await self._client._unary(
            self._client._stubs().account.ListMyApiKeys, account_pb2.ListMyApiKeysRequest(), timeout
        )
        return [ApiKey._from_proto(key) for key in response.keys]

    async def revoke_key(self, key_id: str, *, timeout: Optional[float] = None) -> None:
        """Revoke one of the caller's keys by its id."""
        request = account_pb2.RevokeMyApiKeyRequest(key_id=key_id)
        await self._client._unary(self._client._stubs().account.RevokeMyApiKey, request, timeout)


class AsyncAdmin:
    """Operator calls (``client.admin``); see :class:`wasmwiz.client.Admin`."""

    def __init__(self, client: AsyncClient) -> None:
        self._client = client

    async def create_user(
        self, email: str, tier: str = "", *, timeout: Optional[float] = None
    ) -> User:
        """Create a user (tier default ``free``)."""
        request = admin_pb2.CreateUserRequest(email=email, tier=tier)
        response = await self._client._unary(
            self._client._stubs().admin.CreateUser, request, timeout
        )
        return User._from_proto(response.user)

    async def set_tier(self, email: str, tier: str, *, timeout: Optional[float] = None) -> User:
        """Move a user to another tier."""
        request = admin_pb2.SetTierRequest(email=email, tier=tier)
        response = await self._client._unary(self._client._stubs().admin.SetTier, request, timeout)
        return User._from_proto(response.user)

    async def create_key(
        self,
        email: str,
        tier: str = "",
        *,
        admin: bool = False,
        label: str = "",
        expires_at: Optional[datetime.datetime] = None,
        timeout: Optional[float] = None,
    ) -> NewApiKey:
        """Create a key for ``email`` (created when unknown); the secret is shown once."""
        request = admin_pb2.CreateApiKeyRequest(
            email=email,
            tier=tier,
            admin=admin,
            label=label,
            expires_at=_common.timestamp_proto(expires_at),
        )
        response = await self._client._unary(
            self._client._stubs().admin.CreateApiKey, request, timeout
        )
        return NewApiKey(response.key, response.key_id)

    async def list_keys(
        self, email: Optional[str] = None, *, timeout: Optional[float] = None
    ) -> list[ApiKey]:
        """Keys of one user, or of everyone."""
        request = admin_pb2.ListApiKeysRequest(email=email or "")
        response = await self._client._unary(
            self._client._stubs().admin.ListApiKeys, request, timeout
        )
        return [ApiKey._from_proto(key) for key in response.keys]

    async def revoke_key(self, key_id: str, *, timeout: Optional[float] = None) -> None:
        """Revoke any key by its id."""
        request = admin_pb2.RevokeApiKeyRequest(key_id=key_id)
        await self._client._unary(self._client._stubs().admin.RevokeApiKey, request, timeout)

    async def usage(
        self,
        email: Optional[str] = None,
        days: Optional[int] = None,
        *,
        timeout: Optional[float] = None,
    ) -> Usage:
        """Usage of one user, or of everyone (``email=None``)."""
        response = await self._client._unary(
            self._client._stubs().admin.GetUsage, _common.usage_request(days, email), timeout
        )
        return Usage._from_proto(response)
