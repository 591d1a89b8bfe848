//! WasmWiz server: a multi-tenant gRPC service that runs untrusted WASI
//! WebAssembly on wasmi.
pub mod engine;
