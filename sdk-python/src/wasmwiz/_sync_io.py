"""The blocking twin of :mod:`wasmwiz._async_io`, used by the generated ``client.py``."""

from __future__ import annotations

import queue
import time
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Any, Callable, Optional, TypeVar

import grpc

from . import _common

if TYPE_CHECKING:
    _M = TypeVar("_M")
    #: A server-streaming call (``Run``, ``RunBatch``, ``Execute``).
    StreamCall = grpc._CallIterator[_M]

_T = TypeVar("_T")
_Q = TypeVar("_Q")
_R = TypeVar("_R")


class Cancelled(BaseException):
    """Never raised: a cancelled sync call raises ``grpc.RpcError`` (CANCELLED) instead."""


def sleep(seconds: float) -> None:
    """Wait (blocking the calling thread)."""
    time.sleep(seconds)


def run_blocking(fn: Callable[..., _T], *args: Any) -> _T:
    """Call ``fn`` here: the sync client blocks its caller anyway."""
    return fn(*args)


def stdin_chunks(stdin: _common.StdinLike) -> Iterator[bytes]:
    """The chunks of a streamed ``stdin`` (read from a file, or taken from an iterable)."""
    return _common.iter_stdin(stdin)


def stream_unary(
    method: grpc.StreamUnaryMultiCallable[_Q, _R],
    requests: Iterable[_Q],
    *,
    timeout: Optional[float],
    metadata: tuple[tuple[str, str], ...],
) -> _R:
    """A client-streaming call: grpcio sends ``requests`` from its own thread.

    What ``requests`` raised there (e.g. a progress callback) is raised here
    as itself; grpcio only reports a cancelled call.
    """
    captured = _common.CapturingIterator(iter(requests))
    try:
        return method(captured, timeout=timeout, metadata=metadata)
    except grpc.RpcError:
        if captured.error is not None:
            raise captured.error from None
        raise


class StdinQueue:
    """The stdin of an interactive session: written by the caller, read by grpcio's request thread.

    ``None`` is the end of stdin. Unbounded: a write never waits here (the
    server's flow control holds the stream back when the guest lags).
    """

    def __init__(self) -> None:
        self._queue: queue.Queue[Optional[bytes]] = queue.Queue()

    def put(self, item: Optional[bytes]) -> None:
        """Queue bytes, or the end of stdin (``None``)."""
        self._queue.put_nowait(item)

    def end(self) -> None:
        """End stdin now (also wakes a reader waiting for more)."""
        self._queue.put_nowait(None)

    def chunks(self) -> Iterator[bytes]:
        """The queued bytes in order, until the end of stdin."""
        while True:
            item = self._queue.get()
            if item is None:
                return
            yield item
