//! One execution's life: admit (rate, quota, concurrency, then the
//! sandbox's slots and memory) → run the first, inline slice → record (the
//! admission row, durable before `started`) → run on → finish → record (the
//! final row, durable before `finished`). A guest that ended within its
//! first slice (most small runs) is recorded once, already finished, before
//! `started`: one row and one commit, and every event can leave at once.
//! Metrics and the usage rows are written here, so no handler can skip or
//! repeat them.

use std::sync::Arc;
use tracing::Instrument as _;

use bytes::Bytes;
use futures::{stream, Stream, StreamExt};
use tokio::sync::{mpsc, oneshot};
use tokio_stream::wrappers::ReceiverStream;
use tokio_util::sync::CancellationToken;
use tonic::Status;
use wasmwiz_proto::v1::{self, Verdict};

use super::{
    client::ClientStdin,
    fs_output::{pieces, FilePiece},
    receipting::Receipting,
    record::{UsageEnd, UsageRecord},
    result_cache::CacheWrite,
    spec::{ModuleSource, RunSpec},
    verdict::VerdictTracker,
};
use crate::{
    api::{convert::CommandLine, convert::EffectiveLimits, errors::ApiError, AppState, Resolved},
    auth::Caller,
    config::Tier,
    engine::{vfs::FsSpec, Job, OutputChunk, Report, Stream as OutStream},
    limits::{utc_day, AdmitError, Allowance, LimitError, RateHeaders},
    store::now_ms,
};

/// What an execution tells its client, in order: output as produced, the
/// collected files in pieces, then how it ended.
pub enum ExecEvent {
    Stdout(Bytes),
    Stderr(Bytes),
    File(FilePiece),
    Finished(Finished),
}

/// How an execution ended (both usage rows are durable by then).
pub struct Finished {
    pub report: Report,
    pub verdict: Verdict,
    /// When the request asked for one.
    pub receipt: Option<v1::Receipt>,
}

/// An execution that has begun and is on record.
pub struct Execution {
    pub execution_id: String,
    pub module_sha256: String,
    pub cache_hit: bool,
    pub limits: EffectiveLimits,
    /// The caller's rate-limit state after this admission.
    pub headers: Option<RateHeaders>,
    pub(super) running: Running,
    pub(super) expected: Option<Bytes>,
    /// Set when this execution replays a result cache hit: the original's id.
    pub cached_from: Option<String>,
}

impl Execution {
    /// Output as produced, then [`ExecEvent::Finished`] (or the error that
    /// ended the execution).
    pub fn events(self) -> impl Stream<Item = Result<ExecEvent, Status>> + Send {
        let tracker = Arc::new(parking_lot::Mutex::new(VerdictTracker::new(self.expected)));
        let feed = tracker.clone();
        let output = ReceiverStream::new(self.running.output).map(move |chunk| {
            Ok(match chunk.stream {
                OutStream::Stdout => {
                    feed.lock().feed(&chunk.data);
                    ExecEvent::Stdout(chunk.data)
                }
                OutStream::Stderr => ExecEvent::Stderr(chunk.data),
            })
        });
        let report = self.running.report;
        let last = stream::once(async move {
            let (mut report, receipt) = finished(report).await?;
            let files = std::mem::take(&mut report.files);
            let verdict = tracker.lock().verdict();
            Ok::<_, Status>((
                files,
                Finished {
                    report,
                    verdict,
                    receipt,
                },
            ))
        })
        .flat_map(|ended| match ended {
            Ok((files, finished)) => stream::iter(
                pieces(files)
                    .map(|piece| Ok(ExecEvent::File(piece)))
                    .chain(std::iter::once(Ok(ExecEvent::Finished(finished))))
                    .collect::<Vec<_>>(),
            ),
            Err(status) => stream::iter(vec![Err(status)]),
        });
        output.chain(last)
    }
}

/// Admits and starts one execution; returns once its admission row is
/// durable, so an execution a client saw begin is on record even if the
/// server dies. A run that ended in its first slice has one row, final.
pub async fn start(
    state: &Arc<AppState>,
    caller: &Caller,
    mut spec: RunSpec,
) -> Result<Execution, Status> {
    if spec.cache != v1::CachePolicy::Unspecified {
        return super::result_cache::start(state, caller, spec).await;
    }
    let tier = state.tier(caller)?;
    spec.check_fs().await?;
    let allowance = allow_run(state, caller, tier, &spec).await?;
    // An incomplete or unknown module, or a refused streamed tree, drops
    // (and so gives back) the allowance.
    let source = spec.take_source().await?;
    let fs = spec.take_fs().await?;
    let resolved = resolve(state, caller, source, spec.keep_module).await?;
    begin(state, caller, spec, resolved, allowance, fs, None).await
}

/// Launches an allowed execution of a resolved module and waits for its
/// admission row (storing its result in the result cache at the end when
/// `cache` says so).
pub(super) async fn begin(
    state: &Arc<AppState>,
    caller: &Caller,
    mut spec: RunSpec,
    resolved: Resolved,
    allowance: Allowance,
    fs: Option<FsSpec>,
    cache: Option<CacheWrite>,
) -> Result<Execution, Status> {
    let stdin = spec.take_stdin()?;
    let headers = allowance.headers;
    let limits = spec.limits;
    let job = spec.job.take();
    let mut running = launch(
        state,
        Launch {
            caller: caller.clone(),
            resolved: resolved.clone(),
            cmd: spec.cmd,
            limits,
            seed: spec.seed,
            stdin,
            fs,
            allowance,
            receipt: spec.receipt,
            cache,
            job,
        },
        state.hard_stop.child_token(),
    )
    .await?;
    let admitted = match (&mut running.admitted).await {
        Ok(admitted) => admitted,
        Err(_) => Err("the execution ended before its admission was recorded".into()),
    };
    if let Err(error) = admitted {
        return Err(ApiError::Internal(anyhow::anyhow!(error)).into());
    }
    Ok(Execution {
        execution_id: running.execution_id.clone(),
        module_sha256: resolved.module.sha256.clone(),
        cache_hit: resolved.cache_hit,
        limits,
        headers,
        running,
        expected: spec.expected,
        cached_from: None,
    })
}

/// Rate limits, quota and per-user concurrency for one execution; a
/// refusal is counted by reason.
#[tracing::instrument(name = "limits", skip_all)]
pub(super) async fn allow(
    state: &AppState,
    caller: &Caller,
    tier: &Tier,
    wait: bool,
) -> Result<Allowance, ApiError> {
    match state.limits.admit(&caller.user_id, tier, wait).await {
        Ok(allowance) => Ok(allowance),
        Err(AdmitError::Counter(error)) => Err(ApiError::Internal(error)),
        Err(AdmitError::Refused(refusal)) => {
            record_refusal(state, caller, &refusal);
            Err(refusal.into())
        }
    }
}

/// [`allow`] for one run: the re-run of a detached execution whose earlier
/// attempt is on record takes only its concurrency slot (the account is
/// charged once per job).
pub(super) async fn allow_run(
    state: &AppState,
    caller: &Caller,
    tier: &Tier,
    spec: &RunSpec,
) -> Result<Allowance, ApiError> {
    if spec.job.as_ref().is_none_or(|job| job.charged) {
        return allow(state, caller, tier, false).await;
    }
    match state.limits.admit_rerun(&caller.user_id, tier).await {
        Ok(allowance) => Ok(allowance),
        Err(AdmitError::Counter(error)) => Err(ApiError::Internal(error)),
        Err(AdmitError::Refused(refusal)) => {
            record_refusal(state, caller, &refusal);
            Err(refusal.into())
        }
    }
}

/// Counts a refusal the caller is answered with, by reason, in the
/// metrics and the audit log. A paced batch's wait for its next cell is
/// not one: it records nothing until a refusal ends the batch.
pub(super) fn record_refusal(state: &AppState, caller: &Caller, refusal: &LimitError) {
    let reason = match refusal {
        LimitError::PerMinute { .. } => "per_minute",
        LimitError::Daily { .. } | LimitError::DailyTooSmallForBatch { .. } => "per_day",
        LimitError::Concurrency { .. } => "concurrency",
    };
    state
        .metrics
        .rate_limited
        .with_label_values(&[reason])
        .inc();
    crate::audit::limit_refused(caller, reason);
}

/// The module to run (compiled or cached). Runs after the rate limit, so a
/// refused caller costs no compilation.
#[tracing::instrument(name = "resolve_module", skip_all)]
pub(super) async fn resolve(
    state: &AppState,
    caller: &Caller,
    source: ModuleSource,
    keep: bool,
) -> Result<Resolved, Status> {
    Ok(match source {
        ModuleSource::Inline(bytes) => {
            state.metrics.uploaded_bytes.inc_by(bytes.len() as u64);
            state.module_from_bytes(caller, bytes, keep).await?
        }
        ModuleSource::Stored(sha) => state.module_by_sha(caller, &sha).await?,
        ModuleSource::Streamed(_) => {
            return Err(Status::internal("a streamed module must be received first"))
        }
    })
}

/// Everything needed to start one allowed execution.
pub(super) struct Launch {
    pub caller: Caller,
    pub resolved: Resolved,
    pub cmd: CommandLine,
    pub limits: EffectiveLimits,
    pub seed: u64,
    pub stdin: ClientStdin,
    /// The guest's filesystem (validated); `None`: no preopens.
    pub fs: Option<FsSpec>,
    pub allowance: Allowance,
    /// Sign a receipt of the run.
    pub receipt: bool,
    /// Store the result in the result cache under this key.
    pub cache: Option<CacheWrite>,
    /// The detached execution this run is an attempt of.
    pub job: Option<super::record::JobAttempt>,
}

/// A running execution: its id, output and (durably recorded) report.
pub(super) struct Running {
    pub execution_id: String,
    /// The admission row's commit (and with it the charge confirmed, or
    /// given back when it failed).
    pub admitted: oneshot::Receiver<Result<(), String>>,
    pub output: mpsc::Receiver<OutputChunk>,
    pub report: oneshot::Receiver<Result<(Report, Option<v1::Receipt>), ApiError>>,
}

/// The report once the final row is durable, or what ended the execution.
pub(super) async fn finished(
    report: oneshot::Receiver<Result<(Report, Option<v1::Receipt>), ApiError>>,
) -> Result<(Report, Option<v1::Receipt>), Status> {
    match report.await {
        Ok(Ok(ended)) => Ok(ended),
        Ok(Err(error)) => Err(error.into()),
        Err(_) => Err(Status::internal("the execution ended unexpectedly")),
    }
}

/// Server admission, the durable usage row, then the execution itself,
/// stopped early when `cancel` fires. The allowance is confirmed (charged)
/// once the admission row commits; every earlier return drops it
/// unconfirmed, which gives it back.
pub(super) async fn launch(
    state: &Arc<AppState>,
    launch: Launch,
    cancel: CancellationToken,
) -> Result<Running, ApiError> {
    let state = state.clone();
    if state.is_draining() {
        return Err(ApiError::Draining);
    }
    // The operator's unmetered tiers are trusted: no per-tenant share.
    let trusted = state.tier(&launch.caller)?.unmetered;
    let tenant = (!trusted).then_some(launch.caller.user_id.as_str());
    // A tree's file contents are server memory like the guest's own.
    let fs_bytes = launch.fs.as_ref().map_or(0, |fs| fs.max_bytes);
    let permit = state
        .sandbox
        .admit(
            tenant,
            &launch.resolved.module,
            launch.limits.memory_bytes,
            fs_bytes,
        )
        .instrument(tracing::info_span!("admission"))
        .await
        .inspect_err(|busy| {
            state
                .metrics
                .admission_refused
                .with_label_values(&[busy.kind])
                .inc()
        })?;
    let execution_id = uuid::Uuid::now_v7().to_string();
    let module = launch.resolved.module.clone();
    // `started` waits for the commit of the execution's row. A guest that
    // ends within its first (inline) slice is written once, already
    // finished; any other gets its admission row queued after that slice
    // and committed while it runs on, and its final row queued behind it,
    // so `finished` (sent once that one commits) implies both are durable.
    let row = UsageRecord {
        id: execution_id.clone(),
        user_id: launch.caller.user_id.clone(),
        key_id: launch.caller.key_id.clone(),
        module_sha256: module.sha256.clone(),
        day: utc_day(),
        started_at: now_ms(),
        end: None,
        cached_from: None,
        job: launch.job.clone(),
    };
    let (admitted_tx, admitted) = oneshot::channel();
    let mut job = Job {
        module,
        program_name: launch.cmd.program_name,
        args: launch.cmd.args,
        env: launch.cmd.env,
        random_seed: launch.seed,
        stdin: launch.stdin.source,
        fuel: launch.limits.fuel,
        memory_bytes: launch.limits.memory_bytes,
        timeout: launch.limits.timeout(),
        max_output_bytes: launch.limits.max_output_bytes,
        fs: launch.fs,
    };
    // An interactive guest gives back its running slot while it waits for
    // input; the engine holds its admission then (dropped as the run ends).
    let mut permit = Some(permit);
    if let crate::engine::StdinSource::Interactive { permit: slot, .. } = &mut job.stdin {
        *slot = permit.take();
    }
    let (out_tx, out_rx) = mpsc::channel(16);
    let record = launch
        .cache
        .as_ref()
        .map(|_| state.result_cache.settings.max_entry_bytes);
    let (receipting, out_tx) = Receipting::start_if(
        launch.receipt || launch.cache.is_some(),
        &state,
        &mut job,
        out_tx,
        record,
    );
    let (wants_receipt, cache) = (launch.receipt, launch.cache);
    let (report_tx, report_rx) = oneshot::channel();
    let tier_name = launch.caller.tier.clone();
    let mut allowance = launch.allowance;
    let refused = launch.stdin.refused;
    // Registered before `started` reaches the client, so its first write finds it.
    let session_length = match &job.stdin {
        crate::engine::StdinSource::Interactive { session, .. } => *session,
        _ => std::time::Duration::ZERO,
    };
    let session = match launch.stdin.feed {
        Some(feed) => Some(
            state
                .sessions
                .open(&execution_id, &launch.caller.user_id, feed, session_length)
                .await,
        ),
        None => None,
    };
    let span = tracing::Span::current();
    tokio::spawn(tracing::Instrument::instrument(
        async move {
            state.metrics.running.inc();
            let mut admitted_tx = Some(admitted_tx);
            let execution = state
                .sandbox
                .execute(job, out_tx, cancel.clone())
                .instrument(tracing::info_span!("run"));
            let run = async {
                match refused {
                    None => (execution.await, None),
                    Some(mut refused) => {
                        tokio::pin!(execution);
                        tokio::select! {
                            biased;
                            Ok(error) = &mut refused => {
                                cancel.cancel();
                                (execution.await, Some(error))
                            }
                            report = &mut execution => (report, refused.try_recv().ok()),
                        }
                    }
                }
            };
            tokio::pin!(run);
            // The first poll runs the inline slice: a guest that ended in it
            // needs no admission row of its own.
            let (report, refusal, admission) = match futures::poll!(&mut run) {
                std::task::Poll::Ready((report, refusal)) => (report, refusal, None),
                std::task::Poll::Pending => {
                    // Charged once on record; a run whose admission row
                    // cannot be written is stopped and costs the caller nothing.
                    let on_record = async {
                        let committed = commit(&state, row.clone(), "admission").await;
                        on_committed(
                            &state,
                            (&row.user_id, &row.module_sha256),
                            &committed,
                            &mut allowance,
                            admitted_tx.take(),
                        );
                        if committed.is_err() {
                            cancel.cancel();
                        }
                        committed
                    };
                    let ((report, refusal), committed) = tokio::join!(run, on_record);
                    (report, refusal, Some(committed))
                }
            };
            // The guest has ended: later writes are refused as too late.
            if let Some(session) = session {
                session.end().await;
            }
            state.metrics.running.dec();
            observe(&state, &tier_name, &report);
            crate::audit::guest_limit_hit(&row.user_id, &row.key_id, &row.id, report.outcome);
            tracing::debug!(execution_id = %row.id, outcome = report.outcome.as_str(), "execution finished");
            let finished_at = now_ms();
            let ended = match receipting {
                Some(r) => r
                    .finish(&state, &report, &row.id, finished_at)
                    .await
                    .map(Some),
                None => Ok(None),
            };
            let (user_id, execution_id) = (row.user_id.clone(), row.id.clone());
            let sha256 = row.module_sha256.clone();
            let finish = UsageRecord {
                end: Some(UsageEnd::from_report(finished_at, &report)),
                ..row
            };
            let recorded = match admission {
                // One row, admission and end at once, before `started`.
                None => {
                    let committed = commit(&state, finish, "admission+final").await;
                    on_committed(
                        &state,
                        (&user_id, &sha256),
                        &committed,
                        &mut allowance,
                        None,
                    );
                    committed
                }
                Some(Ok(())) => commit(&state, finish, "final").await,
                Some(Err(error)) => Err(error),
            };
            let admitted = recorded.as_ref().map(|_| ()).map_err(|e| format!("{e:#}"));
            let answer = match (recorded, refusal) {
                (Err(error), _) => Err(ApiError::from(error)),
                (Ok(()), Some(refusal)) => Err(refusal),
                (Ok(()), None) => ended.map(|ended| {
                    let (receipt, recorded) = ended.unzip();
                    (report, receipt, recorded.flatten())
                }),
            };
            // A client that saw `finished` may start its next run at
            // once: its slots are free by then.
            drop(permit);
            drop(allowance);
            let answer = super::result_cache::settle(
                &state,
                (&user_id, &execution_id),
                cache.as_ref(),
                wants_receipt,
                answer,
            )
            .await;
            let _ = report_tx.send(answer);
            // A run written in one row is admitted only now, with all its
            // events ready to leave together.
            if let Some(admitted_tx) = admitted_tx {
                let _ = admitted_tx.send(admitted);
            }
        },
        span,
    ));
    Ok(Running {
        execution_id,
        admitted,
        output: out_rx,
        report: report_rx,
    })
}

/// Queues `row` and waits for its commit.
async fn commit(state: &AppState, row: UsageRecord, which: &'static str) -> anyhow::Result<()> {
    state
        .usage
        .enqueue(row)
        .await?
        .wait()
        .instrument(tracing::info_span!("usage_commit", row = which))
        .await
}

/// Once the row admitting an execution has committed (or failed): charge
/// the allowance (or give it back) and tell whoever waits to send `started`.
fn on_committed(
    state: &AppState,
    (user_id, sha256): (&str, &str),
    committed: &anyhow::Result<()>,
    allowance: &mut Allowance,
    admitted_tx: Option<oneshot::Sender<Result<(), String>>>,
) {
    match committed {
        Ok(()) => {
            allowance.confirm();
            state.mark_seen(user_id, sha256);
        }
        Err(_) => allowance.give_back(),
    }
    if let Some(admitted_tx) = admitted_tx {
        let _ = admitted_tx.send(committed.as_ref().map(|_| ()).map_err(|e| format!("{e:#}")));
    }
}

/// The finished execution's outcome, duration and fuel, per tier.
fn observe(state: &AppState, tier_name: &str, report: &Report) {
    let metrics = &state.metrics;
    metrics
        .executions
        .with_label_values(&[report.outcome.as_str(), tier_name])
        .inc();
    metrics
        .duration_seconds
        .with_label_values(&[tier_name])
        .observe(report.duration.as_secs_f64());
    metrics
        .fuel
        .with_label_values(&[tier_name])
        .observe(report.fuel_consumed as f64);
}
