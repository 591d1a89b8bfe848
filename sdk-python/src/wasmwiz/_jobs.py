"""Value types of detached executions (``SubmitExecution`` and friends).

No I/O here: the handles that call the server are in ``aio.py`` (and the
generated ``client.py``); these are what they return.
"""

from __future__ import annotations

import dataclasses
import datetime
import enum
from collections.abc import Mapping, Sequence
from typing import Optional

from ._proto import execution_pb2
from ._types import Finished, Outcome, Result
from .files import FileAssembler

__all__ = [
    "ExecutionInfo",
    "ExecutionState",
    "ExecutionSummary",
    "SubmittedBatch",
    "WebhookAttempt",
]

#: ``ListExecutions`` answers at most this many per page (the server's maximum).
MAX_PAGE_SIZE = 500


class ExecutionState(enum.Enum):
    """Where a detached execution is (``wasmwiz.v1.ExecutionState`` without its prefix)."""

    UNSPECIFIED = 0
    #: Waiting for a replica to begin it.
    QUEUED = 1
    #: A replica is running it.
    RUNNING = 2
    #: It ended with a result (or with ``error``, when its request was refused).
    FINISHED = 3
    #: It was cancelled before it ended.
    CANCELLED = 4

    @property
    def ended(self) -> bool:
        """True once nothing more will happen to it (``FINISHED`` or ``CANCELLED``)."""
        return self in (ExecutionState.FINISHED, ExecutionState.CANCELLED)

    @classmethod
    def _coerce(cls, value: object) -> ExecutionState:
        """A state, its name (``"queued"``) or ``None`` (every state)."""
        if value is None:
            return cls.UNSPECIFIED
        if isinstance(value, cls):
            return value
        if isinstance(value, str):
            try:
                return cls[value.upper()]
            except KeyError:
                pass
        names = ", ".join(state.name.lower() for state in cls if state is not cls.UNSPECIFIED)
        raise ValueError(f"not an execution state: {value!r} (use {names} or None)")


def _from_unix_ms(ms: int) -> Optional[datetime.datetime]:
    if not ms:
        return None
    return datetime.datetime.fromtimestamp(ms / 1000, tz=datetime.timezone.utc)


@dataclasses.dataclass(frozen=True)
class ExecutionSummary:
    """One detached execution as :meth:`Client.list_executions` lists it.

    Attributes:
        execution_id: The id to get, watch or cancel it by.
        state: Where it is.
        module_sha256: The module it runs.
        created_at: When it was submitted (UTC).
        updated_at: When its state last changed (UTC).
        attempts: How many times a replica began it (2: its first replica
            died mid-run and another ran it again).
        outcome: How it ended, once it has (``Outcome.UNSPECIFIED`` before).
    """

    execution_id: str
    state: ExecutionState
    module_sha256: str
    created_at: Optional[datetime.datetime]
    updated_at: Optional[datetime.datetime]
    attempts: int
    outcome: Outcome

    @classmethod
    def _from_proto(cls, msg: execution_pb2.ExecutionSummary) -> ExecutionSummary:
        return cls(
            execution_id=msg.execution_id,
            state=ExecutionState(msg.state),
            module_sha256=msg.module_sha256,
            created_at=_from_unix_ms(msg.created_at_ms),
            updated_at=_from_unix_ms(msg.updated_at_ms),
            attempts=msg.attempts,
            outcome=Outcome(msg.outcome),
        )


@dataclasses.dataclass(frozen=True)
class WebhookAttempt:
    """One POST of an execution's webhook.

    Attributes:
        at: When it was sent (UTC).
        http_status: The receiver's status; 0 when there was no answer.
        error: Why it failed (refused address, timeout, ...); empty on a 2xx.
    """

    at: Optional[datetime.datetime]
    http_status: int
    error: str

    @property
    def ok(self) -> bool:
        """True when the receiver answered 2xx."""
        return 200 <= self.http_status < 300


@dataclasses.dataclass(frozen=True)
class ExecutionInfo:
    """Everything ``GetExecution`` knows of a detached execution (every page of output).

    Attributes:
        summary: Its state, module, times and attempts.
        finished: How it ended, once it has; ``None`` before (and when it
            was cancelled or refused).
        stdout: The guest's stdout so far stored (whole once finished).
        stderr: The guest's stderr.
        files: Collected files, path to contents.
        error: Set when it ended without a result (its request was refused
            when a replica began it): the error as gRPC would give it.
        attempt_execution_ids: The usage record id of each attempt, in
            order (the last one produced the result).
        webhook_attempts: Every webhook delivery so far, in order.
    """

    summary: ExecutionSummary
    finished: Optional[Finished]
    stdout: bytes
    stderr: bytes
    files: Mapping[str, bytes]
    error: str
    attempt_execution_ids: Sequence[str]
    webhook_attempts: Sequence[WebhookAttempt]

    @property
    def execution_id(self) -> str:
        return self.summary.execution_id

    @property
    def state(self) -> ExecutionState:
        return self.summary.state

    def result(self) -> Optional[Result]:
        """The :class:`~wasmwiz.Result` once finished with one, else ``None``."""
        fin = self.finished
        if fin is None:
            return None
        return Result(
            stdout=self.stdout,
            stderr=self.stderr,
            outcome=fin.outcome,
            exit_code=fin.exit_code,
            fuel_consumed=fin.fuel_consumed,
            duration=fin.duration,
            memory_peak=fin.memory_peak,
            verdict=fin.verdict,
            execution_id=self.summary.execution_id,
            module_sha256=self.summary.module_sha256,
            trap_kind=fin.trap_kind,
            message=fin.message,
            output_truncated=fin.output_truncated,
            files=dict(self.files),
            receipt=fin.receipt,
        )


class _InfoAssembler:
    """Joins the pages of one ``GetExecution`` into an :class:`ExecutionInfo`."""

    def __init__(self) -> None:
        self._pages: list[execution_pb2.GetExecutionResponse] = []
        self._files = FileAssembler()

    def add(self, page: execution_pb2.GetExecutionResponse) -> None:
        self._pages.append(page)
        for entry in page.files:
            self._files.add(entry.path, entry.file)

    def build(self) -> ExecutionInfo:
        last = self._pages[-1]
        return ExecutionInfo(
            summary=ExecutionSummary._from_proto(last.execution),
            finished=Finished._from_proto(last.finished) if last.HasField("finished") else None,
            stdout=b"".join(page.stdout for page in self._pages),
            stderr=b"".join(page.stderr for page in self._pages),
            files=self._files.build(),
            error=last.error,
            attempt_execution_ids=tuple(last.attempt_execution_ids),
            webhook_attempts=tuple(
                WebhookAttempt(_from_unix_ms(a.at_ms), a.http_status, a.error)
                for a in last.webhook_attempts
            ),
        )


@dataclasses.dataclass(frozen=True)
class SubmittedBatch:
    """What :meth:`Client.submit_batch` answers: the batch and one execution per case.

    Attributes:
        batch_id: The batch's id (in the ``batch.ended`` webhook).
        execution_ids: One detached execution per case, in case order.
    """

    batch_id: str
    execution_ids: Sequence[str]


def check_page_size(page_size: int) -> int:
    """Refuse a page size the server would refuse, before sending anything."""
    if not 1 <= page_size <= MAX_PAGE_SIZE:
        raise ValueError(f"page_size must be between 1 and {MAX_PAGE_SIZE}, not {page_size}")
    return page_size
