//! Executions below the API: a request becomes a [`RunSpec`] (or a
//! [`BatchSpec`]) by conversion, and [`lifecycle`] owns what follows —
//! admit → record → run → finish → record — so the gRPC handlers only
//! authenticate, convert, call and map events to the wire.

pub mod batch;
pub mod client;
pub mod fs_input;
pub mod fs_output;
pub mod lifecycle;
pub mod record;
pub mod sessions;
pub mod spec;
mod stdin_route;
mod verdict;
// Receipts and the result cache.
pub mod digest;
pub mod identity;
pub mod inputs;
pub mod receipting;
pub mod result_cache;

pub use self::{
    batch::{Batch, BatchSpec, CaseResult},
    lifecycle::{ExecEvent, Execution, Finished},
    record::{JobAttempt, UsageEnd, UsageRecord},
    spec::{NamedTier, RunSpec},
};
