//! Signed execution receipts against a real server: a receipt verifies
//! with the key `GetServerInfo` lists (which needs no API key), and stops
//! verifying once the output, the module hash or the fuel is changed; the
//! signing key survives a restart.

use ed25519_dalek::{Signature, Verifier, VerifyingKey};
use prost::Message;
use sha2::{Digest, Sha256};
use tonic::transport::Channel;
use wasmwiz_proto::v1::{
    self, execute_event::Event, execute_request::Msg,
    execution_service_client::ExecutionServiceClient, server_service_client::ServerServiceClient,
};
use wasmwiz_server::testing::{Authed, Db, TestServer};

fn guest(name: &str) -> Vec<u8> {
    let path = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join(format!("../examples/guests/{name}.wasm"));
    std::fs::read(path).unwrap()
}

fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// What one execution streamed back.
#[derive(Debug, Default)]
struct Ran {
    started: Option<v1::Started>,
    stdout: Vec<u8>,
    finished: Option<v1::Finished>,
}

impl Ran {
    fn receipt(&self) -> v1::Receipt {
        self.finished
            .as_ref()
            .expect("finished")
            .receipt
            .clone()
            .expect("a receipt")
    }
}

async fn collect(mut stream: tonic::Streaming<v1::ExecuteEvent>) -> Ran {
    let mut ran = Ran::default();
    while let Some(event) = stream.message().await.expect("events") {
        match event.event {
            Some(Event::Started(started)) => ran.started = Some(started),
            Some(Event::Stdout(bytes)) => ran.stdout.extend_from_slice(&bytes),
            Some(Event::Finished(finished)) => ran.finished = Some(finished),
            _ => {}
        }
    }
    ran
}

async fn exec_client(server: &TestServer) -> ExecutionServiceClient<Authed> {
    ExecutionServiceClient::new(server.authed(Some(&server.admin_key)).await)
}

/// `GetServerInfo` over a channel without any key.
async fn server_info(server: &TestServer) -> v1::GetServerInfoResponse {
    let channel: Channel = server.channel().await;
    ServerServiceClient::new(channel)
        .get_server_info(v1::GetServerInfoRequest {})
        .await
        .expect("GetServerInfo without a key")
        .into_inner()
}

/// The public key `info` lists under `key_id`.
fn listed_key(info: &v1::GetServerInfoResponse, key_id: &str) -> VerifyingKey {
    let key = info
        .receipt_keys
        .iter()
        .find(|k| k.key_id == key_id)
        .unwrap_or_else(|| panic!("key {key_id} not listed in {info:?}"));
    VerifyingKey::from_bytes(key.public_key.as_slice().try_into().unwrap()).unwrap()
}

fn verifies(receipt: &v1::Receipt, key: &VerifyingKey) -> bool {
    let Ok(signature) = Signature::from_slice(&receipt.signature) else {
        return false;
    };
    key.verify(&receipt.statement, &signature).is_ok()
}

fn statement(receipt: &v1::Receipt) -> v1::ReceiptStatement {
    v1::ReceiptStatement::decode(receipt.statement.as_slice()).unwrap()
}

fn hello_with_receipt() -> v1::RunRequest {
    v1::RunRequest {
        source: Some(v1::run_request::Source::Module(guest("hello"))),
        receipt: true,
        ..Default::default()
    }
}

async fn run(server: &TestServer, request: v1::RunRequest) -> Ran {
    let mut exec = exec_client(server).await;
    collect(exec.run(request).await.expect("Run").into_inner()).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_info_needs_no_key_and_lists_the_signing_key() {
    let server = TestServer::start().await;
    let info = server_info(&server).await;
    assert_eq!(info.server_version, env!("CARGO_PKG_VERSION"));
    let engine = info.engine.as_ref().expect("engine identity");
    assert!(!engine.wasmi_version.is_empty(), "{engine:?}");
    assert_eq!(info.receipt_keys.len(), 1, "{info:?}");
    let key = &info.receipt_keys[0];
    assert!(key.current);
    assert_eq!(key.public_key.len(), 32);
    assert_eq!(key.key_id, sha256_hex(&key.public_key)[..16]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_receipt_verifies_and_states_what_the_run_did() {
    let server = TestServer::start().await;
    let ran = run(&server, hello_with_receipt()).await;
    let receipt = ran.receipt();
    let info = server_info(&server).await;
    assert!(verifies(&receipt, &listed_key(&info, &receipt.key_id)));

    let started = ran.started.as_ref().unwrap();
    let finished = ran.finished.as_ref().unwrap();
    let stated = statement(&receipt);
    assert_eq!(stated.version, 1);
    assert_eq!(stated.module_sha256, started.module_sha256);
    assert_eq!(stated.module_sha256, sha256_hex(&guest("hello")));
    assert_eq!(stated.execution_id, started.execution_id);
    assert_eq!(ran.stdout, b"Hello, WasmWiz!\n");
    assert_eq!(stated.stdout_sha256, sha256_hex(&ran.stdout));
    assert_eq!(stated.stderr_sha256, sha256_hex(b""));
    assert_eq!(stated.stdout_bytes, ran.stdout.len() as u64);
    assert_eq!(stated.outcome, v1::Outcome::Success as i32);
    assert_eq!(stated.exit_code, 0);
    assert_eq!(stated.fuel_consumed, finished.fuel_consumed);
    assert_eq!(stated.engine, info.engine);
    assert_eq!(stated.inputs_sha256.len(), 64);
    assert!(stated
        .finished_at
        .is_some_and(|t| t.seconds > 1_700_000_000));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_receipt_is_sent_unless_asked_for() {
    let server = TestServer::start().await;
    let ran = run(
        &server,
        v1::RunRequest {
            receipt: false,
            ..hello_with_receipt()
        },
    )
    .await;
    assert_eq!(ran.finished.unwrap().receipt, None);
}

/// The receipt with its statement changed by `change`, re-encoded.
fn tampered(receipt: &v1::Receipt, change: impl Fn(&mut v1::ReceiptStatement)) -> v1::Receipt {
    let mut stated = statement(receipt);
    change(&mut stated);
    v1::Receipt {
        statement: stated.encode_to_vec(),
        ..receipt.clone()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_changed_stdout_digest_module_hash_or_fuel_fails_verification() {
    let server = TestServer::start().await;
    let receipt = run(&server, hello_with_receipt()).await.receipt();
    let key = listed_key(&server_info(&server).await, &receipt.key_id);
    assert!(verifies(&receipt, &key));
    let mut other_stdout = b"Hello, WasmWiz!\n".to_vec();
    other_stdout[0] ^= 1;
    type Change = Box<dyn Fn(&mut v1::ReceiptStatement)>;
    let changes: Vec<(&str, Change)> = vec![
        (
            "stdout",
            Box::new(move |s| s.stdout_sha256 = sha256_hex(&other_stdout)),
        ),
        (
            "module",
            Box::new(|s| s.module_sha256 = sha256_hex(b"another module")),
        ),
        ("fuel", Box::new(|s| s.fuel_consumed -= 1)),
    ];
    for (what, change) in changes {
        assert!(
            !verifies(&tampered(&receipt, change), &key),
            "a receipt with another {what} still verifies"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn any_flipped_byte_of_the_statement_fails_verification() {
    let server = TestServer::start().await;
    let receipt = run(&server, hello_with_receipt()).await.receipt();
    let key = listed_key(&server_info(&server).await, &receipt.key_id);
    for at in 0..receipt.statement.len() {
        let mut flipped = receipt.clone();
        flipped.statement[at] ^= 0x80;
        assert!(
            !verifies(&flipped, &key),
            "flipping byte {at} still verifies"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_signing_key_persists_across_restarts() {
    let server = TestServer::start().await;
    let first_id = server_info(&server).await.receipt_keys[0].key_id.clone();
    let receipt = run(&server, hello_with_receipt()).await.receipt();
    let (config, data_dir) = server.stop().await;
    let server = TestServer::start_config(config, data_dir).await;
    let info = server_info(&server).await;
    assert_eq!(info.receipt_keys[0].key_id, first_id);
    assert!(verifies(&receipt, &listed_key(&info, &receipt.key_id)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_configured_key_signs_and_retired_keys_stay_listed() {
    let seed = "5a".repeat(32);
    let retired = ed25519_dalek::SigningKey::from_bytes(&[9u8; 32]).verifying_key();
    let retired_hex = hex::encode(retired.as_bytes());
    let server = TestServer::start_with(Db::Sqlite, |config| {
        config.receipt_signing_key = Some(seed.clone());
        config.receipt_keys_retired = vec![retired_hex.clone()];
    })
    .await;
    let configured = ed25519_dalek::SigningKey::from_bytes(&[0x5a; 32]).verifying_key();
    let info = server_info(&server).await;
    let listed: Vec<(Vec<u8>, bool)> = info
        .receipt_keys
        .iter()
        .map(|k| (k.public_key.clone(), k.current))
        .collect();
    assert_eq!(
        listed,
        vec![
            (configured.as_bytes().to_vec(), true),
            (retired.as_bytes().to_vec(), false)
        ]
    );
    let receipt = run(&server, hello_with_receipt()).await.receipt();
    assert_eq!(receipt.key_id, info.receipt_keys[0].key_id);
    assert!(verifies(&receipt, &configured));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_batch_case_carries_a_receipt_of_its_own_output() {
    let server = TestServer::start().await;
    let mut exec = exec_client(&server).await;
    let stdins = [b"first\n".to_vec(), b"second\n".to_vec()];
    let mut stream = exec
        .run_batch(v1::RunBatchRequest {
            source: Some(v1::run_batch_request::Source::Module(guest("echo"))),
            cases: stdins
                .iter()
                .map(|stdin| v1::BatchCase {
                    stdin: stdin.clone(),
                    ..Default::default()
                })
                .collect(),
            receipt: true,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let key = {
        let info = server_info(&server).await;
        listed_key(&info, &info.receipt_keys[0].key_id)
    };
    let mut seen = 0;
    while let Some(event) = stream.message().await.unwrap() {
        let Some(finished) = event.finished else {
            continue;
        };
        let receipt = finished.receipt.expect("a receipt per case");
        assert!(verifies(&receipt, &key));
        let stated = statement(&receipt);
        let stdin = &stdins[event.case_index as usize];
        assert_eq!(event.stdout, *stdin);
        assert_eq!(stated.stdout_sha256, sha256_hex(stdin));
        assert_eq!(stated.execution_id, event.execution_id);
        seen += 1;
    }
    assert_eq!(seen, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn different_stdin_gives_a_different_inputs_digest() {
    let server = TestServer::start().await;
    let echo = |stdin: &[u8]| v1::RunRequest {
        source: Some(v1::run_request::Source::Module(guest("echo"))),
        stdin: stdin.to_vec(),
        receipt: true,
        ..Default::default()
    };
    let a = statement(&run(&server, echo(b"a")).await.receipt());
    let a_again = statement(&run(&server, echo(b"a")).await.receipt());
    let b = statement(&run(&server, echo(b"b")).await.receipt());
    assert_eq!(a.inputs_sha256, a_again.inputs_sha256);
    assert_ne!(a.inputs_sha256, b.inputs_sha256);
    assert_ne!(a.execution_id, a_again.execution_id);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streamed_stdin_is_digested_like_the_same_stdin_given_whole() {
    let server = TestServer::start().await;
    let echo = guest("echo");
    let whole = run(
        &server,
        v1::RunRequest {
            source: Some(v1::run_request::Source::Module(echo.clone())),
            stdin: b"streamed in two pieces\n".to_vec(),
            receipt: true,
            ..Default::default()
        },
    )
    .await;
    let messages = vec![
        Msg::Start(v1::ExecuteStart {
            source: Some(v1::execute_start::Source::ModuleSize(echo.len() as u64)),
            stream_stdin: true,
            receipt: true,
            ..Default::default()
        }),
        Msg::ModuleChunk(echo),
        Msg::StdinChunk(b"streamed in ".to_vec()),
        Msg::StdinChunk(b"two pieces\n".to_vec()),
        Msg::StdinEof(true),
    ];
    let requests = messages
        .into_iter()
        .map(|msg| v1::ExecuteRequest { msg: Some(msg) });
    let mut exec = exec_client(&server).await;
    let streamed = collect(
        exec.execute(futures::stream::iter(requests))
            .await
            .unwrap()
            .into_inner(),
    )
    .await;
    assert_eq!(streamed.stdout, whole.stdout);
    let (whole, streamed) = (statement(&whole.receipt()), statement(&streamed.receipt()));
    assert_eq!(streamed.inputs_sha256, whole.inputs_sha256);
    assert_eq!(streamed.stdout_sha256, whole.stdout_sha256);
}

/// A `GetServerInfoRequest` with unknown bytes added (field 15).
#[derive(Clone, PartialEq, prost::Message)]
struct Padded {
    #[prost(bytes = "vec", tag = "15")]
    pad: Vec<u8>,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_info_takes_the_anonymous_message_cap() {
    let server = TestServer::start().await;
    let cap = server.config.anonymous_message_bytes;
    let call = |pad: usize| {
        let channel = server.channel();
        async move {
            let mut grpc = tonic::client::Grpc::new(channel.await);
            grpc.ready().await.unwrap();
            grpc.unary(
                tonic::Request::new(Padded { pad: vec![0; pad] }),
                http::uri::PathAndQuery::from_static("/wasmwiz.v1.ServerService/GetServerInfo"),
                tonic_prost::ProstCodec::<Padded, v1::GetServerInfoResponse>::default(),
            )
            .await
        }
    };
    assert!(call(1024).await.is_ok());
    let refused = call(cap + 1).await.unwrap_err();
    assert_eq!(refused.code(), tonic::Code::InvalidArgument, "{refused:?}");
    assert!(refused.message().contains("unauthenticated"), "{refused:?}");
}
