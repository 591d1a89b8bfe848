//! The CLI as a Unix tool, through the real binary against a real server:
//! piped stdin, the guest's argv after the module, WAT files, and URL/TLS
//! mistakes in words.

mod common;

use std::{process::Stdio, time::Duration};

use common::{cli, cli_command, guest, TestServer};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use wasmwiz_server::testing::Db;

fn g(name: &str) -> String {
    guest(name).display().to_string()
}

/// A WAT guest that prints "hi from wat\n" (fd_write of one iovec).
const HELLO_WAT: &str = r#";; prints a greeting
(module
  (import "wasi_snapshot_preview1" "fd_write"
    (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (data (i32.const 16) "hi from wat\n")
  (func (export "_start")
    (i32.store (i32.const 0) (i32.const 16))
    (i32.store (i32.const 4) (i32.const 12))
    (drop (call $fd_write (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8)))))
"#;

#[tokio::test(flavor = "multi_thread")]
async fn piped_stdin_is_the_guests_stdin() {
    let server = TestServer::start().await;
    let out = cli(
        &server.url,
        Some(&server.admin_key),
        &["run", &g("echo.wasm")],
        Some(b"hi\n"),
    )
    .await;
    assert_eq!((out.code, out.stdout.as_str()), (0, "hi\n"), "{out:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn no_stdin_ignores_a_pipe() {
    let server = TestServer::start().await;
    let out = cli(
        &server.url,
        Some(&server.admin_key),
        &["run", "--no-stdin", &g("echo.wasm")],
        Some(b"ignored\n"),
    )
    .await;
    assert_eq!((out.code, out.stdout.as_str()), (0, ""), "{out:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn stdin_file_wins_over_a_pipe() {
    let server = TestServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.txt");
    std::fs::write(&input, "from the file\n").unwrap();
    let out = cli(
        &server.url,
        Some(&server.admin_key),
        &["run", "--stdin", input.to_str().unwrap(), &g("echo.wasm")],
        Some(b"from the pipe\n"),
    )
    .await;
    assert_eq!(out.stdout, "from the file\n", "{out:?}");
}

/// The guest's output for the first line arrives while the pipe is still
/// open: stdin is streamed, not read to the end first.
#[tokio::test(flavor = "multi_thread")]
async fn piped_stdin_streams_before_the_input_ends() {
    let server = TestServer::start().await;
    let mut child = cli_command(&server.url, Some(&server.admin_key))
        .args(["run", &g("echo.wasm")])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(b"first line\n").await.unwrap();
    stdin.flush().await.unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let first = tokio::time::timeout(Duration::from_secs(60), lines.next_line())
        .await
        .expect("the first line came back while stdin was open")
        .unwrap();
    assert_eq!(first.as_deref(), Some("first line"));
    assert!(child.try_wait().unwrap().is_none(), "exited before EOF");
    stdin.write_all(b"second line\n").await.unwrap();
    drop(stdin);
    assert_eq!(
        lines.next_line().await.unwrap().as_deref(),
        Some("second line")
    );
    assert_eq!(child.wait().await.unwrap().code(), Some(0));
}

/// A guest that never reads stdin finishes even though the pipe feeding
/// wasmwiz stays open (as a CI runner's may).
#[tokio::test(flavor = "multi_thread")]
async fn an_open_pipe_does_not_hold_a_guest_that_ignores_stdin() {
    let server = TestServer::start().await;
    let mut child = cli_command(&server.url, Some(&server.admin_key))
        .args(["run", &g("hello.wasm")])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdin = child.stdin.take().unwrap();
    let status = tokio::time::timeout(Duration::from_secs(60), child.wait())
        .await
        .expect("wasmwiz exited with its stdin still open")
        .unwrap();
    assert_eq!(status.code(), Some(0));
    drop(stdin);
}

/// The CLI's peak resident memory after `input` bytes went through it,
/// read while its stdin is still open.
async fn peak_rss_after_piping(server: &TestServer, input: usize) -> u64 {
    let mut child = cli_command(&server.url, Some(&server.admin_key))
        .args(["run", &g("echo.wasm")])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let pid = child.id().unwrap();
    let mut stdout = child.stdout.take().unwrap();
    let drain = tokio::spawn(async move {
        let mut sink = tokio::io::sink();
        tokio::io::copy(&mut stdout, &mut sink).await.unwrap()
    });
    let mut stdin = child.stdin.take().unwrap();
    let chunk = vec![b'x'; 1 << 20];
    let mut sent = 0;
    while sent < input {
        let n = chunk.len().min(input - sent);
        stdin.write_all(&chunk[..n]).await.unwrap();
        sent += n;
    }
    stdin.flush().await.unwrap();
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let hwm_kib: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmHWM in /proc/PID/status");
    drop(stdin);
    assert_eq!(child.wait().await.unwrap().code(), Some(0));
    assert_eq!(drain.await.unwrap(), input as u64);
    hwm_kib * 1024
}

/// 64 MiB through `wasmwiz run` raise its peak memory by far less than
/// 64 MiB over a run with 1 MiB: the pipe is streamed in chunks.
#[tokio::test(flavor = "multi_thread")]
async fn a_big_pipe_streams_in_bounded_memory() {
    let server = TestServer::start().await;
    let small = peak_rss_after_piping(&server, 1 << 20).await;
    let big = peak_rss_after_piping(&server, 64 << 20).await;
    eprintln!("peak RSS: {small} B after 1 MiB, {big} B after 64 MiB");
    assert!(
        big < small + (16 << 20),
        "peak RSS {big} B with 64 MiB piped vs {small} B with 1 MiB"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn arguments_after_the_module_are_the_guests() {
    let server = TestServer::start().await;
    let out = cli(
        &server.url,
        Some(&server.admin_key),
        &["run", &g("exitcode.wasm"), "3"],
        None,
    )
    .await;
    assert_eq!(out.code, 3, "{out:?}");
    assert_eq!(out.stdout, "exiting with 3\n");
}

#[tokio::test(flavor = "multi_thread")]
async fn flag_like_arguments_after_the_module_go_to_the_guest() {
    let server = TestServer::start().await;
    let out = cli(
        &server.url,
        Some(&server.admin_key),
        &["run", &g("argsenv.wasm"), "--verbose", "-x"],
        None,
    )
    .await;
    assert_eq!(out.code, 0, "{out:?}");
    let argv: Vec<&str> = out
        .stdout
        .lines()
        .filter(|l| l.starts_with("argv["))
        .collect();
    assert_eq!(
        argv,
        ["argv[0]=main.wasm", "argv[1]=--verbose", "argv[2]=-x"]
    );
    assert_eq!(out.stderr, "", "--verbose reached wasmwiz: {out:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_double_dash_after_the_module_only_separates() {
    let server = TestServer::start().await;
    let out = cli(
        &server.url,
        Some(&server.admin_key),
        &["run", "--arg", "first", &g("argsenv.wasm"), "--", "-v"],
        None,
    )
    .await;
    let argv: Vec<&str> = out
        .stdout
        .lines()
        .filter(|l| l.starts_with("argv["))
        .collect();
    assert_eq!(argv, ["argv[0]=main.wasm", "argv[1]=first", "argv[2]=-v"]);
}

#[tokio::test(flavor = "multi_thread")]
async fn wat_text_is_compiled_here_whatever_its_extension() {
    let server = TestServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("hello.txt");
    std::fs::write(&path, HELLO_WAT).unwrap();
    let out = cli(
        &server.url,
        Some(&server.admin_key),
        &["run", path.to_str().unwrap()],
        None,
    )
    .await;
    assert_eq!(
        (out.code, out.stdout.as_str(), out.stderr.as_str()),
        (0, "hi from wat\n", ""),
        "{out:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn verbose_says_wat_was_compiled() {
    let server = TestServer::start().await;
    let out = cli(
        &server.url,
        Some(&server.admin_key),
        &["run", "-v", &g("trap.wat")],
        None,
    )
    .await;
    assert_eq!(out.code, 103, "{out:?}");
    assert!(
        out.stderr
            .contains("trap.wat is WAT text; compiled it here"),
        "{out:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn wat_that_does_not_compile_is_a_usage_error_with_its_position() {
    let server = TestServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("broken.wat");
    std::fs::write(
        &path,
        "(module\n  (func (export \"_start\") (i32.bogus)))\n",
    )
    .unwrap();
    let out = cli(
        &server.url,
        Some(&server.admin_key),
        &["run", path.to_str().unwrap()],
        None,
    )
    .await;
    assert_eq!(out.code, 110, "{out:?}");
    assert!(
        out.stderr.contains("is WAT text that does not compile") && out.stderr.contains(":2:"),
        "{out:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn https_against_a_plaintext_server_says_it_does_not_speak_tls() {
    let server = TestServer::start().await;
    let url = format!("https://127.0.0.1:{}", server.addr.port());
    let out = cli(&url, Some(&server.admin_key), &["whoami"], None).await;
    assert_eq!(out.code, 111, "{out:?}");
    assert!(
        out.stderr.contains("the server does not speak TLS")
            && out
                .stderr
                .contains(&format!("use http://127.0.0.1:{}", server.addr.port())),
        "{out:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn http_against_a_tls_server_says_it_expects_tls() {
    let cert = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (cert_path, key_path) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    std::fs::write(&cert_path, cert.cert.pem()).unwrap();
    std::fs::write(&key_path, cert.signing_key.serialize_pem()).unwrap();
    let server = TestServer::start_with(Db::Sqlite, |c| {
        c.tls_cert = Some(cert_path.clone());
        c.tls_key = Some(key_path.clone());
    })
    .await;
    let url = format!("http://localhost:{}", server.addr.port());
    let out = cli(&url, Some(&server.admin_key), &["whoami"], None).await;
    assert_eq!(out.code, 111, "{out:?}");
    assert!(
        out.stderr.contains("it probably expects TLS") && out.stderr.contains("use https://"),
        "{out:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_malformed_url_is_a_usage_error() {
    for url in [
        "localhost:8080",
        "http//typo",
        "ftp://host",
        "http://host:1/path",
    ] {
        let out = cli(url, Some("wwz_x"), &["whoami"], None).await;
        assert_eq!(out.code, 110, "{url}: {out:?}");
        assert!(out.stderr.contains("is not a server URL"), "{url}: {out:?}");
    }
}
