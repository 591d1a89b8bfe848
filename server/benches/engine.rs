//! Sandbox engine benchmark (criterion): WasmWiz's engine against bare
//! wasmi doing the same work, measured in the same run; after criterion's
//! report it prints the ratios of the mean times.
//!
//!   cargo bench -p wasmwiz-server --bench engine
//!   cargo bench -p wasmwiz-server --bench engine -- hello   (a subset, by name)
//!
//! Targets (issue "Sandbox engine"): cached hello ≤ 1.5× bare; CPU-bound
//! hash over 40 MiB ≤ 1.05× bare; large module: time to first output, cold
//! and cached. Filesystem (no thresholds, baselines from the same run):
//! what a 1 000-file, 50 MiB input tree adds to a cached hello, and the
//! `fscopy` guest copying a 64 MiB file vs `echo` piping 64 MiB.

use std::{
    collections::BTreeMap,
    path::PathBuf,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use criterion::{Criterion, SamplingMode};

use bytes::Bytes;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use wasmi::{Engine, Linker, Module, Store};
use wasmi_wasi::{wasi_common::pipe::WritePipe, WasiCtx, WasiCtxBuilder};
use wasmwiz_server::engine::{
    engine_config,
    vfs::{FsInput, FsInputKind, FsSpec},
    Job, Sandbox, SandboxConfig, StdinSource,
};

fn guest(name: &str) -> Vec<u8> {
    std::fs::read(
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(format!("../examples/guests/{name}.wasm")),
    )
    .unwrap()
}

/// Total time and iterations of every timed call per benchmark, for the
/// ratios printed after criterion's report (criterion keeps its own).
static TOTALS: Mutex<BTreeMap<String, (u64, Duration)>> = Mutex::new(BTreeMap::new());

/// Records `elapsed` for `iters` calls of `id` and hands it to criterion.
fn record(id: &str, iters: u64, elapsed: Duration) -> Duration {
    let mut totals = TOTALS.lock().unwrap();
    let entry = totals.entry(id.to_string()).or_default();
    entry.0 += iters;
    entry.1 += elapsed;
    elapsed
}

/// Mean time per call of `id`, if it ran.
fn mean(id: &str) -> Option<Duration> {
    let totals = TOTALS.lock().unwrap();
    totals
        .get(id)
        .filter(|(iters, _)| *iters > 0)
        .map(|(iters, total)| total.div_f64(*iters as f64))
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
        fs: None,
    }
}

/// A tree of `files` files of `bytes` bytes each, under 10 directories.
fn input_tree(files: usize, bytes: usize) -> FsSpec {
    let contents = Bytes::from(vec![b'x'; bytes]);
    FsSpec {
        entries: (0..files)
            .map(|i| FsInput {
                path: format!("in/d{}/f{i}.bin", i % 10),
                kind: FsInputKind::File(contents.clone()),
            })
            .collect(),
        collect: vec![],
        max_bytes: 1 << 30,
        max_entries: 100_000,
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
    let sb = Sandbox::new(SandboxConfig::default()).unwrap();
    let engine = Engine::new(&engine_config());
    let mut linker = Linker::<WasiCtx>::new(&engine);
    wasmi_wasi::add_to_linker(&mut linker, |ctx| ctx).unwrap();
    let mut c = Criterion::default().configure_from_args();

    // Cached hello: new store + WASI + instantiate + run + collect.
    let hello = guest("hello");
    let compiled = sb.compile(&hello).unwrap();
    let bare_module = Module::new(&engine, &hello).unwrap();
    let mut group = c.benchmark_group("cached_hello");
    group.bench_function("bare_wasmi", |b| {
        b.iter_custom(|iters| {
            let start = Instant::now();
            for _ in 0..iters {
                bare_run(&engine, &linker, &bare_module, &[]);
            }
            record("cached_hello/bare_wasmi", iters, start.elapsed())
        })
    });
    group.bench_function("wasmwiz", |b| {
        b.iter_custom(|iters| {
            let elapsed = runtime.block_on(async {
                let start = Instant::now();
                for _ in 0..iters {
                    engine_run(&sb, job(&sb, compiled.clone(), &[])).await;
                }
                start.elapsed()
            });
            record("cached_hello/wasmwiz", iters, elapsed)
        })
    });
    group.finish();

    // CPU-bound: hash over 40 MiB, fuel slices vs one fuel budget.
    let hash = guest("hash");
    let compiled = sb.compile(&hash).unwrap();
    let bare_module = Module::new(&engine, &hash).unwrap();
    let mut group = c.benchmark_group("cpu_hash_40mib");
    group
        .sample_size(10)
        .sampling_mode(SamplingMode::Flat)
        .measurement_time(Duration::from_secs(6));
    group.bench_function("bare_wasmi", |b| {
        b.iter_custom(|iters| {
            let start = Instant::now();
            for _ in 0..iters {
                bare_run(&engine, &linker, &bare_module, &["40"]);
            }
            record("cpu_hash_40mib/bare_wasmi", iters, start.elapsed())
        })
    });
    group.bench_function("wasmwiz", |b| {
        b.iter_custom(|iters| {
            let elapsed = runtime.block_on(async {
                let start = Instant::now();
                for _ in 0..iters {
                    engine_run(&sb, job(&sb, compiled.clone(), &["40"])).await;
                }
                start.elapsed()
            });
            record("cpu_hash_40mib/wasmwiz", iters, elapsed)
        })
    });
    group.finish();

    // Large module: time to first output, cold (validate + compile + run)
    // and cached; bare wasmi compiles lazily (as we do) and eagerly.
    let big = large_module();
    println!("large module: {} bytes", big.len());
    let mut eager_config = engine_config();
    eager_config.compilation_mode(wasmi::CompilationMode::Eager);
    let eager_engine = Engine::new(&eager_config);
    let mut eager_linker = Linker::<WasiCtx>::new(&eager_engine);
    wasmi_wasi::add_to_linker(&mut eager_linker, |ctx| ctx).unwrap();
    let cached_module = sb.compile(&big).unwrap();
    let mut group = c.benchmark_group("large_module_first_output");
    group
        .sample_size(10)
        .sampling_mode(SamplingMode::Flat)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(3));
    group.bench_function("wasmwiz_cold", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let start = Instant::now();
                let module = sb.compile(&big).unwrap();
                let compiled_in = start.elapsed();
                let (first, _) = runtime.block_on(engine_run(&sb, job(&sb, module, &[])));
                total += compiled_in + first;
            }
            record("large/wasmwiz_cold", iters, total)
        })
    });
    group.bench_function("wasmwiz_cached", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                total += runtime
                    .block_on(engine_run(&sb, job(&sb, cached_module.clone(), &[])))
                    .0;
            }
            record("large/wasmwiz_cached", iters, total)
        })
    });
    for (name, engine, linker) in [
        ("bare_wasmi_lazy", &engine, &linker),
        ("bare_wasmi_eager", &eager_engine, &eager_linker),
    ] {
        group.bench_function(name, |b| {
            b.iter_custom(|iters| {
                let start = Instant::now();
                for _ in 0..iters {
                    let m = Module::new(engine, &big).unwrap();
                    bare_run(engine, linker, &m, &[]);
                }
                record(&format!("large/{name}"), iters, start.elapsed())
            })
        });
    }
    group.finish();

    // Filesystem: a 1 000-file, 50 MiB input tree under a cached hello.
    let compiled = sb.compile(&hello).unwrap();
    let tree = input_tree(1000, 50 * 1024 * 1024 / 1000);
    let mut group = c.benchmark_group("fs_tree_hello");
    for (name, fs) in [("without_fs", None), ("tree_1000_files_50mib", Some(tree))] {
        group.bench_function(name, |b| {
            b.iter_custom(|iters| {
                let elapsed = runtime.block_on(async {
                    let start = Instant::now();
                    for _ in 0..iters {
                        let mut job = job(&sb, compiled.clone(), &[]);
                        job.fs = fs.clone();
                        engine_run(&sb, job).await;
                    }
                    start.elapsed()
                });
                record(&format!("fs_tree_hello/{name}"), iters, elapsed)
            })
        });
    }
    group.finish();

    // Filesystem throughput: fscopy of a 64 MiB file vs echo of 64 MiB stdin.
    let big_file = Bytes::from(vec![7u8; 64 << 20]);
    let fscopy = sb.compile(&guest("fscopy")).unwrap();
    let echo = sb.compile(&guest("echo")).unwrap();
    let mut group = c.benchmark_group("fs_copy_64mib");
    group
        .sample_size(10)
        .sampling_mode(SamplingMode::Flat)
        .measurement_time(Duration::from_secs(5));
    group.bench_function("echo_stdin_to_stdout", |b| {
        b.iter_custom(|iters| {
            let elapsed = runtime.block_on(async {
                let start = Instant::now();
                for _ in 0..iters {
                    let mut job = job(&sb, echo.clone(), &[]);
                    job.stdin = StdinSource::Bytes(big_file.clone());
                    engine_run(&sb, job).await;
                }
                start.elapsed()
            });
            record("fs_copy/echo", iters, elapsed)
        })
    });
    group.bench_function("fscopy_file_to_file", |b| {
        b.iter_custom(|iters| {
            let elapsed = runtime.block_on(async {
                let start = Instant::now();
                for _ in 0..iters {
                    let mut job = job(&sb, fscopy.clone(), &["in.bin", "out.bin"]);
                    job.fs = Some(FsSpec {
                        entries: vec![FsInput {
                            path: "in.bin".into(),
                            kind: FsInputKind::File(big_file.clone()),
                        }],
                        collect: vec![],
                        max_bytes: 1 << 30,
                        max_entries: 10,
                    });
                    engine_run(&sb, job).await;
                }
                start.elapsed()
            });
            record("fs_copy/fscopy", iters, elapsed)
        })
    });
    group.finish();

    // Filesystem call rate: fuel per second of a guest doing nothing but
    // path_filestat_get on an 8-segment path (compare with hash's rate).
    let probe = sb.compile(&guest("fsprobe")).unwrap();
    let deep = ["d"; 8].join("/");
    let spin_job = || {
        let mut job = job(&sb, probe.clone(), &["spin", "20000", &deep]);
        job.fs = Some(FsSpec {
            entries: vec![FsInput {
                path: deep.clone(),
                kind: FsInputKind::Directory,
            }],
            collect: vec![],
            max_bytes: 1 << 20,
            max_entries: 100,
        });
        job
    };
    let spin_fuel = runtime.block_on(async {
        let (tx, _rx) = mpsc::channel(1024);
        sb.execute(spin_job(), tx, CancellationToken::new())
            .await
            .fuel_consumed
    });
    let mut group = c.benchmark_group("fs_calls");
    group.bench_function("stat_8_segments_x20000", |b| {
        b.iter_custom(|iters| {
            let elapsed = runtime.block_on(async {
                let start = Instant::now();
                for _ in 0..iters {
                    engine_run(&sb, spin_job()).await;
                }
                start.elapsed()
            });
            record("fs_calls/stat", iters, elapsed)
        })
    });
    group.finish();
    c.final_summary();

    println!();
    println!(
        "{:<44} {:>14} {:>14} {:>8}",
        "mean time per call", "wasmwiz", "bare wasmi", "ratio"
    );
    let ratio = |name: &str, ours: &str, bare: &str, target: &str| {
        if let (Some(ours), Some(bare)) = (mean(ours), mean(bare)) {
            println!(
                "{name:<44} {:>14?} {:>14?} {:>7.2}x  (target {target})",
                ours,
                bare,
                ours.as_secs_f64() / bare.as_secs_f64()
            );
        }
    };
    ratio(
        "cached hello (instantiate + run + collect)",
        "cached_hello/wasmwiz",
        "cached_hello/bare_wasmi",
        "<= 1.5x",
    );
    ratio(
        "cpu-bound hash over 40 MiB (fuel slices)",
        "cpu_hash_40mib/wasmwiz",
        "cpu_hash_40mib/bare_wasmi",
        "<= 1.05x",
    );
    ratio(
        "large module, cold: first output",
        "large/wasmwiz_cold",
        "large/bare_wasmi_lazy",
        "fast start",
    );
    ratio(
        "  (vs bare wasmi with eager compilation)",
        "large/wasmwiz_cold",
        "large/bare_wasmi_eager",
        "< 1x: lazy translation starts faster",
    );
    ratio(
        "hello + 1 000-file 50 MiB tree vs hello",
        "fs_tree_hello/tree_1000_files_50mib",
        "fs_tree_hello/without_fs",
        "none; baseline",
    );
    if let (Some(with), Some(without)) = (
        mean("fs_tree_hello/tree_1000_files_50mib"),
        mean("fs_tree_hello/without_fs"),
    ) {
        println!(
            "{:<44} {:>14?}",
            "  time the tree adds",
            with.saturating_sub(without)
        );
    }
    ratio(
        "fscopy 64 MiB file vs echo 64 MiB stdin",
        "fs_copy/fscopy",
        "fs_copy/echo",
        "none; baseline",
    );
    for (name, id) in [("  fscopy", "fs_copy/fscopy"), ("  echo", "fs_copy/echo")] {
        if let Some(t) = mean(id) {
            println!("{name:<44} {:>11.0} MiB/s", 64.0 / t.as_secs_f64());
        }
    }
    if let Some(t) = mean("fs_calls/stat") {
        println!(
            "{:<44} {:>11.2e} fuel/s ({spin_fuel} fuel in {t:?})",
            "fs calls (stat of an 8-segment path)",
            spin_fuel as f64 / t.as_secs_f64()
        );
    }
    if let Some(cached) = mean("large/wasmwiz_cached") {
        println!(
            "{:<44} {:>14?}",
            "large module, cached: first output", cached
        );
    }
}
