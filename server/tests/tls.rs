//! TLS from a cert/key pair: gRPC over HTTPS with a generated certificate.

mod support;

use support::*;
use tonic::transport::{Certificate, ClientTlsConfig, Endpoint};
use wasmwiz_proto::v1::{self, account_service_client::AccountServiceClient};

/// A server with TLS from a freshly generated self-signed certificate for
/// `localhost`; the certificate's PEM (to trust it) and the key files' dir.
async fn tls_server() -> (TestServer, String, tempfile::TempDir) {
    let cert = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (cert_path, key_path) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    std::fs::write(&cert_path, cert.cert.pem()).unwrap();
    std::fs::write(&key_path, cert.signing_key.serialize_pem()).unwrap();
    let server = TestServer::start_with(Db::Sqlite, |c| {
        c.tls_cert = Some(cert_path.clone());
        c.tls_key = Some(key_path.clone());
    })
    .await;
    (server, cert.cert.pem(), dir)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_round_trip_over_tls() {
    let (server, pem, _dir) = tls_server().await;
    let tls = ClientTlsConfig::new()
        .ca_certificate(Certificate::from_pem(pem))
        .domain_name("localhost");
    let channel = Endpoint::from_shared(format!("https://localhost:{}", server.addr.port()))
        .unwrap()
        .tls_config(tls)
        .unwrap()
        .connect()
        .await
        .expect("TLS handshake with the generated certificate");
    let authed = tonic::service::interceptor::InterceptedService::new(
        channel,
        wasmwiz_server::testing::BearerAuth(Some(server.admin_key.clone())),
    );
    let me = AccountServiceClient::new(authed)
        .who_am_i(v1::WhoAmIRequest {})
        .await
        .unwrap()
        .into_inner();
    assert_eq!(me.email, "admin@test.local");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plain_text_grpc_to_the_tls_port_fails_at_http2() {
    let (server, _pem, _dir) = tls_server().await;
    // Lazy, so the failed handshake surfaces as the call's status.
    let plain = Endpoint::from_shared(format!("http://127.0.0.1:{}", server.addr.port()))
        .unwrap()
        .connect_lazy();
    let status = AccountServiceClient::new(plain)
        .who_am_i(v1::WhoAmIRequest {})
        .await
        .unwrap_err();
    // The server answers in TLS (an alert), which is no HTTP/2 frame.
    assert_eq!(status.code(), tonic::Code::Internal, "{status:?}");
    assert!(
        status.message().starts_with("h2 protocol error"),
        "{status:?}"
    );
    server.stop().await;
}
