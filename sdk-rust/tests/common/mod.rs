//! Shared test helpers: a real server per test, clients, the CLI binary.
#![allow(dead_code)]

use std::{path::PathBuf, process::Stdio, time::Duration};

use tokio::io::AsyncWriteExt;
pub use wasmwiz_server::testing::TestServer;

/// Path of an example guest (`examples/guests/NAME`).
pub fn guest(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../examples/guests")
        .join(name)
}

/// A guest's bytes.
pub fn guest_bytes(name: &str) -> Vec<u8> {
    std::fs::read(guest(name)).expect("example guest")
}

/// A client of `server` with `key`.
pub async fn client(server: &TestServer, key: &str) -> wasmwiz::Client {
    wasmwiz::Client::builder(&server.url)
        .api_key(key)
        .build()
        .await
        .expect("connecting to the test server")
}

/// What a CLI run printed and how it exited.
#[derive(Debug)]
pub struct CliOutput {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

/// The CLI binary.
pub fn cli_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_wasmwiz"))
}

/// A `wasmwiz` command configured for `url` and `key` by environment.
pub fn cli_command(url: &str, key: Option<&str>) -> tokio::process::Command {
    let mut cmd = tokio::process::Command::new(cli_bin());
    for (name, _) in std::env::vars() {
        if name.starts_with("WASMWIZ_") {
            cmd.env_remove(name);
        }
    }
    cmd.env("WASMWIZ_URL", url);
    if let Some(key) = key {
        cmd.env("WASMWIZ_API_KEY", key);
    }
    cmd.kill_on_drop(true);
    cmd
}

/// Runs `wasmwiz ARGS` against `server` with `key`, feeding `stdin`.
pub async fn cli(
    server_url: &str,
    key: Option<&str>,
    args: &[&str],
    stdin: Option<&[u8]>,
) -> CliOutput {
    let mut cmd = cli_command(server_url, key);
    cmd.args(args)
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("spawning wasmwiz");
    if let Some(input) = stdin {
        let mut pipe = child.stdin.take().expect("stdin pipe");
        pipe.write_all(input).await.expect("writing stdin");
        drop(pipe);
    }
    let out = tokio::time::timeout(Duration::from_secs(120), child.wait_with_output())
        .await
        .expect("wasmwiz finished within 120 s")
        .expect("wasmwiz ran");
    CliOutput {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// hello.wasm with one custom section of `pad_bytes` filler appended: a
/// valid module that prints like hello but has its own sha256.
pub fn padded_hello(pad_bytes: usize, fill: u8) -> Vec<u8> {
    fn leb(mut n: usize, out: &mut Vec<u8>) {
        loop {
            let byte = (n & 0x7f) as u8;
            n >>= 7;
            if n == 0 {
                out.push(byte);
                return;
            }
            out.push(byte | 0x80);
        }
    }
    let mut module = guest_bytes("hello.wasm");
    let name = b"pad";
    let mut payload = Vec::with_capacity(pad_bytes + 8);
    leb(name.len(), &mut payload);
    payload.extend_from_slice(name);
    payload.resize(payload.len() + pad_bytes, fill);
    module.push(0);
    leb(payload.len(), &mut module);
    module.extend_from_slice(&payload);
    module
}
