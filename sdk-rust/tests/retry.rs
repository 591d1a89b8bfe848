//! Rate limits: the error's details, the CLI's exit code and message, and
//! retries that honour retry-after (library and CLI).

mod common;

use std::{
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use common::{cli, guest, TestServer};
use wasmwiz::{Client, Code, Module, RetryPolicy};

#[tokio::test(flavor = "multi_thread")]
async fn rate_limited_runs_wait_for_retry_after() {
    let server = TestServer::start().await;
    let key = server.create_key("free@test.local", "free", false).await;
    let plain = common::client(&server, &key).await;
    let hello = || Module::file(guest("hello.wasm"));

    // The free tier's burst: 10 runs a minute, with the rate headers. (A
    // slow machine may earn a token back meanwhile, so run until refused.)
    let mut admitted = 0;
    let err = loop {
        match plain.run(hello()).output().await {
            Ok(out) => {
                let rate = out.rate_limit.expect("ratelimit-* metadata");
                assert_eq!(rate.limit, 10);
                if admitted == 0 {
                    assert_eq!(rate.remaining, 9);
                }
                admitted += 1;
                assert!(admitted <= 15, "never rate limited");
            }
            Err(err) => break err,
        }
    };
    assert!(admitted >= 10, "refused after {admitted} runs: {err}");

    // Then: RESOURCE_EXHAUSTED with RetryInfo, QuotaFailure, retry-after.
    assert_eq!(err.code(), Code::ResourceExhausted);
    let retry_after = err.retry_after().expect("retry-after");
    assert!(retry_after >= Duration::from_secs(1), "{retry_after:?}");
    let api = err.api().unwrap();
    assert!(!api.quota_violations().is_empty());
    assert!(
        api.quota_violations()[0].subject.contains("minute"),
        "{api:?}"
    );
    assert!(err.is_retryable());

    // The CLI: exit 109 and the wait, in words.
    let out = cli(
        &server.url,
        Some(&key),
        &["run", &guest("hello.wasm").display().to_string()],
        None,
    )
    .await;
    assert_eq!(out.code, 109, "{out:?}");
    assert!(out.stderr.contains("rate limited"), "{out:?}");
    assert!(out.stderr.contains("try again in"), "{out:?}");
    assert!(!out.stderr.contains("Status {"), "{out:?}");

    // With retries on, the run waits at least retry-after, then succeeds.
    let waits = Arc::new(Mutex::new(Vec::new()));
    let seen = waits.clone();
    let retrying = Client::builder(&server.url)
        .api_key(&key)
        .retry(
            RetryPolicy::default()
                .max_delay(Duration::from_secs(30))
                .on_retry(move |error, wait, attempt| {
                    seen.lock()
                        .unwrap()
                        .push((error.code(), error.retry_after(), wait, attempt));
                }),
        )
        .build()
        .await
        .unwrap();
    let started = Instant::now();
    let out = retrying.run(hello()).output().await.unwrap();
    let waited = started.elapsed();
    assert_eq!(out.stdout, b"Hello, WasmWiz!\n");
    assert!(
        waited >= retry_after,
        "succeeded after {waited:?}, before the retry-after of {retry_after:?}"
    );
    let waits = waits.lock().unwrap().clone();
    assert!(!waits.is_empty());
    let (code, asked, wait, attempt) = waits[0];
    assert_eq!(code, Code::ResourceExhausted);
    assert_eq!(attempt, 1);
    assert!(
        wait >= asked.unwrap(),
        "waited {wait:?} < retry-after {asked:?}"
    );

    // A cap below retry-after: no wait, the error at once.
    let impatient = Client::builder(&server.url)
        .api_key(&key)
        .retry(RetryPolicy::default().max_delay(Duration::from_millis(100)))
        .build()
        .await
        .unwrap();
    let started = Instant::now();
    let err = impatient.run(hello()).output().await.unwrap_err();
    assert_eq!(err.code(), Code::ResourceExhausted);
    assert!(started.elapsed() < Duration::from_secs(1));

    // The CLI with --retry waits it out too.
    let started = Instant::now();
    let out = cli(
        &server.url,
        Some(&key),
        &["--retry", "run", &guest("hello.wasm").display().to_string()],
        None,
    )
    .await;
    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(out.stdout, "Hello, WasmWiz!\n");
    assert!(
        out.stderr
            .contains("rate limited (executions per minute); retrying in"),
        "{out:?}"
    );
    assert!(started.elapsed() >= Duration::from_secs(1));
}
