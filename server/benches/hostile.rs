//! Hostile-neighbours benchmark: a legitimate tenant's `Run` of a cached
//! hello module, and `grpc.health.v1.Health/Check`, measured while other
//! tenants (and anonymous clients) run the attacks the security model is
//! meant to absorb, against the same measurement without them, in one run.
//!
//!   cargo bench -p wasmwiz-server --bench hostile [-- SECONDS]
//!
//! SECONDS (default 8) is the length of each phase. The server runs on its
//! own two-thread runtime (like the binary on this machine), the clients on
//! another, so a stalled server shows as latency, not as a stalled client.
//!
//! The attacks, each in its own loop for the whole attacked phase:
//! - `random_get` of 64 MiB, 400 times (host work fuel did not see);
//! - `poll_oneoff` with 1M subscriptions in a loop;
//! - a start section looping `memory.fill` over 64 MiB;
//! - 100k args read back with `args_get` in a loop;
//! - anonymous clients sending a 32 MiB `Run` message;
//! - idle streamed-stdin `Execute` calls of one tenant at its tier's maximum memory.
//!
//! It prints the legitimate p50/p99 and the longest health-check stall in
//! both phases, and their ratios (attacked / quiet).

use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;
use tonic_health::pb::{health_client::HealthClient, HealthCheckRequest};
use wasmwiz_proto::v1::{self, execution_service_client::ExecutionServiceClient};
use wasmwiz_server::testing::{Authed, TestServer};

/// The server binary's allocator, so the figures are the binary's.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

const RANDOM_GET_FLOOD: &str = r#"(module
  (import "wasi_snapshot_preview1" "random_get" (func $random_get (param i32 i32) (result i32)))
  (memory (export "memory") 1025)
  (func (export "_start") (local $i i32)
    (loop $again
      (drop (call $random_get (i32.const 0) (i32.const 67108864)))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br_if $again (i32.lt_u (local.get $i) (i32.const 400))))))"#;

/// 1M zeroed subscriptions (clock, timeout 0) at 0, events after 48 MB.
const POLL_FLOOD: &str = r#"(module
  (import "wasi_snapshot_preview1" "poll_oneoff" (func $poll (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1300)
  (func (export "_start")
    (loop $again
      (drop (call $poll (i32.const 0) (i32.const 48000000) (i32.const 1000000) (i32.const 84000000)))
      (br $again))))"#;

const START_FILL: &str = r#"(module
  (memory (export "memory") 1024)
  (func $fill
    (loop $again
      (memory.fill (i32.const 0) (i32.const 7) (i32.const 67108864))
      (br $again)))
  (start $fill)
  (func (export "_start")))"#;

/// argv pointers at 1 KiB, strings at 16 MiB, read back forever.
const ARGS_LOOP: &str = r#"(module
  (import "wasi_snapshot_preview1" "args_get" (func $args_get (param i32 i32) (result i32)))
  (memory (export "memory") 512)
  (func (export "_start")
    (loop $again
      (drop (call $args_get (i32.const 1024) (i32.const 16777216)))
      (br $again))))"#;

/// A request stalled this long is recorded at this length (a frozen server
/// would otherwise stop the benchmark).
const GIVE_UP: Duration = Duration::from_secs(10);

/// Latencies of the legitimate tenant and the health checks of one phase.
#[derive(Default)]
struct Phase {
    runs: Vec<Duration>,
    checks: Vec<Duration>,
}

impl Phase {
    fn percentile(samples: &[Duration], p: usize) -> Duration {
        if samples.is_empty() {
            return Duration::ZERO;
        }
        samples[(samples.len() * p / 100).min(samples.len() - 1)]
    }
    fn sort(&mut self) {
        self.runs.sort();
        self.checks.sort();
    }
    fn run_p50(&self) -> Duration {
        Self::percentile(&self.runs, 50)
    }
    fn run_p99(&self) -> Duration {
        Self::percentile(&self.runs, 99)
    }
    fn longest_check(&self) -> Duration {
        self.checks.last().copied().unwrap_or_default()
    }
}

fn run_request(module: Vec<u8>, args: Vec<String>, timeout_ms: u64) -> v1::RunRequest {
    v1::RunRequest {
        source: Some(v1::run_request::Source::Module(module)),
        args,
        limits: Some(v1::Limits {
            timeout_ms,
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// Runs `request` again and again until `stop`, ignoring how each ends.
async fn attack_loop(channel: Authed, request: v1::RunRequest, stop: CancellationToken) {
    let mut client = ExecutionServiceClient::new(channel).max_decoding_message_size(64 << 20);
    loop {
        let attempt = async {
            if let Ok(response) = client.run(request.clone()).await {
                let mut stream = response.into_inner();
                while let Ok(Some(_)) = stream.message().await {}
            } else {
                // Refused (rate limit, invalid): don't spin.
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        };
        tokio::select! {
            () = attempt => {}
            () = stop.cancelled() => return,
        }
    }
}

/// Opens an `Execute` with streamed stdin and never sends any, until `stop`.
async fn idle_execute(channel: Authed, module_sha256: String, stop: CancellationToken) {
    let mut client = ExecutionServiceClient::new(channel);
    let (tx, rx) = tokio::sync::mpsc::channel(1);
    let start = v1::ExecuteRequest {
        msg: Some(v1::execute_request::Msg::Start(v1::ExecuteStart {
            source: Some(v1::execute_start::Source::ModuleSha256(module_sha256)),
            stream_stdin: true,
            ..Default::default()
        })),
    };
    let _ = tx.send(start).await;
    let call = client.execute(tokio_stream::wrappers::ReceiverStream::new(rx));
    tokio::select! {
        _ = async {
            if let Ok(response) = call.await {
                let mut stream = response.into_inner();
                while let Ok(Some(_)) = stream.message().await {}
            }
        } => {}
        () = stop.cancelled() => {}
    }
    drop(tx);
}

/// Uploads `module` for the key of `channel` and returns its sha256.
async fn put(channel: Authed, module: Vec<u8>) -> String {
    use wasmwiz_proto::v1::module_service_client::ModuleServiceClient;
    ModuleServiceClient::new(channel)
        .put_module(v1::PutModuleRequest {
            module,
            ..Default::default()
        })
        .await
        .expect("uploading a module")
        .into_inner()
        .sha256
}

/// Measures the legitimate tenant and health checks for `length`.
async fn measure(server: &TestServer, legit: &Authed, sha: &str, length: Duration) -> Phase {
    let until = Instant::now() + length;
    let runs = {
        let mut exec = ExecutionServiceClient::new(legit.clone());
        let sha = sha.to_string();
        tokio::spawn(async move {
            let mut latencies = Vec::new();
            while Instant::now() < until {
                let t = Instant::now();
                let one = async {
                    let mut stream = exec
                        .run(v1::RunRequest {
                            source: Some(v1::run_request::Source::ModuleSha256(sha.clone())),
                            ..Default::default()
                        })
                        .await
                        .expect("the legitimate run is accepted")
                        .into_inner();
                    let mut exit = None;
                    while let Some(event) = stream.message().await.expect("the run streams") {
                        if let Some(v1::execute_event::Event::Finished(f)) = event.event {
                            exit = Some(f.exit_code);
                        }
                    }
                    assert_eq!(exit, Some(0), "the legitimate run succeeds");
                };
                if tokio::time::timeout(GIVE_UP, one).await.is_err() {
                    eprintln!(
                        "a legitimate run took longer than {GIVE_UP:?}; counted as {GIVE_UP:?}"
                    );
                }
                latencies.push(t.elapsed());
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            latencies
        })
    };
    let checks = {
        let mut health = HealthClient::new(server.channel().await);
        tokio::spawn(async move {
            let mut latencies = Vec::new();
            while Instant::now() < until {
                let t = Instant::now();
                let check = health.check(HealthCheckRequest {
                    service: String::new(),
                });
                if tokio::time::timeout(GIVE_UP, check).await.is_err() {
                    eprintln!(
                        "a health check took longer than {GIVE_UP:?}; counted as {GIVE_UP:?}"
                    );
                }
                latencies.push(t.elapsed());
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            latencies
        })
    };
    let mut phase = Phase {
        runs: runs.await.unwrap(),
        checks: checks.await.unwrap(),
    };
    phase.sort();
    phase
}

fn main() {
    let seconds: f64 = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(8.0);
    let length = Duration::from_secs_f64(seconds);
    let server_runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("server-runtime")
        .enable_all()
        .build()
        .unwrap();
    let client_runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let server = server_runtime.block_on(TestServer::start());
    client_runtime.block_on(async {
        let legit = server.authed(Some(&server.admin_key)).await;
        let hello = std::fs::read(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../examples/guests/hello.wasm"
        ))
        .unwrap();
        let sha = put(legit.clone(), hello).await;
        let quiet = measure(&server, &legit, &sha, length).await;

        // Every key and upload first: once the attacks run, setup calls
        // could stall like any other request.
        let stop = CancellationToken::new();
        let many_args: Vec<String> = (0..100_000).map(|i| format!("a{i:08}")).collect();
        let attacks = [
            ("random", run_request(wat::parse_str(RANDOM_GET_FLOOD).unwrap(), vec![], 1000)),
            ("poll", run_request(wat::parse_str(POLL_FLOOD).unwrap(), vec![], 1000)),
            ("start", run_request(wat::parse_str(START_FILL).unwrap(), vec![], 1000)),
            ("args", run_request(wat::parse_str(ARGS_LOOP).unwrap(), many_args, 1000)),
        ];
        let mut armed = Vec::new();
        for (name, request) in attacks {
            let key = server
                .create_key(&format!("attacker-{name}@bench.local"), "pro", false)
                .await;
            armed.push((server.authed(Some(&key)).await, request));
        }
        for _ in 0..2 {
            let junk = run_request(vec![0x5a; 32 << 20], vec![], 1000);
            armed.push((server.authed(None).await, junk));
        }
        let idler_key = server
            .create_key("attacker-idle@bench.local", "pro", false)
            .await;
        let idler = server.authed(Some(&idler_key)).await;
        let echo = std::fs::read(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../examples/guests/echo.wasm"
        ))
        .unwrap();
        let echo_sha = put(idler.clone(), echo).await;

        let mut attackers = Vec::new();
        for (channel, request) in armed {
            attackers.push(tokio::spawn(attack_loop(channel, request, stop.clone())));
        }
        for _ in 0..8 {
            attackers.push(tokio::spawn(idle_execute(
                idler.clone(),
                echo_sha.clone(),
                stop.clone(),
            )));
        }
        // Let the attacks get going before measuring.
        tokio::time::sleep(Duration::from_millis(500)).await;
        let attacked = measure(&server, &legit, &sha, length).await;
        stop.cancel();
        for attacker in attackers {
            let _ = tokio::time::timeout(Duration::from_secs(30), attacker).await;
        }

        let ratio = |a: Duration, b: Duration| a.as_secs_f64() / b.as_secs_f64().max(1e-9);
        println!(
            "hostile neighbours: {length:?} per phase; legitimate tenant = cached hello by sha256, one client"
        );
        println!(
            "{:<28} {:>10} {:>10} {:>10} {:>16}",
            "", "runs", "p50", "p99", "longest health"
        );
        for (name, phase) in [("quiet", &quiet), ("under attack", &attacked)] {
            println!(
                "{:<28} {:>10} {:>10.2?} {:>10.2?} {:>16.2?}",
                name,
                phase.runs.len(),
                phase.run_p50(),
                phase.run_p99(),
                phase.longest_check()
            );
        }
        println!(
            "ratio attacked/quiet: p50 {:.2}x, p99 {:.2}x, longest health-check stall {:.2}x",
            ratio(attacked.run_p50(), quiet.run_p50()),
            ratio(attacked.run_p99(), quiet.run_p99()),
            ratio(attacked.longest_check(), quiet.longest_check()),
        );
    });
    // A server the attacks froze may not drain in time; the figures are out.
    drop(server);
    std::process::exit(0);
}
