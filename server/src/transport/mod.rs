//! The transport layer: our own accept loop and HTTP/1.1 + HTTP/2
//! connections (hyper), so that every resource an anonymous peer can hold
//! is bounded: connections per IP and in total, streams per connection,
//! time to the first request, idle time, and the bytes and time one
//! request message may take. Authentication happens here, from the
//! headers, before any body byte is read.

pub mod accept;
pub mod auth_layer;
pub mod connection;
pub mod fd_limit;
pub mod message_limit;
pub mod metrics;
pub mod tls;

pub use accept::{serve, Admission, Serving};
pub use auth_layer::{Guarded, MessagePolicy};
pub use connection::{ConnectionSettings, HttpService};
pub use fd_limit::raise_fd_limit;
pub use message_limit::{MessageLimit, MessageLimitBody};
pub use metrics::TransportMetrics;

/// Boxed errors, as tonic and hyper use them.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;
