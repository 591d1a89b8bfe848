"""What the asyncio client needs from asyncio, in the shape the sync client has too.

``aio.py`` is the one hand-written client; ``scripts/unasync.py`` writes
``client.py`` from it, replacing this module by :mod:`wasmwiz._sync_io`. The
two modules have the same names, so that only the I/O differs.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterable, AsyncIterator, Iterable
from typing import TYPE_CHECKING, Any, Callable, Optional, TypeVar, Union

import grpc

from . import _common

if TYPE_CHECKING:
    import grpc.aio

    _M = TypeVar("_M")
    #: A server-streaming call (``Run``, ``RunBatch``, ``Execute``).
    StreamCall = Union[grpc.aio.UnaryStreamCall[Any, _M], grpc.aio.StreamStreamCall[Any, _M]]

_T = TypeVar("_T")
_Q = TypeVar("_Q")
_R = TypeVar("_R")

#: What a grpc.aio call raises when it was cancelled under us, e.g. because
#: our request iterator raised (grpc.aio then cancels the call).
Cancelled = asyncio.CancelledError


async def sleep(seconds: float) -> None:
    """Wait without blocking the event loop."""
    await asyncio.sleep(seconds)


async def run_blocking(fn: Callable[..., _T], *args: Any) -> _T:
    """Run file reads and hashing off the event loop."""
    return await asyncio.get_running_loop().run_in_executor(None, fn, *args)


async def stdin_chunks(stdin: _common.AsyncStdinLike) -> AsyncIterator[bytes]:
    """The chunks of a streamed ``stdin``.

    An async iterable is taken as it yields; anything else is read as the
    sync client reads it.
    """
    if isinstance(stdin, AsyncIterable):
        async for chunk in stdin:
            yield _common.to_bytes(chunk, "stdin chunk")
    else:  # an iterable or a file: read on the event loop (use an async iterable to wait)
        for chunk in _common.iter_stdin(stdin):
            yield chunk


async def stream_unary(
    method: grpc.aio.StreamUnaryMultiCallable[_Q, _R],
    requests: Iterable[_Q],
    *,
    timeout: Optional[float],
    metadata: tuple[tuple[str, str], ...],
) -> _R:
    """A client-streaming call: write each request, then await the answer.

    Writing here rather than handing grpc.aio an iterator keeps the server's
    status when it refuses the stream part way (grpc.aio's own consumer turns
    that into INTERNAL), and raises what ``requests`` raised as itself.
    """
    call = method(timeout=timeout, metadata=metadata)
    try:
        for request in requests:
            await call.write(request)
        await call.done_writing()
    except grpc.RpcError:
        pass  # the server ended the call; awaiting it raises its status
    except BaseException:
        call.cancel()
        raise
    return await call


class StdinQueue:
    """The stdin of an interactive session: written by the caller, read by the request stream.

    ``None`` is the end of stdin. Unbounded: a write never waits here (the
    server's flow control holds the stream back when the guest lags).
    """

    def __init__(self) -> None:
        self._queue: asyncio.Queue[Optional[bytes]] = asyncio.Queue()

    async def put(self, item: Optional[bytes]) -> None:
        """Queue bytes, or the end of stdin (``None``)."""
        self._queue.put_nowait(item)

    def end(self) -> None:
        """End stdin now (also wakes a reader waiting for more)."""
        self._queue.put_nowait(None)

    async def chunks(self) -> AsyncIterator[bytes]:
        """The queued bytes in order, until the end of stdin."""
        while True:
            item = await self._queue.get()
            if item is None:
                return
            yield item
