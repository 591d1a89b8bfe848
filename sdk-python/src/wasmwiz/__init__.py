"""WasmWiz Python SDK: run untrusted WASI WebAssembly on a WasmWiz server.

Two clients with the same methods: :class:`Client` (blocking) and
:class:`AsyncClient` (asyncio). Both are context managers.

Example::

    import wasmwiz
    with wasmwiz.Client("http://127.0.0.1:8080", api_key="wwz_...") as client:
        result = client.run("hello.wasm", limits={"memory": "64MiB", "timeout": 2.5})
        print(result.outcome.name, result.text)
    # SUCCESS Hello, WasmWiz!

Layout:
    ``aio`` (asyncio) calls the gRPC stubs generated in ``_gen`` (checked in;
    ``scripts/generate.sh``); ``client`` (sync) is generated from ``aio`` by
    ``scripts/unasync.py``, with ``_sync_io`` in place of ``_async_io``. Both share ``_common``
    (URL, module resolution, chunking, request building), ``_types`` (results
    and records), ``files`` (the guest's input tree and collected files),
    ``limits`` (friendly limit values) and ``errors`` (the one place that maps
    gRPC errors to exceptions); ``retry`` holds the opt-in
    retry policy and ``proto`` exposes the raw generated modules.
"""

from __future__ import annotations

from . import webhooks
from ._common import (
    AsyncStdinLike,
    CacheLike,
    CaseLike,
    Data,
    ModuleLike,
    ProgressCallback,
    StdinLike,
    UploadLike,
)
from ._jobs import ExecutionInfo, ExecutionState, ExecutionSummary, SubmittedBatch, WebhookAttempt
from ._types import (
    ApiKey,
    BatchCase,
    BatchResult,
    CaseResult,
    DailyUsage,
    Event,
    FilePiece,
    Finished,
    ModuleExport,
    ModuleImport,
    ModuleInfo,
    NewApiKey,
    Outcome,
    RateLimit,
    ReceiptKey,
    Result,
    ServerInfo,
    Started,
    Stderr,
    Stdout,
    TierLimits,
    Usage,
    User,
    Verdict,
    WhoAmI,
)
from ._version import __version__
from .aio import (
    AsyncBatchStream,
    AsyncClient,
    AsyncDetachedExecution,
    AsyncExecutionStream,
    AsyncInteractiveSession,
)
from .client import BatchStream, Client, DetachedExecution, ExecutionStream, InteractiveSession
from .errors import (
    DeadlineExceeded,
    ErrorInfo,
    FieldViolation,
    InvalidArgument,
    InvalidModule,
    LimitExceeded,
    MissingApiKey,
    NotFound,
    PermissionDenied,
    QuotaExceeded,
    QuotaViolation,
    RateLimited,
    ResourceInfo,
    Unauthenticated,
    Unavailable,
    UploadIdle,
    WasmWizError,
)
from .files import FileData, FilesLike, Filesystem, files_from_dir
from .limits import Limits, parse_duration, parse_fuel, parse_size
from .retry import Retry

__all__ = [
    "ApiKey",
    "AsyncBatchStream",
    "AsyncClient",
    "AsyncDetachedExecution",
    "AsyncExecutionStream",
    "AsyncInteractiveSession",
    "AsyncStdinLike",
    "BatchCase",
    "BatchResult",
    "BatchStream",
    "CacheLike",
    "CaseLike",
    "CaseResult",
    "Client",
    "DailyUsage",
    "Data",
    "DeadlineExceeded",
    "DetachedExecution",
    "ErrorInfo",
    "Event",
    "ExecutionInfo",
    "ExecutionState",
    "ExecutionStream",
    "ExecutionSummary",
    "FieldViolation",
    "FileData",
    "FilePiece",
    "FilesLike",
    "Filesystem",
    "Finished",
    "InteractiveSession",
    "InvalidArgument",
    "InvalidModule",
    "LimitExceeded",
    "Limits",
    "MissingApiKey",
    "ModuleExport",
    "ModuleImport",
    "ModuleInfo",
    "ModuleLike",
    "NewApiKey",
    "NotFound",
    "Outcome",
    "PermissionDenied",
    "ProgressCallback",
    "QuotaExceeded",
    "QuotaViolation",
    "RateLimit",
    "RateLimited",
    "ReceiptKey",
    "ResourceInfo",
    "Result",
    "Retry",
    "ServerInfo",
    "Started",
    "Stderr",
    "StdinLike",
    "Stdout",
    "SubmittedBatch",
    "TierLimits",
    "Unauthenticated",
    "Unavailable",
    "UploadIdle",
    "UploadLike",
    "Usage",
    "User",
    "Verdict",
    "WasmWizError",
    "WebhookAttempt",
    "WhoAmI",
    "__version__",
    "files_from_dir",
    "parse_duration",
    "parse_fuel",
    "parse_size",
    "webhooks",
]
