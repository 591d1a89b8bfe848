//! The result cache's payoff, over loopback in one run: a single hello
//! `Run` and a 200-case `RunBatch`, each uncached (cache off) and cached
//! (`CACHE_POLICY_USE`, after one run that stored the results); prints the
//! medians and the uncached / cached ratios.
//!
//!   cargo bench -p wasmwiz-server --bench result_cache [-- REPEATS]

use std::time::{Duration, Instant};

use wasmwiz_proto::v1::{self, execution_service_client::ExecutionServiceClient, CachePolicy};
use wasmwiz_server::testing::{Authed, TestServer};

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

const CASES: usize = 200;

fn guest(name: &str) -> Vec<u8> {
    let path = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join(format!("../examples/guests/{name}.wasm"));
    std::fs::read(path).unwrap()
}

fn median(mut times: Vec<Duration>) -> Duration {
    times.sort();
    times[times.len() / 2]
}

async fn hello(client: &mut ExecutionServiceClient<Authed>, cache: CachePolicy) -> Duration {
    let started = Instant::now();
    let mut stream = client
        .run(v1::RunRequest {
            source: Some(v1::run_request::Source::Module(guest("hello"))),
            cache: cache as i32,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    while stream.message().await.unwrap().is_some() {}
    started.elapsed()
}

/// 200 fib cases (n from 15 to 24), each checked against its answer.
fn batch(cache: CachePolicy) -> v1::RunBatchRequest {
    let fib = |n: u64| (0..n).fold((0u64, 1u64), |(a, b), _| (b, a + b)).0;
    v1::RunBatchRequest {
        source: Some(v1::run_batch_request::Source::Module(guest("fib"))),
        cases: (0..CASES)
            .map(|i| {
                let n = 15 + (i % 10) as u64;
                v1::BatchCase {
                    stdin: format!("{n}\n").into_bytes(),
                    args: vec![format!("case-{i}")],
                    expected_stdout: Some(format!("{}\n", fib(n)).into_bytes()),
                    name: format!("case {i}"),
                    ..Default::default()
                }
            })
            .collect(),
        cache: cache as i32,
        ..Default::default()
    }
}

async fn run_batch(client: &mut ExecutionServiceClient<Authed>, cache: CachePolicy) -> Duration {
    let started = Instant::now();
    let mut stream = client.run_batch(batch(cache)).await.unwrap().into_inner();
    let mut finished = 0;
    while let Some(event) = stream.message().await.unwrap() {
        let done = event.finished.expect("finished");
        assert_eq!(done.verdict(), v1::Verdict::Accepted);
        finished += 1;
    }
    assert_eq!(finished, CASES);
    started.elapsed()
}

fn main() {
    let repeats: usize = std::env::args()
        .skip(1)
        .find(|a| !a.starts_with('-'))
        .and_then(|a| a.parse().ok())
        .unwrap_or(20);
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let server = TestServer::start().await;
        let mut client = ExecutionServiceClient::new(server.authed(Some(&server.admin_key)).await)
            .max_decoding_message_size(64 << 20);
        // Warm-up: compile the modules and store the cached results.
        hello(&mut client, CachePolicy::Use).await;
        run_batch(&mut client, CachePolicy::Use).await;

        let mut figures = Vec::new();
        let (mut off, mut on) = (Vec::new(), Vec::new());
        for _ in 0..repeats * 5 {
            off.push(hello(&mut client, CachePolicy::Unspecified).await);
            on.push(hello(&mut client, CachePolicy::Use).await);
        }
        figures.push(("single hello Run", median(off), median(on)));
        let (mut off, mut on) = (Vec::new(), Vec::new());
        for _ in 0..repeats {
            off.push(run_batch(&mut client, CachePolicy::Unspecified).await);
            on.push(run_batch(&mut client, CachePolicy::Use).await);
        }
        figures.push(("200-case RunBatch", median(off), median(on)));
        println!("result cache, medians over loopback (uncached / cached):");
        for (name, off, on) in figures {
            println!(
                "  {name:<18} uncached {:>10.3} ms   cached {:>10.3} ms   ratio {:>6.1}x",
                off.as_secs_f64() * 1e3,
                on.as_secs_f64() * 1e3,
                off.as_secs_f64() / on.as_secs_f64()
            );
        }
        server.stop().await;
    });
}
