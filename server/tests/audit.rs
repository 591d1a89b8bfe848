//! The audit log over the real API: each security event is emitted once,
//! on the `wasmwiz::audit` target, with the fields docs/security/audit.md
//! lists. Events are collected by a process-wide tracing layer (the
//! server's tasks run on the runtime's worker threads); each test picks
//! its own events out by the key ids or emails only it uses.

mod support;

use std::{
    collections::BTreeMap,
    fmt::Debug,
    sync::{Mutex, Once},
};

use support::*;
use tonic::Code;
use tracing::{
    field::{Field, Visit},
    Event, Subscriber,
};
use tracing_subscriber::{layer::Context, prelude::*, Layer};
use wasmwiz_proto::v1;
use wasmwiz_server::{audit, auth::parse_key, config::Tier};

type Fields = BTreeMap<String, String>;

static EVENTS: Mutex<Vec<Fields>> = Mutex::new(Vec::new());

/// Keeps every audit event's fields (and its level as `level`).
struct Collect;

struct Record<'a>(&'a mut Fields);

impl Visit for Record<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.insert(field.name().into(), value.into());
    }

    fn record_debug(&mut self, field: &Field, value: &dyn Debug) {
        self.0.insert(field.name().into(), format!("{value:?}"));
    }
}

impl<S: Subscriber> Layer<S> for Collect {
    fn on_event(&self, event: &Event<'_>, _: Context<'_, S>) {
        if event.metadata().target() != audit::TARGET {
            return;
        }
        let mut fields = Fields::new();
        event.record(&mut Record(&mut fields));
        fields.insert("level".into(), event.metadata().level().to_string());
        EVENTS.lock().unwrap().push(fields);
    }
}

fn collect_audit_events() {
    static INSTALL: Once = Once::new();
    INSTALL.call_once(|| tracing_subscriber::registry().with(Collect).init());
}

/// The audit events named `event` whose field `key` is `value`.
fn events(event: &str, key: &str, value: &str) -> Vec<Fields> {
    EVENTS
        .lock()
        .unwrap()
        .iter()
        .filter(|f| f.get("event").map(String::as_str) == Some(event))
        .filter(|f| f.get(key).map(String::as_str) == Some(value))
        .cloned()
        .collect()
}

/// The one event of `events`, failing when there are more or none.
fn only(events: Vec<Fields>) -> Fields {
    assert_eq!(events.len(), 1, "expected exactly one event: {events:?}");
    events.into_iter().next().unwrap()
}

fn key_id(key: &str) -> String {
    parse_key(key).expect("a well-formed key").0.to_string()
}

fn field<'a>(fields: &'a Fields, name: &str) -> &'a str {
    fields
        .get(name)
        .unwrap_or_else(|| panic!("no {name} in {fields:?}"))
}

async fn server() -> TestServer {
    collect_audit_events();
    TestServer::start_with(Db::Sqlite, |c| {
        c.tiers.insert(
            "one-key".into(),
            Tier {
                max_api_keys: 1,
                ..wasmwiz_server::config::default_tiers()["free"].clone()
            },
        );
        c.tiers.insert(
            "one-a-day".into(),
            Tier {
                per_day: 1,
                ..wasmwiz_server::config::default_tiers()["free"].clone()
            },
        );
    })
    .await
}

/// `key` with its secret replaced (same id).
fn with_wrong_secret(key: &str) -> (String, String) {
    let (id, secret) = parse_key(key).unwrap();
    let wrong: String = secret
        .chars()
        .map(|c| if c == '0' { '1' } else { '0' })
        .collect();
    (format!("wwz_{id}_{wrong}"), wrong)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_wrong_secret_is_logged_with_the_key_id_and_no_secret() {
    let server = server().await;
    let key = server.create_key("wrong@audit.test", "free", false).await;
    let (presented, wrong_secret) = with_wrong_secret(&key);
    let mut c = clients(&server, Some(&presented)).await;
    let refused = c.account.who_am_i(v1::WhoAmIRequest {}).await.unwrap_err();
    assert_eq!(refused.code(), Code::Unauthenticated);

    let event = only(events("authentication_failed", "key_id", &key_id(&key)));
    assert_eq!(field(&event, "reason"), "wrong_secret");
    assert_eq!(field(&event, "level"), "WARN");
    let real_secret = parse_key(&key).unwrap().1;
    for value in event.values() {
        assert!(
            !value.contains(&wrong_secret) && !value.contains(real_secret),
            "a secret in {event:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_unknown_key_id_is_logged_as_unknown() {
    let server = server().await;
    let id = &uuid::Uuid::new_v4().simple().to_string()[..16];
    let presented = format!("wwz_{id}_{}", "ab".repeat(32));
    let mut c = clients(&server, Some(&presented)).await;
    c.account.who_am_i(v1::WhoAmIRequest {}).await.unwrap_err();

    let event = only(events("authentication_failed", "key_id", id));
    assert_eq!(field(&event, "reason"), "unknown_key");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_revoked_key_is_logged_as_revoked() {
    let server = server().await;
    let key = server.create_key("revoked@audit.test", "free", false).await;
    let mut admin = clients(&server, Some(&server.admin_key)).await;
    admin
        .admin
        .revoke_api_key(v1::RevokeApiKeyRequest {
            key_id: key_id(&key),
        })
        .await
        .unwrap();
    let mut c = clients(&server, Some(&key)).await;
    c.account.who_am_i(v1::WhoAmIRequest {}).await.unwrap_err();

    let event = only(events("authentication_failed", "key_id", &key_id(&key)));
    assert_eq!(field(&event, "reason"), "revoked");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_expired_key_is_logged_as_expired() {
    let server = server().await;
    let mut admin = clients(&server, Some(&server.admin_key)).await;
    // Between 1 and 2 seconds from now (whole seconds).
    let soon = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + 2;
    let key = admin
        .admin
        .create_api_key(v1::CreateApiKeyRequest {
            email: "expired@audit.test".into(),
            expires_at: Some(prost_types::Timestamp {
                seconds: soon as i64,
                nanos: 0,
            }),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .key;
    tokio::time::sleep(std::time::Duration::from_millis(2200)).await;
    let mut c = clients(&server, Some(&key)).await;
    c.account.who_am_i(v1::WhoAmIRequest {}).await.unwrap_err();

    let event = only(events("authentication_failed", "key_id", &key_id(&key)));
    assert_eq!(field(&event, "reason"), "expired");
}

/// The only test here that sends no key, so the count is its own.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_call_without_a_key_is_logged_as_missing() {
    let server = server().await;
    let before = events("authentication_failed", "reason", "missing").len();
    let mut c = clients(&server, None).await;
    c.account.who_am_i(v1::WhoAmIRequest {}).await.unwrap_err();

    let after = events("authentication_failed", "reason", "missing");
    assert_eq!(after.len(), before + 1, "{after:?}");
    assert_eq!(field(after.last().unwrap(), "key_id"), "");
}

/// The only test here that sends a malformed key.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_malformed_key_is_logged_without_any_of_it() {
    let server = server().await;
    let before = events("authentication_failed", "reason", "malformed").len();
    let mut c = clients(&server, Some("not-a-key-sekrit")).await;
    c.account.who_am_i(v1::WhoAmIRequest {}).await.unwrap_err();

    let after = events("authentication_failed", "reason", "malformed");
    assert_eq!(after.len(), before + 1, "{after:?}");
    let event = after.last().unwrap();
    assert!(event.values().all(|v| !v.contains("sekrit")), "{event:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_user_key_on_an_admin_call_is_logged_as_denied() {
    let server = server().await;
    let key = server.create_key("denied@audit.test", "free", false).await;
    let mut c = clients(&server, Some(&key)).await;
    let refused = c
        .admin
        .create_user(v1::CreateUserRequest {
            email: "someone@audit.test".into(),
            tier: String::new(),
        })
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::PermissionDenied);

    let event = only(events("permission_denied", "key_id", &key_id(&key)));
    assert_eq!(field(&event, "action"), "create_user");
    assert!(!field(&event, "user_id").is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_admin_creating_a_key_is_logged_with_who_and_which_key() {
    let server = server().await;
    let key = server.create_key("created@audit.test", "free", false).await;

    let event = only(events("key_created", "key_id", &key_id(&key)));
    assert_eq!(field(&event, "by_key_id"), key_id(&server.admin_key));
    assert_eq!(field(&event, "via"), "admin");
    assert_eq!(field(&event, "admin"), "false");
    assert!(!field(&event, "user_id").is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_user_creating_its_own_key_is_logged_as_self_service() {
    let server = server().await;
    let parent = server.create_key("self@audit.test", "free", false).await;
    let mut c = clients(&server, Some(&parent)).await;
    let child = c
        .account
        .create_my_api_key(v1::CreateMyApiKeyRequest {
            label: "ci".into(),
            expires_at: None,
        })
        .await
        .unwrap()
        .into_inner();

    let event = only(events("key_created", "key_id", &child.key_id));
    assert_eq!(field(&event, "by_key_id"), key_id(&parent));
    assert_eq!(field(&event, "via"), "self_service");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_admin_revoking_a_key_is_logged_with_who_and_which_key() {
    let server = server().await;
    let key = server.create_key("revoke@audit.test", "free", false).await;
    let mut admin = clients(&server, Some(&server.admin_key)).await;
    admin
        .admin
        .revoke_api_key(v1::RevokeApiKeyRequest {
            key_id: key_id(&key),
        })
        .await
        .unwrap();

    let event = only(events("key_revoked", "key_id", &key_id(&key)));
    assert_eq!(field(&event, "by_key_id"), key_id(&server.admin_key));
    assert_eq!(field(&event, "via"), "admin");
    assert_eq!(field(&event, "revoked"), "1");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_daily_quota_refusal_is_logged_with_its_limit() {
    let server = server().await;
    let key = server
        .create_key("quota@audit.test", "one-a-day", false)
        .await;
    let mut c = clients(&server, Some(&key)).await;
    run(&mut c, run_bytes(guest("hello"))).await.unwrap();
    let refused = run(&mut c, run_bytes(guest("hello"))).await.unwrap_err();
    assert_eq!(refused.code(), Code::ResourceExhausted);

    let event = only(events("limit_refused", "key_id", &key_id(&key)));
    assert_eq!(field(&event, "limit"), "per_day");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_key_over_the_accounts_key_quota_is_logged_with_its_limit() {
    let server = server().await;
    let key = server.create_key("keys@audit.test", "one-key", false).await;
    let mut c = clients(&server, Some(&key)).await;
    let refused = c
        .account
        .create_my_api_key(v1::CreateMyApiKeyRequest {
            label: "second".into(),
            expires_at: None,
        })
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::ResourceExhausted);

    let event = only(events("limit_refused", "key_id", &key_id(&key)));
    assert_eq!(field(&event, "limit"), "api_keys");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_admin_setting_a_tier_is_logged_as_an_admin_action() {
    let server = server().await;
    server.create_key("tier@audit.test", "free", false).await;
    let mut admin = clients(&server, Some(&server.admin_key)).await;
    admin
        .admin
        .set_tier(v1::SetTierRequest {
            email: "tier@audit.test".into(),
            tier: "one-a-day".into(),
        })
        .await
        .unwrap();

    let event = only(events("admin_action", "subject", "tier@audit.test"));
    assert_eq!(field(&event, "action"), "set_tier");
    assert_eq!(field(&event, "tier"), "one-a-day");
    assert_eq!(field(&event, "by_key_id"), key_id(&server.admin_key));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_guest_running_out_of_fuel_is_logged_with_its_execution() {
    let server = server().await;
    let key = server.create_key("fuel@audit.test", "free", false).await;
    let mut c = clients(&server, Some(&key)).await;
    let mut request = run_bytes(guest("loop"));
    request.limits = Some(v1::Limits {
        fuel: 100_000,
        ..Default::default()
    });
    let ran = run(&mut c, request).await.unwrap();
    assert_eq!(ran.outcome(), v1::Outcome::OutOfFuel);

    let event = only(events("guest_limit_hit", "key_id", &key_id(&key)));
    assert_eq!(field(&event, "limit"), "fuel");
    assert_eq!(
        field(&event, "execution_id"),
        ran.started.unwrap().execution_id
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_guest_ending_normally_is_not_logged() {
    let server = server().await;
    let key = server.create_key("clean@audit.test", "free", false).await;
    let mut c = clients(&server, Some(&key)).await;
    run(&mut c, run_bytes(guest("hello"))).await.unwrap();

    assert_eq!(events("guest_limit_hit", "key_id", &key_id(&key)), vec![]);
}
