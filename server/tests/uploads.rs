//! Uploads are limited: a per-minute budget of their own, a storage quota
//! (bytes and modules) reported by WhoAmI and enforced atomically, per-user
//! concurrent uploads, and an idle timeout for upload streams. Over the
//! real server, on both databases where the store is involved.

mod support;

use std::time::Duration;

use futures::{channel::mpsc, SinkExt};
use support::*;
use tonic::{Code, Status};
use tonic_types::StatusExt;
use wasmwiz_proto::v1::{self, upload_module_request::Msg};
use wasmwiz_server::config::{default_tiers, Tier};

on_both_databases!(
    whoami_reports_what_the_account_stores,
    the_module_count_quota_refuses_one_more_module,
    the_byte_quota_refuses_a_module_that_does_not_fit,
    a_module_already_stored_is_accepted_at_full_quota,
    concurrent_uploads_cannot_pass_the_quota,
    a_kept_inline_module_counts_against_the_quota,
    deleting_a_module_makes_room,
);

/// The free tier with generous execution limits and `adjust` applied.
fn tier(adjust: impl FnOnce(&mut Tier)) -> Tier {
    let mut tier = default_tiers()["free"].clone();
    tier.per_minute = 1000;
    tier.per_day = 100_000;
    tier.uploads_per_minute = 1000;
    tier.max_concurrent_uploads = 64;
    adjust(&mut tier);
    tier
}

/// A server with tier `t` and a client holding a key of that tier.
async fn server_with(db: Db, tier: Tier) -> (TestServer, Clients) {
    let server = TestServer::start_with(db, |c| {
        c.tiers.insert("t".into(), tier);
    })
    .await;
    let key = server.create_key("uploader@x.io", "t", false).await;
    let c = clients(&server, Some(&key)).await;
    (server, c)
}

/// A distinct valid module per `n` (hello with `n` bytes of padding).
fn module(n: usize) -> Vec<u8> {
    padded_hello(1000 + n)
}

async fn put(c: &mut Clients, module: Vec<u8>) -> Result<v1::ModuleInfo, Status> {
    c.modules
        .put_module(v1::PutModuleRequest {
            module,
            sha256: None,
        })
        .await
        .map(|r| r.into_inner())
}

async fn whoami(c: &mut Clients) -> v1::WhoAmIResponse {
    c.account
        .who_am_i(v1::WhoAmIRequest {})
        .await
        .unwrap()
        .into_inner()
}

/// The subject of the status's QuotaFailure violation.
fn quota_subject(status: &Status) -> String {
    assert_eq!(status.code(), Code::ResourceExhausted, "{status:?}");
    status
        .get_error_details()
        .quota_failure()
        .expect("QuotaFailure details")
        .violations[0]
        .subject
        .clone()
}

fn retry_delay(status: &Status) -> Option<Duration> {
    status
        .get_error_details()
        .retry_info()
        .and_then(|r| r.retry_delay)
}

async fn whoami_reports_what_the_account_stores(db: Db) {
    let (server, mut c) = server_with(db, tier(|_| {})).await;
    let (a, b) = (module(1), module(2));
    put(&mut c, a.clone()).await.unwrap();
    put(&mut c, b.clone()).await.unwrap();
    let me = whoami(&mut c).await;
    assert_eq!(me.stored_modules, 2);
    assert_eq!(me.stored_bytes, (a.len() + b.len()) as u64);
    let limits = me.limits.unwrap();
    assert_eq!(
        (limits.max_stored_bytes, limits.max_stored_modules),
        (64 << 20, 50)
    );
    server.stop().await;
}

async fn the_module_count_quota_refuses_one_more_module(db: Db) {
    let (server, mut c) = server_with(db, tier(|t| t.max_stored_modules = 2)).await;
    put(&mut c, module(1)).await.unwrap();
    put(&mut c, module(2)).await.unwrap();
    let refused = put(&mut c, module(3)).await.unwrap_err();
    assert_eq!(quota_subject(&refused), "stored modules");
    assert!(refused.message().contains("2 of 2 modules"), "{refused:?}");
    assert_eq!(whoami(&mut c).await.stored_modules, 2);
    server.stop().await;
}

async fn the_byte_quota_refuses_a_module_that_does_not_fit(db: Db) {
    let small = module(1);
    let large = padded_hello(8 << 10);
    let max = small.len() as u64 + 4096;
    let (server, mut c) = server_with(db, tier(|t| t.max_stored_bytes = max)).await;
    put(&mut c, small.clone()).await.unwrap();
    let refused = put(&mut c, large).await.unwrap_err();
    assert_eq!(quota_subject(&refused), "stored module bytes");
    assert_eq!(whoami(&mut c).await.stored_bytes, small.len() as u64);
    server.stop().await;
}

async fn a_module_already_stored_is_accepted_at_full_quota(db: Db) {
    let (server, mut c) = server_with(db, tier(|t| t.max_stored_modules = 1)).await;
    put(&mut c, module(1)).await.unwrap();
    let again = put(&mut c, module(1)).await.unwrap();
    assert!(again.already_existed);
    server.stop().await;
}

async fn concurrent_uploads_cannot_pass_the_quota(db: Db) {
    let (server, c) = server_with(db, tier(|t| t.max_stored_modules = 3)).await;
    let attempts = (0..12).map(|i| {
        let mut c = c.clone();
        async move { put(&mut c, module(i)).await }
    });
    let results = futures::future::join_all(attempts).await;
    let stored = results.iter().filter(|r| r.is_ok()).count();
    for refused in results.iter().filter_map(|r| r.as_ref().err()) {
        assert_eq!(quota_subject(refused), "stored modules");
    }
    assert_eq!(stored, 3, "{results:?}");
    let mut c = c.clone();
    assert_eq!(whoami(&mut c).await.stored_modules, 3);
    server.stop().await;
}

async fn a_kept_inline_module_counts_against_the_quota(db: Db) {
    let (server, mut c) = server_with(db, tier(|t| t.max_stored_modules = 1)).await;
    put(&mut c, module(1)).await.unwrap();
    let refused = run(
        &mut c,
        v1::RunRequest {
            keep_module: true,
            ..run_bytes(module(2))
        },
    )
    .await
    .unwrap_err();
    assert_eq!(quota_subject(&refused), "stored modules");
    server.stop().await;
}

async fn deleting_a_module_makes_room(db: Db) {
    let (server, mut c) = server_with(db, tier(|t| t.max_stored_modules = 1)).await;
    let first = put(&mut c, module(1)).await.unwrap();
    c.modules
        .delete_module(v1::DeleteModuleRequest {
            sha256: first.sha256,
        })
        .await
        .unwrap();
    put(&mut c, module(2)).await.unwrap();
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn uploads_past_the_per_minute_budget_are_refused_with_retry_info() {
    let (server, mut c) = server_with(Db::Sqlite, tier(|t| t.uploads_per_minute = 2)).await;
    put(&mut c, module(1)).await.unwrap();
    put(&mut c, module(2)).await.unwrap();
    let refused = put(&mut c, module(3)).await.unwrap_err();
    assert_eq!(quota_subject(&refused), "uploads per minute");
    assert!(retry_delay(&refused).is_some_and(|d| d > Duration::ZERO));
    assert!(refused.metadata().get("retry-after").is_some());
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn uploads_do_not_spend_the_execution_allowance() {
    let (server, mut c) = server_with(
        Db::Sqlite,
        tier(|t| {
            t.per_minute = 5;
            t.uploads_per_minute = 5;
        }),
    )
    .await;
    for i in 0..5 {
        put(&mut c, module(i)).await.unwrap();
    }
    assert_eq!(whoami(&mut c).await.remaining_this_minute, 5);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_run_that_keeps_its_module_counts_as_an_upload() {
    let (server, mut c) = server_with(Db::Sqlite, tier(|t| t.uploads_per_minute = 1)).await;
    put(&mut c, module(1)).await.unwrap();
    let refused = run(
        &mut c,
        v1::RunRequest {
            keep_module: true,
            ..run_bytes(module(2))
        },
    )
    .await
    .unwrap_err();
    assert_eq!(quota_subject(&refused), "uploads per minute");
    server.stop().await;
}

/// An `UploadModule` call whose stream the test drives by hand.
struct HeldUpload {
    sender: mpsc::UnboundedSender<v1::UploadModuleRequest>,
    response: tokio::task::JoinHandle<Result<v1::ModuleInfo, Status>>,
}

fn start_message(size: u64) -> v1::UploadModuleRequest {
    v1::UploadModuleRequest {
        msg: Some(Msg::Start(v1::UploadStart { size, sha256: None })),
    }
}

fn chunk_message(bytes: &[u8]) -> v1::UploadModuleRequest {
    v1::UploadModuleRequest {
        msg: Some(Msg::Chunk(bytes.to_vec())),
    }
}

/// Opens an upload announcing `size` bytes and sends only `start`.
async fn hold_upload(c: &Clients, size: u64) -> HeldUpload {
    let (mut sender, receiver) = mpsc::unbounded();
    sender.send(start_message(size)).await.unwrap();
    let mut modules = c.modules.clone();
    let response = tokio::spawn(async move {
        modules
            .upload_module(receiver)
            .await
            .map(|r| r.into_inner())
    });
    HeldUpload { sender, response }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn uploads_in_progress_per_user_are_capped() {
    let (server, c) = server_with(Db::Sqlite, tier(|t| t.max_concurrent_uploads = 2)).await;
    // Three uploads that announce their bytes and never send them: two get
    // a slot and wait for bytes (for the 30 s idle timeout); one is refused.
    let mut held = Vec::new();
    for _ in 0..3 {
        held.push(hold_upload(&c, 4096).await);
    }
    let (senders, responses): (Vec<_>, Vec<_>) =
        held.into_iter().map(|h| (h.sender, h.response)).unzip();
    let (first, _, waiting) = tokio::time::timeout(
        Duration::from_secs(20),
        futures::future::select_all(responses),
    )
    .await
    .expect("one of three uploads at once is refused");
    let refused = first.unwrap().unwrap_err();
    assert_eq!(quota_subject(&refused), "concurrent uploads");
    assert!(retry_delay(&refused).is_some());
    assert!(waiting.iter().all(|w| !w.is_finished()));
    drop(senders);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_upload_stream_that_goes_quiet_is_ended() {
    let (server, c) = server_with(Db::Sqlite, tier(|t| t.upload_idle_timeout_ms = 200)).await;
    let held = hold_upload(&c, 4096).await;
    // The client keeps its side open and sends nothing more.
    let ended = tokio::time::timeout(Duration::from_secs(30), held.response)
        .await
        .expect("the server ends an idle upload")
        .unwrap()
        .unwrap_err();
    assert_eq!(ended.code(), Code::DeadlineExceeded, "{ended:?}");
    assert!(ended.message().contains("no upload message arrived"));
    drop(held.sender);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_slow_but_steady_upload_is_not_idle() {
    let (server, c) = server_with(Db::Sqlite, tier(|t| t.upload_idle_timeout_ms = 1000)).await;
    let bytes = module(1);
    let mut held = hold_upload(&c, bytes.len() as u64).await;
    // Six chunks, each well within the idle timeout, together longer.
    for piece in bytes.chunks(bytes.len().div_ceil(6)) {
        tokio::time::sleep(Duration::from_millis(250)).await;
        held.sender.send(chunk_message(piece)).await.unwrap();
    }
    held.sender.close_channel();
    let info = held.response.await.unwrap().unwrap();
    assert_eq!(info.size, bytes.len() as u64);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_announced_upload_past_the_quota_is_refused_before_its_bytes() {
    let (server, c) = server_with(Db::Sqlite, tier(|t| t.max_stored_bytes = 1 << 20)).await;
    let held = hold_upload(&c, 2 << 20).await;
    let refused = tokio::time::timeout(Duration::from_secs(30), held.response)
        .await
        .expect("refused without waiting for the bytes")
        .unwrap()
        .unwrap_err();
    assert_eq!(quota_subject(&refused), "stored module bytes");
    drop(held.sender);
    server.stop().await;
}

/// True when Redis answers on 127.0.0.1:6379; with `CI=true` its absence
/// is a failure.
async fn redis_available() -> bool {
    let reachable = tokio::time::timeout(
        Duration::from_secs(3),
        tokio::net::TcpStream::connect("127.0.0.1:6379"),
    )
    .await
    .is_ok_and(|c| c.is_ok());
    if !reachable && std::env::var("CI").as_deref() == Ok("true") {
        panic!("CI=true but Redis is not reachable on 127.0.0.1:6379");
    }
    reachable
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_upload_budget_is_shared_by_replicas_through_redis() {
    if !postgres_available().await || !redis_available().await {
        eprintln!("PostgreSQL or Redis is not reachable here; run with CI=true to require them");
        return;
    }
    let first = TestServer::start_with(Db::Postgres, |c| {
        c.redis_url = Some("redis://127.0.0.1:6379".into());
        c.tiers
            .insert("t".into(), tier(|t| t.uploads_per_minute = 2));
    })
    .await;
    let second = TestServer::start_config(first.config.clone(), None).await;
    let key = first.create_key("replicated@x.io", "t", false).await;
    let mut on_first = clients(&first, Some(&key)).await;
    let mut on_second = clients(&second, Some(&key)).await;
    put(&mut on_first, module(1)).await.unwrap();
    put(&mut on_second, module(2)).await.unwrap();
    let refused = put(&mut on_first, module(3)).await.unwrap_err();
    assert_eq!(quota_subject(&refused), "uploads per minute");
    second.stop().await;
    first.stop().await;
}
