//! Load benchmark over loopback: `Run` of a cached hello module by sha256
//! with N concurrent clients (an `unlimited` key), against the transport
//! floor (`grpc.health.v1.Health/Check` on the same server) in the same run.
//!
//!   cargo bench -p wasmwiz-server --bench load [-- CLIENTS SECONDS]
//!
//! SECONDS (default 10) is split into alternating rounds of floor and Run.
//!
//! Target: at least 50% of the floor's throughput, p50 under 1 ms.

use std::time::{Duration, Instant};

use tonic_health::pb::{health_client::HealthClient, HealthCheckRequest};
use wasmwiz_proto::v1::{self, execution_service_client::ExecutionServiceClient};
use wasmwiz_server::testing::TestServer;

/// The server binary's allocator, so the figures are the binary's.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Rounds of floor-then-Run; the figures are over all rounds.
const ROUNDS: usize = 10;

/// Latencies of every request in some rounds, and the time they took.
#[derive(Default)]
struct Figures {
    latencies: Vec<Duration>,
    elapsed: Duration,
}

impl Figures {
    fn add(&mut self, other: Figures) {
        self.latencies.extend(other.latencies);
        self.latencies.sort();
        self.elapsed += other.elapsed;
    }

    fn per_sec(&self) -> f64 {
        self.latencies.len() as f64 / self.elapsed.as_secs_f64()
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
    let started = Instant::now();
    let handles: Vec<_> = (0..clients).map(|i| tokio::spawn(make(i))).collect();
    let mut latencies = Vec::new();
    for h in handles {
        latencies.extend(h.await.unwrap());
    }
    Figures {
        latencies,
        elapsed: started.elapsed(),
    }
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
        // The floor and Run alternate in short rounds, so drift in what
        // else this shared machine is doing hits both alike.
        let round = Duration::from_secs_f64(seconds / ROUNDS as f64);
        let plain = server.channel().await;
        let (mut floor, mut runs) = (Figures::default(), Figures::default());
        let mut ratios = Vec::new();
        for _ in 0..ROUNDS {
            let f = drive(clients, |_| {
                let mut health = HealthClient::new(plain.clone());
                async move {
                    let mut latencies = Vec::new();
                    let start = Instant::now();
                    while start.elapsed() < round {
                        let t = Instant::now();
                        health.check(HealthCheckRequest { service: String::new() }).await.unwrap();
                        latencies.push(t.elapsed());
                    }
                    latencies
                }
            })
            .await;
            let r = drive(clients, |_| {
                let mut exec = ExecutionServiceClient::new(channel.clone());
                let sha = sha.clone();
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
            .await;
            ratios.push(r.per_sec() / f.per_sec());
            floor.add(f);
            runs.add(r);
        }
        ratios.sort_by(f64::total_cmp);

        println!(
            "load benchmark: {clients} concurrent clients, {ROUNDS} alternating rounds of {:?} each, loopback, SQLite usage records",
            round
        );
        println!("{:<34} {:>12} {:>10} {:>10}", "", "req/s", "p50", "p99");
        println!("{:<34} {:>12.0} {:>10?} {:>10?}", "floor: Health/Check", floor.per_sec(), floor.p50(), floor.p99());
        println!("{:<34} {:>12.0} {:>10?} {:>10?}", "Run (cached hello, by sha256)", runs.per_sec(), runs.p50(), runs.p99());
        println!(
            "ratio to floor: {:.2} overall, {:.2} median round, {:.2}..{:.2} range (target >= 0.50); p50 {:?} (target < 1 ms)",
            runs.per_sec() / floor.per_sec(),
            ratios[ratios.len() / 2],
            ratios[0],
            ratios[ratios.len() - 1],
            runs.p50()
        );
        server.stop().await;
    });
}
