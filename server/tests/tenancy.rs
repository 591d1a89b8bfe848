//! Fairness between tenants over the real API: fair shares of admission,
//! the module cache's `cache_hit` seen per account, and allowances charged
//! only for admitted executions.

mod support;

use std::time::Duration;

use support::*;
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    sync::mpsc,
    task::JoinHandle,
};
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Code, Status};
use wasmwiz_proto::v1::{self, execute_request::Msg};
use wasmwiz_server::config::Tier;

on_both_databases!(cache_hit_is_true_only_for_the_accounts_own_bytes);

/// `GET path` over HTTP/1.1; the body.
async fn http_get(server: &TestServer, path: &str) -> String {
    let mut tcp = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    tcp.write_all(
        format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes(),
    )
    .await
    .unwrap();
    let mut out = Vec::new();
    tcp.read_to_end(&mut out).await.unwrap();
    String::from_utf8_lossy(&out).to_string()
}

/// (running, waiting for admission) executions, from `/metrics`.
async fn running_and_queued(server: &TestServer) -> (u64, u64) {
    let metrics = http_get(server, "/metrics").await;
    let gauge = |name: &str| -> u64 {
        metrics
            .lines()
            .find_map(|line| line.strip_prefix(name)?.strip_prefix(' '))
            .unwrap_or_else(|| panic!("no {name} in {metrics}"))
            .trim()
            .parse()
            .unwrap()
    };
    (
        gauge("wasmwiz_running_executions"),
        gauge("wasmwiz_queue_depth"),
    )
}

/// An `Execute` of echo with streamed stdin that stays open (the guest
/// idles on stdin) until the returned sender is dropped.
struct IdleRun {
    stdin: mpsc::Sender<v1::ExecuteRequest>,
    call: JoinHandle<Result<tonic::Streaming<v1::ExecuteEvent>, Status>>,
}

fn idle_execute(c: &Clients, module: Vec<u8>, limits: Option<v1::Limits>) -> IdleRun {
    let (tx, rx) = mpsc::channel::<v1::ExecuteRequest>(4);
    tx.try_send(v1::ExecuteRequest {
        msg: Some(Msg::Start(v1::ExecuteStart {
            source: Some(v1::execute_start::Source::ModuleSize(module.len() as u64)),
            stream_stdin: true,
            limits,
            ..Default::default()
        })),
    })
    .unwrap();
    tx.try_send(v1::ExecuteRequest {
        msg: Some(Msg::ModuleChunk(module)),
    })
    .unwrap();
    let mut exec = c.exec.clone();
    let call = tokio::spawn(async move {
        exec.execute(ReceiverStream::new(rx))
            .await
            .map(|r| r.into_inner())
    });
    IdleRun { stdin: tx, call }
}

/// Waits until `n` executions are running or queued; returns how many
/// are queued.
async fn until_running_or_queued(server: &TestServer, n: u64) -> u64 {
    loop {
        let (running, queued) = running_and_queued(server).await;
        if running + queued >= n {
            return queued;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A 1 MiB run of hello.
fn small_run() -> v1::RunRequest {
    v1::RunRequest {
        limits: Some(v1::Limits {
            memory_bytes: 1 << 20,
            ..Default::default()
        }),
        ..run_bytes(guest("hello"))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_tenant_past_its_share_does_not_hold_up_another_tenant() {
    // Default budget (8 GiB) and shares (25 %): a pro run at the tier's
    // maximum is charged 1 GiB, so two of them fill one tenant's share.
    let server = TestServer::start_with(Db::Sqlite, |c| c.sandbox.max_queue_wait_ms = 3000).await;
    let pro = server.create_key("big@x.io", "pro", false).await;
    let other = server.create_key("small@x.io", "free", false).await;
    let a = clients(&server, Some(&pro)).await;
    let runs: Vec<IdleRun> = (0..8)
        .map(|_| idle_execute(&a, guest("echo"), None))
        .collect();
    assert_eq!(
        until_running_or_queued(&server, 8).await,
        6,
        "two fill the tenant's share, six wait"
    );

    // Another tenant's small run is admitted although 8 GiB are asked for.
    let mut b = clients(&server, Some(&other)).await;
    let r = run(&mut b, small_run()).await.expect("admitted");
    assert_eq!(r.outcome(), v1::Outcome::Success);

    // The tenant's own excess waits, then is refused naming its share.
    let mut admitted = Vec::new();
    let mut refused = Vec::new();
    for idle in runs {
        match idle.call.await.unwrap() {
            Ok(stream) => admitted.push((idle.stdin, stream)),
            Err(status) => refused.push(status),
        }
    }
    assert_eq!(admitted.len(), 2);
    assert_eq!(refused.len(), 6);
    for status in &refused {
        assert_eq!(status.code(), Code::Unavailable, "{status:?}");
        assert!(
            status.message().contains("your account's share"),
            "{}",
            status.message()
        );
    }

    // Once they end, the share is free again.
    for (stdin, stream) in admitted {
        drop(stdin);
        assert_eq!(
            collect(stream).await.unwrap().outcome(),
            v1::Outcome::Success
        );
    }
    let mut a = a;
    assert_eq!(
        run(&mut a, run_bytes(guest("hello")))
            .await
            .unwrap()
            .outcome(),
        v1::Outcome::Success
    );
    server.stop().await;
}

/// A guest with one page of memory, declared its maximum, that waits on
/// stdin until end of file.
fn one_page_stdin_reader() -> Vec<u8> {
    wat::parse_str(
        r#"(module
          (import "wasi_snapshot_preview1" "fd_read"
            (func $fd_read (param i32 i32 i32 i32) (result i32)))
          (memory (export "memory") 1 1)
          (func (export "_start")
            (i32.store (i32.const 0) (i32.const 16))
            (i32.store (i32.const 4) (i32.const 64))
            (loop $more
              (drop (call $fd_read (i32.const 0) (i32.const 0) (i32.const 1) (i32.const 8)))
              (br_if $more (i32.load (i32.const 8))))))"#,
    )
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_module_is_charged_its_declared_maximum_memory_not_the_limit() {
    // Charged at the 1 GiB limit only two would fit the tenant's share;
    // at their declared 64 KiB, all eight are admitted at once.
    let server = TestServer::start_with(Db::Sqlite, |c| c.sandbox.max_queue_wait_ms = 3000).await;
    let pro = server.create_key("small-guest@x.io", "pro", false).await;
    let a = clients(&server, Some(&pro)).await;
    let runs: Vec<IdleRun> = (0..8)
        .map(|_| idle_execute(&a, one_page_stdin_reader(), None))
        .collect();
    for idle in runs {
        let stream = idle.call.await.unwrap().expect("admitted");
        drop(idle.stdin);
        assert_eq!(
            collect(stream).await.unwrap().outcome(),
            v1::Outcome::Success
        );
    }
    server.stop().await;
}

async fn cache_hit_is_true_only_for_the_accounts_own_bytes(db: Db) {
    let server = TestServer::start_with(db, |_| {}).await;
    let key_a = server.create_key("a@x.io", "basic", false).await;
    let key_c = server.create_key("c@x.io", "basic", false).await;
    let mut a = clients(&server, Some(&key_a)).await;
    let mut c = clients(&server, Some(&key_c)).await;
    let hello = guest("hello");
    let cache_hit = |r: Collected| r.started.unwrap().cache_hit;
    assert!(!cache_hit(
        run(&mut a, run_bytes(hello.clone())).await.unwrap()
    ));
    assert!(cache_hit(
        run(&mut a, run_bytes(hello.clone())).await.unwrap()
    ));
    assert!(
        !cache_hit(run(&mut c, run_bytes(hello.clone())).await.unwrap()),
        "another tenant's run of the same bytes is not C's to know"
    );
    assert!(cache_hit(run(&mut c, run_bytes(hello)).await.unwrap()));
    server.stop().await;
}

/// `ratelimit-remaining` of a successful run.
async fn run_remaining(c: &mut Clients, request: v1::RunRequest) -> u64 {
    let response = c.exec.run(request).await.expect("the run is allowed");
    let remaining = response
        .metadata()
        .get("ratelimit-remaining")
        .expect("rate headers")
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(
        collect(response.into_inner()).await.unwrap().outcome(),
        v1::Outcome::Success
    );
    remaining
}

/// Runs `probe` more times than the free tier's per-minute allowance; each
/// must fail with `code`; a real run afterwards must still be allowed, with
/// at most `slack` cells besides its own gone from the allowance.
async fn probes_cost_nothing(
    redis_url: Option<&str>,
    slack: u64,
    probe: impl Fn() -> v1::RunRequest,
    code: Code,
) {
    let server = TestServer::start_with(Db::Sqlite, |c| {
        c.redis_url = redis_url.map(str::to_string);
    })
    .await;
    let key = server.create_key("probe@x.io", "free", false).await;
    let mut c = clients(&server, Some(&key)).await;
    let before = run_remaining(&mut c, run_bytes(guest("hello"))).await;
    for _ in 0..12 {
        let status = run(&mut c, probe()).await.unwrap_err();
        assert_eq!(status.code(), code, "{status:?}");
    }
    let after = run_remaining(&mut c, run_bytes(guest("hello"))).await;
    assert!(
        after + 1 + slack >= before,
        "the probes used the allowance: {before} left before, {after} after"
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn not_found_probes_do_not_use_the_per_minute_allowance() {
    probes_cost_nothing(None, 0, || run_sha(&"ab".repeat(32)), Code::NotFound).await;
}

/// True when Redis answers on 127.0.0.1:6379; with `CI=true` its absence
/// is a failure.
async fn redis_available() -> bool {
    let reachable = tokio::net::TcpStream::connect("127.0.0.1:6379")
        .await
        .is_ok();
    if !reachable && std::env::var("CI").as_deref() == Ok("true") {
        panic!("CI=true but Redis is not reachable on 127.0.0.1:6379");
    }
    reachable
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn not_found_probes_do_not_use_the_shared_per_minute_allowance() {
    if !redis_available().await {
        eprintln!("Redis is not reachable here; run with CI=true to require it");
        return;
    }
    // Redis refunds land in the background: the last probe's may still be
    // on its way when the real run is checked.
    probes_cost_nothing(
        Some("redis://127.0.0.1:6379"),
        1,
        || run_sha(&"ab".repeat(32)),
        Code::NotFound,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn invalid_modules_do_not_use_the_per_minute_allowance() {
    probes_cost_nothing(
        None,
        0,
        || run_bytes(b"\0asm garbage".to_vec()),
        Code::InvalidArgument,
    )
    .await;
}

fn one_at_a_time_tier() -> Tier {
    Tier {
        per_minute: 4,
        per_day: 100,
        max_module_bytes: 1 << 20,
        max_stdin_bytes: 1 << 20,
        max_memory_bytes: 64 << 20,
        max_fuel: 1_000_000_000,
        max_timeout_ms: 60_000,
        max_output_bytes: 1 << 20,
        max_concurrent: 1,
        unmetered: false,
        ..wasmwiz_server::config::default_tiers()["free"].clone()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_run_refused_for_concurrency_does_not_use_the_allowance() {
    let server = TestServer::start_with(Db::Sqlite, |c| {
        c.tiers.insert("single".into(), one_at_a_time_tier());
    })
    .await;
    let key = server.create_key("one@x.io", "single", false).await;
    let mut c = clients(&server, Some(&key)).await;
    let idle = idle_execute(&c, guest("echo"), None);
    let stream = idle.call.await.unwrap().expect("the first run is admitted");
    for _ in 0..6 {
        let status = run(&mut c, run_bytes(guest("hello"))).await.unwrap_err();
        assert_eq!(status.code(), Code::ResourceExhausted, "{status:?}");
        assert!(status.message().contains("at once"), "{}", status.message());
    }
    drop(idle.stdin);
    collect(stream).await.unwrap();
    let remaining = run_remaining(&mut c, run_bytes(guest("hello"))).await;
    assert!(
        remaining >= 2,
        "only two cells of 4 were used: {remaining} left"
    );
    let me = c
        .account
        .who_am_i(v1::WhoAmIRequest {})
        .await
        .unwrap()
        .into_inner();
    assert_eq!(me.remaining_today, 98, "two executions were admitted today");
    server.stop().await;
}

/// A connection to the server's SQLite file with a trigger `name` that
/// refuses every insert into `table` (a failure injected from outside).
async fn refuse_inserts(server: &TestServer, name: &str, table: &str) -> sqlx::SqliteConnection {
    use sqlx::{Connection, Executor};
    let mut db = sqlx::SqliteConnection::connect(&wasmwiz_server::store::sqlite_url(
        &server.config.data_dir,
    ))
    .await
    .unwrap();
    db.execute(sqlx::AssertSqlSafe(format!(
        "CREATE TRIGGER {name} BEFORE INSERT ON {table} \
         BEGIN SELECT RAISE(ABORT, 'injected failure'); END"
    )))
    .await
    .unwrap();
    db
}

/// On SQLite a run's row is durable once in the usage inbox: while moving
/// rows on into `usage_records` fails, runs still succeed, reads of usage
/// fail instead of undercounting, and once the move works again every run
/// is counted.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_failing_move_out_of_the_usage_inbox_loses_no_row() {
    use sqlx::{Connection, Executor};
    let server = TestServer::start().await;
    let key = server.create_key("move@x.io", "unlimited", false).await;
    let mut c = clients(&server, Some(&key)).await;
    let mut db = refuse_inserts(&server, "refuse_move", "usage_records").await;
    for _ in 0..3 {
        run(&mut c, run_bytes(guest("hello"))).await.unwrap();
    }
    let refused = c
        .account
        .get_usage(v1::GetUsageRequest::default())
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::Internal, "{refused:?}");

    db.execute("DROP TRIGGER refuse_move").await.unwrap();
    db.close().await.unwrap();
    let usage = c
        .account
        .get_usage(v1::GetUsageRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(usage.executions, 3);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_failed_admission_row_leaves_the_quota_untouched() {
    use sqlx::{Connection, Executor};
    let server = TestServer::start().await;
    let key = server.create_key("row@x.io", "basic", false).await;
    let mut c = clients(&server, Some(&key)).await;
    let remaining_today = |c: Clients| async move {
        let mut account = c.account;
        account
            .who_am_i(v1::WhoAmIRequest {})
            .await
            .unwrap()
            .into_inner()
            .remaining_today
    };
    let before = remaining_today(c.clone()).await;
    // Break usage writes from outside the server: the admission row of the
    // next run cannot commit (the embedded writer commits to the inbox).
    let mut db = refuse_inserts(&server, "refuse_usage", "usage_inbox").await;
    let status = run(&mut c, run_bytes(guest("hello"))).await.unwrap_err();
    assert_eq!(status.code(), Code::Internal, "{status:?}");
    assert_eq!(
        remaining_today(c.clone()).await,
        before,
        "nothing was charged"
    );

    db.execute("DROP TRIGGER refuse_usage").await.unwrap();
    db.close().await.unwrap();
    run(&mut c, run_bytes(guest("hello"))).await.unwrap();
    assert_eq!(remaining_today(c.clone()).await, before - 1);
    server.stop().await;
}
