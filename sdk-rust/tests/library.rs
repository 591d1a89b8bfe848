//! Every library call against a real server started by the test.

mod common;

use std::time::{Duration, Instant};

use common::{client, guest, guest_bytes, TestServer};
use futures::StreamExt;
use wasmwiz::{
    util::sha256_hex, Case, Code, Error, Event, Limits, Module, NewKey, Outcome, Verdict,
};

#[tokio::test(flavor = "multi_thread")]
async fn run_collects_output_and_costs() {
    let server = TestServer::start().await;
    let client = client(&server, &server.admin_key).await;
    let output = client
        .run(Module::file(guest("hello.wasm")))
        .output()
        .await
        .unwrap();
    assert_eq!(output.stdout, b"Hello, WasmWiz!\n");
    assert!(output.stderr.is_empty());
    assert_eq!(output.outcome, Outcome::Success);
    assert_eq!(output.exit_code, 0);
    assert!(output.fuel_consumed > 0);
    assert!(output.duration > Duration::ZERO);
    assert!(output.memory_peak_bytes > 0);
    assert_eq!(output.verdict, Verdict::None);
    assert!(output.passed());
    assert_eq!(
        output.started.module_sha256,
        sha256_hex(&guest_bytes("hello.wasm"))
    );
    assert!(!output.started.execution_id.is_empty());
    assert!(output.started.limits.fuel.unwrap() > 0);

    // Same module from bytes: same fuel (deterministic), cached this time.
    let again = client
        .run(Module::bytes(guest_bytes("hello.wasm")))
        .output()
        .await
        .unwrap();
    assert_eq!(again.fuel_consumed, output.fuel_consumed);
    assert!(again.started.cache_hit);
}

#[tokio::test(flavor = "multi_thread")]
async fn run_options_reach_the_guest() {
    let server = TestServer::start().await;
    let client = client(&server, &server.admin_key).await;
    let output = client
        .run(Module::file(guest("argsenv.wasm")))
        .program_name("prog")
        .args(["one", "two words"])
        .arg("-3")
        .env([("ALPHA", "1")])
        .output()
        .await
        .unwrap();
    let text = output.stdout_lossy();
    assert!(text.contains("argv[0]=prog\n"), "{text}");
    assert!(text.contains("argv[1]=one\n"), "{text}");
    assert!(text.contains("argv[2]=two words\n"), "{text}");
    assert!(text.contains("argv[3]=-3\n"), "{text}");
    assert!(text.contains("env:ALPHA=1\n"), "{text}");

    // stderr is kept apart.
    let output = client
        .run(Module::file(guest("stderr.wasm")))
        .output()
        .await
        .unwrap();
    assert_eq!(output.stdout, b"to stdout\n");
    assert_eq!(output.stderr, b"to stderr\n");

    // The seed decides the guest's random bytes.
    let random = |seed| {
        let client = client.clone();
        async move {
            let out = client
                .run(Module::file(guest("clockrand.wasm")))
                .seed(seed)
                .output()
                .await
                .unwrap();
            out.stdout_lossy()
                .lines()
                .find(|l| l.starts_with("random="))
                .unwrap()
                .to_string()
        }
    };
    assert_eq!(random(7).await, random(7).await);
    assert_ne!(random(7).await, random(8).await);
}

#[tokio::test(flavor = "multi_thread")]
async fn stdin_as_bytes_and_as_a_stream() {
    let server = TestServer::start().await;
    let client = client(&server, &server.admin_key).await;
    let output = client
        .run(Module::file(guest("echo.wasm")))
        .stdin("some input\n")
        .output()
        .await
        .unwrap();
    assert_eq!(output.stdout, b"some input\n");

    // Streamed stdin: the guest's reads wait for each chunk.
    let chunks = futures::stream::iter(0..5).then(|i| async move {
        tokio::time::sleep(Duration::from_millis(30)).await;
        bytes::Bytes::from(format!("chunk {i}\n"))
    });
    let output = client
        .run(Module::file(guest("echo.wasm")))
        .stdin_stream(chunks)
        .output()
        .await
        .unwrap();
    assert_eq!(
        output.stdout_lossy(),
        "chunk 0\nchunk 1\nchunk 2\nchunk 3\nchunk 4\n"
    );

    // From a reader.
    let reader = std::io::Cursor::new(vec![b'x'; 200_000]);
    let output = client
        .run(Module::file(guest("echo.wasm")))
        .stdin_reader(reader)
        .output()
        .await
        .unwrap();
    assert_eq!(output.stdout.len(), 200_000);

    // Streamed stdin past the tier's 1 MiB (free) ends the run with an
    // error naming the field and the maximum, not a silently cut input.
    let free = server.create_key("stdin@test.local", "free", false).await;
    let free_client = common::client(&server, &free).await;
    let error = free_client
        .run(Module::file(guest("echo.wasm")))
        .stdin_reader(std::io::Cursor::new(vec![b'x'; 2 << 20]))
        .output()
        .await
        .unwrap_err();
    assert_eq!(error.code(), tonic::Code::InvalidArgument, "{error}");
    let api = error.api().expect("an API error");
    assert!(
        api.field_violations().iter().any(|v| v.field == "stdin"),
        "{:?}",
        api.field_violations()
    );
    assert!(api.message().contains("1048576"), "{}", api.message());
}

#[tokio::test(flavor = "multi_thread")]
async fn expect_stdout_gives_a_verdict() {
    let server = TestServer::start().await;
    let client = client(&server, &server.admin_key).await;
    let ok = client
        .run(Module::file(guest("fib.wasm")))
        .stdin("10\n")
        .expect_stdout("55\n")
        .output()
        .await
        .unwrap();
    assert_eq!(ok.verdict, Verdict::Accepted);
    assert!(ok.passed());
    let wrong = client
        .run(Module::file(guest("fib.wasm")))
        .stdin("10\n")
        .expect_stdout("56\n")
        .output()
        .await
        .unwrap();
    assert_eq!(wrong.outcome, Outcome::Success);
    assert_eq!(wrong.verdict, Verdict::WrongAnswer);
    assert!(!wrong.passed());
}

#[tokio::test(flavor = "multi_thread")]
async fn every_outcome() {
    let server = TestServer::start().await;
    let client = client(&server, &server.admin_key).await;
    let run = |name: &str| client.run(Module::file(guest(name)));

    let out = run("exitcode.wasm").arg("3").output().await.unwrap();
    assert_eq!((out.outcome, out.exit_code), (Outcome::ExitNonzero, 3));

    let out = run("loop.wasm")
        .limits(Limits::new().fuel(1_000_000))
        .output()
        .await
        .unwrap();
    assert_eq!((out.outcome, out.exit_code), (Outcome::OutOfFuel, -1));
    assert_eq!(out.fuel_consumed, 1_000_000);

    let out = run("loop.wasm")
        .limits(Limits::new().timeout(Duration::from_millis(300)))
        .output()
        .await
        .unwrap();
    assert_eq!((out.outcome, out.exit_code), (Outcome::Timeout, -1));

    let out = run("trap.wasm").output().await.unwrap();
    assert_eq!(out.outcome, Outcome::Trap);
    assert_eq!(out.trap_kind, "unreachable");

    let out = run("memhog.wasm")
        .arg("64")
        .limits(Limits::new().memory_bytes(16 << 20))
        .output()
        .await
        .unwrap();
    assert_eq!(out.outcome, Outcome::MemoryLimit, "{out:?}");

    let out = run("echo.wasm")
        .stdin(vec![b'y'; 10_000])
        .limits(Limits::new().max_output_bytes(1000))
        .output()
        .await
        .unwrap();
    assert_eq!(out.outcome, Outcome::OutputLimit);
    assert!(out.output_truncated);
    assert_eq!(out.stdout.len(), 1000);
}

#[tokio::test(flavor = "multi_thread")]
async fn stream_delivers_output_before_the_run_finishes() {
    let server = TestServer::start().await;
    let client = client(&server, &server.admin_key).await;
    let mut events = client
        .run(Module::file(guest("progress.wasm")))
        .arg("6")
        .stream()
        .await
        .unwrap();
    let mut order = Vec::new();
    let mut first_stdout_at = None;
    let mut finished_at = None;
    let mut stdout = Vec::new();
    while let Some(event) = events.next().await {
        match event.unwrap() {
            Event::Started(s) => {
                assert!(!s.execution_id.is_empty());
                order.push("started");
            }
            Event::Stdout(chunk) => {
                first_stdout_at.get_or_insert_with(Instant::now);
                stdout.extend_from_slice(&chunk);
                if order.last() != Some(&"stdout") {
                    order.push("stdout");
                }
            }
            Event::Stderr(_) => order.push("stderr"),
            Event::File(_) => order.push("file"),
            Event::Finished(f) => {
                finished_at = Some(Instant::now());
                assert_eq!(f.outcome, Outcome::Success);
                order.push("finished");
            }
        }
    }
    assert_eq!(order, ["started", "stdout", "finished"]);
    assert!(String::from_utf8_lossy(&stdout).ends_with("tick 5\ndone\n"));
    // The first tick arrived while the guest was still burning CPU for the
    // other five.
    let gap = finished_at.unwrap() - first_stdout_at.unwrap();
    assert!(
        gap > Duration::from_millis(50),
        "output came only {gap:?} before the end"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn module_calls() {
    let server = TestServer::start().await;
    let client = client(&server, &server.admin_key).await;
    let hello = guest_bytes("hello.wasm");
    let sha = sha256_hex(&hello);

    let info = client.upload(Module::bytes(hello.clone())).await.unwrap();
    assert_eq!(info.sha256, sha);
    assert_eq!(info.size, hello.len() as u64);
    assert!(!info.already_existed);
    assert!(info.exports.iter().any(|e| e.name == "_start"));
    assert!(info
        .imports
        .iter()
        .all(|i| i.module == "wasi_snapshot_preview1"));

    let again = client.upload(Module::bytes(hello.clone())).await.unwrap();
    assert!(again.already_existed);
    let forced = client
        .upload(Module::bytes(hello.clone()))
        .force(true)
        .await
        .unwrap();
    assert!(forced.already_existed);
    let by_sha = client.upload(Module::sha256(&sha)).await.unwrap();
    assert_eq!(by_sha.sha256, sha);

    let got = client.module_info(&sha).await.unwrap();
    assert_eq!(got.size, hello.len() as u64);
    assert!(got.created_at.is_some());

    let listed = client.list_modules().await.unwrap();
    assert!(listed.iter().any(|m| m.sha256 == sha));

    let out = client.run(Module::sha256(&sha)).output().await.unwrap();
    assert_eq!(out.stdout, b"Hello, WasmWiz!\n");

    client.delete_module(&sha).await.unwrap();
    let gone = client.module_info(&sha).await.unwrap_err();
    assert_eq!(gone.code(), Code::NotFound);
    assert!(client
        .list_modules()
        .await
        .unwrap()
        .iter()
        .all(|m| m.sha256 != sha));

    // keep_module stores an inline module.
    let kept = client
        .run(Module::file(guest("stderr.wasm")))
        .keep_module(true)
        .output()
        .await
        .unwrap();
    client
        .module_info(&kept.started.module_sha256)
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn errors_carry_codes_and_details() {
    let server = TestServer::start().await;
    let admin = client(&server, &server.admin_key).await;
    let free_key = server.create_key("free@test.local", "free", false).await;
    let free = client(&server, &free_key).await;

    // Not WebAssembly: INVALID_ARGUMENT naming the field.
    let err = admin
        .run(Module::bytes(&b"not wasm at all"[..]))
        .output()
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    let api = err.api().unwrap();
    assert_eq!(api.field_violations()[0].field, "module");
    assert!(err.to_string().starts_with("INVALID_ARGUMENT"), "{err}");

    // A limit above the tier's maximum: the field and the maximum.
    let err = free
        .run(Module::file(guest("hello.wasm")))
        .limits(Limits::new().fuel(u64::MAX))
        .output()
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    let violation = &err.api().unwrap().field_violations()[0];
    assert_eq!(violation.field, "limits.fuel");
    assert!(
        violation.description.contains("1000000000000"),
        "{violation:?}"
    );

    // Unknown module: NOT_FOUND with ResourceInfo.
    let unknown = "ab".repeat(32);
    let err = admin
        .run(Module::sha256(&unknown))
        .output()
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound);
    assert_eq!(
        err.api().unwrap().resource(),
        Some(("module", unknown.as_str()))
    );

    // A bad key: UNAUTHENTICATED; no key: the same.
    let bad = client(&server, "wwz_nope_nope").await;
    assert_eq!(
        bad.whoami().await.unwrap_err().code(),
        Code::Unauthenticated
    );
    let none = client(&server, "").await;
    assert_eq!(
        none.whoami().await.unwrap_err().code(),
        Code::Unauthenticated
    );

    // An admin call with a user key: PERMISSION_DENIED with ErrorInfo.
    let err = free.admin().list_keys(None).await.unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied);
    assert_eq!(err.api().unwrap().reason(), Some("ADMIN_KEY_REQUIRED"));

    // A missing local file.
    let err = admin
        .run(Module::file("/nonexistent/x.wasm"))
        .output()
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Io { .. }), "{err:?}");

    // A server that is not there.
    let err = wasmwiz::Client::builder("http://127.0.0.1:1")
        .build()
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Connect { .. }), "{err:?}");
    assert_eq!(err.code(), Code::Unavailable);
    assert!(err.is_connection_error());
    assert!(err.to_string().contains("refused"), "{err}");

    // A bad URL.
    let err = wasmwiz::Client::builder("not a url")
        .build()
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Config(_)), "{err:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn account_calls() {
    let server = TestServer::start().await;
    let client = client(&server, &server.admin_key).await;
    let me = client.whoami().await.unwrap();
    assert_eq!(me.email, "admin@test.local");
    assert_eq!(me.tier, "unlimited");
    assert!(me.admin);

    client
        .run(Module::file(guest("hello.wasm")))
        .output()
        .await
        .unwrap();
    let usage = client.usage(1).await.unwrap();
    assert!(usage.executions >= 1);
    assert!(usage.fuel_consumed > 0);
    assert_eq!(usage.daily.len(), 1);
    assert!(
        usage
            .by_outcome
            .get("OUTCOME_SUCCESS")
            .copied()
            .unwrap_or(0)
            >= 1
    );

    let created = client.create_my_key("second", None).await.unwrap();
    assert!(created.key.starts_with("wwz_"));
    assert!(
        !format!("{created:?}").contains(&created.key),
        "the secret leaks in Debug"
    );
    let second = common::client(&server, &created.key).await;
    assert_eq!(second.whoami().await.unwrap().key_id, created.key_id);
    let keys = client.my_keys().await.unwrap();
    assert!(keys
        .iter()
        .any(|k| k.key_id == created.key_id && k.label == "second"));
    client.revoke_my_key(&created.key_id).await.unwrap();
    let keys = client.my_keys().await.unwrap();
    let revoked = keys.iter().find(|k| k.key_id == created.key_id).unwrap();
    assert!(revoked.revoked_at.is_some());
    // Revocation takes effect within seconds.
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        match second.whoami().await {
            Err(e) if e.code() == Code::Unauthenticated => break,
            _ if Instant::now() > deadline => panic!("revoked key still works"),
            _ => tokio::time::sleep(Duration::from_millis(250)).await,
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn admin_calls() {
    let server = TestServer::start().await;
    let client = client(&server, &server.admin_key).await;
    let admin = client.admin();

    let user = admin.create_user("dev@test.local", "free").await.unwrap();
    assert_eq!(
        (user.email.as_str(), user.tier.as_str()),
        ("dev@test.local", "free")
    );
    let user = admin.set_tier("dev@test.local", "basic").await.unwrap();
    assert_eq!(user.tier, "basic");

    let key = admin
        .create_key(NewKey::new("dev@test.local").label("ci"))
        .await
        .unwrap();
    let dev = common::client(&server, &key.key).await;
    let me = dev.whoami().await.unwrap();
    assert_eq!(
        (me.email.as_str(), me.tier.as_str(), me.admin),
        ("dev@test.local", "basic", false)
    );
    assert_eq!(me.limits.unwrap().per_minute, 100);

    let keys = admin.list_keys(Some("dev@test.local")).await.unwrap();
    assert_eq!(keys.len(), 1);
    assert_eq!(keys[0].key_id, key.key_id);
    assert!(admin
        .list_keys(None)
        .await
        .unwrap()
        .iter()
        .any(|k| k.email == "admin@test.local"));

    dev.run(Module::file(guest("hello.wasm")))
        .output()
        .await
        .unwrap();
    let usage = admin.usage(Some("dev@test.local"), 1).await.unwrap();
    assert_eq!(usage.executions, 1);
    let everyone = admin.usage(None, 1).await.unwrap();
    assert!(everyone.executions >= 1);

    admin.revoke_key(&key.key_id).await.unwrap();
    let keys = admin.list_keys(Some("dev@test.local")).await.unwrap();
    assert!(keys[0].revoked_at.is_some());
}

#[tokio::test(flavor = "multi_thread")]
async fn batch_runs_cases_and_reports_junit() {
    let server = TestServer::start().await;
    let client = client(&server, &server.admin_key).await;
    let cases = [
        ("10\n", "55\n"),
        ("20\n", "6765\n"),
        ("1\n", "1\n"),
        ("5\n", "6\n"),
    ];
    let results = client
        .batch(Module::file(guest("fib.wasm")))
        .cases(cases.iter().enumerate().map(|(i, (stdin, want))| {
            Case::new(format!("fib <{i}> & \"q\""))
                .stdin(*stdin)
                .expect_stdout(*want)
        }))
        .case(Case::new("bad input").stdin("nope\n"))
        .limits(Limits::new().fuel(10_000_000_000))
        .output()
        .await
        .unwrap();
    assert_eq!(results.cases.len(), 5);
    assert!(results.cases.iter().enumerate().all(|(i, c)| c.index == i));
    let passed: Vec<bool> = results.cases.iter().map(|c| c.passed()).collect();
    assert_eq!(passed, [true, true, true, false, false]);
    assert_eq!(results.cases[3].finished.verdict, Verdict::WrongAnswer);
    assert_eq!(results.cases[3].stdout, b"5\n");
    assert_eq!(results.cases[4].finished.exit_code, 1);
    assert!(!results.cases[4].stderr.is_empty());
    assert!(!results.all_passed());
    assert_eq!(results.failed().count(), 2);

    let xml = results.junit_xml("fib <suite>");
    let doc = roxmltree::Document::parse(&xml).expect("JUnit XML parses");
    let suite = doc
        .descendants()
        .find(|n| n.has_tag_name("testsuite"))
        .unwrap();
    assert_eq!(suite.attribute("name"), Some("fib <suite>"));
    assert_eq!(suite.attribute("tests"), Some("5"));
    assert_eq!(suite.attribute("failures"), Some("2"));
    let testcases: Vec<_> = suite
        .children()
        .filter(|n| n.has_tag_name("testcase"))
        .collect();
    assert_eq!(testcases.len(), 5);
    assert_eq!(testcases[0].attribute("name"), Some("fib <0> & \"q\""));
    let failures: Vec<_> = doc
        .descendants()
        .filter(|n| n.has_tag_name("failure"))
        .collect();
    assert_eq!(failures.len(), 2);

    // As a stream: one result per case as each finishes.
    let stream = client
        .batch(Module::file(guest("fib.wasm")))
        .case(Case::new("a").stdin("3\n").expect_stdout("2\n"))
        .case(Case::new("b").stdin("4\n").expect_stdout("3\n"))
        .stream()
        .await
        .unwrap();
    assert_eq!(stream.total(), 2);
    let mut seen: Vec<usize> = stream
        .map(|c| c.unwrap())
        .inspect(|c| assert!(c.passed()))
        .map(|c| c.index)
        .collect()
        .await;
    seen.sort();
    assert_eq!(seen, [0, 1]);
}

#[tokio::test(flavor = "multi_thread")]
async fn call_timeout_and_a_server_that_goes_away() {
    let server = TestServer::start().await;
    let client = wasmwiz::Client::builder(format!("{}/", server.url))
        .api_key(&server.admin_key)
        .timeout(Duration::from_secs(30))
        .connect_timeout(Duration::from_secs(5))
        .user_agent("tests")
        .upload_threshold(u64::MAX)
        .chunk_size(4096)
        .build()
        .await
        .unwrap();
    assert_eq!(client.url(), server.url);
    let out = client
        .run(Module::file(guest("hello.wasm")))
        .output()
        .await
        .unwrap();
    assert_eq!(out.outcome, Outcome::Success);
    client.whoami().await.unwrap();

    // The call timeout bounds the wait for the run to start, not a guest
    // that streams for longer.
    let quick = wasmwiz::Client::builder(&server.url)
        .api_key(&server.admin_key)
        .timeout(Duration::from_millis(200))
        .build()
        .await
        .unwrap();
    let out = quick
        .run(Module::file(guest("progress.wasm")))
        .arg("6")
        .output()
        .await
        .unwrap();
    assert_eq!(out.outcome, Outcome::Success);
    assert!(out.stdout_lossy().ends_with("done\n"));

    server.stop().await;
    let err = client.whoami().await.unwrap_err();
    assert_eq!(err.code(), Code::Unavailable, "{err:?}");
    assert!(err.is_connection_error(), "{err:?}");
    assert!(err.is_retryable());
}
