//! The gRPC API against a real server on 127.0.0.1:0, on SQLite and
//! PostgreSQL: every RPC, the error table, big uploads, streamed stdin,
//! grpc-web, concurrency and graceful shutdown.

mod support;

use std::time::Duration;

use support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tonic::Code;
use tonic_types::StatusExt;
use wasmwiz_proto::v1::{self, execute_request::Msg, upload_module_request};

on_both_databases!(
    every_rpc_round_trips,
    error_table,
    big_upload_then_run_by_sha,
    sigterm_lets_running_executions_finish
);

async fn every_rpc_round_trips(db: Db) {
    let server = TestServer::start_with(db, |_| {}).await;
    let mut c = clients(&server, Some(&server.admin_key)).await;
    let hello = guest("hello");

    // UploadModule in chunks, then GetModule / ListModules.
    let chunks: Vec<_> = hello
        .chunks(1000)
        .map(|c| v1::UploadModuleRequest {
            msg: Some(upload_module_request::Msg::Chunk(c.to_vec())),
        })
        .collect();
    let start = v1::UploadModuleRequest {
        msg: Some(upload_module_request::Msg::Start(v1::UploadStart {
            size: hello.len() as u64,
            sha256: None,
        })),
    };
    let info = c
        .modules
        .upload_module(futures::stream::iter(std::iter::once(start).chain(chunks)))
        .await
        .unwrap()
        .into_inner();
    assert!(!info.already_existed);
    assert_eq!(info.size, hello.len() as u64);
    assert!(info
        .imports
        .iter()
        .all(|i| i.module == "wasi_snapshot_preview1"));
    assert!(info
        .exports
        .iter()
        .any(|e| e.name == "_start" && e.kind == "func"));
    let sha = info.sha256.clone();
    let got = c
        .modules
        .get_module(v1::GetModuleRequest {
            sha256: sha.clone(),
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
        [sha.as_str()]
    );

    // Run by sha: started first, then output, then finished.
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

    // Run with inline bytes, args, env, expected stdout (accepted and wrong answer).
    let mut req = run_bytes(guest("argsenv"));
    req.args = vec!["x".into()];
    req.env.insert("K".into(), "V".into());
    req.program_name = "prog".into();
    let r = run(&mut c, req).await.unwrap();
    assert_eq!(
        String::from_utf8(r.stdout).unwrap(),
        "argv[0]=prog\nargv[1]=x\nenv:K=V\n"
    );
    let mut req = run_sha(&sha);
    req.expected_stdout = Some(b"Hello, WasmWiz!\n".to_vec());
    assert_eq!(
        run(&mut c, req).await.unwrap().finished.unwrap().verdict(),
        v1::Verdict::Accepted
    );
    let mut req = run_sha(&sha);
    req.expected_stdout = Some(b"Hello\n".to_vec());
    assert_eq!(
        run(&mut c, req).await.unwrap().finished.unwrap().verdict(),
        v1::Verdict::WrongAnswer
    );

    // Execute with inline module chunks and whole stdin.
    let echo = guest("echo");
    let mut msgs = vec![v1::ExecuteRequest {
        msg: Some(Msg::Start(v1::ExecuteStart {
            source: Some(v1::execute_start::Source::ModuleSize(echo.len() as u64)),
            stdin: b"ping".to_vec(),
            keep_module: true,
            ..Default::default()
        })),
    }];
    msgs.extend(echo.chunks(300).map(|c| v1::ExecuteRequest {
        msg: Some(Msg::ModuleChunk(c.to_vec())),
    }));
    let r = collect(
        c.exec
            .execute(futures::stream::iter(msgs))
            .await
            .unwrap()
            .into_inner(),
    )
    .await
    .unwrap();
    assert_eq!(r.stdout, b"ping");
    let echo_sha = r.started.unwrap().module_sha256;
    assert!(
        c.modules
            .get_module(v1::GetModuleRequest { sha256: echo_sha })
            .await
            .is_ok(),
        "keep_module stored it"
    );

    // RunBatch: verdicts per case.
    let cases = [("10\n", "55\n"), ("20\n", "6765\n"), ("5\n", "6\n")]
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
            cases,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let mut verdicts = vec![None; 3];
    while let Some(e) = events.message().await.unwrap() {
        verdicts[e.case_index as usize] = Some(e.finished.unwrap().verdict());
    }
    assert_eq!(
        verdicts,
        [
            Some(v1::Verdict::Accepted),
            Some(v1::Verdict::Accepted),
            Some(v1::Verdict::WrongAnswer)
        ]
    );

    // PutModule (dedup), DeleteModule.
    let put = c
        .modules
        .put_module(v1::PutModuleRequest {
            module: hello.clone(),
            sha256: Some(sha.clone()),
        })
        .await
        .unwrap()
        .into_inner();
    assert!(put.already_existed);
    c.modules
        .delete_module(v1::DeleteModuleRequest {
            sha256: sha.clone(),
        })
        .await
        .unwrap();
    let gone = run(&mut c, run_sha(&sha)).await.unwrap_err();
    assert_eq!(gone.code(), Code::NotFound);

    // Account: WhoAmI, GetUsage, own keys.
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
    let usage = c
        .account
        .get_usage(v1::GetUsageRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(usage.executions, 8, "{usage:?}");
    assert_eq!(usage.daily.len(), 30);
    assert_eq!(usage.daily.last().unwrap().executions, 8);
    assert!(usage.fuel_consumed > 0);
    let mine = c
        .account
        .create_my_api_key(v1::CreateMyApiKeyRequest {
            label: "ci".into(),
            expires_at: None,
        })
        .await
        .unwrap()
        .into_inner();
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
    c.account
        .revoke_my_api_key(v1::RevokeMyApiKeyRequest {
            key_id: mine.key_id.clone(),
        })
        .await
        .unwrap();

    // Admin: users, tiers, keys, usage.
    let user = c
        .admin
        .create_user(v1::CreateUserRequest {
            email: "u@x.io".into(),
            tier: "basic".into(),
        })
        .await
        .unwrap()
        .into_inner()
        .user
        .unwrap();
    assert_eq!(user.tier, "basic");
    let dup = c
        .admin
        .create_user(v1::CreateUserRequest {
            email: "u@x.io".into(),
            tier: String::new(),
        })
        .await;
    assert_eq!(dup.unwrap_err().code(), Code::AlreadyExists);
    let set = c
        .admin
        .set_tier(v1::SetTierRequest {
            email: "u@x.io".into(),
            tier: "pro".into(),
        })
        .await
        .unwrap();
    assert_eq!(set.into_inner().user.unwrap().tier, "pro");
    let key = c
        .admin
        .create_api_key(v1::CreateApiKeyRequest {
            email: "u@x.io".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
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
    assert_eq!(keys.keys[0].tier, "pro");
    c.admin
        .revoke_api_key(v1::RevokeApiKeyRequest {
            key_id: key.key_id.clone(),
        })
        .await
        .unwrap();
    let all = c
        .admin
        .get_usage(v1::GetUsageRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(all.executions, 8);
    let theirs = c
        .admin
        .get_usage(v1::GetUsageRequest {
            email: "u@x.io".into(),
            days: 7,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!((theirs.executions, theirs.daily.len()), (0, 7));
    server.stop().await;
}

async fn error_table(db: Db) {
    let server = TestServer::start_with(db, |_| {}).await;
    let mut c = clients(&server, Some(&server.admin_key)).await;

    let status = run(&mut c, run_bytes(b"definitely not wasm".to_vec()))
        .await
        .unwrap_err();
    assert_bad_request(&status, "module");
    assert!(
        status.message().contains("not a WebAssembly"),
        "{}",
        status.message()
    );
    let foreign = wat::parse_str(r#"(module (import "env" "f" (func)) (memory (export "memory") 1) (func (export "_start")))"#).unwrap();
    let status = run(&mut c, run_bytes(foreign)).await.unwrap_err();
    assert_bad_request(&status, "module");
    assert!(status.message().contains("env::f"), "{}", status.message());
    let no_start = wat::parse_str(r#"(module (memory (export "memory") 1))"#).unwrap();
    assert_bad_request(
        &run(&mut c, run_bytes(no_start)).await.unwrap_err(),
        "module",
    );

    let free = server.create_key("free@x.io", "free", false).await;
    let mut fc = clients(&server, Some(&free)).await;
    let mut req = run_bytes(guest("hello"));
    req.limits = Some(v1::Limits {
        memory_bytes: 1 << 40,
        ..Default::default()
    });
    let status = run(&mut fc, req).await.unwrap_err();
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
    let status = run(&mut fc, run_bytes(padded_hello(11 << 20)))
        .await
        .unwrap_err();
    assert_bad_request(&status, "module");
    let mut req = run_bytes(guest("echo"));
    req.stdin = vec![0; 2 << 20];
    assert_bad_request(&run(&mut fc, req).await.unwrap_err(), "stdin");

    let status = run(&mut c, run_sha(&"ab".repeat(32))).await.unwrap_err();
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
    assert_bad_request(
        &run(&mut c, run_sha("xyz")).await.unwrap_err(),
        "module_sha256",
    );

    let malformed = "wwz_nope";
    let unknown = format!("wwz_{}_{}", "0".repeat(16), "0".repeat(64));
    let revoked = server.create_key("gone@x.io", "free", false).await;
    let revoked_id = revoked.split('_').nth(1).unwrap().to_string();
    c.admin
        .revoke_api_key(v1::RevokeApiKeyRequest { key_id: revoked_id })
        .await
        .unwrap();
    for key in [
        None,
        Some(malformed),
        Some(unknown.as_str()),
        Some(revoked.as_str()),
    ] {
        let mut anon = clients(&server, key).await;
        let status = run(&mut anon, run_bytes(guest("hello"))).await.unwrap_err();
        assert_eq!(status.code(), Code::Unauthenticated, "{key:?}");
        assert_eq!(status.message(), "missing or invalid API key");
        assert_eq!(
            anon.account
                .who_am_i(v1::WhoAmIRequest {})
                .await
                .unwrap_err()
                .code(),
            Code::Unauthenticated
        );
    }

    let status = fc
        .admin
        .list_api_keys(v1::ListApiKeysRequest::default())
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::PermissionDenied);
    assert!(status.get_error_details().error_info().is_some());

    // Rate limit: the free tier's 11th execution within a minute.
    for i in 0..10 {
        let r = fc.exec.run(run_bytes(guest("hello"))).await.unwrap();
        let remaining = r
            .metadata()
            .get("ratelimit-remaining")
            .unwrap()
            .to_str()
            .unwrap()
            .to_string();
        assert_eq!(r.metadata().get("ratelimit-limit").unwrap(), "10");
        assert_eq!(remaining, (9 - i).to_string());
        assert!(r.metadata().get("ratelimit-reset").is_some());
        collect(r.into_inner()).await.unwrap();
    }
    let status = run(&mut fc, run_bytes(guest("hello"))).await.unwrap_err();
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
    tokio::time::sleep(Duration::from_secs(retry_after)).await;
    let r = run(&mut fc, run_bytes(guest("hello")))
        .await
        .expect("allowed again after retry-after");
    assert_eq!(r.outcome(), v1::Outcome::Success);

    // Saturated past the bounded queue: UNAVAILABLE with RetryInfo.
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
    server.stop().await;
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
