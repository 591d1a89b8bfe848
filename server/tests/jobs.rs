//! Detached executions against a real server on both databases: submit and
//! collect later, watch replays every event, cancel, list, ownership,
//! retention.

mod support;

use std::time::{Duration, Instant};

use support::*;
use tonic::Code;
use wasmwiz_proto::v1::{self, ExecutionState};

async fn submit(clients: &mut Clients, run: v1::RunRequest) -> String {
    clients
        .exec
        .submit_execution(v1::SubmitExecutionRequest {
            run: Some(run),
            webhook_url: String::new(),
        })
        .await
        .unwrap()
        .into_inner()
        .execution_id
}

async fn get(clients: &mut Clients, id: &str) -> Result<v1::GetExecutionResponse, tonic::Status> {
    clients
        .exec
        .get_execution(v1::GetExecutionRequest {
            execution_id: id.into(),
            page_token: String::new(),
        })
        .await
        .map(|r| r.into_inner())
}

fn state_of(response: &v1::GetExecutionResponse) -> ExecutionState {
    response.execution.as_ref().unwrap().state()
}

/// Polls until the execution is FINISHED or CANCELLED.
async fn wait_ended(clients: &mut Clients, id: &str) -> v1::GetExecutionResponse {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let response = get(clients, id).await.unwrap();
        if matches!(
            state_of(&response),
            ExecutionState::Finished | ExecutionState::Cancelled
        ) {
            return response;
        }
        assert!(Instant::now() < deadline, "execution {id} did not end");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A connection to the server's own database.
async fn database(server: &TestServer) -> sqlx::AnyConnection {
    use sqlx::Connection;
    let url = match &server.config.database_url {
        Some(url) => url.clone(),
        None => wasmwiz_server::store::sqlite_url(&server.config.data_dir),
    };
    sqlx::any::install_default_drivers();
    sqlx::AnyConnection::connect(&url).await.unwrap()
}

fn with_args(module: &str, args: &[&str]) -> v1::RunRequest {
    v1::RunRequest {
        args: args.iter().map(|a| a.to_string()).collect(),
        ..run_bytes(guest(module))
    }
}

async fn start(db: Db) -> (TestServer, Clients) {
    let server = TestServer::start_with(db, |_| {}).await;
    let key = server.create_key("jobs@example.com", "free", false).await;
    let clients = clients(&server, Some(&key)).await;
    (server, clients)
}

async fn submit_then_get_returns_the_result(db: Db) {
    let (_server, mut clients) = start(db).await;
    let run = v1::RunRequest {
        stdin: b"detached input".to_vec(),
        ..run_bytes(guest("echo"))
    };
    let id = submit(&mut clients, run).await;
    let done = wait_ended(&mut clients, &id).await;
    assert_eq!(state_of(&done), ExecutionState::Finished);
    assert_eq!(done.finished.unwrap().outcome(), v1::Outcome::Success);
    assert_eq!(done.stdout, b"detached input");
    assert_eq!(done.execution.unwrap().execution_id, id);
    assert_eq!(done.attempt_execution_ids.len(), 1);
}

async fn get_pages_a_large_output(db: Db) {
    let server = TestServer::start_with(db, |_| {}).await;
    let key = server.create_key("big@example.com", "pro", false).await;
    let mut clients = clients(&server, Some(&key)).await;
    let input: Vec<u8> = (0..9u32 << 20).map(|i| (i % 251) as u8).collect();
    let run = v1::RunRequest {
        stdin: input.clone(),
        ..run_bytes(guest("echo"))
    };
    let id = submit(&mut clients, run).await;
    wait_ended(&mut clients, &id).await;
    let (mut stdout, mut pages, mut token) = (Vec::new(), 0, String::new());
    loop {
        let page = clients
            .exec
            .get_execution(v1::GetExecutionRequest {
                execution_id: id.clone(),
                page_token: token,
            })
            .await
            .unwrap()
            .into_inner();
        pages += 1;
        assert!(
            page.stdout.len() <= 5 << 20,
            "a page of {}",
            page.stdout.len()
        );
        stdout.extend_from_slice(&page.stdout);
        token = page.next_page_token;
        if token.is_empty() {
            break;
        }
    }
    assert!(pages >= 3, "{pages} pages");
    assert!(stdout == input, "the pages do not add up to the output");
}

async fn collected_files_come_back_whole(db: Db) {
    let (_server, mut clients) = start(db).await;
    let run = v1::RunRequest {
        fs: Some(v1::Filesystem {
            entries: vec![v1::FsEntry {
                path: "in.txt".into(),
                kind: Some(v1::fs_entry::Kind::File(b"copied".to_vec().into())),
            }],
            collect: vec!["out.txt".into()],
        }),
        ..with_args("fscopy", &["/in.txt", "/out.txt"])
    };
    let id = submit(&mut clients, run).await;
    let done = wait_ended(&mut clients, &id).await;
    assert_eq!(
        done.finished.as_ref().unwrap().outcome(),
        v1::Outcome::Success,
        "{done:?}"
    );
    let files: Vec<(String, Vec<u8>)> = done
        .files
        .into_iter()
        .map(|f| match f.kind {
            Some(v1::fs_entry::Kind::File(data)) => (f.path, data.to_vec()),
            other => panic!("not a file: {other:?}"),
        })
        .collect();
    assert_eq!(files, vec![("out.txt".to_string(), b"copied".to_vec())]);
}

async fn watch_replays_every_event_from_the_start(db: Db) {
    let (_server, mut clients) = start(db).await;
    let id = submit(&mut clients, with_args("progress", &["3"])).await;
    wait_ended(&mut clients, &id).await;
    // Connecting after the end still sees everything, `started` first.
    let stream = clients
        .exec
        .watch_execution(v1::WatchExecutionRequest {
            execution_id: id.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    let watched = collect(stream).await.unwrap();
    assert_eq!(watched.started.as_ref().unwrap().execution_id, id);
    assert_eq!(watched.stdout, b"tick 0\ntick 1\ntick 2\ndone\n");
    assert_eq!(watched.outcome(), v1::Outcome::Success);
}

async fn watch_follows_a_running_execution_live(db: Db) {
    let (_server, mut clients) = start(db).await;
    let id = submit(&mut clients, with_args("progress", &["4"])).await;
    let stream = clients
        .exec
        .watch_execution(v1::WatchExecutionRequest {
            execution_id: id.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    let watched = collect(stream).await.unwrap();
    assert_eq!(watched.stdout, b"tick 0\ntick 1\ntick 2\ntick 3\ndone\n");
    assert_eq!(watched.outcome(), v1::Outcome::Success);
}

async fn a_watcher_that_disconnects_and_reconnects_gets_every_event(db: Db) {
    let (_server, mut clients) = start(db).await;
    let id = submit(&mut clients, with_args("progress", &["3"])).await;
    let request = || v1::WatchExecutionRequest {
        execution_id: id.clone(),
    };
    let mut first = clients
        .exec
        .watch_execution(request())
        .await
        .unwrap()
        .into_inner();
    let started = first.message().await.unwrap().expect("started");
    assert!(matches!(
        started.event,
        Some(v1::execute_event::Event::Started(_))
    ));
    drop(first);
    let again = clients
        .exec
        .watch_execution(request())
        .await
        .unwrap()
        .into_inner();
    let watched = collect(again).await.unwrap();
    assert_eq!(watched.stdout, b"tick 0\ntick 1\ntick 2\ndone\n");
    assert_eq!(watched.outcome(), v1::Outcome::Success);
}

async fn cancel_stops_a_running_execution(db: Db) {
    // Cancellation is seen at the next lease renewal (a third of the lease).
    let server = TestServer::start_with(db, |c| c.jobs_lease_ms = 600).await;
    let key = server.create_key("jobs@example.com", "free", false).await;
    let mut clients = clients(&server, Some(&key)).await;
    let run = v1::RunRequest {
        limits: Some(v1::Limits {
            timeout_ms: 5_000,
            ..Default::default()
        }),
        ..run_bytes(guest("loop"))
    };
    let id = submit(&mut clients, run).await;
    let deadline = Instant::now() + Duration::from_secs(30);
    while state_of(&get(&mut clients, &id).await.unwrap()) != ExecutionState::Running {
        assert!(Instant::now() < deadline, "never began running");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let began = Instant::now();
    clients
        .exec
        .cancel_execution(v1::CancelExecutionRequest {
            execution_id: id.clone(),
        })
        .await
        .unwrap();
    let done = wait_ended(&mut clients, &id).await;
    assert_eq!(state_of(&done), ExecutionState::Cancelled);
    // Well before the 5 s timeout would have ended it.
    assert!(
        began.elapsed() < Duration::from_secs(3),
        "took {:?}",
        began.elapsed()
    );
}

async fn list_pages_newest_first_and_filters_by_state(db: Db) {
    let (_server, mut clients) = start(db).await;
    let mut ids = Vec::new();
    for _ in 0..3 {
        ids.push(submit(&mut clients, run_bytes(guest("hello"))).await);
    }
    for id in &ids {
        wait_ended(&mut clients, id).await;
    }
    let list = |token: String, state: ExecutionState| v1::ListExecutionsRequest {
        state: state as i32,
        page_size: 2,
        page_token: token,
    };
    let first = clients
        .exec
        .list_executions(list(String::new(), ExecutionState::Finished))
        .await
        .unwrap()
        .into_inner();
    let second = clients
        .exec
        .list_executions(list(
            first.next_page_token.clone(),
            ExecutionState::Finished,
        ))
        .await
        .unwrap()
        .into_inner();
    let listed: Vec<String> = first
        .executions
        .iter()
        .chain(&second.executions)
        .map(|e| e.execution_id.clone())
        .collect();
    ids.reverse();
    assert_eq!(listed, ids);
    assert!(second.next_page_token.is_empty());
    let queued = clients
        .exec
        .list_executions(list(String::new(), ExecutionState::Queued))
        .await
        .unwrap()
        .into_inner();
    assert!(queued.executions.is_empty());
}

async fn another_account_gets_not_found(db: Db) {
    let (server, mut clients) = start(db).await;
    let id = submit(&mut clients, run_bytes(guest("hello"))).await;
    let other = server.create_key("other@example.com", "free", false).await;
    let mut other = support::clients(&server, Some(&other)).await;
    let status = get(&mut other, &id).await.unwrap_err();
    assert_eq!(status.code(), Code::NotFound, "{status:?}");
    let status = other
        .exec
        .cancel_execution(v1::CancelExecutionRequest {
            execution_id: id.clone(),
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::NotFound, "{status:?}");
    let status = other
        .exec
        .watch_execution(v1::WatchExecutionRequest { execution_id: id })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::NotFound, "{status:?}");
}

async fn an_invalid_run_is_refused_at_submit(db: Db) {
    let (_server, mut clients) = start(db).await;
    let status = clients
        .exec
        .submit_execution(v1::SubmitExecutionRequest {
            run: Some(v1::RunRequest {
                limits: Some(v1::Limits {
                    fuel: u64::MAX,
                    ..Default::default()
                }),
                ..run_bytes(guest("hello"))
            }),
            webhook_url: String::new(),
        })
        .await
        .unwrap_err();
    assert_bad_request(&status, "limits.fuel");
}

async fn an_interactive_run_is_refused_at_submit(db: Db) {
    let (_server, mut clients) = start(db).await;
    let status = clients
        .exec
        .submit_execution(v1::SubmitExecutionRequest {
            run: Some(v1::RunRequest {
                interactive: true,
                ..run_bytes(guest("hello"))
            }),
            webhook_url: String::new(),
        })
        .await
        .unwrap_err();
    assert_bad_request(&status, "run.interactive");
}

async fn an_unknown_module_sha_is_not_found_at_submit(db: Db) {
    let (_server, mut clients) = start(db).await;
    let status = clients
        .exec
        .submit_execution(v1::SubmitExecutionRequest {
            run: Some(run_sha(&"ab".repeat(32))),
            webhook_url: String::new(),
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::NotFound, "{status:?}");
}

async fn results_are_deleted_after_retention(db: Db) {
    let server = TestServer::start_with(db, |c| c.jobs_retention_secs = 1).await;
    let key = server.create_key("jobs@example.com", "free", false).await;
    let mut clients = clients(&server, Some(&key)).await;
    let id = submit(&mut clients, run_bytes(guest("hello"))).await;
    wait_ended(&mut clients, &id).await;
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match get(&mut clients, &id).await {
            Err(status) if status.code() == Code::NotFound => break,
            Ok(_) => assert!(Instant::now() < deadline, "never deleted"),
            Err(status) => panic!("{status:?}"),
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // The usage record outlives the result.
    let usage = clients
        .account
        .get_usage(v1::GetUsageRequest {
            email: String::new(),
            days: 1,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(usage.executions, 1);
}

fn echo_batch(stdins: &[&str]) -> v1::RunBatchRequest {
    v1::RunBatchRequest {
        source: Some(v1::run_batch_request::Source::Module(guest("echo"))),
        cases: stdins
            .iter()
            .map(|stdin| v1::BatchCase {
                stdin: stdin.as_bytes().to_vec(),
                ..Default::default()
            })
            .collect(),
        ..Default::default()
    }
}

async fn a_submitted_batch_runs_each_case_as_an_execution(db: Db) {
    let (_server, mut clients) = start(db).await;
    let submitted = clients
        .exec
        .submit_batch(v1::SubmitBatchRequest {
            batch: Some(echo_batch(&["one", "two", "three"])),
            webhook_url: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    assert!(!submitted.batch_id.is_empty());
    let mut outputs = Vec::new();
    for id in &submitted.execution_ids {
        let done = wait_ended(&mut clients, id).await;
        assert_eq!(done.finished.unwrap().outcome(), v1::Outcome::Success);
        outputs.push(String::from_utf8(done.stdout).unwrap());
    }
    assert_eq!(outputs, ["one", "two", "three"]);
}

async fn a_batch_without_cases_is_refused(db: Db) {
    let (_server, mut clients) = start(db).await;
    let status = clients
        .exec
        .submit_batch(v1::SubmitBatchRequest {
            batch: Some(echo_batch(&[])),
            webhook_url: String::new(),
        })
        .await
        .unwrap_err();
    assert_bad_request(&status, "cases");
}

on_both_databases!(
    get_pages_a_large_output,
    a_submitted_batch_runs_each_case_as_an_execution,
    a_batch_without_cases_is_refused,
    submit_then_get_returns_the_result,
    collected_files_come_back_whole,
    watch_replays_every_event_from_the_start,
    watch_follows_a_running_execution_live,
    a_watcher_that_disconnects_and_reconnects_gets_every_event,
    cancel_stops_a_running_execution,
    list_pages_newest_first_and_filters_by_state,
    another_account_gets_not_found,
    an_invalid_run_is_refused_at_submit,
    an_interactive_run_is_refused_at_submit,
    an_unknown_module_sha_is_not_found_at_submit,
    results_are_deleted_after_retention,
);

mod reruns {
    //! A job whose replica died after its first attempt went on record is
    //! run again without charging its account again. The dead replica is
    //! one server that ran the job and stopped; the database is then put
    //! back as a replica dying mid-run leaves it (running, lease expired),
    //! and a second server on the same database takes the job over. And a
    //! job given back to the queue while it waits for a slot costs nothing.

    use std::time::{Duration, Instant};

    use sqlx::Connection;
    use wasmwiz_proto::v1::{self, ExecutionState};
    use wasmwiz_server::config::{default_tiers, Tier};

    use super::support::{self, *};

    /// A metered tier with this per-minute rate (also its burst) and quota.
    fn tier(per_minute: u64, per_day: u64) -> Tier {
        Tier {
            per_minute,
            per_day,
            ..default_tiers()["free"].clone()
        }
    }

    /// Runs `statement` (one `$1`: the job's id) on the server's database.
    async fn sql(server: &TestServer, statement: &'static str, job_id: &str) {
        let mut db = super::database(server).await;
        sqlx::query(statement)
            .bind(job_id)
            .execute(&mut db)
            .await
            .unwrap();
        db.close().await.unwrap();
    }

    /// A second server that finds job `id` as a replica killed mid-run
    /// left it (its first attempt's usage row on record), with the key.
    async fn job_of_a_dead_replica(db: Db, tier: Tier) -> (TestServer, Clients, String) {
        let first = TestServer::start_with(db, |c| {
            c.tiers.insert("metered".into(), tier);
            c.jobs_lease_ms = 300;
        })
        .await;
        let key = first
            .create_key("rerun@example.com", "metered", false)
            .await;
        let mut first_clients = clients(&first, Some(&key)).await;
        let id = super::submit(&mut first_clients, run_bytes(guest("hello"))).await;
        super::wait_ended(&mut first_clients, &id).await;
        drop(first_clients);
        let (config, dir) = first.stop().await;
        let second = TestServer::start_config(config, dir).await;
        // As a replica dying mid-run leaves it: running, lease expired.
        sql(
            &second,
            "UPDATE jobs SET state = 'running', lease_owner = 'dead', lease_expires_at = 1, \
             finished = NULL, outcome = 0 WHERE id = $1",
            &id,
        )
        .await;
        sql(
            &second,
            "UPDATE usage_records SET outcome = 'ABORTED' WHERE job_id = $1",
            &id,
        )
        .await;
        let clients = clients(&second, Some(&key)).await;
        (second, clients, id)
    }

    /// Polls until the job has ended its second attempt.
    async fn rerun_ended(clients: &mut Clients, id: &str) -> v1::GetExecutionResponse {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let got = super::get(clients, id).await.unwrap();
            let execution = got.execution.as_ref().unwrap();
            if execution.attempts == 2 && execution.state() == ExecutionState::Finished {
                return got;
            }
            assert!(Instant::now() < deadline, "not run again: {got:?}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    async fn usage(clients: &mut Clients) -> v1::GetUsageResponse {
        clients
            .account
            .get_usage(v1::GetUsageRequest::default())
            .await
            .unwrap()
            .into_inner()
    }

    async fn a_rerun_is_not_refused_by_a_quota_its_first_attempt_used_up(db: Db) {
        let (_server, mut clients, id) = job_of_a_dead_replica(db, tier(10, 1)).await;
        let done = rerun_ended(&mut clients, &id).await;
        assert_eq!(
            done.finished.as_ref().unwrap().outcome(),
            v1::Outcome::Success,
            "{done:?}"
        );
    }

    async fn a_rerun_counts_once_in_the_accounts_usage(db: Db) {
        let (_server, mut clients, id) = job_of_a_dead_replica(db, tier(10, 100)).await;
        rerun_ended(&mut clients, &id).await;
        let used = usage(&mut clients).await;
        assert_eq!(used.executions, 1, "{used:?}");
        // Both attempts' outcomes are reported: the work done.
        assert_eq!(used.by_outcome.get("ABORTED"), Some(&1), "{used:?}");
        assert_eq!(used.by_outcome.get("OUTCOME_SUCCESS"), Some(&1), "{used:?}");
    }

    async fn a_rerun_uses_none_of_todays_quota(db: Db) {
        let (_server, mut clients, id) = job_of_a_dead_replica(db, tier(10, 100)).await;
        rerun_ended(&mut clients, &id).await;
        let me = clients
            .account
            .who_am_i(v1::WhoAmIRequest {})
            .await
            .unwrap()
            .into_inner();
        assert_eq!(me.remaining_today, 99);
    }

    async fn a_rerun_spends_no_per_minute_cell(db: Db) {
        // The restarted server's minute is whole: one cell, left to `Run`.
        let (_server, mut clients, id) = job_of_a_dead_replica(db, tier(1, 100)).await;
        rerun_ended(&mut clients, &id).await;
        let ran = run(&mut clients, run_bytes(guest("hello"))).await;
        assert!(ran.is_ok(), "{ran:?}");
    }

    async fn a_job_waiting_for_a_concurrency_slot_is_charged_once(db: Db) {
        let server = TestServer::start_with(db, |c| {
            c.tiers.insert(
                "single".into(),
                Tier {
                    max_concurrent: 1,
                    ..tier(60, 100)
                },
            );
        })
        .await;
        let key = server
            .create_key("single@example.com", "single", false)
            .await;
        let mut clients = clients(&server, Some(&key)).await;
        // A run holds the account's only slot while the job is tried.
        let mut spin = run_bytes(guest("loop"));
        spin.limits = Some(v1::Limits {
            timeout_ms: 1500,
            ..Default::default()
        });
        let mut holder = clients.exec.run(spin).await.unwrap().into_inner();
        holder.message().await.unwrap();
        let id = super::submit(&mut clients, run_bytes(guest("hello"))).await;
        while holder.message().await.unwrap().is_some() {}
        let done = super::wait_ended(&mut clients, &id).await;
        assert_eq!(
            done.finished.as_ref().unwrap().outcome(),
            v1::Outcome::Success,
            "{done:?}"
        );
        let me = clients
            .account
            .who_am_i(v1::WhoAmIRequest {})
            .await
            .unwrap()
            .into_inner();
        assert_eq!(me.remaining_today, 98, "the holder and the job, once");
    }

    crate::on_both_databases!(
        a_job_waiting_for_a_concurrency_slot_is_charged_once,
        a_rerun_is_not_refused_by_a_quota_its_first_attempt_used_up,
        a_rerun_counts_once_in_the_accounts_usage,
        a_rerun_uses_none_of_todays_quota,
        a_rerun_spends_no_per_minute_cell,
    );
}

mod replicas {
    //! Two server processes on one PostgreSQL: a replica killed (SIGKILL)
    //! mid-run loses its job once its lease expires, and the other replica
    //! runs it again from the start.

    use std::{
        io::{BufRead, BufReader},
        process::{Child, Command, Stdio},
        time::{Duration, Instant},
    };

    use super::support::*;
    use wasmwiz_proto::v1::{self, ExecutionState};

    const PEPPER: &str = "jobs-replica-test-pepper-0123456789";

    struct Replica {
        child: Child,
        url: String,
    }

    impl Drop for Replica {
        fn drop(&mut self) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }

    fn replica(database_url: &str, dir: &std::path::Path) -> Replica {
        let mut child = Command::new(env!("CARGO_BIN_EXE_wasmwiz-server"))
            .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
            .arg(dir)
            .args(["--database-url", database_url])
            .env("WASMWIZ_PEPPER", PEPPER)
            .env("WASMWIZ_JOBS_LEASE_MS", "1000")
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let url = loop {
            let line = lines.next().expect("replica printed its address").unwrap();
            if let Some(rest) = line.split("listening on ").nth(1) {
                break rest.split_whitespace().next().unwrap().to_string();
            }
        };
        std::thread::spawn(move || for _ in lines {});
        Replica { child, url }
    }

    fn create_key(database_url: &str, dir: &std::path::Path) -> String {
        let out = Command::new(env!("CARGO_BIN_EXE_wasmwiz-server"))
            .args(["admin", "create-key", "--email", "jobs@example.com"])
            .args([
                "--tier",
                "pro",
                "--database-url",
                database_url,
                "--data-dir",
            ])
            .arg(dir)
            .env("WASMWIZ_PEPPER", PEPPER)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let stdout = String::from_utf8(out.stdout).unwrap();
        stdout.lines().last().unwrap().trim().to_string()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn a_killed_replicas_job_runs_again_on_the_other_once() {
        if !postgres_available().await {
            eprintln!("PostgreSQL is not reachable here; run with CI=true to require it");
            return;
        }
        let database_url = wasmwiz_server::testing::fresh_postgres_database()
            .await
            .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let key = create_key(&database_url, dir.path());
        let mut first = replica(&database_url, dir.path());
        let mut a = connect(&first.url, &key).await;
        let run = v1::RunRequest {
            args: vec!["6".into()],
            limits: Some(v1::Limits {
                timeout_ms: 100_000,
                ..Default::default()
            }),
            ..run_bytes(guest("progress"))
        };
        let id = super::submit(&mut a, run).await;
        // Killed once its first output is stored: mid-run.
        let mut watch = a
            .exec
            .watch_execution(v1::WatchExecutionRequest {
                execution_id: id.clone(),
            })
            .await
            .unwrap()
            .into_inner();
        loop {
            let event = watch.message().await.unwrap().expect("an event");
            if matches!(event.event, Some(v1::execute_event::Event::Stdout(_))) {
                break;
            }
        }
        first.child.kill().unwrap();
        first.child.wait().unwrap();
        let second = replica(&database_url, dir.path());
        let mut b = connect(&second.url, &key).await;
        let deadline = Instant::now() + Duration::from_secs(90);
        let done = loop {
            let got = super::get(&mut b, &id).await.unwrap();
            if super::state_of(&got) == ExecutionState::Finished {
                break got;
            }
            assert!(Instant::now() < deadline, "never finished: {got:?}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        assert_eq!(
            done.finished.as_ref().unwrap().outcome(),
            v1::Outcome::Success
        );
        assert_eq!(
            done.stdout,
            b"tick 0\ntick 1\ntick 2\ntick 3\ntick 4\ntick 5\ndone\n"
        );
        assert_eq!(done.execution.as_ref().unwrap().attempts, 2);
        // One usage row per attempt: the aborted one never finished.
        assert_eq!(done.attempt_execution_ids.len(), 2);
        use sqlx::Connection;
        let mut db = sqlx::PgConnection::connect(&database_url).await.unwrap();
        let mut finished = Vec::new();
        for usage_id in &done.attempt_execution_ids {
            let at: Option<i64> =
                sqlx::query_scalar("SELECT finished_at FROM usage_records WHERE id = $1")
                    .bind(usage_id)
                    .fetch_one(&mut db)
                    .await
                    .unwrap();
            finished.push(at.is_some());
        }
        assert_eq!(finished, vec![false, true]);
        // The account is charged once: the first attempt's row.
        let charged: Vec<i64> = sqlx::query_scalar(
            "SELECT charged FROM usage_records WHERE job_id = $1 ORDER BY started_at",
        )
        .bind(&id)
        .fetch_all(&mut db)
        .await
        .unwrap();
        assert_eq!(charged, vec![1, 0]);
        let used = b
            .account
            .get_usage(v1::GetUsageRequest::default())
            .await
            .unwrap()
            .into_inner();
        assert_eq!(used.executions, 1, "{used:?}");
        let me = b
            .account
            .who_am_i(v1::WhoAmIRequest {})
            .await
            .unwrap()
            .into_inner();
        assert_eq!(me.remaining_today, me.limits.unwrap().per_day - 1);
    }
}

mod webhooks {
    //! Webhook delivery to a local receiver (127.0.0.1 only, which the
    //! test server's operator settings allow) and the SSRF refusals.

    use std::{
        sync::{
            atomic::{AtomicUsize, Ordering},
            Arc,
        },
        time::{Duration, Instant},
    };

    use hmac::{Hmac, Mac};
    use sha2::Sha256;
    use tonic::Code;
    use wasmwiz_proto::v1;

    use super::support::{self, *};

    /// Each request's (signature header, body), as received.
    type Seen = Arc<parking_lot::Mutex<Vec<(String, Vec<u8>)>>>;

    /// A receiver answering 500 to its first `fail_first` requests, then
    /// 200; it keeps (signature header, body) of each.
    struct Receiver {
        url: String,
        seen: Seen,
        connections: Arc<AtomicUsize>,
    }

    async fn receiver(fail_first: usize) -> Receiver {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/hook", listener.local_addr().unwrap());
        let seen: Seen = Default::default();
        let connections = Arc::new(AtomicUsize::new(0));
        let (s, c) = (seen.clone(), connections.clone());
        let app = axum::Router::new().route(
            "/hook",
            axum::routing::post(
                move |headers: axum::http::HeaderMap, body: axum::body::Bytes| {
                    let seen = s.clone();
                    async move {
                        let signature = headers
                            .get("wasmwiz-signature")
                            .map(|v| v.to_str().unwrap().to_string())
                            .unwrap_or_default();
                        let mut seen = seen.lock();
                        seen.push((signature, body.to_vec()));
                        if seen.len() <= fail_first {
                            axum::http::StatusCode::INTERNAL_SERVER_ERROR
                        } else {
                            axum::http::StatusCode::OK
                        }
                    }
                },
            ),
        );
        tokio::spawn(async move {
            loop {
                let (tcp, _) = listener.accept().await.unwrap();
                c.fetch_add(1, Ordering::SeqCst);
                let app = app.clone();
                tokio::spawn(async move {
                    let service = hyper_util::service::TowerToHyperService::new(app);
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(hyper_util::rt::TokioIo::new(tcp), service)
                        .await;
                });
            }
        });
        Receiver {
            url,
            seen,
            connections,
        }
    }

    async fn start(db: Db, allow_private: bool) -> (TestServer, Clients) {
        let server = TestServer::start_with(db, |c| {
            c.webhook_allow_private = allow_private;
            c.webhook_allow_http = true;
        })
        .await;
        let key = server.create_key("hooks@example.com", "free", false).await;
        let clients = clients(&server, Some(&key)).await;
        (server, clients)
    }

    async fn rotate(clients: &mut Clients) -> String {
        clients
            .account
            .rotate_webhook_secret(v1::RotateWebhookSecretRequest {})
            .await
            .unwrap()
            .into_inner()
            .secret
    }

    fn verifies(secret: &str, header: &str, body: &[u8]) -> bool {
        let (t, v1) = header
            .split_once(',')
            .map(|(t, v)| (t.trim_start_matches("t="), v.trim_start_matches("v1=")))
            .unwrap();
        let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
        mac.update(format!("{t}.").as_bytes());
        mac.update(body);
        mac.verify_slice(&hex::decode(v1).unwrap()).is_ok()
    }

    async fn submit_with_hook(clients: &mut Clients, url: &str) -> Result<String, tonic::Status> {
        clients
            .exec
            .submit_execution(v1::SubmitExecutionRequest {
                run: Some(run_bytes(guest("hello"))),
                webhook_url: url.into(),
            })
            .await
            .map(|r| r.into_inner().execution_id)
    }

    async fn a_signed_webhook_is_retried_after_a_500_and_delivered(db: Db) {
        let (_server, mut clients) = start(db, true).await;
        let secret = rotate(&mut clients).await;
        let hook = receiver(1).await;
        let id = submit_with_hook(&mut clients, &hook.url).await.unwrap();
        let deadline = Instant::now() + Duration::from_secs(30);
        let attempts = loop {
            let got = super::get(&mut clients, &id).await.unwrap();
            if got.webhook_attempts.len() >= 2 {
                break got.webhook_attempts;
            }
            assert!(Instant::now() < deadline, "not delivered: {got:?}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        let statuses: Vec<u32> = attempts.iter().map(|a| a.http_status).collect();
        assert_eq!(statuses, vec![500, 200]);
        let seen = hook.seen.lock().clone();
        assert_eq!(seen.len(), 2);
        let (header, body) = &seen[1];
        assert!(verifies(&secret, header, body), "{header}");
        let json: serde_json::Value = serde_json::from_slice(body).unwrap();
        assert_eq!(json["execution_id"], id.as_str());
        assert_eq!(json["outcome"], "OUTCOME_SUCCESS");
    }

    async fn a_webhook_to_loopback_is_refused_before_connecting(db: Db) {
        let (_server, mut clients) = start(db, false).await;
        rotate(&mut clients).await;
        let hook = receiver(0).await;
        let status = submit_with_hook(&mut clients, &hook.url).await.unwrap_err();
        assert_bad_request(&status, "webhook_url");
        assert_eq!(hook.connections.load(Ordering::SeqCst), 0);
    }

    async fn a_webhook_needs_a_secret_first(db: Db) {
        let (_server, mut clients) = start(db, true).await;
        let hook = receiver(0).await;
        let status = submit_with_hook(&mut clients, &hook.url).await.unwrap_err();
        assert_eq!(status.code(), Code::InvalidArgument);
        assert_bad_request(&status, "webhook_url");
    }

    async fn the_stored_secret_is_sealed(db: Db) {
        let (server, mut clients) = start(db, true).await;
        let secret = rotate(&mut clients).await;
        let mut db = super::database(&server).await;
        let stored: String = sqlx::query_scalar("SELECT secret FROM webhook_secrets")
            .fetch_one(&mut db)
            .await
            .unwrap();
        let hex_part = secret.trim_start_matches("whsec_");
        assert!(!stored.contains(hex_part), "{stored}");
        assert!(stored.starts_with("sealed1:"), "{stored}");
    }

    async fn a_rotated_secret_is_new_each_time(db: Db) {
        let (_server, mut clients) = start(db, true).await;
        let first = rotate(&mut clients).await;
        let second = rotate(&mut clients).await;
        assert!(
            first.starts_with("whsec_") && first.len() == 6 + 64,
            "{first}"
        );
        assert_ne!(first, second);
    }

    async fn a_batch_webhook_fires_per_case_and_once_for_the_batch(db: Db) {
        let (_server, mut clients) = start(db, true).await;
        let secret = rotate(&mut clients).await;
        let hook = receiver(0).await;
        let submitted = clients
            .exec
            .submit_batch(v1::SubmitBatchRequest {
                batch: Some(super::echo_batch(&["a", "b"])),
                webhook_url: hook.url.clone(),
            })
            .await
            .unwrap()
            .into_inner();
        let deadline = Instant::now() + Duration::from_secs(30);
        while hook.seen.lock().len() < 3 {
            assert!(
                Instant::now() < deadline,
                "only {} webhooks",
                hook.seen.lock().len()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        // Nothing more comes: the batch's webhook is sent once.
        tokio::time::sleep(Duration::from_millis(500)).await;
        let seen = hook.seen.lock().clone();
        assert_eq!(seen.len(), 3);
        let mut kinds: Vec<String> = Vec::new();
        for (header, body) in &seen {
            assert!(verifies(&secret, header, body));
            let json: serde_json::Value = serde_json::from_slice(body).unwrap();
            kinds.push(json["type"].as_str().unwrap().to_string());
            if json["type"] == "batch.ended" {
                assert_eq!(json["batch_id"], submitted.batch_id.as_str());
                let ids: Vec<&str> = json["cases"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|c| c["execution_id"].as_str().unwrap())
                    .collect();
                assert_eq!(ids, submitted.execution_ids);
            }
        }
        kinds.sort();
        assert_eq!(kinds, ["batch.ended", "execution.ended", "execution.ended"]);
    }

    async fn get_batch_shows_its_cases_and_its_webhook_attempts(db: Db) {
        let (_server, mut clients) = start(db, true).await;
        rotate(&mut clients).await;
        let hook = receiver(0).await;
        let submitted = clients
            .exec
            .submit_batch(v1::SubmitBatchRequest {
                batch: Some(super::echo_batch(&["a", "b"])),
                webhook_url: hook.url.clone(),
            })
            .await
            .unwrap()
            .into_inner();
        let deadline = Instant::now() + Duration::from_secs(30);
        let batch = loop {
            let batch = clients
                .exec
                .get_batch(v1::GetBatchRequest {
                    batch_id: submitted.batch_id.clone(),
                })
                .await
                .unwrap()
                .into_inner();
            if !batch.webhook_attempts.is_empty() {
                break batch;
            }
            assert!(Instant::now() < deadline, "no batch webhook: {batch:?}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        assert!(batch.ended);
        let ids: Vec<&str> = batch
            .cases
            .iter()
            .map(|c| c.execution_id.as_str())
            .collect();
        assert_eq!(ids, submitted.execution_ids);
        assert_eq!(batch.webhook_attempts[0].http_status, 200);
    }

    async fn another_accounts_batch_is_not_found(db: Db) {
        let (server, mut clients) = start(db, true).await;
        let submitted = clients
            .exec
            .submit_batch(v1::SubmitBatchRequest {
                batch: Some(super::echo_batch(&["a"])),
                webhook_url: String::new(),
            })
            .await
            .unwrap()
            .into_inner();
        let other = server.create_key("other@example.com", "free", false).await;
        let mut other = support::clients(&server, Some(&other)).await;
        let status = other
            .exec
            .get_batch(v1::GetBatchRequest {
                batch_id: submitted.batch_id,
            })
            .await
            .unwrap_err();
        assert_eq!(status.code(), Code::NotFound);
    }

    async fn a_retry_pending_when_the_server_stops_is_made_by_the_next_one(db: Db) {
        let first = TestServer::start_with(db, |c| {
            c.webhook_allow_private = true;
            c.webhook_allow_http = true;
        })
        .await;
        let key = first.create_key("hooks@example.com", "free", false).await;
        let mut clients = support::clients(&first, Some(&key)).await;
        let secret = rotate(&mut clients).await;
        let hook = receiver(1).await;
        let id = submit_with_hook(&mut clients, &hook.url).await.unwrap();
        let deadline = Instant::now() + Duration::from_secs(30);
        while super::get(&mut clients, &id)
            .await
            .unwrap()
            .webhook_attempts
            .is_empty()
        {
            assert!(Instant::now() < deadline, "no first attempt");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        drop(clients);
        let (config, dir) = first.stop().await;
        // Past the first backoff (1 s) with no server: nobody retries.
        tokio::time::sleep(Duration::from_millis(1500)).await;
        assert_eq!(hook.seen.lock().len(), 1);
        let second = TestServer::start_config(config, dir).await;
        let mut clients = support::clients(&second, Some(&key)).await;
        let deadline = Instant::now() + Duration::from_secs(30);
        let attempts = loop {
            let got = super::get(&mut clients, &id).await.unwrap();
            if got.webhook_attempts.len() >= 2 {
                break got.webhook_attempts;
            }
            assert!(Instant::now() < deadline, "not retried: {got:?}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        let statuses: Vec<u32> = attempts.iter().map(|a| a.http_status).collect();
        assert_eq!(statuses, vec![500, 200]);
        let (header, body) = hook.seen.lock()[1].clone();
        assert!(verifies(&secret, &header, &body), "{header}");
    }

    crate::on_both_databases!(
        get_batch_shows_its_cases_and_its_webhook_attempts,
        another_accounts_batch_is_not_found,
        a_retry_pending_when_the_server_stops_is_made_by_the_next_one,
        a_batch_webhook_fires_per_case_and_once_for_the_batch,
        a_signed_webhook_is_retried_after_a_500_and_delivered,
        a_webhook_to_loopback_is_refused_before_connecting,
        a_webhook_needs_a_secret_first,
        a_rotated_secret_is_new_each_time,
        the_stored_secret_is_sealed,
    );
}

mod queue {
    //! The job queue itself, on both databases: leases, re-claiming after
    //! a lease expires, and the bound on attempts.

    use wasmwiz_server::store::{
        jobs::{JobState, NewJob},
        webhook_deliveries::NewDelivery,
        Store,
    };

    use super::support::{self, Db};

    async fn store(db: Db) -> (Store, Option<tempfile::TempDir>) {
        match db {
            Db::Sqlite => {
                let dir = tempfile::tempdir().unwrap();
                let url = wasmwiz_server::store::sqlite_url(dir.path());
                (Store::connect(&url).await.unwrap(), Some(dir))
            }
            Db::Postgres => {
                let url = wasmwiz_server::testing::fresh_postgres_database()
                    .await
                    .unwrap();
                (Store::connect(&url).await.unwrap(), None)
            }
        }
    }

    async fn queue_one(store: &Store, id: &str) {
        store
            .job_insert(&NewJob {
                id,
                user_id: "u",
                key_id: "k",
                tier: "free",
                module_sha256: "sha",
                request: b"",
                webhook_url: "",
                now_ms: 1,
                batch: None,
            })
            .await
            .unwrap();
    }

    async fn a_live_lease_keeps_the_job_from_other_replicas(db: Db) {
        let (store, _dir) = store(db).await;
        queue_one(&store, "j").await;
        let first = store.job_claim("a", 1_000, 10_000, 2).await.unwrap();
        assert_eq!(first.unwrap().attempt, 1);
        assert!(store
            .job_claim("b", 2_000, 10_000, 2)
            .await
            .unwrap()
            .is_none());
    }

    async fn an_expired_lease_is_claimed_again_once(db: Db) {
        let (store, _dir) = store(db).await;
        queue_one(&store, "j").await;
        store.job_claim("a", 1_000, 100, 2).await.unwrap().unwrap();
        let second = store.job_claim("b", 2_000, 100, 2).await.unwrap().unwrap();
        assert_eq!(second.attempt, 2);
        // The first replica's lease is gone: it cannot renew or end it.
        assert_eq!(store.job_renew("j", "a", 3_000).await.unwrap(), None);
        // Its second lease expires too: no third run; it ends with an error.
        assert!(store.job_claim("c", 5_000, 100, 2).await.unwrap().is_none());
        let job = store.job_get("u", "j").await.unwrap().unwrap();
        assert_eq!(job.state, JobState::Finished);
        assert!(!job.error.is_empty());
    }

    async fn queue_delivery(store: &Store) {
        store
            .delivery_queue(&NewDelivery {
                id: "j",
                user_id: "u",
                url: "https://example.com/hook",
                body: b"{}",
                now_ms: 1,
                first_backoff_ms: 1_000,
                give_up_at: 1_000_000,
            })
            .await
            .unwrap();
    }

    async fn a_claimed_delivery_waits_for_its_lease_to_expire(db: Db) {
        let (store, _dir) = store(db).await;
        queue_delivery(&store).await;
        assert!(store.delivery_claim("a", 10, 100).await.unwrap().is_some());
        assert!(store.delivery_claim("b", 50, 100).await.unwrap().is_none());
        // Its claimant died mid-attempt: the attempt is made again.
        let again = store.delivery_claim("b", 200, 100).await.unwrap().unwrap();
        assert_eq!(again.attempts, 0);
    }

    async fn a_rescheduled_delivery_is_due_at_its_next_attempt(db: Db) {
        let (store, _dir) = store(db).await;
        queue_delivery(&store).await;
        store.delivery_claim("a", 10, 100).await.unwrap().unwrap();
        store
            .delivery_reschedule("j", "a", 5_000, 2_000)
            .await
            .unwrap();
        assert!(store
            .delivery_claim("b", 4_999, 100)
            .await
            .unwrap()
            .is_none());
        let next = store
            .delivery_claim("b", 5_000, 100)
            .await
            .unwrap()
            .unwrap();
        assert_eq!((next.attempts, next.backoff_ms), (1, 2_000));
    }

    async fn a_finished_delivery_is_gone(db: Db) {
        let (store, _dir) = store(db).await;
        queue_delivery(&store).await;
        store.delivery_claim("a", 10, 100).await.unwrap().unwrap();
        store.delivery_done("j", "a").await.unwrap();
        assert_eq!(store.delivery_count().await.unwrap(), 0);
    }

    crate::on_both_databases!(
        a_claimed_delivery_waits_for_its_lease_to_expire,
        a_rescheduled_delivery_is_due_at_its_next_attempt,
        a_finished_delivery_is_gone,
        a_live_lease_keeps_the_job_from_other_replicas,
        an_expired_lease_is_claimed_again_once,
    );
}
