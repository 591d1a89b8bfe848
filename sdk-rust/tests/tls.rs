//! https:// servers: a private CA given to the library and the CLI; an
//! untrusted certificate is a friendly connection error.

mod common;

use common::{cli, TestServer};
use wasmwiz::{Client, Error};
use wasmwiz_server::testing::Db;

#[tokio::test(flavor = "multi_thread")]
async fn tls_with_a_private_ca() {
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
    let url = format!("https://localhost:{}", server.addr.port());

    let client = Client::builder(&url)
        .api_key(&server.admin_key)
        .ca_certificate_pem(cert.cert.pem())
        .build()
        .await
        .unwrap();
    assert_eq!(client.whoami().await.unwrap().email, "admin@test.local");

    // Without the CA: the system roots do not know it.
    let untrusted = Client::builder(&url)
        .api_key(&server.admin_key)
        .build()
        .await;
    match untrusted {
        Err(e @ Error::Connect { .. }) => assert!(e.is_connection_error()),
        Ok(client) => {
            let e = client.whoami().await.unwrap_err();
            assert!(e.is_connection_error(), "{e:?}");
        }
        Err(other) => panic!("{other:?}"),
    }

    let out = cli(
        &url,
        Some(&server.admin_key),
        &["whoami", "--ca-cert", cert_path.to_str().unwrap()],
        None,
    )
    .await;
    assert_eq!(out.code, 0, "{out:?}");
    assert!(out.stdout.contains("admin@test.local"));
    let out = cli(&url, Some(&server.admin_key), &["whoami"], None).await;
    assert_eq!(out.code, 111, "{out:?}");
    assert!(
        out.stderr
            .starts_with("wasmwiz: cannot connect to https://localhost:"),
        "{out:?}"
    );
    assert!(!out.stderr.contains("Error {"), "{out:?}");
    assert!(out.stderr.contains("--ca-cert"), "{out:?}");
}
