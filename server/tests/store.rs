//! The embedded SQLite store under sustained writes: background WAL
//! checkpoints keep the WAL file bounded while no commit runs one itself.

use std::path::Path;

use wasmwiz_server::{
    exec::UsageRecord,
    store::{sqlite_url, Store, UsageWriter},
};

mod support;
use support::{clients, collect, guest, padded_hello, run_bytes};
use wasmwiz_proto::v1;
use wasmwiz_server::testing::{Db, TestServer};

fn row(tag: &str, i: usize) -> UsageRecord {
    UsageRecord {
        id: format!("{tag}-{i:08}"),
        user_id: "user".into(),
        key_id: "key".into(),
        module_sha256: "ab".repeat(32),
        day: "2026-11-30".into(),
        started_at: i as i64,
        end: None,
        cached_from: None,
        job: None,
    }
}

/// `n` usage rows, each committed on its own (the worst case for the WAL).
async fn write_rows(writer: &UsageWriter, n: usize, tag: &str) {
    for i in 0..n {
        writer
            .enqueue(row(tag, i))
            .await
            .unwrap()
            .wait()
            .await
            .unwrap();
    }
}

/// 1,500 rows queued before the writer runs: its first batch (1,024 rows)
/// takes more than one statement, so it is written in one transaction.
async fn a_batch_past_one_statement_is_written_whole(url: &str) {
    let store = Store::connect(url).await.unwrap();
    let writer = UsageWriter::spawn(store.clone());
    // On this single-threaded runtime the writer cannot run until this task
    // yields; `unconstrained` keeps tokio's budget from forcing a yield.
    let commits = tokio::task::unconstrained(async {
        let mut commits = Vec::new();
        for i in 0..1500 {
            commits.push(writer.enqueue(row("burst", i)).await.unwrap());
        }
        commits
    })
    .await;
    for commit in commits {
        commit.wait().await.unwrap();
    }
    let summary = store
        .usage_summary(Some("user"), "2026-11-30")
        .await
        .unwrap();
    assert_eq!(summary.executions, 1500);
    assert_eq!(summary.by_outcome, vec![("RUNNING".to_string(), 1500)]);
}

#[tokio::test(flavor = "current_thread")]
async fn a_batch_past_one_statement_is_written_whole_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    a_batch_past_one_statement_is_written_whole(&sqlite_url(dir.path())).await;
}

#[tokio::test(flavor = "current_thread")]
async fn a_batch_past_one_statement_is_written_whole_postgres() {
    if !support::postgres_available().await {
        eprintln!("PostgreSQL is not reachable here; run with CI=true to require it");
        return;
    }
    let url = wasmwiz_server::testing::fresh_postgres_database()
        .await
        .unwrap();
    a_batch_past_one_statement_is_written_whole(&url).await;
}

fn wal_bytes(dir: &Path) -> u64 {
    std::fs::metadata(dir.join("wasmwiz.db-wal"))
        .map(|m| m.len())
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn background_checkpoints_keep_the_wal_bounded() {
    // Enough commits for the unchecked WAL to pass twice its bound (a
    // commit to the usage inbox writes a page or two, about 6 KiB).
    const ROWS: usize = 12_000;
    // Without the checkpointer nothing checkpoints (commits never do): the
    // WAL grows with every commit...
    let unchecked = tempfile::tempdir().unwrap();
    let store = Store::connect(&sqlite_url(unchecked.path())).await.unwrap();
    write_rows(&UsageWriter::spawn(store.clone()), ROWS, "a").await;
    let grown = wal_bytes(unchecked.path());

    // ...with it, the WAL is copied back and started over as it goes.
    let checked = tempfile::tempdir().unwrap();
    let store = Store::connect(&sqlite_url(checked.path())).await.unwrap();
    let checkpointer = store.spawn_checkpointer().expect("SQLite checkpoints");
    write_rows(&UsageWriter::spawn(store.clone()), ROWS, "b").await;
    let bounded = wal_bytes(checked.path());
    checkpointer.abort();

    println!("WAL after {ROWS} commits: {grown} bytes unchecked, {bounded} bytes with checkpoints");
    assert!(
        bounded * 2 < grown,
        "checkpoints bound the WAL: {bounded} bytes with them, {grown} without"
    );
    let summary = store
        .usage_summary(Some("user"), "2026-11-30")
        .await
        .unwrap();
    assert_eq!(
        summary.executions as usize, ROWS,
        "no row lost to checkpointing"
    );
}

/// Module uploads (read, then write, in one transaction) racing a stream
/// of usage commits: on SQLite a deferred transaction could not upgrade to
/// a writer once a commit landed after its read, and failed at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn uploads_and_runs_at_once_never_collide() {
    // All 60 uploads in flight at once (past the tier's default cap).
    let server = TestServer::start_with(Db::Sqlite, |c| {
        c.tiers.get_mut("unlimited").unwrap().max_concurrent_uploads = 120;
    })
    .await;
    let c = clients(&server, Some(&server.admin_key)).await;
    let hello = guest("hello");
    let tasks = (0..120).map(|i| {
        let mut c = c.clone();
        let hello = hello.clone();
        async move {
            if i % 2 == 0 {
                let module = padded_hello(64 << 10 | i);
                c.modules
                    .put_module(v1::PutModuleRequest {
                        module,
                        sha256: None,
                    })
                    .await
                    .map(|_| ())
            } else {
                let stream = c.exec.run(run_bytes(hello)).await?.into_inner();
                collect(stream)
                    .await
                    .map(|r| assert_eq!(r.stdout, b"Hello, WasmWiz!\n"))
            }
        }
    });
    let failures: Vec<_> = futures::future::join_all(tasks)
        .await
        .into_iter()
        .filter_map(Result::err)
        .collect();
    assert!(failures.is_empty(), "{failures:?}");
    server.stop().await;
}
