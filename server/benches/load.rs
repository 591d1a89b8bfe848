//! Load benchmark over loopback: `Run` of a cached hello module by sha256
//! (an `unlimited` key, SQLite usage records) against the transport floor
//! (`grpc.health.v1.Health/Check` on the same server), alternating in short
//! rounds so drift in what else this shared machine does hits both alike.
//!
//!   cargo bench -p wasmwiz-server --bench load [-- CLIENTS SECONDS]
//!
//! Two drivers, each against its own floor:
//! - our own tonic client, CLIENTS (default 16) concurrent loops on one
//!   connection, for p50/p99 (SECONDS, default 10, split into rounds);
//! - h2load (Debian `nghttp2-client`), an external HTTP/2 load generator
//!   that costs this process nothing, at 8 streams (`-c 1 -m 8`) and 64
//!   (`-c 8 -m 8`). Without h2load the bench says so and runs its own
//!   client at 8 and 64 clients instead.
//!
//! CPU per request is this process's CPU time (getrusage) over a round
//! divided by its requests: with h2load that is the server alone, with
//! our own client it includes the client.
//!
//! Targets: Run ≥ 0.5× the floor at 64 streams and ≥ 0.6× at 8; p50 < 1 ms.

use std::{
    io::Write as _,
    process::Command,
    time::{Duration, Instant},
};

use tonic_health::pb::{health_client::HealthClient, HealthCheckRequest};
use wasmwiz_proto::v1::{
    self, account_service_client::AccountServiceClient,
    execution_service_client::ExecutionServiceClient,
};
use wasmwiz_server::testing::TestServer;

/// The server binary's allocator, so the figures are the binary's.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Rounds of floor-then-Run for our own client; the figures are over all rounds.
const ROUNDS: usize = 10;
/// Rounds of floor-then-Run per h2load setting.
const H2LOAD_ROUNDS: usize = 5;
/// Requests per h2load round of the floor and of Run.
const H2LOAD_FLOOR_REQUESTS: u64 = 40_000;
const H2LOAD_RUN_REQUESTS: u64 = 20_000;

/// This process's user + system CPU time so far.
fn cpu_time() -> Duration {
    // SAFETY: getrusage writes into the zeroed struct we own.
    let usage = unsafe {
        let mut usage: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_SELF, &mut usage);
        usage
    };
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    tv(usage.ru_utime) + tv(usage.ru_stime)
}

/// Latencies of every request in some rounds, the time and CPU they took.
#[derive(Default)]
struct Figures {
    latencies: Vec<Duration>,
    elapsed: Duration,
    cpu: Duration,
}

impl Figures {
    fn add(&mut self, other: Figures) {
        self.latencies.extend(other.latencies);
        self.latencies.sort();
        self.elapsed += other.elapsed;
        self.cpu += other.cpu;
    }

    fn per_sec(&self) -> f64 {
        self.latencies.len() as f64 / self.elapsed.as_secs_f64()
    }

    fn cpu_us(&self) -> f64 {
        self.cpu.as_secs_f64() * 1e6 / self.latencies.len() as f64
    }

    fn p50(&self) -> Duration {
        self.latencies[self.latencies.len() / 2]
    }

    fn p99(&self) -> Duration {
        self.latencies[self.latencies.len() * 99 / 100]
    }
}

/// Runs `clients` concurrent loops made by `make` and gathers their latencies.
async fn drive<F, Fut>(clients: usize, make: F) -> Figures
where
    F: Fn(usize) -> Fut,
    Fut: std::future::Future<Output = Vec<Duration>> + Send + 'static,
{
    let (started, cpu) = (Instant::now(), cpu_time());
    let handles: Vec<_> = (0..clients).map(|i| tokio::spawn(make(i))).collect();
    let mut latencies = Vec::new();
    for h in handles {
        latencies.extend(h.await.unwrap());
    }
    Figures {
        latencies,
        elapsed: started.elapsed(),
        cpu: cpu_time() - cpu,
    }
}

/// Health checks from `clients` loops for `round`.
async fn floor_round(
    plain: &tonic::transport::Channel,
    clients: usize,
    round: Duration,
) -> Figures {
    drive(clients, |_| {
        let mut health = HealthClient::new(plain.clone());
        async move {
            let mut latencies = Vec::new();
            let start = Instant::now();
            while start.elapsed() < round {
                let t = Instant::now();
                health
                    .check(HealthCheckRequest {
                        service: String::new(),
                    })
                    .await
                    .unwrap();
                latencies.push(t.elapsed());
            }
            latencies
        }
    })
    .await
}

/// Runs of the cached module `sha` from `clients` loops for `round`.
async fn run_round(
    channel: &wasmwiz_server::testing::Authed,
    sha: &str,
    clients: usize,
    round: Duration,
) -> Figures {
    drive(clients, |_| {
        let mut exec = ExecutionServiceClient::new(channel.clone());
        let sha = sha.to_string();
        async move {
            let mut latencies = Vec::new();
            let start = Instant::now();
            while start.elapsed() < round {
                let t = Instant::now();
                let mut stream = exec
                    .run(v1::RunRequest {
                        source: Some(v1::run_request::Source::ModuleSha256(sha.clone())),
                        ..Default::default()
                    })
                    .await
                    .unwrap()
                    .into_inner();
                let mut ok = false;
                while let Some(e) = stream.message().await.unwrap() {
                    if let Some(v1::execute_event::Event::Finished(f)) = e.event {
                        ok = f.exit_code == 0;
                    }
                }
                assert!(ok);
                latencies.push(t.elapsed());
            }
            latencies
        }
    })
    .await
}

/// Floor and Run through our own client, alternating, at `clients`.
struct OwnClient {
    floor: Figures,
    runs: Figures,
    ratios: Vec<f64>,
}

async fn own_client(
    plain: &tonic::transport::Channel,
    channel: &wasmwiz_server::testing::Authed,
    sha: &str,
    clients: usize,
    round: Duration,
) -> OwnClient {
    let (mut floor, mut runs) = (Figures::default(), Figures::default());
    let mut ratios = Vec::new();
    for _ in 0..ROUNDS {
        let f = floor_round(plain, clients, round).await;
        let r = run_round(channel, sha, clients, round).await;
        ratios.push(r.per_sec() / f.per_sec());
        floor.add(f);
        runs.add(r);
    }
    ratios.sort_by(f64::total_cmp);
    OwnClient {
        floor,
        runs,
        ratios,
    }
}

/// One h2load invocation's figures.
#[derive(Default, Clone, Copy)]
struct H2loadRound {
    requests: u64,
    succeeded: u64,
    elapsed: Duration,
    cpu: Duration,
    /// Mean time for request, as h2load reports it.
    mean: Duration,
    /// DATA bytes received (a trailers-only gRPC error has none).
    data_bytes: u64,
}

/// A gRPC request body: the length-prefixed (uncompressed) message.
fn grpc_frame(message: &impl prost::Message) -> Vec<u8> {
    let body = message.encode_to_vec();
    let mut frame = vec![0u8];
    frame.extend_from_slice(&(body.len() as u32).to_be_bytes());
    frame.extend_from_slice(&body);
    frame
}

fn h2load_available() -> bool {
    Command::new("h2load")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
}

/// Parses h2load's `1.23ms` / `456us` / `1.2s`.
fn parse_duration(text: &str) -> Option<Duration> {
    let (number, unit) = text.split_at(text.find(|c: char| c.is_ascii_alphabetic())?);
    let value: f64 = number.parse().ok()?;
    let seconds = match unit {
        "us" => value / 1e6,
        "ms" => value / 1e3,
        "s" => value,
        _ => return None,
    };
    Some(Duration::from_secs_f64(seconds))
}

/// Runs h2load once (blocking) and reads its summary.
fn h2load(
    url: &str,
    body: &std::path::Path,
    key: Option<&str>,
    requests: u64,
    connections: u32,
    streams: u32,
) -> H2loadRound {
    let mut command = Command::new("h2load");
    command
        .args(["-n", &requests.to_string()])
        .args(["-c", &connections.to_string()])
        .args(["-m", &streams.to_string()])
        .arg("-d")
        .arg(body)
        .args(["-H", "content-type: application/grpc", "-H", "te: trailers"]);
    if let Some(key) = key {
        command.args(["-H", &format!("authorization: Bearer {key}")]);
    }
    command.arg(url);
    let (started, cpu) = (Instant::now(), cpu_time());
    let output = command.output().expect("running h2load");
    let (elapsed, cpu) = (started.elapsed(), cpu_time() - cpu);
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "h2load failed: {text}");
    let mut round = H2loadRound {
        elapsed,
        cpu,
        ..Default::default()
    };
    for line in text.lines() {
        let words: Vec<&str> = line.split_whitespace().collect();
        match words.as_slice() {
            ["finished", "in", took, ..] => {
                round.elapsed = parse_duration(took.trim_end_matches(',')).unwrap_or(elapsed)
            }
            ["requests:", total, "total,", _, "started,", _, "done,", ok, "succeeded,", ..] => {
                round.requests = total.parse().unwrap_or(0);
                round.succeeded = ok.parse().unwrap_or(0);
            }
            ["time", "for", "request:", _min, _max, mean, ..] => {
                round.mean = parse_duration(mean).unwrap_or_default()
            }
            ["traffic:", ..] => {
                // "... headers (space savings 95.00%), 1.02MB (1070000) data"
                if let Some(at) = words.iter().position(|w| *w == "data") {
                    round.data_bytes = words
                        .get(at.saturating_sub(1))
                        .and_then(|w| w.trim_matches(|c| c == '(' || c == ')').parse().ok())
                        .unwrap_or(0);
                }
            }
            _ => {}
        }
    }
    assert_eq!(
        round.succeeded, requests,
        "h2load: not every request succeeded:\n{text}"
    );
    round
}

/// Sums of h2load rounds.
#[derive(Default)]
struct H2loadTotals {
    requests: u64,
    elapsed: Duration,
    cpu: Duration,
    mean_weighted: f64,
    data_bytes: u64,
}

impl H2loadTotals {
    fn add(&mut self, round: H2loadRound) {
        self.requests += round.requests;
        self.elapsed += round.elapsed;
        self.cpu += round.cpu;
        self.mean_weighted += round.mean.as_secs_f64() * round.requests as f64;
        self.data_bytes += round.data_bytes;
    }

    fn per_sec(&self) -> f64 {
        self.requests as f64 / self.elapsed.as_secs_f64()
    }

    fn cpu_us(&self) -> f64 {
        self.cpu.as_secs_f64() * 1e6 / self.requests as f64
    }

    fn mean(&self) -> Duration {
        Duration::from_secs_f64(self.mean_weighted / self.requests as f64)
    }
}

/// Successful executions on record for the admin (from `GetUsage`).
async fn successes(channel: &wasmwiz_server::testing::Authed) -> u64 {
    let usage = AccountServiceClient::new(channel.clone())
        .get_usage(v1::GetUsageRequest {
            days: 1,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    usage
        .by_outcome
        .get("OUTCOME_SUCCESS")
        .copied()
        .unwrap_or(0)
}

fn main() {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    let clients: usize = args.first().and_then(|a| a.parse().ok()).unwrap_or(16);
    let seconds: f64 = args.get(1).and_then(|a| a.parse().ok()).unwrap_or(10.0);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_stack_size(8 << 20)
        .build()
        .unwrap();
    runtime.block_on(async move {
        let server = TestServer::start().await;
        let channel = server.authed(Some(&server.admin_key)).await;
        let hello = std::fs::read(concat!(env!("CARGO_MANIFEST_DIR"), "/../examples/guests/hello.wasm")).unwrap();
        let mut exec = ExecutionServiceClient::new(channel.clone());
        let mut first = exec
            .run(v1::RunRequest {
                source: Some(v1::run_request::Source::Module(hello)),
                keep_module: true,
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        let mut sha = String::new();
        while let Some(e) = first.message().await.unwrap() {
            if let Some(v1::execute_event::Event::Started(s)) = e.event {
                sha = s.module_sha256;
            }
        }
        let round = Duration::from_secs_f64(seconds / ROUNDS as f64);
        let plain = server.channel().await;

        println!(
            "load benchmark: loopback, SQLite usage records, cached hello by sha256; {} cores",
            std::thread::available_parallelism().map_or(0, |n| n.get())
        );
        println!(
            "{:<44} {:>10} {:>10} {:>10} {:>12}",
            "", "req/s", "p50/mean", "p99", "CPU µs/req"
        );

        // Profiling one kind of request alone (below): this part only briefly.
        let (own_clients, own_round) = match std::env::var_os("LOAD_BENCH_ONLY") {
            Some(_) => (1, round / 10),
            None => (clients, round),
        };
        let own = own_client(&plain, &channel, &sha, own_clients, own_round).await;
        let label = |what: &str| format!("own client, {clients} clients: {what}");
        for (what, figures) in [("floor", &own.floor), ("Run", &own.runs)] {
            println!(
                "{:<44} {:>10.0} {:>10?} {:>10?} {:>12.1}",
                label(what),
                figures.per_sec(),
                figures.p50(),
                figures.p99(),
                figures.cpu_us()
            );
        }
        println!(
            "  ratio to floor at {clients} clients: {:.2} overall, {:.2} median round, {:.2}..{:.2} range; p50 {:?} (target < 1 ms); CPU µs includes the client",
            own.runs.per_sec() / own.floor.per_sec(),
            own.ratios[own.ratios.len() / 2],
            own.ratios[0],
            own.ratios[own.ratios.len() - 1],
            own.runs.p50()
        );

        let settings: [(u32, u32, f64); 2] = [(1, 8, 0.6), (8, 8, 0.5)];
        if !h2load_available() {
            println!(
                "h2load not found (Debian: apt-get install nghttp2-client): measuring 8 and 64 streams with our own client instead"
            );
            for (connections, streams, target) in settings {
                let n = (connections * streams) as usize;
                let own = own_client(&plain, &channel, &sha, n, round).await;
                println!(
                    "own client, {n:>2} clients: floor {:.0}/s ({:.1} CPU µs), Run {:.0}/s ({:.1} CPU µs, p50 {:?}, p99 {:?}): ratio {:.2} (target >= {target:.2}; client included)",
                    own.floor.per_sec(),
                    own.floor.cpu_us(),
                    own.runs.per_sec(),
                    own.runs.cpu_us(),
                    own.runs.p50(),
                    own.runs.p99(),
                    own.runs.per_sec() / own.floor.per_sec(),
                );
            }
            server.stop().await;
            return;
        }

        let dir = tempfile::tempdir().unwrap();
        let write = |name: &str, bytes: Vec<u8>| {
            let path = dir.path().join(name);
            std::fs::File::create(&path).unwrap().write_all(&bytes).unwrap();
            path
        };
        let floor_body = write("check.bin", grpc_frame(&HealthCheckRequest { service: String::new() }));
        let run_body = write(
            "run.bin",
            grpc_frame(&v1::RunRequest {
                source: Some(v1::run_request::Source::ModuleSha256(sha.clone())),
                ..Default::default()
            }),
        );
        let floor_url = format!("{}/grpc.health.v1.Health/Check", server.url);
        let run_url = format!("{}/wasmwiz.v1.ExecutionService/Run", server.url);
        let key = server.admin_key.clone();
        if let Ok(only) = std::env::var("LOAD_BENCH_ONLY") {
            // Profiling aid: one kind of request alone, at 8 streams, until
            // killed, with CPU µs per request each round.
            let run = only == "run";
            loop {
                let (url, body, key) = if run {
                    (run_url.clone(), run_body.clone(), Some(key.clone()))
                } else {
                    (floor_url.clone(), floor_body.clone(), None)
                };
                let r = tokio::task::spawn_blocking(move || {
                    h2load(&url, &body, key.as_deref(), H2LOAD_RUN_REQUESTS, 1, 8)
                })
                .await
                .unwrap();
                println!(
                    "{only}: {:.0}/s, {:.1} CPU µs per request",
                    r.requests as f64 / r.elapsed.as_secs_f64(),
                    r.cpu.as_secs_f64() * 1e6 / r.requests as f64
                );
            }
        }
        for (connections, streams, target) in settings {
            let (mut floor, mut runs) = (H2loadTotals::default(), H2loadTotals::default());
            let mut ratios = Vec::new();
            let before = successes(&channel).await;
            for _ in 0..H2LOAD_ROUNDS {
                let (url, body) = (floor_url.clone(), floor_body.clone());
                let f = tokio::task::spawn_blocking(move || {
                    h2load(&url, &body, None, H2LOAD_FLOOR_REQUESTS, connections, streams)
                })
                .await
                .unwrap();
                let (url, body, key) = (run_url.clone(), run_body.clone(), key.clone());
                let r = tokio::task::spawn_blocking(move || {
                    h2load(&url, &body, Some(&key), H2LOAD_RUN_REQUESTS, connections, streams)
                })
                .await
                .unwrap();
                ratios.push(
                    (r.requests as f64 / r.elapsed.as_secs_f64())
                        / (f.requests as f64 / f.elapsed.as_secs_f64()),
                );
                floor.add(f);
                runs.add(r);
            }
            // Every h2load "success" was a finished, recorded run (an
            // error would be a 200 with grpc-status in trailers).
            let recorded = successes(&channel).await - before;
            assert_eq!(recorded, runs.requests, "every Run from h2load succeeded and is on record");
            ratios.sort_by(f64::total_cmp);
            let n = connections * streams;
            let label = |what: &str| format!("h2load -c {connections} -m {streams} ({n} streams): {what}");
            for (what, totals) in [("floor", &floor), ("Run", &runs)] {
                println!(
                    "{:<44} {:>10.0} {:>10?} {:>10} {:>12.1}",
                    label(what),
                    totals.per_sec(),
                    totals.mean(),
                    "",
                    totals.cpu_us()
                );
            }
            println!(
                "  ratio to floor at {n} streams: {:.2} overall, {:.2} median round, {:.2}..{:.2} range (target >= {target:.2}); Run CPU {:.2}x a check's; {} B of DATA per Run",
                runs.per_sec() / floor.per_sec(),
                ratios[ratios.len() / 2],
                ratios[0],
                ratios[ratios.len() - 1],
                runs.cpu_us() / floor.cpu_us(),
                runs.data_bytes / runs.requests.max(1),
            );
        }
        server.stop().await;
    });
}
