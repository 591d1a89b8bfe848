//! `--cache` on `wasmwiz batch` and `wasmwiz run`: a re-run of unchanged
//! cases comes back from the server's result cache, marked in the report.

mod common;

use std::path::Path;

use common::{cli, guest, TestServer};

fn cases_file(dir: &Path) -> String {
    std::fs::copy(guest("fib.wasm"), dir.join("fib.wasm")).unwrap();
    let path = dir.join("cases.json");
    std::fs::write(
        &path,
        r#"{"module": "fib.wasm", "cases": [
            {"name": "ten", "stdin": "10\n", "expected_stdout": "55\n"},
            {"name": "twenty", "stdin": "20\n", "expected_stdout": "6765\n"}
        ]}"#,
    )
    .unwrap();
    path.display().to_string()
}

/// `cached_from` of each testcase of a JUnit report, by name.
fn cached_from(report: &Path) -> Vec<(String, Option<String>)> {
    let text = std::fs::read_to_string(report).unwrap();
    let doc = roxmltree::Document::parse(&text).unwrap();
    doc.descendants()
        .filter(|n| n.has_tag_name("testcase"))
        .map(|case| {
            let property = case
                .descendants()
                .find(|p| p.has_tag_name("property") && p.attribute("name") == Some("cached_from"))
                .and_then(|p| p.attribute("value"))
                .map(str::to_string);
            (case.attribute("name").unwrap().to_string(), property)
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_rerun_batch_with_cache_is_marked_cached_in_junit() {
    let server = TestServer::start().await;
    let key = Some(server.admin_key.as_str());
    let dir = tempfile::tempdir().unwrap();
    let cases = cases_file(dir.path());
    let (first, second) = (dir.path().join("first.xml"), dir.path().join("second.xml"));
    for report in [&first, &second] {
        let out = cli(
            &server.url,
            key,
            &[
                "batch",
                &cases,
                "--cache",
                "--junit",
                report.to_str().unwrap(),
            ],
            None,
        )
        .await;
        assert_eq!(out.code, 0, "{out:?}");
    }
    assert!(cached_from(&first).iter().all(|(_, from)| from.is_none()));
    let again = cached_from(&second);
    assert_eq!(again.len(), 2);
    assert!(again.iter().all(|(_, from)| from.is_some()), "{again:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn without_cache_a_rerun_batch_runs_again() {
    let server = TestServer::start().await;
    let key = Some(server.admin_key.as_str());
    let dir = tempfile::tempdir().unwrap();
    let cases = cases_file(dir.path());
    let report = dir.path().join("report.xml");
    for _ in 0..2 {
        let out = cli(
            &server.url,
            key,
            &["batch", &cases, "--junit", report.to_str().unwrap()],
            None,
        )
        .await;
        assert_eq!(out.code, 0, "{out:?}");
    }
    assert!(cached_from(&report).iter().all(|(_, from)| from.is_none()));
}

#[tokio::test(flavor = "multi_thread")]
async fn run_with_cache_says_the_same_the_second_time() {
    let server = TestServer::start().await;
    let key = Some(server.admin_key.as_str());
    let hello = guest("hello.wasm").display().to_string();
    for _ in 0..2 {
        let out = cli(&server.url, key, &["run", "--cache", &hello], None).await;
        assert_eq!(
            (out.code, out.stdout.as_str()),
            (0, "Hello, WasmWiz!\n"),
            "{out:?}"
        );
    }
    let usage = wasmwiz::proto::account_service_client::AccountServiceClient::new(
        server.authed(Some(&server.admin_key)).await,
    )
    .get_usage(wasmwiz::proto::GetUsageRequest::default())
    .await
    .unwrap()
    .into_inner();
    assert_eq!((usage.executions, usage.cache_hits), (1, 1));
}
