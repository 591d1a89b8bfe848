//! Accounts, keys, tiers, quotas and usage records, on SQLite and
//! PostgreSQL; plus the real binary: first start, `admin create-key`,
//! SIGTERM and `kill -9`.

mod support;

use std::{
    io::{BufRead, BufReader},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use support::*;
use tonic::Code;
use wasmwiz_proto::v1;
use wasmwiz_server::{
    config::Tier,
    store::{KeyRefused, NewKey, Store},
};

on_both_databases!(
    key_lifecycle_and_revocation,
    daily_quota_survives_restarts,
    usage_counts_are_exact
);

async fn key_lifecycle_and_revocation(db: Db) {
    let server = TestServer::start_with(db, |c| c.key_cache_secs = 2).await;
    let mut admin = clients(&server, Some(&server.admin_key)).await;
    let key = admin
        .admin
        .create_api_key(v1::CreateApiKeyRequest {
            email: "dev@x.io".into(),
            tier: "basic".into(),
            label: "laptop".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let mut dev = clients(&server, Some(&key.key)).await;
    let me = dev
        .account
        .who_am_i(v1::WhoAmIRequest {})
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        (me.email.as_str(), me.tier.as_str(), me.key_id.as_str()),
        ("dev@x.io", "basic", key.key_id.as_str())
    );
    assert_eq!(me.remaining_this_minute, 100);
    assert_eq!(me.remaining_today, 10_000);

    // A second key of the same user shares the user's limits.
    let second = dev
        .account
        .create_my_api_key(v1::CreateMyApiKeyRequest {
            label: "ci".into(),
            expires_at: None,
        })
        .await
        .unwrap()
        .into_inner();
    let mut dev2 = clients(&server, Some(&second.key)).await;
    run(&mut dev2, run_bytes(guest("hello"))).await.unwrap();
    let me = dev
        .account
        .who_am_i(v1::WhoAmIRequest {})
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        me.remaining_today, 9_999,
        "limits apply to the user, whichever key"
    );
    let keys = dev
        .account
        .list_my_api_keys(v1::ListMyApiKeysRequest {})
        .await
        .unwrap()
        .into_inner()
        .keys;
    assert_eq!(keys.len(), 2);
    assert!(keys
        .iter()
        .all(|k| k.email == "dev@x.io" && k.revoked_at.is_none()));

    // Revocation through the admin API is observed within 5 seconds.
    admin
        .admin
        .revoke_api_key(v1::RevokeApiKeyRequest {
            key_id: second.key_id.clone(),
        })
        .await
        .unwrap();
    let revoked_at = Instant::now();
    loop {
        match dev2.account.who_am_i(v1::WhoAmIRequest {}).await {
            Err(status) if status.code() == Code::Unauthenticated => break,
            _ if revoked_at.elapsed() > Duration::from_secs(5) => {
                panic!("revoked key still accepted after 5 s")
            }
            _ => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
    let keys = dev
        .account
        .list_my_api_keys(v1::ListMyApiKeysRequest {})
        .await
        .unwrap()
        .into_inner()
        .keys;
    assert!(keys
        .iter()
        .find(|k| k.key_id == second.key_id)
        .unwrap()
        .revoked_at
        .is_some());
    // A user cannot revoke someone else's key.
    let status = dev
        .account
        .revoke_my_api_key(v1::RevokeMyApiKeyRequest {
            key_id: server.admin_key.split('_').nth(1).unwrap().into(),
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::NotFound);

    // Expiry.
    let expires = chrono::Utc::now() + chrono::Duration::seconds(2);
    let short = dev
        .account
        .create_my_api_key(v1::CreateMyApiKeyRequest {
            label: "short".into(),
            expires_at: Some(prost_types::Timestamp {
                seconds: expires.timestamp(),
                nanos: 0,
            }),
        })
        .await
        .unwrap()
        .into_inner();
    let mut brief = clients(&server, Some(&short.key)).await;
    brief
        .account
        .who_am_i(v1::WhoAmIRequest {})
        .await
        .expect("valid before expiry");
    tokio::time::sleep(Duration::from_millis(2600)).await;
    let status = brief
        .account
        .who_am_i(v1::WhoAmIRequest {})
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::Unauthenticated);
    let past = dev
        .account
        .create_my_api_key(v1::CreateMyApiKeyRequest {
            label: "past".into(),
            expires_at: Some(prost_types::Timestamp {
                seconds: 1,
                nanos: 0,
            }),
        })
        .await
        .unwrap_err();
    assert_bad_request(&past, "expires_at");
    server.stop().await;
}

fn tiny_tier() -> Tier {
    Tier {
        per_minute: 100,
        per_day: 3,
        max_module_bytes: 1 << 20,
        max_stdin_bytes: 1 << 20,
        max_memory_bytes: 64 << 20,
        max_fuel: 1_000_000_000,
        max_timeout_ms: 2000,
        max_output_bytes: 1 << 20,
        max_concurrent: 2,
        unmetered: false,
        ..wasmwiz_server::config::default_tiers()["free"].clone()
    }
}

async fn daily_quota_survives_restarts(db: Db) {
    let server = TestServer::start_with(db, |c| {
        c.tiers.insert("tiny".into(), tiny_tier());
    })
    .await;
    let key = server.create_key("q@x.io", "tiny", false).await;
    let mut c = clients(&server, Some(&key)).await;
    // A refused module is not an execution: it does not use up the quota.
    let refused = run(&mut c, run_bytes(b"not wasm".to_vec()))
        .await
        .unwrap_err();
    assert_bad_request(&refused, "module");
    for _ in 0..3 {
        run(&mut c, run_bytes(guest("hello"))).await.unwrap();
    }
    let status = run(&mut c, run_bytes(guest("hello"))).await.unwrap_err();
    assert_eq!(status.code(), Code::ResourceExhausted);
    assert!(
        status.message().contains("daily quota"),
        "{}",
        status.message()
    );
    let retry: u64 = status
        .metadata()
        .get("retry-after")
        .unwrap()
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(retry > 0 && retry <= 86_400);
    let me = c
        .account
        .who_am_i(v1::WhoAmIRequest {})
        .await
        .unwrap()
        .into_inner();
    assert_eq!(me.remaining_today, 0);

    // Restart on the same database: keys, quota and usage are kept.
    let (config, dir) = server.stop().await;
    let server = TestServer::start_config(config, dir).await;
    let mut c = clients(&server, Some(&key)).await;
    let status = run(&mut c, run_bytes(guest("hello"))).await.unwrap_err();
    assert_eq!(
        status.code(),
        Code::ResourceExhausted,
        "the quota survived the restart"
    );
    let usage = c
        .account
        .get_usage(v1::GetUsageRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(usage.executions, 3);
    server.stop().await;
}

async fn usage_counts_are_exact(db: Db) {
    let server = TestServer::start_with(db, |_| {}).await;
    let key = server.create_key("load@x.io", "unlimited", false).await;
    let c = clients(&server, Some(&key)).await;
    let (traps, timeouts, refusals, total) = (100usize, 20usize, 50usize, 1000usize);
    let tasks = (0..total).map(|i| {
        let mut exec = c.exec.clone();
        async move {
            let mut req = if i < traps {
                run_bytes(guest("trap"))
            } else if i < traps + timeouts {
                let mut r = run_bytes(guest("loop"));
                r.limits = Some(v1::Limits {
                    timeout_ms: 50,
                    ..Default::default()
                });
                r
            } else if i < traps + timeouts + refusals {
                let mut r = run_bytes(guest("hello"));
                r.limits = Some(v1::Limits {
                    fuel: u64::MAX,
                    ..Default::default()
                });
                r
            } else {
                run_bytes(guest("hello"))
            };
            req.random_seed = i as u64;
            match exec.run(req).await {
                Ok(stream) => Some(collect(stream.into_inner()).await.unwrap().outcome()),
                Err(status) => {
                    assert_eq!(status.code(), Code::InvalidArgument);
                    None
                }
            }
        }
    });
    // 64 in flight: under the tier's per-user concurrency of 256.
    let outcomes: Vec<_> = futures::StreamExt::collect(futures::StreamExt::buffer_unordered(
        futures::stream::iter(tasks),
        64,
    ))
    .await;
    let count = |o| outcomes.iter().filter(|x| **x == Some(o)).count() as u64;
    assert_eq!(count(v1::Outcome::Trap), traps as u64);
    assert_eq!(count(v1::Outcome::Timeout), timeouts as u64);
    assert_eq!(outcomes.iter().filter(|x| x.is_none()).count(), refusals);
    let mut c = clients(&server, Some(&key)).await;
    let usage = c
        .account
        .get_usage(v1::GetUsageRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        usage.executions,
        (total - refusals) as u64,
        "refusals leave no record"
    );
    assert_eq!(usage.by_outcome.get("OUTCOME_TRAP"), Some(&(traps as u64)));
    assert_eq!(
        usage.by_outcome.get("OUTCOME_TIMEOUT"),
        Some(&(timeouts as u64))
    );
    assert_eq!(
        usage.by_outcome.get("OUTCOME_SUCCESS"),
        Some(&((total - traps - timeouts - refusals) as u64))
    );
    server.stop().await;
}

/// The server binary, started on a free port over `data_dir`. Its one
/// tenant (the admin) may use the whole server: these tests are about
/// signals and records, not about sharing it.
struct Binary {
    child: Child,
    url: String,
    first_key: Option<String>,
}

fn server_binary(data_dir: &std::path::Path) -> Binary {
    let config = data_dir.join("one-tenant.toml");
    std::fs::write(
        &config,
        "[sandbox]\ntenant_memory_share_percent = 100\ntenant_running_share_percent = 100\n",
    )
    .unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_wasmwiz-server"))
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(data_dir)
        .env("RUST_LOG", "warn")
        .env("WASMWIZ_CONFIG", &config)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("starting the server binary");
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut first_key = None;
    let url = loop {
        let line = lines.next().expect("server printed its address").unwrap();
        if line.starts_with("wwz_") {
            first_key = Some(line.trim().to_string());
        }
        if let Some(rest) = line.split("listening on ").nth(1) {
            break rest.split_whitespace().next().unwrap().to_string();
        }
    };
    std::thread::spawn(move || for _ in lines {});
    Binary {
        child,
        url,
        first_key,
    }
}

fn create_key_cli(data_dir: &std::path::Path, email: &str, tier: &str, admin: bool) -> String {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_wasmwiz-server"));
    cmd.args([
        "admin",
        "create-key",
        "--email",
        email,
        "--tier",
        tier,
        "--data-dir",
    ])
    .arg(data_dir);
    if admin {
        cmd.arg("--admin");
    }
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .last()
        .unwrap()
        .trim()
        .to_string()
}

fn signal(child: &Child, sig: &str) {
    let status = Command::new("kill")
        .args([sig, &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn binary_first_start_key_cli_sigterm_and_kill_9() {
    let dir = tempfile::tempdir().unwrap();
    // First start on an empty database prints an admin key once.
    let mut first = server_binary(dir.path());
    let admin_key = first
        .first_key
        .clone()
        .expect("first start prints an admin key");
    let mut admin = connect(&first.url, &admin_key).await;
    let me = admin
        .account
        .who_am_i(v1::WhoAmIRequest {})
        .await
        .unwrap()
        .into_inner();
    assert!(me.admin);
    // `admin create-key` works while the server runs, and the key works at once.
    let user_key = create_key_cli(dir.path(), "cli@x.io", "pro", false);
    let mut user = connect(&first.url, &user_key).await;
    assert_eq!(
        user.account
            .who_am_i(v1::WhoAmIRequest {})
            .await
            .unwrap()
            .into_inner()
            .tier,
        "pro"
    );

    // SIGTERM with 50 executions in flight: all finish, 50 records.
    let mut streams = Vec::new();
    for _ in 0..50 {
        let mut req = run_bytes(guest("hash"));
        req.args = vec!["1".into()];
        let mut stream = admin.exec.run(req).await.unwrap().into_inner();
        stream.message().await.unwrap().expect("started");
        streams.push(stream);
    }
    signal(&first.child, "-TERM");
    let results = futures::future::join_all(streams.into_iter().map(collect)).await;
    assert!(results
        .iter()
        .all(|r| r.as_ref().unwrap().outcome() == v1::Outcome::Success));
    let status = tokio::task::spawn_blocking(move || first.child.wait())
        .await
        .unwrap()
        .unwrap();
    assert!(status.success(), "clean exit after SIGTERM: {status:?}");

    // No admin key is printed on later starts; `kill -9` mid-run leaves aborted records.
    let mut second = server_binary(dir.path());
    assert!(second.first_key.is_none());
    let mut admin = connect(&second.url, &admin_key).await;
    let mut spinning = Vec::new();
    for _ in 0..5 {
        let mut req = run_bytes(guest("loop"));
        req.limits = Some(v1::Limits {
            timeout_ms: 60_000,
            ..Default::default()
        });
        let mut stream = admin.exec.run(req).await.unwrap().into_inner();
        stream.message().await.unwrap().expect("started");
        spinning.push(stream);
    }
    signal(&second.child, "-KILL");
    second.child.wait().unwrap();
    drop(spinning);

    // `admin create-key` works with no server running, too.
    let offline_key = create_key_cli(dir.path(), "offline@x.io", "free", false);
    let third = server_binary(dir.path());
    let mut admin = connect(&third.url, &admin_key).await;
    let usage = admin
        .admin
        .get_usage(v1::GetUsageRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        usage.by_outcome.get("OUTCOME_SUCCESS"),
        Some(&50),
        "{:?}",
        usage.by_outcome
    );
    assert_eq!(
        usage.by_outcome.get("ABORTED"),
        Some(&5),
        "{:?}",
        usage.by_outcome
    );
    assert_eq!(usage.executions, 55);
    let mut offline = connect(&third.url, &offline_key).await;
    assert_eq!(
        offline
            .account
            .who_am_i(v1::WhoAmIRequest {})
            .await
            .unwrap()
            .into_inner()
            .tier,
        "free"
    );
    let mut third = third;
    signal(&third.child, "-TERM");
    third.child.wait().unwrap();
}

on_both_databases!(
    a_child_key_expires_with_its_parent,
    revoking_a_key_revokes_every_key_below_it,
    live_keys_per_account_are_capped
);

fn timestamp_in(ms: i64) -> prost_types::Timestamp {
    let at = chrono::Utc::now() + chrono::Duration::milliseconds(ms);
    prost_types::Timestamp {
        seconds: at.timestamp(),
        nanos: at.timestamp_subsec_nanos() as i32,
    }
}

fn ms_of(ts: &prost_types::Timestamp) -> i64 {
    ts.seconds * 1000 + i64::from(ts.nanos / 1_000_000)
}

/// A user key made by the operator, expiring in `expires_in_ms` (or never).
async fn operator_key(server: &TestServer, email: &str, expires_in_ms: Option<i64>) -> String {
    let mut admin = clients(server, Some(&server.admin_key)).await;
    admin
        .admin
        .create_api_key(v1::CreateApiKeyRequest {
            email: email.into(),
            tier: "free".into(),
            expires_at: expires_in_ms.map(timestamp_in),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .key
}

async fn child_of(parent: &mut Clients, label: &str) -> v1::CreateMyApiKeyResponse {
    parent
        .account
        .create_my_api_key(v1::CreateMyApiKeyRequest {
            label: label.into(),
            expires_at: None,
        })
        .await
        .unwrap()
        .into_inner()
}

async fn accepted(c: &mut Clients) -> Result<(), tonic::Status> {
    c.account.who_am_i(v1::WhoAmIRequest {}).await.map(|_| ())
}

async fn a_child_key_expires_with_its_parent(db: Db) {
    // Keys stay cached far longer than they live: expiry is checked on
    // the cached record too.
    let server = TestServer::start_with(db, |c| c.key_cache_secs = 60).await;
    let parent = operator_key(&server, "expiring@x.io", Some(2500)).await;
    let mut parent_clients = clients(&server, Some(&parent)).await;
    let parent_expiry = parent_clients
        .account
        .who_am_i(v1::WhoAmIRequest {})
        .await
        .unwrap()
        .into_inner()
        .key_expires_at
        .expect("the parent expires");
    let child = child_of(&mut parent_clients, "child").await;
    assert_eq!(child.expires_at, Some(parent_expiry));
    let mut child_clients = clients(&server, Some(&child.key)).await;
    accepted(&mut child_clients).await.unwrap();
    let wait = ms_of(&parent_expiry) - chrono::Utc::now().timestamp_millis() + 50;
    tokio::time::sleep(Duration::from_millis(wait.max(0) as u64)).await;
    let refused = accepted(&mut child_clients).await.unwrap_err();
    assert_eq!(refused.code(), Code::Unauthenticated);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_child_key_may_not_outlive_its_parent() {
    let server = TestServer::start().await;
    let parent = operator_key(&server, "short@x.io", Some(60_000)).await;
    let mut c = clients(&server, Some(&parent)).await;
    let refused = c
        .account
        .create_my_api_key(v1::CreateMyApiKeyRequest {
            label: "longer".into(),
            expires_at: Some(timestamp_in(120_000)),
        })
        .await
        .unwrap_err();
    assert_bad_request(&refused, "expires_at");
    server.stop().await;
}

async fn revoking_a_key_revokes_every_key_below_it(db: Db) {
    // Cached keys would otherwise stay valid for a minute: revocation
    // forgets every revoked descendant here at once.
    let server = TestServer::start_with(db, |c| c.key_cache_secs = 60).await;
    let root = operator_key(&server, "tree@x.io", None).await;
    let mut root_clients = clients(&server, Some(&root)).await;
    let child = child_of(&mut root_clients, "child").await;
    let mut child_clients = clients(&server, Some(&child.key)).await;
    let grandchild = child_of(&mut child_clients, "grandchild").await;
    assert_eq!(grandchild.parent_key_id, child.key_id);
    let mut grandchild_clients = clients(&server, Some(&grandchild.key)).await;
    accepted(&mut grandchild_clients).await.unwrap();
    let root_id = root.split('_').nth(1).unwrap().to_string();
    child_clients
        .account
        .revoke_my_api_key(v1::RevokeMyApiKeyRequest { key_id: root_id })
        .await
        .unwrap();
    for c in [&mut child_clients, &mut grandchild_clients] {
        assert_eq!(accepted(c).await.unwrap_err().code(), Code::Unauthenticated);
    }
    server.stop().await;
}

async fn live_keys_per_account_are_capped(db: Db) {
    let server = TestServer::start_with(db, |c| {
        let mut t = wasmwiz_server::config::default_tiers()["free"].clone();
        t.max_api_keys = 3;
        c.tiers.insert("three-keys".into(), t);
    })
    .await;
    let key = server.create_key("keys@x.io", "three-keys", false).await;
    let mut c = clients(&server, Some(&key)).await;
    child_of(&mut c, "2").await;
    child_of(&mut c, "3").await;
    let refused = c
        .account
        .create_my_api_key(v1::CreateMyApiKeyRequest {
            label: "4".into(),
            expires_at: None,
        })
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::ResourceExhausted);
    let details = tonic_types::StatusExt::get_error_details(&refused);
    assert_eq!(
        details.quota_failure().unwrap().violations[0].subject,
        "api keys"
    );
    server.stop().await;
}

/// A store on `db` (a temporary SQLite file or a fresh PostgreSQL database)
/// with one user; the temp dir lives as long as the store is used.
async fn store_with_user(db: Db) -> (Store, String, Option<tempfile::TempDir>) {
    let (url, dir) = match db {
        Db::Sqlite => {
            let dir = tempfile::tempdir().unwrap();
            (wasmwiz_server::store::sqlite_url(dir.path()), Some(dir))
        }
        Db::Postgres => (
            wasmwiz_server::testing::fresh_postgres_database()
                .await
                .unwrap(),
            None,
        ),
    };
    let store = Store::connect(&url).await.unwrap();
    let user = store.ensure_user("k@x.io", "free", false).await.unwrap();
    (store, user.id, dir)
}

fn new_key<'a>(id: &'a str, user_id: &'a str, parent: Option<&'a str>) -> NewKey<'a> {
    NewKey {
        key_id: id,
        user_id,
        secret_hash: "h",
        admin: false,
        label: "",
        expires_at: None,
        parent_key_id: parent,
    }
}

on_both_databases!(
    a_child_of_a_revoked_key_is_not_stored,
    concurrent_key_creation_cannot_pass_the_cap
);

async fn a_child_of_a_revoked_key_is_not_stored(db: Db) {
    let (store, user, _dir) = store_with_user(db).await;
    store
        .insert_key(new_key("parent", &user, None))
        .await
        .unwrap();
    assert_eq!(
        store.revoke_key("parent", Some(&user)).await.unwrap(),
        ["parent"]
    );
    let refused = store
        .insert_key_capped(new_key("child", &user, Some("parent")), 100)
        .await
        .unwrap();
    assert_eq!(refused, Err(KeyRefused::ParentNotLive));
    assert!(store.key("child").await.unwrap().is_none());
}

async fn concurrent_key_creation_cannot_pass_the_cap(db: Db) {
    let (store, user, _dir) = store_with_user(db).await;
    let ids: Vec<String> = (0..10).map(|i| format!("key{i}")).collect();
    let attempts = ids
        .iter()
        .map(|id| store.insert_key_capped(new_key(id, &user, None), 3));
    let results = futures::future::join_all(attempts).await;
    let inserted = results.iter().filter(|r| matches!(r, Ok(Ok(())))).count();
    assert_eq!(inserted, 3, "{results:?}");
}
