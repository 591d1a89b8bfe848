"""What the asyncio client needs from asyncio, in the shape the sync client has too.

``aio.py`` is the one hand-written client; ``scripts/unasync.py`` writes
``client.py`` from it, replacing this module by :mod:`wasmwiz._sync_io`. The
two modules have the same names, so that only the I/O differs.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterable, AsyncIterator
from typing import TYPE_CHECKING, Any, Callable, TypeVar, Union

from . import _common

if TYPE_CHECKING:
    import grpc.aio

    _M = TypeVar("_M")
    #: A server-streaming call (``Run``, ``RunBatch``, ``Execute``).
    StreamCall = Union[grpc.aio.UnaryStreamCall[Any, _M], grpc.aio.StreamStreamCall[Any, _M]]

_T = TypeVar("_T")

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
