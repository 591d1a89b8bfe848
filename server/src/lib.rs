//! WasmWiz server: a multi-tenant gRPC service that runs untrusted WASI
//! WebAssembly on wasmi.
//!
//! # Layout
//! - [`engine`]: the sandbox (wasmi, fuel slices, virtual WASI, admission).
//! - [`exec`]: an execution's life (admit → record → run → finish →
//!   record) and batches, from a `RunSpec` built by conversion.
//! - [`transport`]: the accept loop, connection limits, auth before the body.
//! - [`api`]: one thin file per gRPC service, validation by conversion
//!   ([`api::convert`]) and the one error table ([`api::errors`]).
//! - [`audit`]: the security-event log (target `wasmwiz::audit`).
//! - [`auth`]: API keys (HMAC under a pepper, constant-time checks, cache).
//! - [`limits`]: per-minute rate limits, daily quotas, per-user concurrency.
//! - [`store`]: sqlx over SQLite (embedded) or PostgreSQL.
//! - [`receipts`]: the Ed25519 keys that sign execution receipts.
//! - [`web`]: playground, examples, health and metrics over plain HTTP.
//! - [`telemetry`]: OpenTelemetry traces over OTLP (`otlp_endpoint`).
//! - [`config`]: flags, environment and TOML in one struct.
//! - [`server`]: [`run`] wires it all onto one listener.
//!
//! A request flows: auth (from the headers, before the body) → validation
//! → rate limit and quota (a guard, refunded unless admitted) → module
//! (cache or compile) → admission (fair shares) → durable usage row →
//! sandbox (output streamed as produced) → usage finalized → `finished` sent.

pub mod api;
pub mod audit;
pub mod auth;
pub mod config;
pub mod config_reference;
pub mod engine;
pub mod exec;
pub mod jobs;
pub mod limits;
pub mod metrics;
pub mod receipts;
pub mod server;
pub mod store;
pub mod telemetry;
#[doc(hidden)]
pub mod testing;
pub mod transport;
pub mod web;

pub use config::Config;
pub use server::run;
