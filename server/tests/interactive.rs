//! Interactive executions on the real server: a `Run` with `interactive`
//! keeps the guest's stdin open, fed by `WriteStdin` until `eof`.

mod support;

use std::time::Duration;

use support::*;
use tonic::{Code, Status, Streaming};
use tonic_types::StatusExt;
use wasmwiz_proto::v1::{self, execute_event::Event};
use wasmwiz_server::config::Config;

/// An interactive run of echo.wasm (stdin copied to stdout).
fn echo_interactive(limits: Option<v1::Limits>) -> v1::RunRequest {
    v1::RunRequest {
        interactive: true,
        limits,
        ..run_bytes(guest("echo"))
    }
}

/// Starts `request`; returns the event stream after `started` and the id.
async fn start(c: &mut Clients, request: v1::RunRequest) -> (Streaming<v1::ExecuteEvent>, String) {
    let mut stream = c.exec.run(request).await.unwrap().into_inner();
    match stream.message().await.unwrap().unwrap().event.unwrap() {
        Event::Started(started) => (stream, started.execution_id),
        other => panic!("expected started, got {other:?}"),
    }
}

async fn write(c: &mut Clients, id: &str, data: &[u8], eof: bool) -> Result<(), Status> {
    c.exec
        .write_stdin(v1::WriteStdinRequest {
            execution_id: id.to_string(),
            data: data.to_vec(),
            eof,
        })
        .await
        .map(|_| ())
}

/// Reads stdout events until `want` bytes have arrived.
async fn read_stdout(stream: &mut Streaming<v1::ExecuteEvent>, want: usize) -> Vec<u8> {
    let mut stdout = Vec::new();
    while stdout.len() < want {
        let event = tokio::time::timeout(Duration::from_secs(20), stream.message())
            .await
            .expect("output in time")
            .unwrap()
            .expect("the run goes on");
        match event.event.unwrap() {
            Event::Stdout(bytes) => stdout.extend(bytes),
            Event::Stderr(_) => {}
            other => panic!("expected output, got {other:?}"),
        }
    }
    stdout
}

/// The rest of the stream: stdout, then `finished` (or the error).
async fn rest(stream: Streaming<v1::ExecuteEvent>) -> Result<Collected, Status> {
    tokio::time::timeout(Duration::from_secs(30), collect(stream))
        .await
        .expect("the run ends in time")
}

async fn server_and_key(db: Db, tweak: impl FnOnce(&mut Config)) -> (TestServer, Clients) {
    let server = TestServer::start_with(db, tweak).await;
    let key = server.create_key("alice@x.io", "free", false).await;
    let c = clients(&server, Some(&key)).await;
    (server, c)
}

async fn owner_writes_reach_the_guest_as_it_runs(db: Db) {
    let (_server, mut c) = server_and_key(db, |_| {}).await;
    let (mut stream, id) = start(&mut c, echo_interactive(None)).await;
    write(&mut c, &id, b"hello\n", false).await.unwrap();
    // The answer comes while the run is still going.
    assert_eq!(read_stdout(&mut stream, 6).await, b"hello\n");
    write(&mut c, &id, b"again\n", true).await.unwrap();
    let end = rest(stream).await.unwrap();
    assert_eq!(end.stdout, b"again\n");
    assert_eq!(end.outcome(), v1::Outcome::Success);
}

on_both_databases!(owner_writes_reach_the_guest_as_it_runs);

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn request_stdin_comes_first_and_eof_ends_stdin() {
    let (_server, mut c) = server_and_key(Db::Sqlite, |_| {}).await;
    let request = v1::RunRequest {
        stdin: b"first ".to_vec(),
        ..echo_interactive(None)
    };
    let (stream, id) = start(&mut c, request).await;
    write(&mut c, &id, b"", true).await.unwrap();
    let end = rest(stream).await.unwrap();
    assert_eq!(end.stdout, b"first ");
    assert_eq!(end.outcome(), v1::Outcome::Success);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_write_after_eof_is_failed_precondition() {
    let (_server, mut c) = server_and_key(Db::Sqlite, |_| {}).await;
    let (stream, id) = start(&mut c, echo_interactive(None)).await;
    write(&mut c, &id, b"x", true).await.unwrap();
    let late = write(&mut c, &id, b"y", false).await.unwrap_err();
    assert_eq!(late.code(), Code::FailedPrecondition, "{late:?}");
    assert_eq!(rest(stream).await.unwrap().stdout, b"x");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn another_account_gets_not_found_exactly_like_an_unknown_id() {
    let (server, mut c) = server_and_key(Db::Sqlite, |_| {}).await;
    let mallory = server.create_key("mallory@x.io", "free", false).await;
    let mut m = clients(&server, Some(&mallory)).await;
    let (stream, id) = start(&mut c, echo_interactive(None)).await;
    let theirs = write(&mut m, &id, b"injected", true).await.unwrap_err();
    let unknown = write(&mut m, "0190f000-0000-7000-8000-000000000000", b"x", false)
        .await
        .unwrap_err();
    assert_eq!(theirs.code(), Code::NotFound);
    assert_eq!(unknown.code(), Code::NotFound);
    assert_eq!(
        theirs.message().replace(&id, "ID"),
        unknown
            .message()
            .replace("0190f000-0000-7000-8000-000000000000", "ID")
    );
    // Nothing reached the guest.
    write(&mut c, &id, b"", true).await.unwrap();
    assert_eq!(rest(stream).await.unwrap().stdout, b"");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_write_after_the_end_is_failed_precondition() {
    let (_server, mut c) = server_and_key(Db::Sqlite, |_| {}).await;
    let (stream, id) = start(&mut c, echo_interactive(None)).await;
    write(&mut c, &id, b"bye", true).await.unwrap();
    rest(stream).await.unwrap();
    let late = write(&mut c, &id, b"more", false).await.unwrap_err();
    assert_eq!(late.code(), Code::FailedPrecondition, "{late:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_write_past_the_tier_stdin_size_stops_the_run_after_its_output() {
    let (_server, mut c) = server_and_key(Db::Sqlite, |config| {
        config.tiers.get_mut("free").unwrap().max_stdin_bytes = 10;
    })
    .await;
    let (mut stream, id) = start(&mut c, echo_interactive(None)).await;
    write(&mut c, &id, b"12345678", false).await.unwrap();
    assert_eq!(read_stdout(&mut stream, 8).await, b"12345678");
    let refused = write(&mut c, &id, b"abc", false).await.unwrap_err();
    assert_bad_request(&refused, "data");
    let ended = rest(stream).await.unwrap_err();
    assert_bad_request(&ended, "stdin");
    // The guest was stopped: later writes are too late.
    let late = write(&mut c, &id, b"x", false).await.unwrap_err();
    assert_eq!(late.code(), Code::FailedPrecondition, "{late:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn one_write_over_a_mebibyte_is_refused_naming_data() {
    let (_server, mut c) = server_and_key(Db::Sqlite, |config| {
        config.tiers.get_mut("free").unwrap().max_stdin_bytes = 8 << 20;
    })
    .await;
    let (stream, id) = start(&mut c, echo_interactive(None)).await;
    let big = vec![b'a'; (1 << 20) + 1];
    let refused = write(&mut c, &id, &big, false).await.unwrap_err();
    assert_bad_request(&refused, "data");
    // A refused oversized message is the caller's error, not the guest's:
    // the session goes on.
    write(&mut c, &id, b"ok", true).await.unwrap();
    assert_eq!(rest(stream).await.unwrap().stdout, b"ok");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_wait_past_the_idle_timeout_ends_the_run_as_idle() {
    let (_server, mut c) = server_and_key(Db::Sqlite, |_| {}).await;
    let limits = v1::Limits {
        idle_timeout_ms: 300,
        ..Default::default()
    };
    let (stream, _id) = start(&mut c, echo_interactive(Some(limits))).await;
    let end = rest(stream).await.unwrap();
    let finished = end.finished.as_ref().unwrap();
    assert_eq!(end.outcome(), v1::Outcome::Timeout);
    assert!(finished.message.contains("idle"), "{}", finished.message);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn time_waiting_for_input_does_not_count_towards_timeout_ms() {
    let (_server, mut c) = server_and_key(Db::Sqlite, |_| {}).await;
    let limits = v1::Limits {
        timeout_ms: 300,
        ..Default::default()
    };
    let (mut stream, id) = start(&mut c, echo_interactive(Some(limits))).await;
    for line in [b"one\n", b"two\n"] {
        tokio::time::sleep(Duration::from_millis(400)).await;
        write(&mut c, &id, line, false).await.unwrap();
        assert_eq!(read_stdout(&mut stream, 4).await, line);
    }
    write(&mut c, &id, b"", true).await.unwrap();
    assert_eq!(rest(stream).await.unwrap().outcome(), v1::Outcome::Success);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_tier_session_length_bounds_the_whole_run() {
    let (_server, mut c) = server_and_key(Db::Sqlite, |config| {
        config.tiers.get_mut("free").unwrap().max_session_ms = 2_000;
    })
    .await;
    let (mut stream, id) = start(&mut c, echo_interactive(None)).await;
    write(&mut c, &id, b"hi", false).await.unwrap();
    assert_eq!(read_stdout(&mut stream, 2).await, b"hi");
    let end = rest(stream).await.unwrap();
    let finished = end.finished.as_ref().unwrap();
    assert_eq!(end.outcome(), v1::Outcome::Timeout);
    assert!(
        finished.message.contains("maximum length"),
        "{}",
        finished.message
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn writes_arrive_in_order() {
    // 200 writes at once: above the free tier's write burst.
    let (_server, mut c) = server_and_key(Db::Sqlite, |config| {
        config.tiers.get_mut("free").unwrap().stdin_write_burst = 1000;
    })
    .await;
    let (stream, id) = start(&mut c, echo_interactive(None)).await;
    let mut expected = Vec::new();
    for i in 0..200 {
        let line = format!("line {i}\n");
        write(&mut c, &id, line.as_bytes(), false).await.unwrap();
        expected.extend_from_slice(line.as_bytes());
    }
    write(&mut c, &id, b"", true).await.unwrap();
    assert_eq!(rest(stream).await.unwrap().stdout, expected);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_writes_each_arrive_whole_and_once() {
    let (_server, mut c) = server_and_key(Db::Sqlite, |_| {}).await;
    let (stream, id) = start(&mut c, echo_interactive(None)).await;
    let writers: Vec<_> = (0..16)
        .map(|w| {
            let (mut c, id) = (c.clone(), id.clone());
            tokio::spawn(async move {
                // One write of 4 KiB per writer: its bytes must stay together.
                let data = vec![b'a' + w as u8; 4096];
                write(&mut c, &id, &data, false).await.unwrap();
            })
        })
        .collect();
    for writer in writers {
        writer.await.unwrap();
    }
    write(&mut c, &id, b"", true).await.unwrap();
    let stdout = rest(stream).await.unwrap().stdout;
    assert_eq!(stdout.len(), 16 * 4096);
    let mut seen: Vec<u8> = stdout
        .chunks(4096)
        .map(|block| {
            assert!(block.iter().all(|b| *b == block[0]), "a write was split");
            block[0]
        })
        .collect();
    seen.sort();
    assert_eq!(seen, (0..16).map(|w| b'a' + w).collect::<Vec<_>>());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn interactive_with_the_result_cache_is_refused() {
    let (_server, mut c) = server_and_key(Db::Sqlite, |_| {}).await;
    let request = v1::RunRequest {
        cache: v1::CachePolicy::Use as i32,
        ..echo_interactive(None)
    };
    let refused = c.exec.run(request).await.unwrap_err();
    assert_bad_request(&refused, "cache");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_write_message_past_the_write_cap_is_refused_before_it_is_read() {
    // 16 MiB of stdin allowed, but one WriteStdin message stays small: the
    // transport refuses it by its declared length, naming `message`.
    let (_server, mut c) = server_and_key(Db::Sqlite, |config| {
        config.tiers.get_mut("free").unwrap().max_stdin_bytes = 16 << 20;
    })
    .await;
    let (stream, id) = start(&mut c, echo_interactive(None)).await;
    let big = vec![b'a'; 4 << 20];
    let refused = write(&mut c, &id, &big, false).await.unwrap_err();
    assert_bad_request(&refused, "message");
    assert!(refused.message().contains("WriteStdin"), "{refused:?}");
    write(&mut c, &id, b"small", true).await.unwrap();
    assert_eq!(rest(stream).await.unwrap().stdout, b"small");
}

/// `Execute` with `stream_stdin` and `interactive`: the start message and
/// the module; the rest of the client's messages come from the returned sender.
async fn execute_interactive(
    c: &mut Clients,
    limits: v1::Limits,
) -> (
    tokio::sync::mpsc::Sender<v1::ExecuteRequest>,
    Streaming<v1::ExecuteEvent>,
) {
    use v1::execute_request::Msg;
    let echo = guest("echo");
    let (tx, rx) = tokio::sync::mpsc::channel::<v1::ExecuteRequest>(8);
    tx.send(v1::ExecuteRequest {
        msg: Some(Msg::Start(v1::ExecuteStart {
            source: Some(v1::execute_start::Source::ModuleSize(echo.len() as u64)),
            stream_stdin: true,
            interactive: true,
            limits: Some(limits),
            ..Default::default()
        })),
    })
    .await
    .unwrap();
    tx.send(v1::ExecuteRequest {
        msg: Some(Msg::ModuleChunk(echo)),
    })
    .await
    .unwrap();
    let stream = c
        .exec
        .execute(tokio_stream::wrappers::ReceiverStream::new(rx))
        .await
        .unwrap()
        .into_inner();
    (tx, stream)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn execute_interactive_does_not_count_waits_towards_timeout_ms() {
    use v1::execute_request::Msg;
    let (_server, mut c) = server_and_key(Db::Sqlite, |_| {}).await;
    let limits = v1::Limits {
        timeout_ms: 300,
        ..Default::default()
    };
    let (tx, stream) = execute_interactive(&mut c, limits).await;
    for chunk in [&b"slow "[..], b"typist"] {
        tokio::time::sleep(Duration::from_millis(400)).await;
        tx.send(v1::ExecuteRequest {
            msg: Some(Msg::StdinChunk(chunk.to_vec())),
        })
        .await
        .unwrap();
    }
    tx.send(v1::ExecuteRequest {
        msg: Some(Msg::StdinEof(true)),
    })
    .await
    .unwrap();
    let end = rest(stream).await.unwrap();
    assert_eq!(end.outcome(), v1::Outcome::Success);
    assert_eq!(end.stdout, b"slow typist");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn execute_interactive_ends_an_idle_guest() {
    let (_server, mut c) = server_and_key(Db::Sqlite, |_| {}).await;
    let limits = v1::Limits {
        idle_timeout_ms: 300,
        ..Default::default()
    };
    let (tx, stream) = execute_interactive(&mut c, limits).await;
    let end = rest(stream).await.unwrap();
    drop(tx);
    assert_eq!(end.outcome(), v1::Outcome::Timeout);
    assert!(end.finished.unwrap().message.contains("idle"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn execute_interactive_needs_stream_stdin() {
    use v1::execute_request::Msg;
    let (_server, mut c) = server_and_key(Db::Sqlite, |_| {}).await;
    let start = v1::ExecuteRequest {
        msg: Some(Msg::Start(v1::ExecuteStart {
            source: Some(v1::execute_start::Source::ModuleSize(10)),
            interactive: true,
            ..Default::default()
        })),
    };
    let refused = c
        .exec
        .execute(futures::stream::iter(vec![start]))
        .await
        .unwrap_err();
    assert_bad_request(&refused, "interactive");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_waiting_guest_gives_back_its_running_slot() {
    // One running slot on the whole server: an idle session must not hold it.
    let (server, mut c) = server_and_key(Db::Sqlite, |config| {
        config.sandbox.max_running = 1;
    })
    .await;
    let (mut stream, id) = start(&mut c, echo_interactive(None)).await;
    write(&mut c, &id, b"first\n", false).await.unwrap();
    assert_eq!(read_stdout(&mut stream, 6).await, b"first\n");
    // The session now waits for input; another account's run gets the slot.
    let bob = server.create_key("bob@x.io", "free", false).await;
    let mut b = clients(&server, Some(&bob)).await;
    let hello = tokio::time::timeout(
        Duration::from_secs(10),
        run(&mut b, run_bytes(guest("hello"))),
    )
    .await
    .expect("admitted while the session waits")
    .unwrap();
    assert_eq!(hello.outcome(), v1::Outcome::Success);
    // And the session takes a slot again when input comes.
    write(&mut c, &id, b"second\n", true).await.unwrap();
    let end = rest(stream).await.unwrap();
    assert_eq!(end.stdout, b"second\n");
    assert_eq!(end.outcome(), v1::Outcome::Success);
}

/// The free tier with `stdin_write_burst` writes at once, then one a second.
fn writes_at(burst: u32) -> impl FnOnce(&mut Config) {
    move |config| {
        let free = config.tiers.get_mut("free").unwrap();
        free.stdin_writes_per_second = 1;
        free.stdin_write_burst = burst;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn writes_past_the_tier_rate_are_refused_with_retry_info_and_not_delivered() {
    let (_server, mut c) = server_and_key(Db::Sqlite, writes_at(2)).await;
    let (stream, id) = start(&mut c, echo_interactive(None)).await;
    write(&mut c, &id, b"a", false).await.unwrap();
    write(&mut c, &id, b"b", false).await.unwrap();
    let refused = write(&mut c, &id, b"c", false).await.unwrap_err();
    assert_eq!(refused.code(), Code::ResourceExhausted, "{refused:?}");
    let details = refused.get_error_details();
    assert_eq!(
        details.quota_failure().expect("QuotaFailure").violations[0].subject,
        "stdin writes per second"
    );
    let retry = details
        .retry_info()
        .expect("RetryInfo")
        .retry_delay
        .expect("a delay");
    assert!(
        retry > Duration::ZERO && retry <= Duration::from_secs(1),
        "{retry:?}"
    );
    // The session goes on once the wait is over; "c" never reached the guest.
    tokio::time::sleep(retry).await;
    write(&mut c, &id, b"d", true).await.unwrap();
    assert_eq!(rest(stream).await.unwrap().stdout, b"abd");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_write_rate_is_shared_by_all_sessions_of_an_account() {
    let (_server, mut c) = server_and_key(Db::Sqlite, writes_at(1)).await;
    let (_first, first_id) = start(&mut c, echo_interactive(None)).await;
    let (_second, second_id) = start(&mut c, echo_interactive(None)).await;
    write(&mut c, &first_id, b"a", false).await.unwrap();
    let refused = write(&mut c, &second_id, b"b", false).await.unwrap_err();
    assert_eq!(refused.code(), Code::ResourceExhausted, "{refused:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn another_accounts_writes_do_not_spend_the_write_rate() {
    let (server, mut c) = server_and_key(Db::Sqlite, writes_at(1)).await;
    let bob = server.create_key("bob@x.io", "free", false).await;
    let mut b = clients(&server, Some(&bob)).await;
    let (_theirs, their_id) = start(&mut b, echo_interactive(None)).await;
    let (_mine, my_id) = start(&mut c, echo_interactive(None)).await;
    write(&mut b, &their_id, b"x", false).await.unwrap();
    write(&mut c, &my_id, b"y", false)
        .await
        .expect("alice's budget is her own");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn idle_sessions_count_against_the_tiers_concurrent_executions() {
    // The free tier runs 2 at once: two sessions waiting for input fill it.
    let (_server, mut c) = server_and_key(Db::Sqlite, |_| {}).await;
    let mut sessions = Vec::new();
    for line in [&b"one\n"[..], b"two\n"] {
        let (mut stream, id) = start(&mut c, echo_interactive(None)).await;
        write(&mut c, &id, line, false).await.unwrap();
        assert_eq!(read_stdout(&mut stream, 4).await, line, "now waiting");
        sessions.push(stream);
    }
    let refused = c.exec.run(echo_interactive(None)).await.unwrap_err();
    assert_eq!(refused.code(), Code::ResourceExhausted, "{refused:?}");
    assert_eq!(
        refused
            .get_error_details()
            .quota_failure()
            .expect("QuotaFailure")
            .violations[0]
            .subject,
        "concurrent executions"
    );
}
