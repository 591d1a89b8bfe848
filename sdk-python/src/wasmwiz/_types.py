"""The SDK's value types: results, events, module and account records.

All are immutable dataclasses built from the generated protobuf messages;
times are ``datetime`` (UTC), durations float seconds, sizes ints (bytes).
"""

from __future__ import annotations

import dataclasses
import datetime
import enum
from collections.abc import Iterator, Mapping, Sequence
from typing import Optional, Union, overload

from google.protobuf import timestamp_pb2

from ._proto import account_pb2, execution_pb2, module_pb2, receipt_pb2, server_pb2
from .files import FileAssembler, FileData, Filesystem
from .limits import Limits

__all__ = [
    "ApiKey",
    "BatchCase",
    "BatchResult",
    "CaseResult",
    "DailyUsage",
    "Event",
    "FilePiece",
    "Finished",
    "ModuleExport",
    "ModuleImport",
    "ModuleInfo",
    "NewApiKey",
    "Outcome",
    "RateLimit",
    "ReceiptKey",
    "Result",
    "ServerInfo",
    "Started",
    "Stderr",
    "Stdout",
    "TierLimits",
    "Usage",
    "User",
    "Verdict",
    "WhoAmI",
]


class Outcome(enum.Enum):
    """How an execution ended (``wasmwiz.v1.Outcome`` without its prefix)."""

    UNSPECIFIED = 0
    #: The guest exited with code 0.
    SUCCESS = 1
    #: The guest called ``proc_exit`` with a nonzero code.
    EXIT_NONZERO = 2
    #: The guest trapped; ``trap_kind`` says how.
    TRAP = 3
    #: The fuel budget ran out.
    OUT_OF_FUEL = 4
    #: The wall-clock timeout passed.
    TIMEOUT = 5
    #: The guest needed more memory than allowed.
    MEMORY_LIMIT = 6
    #: The guest wrote more than ``max_output`` bytes.
    OUTPUT_LIMIT = 7
    #: The client went away or the server shut down first.
    CANCELLED = 8

    @classmethod
    def _missing_(cls, value: object) -> Outcome:
        # A newer server may add outcomes; keep old clients working.
        return cls.UNSPECIFIED


class Verdict(enum.Enum):
    """Comparison of stdout with ``expected_stdout`` (``wasmwiz.v1.Verdict``)."""

    #: No ``expected_stdout`` was given.
    UNSPECIFIED = 0
    #: stdout equals ``expected_stdout`` byte for byte.
    ACCEPTED = 1
    #: stdout differs from ``expected_stdout``.
    WRONG_ANSWER = 2

    @classmethod
    def _missing_(cls, value: object) -> Verdict:
        return cls.UNSPECIFIED


def _timestamp(msg: timestamp_pb2.Timestamp) -> datetime.datetime:
    return datetime.datetime.fromtimestamp(msg.seconds + msg.nanos / 1e9, tz=datetime.timezone.utc)


def _optional_timestamp(
    parent: object, field: str, msg: timestamp_pb2.Timestamp
) -> Optional[datetime.datetime]:
    has_field = getattr(parent, "HasField", None)
    if has_field is not None and not has_field(field):
        return None
    return _timestamp(msg)


# --------------------------------------------------------------------------- events


@dataclasses.dataclass(frozen=True)
class Started:
    """First event: the execution was admitted and the module compiled.

    Attributes:
        module_sha256: The module's lowercase hex sha256.
        cache_hit: True when the compiled module came from the server's cache.
        limits: The effective limits (tier defaults filled in).
        execution_id: The id of this execution's usage record.
        result_cache_hit: True when the result is replayed from the result
            cache (``cache="use"``): the module did not run again.
        cached_from: With ``result_cache_hit``, the ``execution_id`` of the
            run whose result this is.
    """

    module_sha256: str
    cache_hit: bool
    limits: Limits
    execution_id: str
    result_cache_hit: bool = False
    cached_from: str = ""

    @classmethod
    def _from_proto(cls, msg: execution_pb2.Started) -> Started:
        return cls(
            msg.module_sha256,
            msg.cache_hit,
            Limits.from_proto(msg.limits),
            msg.execution_id,
            result_cache_hit=msg.result_cache_hit,
            cached_from=msg.cached_from,
        )


@dataclasses.dataclass(frozen=True)
class Stdout:
    """A chunk of the guest's stdout, as it was written."""

    data: bytes


@dataclasses.dataclass(frozen=True)
class Stderr:
    """A chunk of the guest's stderr, as it was written."""

    data: bytes


@dataclasses.dataclass(frozen=True)
class Finished:
    """Last event: how the execution ended.

    Attributes:
        outcome: How it ended.
        exit_code: The guest's exit code; -1 when it did not exit.
        trap_kind: For ``Outcome.TRAP``: e.g. ``"unreachable"``; else empty.
        message: A human-readable explanation (empty on success).
        fuel_consumed: Fuel used; identical for identical requests.
        duration: Wall-clock seconds of the run.
        memory_peak: Largest linear memory reached, in bytes.
        stdout_bytes: Bytes of stdout delivered.
        stderr_bytes: Bytes of stderr delivered.
        output_truncated: True when output was cut at the output limit.
        verdict: Comparison with ``expected_stdout``, when one was given.
        receipt: The signed receipt (``receipt=True``), else ``None``; check
            it offline with :func:`wasmwiz.receipt.verify`.
    """

    outcome: Outcome
    exit_code: int
    trap_kind: str
    message: str
    fuel_consumed: int
    duration: float
    memory_peak: int
    stdout_bytes: int
    stderr_bytes: int
    output_truncated: bool
    verdict: Verdict
    receipt: Optional[receipt_pb2.Receipt] = None

    @classmethod
    def _from_proto(cls, msg: execution_pb2.Finished) -> Finished:
        return cls(
            outcome=Outcome(msg.outcome),
            exit_code=msg.exit_code,
            trap_kind=msg.trap_kind,
            message=msg.message,
            fuel_consumed=msg.fuel_consumed,
            duration=msg.duration_us / 1e6,
            memory_peak=msg.memory_peak_bytes,
            stdout_bytes=msg.stdout_bytes,
            stderr_bytes=msg.stderr_bytes,
            output_truncated=msg.output_truncated,
            verdict=Verdict(msg.verdict),
            receipt=msg.receipt if msg.HasField("receipt") else None,
        )


@dataclasses.dataclass(frozen=True)
class FilePiece:
    """One piece (at most 1 MiB) of a collected file.

    Files come in path order; a larger file comes as consecutive pieces with
    the same path, in order; an empty file is one empty piece.
    :attr:`Result.files` has them put back together.
    """

    path: str
    data: bytes


#: One event of :meth:`Client.stream`: ``Started``, then ``Stdout``/``Stderr``
#: chunks in the order written, then the collected files' ``FilePiece``\ s,
#: then one ``Finished``.
Event = Union[Started, Stdout, Stderr, FilePiece, Finished]


def _event_from_proto(msg: execution_pb2.ExecuteEvent) -> Optional[Event]:
    kind = msg.WhichOneof("event")
    if kind == "started":
        return Started._from_proto(msg.started)
    if kind == "stdout":
        return Stdout(msg.stdout)
    if kind == "stderr":
        return Stderr(msg.stderr)
    if kind == "finished":
        return Finished._from_proto(msg.finished)
    if kind == "file":
        return FilePiece(msg.file.path, msg.file.file)
    return None  # an event kind this client does not know: skip it


# --------------------------------------------------------------------------- results


@dataclasses.dataclass(frozen=True)
class RateLimit:
    """The ``ratelimit-*`` headers of a response (``None`` when absent).

    Attributes:
        limit: Executions allowed in the current window.
        remaining: Executions left in it.
        reset: Seconds until the window resets.
    """

    limit: Optional[int]
    remaining: Optional[int]
    reset: Optional[float]

    @classmethod
    def _from_metadata(cls, pairs: Sequence[tuple[str, Union[str, bytes]]]) -> Optional[RateLimit]:
        found: dict[str, str] = {}
        for key, value in pairs:
            if key in ("ratelimit-limit", "ratelimit-remaining", "ratelimit-reset"):
                found[key] = value.decode() if isinstance(value, bytes) else value
        if not found:
            return None

        def number(key: str) -> Optional[float]:
            try:
                return float(found[key])
            except (KeyError, ValueError):
                return None

        limit, remaining = number("ratelimit-limit"), number("ratelimit-remaining")
        return cls(
            None if limit is None else int(limit),
            None if remaining is None else int(remaining),
            number("ratelimit-reset"),
        )


@dataclasses.dataclass(frozen=True)
class Result:
    r"""The result of one execution (:meth:`Client.run`).

    Guest failures (nonzero exit, trap, limits) are results, not exceptions:
    check :attr:`ok` or :attr:`outcome`.

    Attributes:
        stdout: Everything the guest wrote to stdout.
        stderr: Everything the guest wrote to stderr.
        outcome: How it ended.
        exit_code: The guest's exit code; -1 when it did not exit.
        fuel_consumed: Fuel used (deterministic).
        duration: Wall-clock seconds of the run.
        memory_peak: Largest linear memory reached, in bytes.
        verdict: Comparison with ``expected_stdout`` (``UNSPECIFIED`` without).
        execution_id: The id of the execution's usage record.
        module_sha256: The module's sha256.
        trap_kind: For traps, e.g. ``"unreachable"``.
        message: The server's explanation of a failure.
        output_truncated: True when output was cut at the output limit.
        cache_hit: True when the compiled module came from the server's cache.
        limits: The effective limits, when the server reported them.
        rate_limit: The rate-limit headers of the response, when present.
        files: The collected files (``collect=``), path to contents, in path order.
        result_cache_hit: True when the result was replayed from the result
            cache (``cache="use"``); the module did not run again.
        cached_from: With ``result_cache_hit``, the ``execution_id`` of the
            original run.
        receipt: The signed receipt (``receipt=True``), else ``None``. A cache
            hit carries the original run's receipt. Verify it offline with
            :func:`wasmwiz.receipt.verify` and a key of :meth:`Client.server_info`.

    Example::

        result = client.run("hello.wasm")
        print(result.ok, result.text, end="")  # True Hello, WasmWiz!
    """

    stdout: bytes
    stderr: bytes
    outcome: Outcome
    exit_code: int
    fuel_consumed: int
    duration: float
    memory_peak: int
    verdict: Verdict
    execution_id: str
    module_sha256: str = ""
    trap_kind: str = ""
    message: str = ""
    output_truncated: bool = False
    cache_hit: bool = False
    limits: Optional[Limits] = None
    rate_limit: Optional[RateLimit] = None
    files: Mapping[str, bytes] = dataclasses.field(default_factory=dict)
    result_cache_hit: bool = False
    cached_from: str = ""
    receipt: Optional[receipt_pb2.Receipt] = None

    @property
    def ok(self) -> bool:
        """True when the guest exited 0 and stdout was not a wrong answer."""
        return self.outcome is Outcome.SUCCESS and self.verdict is not Verdict.WRONG_ANSWER

    @property
    def accepted(self) -> bool:
        """True when ``expected_stdout`` was given and matched."""
        return self.verdict is Verdict.ACCEPTED

    @property
    def text(self) -> str:
        """stdout decoded as UTF-8 (invalid bytes replaced)."""
        return self.stdout.decode("utf-8", "replace")

    @property
    def error_text(self) -> str:
        """stderr decoded as UTF-8 (invalid bytes replaced)."""
        return self.stderr.decode("utf-8", "replace")


class _ResultBuilder:
    """Accumulates the events of one execution into a :class:`Result`."""

    def __init__(self) -> None:
        self.started: Optional[Started] = None
        self.finished: Optional[Finished] = None
        self._stdout: list[bytes] = []
        self._stderr: list[bytes] = []
        self._files = FileAssembler()

    def add(self, event: Event) -> None:
        if isinstance(event, Started):
            self.started = event
        elif isinstance(event, Stdout):
            self._stdout.append(event.data)
        elif isinstance(event, Stderr):
            self._stderr.append(event.data)
        elif isinstance(event, FilePiece):
            self._files.add(event.path, event.data)
        elif isinstance(event, Finished):
            self.finished = event

    def build(self, rate_limit: Optional[RateLimit] = None) -> Result:
        fin = self.finished
        if fin is None:
            raise RuntimeError("the execution has not finished")
        started = self.started
        return Result(
            stdout=b"".join(self._stdout),
            stderr=b"".join(self._stderr),
            outcome=fin.outcome,
            exit_code=fin.exit_code,
            fuel_consumed=fin.fuel_consumed,
            duration=fin.duration,
            memory_peak=fin.memory_peak,
            verdict=fin.verdict,
            execution_id=started.execution_id if started else "",
            module_sha256=started.module_sha256 if started else "",
            trap_kind=fin.trap_kind,
            message=fin.message,
            output_truncated=fin.output_truncated,
            cache_hit=started.cache_hit if started else False,
            limits=started.limits if started else None,
            rate_limit=rate_limit,
            files=self._files.build(),
            result_cache_hit=started.result_cache_hit if started else False,
            cached_from=started.cached_from if started else "",
            receipt=fin.receipt,
        )


# --------------------------------------------------------------------------- batches


@dataclasses.dataclass(frozen=True)
class BatchCase:
    r"""One test case of :meth:`Client.run_batch`.

    Args:
        stdin: The case's whole stdin (``str`` is UTF-8 encoded).
        args: argv[1..] of the case.
        expected_stdout: When given, the case's verdict compares stdout to it.
        name: A label echoed back in :attr:`CaseResult.name`.
        files: Input files of this case only, added over the batch's
            ``files=`` (replacing entries with the same path): path to
            contents, or a :class:`~wasmwiz.Filesystem`. Setting it gives the
            case a filesystem even when the batch has none.
        collect: More glob patterns of files to send back, for this case only.

    Example:
        >>> BatchCase(stdin="2 3\n", expected_stdout="5\n", name="small")  # doctest: +ELLIPSIS
        BatchCase(stdin='2 3\n', args=(), expected_stdout='5\n', name='small', ...)
    """

    stdin: Union[bytes, str] = b""
    args: Sequence[str] = ()
    expected_stdout: Optional[Union[bytes, str]] = None
    name: str = ""
    files: Optional[Union[Mapping[str, FileData], Filesystem]] = None
    collect: Sequence[str] = ()


@dataclasses.dataclass(frozen=True)
class CaseResult(Result):
    """The result of one case of a batch: a :class:`Result` plus its index and name."""

    index: int = 0
    name: str = ""

    @classmethod
    def _from_proto(
        cls, msg: execution_pb2.BatchEvent, files: Optional[Mapping[str, bytes]] = None
    ) -> CaseResult:
        fin = Finished._from_proto(msg.finished)
        return cls(
            stdout=msg.stdout,
            stderr=msg.stderr,
            outcome=fin.outcome,
            exit_code=fin.exit_code,
            fuel_consumed=fin.fuel_consumed,
            duration=fin.duration,
            memory_peak=fin.memory_peak,
            verdict=fin.verdict,
            execution_id=msg.execution_id,
            module_sha256=msg.module_sha256,
            trap_kind=fin.trap_kind,
            message=fin.message,
            output_truncated=fin.output_truncated,
            index=msg.case_index,
            name=msg.name,
            files=files if files is not None else {},
            result_cache_hit=msg.result_cache_hit,
            cached_from=msg.cached_from,
            receipt=fin.receipt,
        )


class _BatchAssembler:
    """Turns batch events into case results: a case's file pieces, then its result.

    A case's collected files come as events with ``file`` set before the
    event with ``finished``; cases run concurrently, so pieces of different
    cases may interleave.
    """

    def __init__(self) -> None:
        self._files: dict[int, FileAssembler] = {}

    def __call__(self, msg: execution_pb2.BatchEvent) -> Optional[CaseResult]:
        if msg.HasField("file"):
            assembler = self._files.setdefault(msg.case_index, FileAssembler())
            assembler.add(msg.file.path, msg.file.file)
            return None
        files = self._files.pop(msg.case_index).build() if msg.case_index in self._files else {}
        return CaseResult._from_proto(msg, files)


@dataclasses.dataclass(frozen=True)
class BatchResult(Sequence[CaseResult]):
    """All case results of a batch, in the order of the cases.

    Example::

        batch = client.run_batch("sum.wasm", cases)
        print(batch.ok, [c.name for c in batch.failed])  # False ['overflow']
    """

    cases: tuple[CaseResult, ...]

    @property
    def ok(self) -> bool:
        """True when every case is :attr:`Result.ok`."""
        return all(case.ok for case in self.cases)

    @property
    def failed(self) -> list[CaseResult]:
        """The cases that are not :attr:`Result.ok`."""
        return [case for case in self.cases if not case.ok]

    @property
    def passed(self) -> list[CaseResult]:
        """The cases that are :attr:`Result.ok`."""
        return [case for case in self.cases if case.ok]

    @overload
    def __getitem__(self, index: int) -> CaseResult: ...

    @overload
    def __getitem__(self, index: slice) -> Sequence[CaseResult]: ...

    def __getitem__(self, index: Union[int, slice]) -> Union[CaseResult, Sequence[CaseResult]]:
        return self.cases[index]

    def __len__(self) -> int:
        return len(self.cases)

    def __iter__(self) -> Iterator[CaseResult]:
        return iter(self.cases)


# --------------------------------------------------------------------------- modules


@dataclasses.dataclass(frozen=True)
class ModuleImport:
    """One import of a module (``module`` is always ``wasi_snapshot_preview1``)."""

    module: str
    name: str
    kind: str


@dataclasses.dataclass(frozen=True)
class ModuleExport:
    """One export of a module; ``kind`` is func, table, memory or global."""

    name: str
    kind: str


@dataclasses.dataclass(frozen=True)
class ModuleInfo:
    """A module stored on the server.

    Attributes:
        sha256: Lowercase hex sha256 of its bytes; run it with ``client.run(sha256)``.
        size: Size in bytes.
        already_existed: True when the account had it before this call (an
            upload that was skipped or deduplicated).
        imports: Its imports.
        exports: Its exports.
        created_at: When this account first stored it.
        import_count: How many imports it has, when the server says (a
            listing does, without the import list unless ``details=True``).
        export_count: How many exports it has, when the server says.
    """

    sha256: str
    size: int
    already_existed: bool = False
    imports: tuple[ModuleImport, ...] = ()
    exports: tuple[ModuleExport, ...] = ()
    created_at: Optional[datetime.datetime] = None
    import_count: Optional[int] = None
    export_count: Optional[int] = None

    @classmethod
    def _from_proto(cls, msg: module_pb2.ModuleInfo) -> ModuleInfo:
        return cls(
            sha256=msg.sha256,
            size=msg.size,
            already_existed=msg.already_existed,
            imports=tuple(ModuleImport(i.module, i.name, i.kind) for i in msg.imports),
            exports=tuple(ModuleExport(e.name, e.kind) for e in msg.exports),
            created_at=_optional_timestamp(msg, "created_at", msg.created_at),
            import_count=msg.import_count if msg.HasField("import_count") else None,
            export_count=msg.export_count if msg.HasField("export_count") else None,
        )


# --------------------------------------------------------------------------- accounts


@dataclasses.dataclass(frozen=True)
class TierLimits:
    """A tier's allowances.

    Sizes in bytes, ``max_timeout`` and ``upload_idle_timeout`` in seconds;
    a ``max_stored_*`` of 0 means no limit.
    """

    tier: str
    per_minute: int
    per_day: int
    max_module_bytes: int
    max_stdin_bytes: int
    max_memory_bytes: int
    max_fuel: int
    max_timeout: float
    max_output_bytes: int
    max_concurrent: int
    unmetered: bool
    max_stored_bytes: int = 0
    max_stored_modules: int = 0
    uploads_per_minute: int = 0
    max_concurrent_uploads: int = 0
    upload_idle_timeout: float = 0.0
    max_args: int = 0
    max_args_bytes: int = 0
    max_api_keys: int = 0

    @classmethod
    def _from_proto(cls, msg: account_pb2.TierLimits) -> TierLimits:
        return cls(
            tier=msg.tier,
            per_minute=msg.per_minute,
            per_day=msg.per_day,
            max_module_bytes=msg.max_module_bytes,
            max_stdin_bytes=msg.max_stdin_bytes,
            max_memory_bytes=msg.max_memory_bytes,
            max_fuel=msg.max_fuel,
            max_timeout=msg.max_timeout_ms / 1000,
            max_output_bytes=msg.max_output_bytes,
            max_concurrent=msg.max_concurrent,
            unmetered=msg.unmetered,
            max_stored_bytes=msg.max_stored_bytes,
            max_stored_modules=msg.max_stored_modules,
            uploads_per_minute=msg.uploads_per_minute,
            max_concurrent_uploads=msg.max_concurrent_uploads,
            upload_idle_timeout=msg.upload_idle_timeout_ms / 1000,
            max_args=msg.max_args,
            max_args_bytes=msg.max_args_bytes,
            max_api_keys=msg.max_api_keys,
        )


@dataclasses.dataclass(frozen=True)
class WhoAmI:
    """The caller's account (:meth:`Client.whoami`).

    Attributes:
        stored_bytes: Bytes of modules the account stores now (against
            ``limits.max_stored_bytes``).
        stored_modules: Modules the account stores now (against
            ``limits.max_stored_modules``).
        key_expires_at: When the calling key expires (``None``: never).
    """

    email: str
    tier: str
    limits: TierLimits
    remaining_this_minute: int
    remaining_today: int
    key_id: str
    admin: bool
    stored_bytes: int = 0
    stored_modules: int = 0
    key_expires_at: Optional[datetime.datetime] = None

    @classmethod
    def _from_proto(cls, msg: account_pb2.WhoAmIResponse) -> WhoAmI:
        return cls(
            email=msg.email,
            tier=msg.tier,
            limits=TierLimits._from_proto(msg.limits),
            remaining_this_minute=msg.remaining_this_minute,
            remaining_today=msg.remaining_today,
            key_id=msg.key_id,
            admin=msg.admin,
            stored_bytes=msg.stored_bytes,
            stored_modules=msg.stored_modules,
            key_expires_at=_optional_timestamp(msg, "key_expires_at", msg.key_expires_at),
        )


@dataclasses.dataclass(frozen=True)
class DailyUsage:
    """Usage of one UTC day; ``duration`` in seconds."""

    date: datetime.date
    executions: int
    fuel_consumed: int
    duration: float


@dataclasses.dataclass(frozen=True)
class Usage:
    """Usage totals over a number of days, with a per-day series (oldest first).

    Attributes:
        executions: Executions in the period.
        fuel_consumed: Fuel used in the period.
        duration: Seconds of execution in the period.
        daily: One entry per UTC day, oldest first.
        by_outcome: Executions by outcome name (``"OUTCOME_SUCCESS"`` -> 12).
        cache_hits: Executions answered from the result cache (not counted
            in ``executions``).
        fuel_saved: Fuel those cache hits did not spend.
    """

    executions: int
    fuel_consumed: int
    duration: float
    daily: tuple[DailyUsage, ...]
    by_outcome: Mapping[str, int]
    cache_hits: int = 0
    fuel_saved: int = 0

    @classmethod
    def _from_proto(cls, msg: account_pb2.GetUsageResponse) -> Usage:
        return cls(
            executions=msg.executions,
            fuel_consumed=msg.fuel_consumed,
            duration=msg.duration_us / 1e6,
            daily=tuple(
                DailyUsage(
                    date=datetime.date.fromisoformat(d.date),
                    executions=d.executions,
                    fuel_consumed=d.fuel_consumed,
                    duration=d.duration_us / 1e6,
                )
                for d in msg.daily
            ),
            by_outcome=dict(msg.by_outcome),
            cache_hits=msg.cache_hits,
            fuel_saved=msg.fuel_saved,
        )


@dataclasses.dataclass(frozen=True)
class ReceiptKey:
    """A public key that verifies receipts (:attr:`ServerInfo.receipt_keys`).

    Attributes:
        key_id: The id receipts name (``Receipt.key_id``).
        public_key: The 32-byte Ed25519 public key.
        current: True for the key signing new receipts; retired keys stay
            listed so older receipts still verify.
    """

    key_id: str
    public_key: bytes
    current: bool


@dataclasses.dataclass(frozen=True)
class ServerInfo:
    """What a server is (:meth:`Client.server_info`; needs no API key).

    Attributes:
        server_version: The server's version (``"0.1.0"``).
        wasmi_version: The interpreter's version.
        fuel_cost_model: The version of the fuel cost model.
        wasi_version: The version of the WASI implementation.
        receipt_keys: The keys that verify receipts, the current one first.
    """

    server_version: str
    wasmi_version: str
    fuel_cost_model: str
    wasi_version: str
    receipt_keys: tuple[ReceiptKey, ...]

    def key(self, key_id: str) -> bytes:
        """The public key with that id (e.g. a receipt's ``key_id``).

        Raises:
            KeyError: The server lists no such key.
        """
        for key in self.receipt_keys:
            if key.key_id == key_id:
                return key.public_key
        raise KeyError(f"the server lists no receipt key {key_id!r}")

    @classmethod
    def _from_proto(cls, msg: server_pb2.GetServerInfoResponse) -> ServerInfo:
        return cls(
            server_version=msg.server_version,
            wasmi_version=msg.engine.wasmi_version,
            fuel_cost_model=msg.engine.fuel_cost_model,
            wasi_version=msg.engine.wasi_version,
            receipt_keys=tuple(
                ReceiptKey(key.key_id, key.public_key, key.current) for key in msg.receipt_keys
            ),
        )


@dataclasses.dataclass(frozen=True)
class User:
    """A user (admin calls)."""

    email: str
    tier: str
    created_at: Optional[datetime.datetime]

    @classmethod
    def _from_proto(cls, msg: account_pb2.User) -> User:
        return cls(msg.email, msg.tier, _optional_timestamp(msg, "created_at", msg.created_at))


@dataclasses.dataclass(frozen=True)
class ApiKey:
    """An API key's public facts (never its secret).

    ``parent_key_id`` is the key that created it with ``create_key``
    (``""``: made by an operator); a child never outlives its parent.
    """

    key_id: str
    email: str
    tier: str
    admin: bool
    label: str
    created_at: Optional[datetime.datetime]
    expires_at: Optional[datetime.datetime]
    revoked_at: Optional[datetime.datetime]
    parent_key_id: str = ""

    @property
    def revoked(self) -> bool:
        """True once the key was revoked."""
        return self.revoked_at is not None

    @classmethod
    def _from_proto(cls, msg: account_pb2.ApiKeyInfo) -> ApiKey:
        return cls(
            key_id=msg.key_id,
            email=msg.email,
            tier=msg.tier,
            admin=msg.admin,
            label=msg.label,
            created_at=_optional_timestamp(msg, "created_at", msg.created_at),
            expires_at=_optional_timestamp(msg, "expires_at", msg.expires_at),
            revoked_at=_optional_timestamp(msg, "revoked_at", msg.revoked_at),
            parent_key_id=msg.parent_key_id,
        )


@dataclasses.dataclass(frozen=True)
class NewApiKey:
    """A freshly created key. ``key`` is the secret: it is shown only once.

    ``expires_at`` is when it expires (a child key never outlives the key
    that made it); ``parent_key_id`` is that key (``""`` for an operator's).
    """

    key: str
    key_id: str
    expires_at: Optional[datetime.datetime] = None
    parent_key_id: str = ""

    @classmethod
    def _from_proto(cls, msg: account_pb2.CreateMyApiKeyResponse) -> NewApiKey:
        return cls(
            msg.key,
            msg.key_id,
            _optional_timestamp(msg, "expires_at", msg.expires_at),
            msg.parent_key_id,
        )

    def __repr__(self) -> str:
        # Keep the secret out of logs and tracebacks.
        return f"NewApiKey(key='wwz_{self.key_id}_…', key_id={self.key_id!r})"
