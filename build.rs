//! Compiles `proto/wasmwiz/v1/*.proto` with protox (pure Rust, no system
//! `protoc`) and generates prost messages plus tonic clients and servers.
//! The encoded file descriptor set is written to OUT_DIR for server
//! reflection.

use std::{env, fs, path::PathBuf};

use prost::Message;

const PROTOS: &[&str] = &[
    "proto/wasmwiz/v1/execution.proto",
    "proto/wasmwiz/v1/module.proto",
    "proto/wasmwiz/v1/account.proto",
    "proto/wasmwiz/v1/admin.proto",
    "proto/wasmwiz/v1/receipt.proto",
    "proto/wasmwiz/v1/receipt_statement.proto",
    "proto/wasmwiz/v1/server.proto",
];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=proto");
    let fds = protox::compile(PROTOS, ["proto"])?;
    let out_dir = PathBuf::from(env::var("OUT_DIR")?);
    fs::write(out_dir.join("wasmwiz_descriptor.bin"), fds.encode_to_vec())?;
    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        // Guest output is sent as slices of the buffer it was written into:
        // `Bytes` fields take them without a copy.
        .bytes(".wasmwiz.v1.ExecuteEvent")
        .bytes(".wasmwiz.v1.BatchEvent")
        // File contents: a batch's shared tree is given to every case, and
        // collected files go out in slices, both without copies.
        .bytes(".wasmwiz.v1.FsEntry")
        .compile_fds(fds)?;
    Ok(())
}
