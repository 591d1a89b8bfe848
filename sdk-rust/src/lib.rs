pub use wasmwiz_proto;
