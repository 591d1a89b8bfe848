//! Rust client for WasmWiz, a multi-tenant gRPC
//! service that runs untrusted WASI WebAssembly; and the `wasmwiz` command
//! line for CI pipelines (see the crate's README).
//!
//! # Quick start
//!
//! ```no_run
//! use wasmwiz::{Client, Limits, Module, Outcome};
//!
//! # async fn demo() -> wasmwiz::Result<()> {
//! let client = Client::builder("http://127.0.0.1:8080")
//!     .api_key(std::env::var("WASMWIZ_API_KEY").unwrap_or_default())
//!     .build()
//!     .await?;
//! let output = client
//!     .run(Module::file("examples/guests/fib.wasm"))
//!     .stdin("20\n")
//!     .limits(Limits::new().fuel(1_000_000_000))
//!     .expect_stdout("6765\n")
//!     .output()
//!     .await?;
//! assert_eq!(output.outcome, Outcome::Success);
//! assert!(output.passed());
//! println!("{} fuel, {:?}", output.fuel_consumed, output.duration);
//! # Ok(()) }
//! ```
//!
//! # Layout
//!
//! - [`client`](Client): the connection, built once by [`ClientBuilder`]
//!   (URL, TLS, API key interceptor, timeouts, [`RetryPolicy`]); every call
//!   goes through its retry loop.
//! - `run`: [`Run`] turns a [`Module`] and options into an `Execute` stream
//!   (start, module chunks, streamed stdin) and reads back a [`RunStream`]
//!   of [`Event`]s or a collected [`Output`].
//! - `modules`: where a module comes from; large modules are uploaded once
//!   with `UploadModule` ([`Upload`], skipped when the server has the hash)
//!   and then referred to by sha256; stored-module calls.
//! - `fs`: the guest's filesystem ([`Filesystem`], [`FsEntry`]) and the
//!   files it leaves ([`File`]), in pieces of at most 1 MiB on the wire.
//! - `batch`: [`Batch`] of [`Case`]s over `RunBatch`, [`BatchOutput`] and
//!   its [`junit_xml`] report.
//! - `account`: [`Client::whoami`], usage and keys; [`Client::admin`].
//! - `detached`: [`Run::submit`] queues a run that outlives the client;
//!   [`Client::get_execution`], [`Client::watch_execution`],
//!   [`Client::cancel_execution`] and [`Client::list_executions`] follow it.
//! - `error`: the one [`Error`] type; gRPC statuses become errors in one
//!   place ([`Error::from_status`]), with their details parsed.
//! - [`util`]: sizes and durations for flags and messages.
//!
//! A run flows: [`Module`] → (large? `GetModule`, else `UploadModule`) →
//! `Execute` request stream → server → `started`, `stdout`/`stderr` chunks,
//! `finished` → [`Event`]s (or [`Output`]).
//!
//! What the guest does (exit codes, traps, limits) is never an [`Error`]: it
//! is the [`Outcome`] of a successful call.

#![warn(missing_docs)]

mod account;
mod batch;
mod client;
mod detached;
mod error;
mod fs;
mod modules;
mod retry;
mod run;
mod trace;
mod types;
pub mod util;
// Offline verification of signed execution receipts.
pub mod receipt;

pub use account::{Admin, ApiKeyInfo, NewKey, Usage, User, WhoAmI};
pub use batch::{
    junit_report, junit_xml, xml_escape, Batch, BatchOutput, BatchStream, Case, CaseResult, NotRun,
};
pub use client::{Client, ClientBuilder};
pub use detached::{Execution, ExecutionState};
pub use error::{code_name, ApiError, Error, LimitExceeded, RateLimit, Result};
pub use fs::{File, Filesystem, FsEntry, FsKind, PIECE_BYTES};
pub use modules::{Module, Upload};
pub use retry::RetryPolicy;
pub use run::{Run, RunStream};
pub use types::{
    Event, Finished, Limits, ModuleExport, ModuleImport, ModuleInfo, NewApiKey, Outcome, Output,
    Started, UploadProgress, Verdict,
};

/// The generated protobuf types and gRPC clients of `wasmwiz.v1`.
pub use wasmwiz_proto::v1 as proto;

/// TLS settings for [`ClientBuilder::tls`].
pub use tonic::transport::{Certificate, ClientTlsConfig, Identity};
/// The README's Rust examples, compiled as doctests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;

/// gRPC status codes.
pub use tonic::Code;
/// google.rpc detail types carried by [`ApiError`].
pub use tonic_types::{ErrorDetails, FieldViolation, QuotaViolation};
