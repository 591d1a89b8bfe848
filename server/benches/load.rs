//! Load benchmark over loopback: `Run` of a cached hello module by sha256
//! with N concurrent clients (an `unlimited` key), against the transport
//! floor (`grpc.health.v1.Health/Check` on the same server) in the same run.
//!
//!   cargo bench -p wasmwiz-server --bench load [-- CLIENTS SECONDS]
//!
//! Target: at least 50% of the floor's throughput, p50 under 1 ms.

use std::time::{Duration, Instant};

use tonic_health::pb::{health_client::HealthClient, HealthCheckRequest};
use wasmwiz_proto::v1::{self, execution_service_client::ExecutionServiceClient};
use wasmwiz_server::testing::TestServer;

struct Figures {
    per_sec: f64,
    p50: Duration,
    p99: Duration,
}

async fn drive<F, Fut>(clients: usize, seconds: f64, make: F) -> Figures
where
    F: Fn(usize) -> Fut,
    Fut: std::future::Future<Output = Vec<Duration>> + Send + 'static,
{
    let _ = seconds;
    let started = Instant::now();
    let handles: Vec<_> = (0..clients).map(|i| tokio::spawn(make(i))).collect();
    let mut latencies = Vec::new();
    for h in handles {
        latencies.extend(h.await.unwrap());
    }
    let elapsed = started.elapsed();
    latencies.sort();
    Figures {
        per_sec: latencies.len() as f64 / elapsed.as_secs_f64(),
        p50: latencies[latencies.len() / 2],
        p99: latencies[latencies.len() * 99 / 100],
    }
}

fn main() {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    let clients: usize = args.first().and_then(|a| a.parse().ok()).unwrap_or(16);
    let seconds: f64 = args.get(1).and_then(|a| a.parse().ok()).unwrap_or(5.0);
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
        let deadline = Duration::from_secs_f64(seconds);

        let plain = server.channel().await;
        let floor = drive(clients, seconds, |_| {
            let mut health = HealthClient::new(plain.clone());
            async move {
                let mut latencies = Vec::new();
                let start = Instant::now();
                while start.elapsed() < deadline {
                    let t = Instant::now();
                    health.check(HealthCheckRequest { service: String::new() }).await.unwrap();
                    latencies.push(t.elapsed());
                }
                latencies
            }
        })
        .await;

        let runs = drive(clients, seconds, |_| {
            let mut exec = ExecutionServiceClient::new(channel.clone());
            let sha = sha.clone();
            async move {
                let mut latencies = Vec::new();
                let start = Instant::now();
                while start.elapsed() < deadline {
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

        println!("load benchmark: {clients} concurrent clients, {seconds} s each, loopback, SQLite usage records");
        println!("{:<34} {:>12} {:>10} {:>10}", "", "req/s", "p50", "p99");
        println!("{:<34} {:>12.0} {:>10?} {:>10?}", "floor: Health/Check", floor.per_sec, floor.p50, floor.p99);
        println!("{:<34} {:>12.0} {:>10?} {:>10?}", "Run (cached hello, by sha256)", runs.per_sec, runs.p50, runs.p99);
        println!(
            "ratio to floor: {:.2} (target >= 0.50); p50 {:?} (target < 1 ms)",
            runs.per_sec / floor.per_sec,
            runs.p50
        );
        server.stop().await;
    });
}
