//! Shared helpers for the API tests: clients, guests, event collection.
#![allow(dead_code)]

use std::path::PathBuf;

use tonic::{Code, Status};
use tonic_types::StatusExt;
use wasmwiz_proto::v1::{
    self, account_service_client::AccountServiceClient, admin_service_client::AdminServiceClient,
    execute_event::Event, execution_service_client::ExecutionServiceClient,
    module_service_client::ModuleServiceClient,
};
#[allow(unused_imports)]
pub use wasmwiz_server::testing::{postgres_available, Authed, Db, TestServer};

/// Runs `$body(Db)` once per database: SQLite always, PostgreSQL when
/// reachable (and always under CI=true, where its absence fails).
#[macro_export]
macro_rules! on_both_databases {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn sqlite() {
                super::$name(super::support::Db::Sqlite).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn postgres() {
                if super::support::postgres_available().await {
                    super::$name(super::support::Db::Postgres).await
                } else {
                    eprintln!("PostgreSQL is not reachable here; run with CI=true to require it");
                }
            }
        }
    )*};
}

pub fn guest(name: &str) -> Vec<u8> {
    let path =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(format!("../examples/guests/{name}.wasm"));
    std::fs::read(path).unwrap()
}

/// hello.wasm plus a custom section of `pad` bytes: valid, runs like hello.
pub fn padded_hello(pad: usize) -> Vec<u8> {
    fn leb(mut n: u64, out: &mut Vec<u8>) {
        loop {
            let byte = (n & 0x7f) as u8;
            n >>= 7;
            if n == 0 {
                out.push(byte);
                return;
            }
            out.push(byte | 0x80);
        }
    }
    let mut bytes = guest("hello");
    let name = b"pad";
    let mut payload = Vec::with_capacity(pad + 8);
    leb(name.len() as u64, &mut payload);
    payload.extend_from_slice(name);
    payload.resize(payload.len() + pad, 0x5a);
    bytes.push(0);
    leb(payload.len() as u64, &mut bytes);
    bytes.extend_from_slice(&payload);
    bytes
}

#[derive(Clone)]
pub struct Clients {
    pub exec: ExecutionServiceClient<Authed>,
    pub modules: ModuleServiceClient<Authed>,
    pub account: AccountServiceClient<Authed>,
    pub admin: AdminServiceClient<Authed>,
}

pub async fn clients(server: &TestServer, key: Option<&str>) -> Clients {
    let channel = server.authed(key).await;
    Clients {
        exec: ExecutionServiceClient::new(channel.clone())
            .max_decoding_message_size(512 << 20)
            .max_encoding_message_size(512 << 20),
        modules: ModuleServiceClient::new(channel.clone())
            .max_decoding_message_size(512 << 20)
            .max_encoding_message_size(512 << 20),
        account: AccountServiceClient::new(channel.clone()),
        admin: AdminServiceClient::new(channel),
    }
}

/// Everything one execution streamed back.
#[derive(Debug, Default)]
pub struct Collected {
    pub started: Option<v1::Started>,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
    pub finished: Option<v1::Finished>,
    pub events: Vec<&'static str>,
}

impl Collected {
    pub fn outcome(&self) -> v1::Outcome {
        self.finished.as_ref().unwrap().outcome()
    }
}

pub async fn collect(mut stream: tonic::Streaming<v1::ExecuteEvent>) -> Result<Collected, Status> {
    let mut out = Collected::default();
    while let Some(event) = stream.message().await? {
        match event.event.unwrap() {
            Event::Started(s) => {
                out.events.push("started");
                out.started = Some(s);
            }
            Event::Stdout(b) => {
                out.events.push("stdout");
                out.stdout.extend(b);
            }
            Event::Stderr(b) => {
                out.events.push("stderr");
                out.stderr.extend(b);
            }
            Event::Finished(f) => {
                out.events.push("finished");
                out.finished = Some(f);
            }
            Event::File(_) => out.events.push("file"),
        }
    }
    Ok(out)
}

pub fn run_bytes(module: Vec<u8>) -> v1::RunRequest {
    v1::RunRequest {
        source: Some(v1::run_request::Source::Module(module)),
        ..Default::default()
    }
}

pub fn run_sha(sha: &str) -> v1::RunRequest {
    v1::RunRequest {
        source: Some(v1::run_request::Source::ModuleSha256(sha.into())),
        ..Default::default()
    }
}

pub async fn run(clients: &mut Clients, request: v1::RunRequest) -> Result<Collected, Status> {
    collect(clients.exec.run(request).await?.into_inner()).await
}

/// Asserts a status's code and that it names `field` in a BadRequest.
pub fn assert_bad_request(status: &Status, field: &str) {
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    let details = status.get_error_details();
    let violations = details
        .bad_request()
        .expect("BadRequest details")
        .field_violations
        .clone();
    assert!(
        violations.iter().any(|v| v.field == field),
        "expected a violation on {field}: {violations:?}"
    );
}

/// Clients for a server started elsewhere (e.g. the binary), with `key`.
pub async fn connect(url: &str, key: &str) -> Clients {
    let channel = tonic::transport::Endpoint::from_shared(url.to_string())
        .unwrap()
        .connect()
        .await
        .unwrap();
    let authed = tonic::service::interceptor::InterceptedService::new(
        channel,
        wasmwiz_server::testing::BearerAuth(Some(key.to_string())),
    );
    Clients {
        exec: ExecutionServiceClient::new(authed.clone()),
        modules: ModuleServiceClient::new(authed.clone()),
        account: AccountServiceClient::new(authed.clone()),
        admin: AdminServiceClient::new(authed),
    }
}
