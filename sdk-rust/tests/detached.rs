//! The detached-execution calls of the library against a real server:
//! submit, get, watch, cancel, list.

mod common;

use std::time::{Duration, Instant};

use common::{client, guest, TestServer};
use futures::StreamExt;
use wasmwiz::{Client, Code, Error, Event, Execution, ExecutionState, Limits, Module, Outcome};

/// Polls until execution `id` has ended.
async fn ended(client: &Client, id: &str) -> Execution {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let execution = client.get_execution(id).await.unwrap();
        if execution.is_ended() {
            return execution;
        }
        assert!(Instant::now() < deadline, "{id} did not end");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_submitted_run_is_collected_later() {
    let server = TestServer::start().await;
    let client = client(&server, &server.admin_key).await;
    let id = client
        .run(Module::file(guest("echo.wasm")))
        .stdin("later")
        .submit()
        .await
        .unwrap();
    let execution = ended(&client, &id).await;
    assert_eq!(execution.id, id);
    assert_eq!(execution.state, ExecutionState::Finished);
    assert_eq!(execution.attempts, 1);
    assert_eq!(execution.stdout, b"later");
    assert_eq!(execution.finished.unwrap().outcome, Outcome::Success);
}

#[tokio::test(flavor = "multi_thread")]
async fn watch_replays_a_submitted_run_from_its_start() {
    let server = TestServer::start().await;
    let client = client(&server, &server.admin_key).await;
    let id = client
        .run(Module::file(guest("progress.wasm")))
        .arg("2")
        .submit()
        .await
        .unwrap();
    ended(&client, &id).await;
    let mut events = client.watch_execution(&id).await.unwrap();
    let (mut stdout, mut started, mut finished) = (Vec::new(), None, None);
    while let Some(event) = events.next().await {
        match event.unwrap() {
            Event::Started(s) => started = Some(s),
            Event::Stdout(chunk) => stdout.extend_from_slice(&chunk),
            Event::Finished(f) => finished = Some(f),
            Event::Stderr(_) | Event::File(_) => {}
        }
    }
    assert_eq!(started.unwrap().execution_id, id);
    assert_eq!(stdout, b"tick 0\ntick 1\ndone\n");
    assert_eq!(finished.unwrap().outcome, Outcome::Success);
}

#[tokio::test(flavor = "multi_thread")]
async fn cancel_stops_a_submitted_run() {
    let server = TestServer::start().await;
    let client = client(&server, &server.admin_key).await;
    let id = client
        .run(Module::file(guest("loop.wasm")))
        .limits(Limits::new().timeout(Duration::from_secs(60)))
        .submit()
        .await
        .unwrap();
    client.cancel_execution(&id).await.unwrap();
    let execution = ended(&client, &id).await;
    assert_eq!(execution.state, ExecutionState::Cancelled, "{execution:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn list_shows_the_callers_executions_newest_first() {
    let server = TestServer::start().await;
    let client = client(&server, &server.admin_key).await;
    let mut ids = Vec::new();
    for _ in 0..2 {
        let id = client
            .run(Module::file(guest("hello.wasm")))
            .submit()
            .await
            .unwrap();
        ended(&client, &id).await;
        ids.push(id);
    }
    let page = client
        .list_executions(Some(ExecutionState::Finished), 10, "")
        .await
        .unwrap();
    let listed: Vec<&str> = page
        .executions
        .iter()
        .map(|e| e.execution_id.as_str())
        .collect();
    assert_eq!(listed, [ids[1].as_str(), ids[0].as_str()]);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_streamed_stdin_cannot_be_submitted() {
    let server = TestServer::start().await;
    let client = client(&server, &server.admin_key).await;
    let refused = client
        .run(Module::file(guest("echo.wasm")))
        .stdin_stream(futures::stream::empty())
        .submit()
        .await
        .unwrap_err();
    assert!(matches!(refused, Error::Config(_)), "{refused:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn another_accounts_execution_is_not_found() {
    let server = TestServer::start().await;
    let owner = client(&server, &server.admin_key).await;
    let id = owner
        .run(Module::file(guest("hello.wasm")))
        .submit()
        .await
        .unwrap();
    let other_key = server.create_key("other@example.com", "free", false).await;
    let other = client(&server, &other_key).await;
    let refused = other.get_execution(&id).await.unwrap_err();
    assert_eq!(refused.code(), Code::NotFound);
}

#[tokio::test(flavor = "multi_thread")]
async fn get_batch_lists_a_submitted_batchs_cases_in_order() {
    let server = TestServer::start().await;
    let client = client(&server, &server.admin_key).await;
    let mut raw = wasmwiz::proto::execution_service_client::ExecutionServiceClient::new(
        server.authed(Some(&server.admin_key)).await,
    );
    let batch = wasmwiz::proto::RunBatchRequest {
        source: Some(wasmwiz::proto::run_batch_request::Source::Module(
            common::guest_bytes("echo.wasm"),
        )),
        cases: ["a", "b"]
            .iter()
            .map(|stdin| wasmwiz::proto::BatchCase {
                stdin: stdin.as_bytes().to_vec(),
                ..Default::default()
            })
            .collect(),
        ..Default::default()
    };
    let submitted = raw
        .submit_batch(wasmwiz::proto::SubmitBatchRequest {
            batch: Some(batch),
            webhook_url: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    let got = client.get_batch(&submitted.batch_id).await.unwrap();
    let ids: Vec<&str> = got.cases.iter().map(|c| c.execution_id.as_str()).collect();
    assert_eq!(ids, submitted.execution_ids);
}
