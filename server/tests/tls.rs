//! TLS from a cert/key pair: gRPC over HTTPS with a generated certificate.

mod support;

use support::*;
use tonic::transport::{Certificate, ClientTlsConfig, Endpoint};
use wasmwiz_proto::v1::{self, account_service_client::AccountServiceClient};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_round_trip_over_tls() {
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
    let tls = ClientTlsConfig::new()
        .ca_certificate(Certificate::from_pem(cert.cert.pem()))
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

    // Plain-text gRPC to the TLS port fails.
    let plain = Endpoint::from_shared(format!("http://127.0.0.1:{}", server.addr.port()))
        .unwrap()
        .connect()
        .await;
    if let Ok(channel) = plain {
        let answer = AccountServiceClient::new(channel)
            .who_am_i(v1::WhoAmIRequest {})
            .await;
        assert!(answer.is_err());
    }
    server.stop().await;
}
