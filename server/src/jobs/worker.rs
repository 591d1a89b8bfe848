//! Each replica's job worker: claims queued jobs while it has room, runs
//! each as a normal execution on behalf of its account (through
//! [`crate::exec::lifecycle::start`], so limits, usage rows and metrics are
//! the same as `Run`'s), stores every event as produced, and renews its
//! lease meanwhile. Losing the lease (this replica stalled past it and
//! another took over) stops the run here; a cancellation request is seen
//! at the next renewal.

use std::{sync::Arc, time::Duration};

use futures::StreamExt;
use prost::Message;
use tokio::sync::Semaphore;
use tonic::{Code, Status};
use wasmwiz_proto::v1::{self, execute_event::Event};

use super::MAX_ATTEMPTS;
use crate::{
    api::{
        execution::{event_proto, started_proto},
        AppState,
    },
    auth::Caller,
    exec::{self, JobAttempt, NamedTier, RunSpec},
    store::{
        jobs::{Claimed, JobRow, JobState},
        now_ms,
    },
};

/// How long an idle worker waits before looking for a job again.
const POLL: Duration = Duration::from_millis(100);

/// Jobs one replica runs at once (each also passes the sandbox's admission).
const SLOTS: usize = 4;

/// Starts the worker; it runs until the task is aborted.
pub fn spawn(state: Arc<AppState>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(run(state))
}

async fn run(state: Arc<AppState>) {
    let replica = uuid::Uuid::now_v7().to_string();
    let slots = Arc::new(Semaphore::new(SLOTS));
    let lease_ms = state.config.jobs_lease_ms.max(100) as i64;
    let retention = Duration::from_secs(state.config.jobs_retention_secs);
    let purge_every = (retention / 2).clamp(Duration::from_secs(1), Duration::from_secs(60));
    let mut last_purge = tokio::time::Instant::now();
    loop {
        if last_purge.elapsed() >= purge_every {
            last_purge = tokio::time::Instant::now();
            let before = now_ms() - retention.as_millis() as i64;
            match state.store.job_purge(before).await {
                Ok(0) => {}
                Ok(n) => tracing::info!(purged = n, "detached execution retention cleanup"),
                Err(error) => tracing::warn!(%error, "detached execution cleanup failed"),
            }
        }
        if state.is_draining() {
            tokio::time::sleep(POLL).await;
            continue;
        }
        let Ok(permit) = slots.clone().acquire_owned().await else {
            return;
        };
        match state
            .store
            .job_claim(&replica, now_ms(), lease_ms, MAX_ATTEMPTS)
            .await
        {
            Ok(Some(claimed)) => {
                let (state, replica) = (state.clone(), replica.clone());
                tokio::spawn(async move {
                    let id = claimed.job.id.clone();
                    if let Err(error) = run_job(&state, &replica, claimed, lease_ms).await {
                        tracing::warn!(job = %id, %error, "detached execution failed");
                    }
                    drop(permit);
                });
            }
            Ok(None) => {
                drop(permit);
                tokio::time::sleep(POLL).await;
            }
            Err(error) => {
                drop(permit);
                tracing::warn!(%error, "claiming a detached execution failed");
                tokio::time::sleep(POLL * 10).await;
            }
        }
    }
}

/// The account a job runs for, as the key that submitted it.
fn caller(job: &JobRow) -> Caller {
    Caller {
        user_id: job.user_id.clone(),
        email: String::new(),
        tier: job.tier.clone(),
        key_id: job.key_id.clone(),
        admin: false,
    }
}

/// Refusals that pass: the job waits in the queue and is tried again.
fn is_transient(status: &Status) -> bool {
    matches!(status.code(), Code::ResourceExhausted | Code::Unavailable)
}

async fn run_job(
    state: &Arc<AppState>,
    owner: &str,
    Claimed { job, attempt }: Claimed,
    lease_ms: i64,
) -> anyhow::Result<()> {
    let caller = caller(&job);
    let started = match begin(state, &caller, &job).await {
        Ok(execution) => execution,
        Err(status) if is_transient(&status) => {
            state.store.job_requeue(&job.id, owner, now_ms()).await?;
            tokio::time::sleep(POLL * 5).await;
            return Ok(());
        }
        Err(status) => {
            let error = format!("{:?}: {}", status.code(), status.message());
            state
                .store
                .job_fail(&job.id, owner, &error, now_ms())
                .await?;
            notify(state, &job).await;
            return Ok(());
        }
    };
    state
        .store
        .job_attempt(&job.id, attempt, &started.execution_id, owner, now_ms())
        .await?;
    let mut first = started_proto(&started);
    if let Some(Event::Started(s)) = first.event.as_mut() {
        // The execution's id is the job's; attempts are listed apart.
        s.execution_id = job.id.clone();
    }
    let mut seq = 1;
    state
        .store
        .job_event(&job.id, seq, &first.encode_to_vec())
        .await?;
    let mut events = Box::pin(started.events());
    let mut renew = tokio::time::interval(Duration::from_millis((lease_ms / 3).max(30) as u64));
    renew.tick().await;
    loop {
        tokio::select! {
            event = events.next() => match event {
                Some(Ok(event)) => {
                    let event = event_proto(event);
                    seq += 1;
                    state.store.job_event(&job.id, seq, &event.encode_to_vec()).await?;
                    if let Some(Event::Finished(finished)) = &event.event {
                        if state.hard_stop.is_cancelled()
                            && finished.outcome() == v1::Outcome::Cancelled
                        {
                            // This replica is shutting down, not the job:
                            // another replica runs it again.
                            state.store.job_release(&job.id, owner, now_ms()).await?;
                            return Ok(());
                        }
                        let ended = state.store.job_end(
                            &job.id, owner, JobState::Finished,
                            Some(&finished.encode_to_vec()), finished.outcome, now_ms(),
                        ).await?;
                        if ended {
                            notify(state, &job).await;
                        }
                        return Ok(());
                    }
                }
                Some(Err(status)) => {
                    let error = format!("{:?}: {}", status.code(), status.message());
                    state.store.job_fail(&job.id, owner, &error, now_ms()).await?;
                    notify(state, &job).await;
                    return Ok(());
                }
                None => anyhow::bail!("the execution ended without `finished`"),
            },
            _ = renew.tick() => match state.store.job_renew(&job.id, owner, now_ms() + lease_ms).await? {
                Some(false) => {}
                Some(true) => {
                    // Dropping the events stops the guest (OUTCOME_CANCELLED).
                    drop(events);
                    if state.store.job_end(&job.id, owner, JobState::Cancelled, None, v1::Outcome::Cancelled as i32, now_ms()).await? {
                        notify(state, &job).await;
                    }
                    return Ok(());
                }
                None => anyhow::bail!("lost the lease of the job"),
            },
        }
    }
}

/// Queues the job's webhook when it has one (and the batch's, when this
/// was its last case to end).
pub async fn notify(state: &Arc<AppState>, job: &JobRow) {
    if job.webhook_url.is_empty() {
        return;
    }
    let ended = match state.store.job_get(&job.user_id, &job.id).await {
        Ok(Some(ended)) => ended,
        Ok(None) => return,
        Err(error) => {
            tracing::warn!(%error, job = %job.id, "reading an ended job for its webhook failed");
            return;
        }
    };
    let body = webhook_body(&ended);
    super::deliveries::queue(state, &ended.id, &ended.user_id, &ended.webhook_url, &body).await;
    if let Some(batch_id) = &ended.batch_id {
        match state.store.job_batch_take_notify(batch_id).await {
            Ok(Some((url, cases))) => {
                let body = batch_webhook_body(batch_id, &cases);
                super::deliveries::queue(state, batch_id, &ended.user_id, &url, &body).await;
            }
            Ok(None) => {}
            Err(error) => tracing::warn!(%error, batch = %batch_id, "batch webhook check failed"),
        }
    }
}

/// The batch's webhook JSON: every case's summary, in case order.
pub fn batch_webhook_body(batch_id: &str, cases: &[JobRow]) -> Vec<u8> {
    let cases: Vec<serde_json::Value> = cases
        .iter()
        .map(|case| {
            let mut one: serde_json::Value =
                serde_json::from_slice(&webhook_body(case)).unwrap_or_default();
            one["case_index"] = case.case_index.into();
            one
        })
        .collect();
    serde_json::json!({
        "type": "batch.ended",
        "batch_id": batch_id,
        "cases": cases,
    })
    .to_string()
    .into_bytes()
}

/// The webhook's JSON: how the execution ended (the output itself is
/// fetched with GetExecution).
pub fn webhook_body(job: &JobRow) -> Vec<u8> {
    let finished = job
        .finished
        .as_deref()
        .and_then(|bytes| v1::Finished::decode(bytes).ok())
        .unwrap_or_default();
    serde_json::json!({
        "type": "execution.ended",
        "execution_id": job.id,
        "batch_id": job.batch_id,
        "state": job.state.as_str(),
        "module_sha256": job.module_sha256,
        "attempts": job.attempts,
        "error": job.error,
        "outcome": finished.outcome().as_str_name(),
        "exit_code": finished.exit_code,
        "fuel_consumed": finished.fuel_consumed,
        "duration_us": finished.duration_us,
        "stdout_bytes": finished.stdout_bytes,
        "stderr_bytes": finished.stderr_bytes,
        "output_truncated": finished.output_truncated,
    })
    .to_string()
    .into_bytes()
}

/// Starts the job's execution from its stored request.
async fn begin(
    state: &Arc<AppState>,
    caller: &Caller,
    job: &JobRow,
) -> Result<exec::Execution, Status> {
    let request = v1::RunRequest::decode(&job.request[..])
        .map_err(|e| Status::internal(format!("a stored job does not decode: {e}")))?;
    let tier = NamedTier {
        name: &caller.tier,
        tier: state.tier(caller)?,
    };
    let mut spec = RunSpec::try_from((request, tier))?;
    // The account is charged once per job: by its first attempt on record.
    let earlier = state
        .store
        .job_usage_on_record(&job.id)
        .await
        .map_err(|e| Status::internal(format!("reading a job's attempts failed: {e}")))?;
    spec.job = Some(JobAttempt {
        job_id: job.id.clone(),
        charged: !earlier,
    });
    exec::lifecycle::start(state, caller, spec).await
}
