//! The CLI's refusals in the user's own words: the flag they set and human
//! units for tier limits, and no retrying of what waiting cannot fix.

mod common;

use common::{cli, client, guest, TestServer};
use wasmwiz::NewKey;
use wasmwiz_server::testing::Db;

async fn free_key(server: &TestServer, email: &str) -> String {
    client(server, &server.admin_key)
        .await
        .admin()
        .create_key(NewKey::new(email).tier("free"))
        .await
        .unwrap()
        .key
}

#[tokio::test(flavor = "multi_thread")]
async fn memory_above_the_tier_names_the_flag_in_human_units() {
    let server = TestServer::start().await;
    let key = free_key(&server, "words@test.local").await;
    let hello = guest("hello.wasm");
    let out = cli(
        &server.url,
        Some(&key),
        &["run", "--memory", "2GiB", hello.to_str().unwrap()],
        None,
    )
    .await;
    assert_eq!(out.code, 110, "{out:?}");
    assert!(
        out.stderr
            .contains("--memory 2.0 GiB is above the free tier's maximum of"),
        "{out:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_full_storage_quota_is_not_retried() {
    let server = TestServer::start_with(Db::Sqlite, |c| {
        c.tiers.get_mut("free").unwrap().max_stored_modules = 1;
    })
    .await;
    let key = free_key(&server, "full@test.local").await;
    let (hello, echo) = (guest("hello.wasm"), guest("echo.wasm"));
    let first = cli(
        &server.url,
        Some(&key),
        &["upload", hello.to_str().unwrap()],
        None,
    )
    .await;
    assert_eq!(first.code, 0, "{first:?}");
    let out = cli(
        &server.url,
        Some(&key),
        &[
            "--retry",
            "--max-wait",
            "30s",
            "upload",
            echo.to_str().unwrap(),
        ],
        None,
    )
    .await;
    assert_eq!(out.code, 109, "{out:?}");
    assert!(!out.stderr.contains("retrying"), "{out:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_full_storage_quota_says_quota_not_rate_limit() {
    let server = TestServer::start_with(Db::Sqlite, |c| {
        c.tiers.get_mut("free").unwrap().max_stored_modules = 1;
    })
    .await;
    let key = free_key(&server, "quota@test.local").await;
    let (hello, echo) = (guest("hello.wasm"), guest("echo.wasm"));
    cli(
        &server.url,
        Some(&key),
        &["upload", hello.to_str().unwrap()],
        None,
    )
    .await;
    let out = cli(
        &server.url,
        Some(&key),
        &["upload", echo.to_str().unwrap()],
        None,
    )
    .await;
    assert!(
        out.stderr.contains("quota exceeded: storing this module"),
        "{out:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_malformed_traceparent_is_reported_and_left_out() {
    let server = TestServer::start().await;
    let out = cli(
        &server.url,
        Some(&server.admin_key),
        &["--traceparent", "not-a-trace", "whoami"],
        None,
    )
    .await;
    assert_eq!(out.code, 0, "{out:?}");
    assert!(
        out.stderr.contains("ignoring traceparent `not-a-trace`"),
        "{out:?}"
    );
}
