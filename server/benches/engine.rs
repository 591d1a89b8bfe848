//! Sandbox engine benchmark: WasmWiz's engine against bare wasmi doing the
//! same work, measured in the same run, printed as ratios.
//!
//!   cargo bench -p wasmwiz-server --bench engine
//!   WASMWIZ_BENCH=hello,cpu,large cargo bench … (a subset)
//!
//! Targets (issue "Sandbox engine"): cached hello ≤ 1.5× bare; CPU-bound
//! hash over 40 MiB ≤ 1.05× bare; large module: time to first output, cold
//! and cached.

use std::{
    path::PathBuf,
    sync::Arc,
    time::{Duration, Instant},
};

use bytes::Bytes;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use wasmi::{Engine, Linker, Module, Store};
use wasmi_wasi::{wasi_common::pipe::WritePipe, WasiCtx, WasiCtxBuilder};
use wasmwiz_server::engine::{engine_config, Job, Sandbox, SandboxConfig, StdinSource};

fn guest(name: &str) -> Vec<u8> {
    std::fs::read(
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(format!("../examples/guests/{name}.wasm")),
    )
    .unwrap()
}

/// Median of `iterations` timings of `f`, after `warmup` untimed calls.
fn median(warmup: usize, iterations: usize, mut f: impl FnMut()) -> Duration {
    for _ in 0..warmup {
        f();
    }
    let mut times: Vec<Duration> = (0..iterations)
        .map(|_| {
            let start = Instant::now();
            f();
            start.elapsed()
        })
        .collect();
    times.sort();
    times[times.len() / 2]
}

/// Bare wasmi: new store + WASI + instantiate + run, one fuel budget.
fn bare_run(engine: &Engine, linker: &Linker<WasiCtx>, module: &Module, args: &[&str]) -> usize {
    let stdout = WritePipe::new_in_memory();
    let mut builder = WasiCtxBuilder::new();
    builder.stdout(Box::new(stdout.clone()));
    builder.arg("main.wasm").unwrap();
    for a in args {
        builder.arg(a).unwrap();
    }
    let mut store = Store::new(engine, builder.build());
    store.set_fuel(u64::MAX / 2).unwrap();
    let instance = linker.instantiate_and_start(&mut store, module).unwrap();
    let start = instance.get_typed_func::<(), ()>(&store, "_start").unwrap();
    let _ = start.call(&mut store, ());
    drop(store);
    stdout
        .try_into_inner()
        .map(|c| c.into_inner().len())
        .unwrap_or(0)
}

fn job(sb: &Sandbox, module: Arc<wasmwiz_server::engine::CompiledModule>, args: &[&str]) -> Job {
    let _ = sb;
    Job {
        module,
        program_name: "main.wasm".into(),
        args: args.iter().map(|s| s.to_string()).collect(),
        env: vec![],
        random_seed: 0,
        stdin: StdinSource::Bytes(Bytes::new()),
        fuel: u64::MAX / 2,
        memory_bytes: 1 << 30,
        timeout: Duration::from_secs(600),
        max_output_bytes: 1 << 30,
    }
}

/// The engine's full path: execute and collect the output. Returns the
/// time to the first output chunk and the bytes collected.
async fn engine_run(sb: &Sandbox, job: Job) -> (Duration, usize) {
    let (tx, mut rx) = mpsc::channel::<wasmwiz_server::engine::OutputChunk>(1024);
    let start = Instant::now();
    let first = std::sync::Arc::new(std::sync::OnceLock::new());
    let report = sb.execute(job, tx, CancellationToken::new()).await;
    let mut n = 0;
    while let Ok(chunk) = rx.try_recv() {
        first.get_or_init(|| start.elapsed());
        n += chunk.data.len();
    }
    assert_eq!(report.exit_code, 0, "{report:?}");
    (first.get().copied().unwrap_or_else(|| start.elapsed()), n)
}

/// Median time of `iterations` awaited runs, after `warmup` untimed ones,
/// all inside one runtime call (no per-iteration runtime overhead).
fn median_async<F: std::future::Future<Output = ()>>(
    runtime: &tokio::runtime::Runtime,
    warmup: usize,
    iterations: usize,
    mut f: impl FnMut() -> F,
) -> Duration {
    runtime.block_on(async {
        for _ in 0..warmup {
            f().await;
        }
        let mut times = Vec::with_capacity(iterations);
        for _ in 0..iterations {
            let start = Instant::now();
            f().await;
            times.push(start.elapsed());
        }
        times.sort();
        times[times.len() / 2]
    })
}

/// A ~25 MB module: many functions plus a large data segment, like a big
/// real-world program (yosys is 28 MB).
fn large_module() -> Vec<u8> {
    let mut text = String::from(
        r#"(module
  (import "wasi_snapshot_preview1" "fd_write" (func $w (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 512)
"#,
    );
    for i in 0..60_000 {
        text.push_str(&format!(
            "(func $f{i} (param i32) (result i32) (i32.add (i32.mul (local.get 0) (i32.const {i})) (i32.const 7)))\n"
        ));
    }
    text.push_str(r#"(data (i32.const 1024) "hi\n")"#);
    let filler = "x".repeat(1 << 20);
    for i in 0..20 {
        text.push_str(&format!(
            "(data (i32.const {}) \"{filler}\")\n",
            2 << 20 | (i << 20)
        ));
    }
    text.push_str(
        r#"(func (export "_start")
    (i32.store (i32.const 0) (i32.const 1024))
    (i32.store (i32.const 4) (i32.const 3))
    (drop (call $w (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8)))
    (drop (call $f59999 (i32.const 3))))
)"#,
    );
    wat::parse_str(text).unwrap()
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_stack_size(8 << 20)
        .build()
        .unwrap();
    let only = std::env::var("WASMWIZ_BENCH").unwrap_or_default();
    let wants = |part: &str| only.is_empty() || only.split(',').any(|p| p == part);
    let sb = Sandbox::new(SandboxConfig::default()).unwrap();
    let engine = Engine::new(&engine_config());
    let mut linker = Linker::<WasiCtx>::new(&engine);
    wasmi_wasi::add_to_linker(&mut linker, |ctx| ctx).unwrap();

    println!(
        "{:<44} {:>14} {:>14} {:>8}",
        "benchmark", "wasmwiz", "bare wasmi", "ratio"
    );
    let report = |name: &str, ours: Duration, bare: Duration, target: &str| {
        println!(
            "{name:<44} {:>14?} {:>14?} {:>7.2}x  (target {target})",
            ours,
            bare,
            ours.as_secs_f64() / bare.as_secs_f64()
        );
    };

    if wants("hello") {
        // Cached hello.
        let hello = guest("hello");
        let compiled = sb.compile(&hello).unwrap();
        let bare_module = Module::new(&engine, &hello).unwrap();
        let bare = median(200, 2000, || {
            bare_run(&engine, &linker, &bare_module, &[]);
        });
        let ours = median_async(&runtime, 200, 2000, || {
            let job = job(&sb, compiled.clone(), &[]);
            let sb = &sb;
            async move {
                engine_run(sb, job).await;
            }
        });
        report(
            "cached hello (instantiate + run + collect)",
            ours,
            bare,
            "<= 1.5x",
        );
    }

    if wants("cpu") {
        // CPU-bound: hash over 40 MiB.
        let hash = guest("hash");
        let compiled = sb.compile(&hash).unwrap();
        let bare_module = Module::new(&engine, &hash).unwrap();
        let bare = median(1, 5, || {
            bare_run(&engine, &linker, &bare_module, &["40"]);
        });
        let ours = median_async(&runtime, 1, 5, || {
            let job = job(&sb, compiled.clone(), &["40"]);
            let sb = &sb;
            async move {
                engine_run(sb, job).await;
            }
        });
        report(
            "cpu-bound hash over 40 MiB (fuel slices)",
            ours,
            bare,
            "<= 1.05x",
        );
    }

    if wants("large") {
        // Large module: time to first output, cold (validate + compile + run) and cached.
        let big = large_module();
        println!("large module: {} bytes", big.len());
        let mut colds: Vec<Duration> = (0..3)
            .map(|_| {
                let start = Instant::now();
                let module = sb.compile(&big).unwrap();
                let compiled_in = start.elapsed();
                let (first, _) = runtime.block_on(engine_run(&sb, job(&sb, module, &[])));
                compiled_in + first
            })
            .collect();
        colds.sort();
        let cold = colds[1];
        let module = sb.compile(&big).unwrap();
        let mut cached: Vec<Duration> = (0..5)
            .map(|_| {
                runtime
                    .block_on(engine_run(&sb, job(&sb, module.clone(), &[])))
                    .0
            })
            .collect();
        cached.sort();
        let cached = cached[2];
        let bare_cold = median(0, 3, || {
            let m = Module::new(&engine, &big).unwrap();
            bare_run(&engine, &linker, &m, &[]);
        });
        report(
            "large module, cold: first output",
            cold,
            bare_cold,
            "fast start",
        );
        let mut eager_config = engine_config();
        eager_config.compilation_mode(wasmi::CompilationMode::Eager);
        let eager_engine = Engine::new(&eager_config);
        let mut eager_linker = Linker::<WasiCtx>::new(&eager_engine);
        wasmi_wasi::add_to_linker(&mut eager_linker, |ctx| ctx).unwrap();
        let eager = median(0, 3, || {
            let m = Module::new(&eager_engine, &big).unwrap();
            bare_run(&eager_engine, &eager_linker, &m, &[]);
        });
        report(
            "  (vs bare wasmi with eager compilation)",
            cold,
            eager,
            "< 1x: lazy translation starts faster",
        );
        println!(
            "{:<44} {:>14?}",
            "large module, cached: first output", cached
        );
    }
}
