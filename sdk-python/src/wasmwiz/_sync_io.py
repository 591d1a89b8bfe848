"""The blocking twin of :mod:`wasmwiz._async_io`, used by the generated ``client.py``."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, Callable, TypeVar

from . import _common

if TYPE_CHECKING:
    import grpc

    _M = TypeVar("_M")
    #: A server-streaming call (``Run``, ``RunBatch``, ``Execute``).
    StreamCall = grpc._CallIterator[_M]

_T = TypeVar("_T")


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
