//! `wasmwiz batch` as a CI step reads it, through the real binary against a
//! real server: rows as cases finish, a batch timeout, wrong answers shown,
//! reports that agree with the exit code, and the tier's module size
//! checked before upload.

mod common;

use std::{path::Path, process::Stdio, time::Duration};

use common::{cli, cli_command, guest, padded_hello, TestServer};
use tokio::io::{AsyncBufReadExt, BufReader};
use wasmwiz_server::testing::Db;

/// A cases file next to a copy of fib.wasm.
fn cases_file(dir: &Path, cases: &str) -> String {
    std::fs::copy(guest("fib.wasm"), dir.join("fib.wasm")).unwrap();
    let path = dir.join("cases.json");
    std::fs::write(
        &path,
        format!(r#"{{"module": "fib.wasm", "cases": {cases}}}"#),
    )
    .unwrap();
    path.display().to_string()
}

/// fib(90) by naive recursion never finishes within a test's time.
const FAST_AND_RUNAWAY: &str = r#"[
  {"name": "fast", "stdin": "10\n", "expected_stdout": "55\n"},
  {"name": "runaway", "stdin": "90\n"}
]"#;

const ONE_WRONG: &str = r#"[
  {"name": "wrong", "stdin": "10\n", "expected_stdout": "5\n55\n"}
]"#;

fn junit(path: &Path) -> roxmltree::Document<'static> {
    let text = std::fs::read_to_string(path).unwrap();
    roxmltree::Document::parse(Box::leak(text.into_boxed_str())).unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_row_is_printed_as_its_case_finishes() {
    let server = TestServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let cases = cases_file(dir.path(), FAST_AND_RUNAWAY);
    let mut child = cli_command(&server.url, Some(&server.admin_key))
        .args(["batch", &cases, "--timeout", "20s"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut rows = Vec::new();
    for _ in 0..2 {
        let line = tokio::time::timeout(Duration::from_secs(60), lines.next_line())
            .await
            .expect("a row within 60 s")
            .unwrap()
            .unwrap();
        rows.push(line);
    }
    assert!(rows[0].starts_with("#  CASE"), "{rows:?}");
    let row = &rows[1];
    assert!(row.contains("fast") && row.contains("ok"), "{row}");
    // The runaway case is still running, and wasmwiz with it.
    assert!(child.try_wait().unwrap().is_none());
    child.kill().await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn batch_timeout_reports_the_cases_left_as_not_run() {
    let server = TestServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let cases = cases_file(dir.path(), FAST_AND_RUNAWAY);
    let report = dir.path().join("junit.xml");
    let out = cli(
        &server.url,
        Some(&server.admin_key),
        &[
            "batch",
            &cases,
            "--timeout",
            "20s",
            "--batch-timeout",
            "3s",
            "--junit",
            report.to_str().unwrap(),
        ],
        None,
    )
    .await;
    assert_eq!(out.code, 102, "{out:?}");
    assert!(
        out.stdout
            .lines()
            .any(|l| l.contains("runaway") && l.contains("NOT RUN")),
        "{out:?}"
    );
    assert!(
        out.stdout.contains("1 of 2 cases passed, 1 not run"),
        "{out:?}"
    );
    assert!(
        out.stderr.contains("the batch hit --batch-timeout 3.0 s"),
        "{out:?}"
    );
    let doc = junit(&report);
    let suite = doc
        .descendants()
        .find(|n| n.has_tag_name("testsuite"))
        .unwrap();
    assert_eq!(
        (suite.attribute("tests"), suite.attribute("errors")),
        (Some("2"), Some("1"))
    );
    let error = doc.descendants().find(|n| n.has_tag_name("error")).unwrap();
    assert_eq!(error.parent().unwrap().attribute("name"), Some("runaway"));
    assert_eq!(error.attribute("type"), Some("NOT_RUN"));
}

#[tokio::test(flavor = "multi_thread")]
async fn no_progress_line_in_a_pipe() {
    let server = TestServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let cases = cases_file(dir.path(), ONE_WRONG);
    let out = cli(
        &server.url,
        Some(&server.admin_key),
        &["batch", &cases],
        None,
    )
    .await;
    assert_eq!(out.code, 107, "{out:?}");
    assert!(!out.stderr.contains("cases done"), "{out:?}");
    assert!(!out.stdout.contains("cases done"), "{out:?}");
}

/// Under a pseudo-terminal (`script`), the progress line is drawn.
#[tokio::test(flavor = "multi_thread")]
async fn a_progress_line_on_a_terminal() {
    if std::process::Command::new("script")
        .arg("--version")
        .output()
        .is_err()
    {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "script(1) missing"
        );
        return;
    }
    let server = TestServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let cases = cases_file(dir.path(), FAST_AND_RUNAWAY);
    let command = format!(
        "{} batch {cases} --timeout 20s --batch-timeout 2s",
        common::cli_bin().display()
    );
    let out = tokio::process::Command::new("script")
        .args(["-qec", &command, "/dev/null"])
        .env("WASMWIZ_URL", &server.url)
        .env("WASMWIZ_API_KEY", &server.admin_key)
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .output()
        .await
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("1/2 cases done"), "{text}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_wrong_answer_row_shows_the_first_differing_line() {
    let server = TestServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let cases = cases_file(dir.path(), ONE_WRONG);
    let out = cli(
        &server.url,
        Some(&server.admin_key),
        &["batch", &cases],
        None,
    )
    .await;
    assert_eq!(out.code, 107, "{out:?}");
    assert!(
        out.stdout.contains(
            r#"wrong answer: line 1 differs: expected "5\n", got "55\n" (expected 5 bytes, got 3)"#
        ),
        "{out:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_wrong_answer_in_json_has_the_mismatch() {
    let server = TestServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let cases = cases_file(dir.path(), ONE_WRONG);
    let out = cli(
        &server.url,
        Some(&server.admin_key),
        &["batch", &cases, "--json"],
        None,
    )
    .await;
    assert_eq!(out.code, 107, "{out:?}");
    let v: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    let m = &v["cases"][0]["mismatch"];
    assert_eq!(m["line"], 1);
    assert_eq!(m["expected_line"], "5\n");
    assert_eq!(m["actual_line"], "55\n");
    assert_eq!(
        (m["expected_bytes"].as_u64(), m["actual_bytes"].as_u64()),
        (Some(5), Some(3))
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_wrong_answer_in_junit_has_a_diff() {
    let server = TestServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let cases = cases_file(dir.path(), ONE_WRONG);
    let report = dir.path().join("junit.xml");
    let out = cli(
        &server.url,
        Some(&server.admin_key),
        &["batch", &cases, "--junit", report.to_str().unwrap()],
        None,
    )
    .await;
    assert_eq!(out.code, 107, "{out:?}");
    let doc = junit(&report);
    let failure = doc
        .descendants()
        .find(|n| n.has_tag_name("failure"))
        .unwrap();
    let body = failure.text().unwrap();
    assert!(
        body.contains("--- expected (5 bytes)\n+++ actual (3 bytes)\n@@ line 1 @@\n-5\n+55\n"),
        "{body}"
    );
}

/// A batch that fails before any case ran still writes its JUnit report
/// (every case an error) and exits with the error's code.
#[tokio::test(flavor = "multi_thread")]
async fn a_failed_batch_still_writes_junit() {
    let server = TestServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let cases = cases_file(dir.path(), ONE_WRONG);
    let report = dir.path().join("junit.xml");
    let out = cli(
        &server.url,
        Some(&server.admin_key),
        &[
            "batch",
            &cases,
            "--module",
            &"ab".repeat(32),
            "--junit",
            report.to_str().unwrap(),
        ],
        None,
    )
    .await;
    assert_eq!(out.code, 110, "{out:?}");
    let doc = junit(&report);
    let error = doc
        .descendants()
        .find(|n| n.has_tag_name("error"))
        .expect("the case is reported as an error");
    assert!(
        error.attribute("message").unwrap().contains("not run"),
        "{error:?}"
    );
}

/// A server whose free tier takes modules up to 2 MiB.
async fn small_module_server() -> (TestServer, String) {
    let server = TestServer::start_with(Db::Sqlite, |c| {
        c.tiers.get_mut("free").unwrap().max_module_bytes = 2 << 20;
    })
    .await;
    let key = server.create_key("small@test.local", "free", false).await;
    (server, key)
}

#[tokio::test(flavor = "multi_thread")]
async fn run_refuses_a_module_over_the_tier_limit_before_uploading() {
    let (server, key) = small_module_server().await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("big.wasm");
    std::fs::write(&path, padded_hello(3 << 20, 7)).unwrap();
    let out = cli(
        &server.url,
        Some(&key),
        &["run", path.to_str().unwrap()],
        None,
    )
    .await;
    assert_eq!(out.code, 110, "{out:?}");
    assert!(
        out.stderr
            .contains("big.wasm is 3.0 MiB; the free tier's limit is 2 MiB"),
        "{out:?}"
    );
    assert!(
        !out.stderr.contains("uploading"),
        "bytes were sent: {out:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn upload_refuses_a_module_over_the_tier_limit_before_uploading() {
    let (server, key) = small_module_server().await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("big.wasm");
    std::fs::write(&path, padded_hello(3 << 20, 7)).unwrap();
    let out = cli(
        &server.url,
        Some(&key),
        &["upload", path.to_str().unwrap()],
        None,
    )
    .await;
    assert_eq!(out.code, 110, "{out:?}");
    assert!(
        out.stderr
            .contains("big.wasm is 3.0 MiB; the free tier's limit is 2 MiB"),
        "{out:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn batch_refuses_a_module_over_the_tier_limit_before_uploading() {
    let (server, key) = small_module_server().await;
    let dir = tempfile::tempdir().unwrap();
    let module = dir.path().join("big.wasm");
    std::fs::write(&module, padded_hello(3 << 20, 7)).unwrap();
    let cases = dir.path().join("cases.json");
    std::fs::write(&cases, r#"[{"name": "hello"}]"#).unwrap();
    let out = cli(
        &server.url,
        Some(&key),
        &[
            "batch",
            cases.to_str().unwrap(),
            "--module",
            module.to_str().unwrap(),
        ],
        None,
    )
    .await;
    assert_eq!(out.code, 110, "{out:?}");
    assert!(
        out.stderr.contains("the free tier's limit is 2 MiB"),
        "{out:?}"
    );
    assert!(
        !out.stderr.contains("uploading"),
        "bytes were sent: {out:?}"
    );
}
