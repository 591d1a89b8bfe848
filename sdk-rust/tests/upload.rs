//! A 30 MiB module: chunked upload with progress, the dedup skip, runs by
//! sha256 (library and CLI).

mod common;

use std::sync::{Arc, Mutex};

use common::{cli, padded_hello, TestServer};
use wasmwiz::{util::sha256_hex, Module, UploadProgress};

const PAD: usize = 30 * 1024 * 1024;

#[tokio::test(flavor = "multi_thread")]
async fn large_upload_with_progress_and_dedup() {
    let server = TestServer::start().await;
    let client = common::client(&server, &server.admin_key).await;
    let module = padded_hello(PAD, 0xA5);
    let sha = sha256_hex(&module);
    let total = module.len() as u64;

    let events: Arc<Mutex<Vec<UploadProgress>>> = Arc::default();
    let seen = events.clone();
    let info = client
        .upload(Module::bytes(module.clone()))
        .on_progress(move |p| seen.lock().unwrap().push(p))
        .await
        .unwrap();
    assert_eq!(info.sha256, sha);
    assert_eq!(info.size, total);
    assert!(!info.already_existed);
    let events = events.lock().unwrap().clone();
    assert!(events.len() >= 30, "{} progress events", events.len());
    assert_eq!(events.first().unwrap().sent, 0);
    assert_eq!(events.last().unwrap().sent, total);
    assert!(events.windows(2).all(|w| w[0].sent <= w[1].sent));
    assert!(events.iter().all(|p| p.total == total && !p.skipped));

    // Again: the server has it; nothing is sent.
    let skipped: Arc<Mutex<Vec<UploadProgress>>> = Arc::default();
    let seen = skipped.clone();
    let again = client
        .upload(Module::bytes(module.clone()))
        .on_progress(move |p| seen.lock().unwrap().push(p))
        .await
        .unwrap();
    assert!(again.already_existed);
    assert_eq!(
        *skipped.lock().unwrap(),
        [UploadProgress {
            sent: total,
            total,
            skipped: true
        }]
    );

    // Running the large module by bytes: found by hash, not re-sent.
    let skipped: Arc<Mutex<Vec<UploadProgress>>> = Arc::default();
    let seen = skipped.clone();
    let out = client
        .run(Module::bytes(module.clone()))
        .on_upload_progress(move |p| seen.lock().unwrap().push(p))
        .output()
        .await
        .unwrap();
    assert_eq!(out.stdout, b"Hello, WasmWiz!\n");
    assert_eq!(out.started.module_sha256, sha);
    assert!(skipped.lock().unwrap().iter().all(|p| p.skipped));
    let out = client.run(Module::sha256(&sha)).output().await.unwrap();
    assert_eq!(out.stdout, b"Hello, WasmWiz!\n");

    // A different large module run from a file uploads first, then runs.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("other.wasm");
    std::fs::write(&path, padded_hello(PAD, 0x5A)).unwrap();
    let progressed: Arc<Mutex<Vec<UploadProgress>>> = Arc::default();
    let seen = progressed.clone();
    let out = client
        .run(Module::file(&path))
        .on_upload_progress(move |p| seen.lock().unwrap().push(p))
        .output()
        .await
        .unwrap();
    assert_eq!(out.stdout, b"Hello, WasmWiz!\n");
    let progressed = progressed.lock().unwrap().clone();
    assert!(progressed.len() >= 30 && !progressed.iter().any(|p| p.skipped));

    // The batch of a large module goes the same way.
    let results = client
        .batch(Module::file(&path))
        .case(wasmwiz::Case::new("hello").expect_stdout("Hello, WasmWiz!\n"))
        .output()
        .await
        .unwrap();
    assert!(results.all_passed());
}

#[tokio::test(flavor = "multi_thread")]
async fn cli_upload_shows_progress_then_skips() {
    let server = TestServer::start().await;
    let key = Some(server.admin_key.as_str());
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("big.wasm");
    let module = padded_hello(PAD, 0x33);
    std::fs::write(&path, &module).unwrap();
    let path = path.display().to_string();

    let out = cli(&server.url, key, &["upload", &path], None).await;
    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(out.stdout.trim(), sha256_hex(&module));
    // Not a terminal: a few plain progress lines for CI logs.
    let lines: Vec<&str> = out
        .stderr
        .lines()
        .filter(|l| l.contains("uploading"))
        .collect();
    assert_eq!(lines.len(), 5, "{}", out.stderr);
    assert!(lines[0].ends_with("0 B of 30.0 MiB (0%)"), "{lines:?}");
    assert!(
        lines[4].ends_with("30.0 MiB of 30.0 MiB (100%)"),
        "{lines:?}"
    );
    assert!(out.stderr.contains("stored"), "{out:?}");

    let out = cli(&server.url, key, &["upload", &path], None).await;
    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(out.stdout.trim(), sha256_hex(&module));
    assert!(
        out.stderr.contains("already on the server; upload skipped"),
        "{out:?}"
    );
    assert!(!out.stderr.contains("uploading"), "{out:?}");

    // `run` of the large file: no upload, streams hello.
    let out = cli(&server.url, key, &["run", &path], None).await;
    assert_eq!(
        (out.code, out.stdout.as_str()),
        (0, "Hello, WasmWiz!\n"),
        "{out:?}"
    );
    assert!(out.stderr.contains("upload skipped"), "{out:?}");
    // -q: quiet.
    let out = cli(&server.url, key, &["-q", "run", &path], None).await;
    assert_eq!((out.code, out.stderr.as_str()), (0, ""), "{out:?}");
}
