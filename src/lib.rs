//! Generated types of the WasmWiz API (`wasmwiz.v1`).
//!
//! The `.proto` files under `proto/` are the single source of truth; this
//! crate compiles them at build time (protox + tonic-prost-build, no system
//! `protoc`) for the server and the Rust SDK.

/// Messages, clients (`*_client`) and servers (`*_server`) of `wasmwiz.v1`.
pub mod v1 {
    #![allow(missing_docs, clippy::all, clippy::pedantic)]
    tonic::include_proto!("wasmwiz.v1");
}

/// Encoded `FileDescriptorSet` of every WasmWiz proto, for gRPC reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/wasmwiz_descriptor.bin"));

pub use prost_types::Timestamp;
