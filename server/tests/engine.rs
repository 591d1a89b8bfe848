//! The sandbox engine against real guests: outcomes, traps, the
//! pathological catalogue, determinism, streaming, timeout and cancellation.

use std::{path::PathBuf, sync::Arc, time::Duration};

use bytes::Bytes;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use wasmwiz_server::engine::{
    host_fuel, Job, ModuleError, Outcome, OutputChunk, Report, Sandbox, SandboxConfig, StdinSource,
    Stream, ThreadTrace,
};

const HANG_GUARD: Duration = Duration::from_secs(60);

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn guest(name: &str) -> Vec<u8> {
    std::fs::read(repo().join("examples/guests").join(format!("{name}.wasm"))).unwrap()
}

fn wat(name: &str) -> Vec<u8> {
    let path =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(format!("tests/fixtures/wat/{name}.wat"));
    wat::parse_file(path).unwrap()
}

fn sandbox() -> Sandbox {
    Sandbox::new(SandboxConfig {
        workers: 2,
        ..SandboxConfig::default()
    })
    .unwrap()
}

struct Run {
    report: Report,
    stdout: Vec<u8>,
    stderr: Vec<u8>,
    chunks: usize,
}

struct Opts {
    args: Vec<String>,
    stdin: Vec<u8>,
    seed: u64,
    fuel: u64,
    memory: u64,
    timeout: Duration,
    output: u64,
}

impl Default for Opts {
    fn default() -> Self {
        Self {
            args: vec![],
            stdin: vec![],
            seed: 0,
            fuel: 10_000_000_000,
            memory: 64 << 20,
            timeout: Duration::from_secs(30),
            output: 1 << 20,
        }
    }
}

fn job(sb: &Sandbox, bytes: &[u8], o: Opts) -> Job {
    let module = sb.compile(bytes).expect("module compiles");
    Job {
        module,
        program_name: "main.wasm".into(),
        args: o.args,
        env: vec![("GREETING".into(), "hi".into())],
        random_seed: o.seed,
        stdin: StdinSource::Bytes(Bytes::from(o.stdin)),
        fuel: o.fuel,
        memory_bytes: o.memory,
        timeout: o.timeout,
        max_output_bytes: o.output,
        fs: None,
    }
}

async fn collect(sb: &Sandbox, job: Job) -> Run {
    collect_traced(sb, job, None).await
}

async fn collect_traced(sb: &Sandbox, job: Job, trace: Option<ThreadTrace>) -> Run {
    let (tx, mut rx) = mpsc::channel::<OutputChunk>(16);
    let collector = tokio::spawn(async move {
        let (mut out, mut err, mut n) = (Vec::new(), Vec::new(), 0);
        while let Some(chunk) = rx.recv().await {
            n += 1;
            match chunk.stream {
                Stream::Stdout => out.extend_from_slice(&chunk.data),
                Stream::Stderr => err.extend_from_slice(&chunk.data),
            }
        }
        (out, err, n)
    });
    let execution = sb.execute_traced(job, tx, CancellationToken::new(), trace);
    let report = tokio::time::timeout(HANG_GUARD, execution)
        .await
        .expect("execution ends");
    let (stdout, stderr, chunks) = collector.await.unwrap();
    Run {
        report,
        stdout,
        stderr,
        chunks,
    }
}

async fn run(bytes: &[u8], o: Opts) -> Run {
    let sb = sandbox();
    let job = job(&sb, bytes, o);
    collect(&sb, job).await
}

/// After a pathological guest, the same sandbox still runs hello correctly.
async fn assert_healthy(sb: &Sandbox) {
    let r = collect(sb, job(sb, &guest("hello"), Opts::default())).await;
    assert_eq!(r.report.outcome, Outcome::Success);
    assert_eq!(r.stdout, b"Hello, WasmWiz!\n");
}

async fn run_then_healthy(bytes: &[u8], o: Opts) -> Run {
    let sb = sandbox();
    let r = collect(&sb, job(&sb, bytes, o)).await;
    assert_healthy(&sb).await;
    r
}

#[tokio::test]
async fn hello_succeeds_with_measures() {
    let r = run(&guest("hello"), Opts::default()).await;
    assert_eq!(r.report.outcome, Outcome::Success);
    assert_eq!(r.report.exit_code, 0);
    assert_eq!(r.stdout, b"Hello, WasmWiz!\n");
    assert_eq!(r.report.stdout_bytes, 16);
    assert!(r.report.fuel_consumed > 0);
    assert!(r.report.memory_peak_bytes >= 65536);
    assert!(!r.report.output_truncated);
}

#[tokio::test]
async fn stdin_args_env_and_stderr_reach_the_guest() {
    let r = run(
        &guest("echo"),
        Opts {
            stdin: b"some input\n".to_vec(),
            ..Opts::default()
        },
    )
    .await;
    assert_eq!(r.stdout, b"some input\n");
    assert_eq!(r.report.stdin_bytes, 11);
    let r = run(
        &guest("argsenv"),
        Opts {
            args: vec!["one".into(), "two words".into()],
            ..Opts::default()
        },
    )
    .await;
    let text = String::from_utf8(r.stdout).unwrap();
    assert!(text.contains("argv[0]=main.wasm"), "{text}");
    assert!(text.contains("argv[2]=two words"), "{text}");
    assert!(text.contains("env:GREETING=hi"), "{text}");
    assert_eq!(
        text.matches("env:").count(),
        1,
        "env is exactly what was given: {text}"
    );
    let r = run(&guest("stderr"), Opts::default()).await;
    assert_eq!(r.stdout, b"to stdout\n");
    assert_eq!(r.stderr, b"to stderr\n");
    assert_eq!(r.report.stderr_bytes, 10);
}

#[tokio::test]
async fn rust_guests_run_on_std() {
    let r = run(
        &guest("rust_hello"),
        Opts {
            args: vec!["Ferris".into()],
            ..Opts::default()
        },
    )
    .await;
    assert_eq!(r.report.outcome, Outcome::Success);
    assert_eq!(r.stdout, b"Hello from Rust, Ferris!\n");

    // std's HashMap seeds itself from random_get; the sorted output and the
    // fuel must not depend on anything but the request.
    let text = b"the cat and the hat; The end. Cat!".to_vec();
    let wordfreq = guest("rust_wordfreq");
    let counted = |seed| {
        run(
            &wordfreq,
            Opts {
                args: vec!["3".into()],
                stdin: text.clone(),
                seed,
                ..Opts::default()
            },
        )
    };
    let (a, again, other_seed) = (counted(1).await, counted(1).await, counted(2).await);
    assert_eq!(
        a.report.outcome,
        Outcome::Success,
        "{:?}",
        String::from_utf8_lossy(&a.stderr)
    );
    assert_eq!(a.stdout, b"3 the\n2 cat\n1 and\n");
    assert_eq!(a.report.fuel_consumed, again.report.fuel_consumed);
    assert_eq!(other_seed.stdout, a.stdout);

    let r = run(
        &guest("rust_wordfreq"),
        Opts {
            stdin: vec![0xff, 0xfe],
            ..Opts::default()
        },
    )
    .await;
    assert_eq!(r.report.outcome, Outcome::ExitNonzero);
    assert_eq!(r.report.exit_code, 1);
    assert_eq!(r.stderr, b"wordfreq: stdin is not UTF-8 text\n");

    // A Rust panic (panic = "abort") prints its message, then traps.
    let r = run_then_healthy(&guest("rust_panic"), Opts::default()).await;
    assert_eq!(r.report.outcome, Outcome::Trap);
    assert_eq!(r.report.trap_kind, "unreachable");
    assert_eq!(r.stdout, b"about to panic\n");
    let stderr = String::from_utf8_lossy(&r.stderr);
    assert!(stderr.contains("index out of bounds"), "{stderr}");
}

#[tokio::test]
async fn exit_codes_are_reported() {
    let r = run(
        &guest("exitcode"),
        Opts {
            args: vec!["3".into()],
            ..Opts::default()
        },
    )
    .await;
    assert_eq!(r.report.outcome, Outcome::ExitNonzero);
    assert_eq!(r.report.exit_code, 3);
    let r = run(&wat("proc_exit"), Opts::default()).await;
    assert_eq!(r.report.outcome, Outcome::ExitNonzero);
    assert_eq!(r.report.exit_code, 42);
    let r = run(
        &guest("exitcode"),
        Opts {
            args: vec!["0".into()],
            ..Opts::default()
        },
    )
    .await;
    assert_eq!(r.report.outcome, Outcome::Success);
}

#[tokio::test]
async fn out_of_fuel_consumes_exactly_the_budget() {
    let r = run_then_healthy(
        &wat("infinite_loop"),
        Opts {
            fuel: 5_000_000,
            ..Opts::default()
        },
    )
    .await;
    assert_eq!(r.report.outcome, Outcome::OutOfFuel);
    assert_eq!(r.report.fuel_consumed, 5_000_000);
    assert_eq!(r.report.exit_code, -1);
}

#[tokio::test]
async fn start_section_loop_is_capped() {
    let r = run_then_healthy(&wat("start_section_loop"), Opts::default()).await;
    assert_eq!(r.report.outcome, Outcome::OutOfFuel);
    assert!(
        r.report.message.contains("start section"),
        "{}",
        r.report.message
    );
}

#[tokio::test]
async fn every_trap_kind_is_named() {
    let sb = sandbox();
    for kind in [
        "unreachable",
        "integer_divide_by_zero",
        "integer_overflow",
        "bad_conversion_to_integer",
        "memory_out_of_bounds",
        "table_out_of_bounds",
        "indirect_call_to_null",
        "bad_signature",
    ] {
        let text = std::fs::read_to_string(
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/wat/traps.wat"),
        )
        .unwrap()
        .replace(&format!("(export \"{kind}\")"), "(export \"_start\")");
        let bytes = wat::parse_str(text).unwrap();
        let r = collect(&sb, job(&sb, &bytes, Opts::default())).await;
        assert_eq!(r.report.outcome, Outcome::Trap, "{kind}");
        assert_eq!(r.report.trap_kind, kind);
        assert_eq!(r.report.exit_code, -1);
    }
    assert_healthy(&sb).await;
}

#[tokio::test]
async fn recursion_is_a_stack_overflow_trap() {
    for name in ["deep_recursion", "huge_frames"] {
        let r = run_then_healthy(&wat(name), Opts::default()).await;
        assert_eq!(r.report.outcome, Outcome::Trap, "{name}");
        assert_eq!(r.report.trap_kind, "stack_overflow", "{name}");
    }
}

/// Runs `bytes` and asserts it ended with MEMORY_LIMIT, saying `mentions`,
/// and left the sandbox healthy.
async fn assert_memory_limit(bytes: &[u8], o: Opts, mentions: &str) {
    let r = run_then_healthy(bytes, o).await;
    assert_eq!(
        r.report.outcome,
        Outcome::MemoryLimit,
        "{}",
        r.report.message
    );
    assert!(r.report.message.contains(mentions), "{}", r.report.message);
}

#[tokio::test]
async fn memory_grown_past_the_limit_ends_the_run() {
    assert_memory_limit(&wat("grow_loop"), Opts::default(), "linear memory").await;
}

#[tokio::test]
async fn an_initial_memory_past_the_limit_ends_the_run() {
    assert_memory_limit(
        &wat("huge_initial_memory"),
        Opts::default(),
        "linear memory",
    )
    .await;
}

#[tokio::test]
async fn a_table_past_the_element_limit_ends_the_run() {
    assert_memory_limit(&wat("huge_table"), Opts::default(), "a table").await;
}

#[tokio::test]
async fn more_tables_than_a_guest_may_have_end_the_run() {
    assert_memory_limit(&wat("many_tables"), Opts::default(), "more tables").await;
}

#[tokio::test]
async fn more_memories_than_a_guest_may_have_end_the_run() {
    assert_memory_limit(
        &wat("many_memories"),
        Opts::default(),
        "more linear memories",
    )
    .await;
}

#[tokio::test]
async fn a_rust_guest_allocating_past_its_limit_ends_the_run() {
    let o = Opts {
        args: vec!["64".into()],
        memory: 16 << 20,
        ..Opts::default()
    };
    assert_memory_limit(&guest("memhog"), o, "linear memory").await;
}

#[tokio::test]
async fn a_rust_guest_within_its_limit_succeeds_and_reports_its_peak() {
    let r = run(
        &guest("memhog"),
        Opts {
            args: vec!["8".into()],
            ..Opts::default()
        },
    )
    .await;
    assert_eq!(r.report.outcome, Outcome::Success);
    assert!(r.report.memory_peak_bytes >= 8 << 20);
}

/// An active element segment past its table's end is an instantiation
/// failure in wasmi, but a trap to the spec, and not a limit.
#[tokio::test]
async fn an_element_segment_past_its_table_is_a_table_out_of_bounds_trap() {
    let bytes = wat::parse_str(
        r#"(module
             (memory (export "memory") 1)
             (table 1 funcref)
             (func $f)
             (elem (i32.const 1) $f)
             (func (export "_start")))"#,
    )
    .unwrap();
    let r = run_then_healthy(&bytes, Opts::default()).await;
    assert_eq!(r.report.outcome, Outcome::Trap, "{}", r.report.message);
    assert_eq!(r.report.trap_kind, "table_out_of_bounds");
}

#[tokio::test]
async fn bulk_memory_loops_run_out_of_fuel() {
    let r = run_then_healthy(
        &wat("bulk_fill_loop"),
        Opts {
            fuel: 50_000_000,
            memory: 16 << 20,
            ..Opts::default()
        },
    )
    .await;
    assert_eq!(r.report.outcome, Outcome::OutOfFuel);
    assert_eq!(r.report.fuel_consumed, 50_000_000);
}

#[tokio::test]
async fn output_is_cut_exactly_at_the_limit() {
    let r = run(
        &guest("hello"),
        Opts {
            output: 5,
            ..Opts::default()
        },
    )
    .await;
    assert_eq!(r.report.outcome, Outcome::OutputLimit);
    assert_eq!(r.stdout, b"Hello");
    assert!(r.report.output_truncated);
    let r = run_then_healthy(
        &wat("fd_write_flood"),
        Opts {
            output: 1_000_000,
            ..Opts::default()
        },
    )
    .await;
    assert_eq!(r.report.outcome, Outcome::OutputLimit);
    assert_eq!(r.stdout.len(), 1_000_000);
    assert_eq!(r.report.stdout_bytes, 1_000_000);
    assert!(r.chunks > 1, "output was streamed in chunks");
}

#[tokio::test]
async fn bad_iovecs_never_crash() {
    let r = run_then_healthy(&wat("fd_write_bad_iovec"), Opts::default()).await;
    assert!(
        matches!(r.report.outcome, Outcome::Trap | Outcome::ExitNonzero),
        "{:?}",
        r.report
    );
    assert!(r.stdout.is_empty());
}

#[tokio::test]
async fn an_iovec_count_past_the_cap_is_refused_with_einval() {
    // 2^31 iovecs: refused before wasi-common reads (or allocates for) one.
    let r = run_then_healthy(&wat("fd_write_huge_iovec_count"), Opts::default()).await;
    assert_eq!(r.report.outcome, Outcome::ExitNonzero, "{:?}", r.report);
    assert_eq!(r.report.exit_code, 28, "EINVAL");
    assert!(r.stdout.is_empty());
}

#[tokio::test]
async fn files_and_sockets_are_denied_with_error_codes() {
    let r = run_then_healthy(&wat("wasi_denied"), Opts::default()).await;
    assert_eq!(r.report.outcome, Outcome::Success, "{:?}", r.report);
    let errnos = r.stdout;
    assert_eq!(errnos.len(), 4);
    assert_eq!(errnos[0], 8, "fd_prestat_get(3) answers EBADF");
    assert_eq!(errnos[1], 8, "path_open(3, ...) answers EBADF");
    assert_ne!(errnos[2], 0, "sock_accept fails");
    assert_ne!(errnos[3], 0, "sock_send fails");
}

#[tokio::test]
async fn invalid_modules_are_refused_before_running() {
    let sb = sandbox();
    assert_eq!(sb.compile(b"hello world").err(), Some(ModuleError::NotWasm));
    let hello = guest("hello");
    assert!(matches!(
        sb.compile(&hello[..hello.len() / 2]),
        Err(ModuleError::Invalid(_))
    ));
    // A type section whose size is an unterminated LEB128.
    let bad_leb = b"\0asm\x01\0\0\0\x01\xff\xff\xff\xff\xff\xff";
    assert!(matches!(sb.compile(bad_leb), Err(ModuleError::Invalid(_))));
    assert_eq!(
        sb.compile(&wat("no_start")).err(),
        Some(ModuleError::MissingStart)
    );
    assert!(matches!(
        sb.compile(&wat("start_wrong_signature")),
        Err(ModuleError::BadStartSignature(_))
    ));
    assert_eq!(
        sb.compile(&wat("foreign_import")).err(),
        Some(ModuleError::ForeignImport {
            module: "env".into(),
            name: "host_secret".into()
        })
    );
    assert_eq!(
        sb.compile(&wat("unknown_wasi_import")).err(),
        Some(ModuleError::UnknownWasiImport {
            name: "teleport".into()
        })
    );
    // The unknown import is named when known ones come before it.
    let after_known = wat::parse_str(
        r#"(module
             (import "wasi_snapshot_preview1" "proc_exit" (func (param i32)))
             (import "wasi_snapshot_preview1" "fd_write" (func (param i32 i32 i32 i32) (result i32)))
             (import "wasi_snapshot_preview1" "fork" (func))
             (memory (export "memory") 1)
             (func (export "_start")))"#,
    )
    .unwrap();
    assert_eq!(
        sb.compile(&after_known).err(),
        Some(ModuleError::UnknownWasiImport {
            name: "fork".into()
        })
    );
    // Exception handling is a proposal wasmi does not run: named in the error.
    let eh = wat::parse_str(
        r#"(module (tag $e) (memory (export "memory") 1) (func (export "_start") (throw $e)))"#,
    )
    .unwrap();
    match sb.compile(&eh) {
        Err(ModuleError::Invalid(message)) => assert!(message.contains("proposal"), "{message}"),
        other => panic!("exception handling accepted: {:?}", other.err()),
    }
}

fn generated(body: impl FnOnce(&mut String)) -> Vec<u8> {
    let mut text = String::from("(module (memory (export \"memory\") 1)\n");
    body(&mut text);
    text.push(')');
    wat::parse_str(text).unwrap()
}

#[tokio::test]
async fn huge_module_shapes_compile_or_fail_cleanly() {
    let sb = sandbox();
    let many_funcs = generated(|t| {
        for i in 0..100_000 {
            t.push_str(&format!("(func $f{i} (result i32) (i32.const {i}))\n"));
        }
        t.push_str("(func (export \"_start\") (drop (call $f99999)))");
    });
    let nested = generated(|t| {
        t.push_str("(func (export \"_start\")");
        t.push_str(&"(block ".repeat(10_000));
        t.push_str(&")".repeat(10_000));
        t.push(')');
    });
    let br_table = generated(|t| {
        t.push_str("(func (export \"_start\") (block $b (br_table ");
        t.push_str(&"$b ".repeat(100_000));
        t.push_str("$b (i32.const 7))))");
    });
    let params = generated(|t| {
        t.push_str("(func $many (param");
        t.push_str(&" i32".repeat(1000));
        t.push_str("))\n(func (export \"_start\") (call $many ");
        t.push_str(&"(i32.const 1) ".repeat(1000));
        t.push_str("))");
    });
    for (name, bytes) in [
        ("100k functions", many_funcs),
        ("10k nested blocks", nested),
        ("huge br_table", br_table),
        ("1000 params", params),
    ] {
        match sb.compile(&bytes) {
            Ok(module) => {
                let job = Job {
                    module,
                    ..job(&sb, &guest("hello"), Opts::default())
                };
                let r = collect(&sb, job).await;
                assert!(
                    matches!(r.report.outcome, Outcome::Success | Outcome::Trap),
                    "{name}: {:?}",
                    r.report
                );
            }
            Err(error) => assert!(matches!(error, ModuleError::Invalid(_)), "{name}: {error}"),
        }
    }
    assert_healthy(&sb).await;
}

#[tokio::test]
async fn same_request_same_output_and_fuel_cold_cached_and_fresh() {
    let bytes = guest("clockrand");
    let opts = || Opts {
        seed: 7,
        ..Opts::default()
    };
    let sb = sandbox();
    let module = sb.compile(&bytes).unwrap();
    let mut runs = Vec::new();
    for _ in 0..3 {
        let job = Job {
            module: module.clone(),
            ..job(&sb, &bytes, opts())
        };
        runs.push(collect(&sb, job).await);
    }
    runs.push(run(&bytes, opts()).await);
    for r in &runs {
        assert_eq!(r.report.outcome, Outcome::Success);
        assert_eq!(r.stdout, runs[0].stdout);
        assert_eq!(r.report.fuel_consumed, runs[0].report.fuel_consumed);
    }
    let text = String::from_utf8(runs[0].stdout.clone()).unwrap();
    assert!(
        text.contains("realtime=17040672"),
        "virtual epoch 2024-01-01: {text}"
    );
    let other = run(
        &bytes,
        Opts {
            seed: 8,
            ..Opts::default()
        },
    )
    .await;
    let random = |out: &[u8]| {
        String::from_utf8_lossy(out)
            .lines()
            .find(|l| l.starts_with("random="))
            .unwrap()
            .to_string()
    };
    assert_ne!(random(&other.stdout), random(&runs[0].stdout));
}

#[tokio::test]
async fn cpu_bound_fuel_is_identical_across_runs() {
    let bytes = guest("hash");
    let opts = || Opts {
        args: vec!["2".into()],
        ..Opts::default()
    };
    let a = run(&bytes, opts()).await;
    let b = run(&bytes, opts()).await;
    assert_eq!(a.report.outcome, Outcome::Success);
    assert!(a.report.fuel_consumed > 20_000_000, "spans several slices");
    assert_eq!(a.report.fuel_consumed, b.report.fuel_consumed);
    assert_eq!(a.stdout, b.stdout);
}

#[tokio::test]
async fn output_streams_before_the_guest_finishes_and_backpressure_holds_it() {
    let sb = Arc::new(sandbox());
    let job = job(
        &sb,
        &guest("progress"),
        Opts {
            args: vec!["5".into()],
            ..Opts::default()
        },
    );
    let (tx, mut rx) = mpsc::channel::<OutputChunk>(1);
    let handle = {
        let sb = sb.clone();
        tokio::spawn(async move { sb.execute(job, tx, CancellationToken::new()).await })
    };
    let first = tokio::time::timeout(HANG_GUARD, rx.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(&first.data[..], b"tick 0\n");
    // Not reading: the guest cannot finish, since the remaining output has nowhere to go.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        !handle.is_finished(),
        "a slow consumer holds the guest back"
    );
    let mut rest = Vec::new();
    while let Some(chunk) = rx.recv().await {
        rest.extend_from_slice(&chunk.data);
    }
    let report = handle.await.unwrap();
    assert_eq!(report.outcome, Outcome::Success);
    assert!(String::from_utf8(rest).unwrap().ends_with("tick 4\ndone\n"));
}

#[tokio::test]
async fn streamed_stdin_is_read_as_it_arrives() {
    let sb = sandbox();
    let mut job = job(&sb, &guest("echo"), Opts::default());
    let (stdin_tx, stdin_rx) = mpsc::channel::<Bytes>(4);
    job.stdin = StdinSource::Stream(stdin_rx);
    let (tx, mut rx) = mpsc::channel::<OutputChunk>(4);
    let feeder = tokio::spawn(async move {
        let mut expected = Vec::new();
        for i in 0..256u32 {
            let chunk: Vec<u8> = (0..32 * 1024).map(|j| (i * 31 + j) as u8).collect();
            expected.extend_from_slice(&chunk);
            stdin_tx.send(Bytes::from(chunk)).await.unwrap();
        }
        expected
    });
    let reader = tokio::spawn(async move {
        let mut out = Vec::new();
        while let Some(chunk) = rx.recv().await {
            out.extend_from_slice(&chunk.data);
        }
        out
    });
    let mut job = job;
    job.max_output_bytes = 64 << 20;
    let report = tokio::time::timeout(HANG_GUARD, sb.execute(job, tx, CancellationToken::new()))
        .await
        .unwrap();
    let expected = feeder.await.unwrap();
    assert_eq!(report.outcome, Outcome::Success, "{report:?}");
    assert_eq!(reader.await.unwrap(), expected);
    assert_eq!(report.stdin_bytes, 8 << 20);
}

#[tokio::test]
async fn timeout_stops_a_compute_loop_and_frees_the_worker() {
    let sb = Sandbox::new(SandboxConfig {
        workers: 1,
        ..SandboxConfig::default()
    })
    .unwrap();
    let r = collect(
        &sb,
        job(
            &sb,
            &wat("infinite_loop"),
            Opts {
                fuel: u64::MAX / 2,
                timeout: Duration::from_millis(200),
                ..Opts::default()
            },
        ),
    )
    .await;
    assert_eq!(r.report.outcome, Outcome::Timeout);
    assert_eq!(r.report.exit_code, -1);
    assert_healthy(&sb).await;
}

#[tokio::test]
async fn cancellation_stops_a_compute_loop_and_frees_the_worker() {
    let sb = Sandbox::new(SandboxConfig {
        workers: 1,
        ..SandboxConfig::default()
    })
    .unwrap();
    let job = job(
        &sb,
        &wat("infinite_loop"),
        Opts {
            fuel: u64::MAX / 2,
            ..Opts::default()
        },
    );
    let cancel = CancellationToken::new();
    let (tx, _rx) = mpsc::channel(1);
    let trigger = cancel.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(100)).await;
        trigger.cancel();
    });
    let report = tokio::time::timeout(HANG_GUARD, sb.execute(job, tx, cancel))
        .await
        .unwrap();
    assert_eq!(report.outcome, Outcome::Cancelled);
    assert_healthy(&sb).await;
}

#[tokio::test]
async fn a_dropped_client_cancels_the_run() {
    let sb = sandbox();
    let job = job(
        &sb,
        &wat("fd_write_flood"),
        Opts {
            output: u64::MAX,
            ..Opts::default()
        },
    );
    let (tx, rx) = mpsc::channel(1);
    drop(rx);
    let report = tokio::time::timeout(HANG_GUARD, sb.execute(job, tx, CancellationToken::new()))
        .await
        .unwrap();
    assert_eq!(report.outcome, Outcome::Cancelled);
}

#[tokio::test]
async fn an_interpreter_panic_ends_only_that_execution() {
    let sb = Sandbox::new(SandboxConfig {
        workers: 1,
        ..SandboxConfig::default()
    })
    .unwrap();
    for name in [
        "wasmi_translator_panic",
        "wasmi_translator_panic_during_run",
    ] {
        for _ in 0..2 {
            let r = collect(&sb, job(&sb, &wat(name), Opts::default())).await;
            assert_eq!(r.report.outcome, Outcome::Trap, "{name}: {:?}", r.report);
            assert_eq!(r.report.trap_kind, "engine_error", "{name}");
            assert_eq!(r.report.exit_code, -1);
        }
        assert_healthy(&sb).await;
    }
}

// ---- Host calls pay fuel for their work -------------------------------------

/// A guest that makes one call, `call` (a WAT instruction sequence leaving
/// nothing on the stack), with `pages` of memory.
fn one_call(import: &str, call: &str, pages: u32) -> Vec<u8> {
    wat::parse_str(format!(
        r#"(module
            {import}
            (memory (export "memory") {pages})
            (func (export "_start") {call}))"#
    ))
    .unwrap()
}

async fn fuel_of(bytes: &[u8], o: Opts) -> u64 {
    let r = run(bytes, o).await;
    assert_eq!(r.report.outcome, Outcome::Success, "{:?}", r.report);
    r.report.fuel_consumed
}

#[tokio::test]
async fn random_get_is_charged_per_byte() {
    let import =
        r#"(import "wasi_snapshot_preview1" "random_get" (func $r (param i32 i32) (result i32)))"#;
    let call = |len: u32| format!("(drop (call $r (i32.const 0) (i32.const {len})))");
    let n = 1 << 20;
    let zero = fuel_of(&one_call(import, &call(0), 17), Opts::default()).await;
    let full = fuel_of(&one_call(import, &call(n), 17), Opts::default()).await;
    assert_eq!(full - zero, host_fuel::random_cost(u64::from(n)));
}

#[tokio::test]
async fn args_get_is_charged_per_arg_and_per_byte() {
    let import =
        r#"(import "wasi_snapshot_preview1" "args_get" (func $a (param i32 i32) (result i32)))"#;
    let guest = one_call(
        import,
        "(drop (call $a (i32.const 0) (i32.const 65536)))",
        4,
    );
    let args: Vec<String> = (0..100).map(|i| format!("{i:0>1000}")).collect();
    let none = fuel_of(&guest, Opts::default()).await;
    let many = fuel_of(
        &guest,
        Opts {
            args: args.clone(),
            ..Opts::default()
        },
    )
    .await;
    // "main.wasm\0" is always there; each arg adds 1001 bytes with its NUL.
    let cost = |count: u64, bytes: u64| count * host_fuel::PER_ITEM + host_fuel::copy_cost(bytes);
    assert_eq!(many - none, cost(101, 10 + 100 * 1001) - cost(1, 10));
}

#[tokio::test]
async fn fd_write_is_charged_per_iovec_and_per_byte() {
    let import = r#"(import "wasi_snapshot_preview1" "fd_write" (func $w (param i32 i32 i32 i32) (result i32)))"#;
    // iovecs at 0 (8 bytes each), all pointing at 64 bytes at 8192.
    let guest = |count: u32| {
        one_call(
            import,
            &format!(
                r#"(local $i i32)
                (loop $l
                  (i32.store (i32.mul (local.get $i) (i32.const 8)) (i32.const 8192))
                  (i32.store offset=4 (i32.mul (local.get $i) (i32.const 8)) (i32.const 64))
                  (local.set $i (i32.add (local.get $i) (i32.const 1)))
                  (br_if $l (i32.lt_u (local.get $i) (i32.const 100))))
                (drop (call $w (i32.const 1) (i32.const 0) (i32.const {count}) (i32.const 4096)))"#
            ),
            1,
        )
    };
    let one = run(&guest(1), Opts::default()).await;
    let hundred = run(&guest(100), Opts::default()).await;
    assert_eq!(one.stdout.len(), 64);
    assert_eq!(hundred.stdout.len(), 6400, "every iovec is written at once");
    assert_eq!(
        hundred.report.fuel_consumed - one.report.fuel_consumed,
        99 * host_fuel::PER_ITEM + host_fuel::output_cost(6400) - host_fuel::output_cost(64)
    );
}

#[tokio::test]
async fn poll_oneoff_is_charged_per_subscription() {
    let import = r#"(import "wasi_snapshot_preview1" "poll_oneoff" (func $p (param i32 i32 i32 i32) (result i32)))"#;
    // Relative monotonic-clock subscriptions of 48 bytes at 0, events at 65536.
    let guest = |count: u32| {
        one_call(
            import,
            &format!(
                r#"(local $i i32)
                (loop $l
                  (i32.store offset=16 (i32.mul (local.get $i) (i32.const 48)) (i32.const 1))
                  (local.set $i (i32.add (local.get $i) (i32.const 1)))
                  (br_if $l (i32.lt_u (local.get $i) (i32.const 1000))))
                (drop (call $p (i32.const 0) (i32.const 65536) (i32.const {count}) (i32.const 131072)))"#
            ),
            3,
        )
    };
    let one = fuel_of(&guest(1), Opts::default()).await;
    let thousand = fuel_of(&guest(1000), Opts::default()).await;
    assert_eq!(thousand - one, 999 * host_fuel::PER_SUBSCRIPTION);
}

#[tokio::test]
async fn poll_oneoff_past_the_cap_is_refused_with_einval() {
    let r = run_then_healthy(&wat("poll_oneoff_too_many"), Opts::default()).await;
    assert_eq!(r.report.outcome, Outcome::ExitNonzero, "{:?}", r.report);
    assert_eq!(r.report.exit_code, 28, "EINVAL");
}

#[tokio::test]
async fn host_call_fuel_does_not_depend_on_slice_sizes() {
    let bytes = wat("random_get_loop");
    let mut runs = Vec::new();
    for (inline, slice) in [
        (50_000, 20_000_000),
        (1_000, 10_000),
        (0, 1),
        (10_000, 1_000_000),
    ] {
        let sb = Sandbox::new(SandboxConfig {
            workers: 2,
            inline_slice_fuel: inline,
            slice_fuel: slice,
            ..SandboxConfig::default()
        })
        .unwrap();
        runs.push(collect(&sb, job(&sb, &bytes, Opts::default())).await);
    }
    for r in &runs {
        assert_eq!(r.report.outcome, Outcome::Success, "{:?}", r.report);
        assert_eq!(r.stdout, runs[0].stdout);
        assert_eq!(r.report.fuel_consumed, runs[0].report.fuel_consumed);
    }
    // Each of the 400 calls paid for its 64 KiB.
    assert!(runs[0].report.fuel_consumed > 400 * host_fuel::random_cost(65536));
}

#[tokio::test]
async fn a_host_call_the_budget_cannot_pay_runs_out_of_fuel_with_the_budget_consumed() {
    let fuel = 400 * host_fuel::random_cost(65536) / 2;
    for slice in [20_000_000, 10_000] {
        let sb = Sandbox::new(SandboxConfig {
            workers: 2,
            slice_fuel: slice,
            ..SandboxConfig::default()
        })
        .unwrap();
        let o = Opts {
            fuel,
            ..Opts::default()
        };
        let r = collect(&sb, job(&sb, &wat("random_get_loop"), o)).await;
        assert_eq!(r.report.outcome, Outcome::OutOfFuel, "{:?}", r.report);
        assert_eq!(r.report.fuel_consumed, fuel);
        assert!(r.stdout.is_empty());
    }
}

#[tokio::test]
async fn one_large_write_is_sent_in_bounded_chunks() {
    let import = r#"(import "wasi_snapshot_preview1" "fd_write" (func $w (param i32 i32 i32 i32) (result i32)))"#;
    // 8 MiB from address 0 in one iovec (stored past it, at 8 MiB).
    let guest = one_call(
        import,
        r#"(i32.store (i32.const 8388608) (i32.const 0))
           (i32.store (i32.const 8388612) (i32.const 8388608))
           (drop (call $w (i32.const 1) (i32.const 8388608) (i32.const 1) (i32.const 8388616)))"#,
        129,
    );
    let o = Opts {
        output: 16 << 20,
        ..Opts::default()
    };
    let r = run(&guest, o).await;
    assert_eq!(r.report.outcome, Outcome::Success, "{:?}", r.report);
    assert_eq!(r.stdout.len(), 8 << 20);
    assert_eq!(r.chunks, 8, "1 MiB slices of the one buffer");
}

// ---- Which thread runs what ---------------------------------------------------

fn on_worker(thread: &str) -> bool {
    thread.starts_with("wasmwiz-worker-")
}

#[tokio::test]
async fn an_expensive_first_host_call_runs_on_a_worker_not_the_runtime() {
    let import =
        r#"(import "wasi_snapshot_preview1" "random_get" (func $r (param i32 i32) (result i32)))"#;
    let guest = one_call(
        import,
        "(drop (call $r (i32.const 0) (i32.const 16777216)))",
        257,
    );
    let sb = sandbox();
    let trace = ThreadTrace::default();
    let r = collect_traced(&sb, job(&sb, &guest, Opts::default()), Some(trace.clone())).await;
    assert_eq!(r.report.outcome, Outcome::Success, "{:?}", r.report);
    // Small and without a start section: instantiated inline...
    let instantiated = trace.threads_of("instantiate");
    assert_eq!(instantiated.len(), 1);
    assert!(!on_worker(&instantiated[0]), "{instantiated:?}");
    // ...but the 16 MiB fill did not fit the inline slice: a worker ran it.
    let filled = trace.threads_of("random_get");
    assert_eq!(filled.len(), 1, "{:?}", trace.events());
    assert!(on_worker(&filled[0]), "{filled:?}");
}

#[tokio::test]
async fn cheap_host_calls_on_the_inline_slice_stay_inline() {
    let sb = sandbox();
    let trace = ThreadTrace::default();
    let r = collect_traced(
        &sb,
        job(&sb, &guest("hello"), Opts::default()),
        Some(trace.clone()),
    )
    .await;
    assert_eq!(r.report.outcome, Outcome::Success);
    let writes = trace.threads_of("fd_write");
    assert!(!writes.is_empty());
    assert!(writes.iter().all(|t| !on_worker(t)), "{writes:?}");
    assert!(!on_worker(&trace.threads_of("instantiate")[0]));
}

#[tokio::test]
async fn many_args_are_copied_into_the_guests_world_on_a_worker() {
    let sb = sandbox();
    let trace = ThreadTrace::default();
    let o = Opts {
        args: (0..1000).map(|i| i.to_string()).collect(),
        ..Opts::default()
    };
    let r = collect_traced(&sb, job(&sb, &guest("hello"), o), Some(trace.clone())).await;
    assert_eq!(r.report.outcome, Outcome::Success);
    // hello alone instantiates inline (see above); with 1000 args, not.
    let instantiated = trace.threads_of("instantiate");
    assert!(on_worker(&instantiated[0]), "{instantiated:?}");
}

#[tokio::test]
async fn a_large_memory_is_freed_on_a_worker() {
    let sb = sandbox();
    for (mib, freed_on_worker) in [(1, false), (32, true)] {
        let trace = ThreadTrace::default();
        let o = Opts {
            args: vec![mib.to_string()],
            ..Opts::default()
        };
        let r = collect_traced(&sb, job(&sb, &guest("memhog"), o), Some(trace.clone())).await;
        assert_eq!(r.report.outcome, Outcome::Success);
        let dropped = loop {
            let dropped = trace.threads_of("drop");
            if !dropped.is_empty() {
                break dropped;
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        };
        assert_eq!(
            on_worker(&dropped[0]),
            freed_on_worker,
            "{mib} MiB: {dropped:?}"
        );
    }
}

#[tokio::test]
async fn a_start_section_runs_on_a_worker_and_stops_after_one_slice() {
    let slice = 20_000_000;
    let sb = Sandbox::new(SandboxConfig {
        workers: 2,
        slice_fuel: slice,
        ..SandboxConfig::default()
    })
    .unwrap();
    let trace = ThreadTrace::default();
    let o = Opts::default();
    let r = collect_traced(
        &sb,
        job(&sb, &wat("start_section_fill_loop"), o),
        Some(trace.clone()),
    )
    .await;
    assert_eq!(r.report.outcome, Outcome::OutOfFuel, "{:?}", r.report);
    assert!(
        r.report.message.contains("start section"),
        "{}",
        r.report.message
    );
    assert_eq!(r.report.fuel_consumed, slice, "capped at one slice");
    let instantiated = trace.threads_of("instantiate");
    assert_eq!(instantiated.len(), 1);
    assert!(on_worker(&instantiated[0]), "{instantiated:?}");
    assert_healthy(&sb).await;
}

// ---- The deadline inside a long host call --------------------------------------

#[tokio::test]
async fn the_deadline_stops_a_long_random_get_between_pieces() {
    let sb = sandbox();
    let bytes = wat("random_get_huge");
    let baseline = collect(&sb, job(&sb, &bytes, Opts::default())).await;
    assert_eq!(
        baseline.report.outcome,
        Outcome::Success,
        "{:?}",
        baseline.report
    );
    assert_eq!(baseline.stdout, b"done\n");
    let full = baseline.report.duration;

    let trace = ThreadTrace::default();
    let o = Opts {
        timeout: (full / 10).max(Duration::from_millis(1)),
        ..Opts::default()
    };
    let r = collect_traced(&sb, job(&sb, &bytes, o), Some(trace.clone())).await;
    assert_eq!(r.report.outcome, Outcome::Timeout, "{:?}", r.report);
    assert_eq!(
        trace.threads_of("random_get").len(),
        1,
        "the fill had started"
    );
    assert!(r.stdout.is_empty(), "the fill never finished");
    assert!(
        r.report.duration < full / 2,
        "stopped inside the fill: {:?} vs {full:?} for all of it",
        r.report.duration
    );
}

#[tokio::test]
async fn cancellation_stops_a_long_random_get_between_pieces() {
    let sb = Arc::new(sandbox());
    let bytes = wat("random_get_huge");
    let baseline = collect(&sb, job(&sb, &bytes, Opts::default())).await;
    assert_eq!(baseline.report.outcome, Outcome::Success);
    let full = baseline.report.duration;

    let trace = ThreadTrace::default();
    let cancel = CancellationToken::new();
    let (tx, _rx) = mpsc::channel::<OutputChunk>(16);
    let running = {
        let (sb, job, cancel, trace) = (
            sb.clone(),
            job(&sb, &bytes, Opts::default()),
            cancel.clone(),
            trace.clone(),
        );
        tokio::spawn(async move { sb.execute_traced(job, tx, cancel, Some(trace)).await })
    };
    while trace.threads_of("random_get").is_empty() {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let cancelled_at = std::time::Instant::now();
    cancel.cancel();
    let report = tokio::time::timeout(HANG_GUARD, running)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(report.outcome, Outcome::Cancelled, "{report:?}");
    assert!(
        cancelled_at.elapsed() < full / 2,
        "stopped inside the fill: {:?} after the cancel vs {full:?} for all of it",
        cancelled_at.elapsed()
    );
}

// ---- The compiled-module cache weighs what modules hold -------------------------

fn many_exports(count: usize) -> Vec<u8> {
    generated(|text| {
        text.push_str("(func (export \"_start\"))\n");
        for i in 0..count {
            text.push_str(&format!("(func (export \"f{i}\"))\n"));
        }
    })
}

#[test]
fn a_module_of_many_exports_weighs_far_more_than_its_bytes() {
    let sb = sandbox();
    let module = sb.compile(&many_exports(100_000)).unwrap();
    assert!(
        module.weight() > 10 * module.size,
        "weight {} for {} bytes",
        module.weight(),
        module.size
    );
}

fn resident_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap();
    let pages: u64 = statm.split_whitespace().nth(1).unwrap().parse().unwrap();
    pages * 4096
}

/// Measures what compiled modules really hold (run alone: other tests in
/// the process would disturb the RSS figures):
/// `cargo test -p wasmwiz-server --test engine compiled_weight -- --ignored --nocapture`
#[test]
#[ignore = "measures process RSS; run alone"]
fn compiled_weight_is_never_below_the_resident_growth() {
    let sb = sandbox();
    type MakeModule = Box<dyn Fn(usize) -> Vec<u8>>;
    let shapes: [(&str, MakeModule); 3] = [
        (
            "100k exports",
            Box::new(|i| {
                generated(|text| {
                    text.push_str(&format!(
                        "(func (export \"_start\")) (func (export \"m{i}\"))\n"
                    ));
                    for f in 0..100_000 {
                        text.push_str(&format!("(func (export \"f{f}\"))\n"));
                    }
                })
            }),
        ),
        (
            "100k functions",
            Box::new(|i| {
                generated(|text| {
                    text.push_str(&format!(
                        "(func (export \"_start\")) (func (export \"m{i}\"))\n"
                    ));
                    for f in 0..100_000 {
                        text.push_str(&format!("(func $f{f} (drop (i32.const {f})))\n"));
                    }
                })
            }),
        ),
        (
            "4 MiB of data",
            Box::new(|i| {
                generated(|text| {
                    text.push_str(&format!(
                        "(func (export \"_start\")) (func (export \"m{i}\"))\n"
                    ));
                    let chunk = "x".repeat(64 * 1024);
                    for s in 0..64 {
                        text.push_str(&format!("(data (i32.const {}) \"{chunk}\")\n", s % 2));
                    }
                })
            }),
        ),
    ];
    for (name, make) in shapes {
        let modules: Vec<Vec<u8>> = (0..10).map(&make).collect();
        let before = resident_bytes();
        let compiled: Vec<_> = modules.iter().map(|m| sb.compile(m).unwrap()).collect();
        let grown = resident_bytes().saturating_sub(before);
        let weight: u64 = compiled.iter().map(|m| m.weight()).sum();
        let size: u64 = compiled.iter().map(|m| m.size).sum();
        println!(
            "{name}: 10 modules of {} bytes: RSS +{} bytes, weight {} ({:.2}x growth)",
            size / 10,
            grown,
            weight,
            weight as f64 / grown as f64
        );
        assert!(
            weight >= grown,
            "{name}: weight {weight} < RSS growth {grown}"
        );
    }
}

#[tokio::test]
async fn a_deferred_call_that_exits_ends_the_run_with_its_code() {
    // An inline slice of 1 fuel cannot pay for proc_exit: it is deferred,
    // runs on a worker, and its exit still ends the run.
    let sb = Sandbox::new(SandboxConfig {
        workers: 2,
        inline_slice_fuel: 1,
        ..SandboxConfig::default()
    })
    .unwrap();
    let trace = ThreadTrace::default();
    let r = collect_traced(
        &sb,
        job(&sb, &wat("proc_exit"), Opts::default()),
        Some(trace.clone()),
    )
    .await;
    assert_eq!(r.report.outcome, Outcome::ExitNonzero, "{:?}", r.report);
    assert_eq!(r.report.exit_code, 42);
    let exits = trace.threads_of("proc_exit");
    assert_eq!(exits.len(), 1);
    assert!(on_worker(&exits[0]), "{exits:?}");
}

/// A sandbox whose memory budget is 64 MiB (one request may be charged
/// all of it) and which refuses at once instead of queueing.
fn small_budget_sandbox() -> Sandbox {
    Sandbox::new(SandboxConfig {
        workers: 1,
        memory_budget_bytes: 64 << 20,
        tenant_memory_share_percent: 100,
        max_queue: 0,
        max_queue_wait: Duration::from_millis(1),
        ..SandboxConfig::default()
    })
    .unwrap()
}

#[tokio::test]
async fn a_filesystem_is_charged_to_the_memory_budget() {
    let sb = small_budget_sandbox();
    let module = sb.compile(&guest("hello")).unwrap();
    // 32 MiB of linear memory and a 16 MiB tree hold 48 of the 64 MiB.
    let _held = sb.admit(None, &module, 32 << 20, 16 << 20).await.unwrap();
    let refused = sb.admit(None, &module, 16 << 20, 8 << 20).await;
    assert!(refused.is_err(), "24 MiB more does not fit in the 16 left");
}

#[tokio::test]
async fn without_a_filesystem_only_linear_memory_is_charged() {
    let sb = small_budget_sandbox();
    let module = sb.compile(&guest("hello")).unwrap();
    let _held = sb.admit(None, &module, 32 << 20, 0).await.unwrap();
    assert!(sb.admit(None, &module, 16 << 20, 0).await.is_ok());
}
