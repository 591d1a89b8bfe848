//! The deterministic result cache against a real server: hits replay the
//! original events and cost no execution allowance; any input changed is a
//! miss; only deterministic endings are kept; per-account; REFRESH; an
//! engine change invalidates; eviction at the byte bound; replicas on
//! PostgreSQL share it.

use tonic::Code;
use wasmwiz_proto::v1::{
    self, account_service_client::AccountServiceClient, execute_event::Event, execute_request::Msg,
    execution_service_client::ExecutionServiceClient, CachePolicy,
};
use wasmwiz_server::testing::{postgres_available, Authed, Db, TestServer};

fn guest(name: &str) -> Vec<u8> {
    let path = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join(format!("../examples/guests/{name}.wasm"));
    std::fs::read(path).unwrap()
}

/// Everything after `started`, in order, as it came.
#[derive(Debug, Default)]
struct Ran {
    started: v1::Started,
    events: Vec<Event>,
}

impl Ran {
    fn finished(&self) -> &v1::Finished {
        self.events
            .iter()
            .find_map(|e| match e {
                Event::Finished(f) => Some(f),
                _ => None,
            })
            .expect("finished")
    }

    fn stdout(&self) -> Vec<u8> {
        self.events
            .iter()
            .filter_map(|e| match e {
                Event::Stdout(b) => Some(b.to_vec()),
                _ => None,
            })
            .flatten()
            .collect()
    }

    fn hit(&self) -> bool {
        self.started.result_cache_hit
    }
}

async fn exec(server: &TestServer, key: &str) -> ExecutionServiceClient<Authed> {
    ExecutionServiceClient::new(server.authed(Some(key)).await)
}

async fn try_run(
    server: &TestServer,
    key: &str,
    request: v1::RunRequest,
) -> Result<Ran, tonic::Status> {
    let mut stream = exec(server, key).await.run(request).await?.into_inner();
    let mut ran = Ran::default();
    while let Some(event) = stream.message().await? {
        match event.event.unwrap() {
            Event::Started(started) => ran.started = started,
            other => ran.events.push(other),
        }
    }
    Ok(ran)
}

async fn run(server: &TestServer, key: &str, request: v1::RunRequest) -> Ran {
    try_run(server, key, request).await.expect("Run")
}

fn echo(stdin: &[u8]) -> v1::RunRequest {
    v1::RunRequest {
        source: Some(v1::run_request::Source::Module(guest("echo"))),
        stdin: stdin.to_vec(),
        cache: CachePolicy::Use as i32,
        ..Default::default()
    }
}

fn argsenv() -> v1::RunRequest {
    v1::RunRequest {
        source: Some(v1::run_request::Source::Module(guest("argsenv"))),
        args: vec!["a".into()],
        env: [("K".to_string(), "V".to_string())].into(),
        cache: CachePolicy::Use as i32,
        ..Default::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_request_again_replays_the_same_events() {
    let server = TestServer::start().await;
    let key = server.admin_key.clone();
    let first = run(&server, &key, echo(b"cache me\n")).await;
    let second = run(&server, &key, echo(b"cache me\n")).await;
    assert!(!first.hit());
    assert!(second.hit());
    assert_eq!(second.started.cached_from, first.started.execution_id);
    assert_ne!(second.started.execution_id, first.started.execution_id);
    assert_eq!(second.started.module_sha256, first.started.module_sha256);
    assert_eq!(second.events, first.events);
    assert_eq!(second.stdout(), b"cache me\n");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hit_uses_no_execution_allowance_and_is_counted_apart() {
    let server = TestServer::start_with(Db::Sqlite, |config| {
        let mut tiny = config.tiers["free"].clone();
        tiny.per_minute = 1;
        tiny.per_day = 1;
        config.tiers.insert("tiny".into(), tiny);
    })
    .await;
    let key = server.create_key("tiny@x.io", "tiny", false).await;
    let first = run(&server, &key, echo(b"once\n")).await;
    for _ in 0..3 {
        assert!(run(&server, &key, echo(b"once\n")).await.hit());
    }
    let uncached = try_run(
        &server,
        &key,
        v1::RunRequest {
            cache: CachePolicy::Unspecified as i32,
            ..echo(b"once\n")
        },
    )
    .await
    .unwrap_err();
    assert_eq!(uncached.code(), Code::ResourceExhausted, "{uncached:?}");
    let usage = AccountServiceClient::new(server.authed(Some(&key)).await)
        .get_usage(v1::GetUsageRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(usage.executions, 1);
    assert_eq!(usage.cache_hits, 3);
    assert_eq!(usage.fuel_saved, 3 * first.finished().fuel_consumed);
    assert_eq!(usage.fuel_consumed, first.finished().fuel_consumed);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn any_single_changed_input_is_a_miss() {
    let server = TestServer::start().await;
    let key = server.admin_key.clone();
    run(&server, &key, argsenv()).await;
    assert!(run(&server, &key, argsenv()).await.hit());
    let variants: Vec<(&str, v1::RunRequest)> = vec![
        (
            "stdin",
            v1::RunRequest {
                stdin: b"x".to_vec(),
                ..argsenv()
            },
        ),
        (
            "args",
            v1::RunRequest {
                args: vec!["b".into()],
                ..argsenv()
            },
        ),
        (
            "env",
            v1::RunRequest {
                env: [("K".to_string(), "W".to_string())].into(),
                ..argsenv()
            },
        ),
        (
            "program_name",
            v1::RunRequest {
                program_name: "p".into(),
                ..argsenv()
            },
        ),
        (
            "random_seed",
            v1::RunRequest {
                random_seed: 1,
                ..argsenv()
            },
        ),
        (
            "limits",
            v1::RunRequest {
                limits: Some(v1::Limits {
                    fuel: 1_000_000_000,
                    ..Default::default()
                }),
                ..argsenv()
            },
        ),
        (
            "module",
            v1::RunRequest {
                source: Some(v1::run_request::Source::Module(guest("hello"))),
                ..argsenv()
            },
        ),
    ];
    for (what, request) in variants {
        assert!(
            !run(&server, &key, request).await.hit(),
            "changed {what} hit the cache"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_timeout_is_not_cached() {
    let server = TestServer::start().await;
    let key = server.admin_key.clone();
    let looping = || v1::RunRequest {
        source: Some(v1::run_request::Source::Module(
            wat::parse_file(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/../examples/guests/loop.wat"
            ))
            .unwrap(),
        )),
        limits: Some(v1::Limits {
            timeout_ms: 50,
            ..Default::default()
        }),
        cache: CachePolicy::Use as i32,
        ..Default::default()
    };
    let first = run(&server, &key, looping()).await;
    assert_eq!(first.finished().outcome(), v1::Outcome::Timeout);
    let second = run(&server, &key, looping()).await;
    assert!(!second.hit());
    assert_eq!(second.finished().outcome(), v1::Outcome::Timeout);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_out_of_fuel_ending_is_cached() {
    let server = TestServer::start().await;
    let key = server.admin_key.clone();
    let starved = || v1::RunRequest {
        limits: Some(v1::Limits {
            fuel: 1_000,
            ..Default::default()
        }),
        ..argsenv()
    };
    let first = run(&server, &key, starved()).await;
    assert_eq!(first.finished().outcome(), v1::Outcome::OutOfFuel);
    assert!(run(&server, &key, starved()).await.hit());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_account_never_sees_anothers_results() {
    let server = TestServer::start().await;
    let alice = server.create_key("alice@x.io", "free", false).await;
    let bob = server.create_key("bob@x.io", "free", false).await;
    run(&server, &alice, echo(b"mine\n")).await;
    assert!(run(&server, &alice, echo(b"mine\n")).await.hit());
    assert!(!run(&server, &bob, echo(b"mine\n")).await.hit());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refresh_runs_again_and_replaces_the_entry() {
    let server = TestServer::start().await;
    let key = server.admin_key.clone();
    run(&server, &key, echo(b"r\n")).await;
    let refreshed = run(
        &server,
        &key,
        v1::RunRequest {
            cache: CachePolicy::Refresh as i32,
            ..echo(b"r\n")
        },
    )
    .await;
    assert!(!refreshed.hit());
    let after = run(&server, &key, echo(b"r\n")).await;
    assert!(after.hit());
    assert_eq!(after.started.cached_from, refreshed.started.execution_id);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_engine_identity_does_not_hit() {
    let server = TestServer::start().await;
    let key = server.admin_key.clone();
    run(&server, &key, echo(b"e\n")).await;
    assert!(run(&server, &key, echo(b"e\n")).await.hit());
    let (mut config, data_dir) = server.stop().await;
    config.engine_identity.wasi_version.push_str("-next");
    let upgraded = TestServer::start_config(config, data_dir).await;
    assert!(!run(&upgraded, &upgraded.admin_key, echo(b"e\n"))
        .await
        .hit());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_oldest_entry_is_evicted_at_the_account_byte_bound() {
    // Each entry holds 2,000 bytes of output and its receipt (well under
    // 1,000 bytes): one fits in 3,000, two do not.
    let server = TestServer::start_with(Db::Sqlite, |config| {
        config.result_cache_account_bytes = 3_000;
    })
    .await;
    let key = server.admin_key.clone();
    let (a, b) = (vec![b'a'; 2_000], vec![b'b'; 2_000]);
    run(&server, &key, echo(&a)).await;
    assert!(run(&server, &key, echo(&a)).await.hit());
    run(&server, &key, echo(&b)).await;
    assert!(run(&server, &key, echo(&b)).await.hit());
    assert!(
        !run(&server, &key, echo(&a)).await.hit(),
        "the older entry was kept"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_result_over_the_entry_size_limit_is_not_cached() {
    let server = TestServer::start_with(Db::Sqlite, |config| {
        config.result_cache_max_entry_bytes = 16;
    })
    .await;
    let key = server.admin_key.clone();
    run(&server, &key, echo(&[b'x'; 17])).await;
    assert!(!run(&server, &key, echo(&[b'x'; 17])).await.hit());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streamed_stdin_with_the_cache_is_refused() {
    let server = TestServer::start().await;
    let echo = guest("echo");
    let requests = vec![
        v1::ExecuteRequest {
            msg: Some(Msg::Start(v1::ExecuteStart {
                source: Some(v1::execute_start::Source::ModuleSize(echo.len() as u64)),
                stream_stdin: true,
                cache: CachePolicy::Use as i32,
                ..Default::default()
            })),
        },
        v1::ExecuteRequest {
            msg: Some(Msg::ModuleChunk(echo)),
        },
    ];
    let status = exec(&server, &server.admin_key)
        .await
        .execute(futures::stream::iter(requests))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    use tonic_types::StatusExt;
    let violations = status
        .get_error_details()
        .bad_request()
        .unwrap()
        .field_violations
        .clone();
    assert_eq!(violations[0].field, "cache");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hit_carries_the_original_receipt_unchanged() {
    let server = TestServer::start().await;
    let key = server.admin_key.clone();
    let with_receipt = || v1::RunRequest {
        receipt: true,
        ..echo(b"signed\n")
    };
    let first = run(&server, &key, with_receipt()).await;
    let second = run(&server, &key, with_receipt()).await;
    assert!(second.hit());
    let receipt = first.finished().receipt.clone().expect("a receipt");
    assert_eq!(second.finished().receipt.as_ref(), Some(&receipt));
    let without = run(&server, &key, echo(b"signed\n")).await;
    assert!(without.hit());
    assert_eq!(without.finished().receipt, None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rerun_batch_is_answered_from_the_cache_with_fresh_verdicts() {
    let server = TestServer::start().await;
    let client = exec(&server, &server.admin_key).await;
    let batch = |expected: &[u8]| v1::RunBatchRequest {
        source: Some(v1::run_batch_request::Source::Module(guest("echo"))),
        cases: (0..3)
            .map(|i| v1::BatchCase {
                stdin: format!("case {i}\n").into_bytes(),
                expected_stdout: Some(if i == 0 {
                    expected.to_vec()
                } else {
                    format!("case {i}\n").into_bytes()
                }),
                ..Default::default()
            })
            .collect(),
        cache: CachePolicy::Use as i32,
        ..Default::default()
    };
    let collect = |request: v1::RunBatchRequest| {
        let mut client = client.clone();
        async move {
            let mut stream = client.run_batch(request).await.unwrap().into_inner();
            let mut events = Vec::new();
            while let Some(event) = stream.message().await.unwrap() {
                events.push(event);
            }
            events.sort_by_key(|e| e.case_index);
            events
        }
    };
    let first = collect(batch(b"case 0\n")).await;
    assert!(first.iter().all(|e| !e.result_cache_hit));
    let again = collect(batch(b"something else\n")).await;
    assert_eq!(again.len(), 3);
    for (before, after) in first.iter().zip(&again) {
        assert!(after.result_cache_hit);
        assert_eq!(after.cached_from, before.execution_id);
        assert_eq!(after.stdout, before.stdout);
    }
    let verdicts: Vec<v1::Verdict> = again
        .iter()
        .map(|e| e.finished.as_ref().unwrap().verdict())
        .collect();
    assert_eq!(
        verdicts,
        [
            v1::Verdict::WrongAnswer,
            v1::Verdict::Accepted,
            v1::Verdict::Accepted
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_on_postgresql_share_the_cache() {
    if !postgres_available().await {
        eprintln!("PostgreSQL is not reachable here; run with CI=true to require it");
        return;
    }
    let a = TestServer::start_with(Db::Postgres, |_| {}).await;
    let b_dir = tempfile::tempdir().unwrap();
    let b_config = wasmwiz_server::Config {
        data_dir: b_dir.path().to_path_buf(),
        ..a.config.clone()
    };
    let b = TestServer::start_config(b_config, Some(b_dir)).await;
    let key = a.create_key("shared@x.io", "free", false).await;
    let first = run(&a, &key, echo(b"shared\n")).await;
    let on_b = run(&b, &key, echo(b"shared\n")).await;
    assert!(on_b.hit());
    assert_eq!(on_b.started.cached_from, first.started.execution_id);
    assert_eq!(on_b.events, first.events);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lookups_past_their_budget_are_refused_with_a_retry_time() {
    let server = TestServer::start_with(Db::Sqlite, |config| {
        config.result_cache_lookups_per_minute = 2;
    })
    .await;
    let key = server.create_key("lookups@x.io", "free", false).await;
    run(&server, &key, echo(b"1\n")).await;
    assert!(run(&server, &key, echo(b"1\n")).await.hit());
    let refused = try_run(&server, &key, echo(b"1\n")).await.unwrap_err();
    assert_eq!(refused.code(), Code::ResourceExhausted, "{refused:?}");
    use tonic_types::StatusExt;
    let details = refused.get_error_details();
    assert_eq!(
        details.quota_failure().unwrap().violations[0].subject,
        "result cache lookups per minute"
    );
    assert!(details.retry_info().is_some());
}

/// The server's Prometheus text.
async fn metrics(server: &TestServer) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut tcp = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    tcp.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut text = String::new();
    tcp.read_to_string(&mut text).await.unwrap();
    text
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hits_and_misses_are_counted_for_the_hit_ratio() {
    let server = TestServer::start().await;
    let key = server.admin_key.clone();
    run(&server, &key, echo(b"m\n")).await;
    run(&server, &key, echo(b"m\n")).await;
    run(&server, &key, echo(b"m\n")).await;
    let text = metrics(&server).await;
    assert!(
        text.contains("wasmwiz_result_cache_lookups_total{result=\"hit\"} 2"),
        "{text}"
    );
    assert!(
        text.contains("wasmwiz_result_cache_lookups_total{result=\"miss\"} 1"),
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_cache_policy_is_refused() {
    let server = TestServer::start().await;
    let status = try_run(
        &server,
        &server.admin_key,
        v1::RunRequest {
            cache: 7,
            ..echo(b"x")
        },
    )
    .await
    .unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    use tonic_types::StatusExt;
    let violations = status
        .get_error_details()
        .bad_request()
        .unwrap()
        .field_violations
        .clone();
    assert_eq!(violations[0].field, "cache");
}

/// fsreport over one input file, collecting its report, with the cache.
fn report_of(text: &str) -> v1::RunRequest {
    v1::RunRequest {
        source: Some(v1::run_request::Source::Module(guest("fsreport"))),
        fs: Some(v1::Filesystem {
            entries: vec![v1::FsEntry {
                path: "input/a.txt".into(),
                kind: Some(v1::fs_entry::Kind::File(text.as_bytes().to_vec().into())),
            }],
            collect: vec!["out/*".into()],
        }),
        cache: CachePolicy::Use as i32,
        ..Default::default()
    }
}

fn files_of(ran: &Ran) -> Vec<v1::FsEntry> {
    ran.events
        .iter()
        .filter_map(|e| match e {
            Event::File(f) => Some(f.clone()),
            _ => None,
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_with_files_is_a_hit_that_replays_its_collected_files() {
    let server = TestServer::start().await;
    let key = server.admin_key.clone();
    let first = run(&server, &key, report_of("one two\n")).await;
    let second = run(&server, &key, report_of("one two\n")).await;
    assert!(second.hit());
    assert!(
        !files_of(&first).is_empty(),
        "fsreport writes out/report.txt"
    );
    assert_eq!(files_of(&second), files_of(&first));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_changed_input_file_is_a_miss() {
    let server = TestServer::start().await;
    let key = server.admin_key.clone();
    run(&server, &key, report_of("one two\n")).await;
    let other = run(&server, &key, report_of("one two three\n")).await;
    assert!(!other.hit());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_changed_collect_pattern_is_a_miss() {
    let server = TestServer::start().await;
    let key = server.admin_key.clone();
    run(&server, &key, report_of("one two\n")).await;
    let mut request = report_of("one two\n");
    request.fs.as_mut().unwrap().collect = vec!["**".into()];
    assert!(!run(&server, &key, request).await.hit());
}
