//! What the SDK shows of storage quotas, module listings and key lifetimes.

mod common;

use std::time::{Duration, SystemTime};

use common::{cli, client, guest, guest_bytes, TestServer};
use wasmwiz::{Module, NewKey};

#[tokio::test(flavor = "multi_thread")]
async fn whoami_reports_storage_used_and_allowed() {
    let server = TestServer::start().await;
    let admin = client(&server, &server.admin_key).await;
    let key = admin
        .admin()
        .create_key(NewKey::new("store@test.local").tier("free"))
        .await
        .unwrap();
    let me = client(&server, &key.key).await;
    me.upload(Module::file(guest("hello.wasm"))).await.unwrap();
    let who = me.whoami().await.unwrap();
    assert_eq!(who.stored_modules, 1);
    assert_eq!(who.stored_bytes, guest_bytes("hello.wasm").len() as u64);
    let limits = who.limits.unwrap();
    assert_eq!(limits.max_stored_modules, 50);
    assert_eq!(limits.max_stored_bytes, 64 << 20);
}

#[tokio::test(flavor = "multi_thread")]
async fn listings_have_counts_and_detailed_listings_have_exports() {
    let server = TestServer::start().await;
    let client = client(&server, &server.admin_key).await;
    client
        .upload(Module::file(guest("hello.wasm")))
        .await
        .unwrap();
    let plain = client.list_modules().await.unwrap();
    assert!(plain[0].exports.is_empty());
    let exports = plain[0].export_count.expect("counted") as usize;
    assert!(exports > 0);
    let detailed = client.list_modules_detailed().await.unwrap();
    assert_eq!(detailed[0].exports.len(), exports);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_key_made_by_an_expiring_key_expires_with_it() {
    let server = TestServer::start().await;
    let admin = client(&server, &server.admin_key).await;
    let expires = SystemTime::now() + Duration::from_secs(600);
    let parent = admin
        .admin()
        .create_key(NewKey::new("expiring@test.local").expires_at(expires))
        .await
        .unwrap();
    let child = client(&server, &parent.key)
        .await
        .create_my_key("child", None)
        .await
        .unwrap();
    assert_eq!(child.parent_key_id, parent.key_id);
    let child_expiry = child.expires_at.expect("inherits the parent's expiry");
    let apart = child_expiry
        .duration_since(expires)
        .unwrap_or_else(|e| e.duration());
    assert!(apart < Duration::from_millis(1), "{apart:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_cli_whoami_shows_storage() {
    let server = TestServer::start().await;
    let out = cli(&server.url, Some(&server.admin_key), &["whoami"], None).await;
    assert_eq!(out.code, 0, "{out:?}");
    assert!(
        out.stdout
            .contains("storage:      0 B (no limit), 0 modules (no limit)"),
        "{out:?}"
    );
}
