//! Arbitrary input through the sandbox: validate → compile → run with small
//! limits. Half the inputs are raw bytes (validation must refuse them
//! cleanly); half are wasm-smith modules shaped like WASI commands (they
//! import WASI functions and export `memory` and `_start`), run to their end.
//! Whatever the module, the engine must answer with a report, never panic,
//! hang or crash.
//!
//!   cargo fuzz run compile_and_run -- -max_total_time=600
//!   WASMWIZ_FUZZ_DUMP=x.wasm cargo fuzz run compile_and_run ARTIFACT  (the module of a finding)

#![no_main]

use std::{sync::OnceLock, time::Duration};

use arbitrary::{Arbitrary, Unstructured};
use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use wasmwiz_server::engine::{Job, Sandbox, SandboxConfig, StdinSource};

struct World {
    runtime: tokio::runtime::Runtime,
    sandbox: Sandbox,
    imports: Vec<u8>,
    exports: Vec<u8>,
}

fn world() -> &'static World {
    static WORLD: OnceLock<World> = OnceLock::new();
    WORLD.get_or_init(|| {
        // libFuzzer's hook aborts on every panic, even those the engine
        // contains (interpreter bugs end one execution as `engine_error`);
        // panics that escape still abort through libfuzzer-sys' own check.
        std::panic::set_hook(Box::new(|info| eprintln!("contained panic: {info}")));
        World {
        runtime: tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap(),
        sandbox: Sandbox::new(SandboxConfig { workers: 1, ..SandboxConfig::default() }).unwrap(),
        imports: wat::parse_str(
            r#"(module
                (import "wasi_snapshot_preview1" "fd_write" (func (param i32 i32 i32 i32) (result i32)))
                (import "wasi_snapshot_preview1" "fd_read" (func (param i32 i32 i32 i32) (result i32)))
                (import "wasi_snapshot_preview1" "proc_exit" (func (param i32)))
                (import "wasi_snapshot_preview1" "random_get" (func (param i32 i32) (result i32)))
                (import "wasi_snapshot_preview1" "clock_time_get" (func (param i32 i64 i32) (result i32))))"#,
        )
        .unwrap(),
        exports: wat::parse_str(r#"(module (memory (export "memory") 1) (func (export "_start")))"#).unwrap(),
        }
    })
}

fn smith_module(u: &mut Unstructured<'_>, w: &World) -> arbitrary::Result<Vec<u8>> {
    let mut config = wasm_smith::Config::arbitrary(u)?;
    config.available_imports = Some(w.imports.clone());
    config.exports = Some(w.exports.clone());
    config.max_memory32_bytes = 16 << 20;
    config.memory64_enabled = false;
    config.threads_enabled = false;
    config.gc_enabled = false;
    config.canonicalize_nans = false;
    Ok(wasm_smith::Module::new(config, u)?.to_bytes())
}

fuzz_target!(|data: &[u8]| {
    let w = world();
    let mut u = Unstructured::new(data);
    let Ok(raw) = bool::arbitrary(&mut u) else { return };
    let bytes = if raw {
        u.take_rest().to_vec()
    } else {
        match smith_module(&mut u, w) {
            Ok(bytes) => bytes,
            Err(_) => return,
        }
    };
    if let Ok(path) = std::env::var("WASMWIZ_FUZZ_DUMP") {
        // Reproducing a finding: keep the module this input turns into.
        std::fs::write(path, &bytes).unwrap();
    }
    let Ok(module) = w.sandbox.compile(&bytes) else { return };
    let job = Job {
        module,
        program_name: "main.wasm".into(),
        args: vec![],
        env: vec![],
        random_seed: 1,
        stdin: StdinSource::Bytes(Bytes::from_static(b"fuzz")),
        fuel: 2_000_000,
        memory_bytes: 16 << 20,
        timeout: Duration::from_secs(5),
        max_output_bytes: 64 << 10,
    };
    let (tx, mut rx) = mpsc::channel(16);
    let report = w.runtime.block_on(async {
        let drain = tokio::spawn(async move { while rx.recv().await.is_some() {} });
        let report = w.sandbox.execute(job, tx, CancellationToken::new()).await;
        drain.await.unwrap();
        report
    });
    assert!(report.fuel_consumed <= 2_000_000, "{report:?}");
    assert!(report.stdout_bytes + report.stderr_bytes <= 64 << 10, "{report:?}");
});
