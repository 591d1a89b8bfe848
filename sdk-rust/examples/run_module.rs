//! Runs a WebAssembly module on a WasmWiz server with the Rust SDK: streams
//! its output as it comes, then prints what the run cost; then runs it
//! again as a batch of test cases when given `--case STDIN=EXPECTED`.
//!
//! ```sh
//! export WASMWIZ_URL=http://127.0.0.1:8080 WASMWIZ_API_KEY=wwz_...
//! cargo run -p wasmwiz --example run_module -- examples/guests/progress.wasm 3
//! cargo run -p wasmwiz --example run_module -- examples/guests/fib.wasm \
//!     --case '10\n=55\n' --case '20\n=6765\n'
//! ```
//!
//! Exits with the guest's exit code (1 when it did not exit, or a case
//! failed).

use std::{io::Write, process::ExitCode, time::Duration};

use futures::StreamExt;
use wasmwiz::{Case, Client, Event, Limits, Module, RetryPolicy};

#[tokio::main]
async fn main() -> ExitCode {
    match run().await {
        Ok(code) => code,
        Err(error) => {
            // Every failure carries the gRPC code and the server's details.
            eprintln!("error ({}): {error}", wasmwiz::code_name(error.code()));
            ExitCode::from(2)
        }
    }
}

async fn run() -> wasmwiz::Result<ExitCode> {
    let mut argv: Vec<String> = std::env::args().skip(1).collect();
    let mut cases = Vec::new();
    while let Some(at) = argv.iter().position(|a| a == "--case") {
        argv.remove(at);
        if at == argv.len() {
            eprintln!("--case needs STDIN=EXPECTED");
            return Ok(ExitCode::from(2));
        }
        let spec = argv.remove(at);
        let (stdin, expected) = spec.split_once('=').unwrap_or((&spec, ""));
        let unescape = |s: &str| s.replace("\\n", "\n");
        cases.push(
            Case::new(format!("case {}", cases.len()))
                .stdin(unescape(stdin))
                .expect_stdout(unescape(expected)),
        );
    }
    let Some(path) = argv.first().cloned() else {
        eprintln!("usage: run_module MODULE.wasm [ARGS...] [--case STDIN=EXPECTED]...");
        return Ok(ExitCode::from(2));
    };

    // One client per process: it holds the connection and the retry policy.
    let client = Client::builder(
        std::env::var("WASMWIZ_URL").unwrap_or_else(|_| "http://127.0.0.1:8080".into()),
    )
    .api_key(std::env::var("WASMWIZ_API_KEY").unwrap_or_default())
    .retry(RetryPolicy::default().on_retry(|error, wait, _| {
        eprintln!("[{error}; retrying in {wait:?}]");
    }))
    .build()
    .await?;

    let me = client.whoami().await?;
    eprintln!("[running as {} ({} tier)]", me.email, me.tier);

    // Stream the guest's output as it is produced.
    let limits = Limits::new().timeout(Duration::from_secs(10));
    let mut events = client
        .run(Module::file(&path))
        .args(argv[1..].iter().cloned())
        .limits(limits)
        .stream()
        .await?;
    let mut exit_code = 1;
    while let Some(event) = events.next().await {
        match event? {
            Event::Started(started) => eprintln!(
                "[module {} (cache hit: {})]",
                &started.module_sha256[..12],
                started.cache_hit
            ),
            Event::Stdout(chunk) => {
                std::io::stdout().write_all(&chunk).ok();
                std::io::stdout().flush().ok();
            }
            Event::Stderr(chunk) => {
                std::io::stderr().write_all(&chunk).ok();
            }
            Event::File(piece) => {
                eprintln!("[file {}: {} bytes]", piece.path, piece.contents.len());
            }
            Event::Finished(end) => {
                eprintln!(
                    "[{}: exit code {}, {} fuel, {:?}, peak memory {} bytes]",
                    end.outcome,
                    end.exit_code,
                    end.fuel_consumed,
                    end.duration,
                    end.memory_peak_bytes
                );
                exit_code = if end.exit_code >= 0 { end.exit_code } else { 1 };
            }
        }
    }

    // The same module against test cases, compiled once on the server.
    if !cases.is_empty() {
        let results = client
            .batch(Module::file(&path))
            .cases(cases)
            .output()
            .await?;
        for case in &results.cases {
            match case.failure() {
                None => eprintln!("[{}: ok]", case.name),
                Some(why) => eprintln!("[{}: FAILED: {why}]", case.name),
            }
        }
        if !results.all_passed() {
            exit_code = 1;
        }
    }
    Ok(ExitCode::from(u8::try_from(exit_code).unwrap_or(1)))
}
