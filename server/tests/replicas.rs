//! Two server processes on one PostgreSQL and one (private) Redis: shared
//! modules, keys, limits and usage; Redis failure and recovery; SIGTERM of
//! one replica under load.

mod support;

use std::{
    io::{BufRead, BufReader},
    net::TcpListener as StdListener,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use support::*;
use tonic::Code;
use wasmwiz_proto::v1;

const PEPPER: &str = "replica-test-pepper-0123456789";

fn free_port() -> u16 {
    StdListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A private redis-server on its own port, so the test can stop it.
struct PrivateRedis {
    child: Child,
    port: u16,
}

impl PrivateRedis {
    fn start(port: u16) -> Self {
        let child = Command::new("redis-server")
            .args([
                "--port",
                &port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .stdout(Stdio::null())
            .spawn()
            .expect("redis-server is installed");
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "redis-server did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
        Self { child, port }
    }

    fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for PrivateRedis {
    fn drop(&mut self) {
        self.stop();
    }
}

struct Replica {
    child: Child,
    url: String,
}

impl Drop for Replica {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn replica(database_url: &str, redis_port: u16, dir: &std::path::Path) -> Replica {
    let mut child = Command::new(env!("CARGO_BIN_EXE_wasmwiz-server"))
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(dir)
        .args([
            "--database-url",
            database_url,
            "--redis-url",
            &format!("redis://127.0.0.1:{redis_port}"),
        ])
        .env("WASMWIZ_PEPPER", PEPPER)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let url = loop {
        let line = lines.next().expect("replica printed its address").unwrap();
        if let Some(rest) = line.split("listening on ").nth(1) {
            break rest.split_whitespace().next().unwrap().to_string();
        }
    };
    std::thread::spawn(move || for _ in lines {});
    Replica { child, url }
}

fn create_key(
    database_url: &str,
    dir: &std::path::Path,
    email: &str,
    tier: &str,
    admin: bool,
) -> String {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_wasmwiz-server"));
    cmd.args([
        "admin",
        "create-key",
        "--email",
        email,
        "--tier",
        tier,
        "--database-url",
        database_url,
        "--data-dir",
    ])
    .arg(dir)
    .env("WASMWIZ_PEPPER", PEPPER);
    if admin {
        cmd.arg("--admin");
    }
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .last()
        .unwrap()
        .trim()
        .to_string()
}

async fn metrics(url: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let addr = url.trim_start_matches("http://");
    let mut tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    tcp.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut out = String::new();
    tcp.read_to_string(&mut out).await.unwrap();
    out
}

/// Sequential hello runs alternating between replicas; how many were admitted.
async fn admitted(replicas: &mut [Clients], attempts: usize) -> usize {
    let mut ok = 0;
    for i in 0..attempts {
        let c = &mut replicas[i % replicas.len()];
        match run(c, run_bytes(guest("hello"))).await {
            Ok(r) => {
                assert_eq!(r.outcome(), v1::Outcome::Success);
                ok += 1;
            }
            Err(status) => assert_eq!(status.code(), Code::ResourceExhausted, "{status:?}"),
        }
    }
    ok
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_replicas_share_state_limits_and_survive_redis_and_sigterm() {
    if !postgres_available().await {
        eprintln!("PostgreSQL is not reachable here; run with CI=true to require it");
        return;
    }
    let database_url = wasmwiz_server::testing::fresh_postgres_database()
        .await
        .unwrap();
    let mut redis = PrivateRedis::start(free_port());
    let (dir_a, dir_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let admin_key = create_key(&database_url, dir_a.path(), "ops@x.io", "unlimited", true);
    let mut a = replica(&database_url, redis.port, dir_a.path());
    let b = replica(&database_url, redis.port, dir_b.path());
    let mut admin_a = connect(&a.url, &admin_key).await;
    let mut admin_b = connect(&b.url, &admin_key).await;

    // A module uploaded through one replica runs on the other.
    let info = admin_a
        .modules
        .put_module(v1::PutModuleRequest {
            module: guest("hello"),
            sha256: None,
        })
        .await
        .unwrap()
        .into_inner();
    let r = run(&mut admin_b, run_sha(&info.sha256)).await.unwrap();
    assert_eq!(r.stdout, b"Hello, WasmWiz!\n");

    // 30 free-tier executions spread over both replicas: exactly 10 admitted.
    let free = create_key(&database_url, dir_a.path(), "free@x.io", "free", false);
    let mut both = vec![connect(&a.url, &free).await, connect(&b.url, &free).await];
    assert_eq!(admitted(&mut both, 30).await, 10);

    // A key revoked through one replica is refused by the other within 5 s.
    let doomed = create_key(&database_url, dir_a.path(), "doomed@x.io", "basic", false);
    let mut doomed_b = connect(&b.url, &doomed).await;
    doomed_b
        .account
        .who_am_i(v1::WhoAmIRequest {})
        .await
        .unwrap();
    let key_id = doomed.split('_').nth(1).unwrap().to_string();
    admin_a
        .admin
        .revoke_api_key(v1::RevokeApiKeyRequest { key_id })
        .await
        .unwrap();
    let revoked = Instant::now();
    loop {
        match doomed_b.account.who_am_i(v1::WhoAmIRequest {}).await {
            Err(s) if s.code() == Code::Unauthenticated => break,
            _ => {
                assert!(
                    revoked.elapsed() < Duration::from_secs(5),
                    "still accepted after 5 s"
                );
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }

    // Both replicas have announced themselves (heartbeat every 3 s).
    tokio::time::sleep(Duration::from_secs(4)).await;
    // Redis stops: requests are still served, each replica at its fair share (10 / 2).
    redis.stop();
    let fallback = create_key(&database_url, dir_a.path(), "fallback@x.io", "free", false);
    let mut both = vec![
        connect(&a.url, &fallback).await,
        connect(&b.url, &fallback).await,
    ];
    assert_eq!(
        admitted(&mut both, 20).await,
        10,
        "5 per replica while Redis is down"
    );
    for url in [&a.url, &b.url] {
        let text = metrics(url).await;
        assert!(text.contains("wasmwiz_redis_fallback_active 1"), "{text}");
        assert!(
            !text.contains("wasmwiz_redis_fallback_decisions_total 0\n"),
            "{text}"
        );
    }

    // Redis is back: shared limits again.
    let port = redis.port;
    let _redis = PrivateRedis::start(port);
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (ma, mb) = (metrics(&a.url).await, metrics(&b.url).await);
        if ma.contains("wasmwiz_redis_fallback_active 0")
            && mb.contains("wasmwiz_redis_fallback_active 0")
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "replicas did not return to Redis"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let shared = create_key(&database_url, dir_a.path(), "shared@x.io", "free", false);
    let mut both = vec![
        connect(&a.url, &shared).await,
        connect(&b.url, &shared).await,
    ];
    assert_eq!(admitted(&mut both, 16).await, 10);

    // SIGTERM to one replica under load: nothing lost, nothing doubled.
    let before = admin_b
        .admin
        .get_usage(v1::GetUsageRequest::default())
        .await
        .unwrap()
        .into_inner()
        .executions;
    let mut streams = Vec::new();
    for i in 0..40 {
        let c = if i % 2 == 0 {
            &mut admin_a
        } else {
            &mut admin_b
        };
        let mut req = run_bytes(guest("hash"));
        req.args = vec!["1".into()];
        let mut stream = c.exec.run(req).await.unwrap().into_inner();
        stream.message().await.unwrap().expect("started");
        streams.push(stream);
        if i == 20 {
            Command::new("kill")
                .args(["-TERM", &a.child.id().to_string()])
                .status()
                .unwrap();
            break;
        }
    }
    let started = streams.len() as u64;
    let results = futures::future::join_all(streams.into_iter().map(collect)).await;
    assert!(results
        .iter()
        .all(|r| r.as_ref().unwrap().outcome() == v1::Outcome::Success));
    assert!(a.child.wait().unwrap().success());
    let after = admin_b
        .admin
        .get_usage(v1::GetUsageRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        after.executions - before,
        started,
        "one record per admitted execution"
    );
    assert!(
        !after.by_outcome.contains_key("RUNNING"),
        "{:?}",
        after.by_outcome
    );
    drop(b);
}

/// An interactive run's first event and its id.
async fn start_interactive(c: &mut Clients) -> (tonic::Streaming<v1::ExecuteEvent>, String) {
    let request = v1::RunRequest {
        interactive: true,
        ..run_bytes(guest("echo"))
    };
    let mut stream = c.exec.run(request).await.unwrap().into_inner();
    match stream.message().await.unwrap().unwrap().event.unwrap() {
        v1::execute_event::Event::Started(started) => (stream, started.execution_id),
        other => panic!("expected started, got {other:?}"),
    }
}

async fn write_stdin(
    c: &mut Clients,
    id: &str,
    data: &[u8],
    eof: bool,
) -> Result<(), tonic::Status> {
    c.exec
        .write_stdin(v1::WriteStdinRequest {
            execution_id: id.to_string(),
            data: data.to_vec(),
            eof,
        })
        .await
        .map(|_| ())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn write_stdin_through_the_other_replica_reaches_the_guest() {
    if !postgres_available().await {
        eprintln!("PostgreSQL is not reachable here; run with CI=true to require it");
        return;
    }
    let database_url = wasmwiz_server::testing::fresh_postgres_database()
        .await
        .unwrap();
    let redis = PrivateRedis::start(free_port());
    let (dir_a, dir_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let alice = create_key(&database_url, dir_a.path(), "alice@x.io", "free", false);
    let mallory = create_key(&database_url, dir_a.path(), "mallory@x.io", "free", false);
    let a = replica(&database_url, redis.port, dir_a.path());
    let b = replica(&database_url, redis.port, dir_b.path());
    let mut on_a = connect(&a.url, &alice).await;
    let mut on_b = connect(&b.url, &alice).await;
    let mut mallory_b = connect(&b.url, &mallory).await;

    // Runs on A; every write lands on B, in order.
    let (stream, id) = start_interactive(&mut on_a).await;
    let mut expected = Vec::new();
    for i in 0..20 {
        let line = format!("line {i}\n");
        write_stdin(&mut on_b, &id, line.as_bytes(), false)
            .await
            .unwrap();
        expected.extend_from_slice(line.as_bytes());
    }
    // Another account through B: NOT_FOUND, as for an unknown id.
    let theirs = write_stdin(&mut mallory_b, &id, b"x", false)
        .await
        .unwrap_err();
    assert_eq!(theirs.code(), Code::NotFound, "{theirs:?}");
    let unknown = write_stdin(
        &mut on_b,
        "0190f000-0000-7000-8000-000000000000",
        b"x",
        false,
    )
    .await
    .unwrap_err();
    assert_eq!(unknown.code(), Code::NotFound, "{unknown:?}");
    write_stdin(&mut on_b, &id, b"", true).await.unwrap();
    let end = collect(stream).await.unwrap();
    assert_eq!(end.outcome(), v1::Outcome::Success);
    assert_eq!(end.stdout, expected);
    // After the end, through B: FAILED_PRECONDITION.
    let late = write_stdin(&mut on_b, &id, b"late", false)
        .await
        .unwrap_err();
    assert_eq!(late.code(), Code::FailedPrecondition, "{late:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_routed_write_past_the_stdin_limit_keeps_its_bad_request_details() {
    if !postgres_available().await {
        eprintln!("PostgreSQL is not reachable here; run with CI=true to require it");
        return;
    }
    let database_url = wasmwiz_server::testing::fresh_postgres_database()
        .await
        .unwrap();
    let redis = PrivateRedis::start(free_port());
    let (dir_a, dir_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let alice = create_key(&database_url, dir_a.path(), "alice@x.io", "free", false);
    let a = replica(&database_url, redis.port, dir_a.path());
    let b = replica(&database_url, redis.port, dir_b.path());
    let mut on_a = connect(&a.url, &alice).await;
    let mut on_b = connect(&b.url, &alice).await;
    let (stream, id) = start_interactive(&mut on_a).await;
    // The echoed MiB is read meanwhile, so the guest keeps reading stdin.
    let output = tokio::spawn(collect(stream));
    // The free tier's stdin is 1 MiB: one full write, then one byte more.
    write_stdin(&mut on_b, &id, &vec![b'a'; 1 << 20], false)
        .await
        .unwrap();
    let refused = write_stdin(&mut on_b, &id, b"b", false).await.unwrap_err();
    assert_bad_request(&refused, "data");
    let ended = output.await.unwrap().unwrap_err();
    assert_bad_request(&ended, "stdin");
}
