//! `wasmwiz submit`, `status`, `watch` and `wait` through the real binary
//! against a real server.

mod common;

use std::{
    process::Stdio,
    sync::{Arc, Mutex},
    time::Duration,
};

use common::{cli, cli_command, guest, TestServer};
use tokio::{io::AsyncReadExt, net::TcpListener, task::JoinHandle};

fn g(name: &str) -> String {
    guest(name).display().to_string()
}

/// `wasmwiz submit ARGS`: the execution id it printed.
async fn submit(server: &TestServer, args: &[&str]) -> String {
    let mut all = vec!["submit"];
    all.extend_from_slice(args);
    let out = cli(&server.url, Some(&server.admin_key), &all, None).await;
    assert_eq!(out.code, 0, "{out:?}");
    let id = out.stdout.trim().to_string();
    assert!(uuid_like(&id), "{out:?}");
    id
}

fn uuid_like(text: &str) -> bool {
    text.len() == 36 && text.chars().all(|c| c.is_ascii_hexdigit() || c == '-')
}

#[tokio::test(flavor = "multi_thread")]
async fn wait_exits_with_the_guest_code_and_prints_its_output() {
    let server = TestServer::start().await;
    let id = submit(&server, &["--arg", "7", &g("exitcode.wasm")]).await;
    let out = cli(&server.url, Some(&server.admin_key), &["wait", &id], None).await;
    assert_eq!(out.code, 7, "{out:?}");
    assert_eq!(out.stdout, "exiting with 7\n");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_piped_stdin_is_submitted_whole() {
    let server = TestServer::start().await;
    let out = cli(
        &server.url,
        Some(&server.admin_key),
        &["submit", &g("echo.wasm")],
        Some(b"piped input"),
    )
    .await;
    assert_eq!(out.code, 0, "{out:?}");
    let id = out.stdout.trim();
    let out = cli(&server.url, Some(&server.admin_key), &["wait", id], None).await;
    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(out.stdout, "piped input");
}

#[tokio::test(flavor = "multi_thread")]
async fn submit_json_prints_the_id_as_json() {
    let server = TestServer::start().await;
    let out = cli(
        &server.url,
        Some(&server.admin_key),
        &["submit", "--json", &g("hello.wasm")],
        None,
    )
    .await;
    assert_eq!(out.code, 0, "{out:?}");
    let json: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    assert!(uuid_like(json["execution_id"].as_str().unwrap()), "{json}");
}

#[tokio::test(flavor = "multi_thread")]
async fn status_shows_the_state_outcome_and_attempts() {
    let server = TestServer::start().await;
    let id = submit(&server, &[&g("hello.wasm")]).await;
    let key = Some(server.admin_key.as_str());
    assert_eq!(cli(&server.url, key, &["wait", &id], None).await.code, 0);
    let out = cli(&server.url, key, &["status", &id], None).await;
    assert_eq!(out.code, 0, "{out:?}");
    assert!(out.stdout.contains("state      finished"), "{out:?}");
    assert!(out.stdout.contains("attempts   1"), "{out:?}");
    assert!(out.stdout.contains("outcome    exited 0"), "{out:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn status_json_has_the_state_and_the_outcome() {
    let server = TestServer::start().await;
    let id = submit(&server, &["--arg", "3", &g("exitcode.wasm")]).await;
    let key = Some(server.admin_key.as_str());
    assert_eq!(cli(&server.url, key, &["wait", &id], None).await.code, 3);
    let out = cli(&server.url, key, &["status", "--json", &id], None).await;
    assert_eq!(out.code, 0, "{out:?}");
    let json: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(json["state"], "finished");
    assert_eq!(json["attempts"], 1);
    assert_eq!(json["finished"]["exit_code"], 3);
    assert_eq!(json["webhook_attempts"], serde_json::json!([]));
}

#[tokio::test(flavor = "multi_thread")]
async fn watch_streams_a_submitted_run_and_exits_with_its_code() {
    let server = TestServer::start().await;
    let id = submit(&server, &["--arg", "3", &g("progress.wasm")]).await;
    let out = cli(&server.url, Some(&server.admin_key), &["watch", &id], None).await;
    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(out.stdout, "tick 0\ntick 1\ntick 2\ndone\n");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_unknown_id_is_a_usage_error() {
    let server = TestServer::start().await;
    let unknown = "01890000-0000-7000-8000-000000000000";
    let out = cli(
        &server.url,
        Some(&server.admin_key),
        &["wait", unknown],
        None,
    )
    .await;
    assert_eq!(out.code, 110, "{out:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn submit_refuses_an_interactive_run() {
    let server = TestServer::start().await;
    let out = cli(
        &server.url,
        Some(&server.admin_key),
        &["submit", "-i", &g("calc.wasm")],
        None,
    )
    .await;
    assert_eq!(out.code, 110, "{out:?}");
    assert!(out.stderr.contains("-i"), "{out:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_webhook_to_loopback_is_refused_at_submit() {
    // The default server settings allow no private or loopback receivers.
    let server = TestServer::start().await;
    let out = cli(
        &server.url,
        Some(&server.admin_key),
        &[
            "submit",
            "--webhook",
            "https://127.0.0.1:9/hook",
            &g("hello.wasm"),
        ],
        None,
    )
    .await;
    assert_eq!(out.code, 110, "{out:?}");
    assert!(out.stderr.contains("loopback"), "{out:?}");
}

/// A TCP proxy to `target` whose open connections can be cut at once
/// (new ones are still accepted).
struct Proxy {
    url: String,
    open: Arc<Mutex<Vec<JoinHandle<()>>>>,
}

impl Proxy {
    async fn start(target: std::net::SocketAddr) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let open: Arc<Mutex<Vec<JoinHandle<()>>>> = Arc::default();
        let conns = open.clone();
        tokio::spawn(async move {
            loop {
                let (mut inbound, _) = listener.accept().await.unwrap();
                let relay = tokio::spawn(async move {
                    if let Ok(mut outbound) = tokio::net::TcpStream::connect(target).await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                });
                conns.lock().unwrap().push(relay);
            }
        });
        Proxy { url, open }
    }

    /// Drops every open connection (both sides see it closed).
    fn cut(&self) {
        for relay in self.open.lock().unwrap().drain(..) {
            relay.abort();
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn watch_reconnects_after_a_dropped_connection_and_prints_nothing_twice() {
    let server = TestServer::start().await;
    let id = submit(
        &server,
        &["--timeout", "100s", "--arg", "8", &g("progress.wasm")],
    )
    .await;
    let proxy = Proxy::start(server.addr).await;
    let mut child = cli_command(&proxy.url, Some(&server.admin_key))
        .args(["watch", &id])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = child.stdout.take().unwrap();
    let mut seen = Vec::new();
    let mut buf = [0u8; 256];
    while !seen.starts_with(b"tick 0\n") {
        let n = tokio::time::timeout(Duration::from_secs(60), stdout.read(&mut buf))
            .await
            .expect("the first tick within 60 s")
            .unwrap();
        assert!(n > 0, "stdout ended early: {seen:?}");
        seen.extend_from_slice(&buf[..n]);
    }
    proxy.cut();
    stdout.read_to_end(&mut seen).await.unwrap();
    let out = child.wait_with_output().await.unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert_eq!(
        String::from_utf8_lossy(&seen),
        "tick 0\ntick 1\ntick 2\ntick 3\ntick 4\ntick 5\ntick 6\ntick 7\ndone\n"
    );
    assert!(stderr.contains("reconnecting"), "{stderr}");
}
