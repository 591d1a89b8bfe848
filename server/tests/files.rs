//! Files in and out through the API, on SQLite and PostgreSQL: the guest's
//! in-memory filesystem from `Run`, `Execute` (with `fs_chunk`s) and
//! `RunBatch` (shared tree plus per-case entries), collected files as
//! `file` events in pieces, and every limit on the tree a tenant sends.

mod support;

use std::collections::HashMap;

use bytes::Bytes;
use support::*;
use tonic::{Code, Status};
use tonic_types::StatusExt;
use wasmwiz_proto::v1::{self, execute_request::Msg, fs_entry::Kind};

on_both_databases!(
    who_am_i_tells_the_tiers_filesystem_limits,
    input_files_are_what_the_guest_reads,
    collected_files_come_back_before_finished,
    without_fs_the_guest_has_no_preopen,
    an_empty_fs_gives_the_guest_its_preopen,
    an_absolute_path_is_refused_naming_the_entry,
    a_dot_dot_path_is_refused_naming_the_entry,
    a_duplicate_path_is_refused_naming_the_entry,
    a_file_inside_a_file_is_refused_naming_the_entry,
    an_entry_without_a_kind_is_refused_naming_it,
    a_tree_over_fs_bytes_is_refused_on_fs,
    fs_bytes_above_the_tier_maximum_is_refused,
    started_shows_the_effective_fs_bytes,
    execute_appends_consecutive_fs_chunks_of_one_path,
    a_streamed_path_given_again_later_is_refused,
    streamed_files_past_fs_bytes_are_refused_on_fs,
    an_fs_chunk_without_start_fs_is_refused,
    a_large_collected_file_comes_in_pieces_of_at_most_one_mib,
    batch_cases_share_the_tree_and_lay_their_own_entries_over_it,
    batch_file_events_come_before_each_cases_finished,
    collected_files_count_towards_max_output_bytes,
    inline_files_past_the_message_cap_are_refused_naming_message,
    a_run_carries_files_up_to_the_tiers_fs_bytes_inline,
    a_case_entry_that_conflicts_with_the_shared_tree_is_refused_naming_it,
    the_first_stdin_message_ends_the_entries_and_reaches_the_guest,
    closing_the_client_side_ends_the_entries,
    a_quiet_stream_of_entries_is_abandoned_after_the_upload_idle_timeout,
    an_fs_chunk_after_the_entries_ended_stops_the_run,
    a_quiet_streamed_module_is_abandoned_after_the_upload_idle_timeout,
);

const MIB: usize = 1 << 20;

fn wat(name: &str) -> Vec<u8> {
    let path = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join(format!("tests/fixtures/wat/{name}.wat"));
    wat::parse_file(path).unwrap()
}

fn file(path: &str, data: impl Into<Bytes>) -> v1::FsEntry {
    v1::FsEntry {
        path: path.into(),
        kind: Some(Kind::File(data.into())),
    }
}

fn fs(entries: Vec<v1::FsEntry>, collect: &[&str]) -> v1::Filesystem {
    v1::Filesystem {
        entries,
        collect: collect.iter().map(|s| s.to_string()).collect(),
    }
}

fn run_with(module: &str, filesystem: Option<v1::Filesystem>, stdin: &[u8]) -> v1::RunRequest {
    v1::RunRequest {
        stdin: stdin.to_vec(),
        fs: filesystem,
        ..run_bytes(wat(module))
    }
}

async fn admin_server(db: Db) -> (TestServer, Clients) {
    let server = TestServer::start_with(db, |_| {}).await;
    let c = clients(&server, Some(&server.admin_key)).await;
    (server, c)
}

/// Runs `request` as the admin (unlimited tier).
async fn admin_run(db: Db, request: v1::RunRequest) -> Result<Collected, Status> {
    let (server, mut c) = admin_server(db).await;
    let result = run(&mut c, request).await;
    server.stop().await;
    result
}

/// Runs `request` on the free tier.
async fn free_run(db: Db, request: v1::RunRequest) -> Result<Collected, Status> {
    let server = TestServer::start_with(db, |_| {}).await;
    let key = server.create_key("free@files.test", "free", false).await;
    let mut c = clients(&server, Some(&key)).await;
    let result = run(&mut c, request).await;
    server.stop().await;
    result
}

/// The LIMIT_EXCEEDED ErrorInfo's metadata beside a limit's BadRequest.
fn limit_exceeded(status: &Status) -> HashMap<String, String> {
    let info = status
        .get_error_details()
        .error_info()
        .cloned()
        .unwrap_or_else(|| panic!("no ErrorInfo: {status:?}"));
    assert_eq!(info.reason, "LIMIT_EXCEEDED");
    info.metadata
}

async fn input_files_are_what_the_guest_reads(db: Db) {
    let request = run_with(
        "fs_cat",
        Some(fs(vec![file("in.txt", "hello files\n")], &[])),
        b"",
    );
    let r = admin_run(db, request).await.unwrap();
    assert_eq!(r.stdout, b"hello files\n", "exit {:?}", r.finished);
}

async fn collected_files_come_back_before_finished(db: Db) {
    let request = run_with("fs_write", Some(fs(vec![], &["out/**"])), b"abc");
    let r = admin_run(db, request).await.unwrap();
    assert_eq!(r.files(), [("out/data.bin".to_string(), b"abc".to_vec())]);
    assert_eq!(r.events[r.events.len() - 2..], ["file", "finished"]);
}

async fn without_fs_the_guest_has_no_preopen(db: Db) {
    let r = admin_run(db, run_with("fs_prestat", None, b""))
        .await
        .unwrap();
    assert_eq!(r.finished.unwrap().exit_code, 8, "EBADF");
}

async fn an_empty_fs_gives_the_guest_its_preopen(db: Db) {
    let request = run_with("fs_prestat", Some(fs(vec![], &[])), b"");
    let r = admin_run(db, request).await.unwrap();
    assert_eq!(r.outcome(), v1::Outcome::Success, "{:?}", r.finished);
}

/// The refusal of a tree whose entry 1 is `bad` (entry 0 is fine).
async fn refused_entry(db: Db, bad: v1::FsEntry, before: &str) -> Status {
    let request = run_with("fs_cat", Some(fs(vec![file(before, "ok"), bad], &[])), b"");
    admin_run(db, request).await.unwrap_err()
}

async fn an_absolute_path_is_refused_naming_the_entry(db: Db) {
    let status = refused_entry(db, file("/etc/passwd", "x"), "a.txt").await;
    assert_bad_request(&status, "fs.entries[1]");
}

async fn a_dot_dot_path_is_refused_naming_the_entry(db: Db) {
    let status = refused_entry(db, file("a/../../x", "x"), "a.txt").await;
    assert_bad_request(&status, "fs.entries[1]");
}

async fn a_duplicate_path_is_refused_naming_the_entry(db: Db) {
    let status = refused_entry(db, file("a.txt", "again"), "a.txt").await;
    assert_bad_request(&status, "fs.entries[1]");
}

async fn a_file_inside_a_file_is_refused_naming_the_entry(db: Db) {
    let status = refused_entry(db, file("a.txt/inner", "x"), "a.txt").await;
    assert_bad_request(&status, "fs.entries[1]");
}

async fn an_entry_without_a_kind_is_refused_naming_it(db: Db) {
    let kindless = v1::FsEntry {
        path: "b".into(),
        kind: None,
    };
    let status = refused_entry(db, kindless, "a.txt").await;
    assert_bad_request(&status, "fs.entries[1]");
}

async fn a_tree_over_fs_bytes_is_refused_on_fs(db: Db) {
    let mut request = run_with(
        "fs_cat",
        Some(fs(
            vec![file("a", vec![0u8; 6]), file("b", vec![0u8; 5])],
            &[],
        )),
        b"",
    );
    request.limits = Some(v1::Limits {
        fs_bytes: 10,
        ..Default::default()
    });
    let status = free_run(db, request).await.unwrap_err();
    assert_bad_request(&status, "fs");
    let info = limit_exceeded(&status);
    assert_eq!(
        (info["requested"].as_str(), info["maximum"].as_str()),
        ("11", "10")
    );
}

async fn fs_bytes_above_the_tier_maximum_is_refused(db: Db) {
    let max = wasmwiz_server::config::default_tiers()["free"].max_fs_bytes;
    let mut request = run_with("fs_prestat", Some(fs(vec![], &[])), b"");
    request.limits = Some(v1::Limits {
        fs_bytes: max + 1,
        ..Default::default()
    });
    let status = free_run(db, request).await.unwrap_err();
    assert_bad_request(&status, "limits.fs_bytes");
    assert_eq!(limit_exceeded(&status)["maximum"], max.to_string());
}

async fn started_shows_the_effective_fs_bytes(db: Db) {
    let max = wasmwiz_server::config::default_tiers()["free"].max_fs_bytes;
    let r = free_run(db, run_with("fs_prestat", None, b""))
        .await
        .unwrap();
    assert_eq!(r.started.unwrap().limits.unwrap().fs_bytes, max);
}

async fn who_am_i_tells_the_tiers_filesystem_limits(db: Db) {
    let free = wasmwiz_server::config::default_tiers()["free"].clone();
    let server = TestServer::start_with(db, |_| {}).await;
    let key = server.create_key("limits@files.test", "free", false).await;
    let mut c = clients(&server, Some(&key)).await;
    let me = c
        .account
        .who_am_i(v1::WhoAmIRequest {})
        .await
        .unwrap()
        .into_inner();
    let limits = me.limits.unwrap();
    assert_eq!(
        (limits.max_fs_bytes, limits.max_fs_entries),
        (free.max_fs_bytes, free.max_fs_entries)
    );
    server.stop().await;
}

/// `start` (with `fs` when `with_fs`), the module in one chunk, then `rest`.
fn execute_messages(
    module: &str,
    with_fs: Option<v1::Filesystem>,
    stream_stdin: bool,
    limits: Option<v1::Limits>,
    rest: Vec<Msg>,
) -> Vec<v1::ExecuteRequest> {
    let module = wat(module);
    let start = v1::ExecuteStart {
        source: Some(v1::execute_start::Source::ModuleSize(module.len() as u64)),
        fs: with_fs,
        stream_stdin,
        limits,
        ..Default::default()
    };
    [Msg::Start(start), Msg::ModuleChunk(module)]
        .into_iter()
        .chain(rest)
        .map(|msg| v1::ExecuteRequest { msg: Some(msg) })
        .collect()
}

async fn execute(db: Db, messages: Vec<v1::ExecuteRequest>) -> Result<Collected, Status> {
    let (server, mut c) = admin_server(db).await;
    let result = async {
        let events = c.exec.execute(futures::stream::iter(messages)).await?;
        collect(events.into_inner()).await
    }
    .await;
    server.stop().await;
    result
}

async fn execute_appends_consecutive_fs_chunks_of_one_path(db: Db) {
    let messages = execute_messages(
        "fs_cat",
        Some(fs(vec![], &[])),
        false,
        None,
        vec![
            Msg::FsChunk(file("in.txt", "one ")),
            Msg::FsChunk(file("in.txt", "two ")),
            Msg::FsChunk(file("in.txt", "three")),
            Msg::FsEof(true),
        ],
    );
    let r = execute(db, messages).await.unwrap();
    assert_eq!(r.stdout, b"one two three", "{:?}", r.finished);
}

async fn a_streamed_path_given_again_later_is_refused(db: Db) {
    let messages = execute_messages(
        "fs_cat",
        Some(fs(vec![], &[])),
        false,
        None,
        vec![
            Msg::FsChunk(file("in.txt", "a")),
            Msg::FsChunk(file("other", "b")),
            Msg::FsChunk(file("in.txt", "c")),
            Msg::FsEof(true),
        ],
    );
    let status = execute(db, messages).await.unwrap_err();
    assert_bad_request(&status, "fs_chunk");
}

async fn streamed_files_past_fs_bytes_are_refused_on_fs(db: Db) {
    let limits = v1::Limits {
        fs_bytes: 100,
        ..Default::default()
    };
    let messages = execute_messages(
        "fs_cat",
        Some(fs(vec![], &[])),
        false,
        Some(limits),
        vec![
            Msg::FsChunk(file("in.txt", vec![1u8; 60])),
            Msg::FsChunk(file("in.txt", vec![1u8; 60])),
            Msg::FsEof(true),
        ],
    );
    let status = execute(db, messages).await.unwrap_err();
    assert_bad_request(&status, "fs");
    assert_eq!(limit_exceeded(&status)["requested"], "120");
}

async fn an_fs_chunk_without_start_fs_is_refused(db: Db) {
    // echo waits for its streamed stdin, so the refusal comes first.
    let module = guest("echo");
    let start = v1::ExecuteStart {
        source: Some(v1::execute_start::Source::ModuleSize(module.len() as u64)),
        stream_stdin: true,
        ..Default::default()
    };
    let messages = [
        Msg::Start(start),
        Msg::ModuleChunk(module),
        Msg::FsChunk(file("in.txt", "x")),
    ]
    .into_iter()
    .map(|msg| v1::ExecuteRequest { msg: Some(msg) })
    .collect();
    let status = execute(db, messages).await.unwrap_err();
    assert_bad_request(&status, "fs_chunk");
}

async fn a_large_collected_file_comes_in_pieces_of_at_most_one_mib(db: Db) {
    let data: Vec<u8> = (0..(2 * MIB + MIB / 2)).map(|i| (i % 251) as u8).collect();
    let request = run_with("fs_write", Some(fs(vec![], &["out/**"])), &data);
    let r = admin_run(db, request).await.unwrap();
    let sizes: Vec<usize> = r.file_pieces.iter().map(|(_, d)| d.len()).collect();
    assert_eq!(sizes, [MIB, MIB, MIB / 2]);
    assert_eq!(r.files(), [("out/data.bin".to_string(), data)]);
}

/// A batch's events, all of them, in order.
async fn batch_events(db: Db, request: v1::RunBatchRequest) -> Vec<v1::BatchEvent> {
    let (server, mut c) = admin_server(db).await;
    let mut stream = c.exec.run_batch(request).await.unwrap().into_inner();
    let mut events = Vec::new();
    while let Some(event) = stream.message().await.unwrap() {
        events.push(event);
    }
    server.stop().await;
    events
}

async fn batch_cases_share_the_tree_and_lay_their_own_entries_over_it(db: Db) {
    let request = v1::RunBatchRequest {
        source: Some(v1::run_batch_request::Source::Module(wat("fs_cat"))),
        fs: Some(fs(vec![file("in.txt", "shared")], &[])),
        cases: vec![
            v1::BatchCase {
                name: "shared".into(),
                ..Default::default()
            },
            v1::BatchCase {
                name: "own".into(),
                fs: Some(fs(vec![file("in.txt", "own")], &[])),
                ..Default::default()
            },
        ],
        ..Default::default()
    };
    let mut stdouts: Vec<(u32, Bytes)> = batch_events(db, request)
        .await
        .into_iter()
        .filter(|e| e.finished.is_some())
        .map(|e| (e.case_index, e.stdout))
        .collect();
    stdouts.sort();
    assert_eq!(
        stdouts,
        [(0, Bytes::from("shared")), (1, Bytes::from("own"))]
    );
}

async fn batch_file_events_come_before_each_cases_finished(db: Db) {
    let case = |name: &str, stdin: &str| v1::BatchCase {
        name: name.into(),
        stdin: stdin.as_bytes().to_vec(),
        ..Default::default()
    };
    let request = v1::RunBatchRequest {
        source: Some(v1::run_batch_request::Source::Module(wat("fs_write"))),
        fs: Some(fs(vec![], &["out/**"])),
        cases: vec![case("first", "1"), case("second", "22")],
        ..Default::default()
    };
    let events = batch_events(db, request).await;
    for index in [0u32, 1] {
        let of_case: Vec<&v1::BatchEvent> =
            events.iter().filter(|e| e.case_index == index).collect();
        let kinds: Vec<&str> = of_case
            .iter()
            .map(|e| if e.file.is_some() { "file" } else { "finished" })
            .collect();
        assert_eq!(kinds, ["file", "finished"], "case {index}");
        let (piece, last) = (of_case[0], of_case[1]);
        assert_eq!(
            (piece.name.as_str(), piece.execution_id.as_str()),
            (last.name.as_str(), last.execution_id.as_str())
        );
        let data = match &piece.file.as_ref().unwrap().kind {
            Some(Kind::File(data)) => data.len(),
            other => panic!("{other:?}"),
        };
        assert_eq!(data, index as usize + 1);
    }
}

async fn collected_files_count_towards_max_output_bytes(db: Db) {
    let mut request = run_with("fs_write", Some(fs(vec![], &["out/**"])), &[7u8; 100]);
    request.limits = Some(v1::Limits {
        max_output_bytes: 10,
        ..Default::default()
    });
    let r = admin_run(db, request).await.unwrap();
    assert_eq!(r.outcome(), v1::Outcome::OutputLimit, "{:?}", r.finished);
}

async fn inline_files_past_the_message_cap_are_refused_naming_message(db: Db) {
    let server = TestServer::start_with(db, |_| {}).await;
    let tier = server.config.tier("free").unwrap();
    let cap = wasmwiz_server::transport::auth_layer::tier_message_bytes(&server.config, tier);
    let key = server.create_key("free@files.test", "free", false).await;
    let mut c = clients(&server, Some(&key)).await;
    let request = run_with(
        "fs_prestat",
        Some(fs(vec![file("big", vec![0u8; cap as usize])], &[])),
        b"",
    );
    let status = run(&mut c, request).await.unwrap_err();
    server.stop().await;
    assert_bad_request(&status, "message");
    assert_eq!(status.code(), Code::InvalidArgument);
}

async fn a_run_carries_files_up_to_the_tiers_fs_bytes_inline(db: Db) {
    // More than module + stdin + args + overhead of the free tier alone.
    let max = wasmwiz_server::config::default_tiers()["free"].max_fs_bytes as usize;
    let request = run_with(
        "fs_prestat",
        Some(fs(vec![file("big", vec![0u8; max])], &[])),
        b"",
    );
    let r = free_run(db, request).await.unwrap();
    assert_eq!(r.outcome(), v1::Outcome::Success, "{:?}", r.finished);
}

async fn a_case_entry_that_conflicts_with_the_shared_tree_is_refused_naming_it(db: Db) {
    // Fine on its own, but the shared tree has a file at `a`.
    let request = v1::RunBatchRequest {
        source: Some(v1::run_batch_request::Source::Module(wat("fs_cat"))),
        fs: Some(fs(vec![file("a", "file")], &[])),
        cases: vec![v1::BatchCase {
            fs: Some(fs(vec![file("b", ""), file("a/inner", "x")], &[])),
            ..Default::default()
        }],
        ..Default::default()
    };
    let (server, mut c) = admin_server(db).await;
    let status = async {
        let mut stream = c.exec.run_batch(request).await?.into_inner();
        while stream.message().await?.is_some() {}
        Ok::<_, Status>(())
    }
    .await
    .unwrap_err();
    server.stop().await;
    assert_bad_request(&status, "cases[0].fs.entries[1]");
}

async fn the_first_stdin_message_ends_the_entries_and_reaches_the_guest(db: Db) {
    let messages = execute_messages(
        "fs_write",
        Some(fs(vec![], &["out/**"])),
        true,
        None,
        vec![
            Msg::FsChunk(file("unrelated.txt", "x")),
            Msg::StdinChunk(b"from stdin".to_vec()),
            Msg::StdinEof(true),
        ],
    );
    let r = execute(db, messages).await.unwrap();
    assert_eq!(
        r.files(),
        [("out/data.bin".to_string(), b"from stdin".to_vec())]
    );
}

async fn closing_the_client_side_ends_the_entries(db: Db) {
    // No `fs_eof`: the request stream simply ends after the last chunk.
    let messages = execute_messages(
        "fs_cat",
        Some(fs(vec![], &[])),
        false,
        None,
        vec![Msg::FsChunk(file("in.txt", "last"))],
    );
    let r = execute(db, messages).await.unwrap();
    assert_eq!(r.stdout, b"last");
}

async fn a_quiet_stream_of_entries_is_abandoned_after_the_upload_idle_timeout(db: Db) {
    let server = TestServer::start_with(db, |config| {
        config.tiers.get_mut("free").unwrap().upload_idle_timeout_ms = 200;
    })
    .await;
    let key = server.create_key("idle@files.test", "free", false).await;
    let mut c = clients(&server, Some(&key)).await;
    let (tx, rx) = tokio::sync::mpsc::channel(8);
    for message in execute_messages("fs_cat", Some(fs(vec![], &[])), false, None, vec![]) {
        tx.send(message).await.unwrap();
    }
    // `tx` stays open and silent: no fs_eof, no close.
    let stream = tokio_stream::wrappers::ReceiverStream::new(rx);
    let answer = tokio::time::timeout(std::time::Duration::from_secs(10), c.exec.execute(stream));
    let status = answer
        .await
        .expect("answered well before 10 s")
        .unwrap_err();
    drop(tx);
    server.stop().await;
    assert_eq!(status.code(), Code::DeadlineExceeded, "{status:?}");
    assert_eq!(
        status.get_error_details().error_info().unwrap().reason,
        "UPLOAD_IDLE"
    );
}

async fn an_fs_chunk_after_the_entries_ended_stops_the_run(db: Db) {
    // The guest loops until stopped; stdin is not streamed, so the late
    // chunk is only seen by the server watching the rest of the stream.
    let limits = v1::Limits {
        timeout_ms: 20_000,
        ..Default::default()
    };
    let messages = execute_messages(
        "infinite_loop",
        Some(fs(vec![], &[])),
        false,
        Some(limits),
        vec![Msg::FsEof(true), Msg::FsChunk(file("late.txt", "x"))],
    );
    let started = std::time::Instant::now();
    let status = execute(db, messages).await.unwrap_err();
    assert_bad_request(&status, "fs_chunk");
    assert!(started.elapsed().as_secs() < 10, "stopped, not timed out");
}

async fn a_quiet_streamed_module_is_abandoned_after_the_upload_idle_timeout(db: Db) {
    let server = TestServer::start_with(db, |config| {
        config.tiers.get_mut("free").unwrap().upload_idle_timeout_ms = 200;
    })
    .await;
    let key = server.create_key("idle@files.test", "free", false).await;
    let mut c = clients(&server, Some(&key)).await;
    let (tx, rx) = tokio::sync::mpsc::channel(8);
    let start = v1::ExecuteStart {
        source: Some(v1::execute_start::Source::ModuleSize(1000)),
        ..Default::default()
    };
    tx.send(v1::ExecuteRequest {
        msg: Some(Msg::Start(start)),
    })
    .await
    .unwrap();
    // Announced 1000 module bytes, sends none, and keeps the stream open.
    let stream = tokio_stream::wrappers::ReceiverStream::new(rx);
    let answer = tokio::time::timeout(std::time::Duration::from_secs(10), c.exec.execute(stream));
    let status = answer
        .await
        .expect("answered well before 10 s")
        .unwrap_err();
    drop(tx);
    server.stop().await;
    assert_eq!(status.code(), Code::DeadlineExceeded, "{status:?}");
}
