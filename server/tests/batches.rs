//! `RunBatch` against the caller's allowances, on SQLite and PostgreSQL: a
//! batch larger than a minute's rate is paced by the server and runs
//! whole; one larger than what is left of today's quota is refused whole,
//! before any case runs, and costs nothing.

mod support;

use support::*;
use tonic::Code;
use tonic_types::StatusExt;
use wasmwiz_proto::v1;
use wasmwiz_server::config::{default_tiers, Tier};

on_both_databases!(
    a_batch_larger_than_the_minute_rate_is_paced_and_runs_whole,
    a_paced_batch_counts_no_rate_limit_refusal,
    a_batch_larger_than_todays_quota_is_refused_whole,
    a_refused_batch_leaves_todays_quota_untouched,
    a_batch_of_exactly_todays_quota_runs,
);

/// A metered tier with this per-minute rate (also its burst) and daily quota.
fn tier(per_minute: u64, per_day: u64) -> Tier {
    Tier {
        per_minute,
        per_day,
        max_batch_cases: 1000,
        ..default_tiers()["free"].clone()
    }
}

async fn server_with_tier(db: Db, tier: Tier) -> (TestServer, Clients) {
    let server = TestServer::start_with(db, |c| {
        c.tiers.insert("batchy".into(), tier);
    })
    .await;
    let key = server.create_key("batch@x.io", "batchy", false).await;
    let clients = clients(&server, Some(&key)).await;
    (server, clients)
}

fn hello_batch(cases: usize) -> v1::RunBatchRequest {
    v1::RunBatchRequest {
        source: Some(v1::run_batch_request::Source::Module(guest("hello"))),
        cases: vec![v1::BatchCase::default(); cases],
        ..Default::default()
    }
}

/// Every event of a batch, or the status it ended with.
async fn run_batch(
    c: &mut Clients,
    request: v1::RunBatchRequest,
) -> Result<Vec<v1::BatchEvent>, tonic::Status> {
    let mut stream = c.exec.run_batch(request).await?.into_inner();
    let mut events = Vec::new();
    while let Some(event) = stream.message().await? {
        events.push(event);
    }
    Ok(events)
}

async fn remaining_today(c: &mut Clients) -> u64 {
    c.account
        .who_am_i(v1::WhoAmIRequest {})
        .await
        .unwrap()
        .into_inner()
        .remaining_today
}

async fn a_batch_larger_than_the_minute_rate_is_paced_and_runs_whole(db: Db) {
    // 60 a minute: a burst of 60, then one more each second.
    let (server, mut c) = server_with_tier(db, tier(60, 1000)).await;
    let events = run_batch(&mut c, hello_batch(62))
        .await
        .expect("the whole batch runs");
    let mut indexes: Vec<u32> = events
        .iter()
        .filter(|e| e.finished.as_ref().map(|f| f.outcome()) == Some(v1::Outcome::Success))
        .map(|e| e.case_index)
        .collect();
    indexes.sort_unstable();
    assert_eq!(indexes, (0..62).collect::<Vec<u32>>());
    server.stop().await;
}

/// `wasmwiz_rate_limited_total{reason}` from the server's /metrics.
async fn rate_limited(server: &TestServer, reason: &str) -> u64 {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut tcp = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    tcp.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut out = Vec::new();
    tcp.read_to_end(&mut out).await.unwrap();
    let text = String::from_utf8_lossy(&out).to_string();
    let series = format!("wasmwiz_rate_limited_total{{reason=\"{reason}\"}}");
    text.lines()
        .find_map(|line| line.strip_prefix(&series))
        .map(|value| value.trim().parse().unwrap())
        .unwrap_or_else(|| panic!("{series} is exported:\n{text}"))
}

async fn a_paced_batch_counts_no_rate_limit_refusal(db: Db) {
    let (server, mut c) = server_with_tier(db, tier(60, 1000)).await;
    run_batch(&mut c, hello_batch(62))
        .await
        .expect("the whole batch runs");
    // Waiting for the next cell is not a refusal anyone was told about.
    assert_eq!(rate_limited(&server, "per_minute").await, 0);
    server.stop().await;
}

async fn a_batch_larger_than_todays_quota_is_refused_whole(db: Db) {
    let (server, mut c) = server_with_tier(db, tier(100, 5)).await;
    let status = run_batch(&mut c, hello_batch(6)).await.unwrap_err();
    assert_eq!(status.code(), Code::ResourceExhausted, "{status:?}");
    assert!(
        status.message().contains("6 cases but only 5"),
        "{}",
        status.message()
    );
    let details = status.get_error_details();
    assert!(
        details.retry_info().is_some(),
        "RetryInfo until the quota resets"
    );
    server.stop().await;
}

async fn a_refused_batch_leaves_todays_quota_untouched(db: Db) {
    let (server, mut c) = server_with_tier(db, tier(100, 5)).await;
    run_batch(&mut c, hello_batch(6)).await.unwrap_err();
    assert_eq!(remaining_today(&mut c).await, 5);
    server.stop().await;
}

async fn a_batch_of_exactly_todays_quota_runs(db: Db) {
    let (server, mut c) = server_with_tier(db, tier(100, 5)).await;
    let events = run_batch(&mut c, hello_batch(5)).await.expect("it fits");
    assert_eq!(events.iter().filter(|e| e.finished.is_some()).count(), 5);
    assert_eq!(remaining_today(&mut c).await, 0);
    server.stop().await;
}
