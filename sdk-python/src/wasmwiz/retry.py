"""Opt-in retries that honour the server's ``retry-after``.

Retries are off by default. Turn them on per client with ``retry=True`` (the
defaults below) or ``retry=Retry(...)``::

    client = wasmwiz.Client(url, api_key=key, retry=wasmwiz.Retry(max_attempts=5))

A call is retried only when it failed with one of ``retry_on`` (by default
:class:`~wasmwiz.RateLimited` and :class:`~wasmwiz.Unavailable`) before
anything was received: a stream that already yielded events is never
replayed. The wait is the server's ``retry_after`` when it gave one, else an
exponential backoff; a ``retry_after`` longer than ``max_retry_after`` (e.g.
a spent daily quota) is raised at once instead of slept through.
"""

from __future__ import annotations

import dataclasses
import random
from typing import Optional, Union

from .errors import RateLimited, Unavailable, WasmWizError

__all__ = ["Retry", "RetryLike"]


@dataclasses.dataclass(frozen=True)
class Retry:
    """How to retry failed calls.

    Attributes:
        max_attempts: Attempts in all, the first included (1 = no retry).
        initial_backoff: Seconds before the first retry when the server gave
            no ``retry_after``; doubled on each further retry.
        max_backoff: Upper bound of that backoff, in seconds.
        max_retry_after: Longest server-requested wait (seconds) worth
            sleeping through; longer ones raise at once.
        jitter: Fraction of random extra delay (0.1 = up to 10% longer), so
            that many clients do not retry in lockstep.
        retry_on: Exception classes worth retrying.

    Example:
        >>> Retry(max_attempts=3).delay(1, Unavailable("draining", retry_after=0.5)) >= 0.5
        True
    """

    max_attempts: int = 4
    initial_backoff: float = 0.25
    max_backoff: float = 8.0
    max_retry_after: float = 120.0
    jitter: float = 0.1
    retry_on: tuple[type[WasmWizError], ...] = (RateLimited, Unavailable)

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")

    def delay(self, attempt: int, error: WasmWizError) -> Optional[float]:
        """Seconds to wait before attempt ``attempt + 1``, or ``None`` to give up.

        Args:
            attempt: The number of the attempt that just failed (from 1).
            error: Its error.
        """
        if attempt >= self.max_attempts or not isinstance(error, self.retry_on):
            return None
        if error.retry_after is not None and error.retry_after > 0:
            if error.retry_after > self.max_retry_after:
                return None
            base = error.retry_after
        else:
            base = min(self.max_backoff, self.initial_backoff * (2 ** (attempt - 1)))
        return base * (1.0 + random.uniform(0.0, max(self.jitter, 0.0)))

    @staticmethod
    def coerce(value: RetryLike) -> Optional[Retry]:
        """``True`` -> default :class:`Retry`; ``False``/``None`` -> no retries."""
        if value is None or value is False:
            return None
        if value is True:
            return Retry()
        if isinstance(value, Retry):
            return value
        raise TypeError(f"retry must be a Retry, a bool or None, not {type(value).__name__}")


#: What ``retry=`` accepts.
RetryLike = Union[Retry, bool, None]
