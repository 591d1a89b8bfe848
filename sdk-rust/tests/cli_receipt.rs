//! `wasmwiz receipt verify`: offline checks of a receipt a real server
//! signed, against its key and the output files.

mod common;

use common::{cli, guest_bytes, TestServer};
use prost::Message;
use wasmwiz::proto::{
    self as v1, execute_event::Event, execution_service_client::ExecutionServiceClient,
    server_service_client::ServerServiceClient,
};

/// No server listens here: `receipt verify` must not need one.
const NOWHERE: &str = "http://127.0.0.1:9";

/// A hello run's receipt and stdout written to files, and the server's
/// public key in hex.
struct Signed {
    dir: tempfile::TempDir,
    public_key: String,
    stdout: Vec<u8>,
    receipt: v1::Receipt,
}

impl Signed {
    fn path(&self, name: &str) -> String {
        self.dir.path().join(name).display().to_string()
    }

    fn write(&self, name: &str, bytes: &[u8]) -> String {
        std::fs::write(self.dir.path().join(name), bytes).unwrap();
        self.path(name)
    }
}

async fn signed_hello() -> Signed {
    let server = TestServer::start().await;
    let mut exec = ExecutionServiceClient::new(server.authed(Some(&server.admin_key)).await);
    let mut events = exec
        .run(v1::RunRequest {
            source: Some(v1::run_request::Source::Module(guest_bytes("hello.wasm"))),
            receipt: true,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let (mut stdout, mut receipt) = (Vec::new(), None);
    while let Some(event) = events.message().await.unwrap() {
        match event.event {
            Some(Event::Stdout(bytes)) => stdout.extend_from_slice(&bytes),
            Some(Event::Finished(finished)) => receipt = finished.receipt,
            _ => {}
        }
    }
    let info = ServerServiceClient::new(server.channel().await)
        .get_server_info(v1::GetServerInfoRequest {})
        .await
        .unwrap()
        .into_inner();
    let signed = Signed {
        dir: tempfile::tempdir().unwrap(),
        public_key: hex::encode(&info.receipt_keys[0].public_key),
        stdout,
        receipt: receipt.expect("a receipt"),
    };
    signed.write("receipt.bin", &signed.receipt.encode_to_vec());
    signed.write("stdout.txt", &signed.stdout);
    signed
}

#[tokio::test(flavor = "multi_thread")]
async fn a_receipt_and_its_stdout_verify_offline() {
    let s = signed_hello().await;
    let out = cli(
        NOWHERE,
        None,
        &[
            "receipt",
            "verify",
            &s.path("receipt.bin"),
            "--public-key",
            &s.public_key,
            "--stdout",
            &s.path("stdout.txt"),
        ],
        None,
    )
    .await;
    assert_eq!(out.code, 0, "{out:?}");
    assert!(out.stdout.starts_with("receipt verified"), "{out:?}");
    assert!(out.stdout.contains("matches    stdout"), "{out:?}");
    assert!(out.stdout.contains("SUCCESS (exit code 0)"), "{out:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_public_key_may_come_from_a_file() {
    let s = signed_hello().await;
    let key_file = s.write("server.pub", format!("{}\n", s.public_key).as_bytes());
    let out = cli(
        NOWHERE,
        None,
        &[
            "receipt",
            "verify",
            &s.path("receipt.bin"),
            "--public-key",
            &key_file,
            "--json",
        ],
        None,
    )
    .await;
    assert_eq!(out.code, 0, "{out:?}");
    let json: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(json["verified"], true);
    assert_eq!(json["stdout"]["bytes"], s.stdout.len() as u64);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_changed_byte_of_stdout_fails_verification() {
    let s = signed_hello().await;
    let mut changed = s.stdout.clone();
    changed[3] ^= 1;
    let changed = s.write("changed.txt", &changed);
    let out = cli(
        NOWHERE,
        None,
        &[
            "receipt",
            "verify",
            &s.path("receipt.bin"),
            "--public-key",
            &s.public_key,
            "--stdout",
            &changed,
        ],
        None,
    )
    .await;
    assert_eq!(out.code, 107, "{out:?}");
    assert!(
        out.stderr.contains("stdout does not match the receipt"),
        "{out:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_tampered_statement_fails_verification() {
    let s = signed_hello().await;
    let mut statement = v1::ReceiptStatement::decode(s.receipt.statement.as_slice()).unwrap();
    statement.fuel_consumed += 1;
    let tampered = v1::Receipt {
        statement: statement.encode_to_vec(),
        ..s.receipt.clone()
    };
    let path = s.write("tampered.bin", &tampered.encode_to_vec());
    let out = cli(
        NOWHERE,
        None,
        &["receipt", "verify", &path, "--public-key", &s.public_key],
        None,
    )
    .await;
    assert_eq!(out.code, 107, "{out:?}");
    assert!(out.stderr.contains("signature does not match"), "{out:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn another_servers_key_is_named_in_the_refusal() {
    let s = signed_hello().await;
    let other = ed25519_dalek::SigningKey::from_bytes(&[3u8; 32]).verifying_key();
    let out = cli(
        NOWHERE,
        None,
        &[
            "receipt",
            "verify",
            &s.path("receipt.bin"),
            "--public-key",
            &hex::encode(other.as_bytes()),
        ],
        None,
    )
    .await;
    assert_eq!(out.code, 107, "{out:?}");
    assert!(out.stderr.contains(&s.receipt.key_id), "{out:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn run_writes_a_receipt_that_verify_accepts() {
    let server = TestServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let (receipt, stdout) = (dir.path().join("run.bin"), dir.path().join("out.txt"));
    let hello = common::guest("hello.wasm").display().to_string();
    let out = cli(
        &server.url,
        Some(&server.admin_key),
        &["run", "--receipt-out", receipt.to_str().unwrap(), &hello],
        None,
    )
    .await;
    assert_eq!(out.code, 0, "{out:?}");
    std::fs::write(&stdout, out.stdout.as_bytes()).unwrap();
    let info = ServerServiceClient::new(server.channel().await)
        .get_server_info(v1::GetServerInfoRequest {})
        .await
        .unwrap()
        .into_inner();
    let out = cli(
        NOWHERE,
        None,
        &[
            "receipt",
            "verify",
            receipt.to_str().unwrap(),
            "--public-key",
            &hex::encode(&info.receipt_keys[0].public_key),
            "--stdout",
            stdout.to_str().unwrap(),
            "--module",
            &hello,
        ],
        None,
    )
    .await;
    assert_eq!(out.code, 0, "{out:?}");
    assert!(out.stdout.contains("matches    module"), "{out:?}");
}
