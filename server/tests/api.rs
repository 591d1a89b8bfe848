//! The gRPC API against a real server on 127.0.0.1:0, on SQLite and
//! PostgreSQL: every RPC, the error table (one test per row), big uploads,
//! streamed stdin, grpc-web, concurrency and graceful shutdown.

mod support;

use std::time::Duration;

use support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tonic::Code;
use tonic_types::StatusExt;
use wasmwiz_proto::v1::{self, execute_request::Msg, upload_module_request};

// Every RPC, one behaviour per test.
on_both_databases!(
    upload_module_in_chunks_describes_the_module,
    an_uploaded_module_is_got_and_listed,
    run_by_sha_streams_started_then_output_then_finished,
    run_with_inline_bytes_passes_args_env_and_program_name,
    matching_expected_stdout_is_accepted,
    differing_expected_stdout_is_a_wrong_answer,
    execute_with_module_chunks_and_stdin_runs_the_module,
    execute_with_keep_module_stores_the_module,
    run_batch_gives_each_case_its_verdict,
    put_module_of_a_stored_module_reports_it_already_existed,
    a_deleted_module_is_not_found,
    who_am_i_describes_the_caller,
    get_usage_counts_the_callers_executions_and_days,
    an_own_key_is_listed_and_authenticates,
    an_own_key_can_be_revoked,
    admin_create_user_gives_the_tier,
    admin_create_user_of_an_existing_email_already_exists,
    admin_set_tier_changes_the_users_tier,
    admin_create_api_key_returns_a_key_of_the_users_tier,
    admin_revoke_api_key_succeeds,
    admin_get_usage_counts_everyone_or_one_user,
);

// The error table, one test per row.
on_both_databases!(
    bytes_that_are_not_wasm_are_a_bad_module,
    a_foreign_import_is_a_bad_module_that_names_it,
    a_module_without_start_is_a_bad_module,
    memory_past_the_tier_is_a_bad_request_naming_the_maximum,
    a_module_past_the_tier_is_a_bad_request,
    stdin_past_the_tier_is_a_bad_request,
    an_unknown_sha_is_not_found_with_resource_info,
    a_malformed_sha_is_a_bad_request,
    no_key_is_unauthenticated,
    a_malformed_key_is_unauthenticated,
    an_unknown_key_is_unauthenticated,
    a_revoked_key_is_unauthenticated,
    a_non_admin_calling_admin_is_permission_denied_with_error_info,
    rate_limit_headers_count_down_the_minute,
    past_the_rate_limit_is_resource_exhausted_with_retry_details,
    a_rate_limited_key_runs_again_after_retry_after,
    past_the_bounded_queue_is_unavailable_with_retry_info,
);

on_both_databases!(
    big_upload_then_run_by_sha,
    sigterm_lets_running_executions_finish
);

/// Uploads hello in 1000-byte chunks, as the admin.
async fn upload_hello(c: &mut Clients) -> v1::ModuleInfo {
    let hello = guest("hello");
    let start = v1::UploadModuleRequest {
        msg: Some(upload_module_request::Msg::Start(v1::UploadStart {
            size: hello.len() as u64,
            sha256: None,
        })),
    };
    let chunks: Vec<_> = hello
        .chunks(1000)
        .map(|c| v1::UploadModuleRequest {
            msg: Some(upload_module_request::Msg::Chunk(c.to_vec())),
        })
        .collect();
    c.modules
        .upload_module(futures::stream::iter(std::iter::once(start).chain(chunks)))
        .await
        .unwrap()
        .into_inner()
}

/// A server and clients with its admin key.
async fn admin_server(db: Db) -> (TestServer, Clients) {
    let server = TestServer::start_with(db, |_| {}).await;
    let c = clients(&server, Some(&server.admin_key)).await;
    (server, c)
}

async fn upload_module_in_chunks_describes_the_module(db: Db) {
    let (server, mut c) = admin_server(db).await;
    let info = upload_hello(&mut c).await;
    assert!(!info.already_existed);
    assert_eq!(info.size, guest("hello").len() as u64);
    assert_eq!(
        info.sha256,
        wasmwiz_server::engine::sha256_hex(&guest("hello"))
    );
    assert!(info
        .imports
        .iter()
        .all(|i| i.module == "wasi_snapshot_preview1"));
    assert!(info
        .exports
        .iter()
        .any(|e| e.name == "_start" && e.kind == "func"));
    server.stop().await;
}

async fn an_uploaded_module_is_got_and_listed(db: Db) {
    let (server, mut c) = admin_server(db).await;
    let info = upload_hello(&mut c).await;
    let got = c
        .modules
        .get_module(v1::GetModuleRequest {
            sha256: info.sha256.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(got.size, info.size);
    let list = c
        .modules
        .list_modules(v1::ListModulesRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        list.modules
            .iter()
            .map(|m| m.sha256.as_str())
            .collect::<Vec<_>>(),
        [info.sha256.as_str()]
    );
    server.stop().await;
}

async fn run_by_sha_streams_started_then_output_then_finished(db: Db) {
    let (server, mut c) = admin_server(db).await;
    let sha = upload_hello(&mut c).await.sha256;
    let r = run(&mut c, run_sha(&sha)).await.unwrap();
    assert_eq!(r.events.first(), Some(&"started"));
    assert_eq!(r.events.last(), Some(&"finished"));
    assert_eq!(r.stdout, b"Hello, WasmWiz!\n");
    assert_eq!(r.outcome(), v1::Outcome::Success);
    let started = r.started.unwrap();
    assert_eq!(started.module_sha256, sha);
    assert!(started.cache_hit);
    assert!(!started.execution_id.is_empty());
    assert!(started.limits.unwrap().fuel > 0);
    server.stop().await;
}

async fn run_with_inline_bytes_passes_args_env_and_program_name(db: Db) {
    let (server, mut c) = admin_server(db).await;
    let mut req = run_bytes(guest("argsenv"));
    req.args = vec!["x".into()];
    req.env.insert("K".into(), "V".into());
    req.program_name = "prog".into();
    let r = run(&mut c, req).await.unwrap();
    assert_eq!(
        String::from_utf8(r.stdout).unwrap(),
        "argv[0]=prog\nargv[1]=x\nenv:K=V\n"
    );
    server.stop().await;
}

/// The verdict of running hello against `expected` stdout.
async fn verdict_of_hello(db: Db, expected: &[u8]) -> v1::Verdict {
    let (server, mut c) = admin_server(db).await;
    let mut req = run_bytes(guest("hello"));
    req.expected_stdout = Some(expected.to_vec());
    let verdict = run(&mut c, req).await.unwrap().finished.unwrap().verdict();
    server.stop().await;
    verdict
}

async fn matching_expected_stdout_is_accepted(db: Db) {
    assert_eq!(
        verdict_of_hello(db, b"Hello, WasmWiz!\n").await,
        v1::Verdict::Accepted
    );
}

async fn differing_expected_stdout_is_a_wrong_answer(db: Db) {
    assert_eq!(
        verdict_of_hello(db, b"Hello\n").await,
        v1::Verdict::WrongAnswer
    );
}

/// Executes echo sent in 300-byte chunks with stdin "ping".
async fn execute_echo_in_chunks(c: &mut Clients, keep_module: bool) -> Collected {
    let echo = guest("echo");
    let mut msgs = vec![v1::ExecuteRequest {
        msg: Some(Msg::Start(v1::ExecuteStart {
            source: Some(v1::execute_start::Source::ModuleSize(echo.len() as u64)),
            stdin: b"ping".to_vec(),
            keep_module,
            ..Default::default()
        })),
    }];
    msgs.extend(echo.chunks(300).map(|c| v1::ExecuteRequest {
        msg: Some(Msg::ModuleChunk(c.to_vec())),
    }));
    collect(
        c.exec
            .execute(futures::stream::iter(msgs))
            .await
            .unwrap()
            .into_inner(),
    )
    .await
    .unwrap()
}

async fn execute_with_module_chunks_and_stdin_runs_the_module(db: Db) {
    let (server, mut c) = admin_server(db).await;
    let r = execute_echo_in_chunks(&mut c, false).await;
    assert_eq!(r.stdout, b"ping");
    assert_eq!(r.outcome(), v1::Outcome::Success);
    server.stop().await;
}

async fn execute_with_keep_module_stores_the_module(db: Db) {
    let (server, mut c) = admin_server(db).await;
    let r = execute_echo_in_chunks(&mut c, true).await;
    let echo_sha = r.started.unwrap().module_sha256;
    assert!(
        c.modules
            .get_module(v1::GetModuleRequest { sha256: echo_sha })
            .await
            .is_ok(),
        "keep_module stored it"
    );
    server.stop().await;
}

/// Runs fib once per `(stdin, expected stdout)` case; its verdicts by case.
async fn fib_batch(c: &mut Clients, cases: &[(&str, &str)]) -> Vec<Option<v1::Verdict>> {
    let batch = cases
        .iter()
        .map(|(stdin, out)| v1::BatchCase {
            stdin: stdin.as_bytes().to_vec(),
            expected_stdout: Some(out.as_bytes().to_vec()),
            name: format!("fib {}", stdin.trim()),
            ..Default::default()
        })
        .collect();
    let mut events = c
        .exec
        .run_batch(v1::RunBatchRequest {
            source: Some(v1::run_batch_request::Source::Module(guest("fib"))),
            cases: batch,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let mut verdicts = vec![None; cases.len()];
    while let Some(e) = events.message().await.unwrap() {
        verdicts[e.case_index as usize] = Some(e.finished.unwrap().verdict());
    }
    verdicts
}

async fn run_batch_gives_each_case_its_verdict(db: Db) {
    let (server, mut c) = admin_server(db).await;
    let verdicts = fib_batch(
        &mut c,
        &[("10\n", "55\n"), ("20\n", "6765\n"), ("5\n", "6\n")],
    )
    .await;
    assert_eq!(
        verdicts,
        [
            Some(v1::Verdict::Accepted),
            Some(v1::Verdict::Accepted),
            Some(v1::Verdict::WrongAnswer)
        ]
    );
    server.stop().await;
}

async fn put_module_of_a_stored_module_reports_it_already_existed(db: Db) {
    let (server, mut c) = admin_server(db).await;
    let sha = upload_hello(&mut c).await.sha256;
    let put = c
        .modules
        .put_module(v1::PutModuleRequest {
            module: guest("hello"),
            sha256: Some(sha),
        })
        .await
        .unwrap()
        .into_inner();
    assert!(put.already_existed);
    server.stop().await;
}

async fn a_deleted_module_is_not_found(db: Db) {
    let (server, mut c) = admin_server(db).await;
    let sha = upload_hello(&mut c).await.sha256;
    c.modules
        .delete_module(v1::DeleteModuleRequest {
            sha256: sha.clone(),
        })
        .await
        .unwrap();
    let gone = run(&mut c, run_sha(&sha)).await.unwrap_err();
    assert_eq!(gone.code(), Code::NotFound);
    server.stop().await;
}

async fn who_am_i_describes_the_caller(db: Db) {
    let (server, mut c) = admin_server(db).await;
    let me = c
        .account
        .who_am_i(v1::WhoAmIRequest {})
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        (me.email.as_str(), me.tier.as_str(), me.admin),
        ("admin@test.local", "unlimited", true)
    );
    assert!(me.limits.unwrap().unmetered);
    server.stop().await;
}

async fn get_usage_counts_the_callers_executions_and_days(db: Db) {
    let (server, mut c) = admin_server(db).await;
    run(&mut c, run_bytes(guest("hello"))).await.unwrap();
    // Each case of a batch is an execution.
    fib_batch(&mut c, &[("10\n", "55\n"), ("5\n", "5\n")]).await;
    let usage = c
        .account
        .get_usage(v1::GetUsageRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(usage.executions, 3, "{usage:?}");
    assert_eq!(usage.daily.len(), 30);
    assert_eq!(usage.daily.last().unwrap().executions, 3);
    assert!(usage.fuel_consumed > 0);
    server.stop().await;
}

async fn create_my_key(c: &mut Clients) -> v1::CreateMyApiKeyResponse {
    c.account
        .create_my_api_key(v1::CreateMyApiKeyRequest {
            label: "ci".into(),
            expires_at: None,
        })
        .await
        .unwrap()
        .into_inner()
}

async fn an_own_key_is_listed_and_authenticates(db: Db) {
    let (server, mut c) = admin_server(db).await;
    let mine = create_my_key(&mut c).await;
    let listed = c
        .account
        .list_my_api_keys(v1::ListMyApiKeysRequest {})
        .await
        .unwrap()
        .into_inner();
    assert!(listed
        .keys
        .iter()
        .any(|k| k.key_id == mine.key_id && k.label == "ci"));
    let mut other = clients(&server, Some(&mine.key)).await;
    assert!(other.account.who_am_i(v1::WhoAmIRequest {}).await.is_ok());
    server.stop().await;
}

async fn an_own_key_can_be_revoked(db: Db) {
    let (server, mut c) = admin_server(db).await;
    let mine = create_my_key(&mut c).await;
    c.account
        .revoke_my_api_key(v1::RevokeMyApiKeyRequest {
            key_id: mine.key_id,
        })
        .await
        .unwrap();
    server.stop().await;
}

/// Creates `u@x.io` on `tier` as the admin.
async fn create_user(c: &mut Clients, tier: &str) -> Result<v1::User, tonic::Status> {
    c.admin
        .create_user(v1::CreateUserRequest {
            email: "u@x.io".into(),
            tier: tier.into(),
        })
        .await
        .map(|r| r.into_inner().user.unwrap())
}

async fn admin_create_user_gives_the_tier(db: Db) {
    let (server, mut c) = admin_server(db).await;
    assert_eq!(create_user(&mut c, "basic").await.unwrap().tier, "basic");
    server.stop().await;
}

async fn admin_create_user_of_an_existing_email_already_exists(db: Db) {
    let (server, mut c) = admin_server(db).await;
    create_user(&mut c, "basic").await.unwrap();
    let dup = create_user(&mut c, "").await;
    assert_eq!(dup.unwrap_err().code(), Code::AlreadyExists);
    server.stop().await;
}

async fn admin_set_tier_changes_the_users_tier(db: Db) {
    let (server, mut c) = admin_server(db).await;
    create_user(&mut c, "basic").await.unwrap();
    let set = c
        .admin
        .set_tier(v1::SetTierRequest {
            email: "u@x.io".into(),
            tier: "pro".into(),
        })
        .await
        .unwrap();
    assert_eq!(set.into_inner().user.unwrap().tier, "pro");
    server.stop().await;
}

/// Creates an API key for `u@x.io` as the admin.
async fn create_users_key(c: &mut Clients) -> v1::CreateApiKeyResponse {
    c.admin
        .create_api_key(v1::CreateApiKeyRequest {
            email: "u@x.io".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
}

async fn admin_create_api_key_returns_a_key_of_the_users_tier(db: Db) {
    let (server, mut c) = admin_server(db).await;
    create_user(&mut c, "pro").await.unwrap();
    let key = create_users_key(&mut c).await;
    assert!(key.key.starts_with(&format!("wwz_{}_", key.key_id)));
    let keys = c
        .admin
        .list_api_keys(v1::ListApiKeysRequest {
            email: "u@x.io".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(keys.keys.len(), 1);
    assert_eq!(keys.keys[0].key_id, key.key_id);
    assert_eq!(keys.keys[0].tier, "pro");
    server.stop().await;
}

async fn admin_revoke_api_key_succeeds(db: Db) {
    let (server, mut c) = admin_server(db).await;
    create_user(&mut c, "pro").await.unwrap();
    let key = create_users_key(&mut c).await;
    c.admin
        .revoke_api_key(v1::RevokeApiKeyRequest {
            key_id: key.key_id.clone(),
        })
        .await
        .unwrap();
    server.stop().await;
}

async fn admin_get_usage_counts_everyone_or_one_user(db: Db) {
    let (server, mut c) = admin_server(db).await;
    run(&mut c, run_bytes(guest("hello"))).await.unwrap();
    run(&mut c, run_bytes(guest("hello"))).await.unwrap();
    let theirs = server.create_key("u@x.io", "pro", false).await;
    let mut uc = clients(&server, Some(&theirs)).await;
    run(&mut uc, run_bytes(guest("hello"))).await.unwrap();
    let all = c
        .admin
        .get_usage(v1::GetUsageRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(all.executions, 3);
    let theirs = c
        .admin
        .get_usage(v1::GetUsageRequest {
            email: "u@x.io".into(),
            days: 7,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!((theirs.executions, theirs.daily.len()), (1, 7));
    server.stop().await;
}

/// The status of running `module` as the admin.
async fn admin_run_refused(db: Db, request: v1::RunRequest) -> tonic::Status {
    let (server, mut c) = admin_server(db).await;
    let status = run(&mut c, request).await.unwrap_err();
    server.stop().await;
    status
}

/// The status of running `request` on the free tier.
async fn free_run_refused(db: Db, request: v1::RunRequest) -> tonic::Status {
    let server = TestServer::start_with(db, |_| {}).await;
    let free = server.create_key("free@x.io", "free", false).await;
    let mut fc = clients(&server, Some(&free)).await;
    let status = run(&mut fc, request).await.unwrap_err();
    server.stop().await;
    status
}

async fn bytes_that_are_not_wasm_are_a_bad_module(db: Db) {
    let status = admin_run_refused(db, run_bytes(b"definitely not wasm".to_vec())).await;
    assert_bad_request(&status, "module");
    assert!(
        status.message().contains("not a WebAssembly"),
        "{}",
        status.message()
    );
}

async fn a_foreign_import_is_a_bad_module_that_names_it(db: Db) {
    let foreign = wat::parse_str(r#"(module (import "env" "f" (func)) (memory (export "memory") 1) (func (export "_start")))"#).unwrap();
    let status = admin_run_refused(db, run_bytes(foreign)).await;
    assert_bad_request(&status, "module");
    assert!(status.message().contains("env::f"), "{}", status.message());
}

async fn a_module_without_start_is_a_bad_module(db: Db) {
    let no_start = wat::parse_str(r#"(module (memory (export "memory") 1))"#).unwrap();
    let status = admin_run_refused(db, run_bytes(no_start)).await;
    assert_bad_request(&status, "module");
    assert!(status.message().contains("_start"), "{}", status.message());
}

async fn memory_past_the_tier_is_a_bad_request_naming_the_maximum(db: Db) {
    let mut req = run_bytes(guest("hello"));
    req.limits = Some(v1::Limits {
        memory_bytes: 1 << 40,
        ..Default::default()
    });
    let status = free_run_refused(db, req).await;
    assert_bad_request(&status, "limits.memory_bytes");
    let description = status
        .get_error_details()
        .bad_request()
        .unwrap()
        .field_violations[0]
        .description
        .clone();
    assert!(
        description.contains(&(128u64 << 20).to_string()),
        "names the maximum: {description}"
    );
}

async fn a_module_past_the_tier_is_a_bad_request(db: Db) {
    let status = free_run_refused(db, run_bytes(padded_hello(11 << 20))).await;
    assert_bad_request(&status, "module");
}

async fn stdin_past_the_tier_is_a_bad_request(db: Db) {
    let mut req = run_bytes(guest("echo"));
    req.stdin = vec![0; 2 << 20];
    assert_bad_request(&free_run_refused(db, req).await, "stdin");
}

async fn an_unknown_sha_is_not_found_with_resource_info(db: Db) {
    let status = admin_run_refused(db, run_sha(&"ab".repeat(32))).await;
    assert_eq!(status.code(), Code::NotFound);
    let info = status
        .get_error_details()
        .resource_info()
        .cloned()
        .expect("ResourceInfo");
    assert_eq!(
        (info.resource_type.as_str(), info.resource_name),
        ("module", "ab".repeat(32))
    );
}

async fn a_malformed_sha_is_a_bad_request(db: Db) {
    assert_bad_request(
        &admin_run_refused(db, run_sha("xyz")).await,
        "module_sha256",
    );
}

/// A key the server must refuse.
enum BadKey {
    Missing,
    Malformed,
    Unknown,
    Revoked,
}

/// Asserts that Run and WhoAmI with `bad` are UNAUTHENTICATED, in one
/// message for every way a key can be bad.
async fn assert_unauthenticated(db: Db, bad: BadKey) {
    let (server, mut c) = admin_server(db).await;
    let key = match bad {
        BadKey::Missing => None,
        BadKey::Malformed => Some("wwz_nope".to_string()),
        BadKey::Unknown => Some(format!("wwz_{}_{}", "0".repeat(16), "0".repeat(64))),
        BadKey::Revoked => {
            let revoked = server.create_key("gone@x.io", "free", false).await;
            let key_id = revoked.split('_').nth(1).unwrap().to_string();
            c.admin
                .revoke_api_key(v1::RevokeApiKeyRequest { key_id })
                .await
                .unwrap();
            Some(revoked)
        }
    };
    let mut anon = clients(&server, key.as_deref()).await;
    let status = run(&mut anon, run_bytes(guest("hello"))).await.unwrap_err();
    assert_eq!(status.code(), Code::Unauthenticated);
    assert_eq!(status.message(), "missing or invalid API key");
    assert_eq!(
        anon.account
            .who_am_i(v1::WhoAmIRequest {})
            .await
            .unwrap_err()
            .code(),
        Code::Unauthenticated
    );
    server.stop().await;
}

async fn no_key_is_unauthenticated(db: Db) {
    assert_unauthenticated(db, BadKey::Missing).await;
}

async fn a_malformed_key_is_unauthenticated(db: Db) {
    assert_unauthenticated(db, BadKey::Malformed).await;
}

async fn an_unknown_key_is_unauthenticated(db: Db) {
    assert_unauthenticated(db, BadKey::Unknown).await;
}

async fn a_revoked_key_is_unauthenticated(db: Db) {
    assert_unauthenticated(db, BadKey::Revoked).await;
}

async fn a_non_admin_calling_admin_is_permission_denied_with_error_info(db: Db) {
    let server = TestServer::start_with(db, |_| {}).await;
    let free = server.create_key("free@x.io", "free", false).await;
    let mut fc = clients(&server, Some(&free)).await;
    let status = fc
        .admin
        .list_api_keys(v1::ListApiKeysRequest::default())
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::PermissionDenied);
    assert!(status.get_error_details().error_info().is_some());
    server.stop().await;
}

/// The free tier's per-minute allowance.
const FREE_PER_MINUTE: u32 = 10;

/// Uses up the free tier's minute, asserting the rate-limit headers on each
/// allowed run; returns the server and the free key's clients.
async fn use_up_the_free_minute(db: Db) -> (TestServer, Clients) {
    let server = TestServer::start_with(db, |_| {}).await;
    let free = server.create_key("free@x.io", "free", false).await;
    let mut fc = clients(&server, Some(&free)).await;
    for i in 0..FREE_PER_MINUTE {
        let r = fc.exec.run(run_bytes(guest("hello"))).await.unwrap();
        let remaining = r
            .metadata()
            .get("ratelimit-remaining")
            .unwrap()
            .to_str()
            .unwrap()
            .to_string();
        assert_eq!(
            r.metadata().get("ratelimit-limit").unwrap(),
            FREE_PER_MINUTE.to_string().as_str()
        );
        assert_eq!(remaining, (FREE_PER_MINUTE - 1 - i).to_string());
        assert!(r.metadata().get("ratelimit-reset").is_some());
        collect(r.into_inner()).await.unwrap();
    }
    (server, fc)
}

/// Asserts `status` is the rate limit's refusal; returns its retry-after.
fn assert_rate_limited(status: &tonic::Status) -> u64 {
    assert_eq!(status.code(), Code::ResourceExhausted, "{status:?}");
    let details = status.get_error_details();
    let retry = details
        .retry_info()
        .and_then(|r| r.retry_delay)
        .expect("RetryInfo");
    assert!(
        retry > Duration::ZERO && retry <= Duration::from_secs(6),
        "{retry:?}"
    );
    assert!(details.quota_failure().is_some());
    let retry_after: u64 = status
        .metadata()
        .get("retry-after")
        .unwrap()
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=6).contains(&retry_after));
    assert_eq!(status.metadata().get("ratelimit-remaining").unwrap(), "0");
    retry_after
}

async fn rate_limit_headers_count_down_the_minute(db: Db) {
    let (server, _fc) = use_up_the_free_minute(db).await;
    server.stop().await;
}

async fn past_the_rate_limit_is_resource_exhausted_with_retry_details(db: Db) {
    let (server, mut fc) = use_up_the_free_minute(db).await;
    let status = run(&mut fc, run_bytes(guest("hello"))).await.unwrap_err();
    assert_rate_limited(&status);
    server.stop().await;
}

async fn a_rate_limited_key_runs_again_after_retry_after(db: Db) {
    let (server, mut fc) = use_up_the_free_minute(db).await;
    let status = run(&mut fc, run_bytes(guest("hello"))).await.unwrap_err();
    let retry_after = assert_rate_limited(&status);
    tokio::time::sleep(Duration::from_secs(retry_after)).await;
    let r = run(&mut fc, run_bytes(guest("hello")))
        .await
        .expect("allowed again after retry-after");
    assert_eq!(r.outcome(), v1::Outcome::Success);
    server.stop().await;
}

async fn past_the_bounded_queue_is_unavailable_with_retry_info(db: Db) {
    let busy = TestServer::start_with(db, |c| {
        c.sandbox.max_running = 1;
        c.sandbox.max_queue = 0;
    })
    .await;
    let mut bc = clients(&busy, Some(&busy.admin_key)).await;
    let mut spin = run_bytes(guest("loop"));
    spin.limits = Some(v1::Limits {
        timeout_ms: 3000,
        ..Default::default()
    });
    let mut running = bc.exec.run(spin).await.unwrap().into_inner();
    running.message().await.unwrap();
    let status = run(&mut bc, run_bytes(guest("hello"))).await.unwrap_err();
    assert_eq!(status.code(), Code::Unavailable);
    assert!(status.get_error_details().retry_info().is_some());
    drop(running);
    busy.stop().await;
}

async fn big_upload_then_run_by_sha(db: Db) {
    let server = TestServer::start_with(db, |_| {}).await;
    let mut c = clients(&server, Some(&server.admin_key)).await;
    let module = padded_hello(30 << 20);
    let upload = |sha: Option<String>| {
        let start = v1::UploadModuleRequest {
            msg: Some(upload_module_request::Msg::Start(v1::UploadStart {
                size: module.len() as u64,
                sha256: sha,
            })),
        };
        let chunks: Vec<_> = module
            .chunks(1 << 20)
            .map(|c| v1::UploadModuleRequest {
                msg: Some(upload_module_request::Msg::Chunk(c.to_vec())),
            })
            .collect();
        futures::stream::iter(std::iter::once(start).chain(chunks))
    };
    let info = c
        .modules
        .upload_module(upload(None))
        .await
        .unwrap()
        .into_inner();
    assert!(!info.already_existed);
    assert_eq!(info.size, module.len() as u64);
    let again = c
        .modules
        .upload_module(upload(Some(info.sha256.clone())))
        .await
        .unwrap()
        .into_inner();
    assert!(again.already_existed);
    let wrong = c
        .modules
        .upload_module(upload(Some("00".repeat(32))))
        .await
        .unwrap_err();
    assert_bad_request(&wrong, "sha256");
    for _ in 0..2 {
        let r = run(&mut c, run_sha(&info.sha256)).await.unwrap();
        assert_eq!(r.stdout, b"Hello, WasmWiz!\n");
        assert!(r.started.unwrap().cache_hit);
    }
    // A second tenant uploading the same bytes gets its own link, stored once.
    let other = server.create_key("other@x.io", "pro", false).await;
    let mut oc = clients(&server, Some(&other)).await;
    assert_eq!(
        run(&mut oc, run_sha(&info.sha256))
            .await
            .unwrap_err()
            .code(),
        Code::NotFound
    );
    let theirs = oc
        .modules
        .upload_module(upload(None))
        .await
        .unwrap()
        .into_inner();
    assert!(!theirs.already_existed, "new to this tenant");
    // Upload refused as soon as the announced size passes the tier's maximum.
    let free = server.create_key("small@x.io", "free", false).await;
    let mut small = clients(&server, Some(&free)).await;
    assert_bad_request(
        &small.modules.upload_module(upload(None)).await.unwrap_err(),
        "size",
    );
    server.stop().await;
}

async fn sigterm_lets_running_executions_finish(db: Db) {
    let mut server = TestServer::start_with(db, |c| c.shutdown_grace_secs = 60).await;
    let c = clients(&server, Some(&server.admin_key)).await;
    let mut streams = Vec::new();
    for _ in 0..50 {
        let mut req = run_bytes(guest("hash"));
        req.args = vec!["1".into()];
        let mut stream = c.exec.clone().run(req).await.unwrap().into_inner();
        stream.message().await.unwrap().expect("started");
        streams.push(stream);
    }
    server.begin_shutdown();
    let results = futures::future::join_all(streams.into_iter().map(collect)).await;
    for r in &results {
        let r = r.as_ref().expect("finished normally");
        assert_eq!(r.outcome(), v1::Outcome::Success);
        assert!(String::from_utf8_lossy(&r.stdout).starts_with("fnv1a64="));
    }
    let (config, dir) = server.stop().await;
    let restarted = TestServer::start_config(config, dir).await;
    let mut c = clients(&restarted, Some(&restarted.admin_key)).await;
    let usage = c
        .admin
        .get_usage(v1::GetUsageRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(usage.executions, 50);
    assert_eq!(
        usage.by_outcome.get("OUTCOME_SUCCESS"),
        Some(&50),
        "{:?}",
        usage.by_outcome
    );
    restarted.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sixty_four_mib_of_stdin_streams_through_execute() {
    let server = TestServer::start().await;
    let c = clients(&server, Some(&server.admin_key)).await;
    let echo = guest("echo");
    let total = 64usize << 20;
    let (tx, rx) = tokio::sync::mpsc::channel::<v1::ExecuteRequest>(4);
    let mut exec = c.exec.clone();
    let call = tokio::spawn(async move {
        exec.execute(tokio_stream::wrappers::ReceiverStream::new(rx))
            .await
    });
    tx.send(v1::ExecuteRequest {
        msg: Some(Msg::Start(v1::ExecuteStart {
            source: Some(v1::execute_start::Source::ModuleSize(echo.len() as u64)),
            stream_stdin: true,
            ..Default::default()
        })),
    })
    .await
    .unwrap();
    tx.send(v1::ExecuteRequest {
        msg: Some(Msg::ModuleChunk(echo)),
    })
    .await
    .unwrap();
    let feeder = tokio::spawn(async move {
        let mut sent = 0usize;
        while sent < total {
            let chunk: Vec<u8> = (sent..sent + (1 << 20)).map(|i| (i % 251) as u8).collect();
            sent += chunk.len();
            tx.send(v1::ExecuteRequest {
                msg: Some(Msg::StdinChunk(chunk)),
            })
            .await
            .unwrap();
        }
        tx.send(v1::ExecuteRequest {
            msg: Some(Msg::StdinEof(true)),
        })
        .await
        .unwrap();
    });
    let mut stream = call.await.unwrap().unwrap().into_inner();
    let mut received = 0usize;
    let mut finished = None;
    while let Some(event) = stream.message().await.unwrap() {
        match event.event.unwrap() {
            v1::execute_event::Event::Stdout(bytes) => {
                for (j, b) in bytes.iter().enumerate() {
                    assert_eq!(*b, ((received + j) % 251) as u8, "byte {}", received + j);
                }
                received += bytes.len();
            }
            v1::execute_event::Event::Finished(f) => finished = Some(f),
            _ => {}
        }
    }
    feeder.await.unwrap();
    assert_eq!(received, total);
    let finished = finished.unwrap();
    assert_eq!(finished.outcome(), v1::Outcome::Success, "{finished:?}");
    assert_eq!(finished.stdout_bytes, total as u64);
    server.stop().await;
}

/// Sends `start` (echo, streamed stdin) and the module, then `rest`; returns
/// what came back and the error that ended the call.
async fn execute_echo_then(
    c: &Clients,
    rest: Vec<v1::ExecuteRequest>,
) -> (Vec<u8>, Result<(), tonic::Status>) {
    let echo = guest("echo");
    let mut messages = vec![
        v1::ExecuteRequest {
            msg: Some(Msg::Start(v1::ExecuteStart {
                source: Some(v1::execute_start::Source::ModuleSize(echo.len() as u64)),
                stream_stdin: true,
                ..Default::default()
            })),
        },
        v1::ExecuteRequest {
            msg: Some(Msg::ModuleChunk(echo)),
        },
    ];
    messages.extend(rest);
    // The client's stream stays open (like a client still sending), so only
    // the server's refusal can end the call.
    let (tx, rx) = tokio::sync::mpsc::channel::<v1::ExecuteRequest>(messages.len());
    for message in messages {
        tx.send(message).await.unwrap();
    }
    let mut exec = c.exec.clone();
    let mut stream = exec
        .execute(tokio_stream::wrappers::ReceiverStream::new(rx))
        .await
        .unwrap()
        .into_inner();
    let mut stdout = Vec::new();
    let end = loop {
        match stream.message().await {
            Ok(Some(event)) => {
                if let Some(v1::execute_event::Event::Stdout(bytes)) = event.event {
                    stdout.extend(bytes);
                }
            }
            Ok(None) => break Ok(()),
            Err(status) => break Err(status),
        }
    };
    drop(tx);
    (stdout, end)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn streamed_stdin_past_the_tier_or_off_protocol_is_refused_mid_run() {
    let server = TestServer::start().await;
    let free = server.create_key("stdin@x.io", "free", false).await;
    let c = clients(&server, Some(&free)).await;
    let chunk = |n: usize| v1::ExecuteRequest {
        msg: Some(Msg::StdinChunk(vec![b'x'; n])),
    };

    // The free tier takes 1 MiB of stdin: 1 MiB streams through whole...
    let (stdout, end) = execute_echo_then(
        &c,
        vec![
            chunk(512 << 10),
            chunk(512 << 10),
            v1::ExecuteRequest {
                msg: Some(Msg::StdinEof(true)),
            },
        ],
    )
    .await;
    end.unwrap();
    assert_eq!(stdout.len(), 1 << 20);

    // ...one byte more ends the call with INVALID_ARGUMENT naming the maximum.
    let (stdout, end) = execute_echo_then(&c, vec![chunk(512 << 10), chunk((512 << 10) + 1)]).await;
    let status = end.unwrap_err();
    assert_bad_request(&status, "stdin");
    assert!(
        status.message().contains(&(1u64 << 20).to_string()),
        "names the maximum: {}",
        status.message()
    );
    assert!(
        stdout.len() <= 512 << 10,
        "the over-size chunk never reached the guest"
    );

    // Anything but stdin after the module is refused, not ignored.
    let second_start = v1::ExecuteRequest {
        msg: Some(Msg::Start(v1::ExecuteStart::default())),
    };
    let (_, end) = execute_echo_then(&c, vec![chunk(10), second_start]).await;
    let status = end.unwrap_err();
    assert_bad_request(&status, "msg");
    assert!(
        status.message().contains("second `start`"),
        "{}",
        status.message()
    );

    // Both refused runs are on record (they were admitted) and ended.
    let usage = c
        .account
        .clone()
        .get_usage(v1::GetUsageRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(usage.executions, 3);
    assert_eq!(
        usage.by_outcome.get("OUTCOME_SUCCESS"),
        Some(&1),
        "{:?}",
        usage.by_outcome
    );
    assert_eq!(
        usage.by_outcome.get("OUTCOME_CANCELLED"),
        Some(&2),
        "{:?}",
        usage.by_outcome
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_hundred_concurrent_mixed_executions_are_all_right() {
    let server = TestServer::start().await;
    let c = clients(&server, Some(&server.admin_key)).await;
    let tasks = (0..200).map(|i| {
        let mut exec = c.exec.clone();
        async move {
            let (req, expect): (v1::RunRequest, Vec<u8>) = match i % 3 {
                0 => (run_bytes(guest("hello")), b"Hello, WasmWiz!\n".to_vec()),
                1 => {
                    let mut r = run_bytes(guest("echo"));
                    r.stdin = format!("echo {i}\n").into_bytes();
                    (r, format!("echo {i}\n").into_bytes())
                }
                _ => {
                    let mut r = run_bytes(guest("exitcode"));
                    r.args = vec![(i % 7).to_string()];
                    (r, format!("exiting with {}\n", i % 7).into_bytes())
                }
            };
            let r = collect(exec.run(req).await.unwrap().into_inner())
                .await
                .unwrap();
            assert_eq!(r.stdout, expect, "execution {i}");
            if i % 3 == 2 {
                assert_eq!(r.finished.unwrap().exit_code, i % 7);
            } else {
                assert_eq!(r.outcome(), v1::Outcome::Success);
            }
        }
    });
    futures::future::join_all(tasks).await;
    let mut c = clients(&server, Some(&server.admin_key)).await;
    let usage = c
        .account
        .get_usage(v1::GetUsageRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(usage.executions, 200);
    server.stop().await;
}

fn grpc_web_frame(message: &[u8]) -> Vec<u8> {
    let mut frame = vec![0u8];
    frame.extend_from_slice(&(message.len() as u32).to_be_bytes());
    frame.extend_from_slice(message);
    frame
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_web_over_http1_and_cors_preflight() {
    use prost::Message;
    let server = TestServer::start().await;
    let body = grpc_web_frame(&v1::WhoAmIRequest {}.encode_to_vec());
    let mut tcp = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    let request = format!(
        "POST /wasmwiz.v1.AccountService/WhoAmI HTTP/1.1\r\nHost: {}\r\nContent-Type: application/grpc-web+proto\r\n\
         X-Grpc-Web: 1\r\nAuthorization: Bearer {}\r\nOrigin: http://example.test\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        server.addr,
        server.admin_key,
        body.len()
    );
    tcp.write_all(request.as_bytes()).await.unwrap();
    tcp.write_all(&body).await.unwrap();
    let mut response = Vec::new();
    tcp.read_to_end(&mut response).await.unwrap();
    let text = String::from_utf8_lossy(&response);
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    assert!(
        text.to_ascii_lowercase()
            .contains("content-type: application/grpc-web"),
        "{text}"
    );
    assert!(
        text.contains("admin@test.local"),
        "the WhoAmI message is in the body: {text}"
    );
    assert!(
        text.contains("grpc-status:0"),
        "trailers frame carries the status: {text}"
    );
    assert!(
        text.to_ascii_lowercase()
            .contains("access-control-expose-headers"),
        "{text}"
    );

    // Preflight needs no key.
    let mut tcp = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    let preflight = format!(
        "OPTIONS /wasmwiz.v1.ExecutionService/Run HTTP/1.1\r\nHost: {}\r\nOrigin: http://example.test\r\n\
         Access-Control-Request-Method: POST\r\nAccess-Control-Request-Headers: authorization,content-type,x-grpc-web\r\nConnection: close\r\n\r\n",
        server.addr
    );
    tcp.write_all(preflight.as_bytes()).await.unwrap();
    let mut response = Vec::new();
    tcp.read_to_end(&mut response).await.unwrap();
    let text = String::from_utf8_lossy(&response).to_ascii_lowercase();
    assert!(text.starts_with("http/1.1 200"), "{text}");
    assert!(
        text.contains("access-control-allow-origin: http://example.test"),
        "{text}"
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_half_sent_request_line_is_dropped() {
    let server = TestServer::start().await;
    let mut tcp = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    tcp.write_all(b"POST / HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    let mut buf = [0u8; 1024];
    let read = tokio::time::timeout(Duration::from_secs(90), tcp.read(&mut buf))
        .await
        .expect("the server drops the connection instead of waiting forever");
    assert!(matches!(read, Ok(0) | Err(_) | Ok(_)), "connection closed");
    // Whatever was sent back, the connection is now closed.
    let again = tcp.read(&mut buf).await;
    assert!(matches!(again, Ok(0) | Err(_)), "{again:?}");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_and_reflection_need_no_key_and_drain_reports_not_serving() {
    use tonic_health::pb::{
        health_check_response::ServingStatus, health_client::HealthClient, HealthCheckRequest,
    };
    use tonic_reflection::pb::v1::{
        server_reflection_client::ServerReflectionClient,
        server_reflection_request::MessageRequest, server_reflection_response::MessageResponse,
        ServerReflectionRequest,
    };
    let mut server = TestServer::start_with(Db::Sqlite, |c| c.shutdown_grace_secs = 1).await;
    let channel = server.channel().await;
    let mut health = HealthClient::new(channel.clone());
    let status = health
        .check(HealthCheckRequest {
            service: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(status.status(), ServingStatus::Serving);
    let named = HealthCheckRequest {
        service: "wasmwiz.v1.ExecutionService".into(),
    };
    assert_eq!(
        health
            .check(named.clone())
            .await
            .unwrap()
            .into_inner()
            .status(),
        ServingStatus::Serving
    );

    let mut reflection = ServerReflectionClient::new(channel.clone());
    let request = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    };
    let mut responses = reflection
        .server_reflection_info(futures::stream::iter([request]))
        .await
        .unwrap()
        .into_inner();
    let response = responses.message().await.unwrap().unwrap();
    let Some(MessageResponse::ListServicesResponse(list)) = response.message_response else {
        panic!("{response:?}")
    };
    let names: Vec<_> = list.service.iter().map(|s| s.name.as_str()).collect();
    for service in [
        "wasmwiz.v1.ExecutionService",
        "wasmwiz.v1.ModuleService",
        "wasmwiz.v1.AccountService",
        "wasmwiz.v1.AdminService",
    ] {
        assert!(names.contains(&service), "{names:?}");
    }

    let mut watch = health.watch(named).await.unwrap().into_inner();
    assert_eq!(
        watch.message().await.unwrap().unwrap().status(),
        ServingStatus::Serving
    );
    server.begin_shutdown();
    let next = tokio::time::timeout(Duration::from_secs(30), watch.message())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(next.status(), ServingStatus::NotServing);
    drop(watch);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn playground_metrics_and_probes_are_served_over_http() {
    let server = TestServer::start().await;
    let get = |path: &'static str| {
        let addr = server.addr;
        async move {
            let mut tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
            tcp.write_all(
                format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes(),
            )
            .await
            .unwrap();
            let mut out = Vec::new();
            tcp.read_to_end(&mut out).await.unwrap();
            String::from_utf8_lossy(&out).to_string()
        }
    };
    let page = get("/").await;
    assert!(page.starts_with("HTTP/1.1 200"), "{page}");
    let lower = page.to_ascii_lowercase();
    assert!(lower.contains("content-security-policy: default-src 'self'"));
    assert!(lower.contains("frame-ancestors 'none'"));
    assert!(lower.contains("x-content-type-options: nosniff"));
    assert!(get("/healthz").await.starts_with("HTTP/1.1 200"));
    assert!(get("/readyz").await.starts_with("HTTP/1.1 200"));
    let wasm = get("/examples/hello.wasm").await;
    assert!(wasm.contains("application/wasm"));
    let mut c = clients(&server, Some(&server.admin_key)).await;
    run(&mut c, run_bytes(guest("hello"))).await.unwrap();
    let metrics = get("/metrics").await;
    let body = metrics.split("\r\n\r\n").nth(1).expect("a body");
    assert_prometheus_text(body);
    assert!(
        metrics
            .contains("wasmwiz_executions_total{outcome=\"OUTCOME_SUCCESS\",tier=\"unlimited\"} 1"),
        "{metrics}"
    );
    server.stop().await;
}

/// Every sample line is `name{labels} value` with a valid name and number.
fn assert_prometheus_text(body: &str) {
    let mut samples = 0;
    for line in body
        .lines()
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
    {
        let (series, value) = line
            .rsplit_once(' ')
            .unwrap_or_else(|| panic!("no value: {line}"));
        assert!(
            value.parse::<f64>().is_ok() || ["+Inf", "-Inf", "NaN"].contains(&value),
            "{line}"
        );
        let name = series.split('{').next().unwrap();
        assert!(
            !name.is_empty()
                && name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
                && !name.starts_with(|c: char| c.is_ascii_digit()),
            "{line}"
        );
        if let Some(labels) = series.strip_prefix(name) {
            assert!(
                labels.is_empty() || (labels.starts_with('{') && labels.ends_with('}')),
                "{line}"
            );
        }
        samples += 1;
    }
    assert!(samples > 10, "{body}");
}

/// The BadRequest description on `field` (the test names the field).
fn violation(status: &tonic::Status, field: &str) -> String {
    assert_bad_request(status, field);
    status
        .get_error_details()
        .bad_request()
        .unwrap()
        .field_violations
        .iter()
        .find(|v| v.field == field)
        .unwrap()
        .description
        .clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_refuses_more_args_than_the_tier_allows() {
    let server = TestServer::start().await;
    let key = server.create_key("args@x.io", "free", false).await;
    let mut c = clients(&server, Some(&key)).await;
    let refused = run(
        &mut c,
        v1::RunRequest {
            args: vec!["a".into(); 256],
            ..run_bytes(guest("hello"))
        },
    )
    .await
    .unwrap_err();
    assert!(violation(&refused, "args").contains("at most 256 items"));
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn execute_refuses_env_past_the_tiers_bytes() {
    let server = TestServer::start().await;
    let key = server.create_key("env@x.io", "free", false).await;
    let c = clients(&server, Some(&key)).await;
    let hello = guest("hello");
    let messages = vec![
        v1::ExecuteRequest {
            msg: Some(Msg::Start(v1::ExecuteStart {
                source: Some(v1::execute_start::Source::ModuleSize(hello.len() as u64)),
                env: [("BIG".to_string(), "x".repeat(64 << 10))].into(),
                ..Default::default()
            })),
        },
        v1::ExecuteRequest {
            msg: Some(Msg::ModuleChunk(hello)),
        },
    ];
    let refused = c
        .exec
        .clone()
        .execute(futures::stream::iter(messages))
        .await
        .unwrap_err();
    assert!(violation(&refused, "env").contains(&(64 << 10).to_string()));
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_batch_names_the_case_whose_args_pass_the_tier() {
    let server = TestServer::start().await;
    let key = server.create_key("batch-args@x.io", "free", false).await;
    let mut c = clients(&server, Some(&key)).await;
    let case = |args: Vec<String>| v1::BatchCase {
        args,
        ..Default::default()
    };
    let refused = c
        .exec
        .run_batch(v1::RunBatchRequest {
            source: Some(v1::run_batch_request::Source::Module(guest("hello"))),
            cases: vec![case(vec![]), case(vec!["a".repeat(64 << 10)])],
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert!(violation(&refused, "cases[1].args").contains("bytes"));
    server.stop().await;
}

/// A valid command module exporting `n` extra functions.
fn many_exports(n: usize, salt: usize) -> Vec<u8> {
    let exports: String = (0..n)
        .map(|i| format!("(export \"f{i}\" (func $f))"))
        .collect();
    wat::parse_str(format!(
        "(module (memory (export \"memory\") 1) (global i32 (i32.const {salt})) \
         (func $f) (func (export \"_start\")) {exports})"
    ))
    .unwrap()
}

async fn store_many_exports(c: &mut Clients) {
    for salt in 0..3 {
        c.modules
            .put_module(v1::PutModuleRequest {
                module: many_exports(500, salt),
                sha256: None,
            })
            .await
            .unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_module_listing_has_counts_but_not_export_lists() {
    let server = TestServer::start().await;
    let mut c = clients(&server, Some(&server.admin_key)).await;
    store_many_exports(&mut c).await;
    let page = c
        .modules
        .list_modules(v1::ListModulesRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(page.modules.len(), 3);
    for module in &page.modules {
        assert_eq!(module.export_count, Some(502));
        assert_eq!(module.import_count, Some(0));
        assert!(module.exports.is_empty() && module.imports.is_empty());
    }
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_detailed_module_listing_has_the_export_lists() {
    let server = TestServer::start().await;
    let mut c = clients(&server, Some(&server.admin_key)).await;
    store_many_exports(&mut c).await;
    let page = c
        .modules
        .list_modules(v1::ListModulesRequest {
            include_details: true,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(page.modules.len(), 3);
    assert!(page.modules.iter().all(|m| m.exports.len() == 502));
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn detailed_listing_pages_are_smaller() {
    let server = TestServer::start().await;
    let mut c = clients(&server, Some(&server.admin_key)).await;
    for salt in 0..21 {
        c.modules
            .put_module(v1::PutModuleRequest {
                module: many_exports(1, salt),
                sha256: None,
            })
            .await
            .unwrap();
    }
    let page = c
        .modules
        .list_modules(v1::ListModulesRequest {
            include_details: true,
            page_size: 1000,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(page.modules.len(), 20);
    assert!(!page.next_page_token.is_empty());
    server.stop().await;
}

/// The ErrorInfo beside a limit's BadRequest: LIMIT_EXCEEDED with the
/// numbers as metadata, so clients can word it in their users' terms.
fn limit_info(status: &tonic::Status) -> std::collections::HashMap<String, String> {
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    let info = status
        .get_error_details()
        .error_info()
        .cloned()
        .unwrap_or_else(|| panic!("no ErrorInfo: {status:?}"));
    assert_eq!(
        (info.reason.as_str(), info.domain.as_str()),
        ("LIMIT_EXCEEDED", "wasmwiz")
    );
    info.metadata
}

/// `[field, requested, maximum, unit, tier]` of a limit's ErrorInfo.
fn limit_figures(status: &tonic::Status) -> [String; 5] {
    let meta = limit_info(status);
    ["field", "requested", "maximum", "unit", "tier"].map(|k| meta[k].clone())
}

fn figures(field: &str, requested: u64, maximum: u64, unit: &str) -> [String; 5] {
    [
        field.to_string(),
        requested.to_string(),
        maximum.to_string(),
        unit.to_string(),
        "free".to_string(),
    ]
}

/// A free-tier client refused `limits` on a run of the hello guest.
async fn refused_limits(limits: v1::Limits) -> tonic::Status {
    let server = TestServer::start().await;
    let key = server.create_key("limits@x.io", "free", false).await;
    let mut c = clients(&server, Some(&key)).await;
    let mut req = run_bytes(guest("hello"));
    req.limits = Some(limits);
    let status = run(&mut c, req).await.unwrap_err();
    server.stop().await;
    status
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_above_the_tier_carries_its_figures_in_error_info() {
    let status = refused_limits(v1::Limits {
        memory_bytes: 2 << 30,
        ..Default::default()
    })
    .await;
    assert_bad_request(&status, "limits.memory_bytes");
    assert_eq!(
        limit_figures(&status),
        figures("limits.memory_bytes", 2 << 30, 128 << 20, "bytes")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fuel_above_the_tier_carries_its_figures_in_error_info() {
    let status = refused_limits(v1::Limits {
        fuel: 1_000_000_000_001,
        ..Default::default()
    })
    .await;
    assert_eq!(
        limit_figures(&status),
        figures("limits.fuel", 1_000_000_000_001, 1_000_000_000_000, "fuel")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn timeout_above_the_tier_carries_its_figures_in_error_info() {
    let status = refused_limits(v1::Limits {
        timeout_ms: 60_000,
        ..Default::default()
    })
    .await;
    assert_eq!(
        limit_figures(&status),
        figures("limits.timeout_ms", 60_000, 5_000, "ms")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn output_above_the_tier_carries_its_figures_in_error_info() {
    let status = refused_limits(v1::Limits {
        max_output_bytes: 4 << 20,
        ..Default::default()
    })
    .await;
    assert_eq!(
        limit_figures(&status),
        figures("limits.max_output_bytes", 4 << 20, 1 << 20, "bytes")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_announced_module_size_above_the_tier_carries_its_figures_in_error_info() {
    let server = TestServer::start().await;
    let key = server.create_key("module-size@x.io", "free", false).await;
    let c = clients(&server, Some(&key)).await;
    let start = v1::ExecuteRequest {
        msg: Some(Msg::Start(v1::ExecuteStart {
            source: Some(v1::execute_start::Source::ModuleSize(19 << 20)),
            ..Default::default()
        })),
    };
    let status = c
        .exec
        .clone()
        .execute(futures::stream::iter(vec![start]))
        .await
        .unwrap_err();
    assert_eq!(
        limit_figures(&status),
        figures("module_size", 19 << 20, 10 << 20, "bytes")
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stdin_above_the_tier_carries_its_figures_in_error_info() {
    let server = TestServer::start().await;
    let key = server.create_key("stdin-size@x.io", "free", false).await;
    let mut c = clients(&server, Some(&key)).await;
    let mut req = run_bytes(guest("echo"));
    req.stdin = vec![0; (1 << 20) + 1];
    let status = run(&mut c, req).await.unwrap_err();
    assert_eq!(
        limit_figures(&status),
        figures("stdin", (1 << 20) + 1, 1 << 20, "bytes")
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn too_many_args_carry_the_count_in_error_info() {
    let server = TestServer::start().await;
    let key = server.create_key("args-count@x.io", "free", false).await;
    let mut c = clients(&server, Some(&key)).await;
    let req = v1::RunRequest {
        args: vec!["a".into(); 300],
        ..run_bytes(guest("hello"))
    };
    let status = run(&mut c, req).await.unwrap_err();
    // argv[0] counts: 300 args are 301 items.
    assert_eq!(limit_figures(&status), figures("args", 301, 256, "count"));
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn too_many_arg_bytes_carry_the_bytes_in_error_info() {
    let server = TestServer::start().await;
    let key = server.create_key("args-bytes@x.io", "free", false).await;
    let mut c = clients(&server, Some(&key)).await;
    let req = v1::RunRequest {
        program_name: "p".into(),
        args: vec!["a".repeat(64 << 10)],
        ..run_bytes(guest("hello"))
    };
    let status = run(&mut c, req).await.unwrap_err();
    // "p\0" + the argument and its NUL.
    assert_eq!(
        limit_figures(&status),
        figures("args", 2 + (64 << 10) + 1, 64 << 10, "bytes")
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_past_the_tiers_cap_carries_its_figures_in_error_info() {
    let server = TestServer::start_with(Db::Sqlite, |config| {
        config.tiers.get_mut("free").unwrap().max_module_bytes = 64 << 10;
    })
    .await;
    let free = &server.config.tiers["free"];
    // Module + stdin + args + inline files + overhead.
    let cap = wasmwiz_server::transport::auth_layer::tier_message_bytes(&server.config, free);
    let key = server.create_key("message@x.io", "free", false).await;
    let mut c = clients(&server, Some(&key)).await;
    let status = run(&mut c, run_bytes(padded_hello(cap as usize)))
        .await
        .unwrap_err();
    assert_bad_request(&status, "message");
    let [field, requested, maximum, unit, tier] = limit_figures(&status);
    assert_eq!(
        (field.as_str(), maximum, unit.as_str(), tier.as_str()),
        ("message", cap.to_string(), "bytes", "free")
    );
    assert!(requested.parse::<u64>().unwrap() > cap, "{requested}");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_upload_is_told_apart_from_a_client_deadline_by_error_info() {
    let server = TestServer::start_with(Db::Sqlite, |config| {
        config.tiers.get_mut("free").unwrap().upload_idle_timeout_ms = 200;
    })
    .await;
    let key = server.create_key("idle@x.io", "free", false).await;
    let mut c = clients(&server, Some(&key)).await;
    let (sender, requests) = tokio::sync::mpsc::channel(1);
    sender
        .send(v1::UploadModuleRequest {
            msg: Some(upload_module_request::Msg::Start(v1::UploadStart {
                size: 4096,
                sha256: None,
            })),
        })
        .await
        .unwrap();
    // The stream stays open and sends nothing more.
    let ended = c
        .modules
        .upload_module(tokio_stream::wrappers::ReceiverStream::new(requests))
        .await
        .unwrap_err();
    assert_eq!(ended.code(), Code::DeadlineExceeded, "{ended:?}");
    let info = ended.get_error_details().error_info().cloned().unwrap();
    assert_eq!(
        (info.reason.as_str(), info.metadata["timeout_ms"].as_str()),
        ("UPLOAD_IDLE", "200")
    );
    drop(sender);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_batch_refuses_more_cases_than_the_tier_allows() {
    let server = TestServer::start().await;
    let key = server.create_key("batch-size@x.io", "free", false).await;
    let mut c = clients(&server, Some(&key)).await;
    let max = wasmwiz_server::config::default_tiers()["free"].max_batch_cases as usize;
    let refused = c
        .exec
        .run_batch(v1::RunBatchRequest {
            source: Some(v1::run_batch_request::Source::Module(guest("hello"))),
            cases: vec![v1::BatchCase::default(); max + 1],
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert!(violation(&refused, "cases").contains(&format!("maximum of {max}")));
    server.stop().await;
}

/// This account's usage rows by outcome.
async fn outcomes(c: &mut Clients) -> std::collections::HashMap<String, u64> {
    c.account
        .get_usage(v1::GetUsageRequest::default())
        .await
        .unwrap()
        .into_inner()
        .by_outcome
}

/// Polls `outcomes` until `done` holds (bounded, so a regression fails
/// instead of hanging).
async fn until_outcomes(
    c: &mut Clients,
    done: impl Fn(&std::collections::HashMap<String, u64>) -> bool,
) -> std::collections::HashMap<String, u64> {
    for _ in 0..2000 {
        let now = outcomes(c).await;
        if done(&now) {
            return now;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!(
        "usage never reached the expected state: {:?}",
        outcomes(c).await
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_batch_cancels_its_running_cases_and_starts_no_more() {
    let server = TestServer::start().await;
    // Free: two at once, so the third case waits for a slot.
    let key = server.create_key("batch-drop@x.io", "free", false).await;
    let mut c = clients(&server, Some(&key)).await;
    let batch = c
        .exec
        .run_batch(v1::RunBatchRequest {
            source: Some(v1::run_batch_request::Source::Module(guest("loop"))),
            cases: vec![v1::BatchCase::default(); 3],
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    until_outcomes(&mut c, |o| o.get("RUNNING") == Some(&2)).await;
    drop(batch);
    let ended = until_outcomes(&mut c, |o| !o.contains_key("RUNNING")).await;
    // Left alone, the cases would end at the tier's timeout and the third
    // would start.
    assert_eq!(
        ended,
        std::collections::HashMap::from([("OUTCOME_CANCELLED".to_string(), 2)])
    );
    server.stop().await;
}
