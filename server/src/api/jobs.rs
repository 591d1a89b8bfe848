//! ExecutionService's detached executions on the wire: Submit, Get, Watch,
//! Cancel and List. Only the owning account sees a job; anyone else gets
//! NOT_FOUND, as for a job that does not exist.

use std::{pin::Pin, sync::Arc, time::Duration};

use bytes::Bytes;
use futures::{stream, Stream};
use prost::Message;
use tonic::{Request, Response, Status};
use wasmwiz_proto::v1::{self, execute_event::Event, run_request::Source};

use super::{errors::ApiError, AppState};
use crate::{
    auth::Caller,
    exec::{BatchSpec, NamedTier, RunSpec},
    store::{
        jobs::{JobRow, JobState, NewBatch, NewJob, WebhookAttemptRow},
        now_ms,
    },
};

/// Jobs an account may have queued or running at once.
pub const MAX_ACTIVE_PER_ACCOUNT: i64 = 100;
/// Largest `ListExecutions` page, and the default.
pub const MAX_PAGE: u32 = 500;
pub const DEFAULT_PAGE: u32 = 50;
/// How often a watcher looks for new events of a running job.
const WATCH_POLL: Duration = Duration::from_millis(50);
/// Output bytes per `GetExecution` page (about: one event may pass it).
const PAGE_BYTES: usize = 4 << 20;
/// Events read per query.
const EVENTS_PER_READ: i64 = 256;

pub type EventStream = Pin<Box<dyn Stream<Item = Result<v1::ExecuteEvent, Status>> + Send>>;

fn not_found(id: &str) -> ApiError {
    ApiError::NotFound {
        resource_type: "execution",
        name: id.to_string(),
    }
}

fn state_proto(state: JobState) -> v1::ExecutionState {
    match state {
        JobState::Queued => v1::ExecutionState::Queued,
        JobState::Running => v1::ExecutionState::Running,
        JobState::Finished => v1::ExecutionState::Finished,
        JobState::Cancelled => v1::ExecutionState::Cancelled,
    }
}

fn summary(job: &JobRow) -> v1::ExecutionSummary {
    v1::ExecutionSummary {
        execution_id: job.id.clone(),
        state: state_proto(job.state) as i32,
        module_sha256: job.module_sha256.clone(),
        created_at_ms: job.created_at,
        updated_at_ms: job.updated_at,
        attempts: job.attempts as u32,
        outcome: job.outcome,
    }
}

fn webhook_attempt_proto(attempt: &WebhookAttemptRow) -> v1::WebhookAttempt {
    v1::WebhookAttempt {
        at_ms: attempt.at,
        http_status: attempt.http_status as u32,
        error: attempt.error.clone(),
    }
}

async fn owned(state: &AppState, caller: &Caller, id: &str) -> Result<JobRow, ApiError> {
    state
        .store
        .job_get(&caller.user_id, id)
        .await?
        .ok_or_else(|| not_found(id))
}

/// Checks a webhook URL and that the account can sign it.
async fn check_webhook(state: &AppState, caller: &Caller, url: &str) -> Result<(), ApiError> {
    if url.is_empty() {
        return Ok(());
    }
    crate::jobs::webhooks::check_url(url, &state.config)
        .map_err(|why| ApiError::invalid("webhook_url", why))?;
    if state.store.webhook_secret(&caller.user_id).await?.is_none() {
        return Err(ApiError::invalid(
            "webhook_url",
            "this account has no webhook secret yet; call AccountService.RotateWebhookSecret first",
        ));
    }
    Ok(())
}

/// Refuses `adding` more jobs past the account's bound.
async fn check_room(state: &AppState, caller: &Caller, adding: usize) -> Result<(), Status> {
    let active = state
        .store
        .job_active_count(&caller.user_id)
        .await
        .map_err(ApiError::from)?;
    if active + adding as i64 > MAX_ACTIVE_PER_ACCOUNT {
        return Err(Status::resource_exhausted(format!(
            "this account has {active} detached executions queued or running and may have at \
             most {MAX_ACTIVE_PER_ACCOUNT}; wait for some to finish"
        )));
    }
    Ok(())
}

/// The module's sha256 once it is accepted: inline bytes become a module
/// of the account, a sha256 must name one of its modules.
async fn accept_module(
    state: &AppState,
    caller: &Caller,
    source: Option<Source>,
    field: &str,
) -> Result<String, Status> {
    Ok(match source {
        Some(Source::Module(bytes)) => state
            .module_from_bytes(caller, Bytes::from(bytes), true)
            .await?
            .module
            .sha256
            .clone(),
        Some(Source::ModuleSha256(sha)) => state
            .module_by_sha(caller, &sha)
            .await?
            .module
            .sha256
            .clone(),
        None => return Err(ApiError::invalid(field, "give `module` or `module_sha256`").into()),
    })
}

/// Ignores the refusal of a missing module: the check runs without it.
fn sourceless(checked: Result<(), ApiError>) -> Result<(), ApiError> {
    checked.or_else(|error| match &error {
        ApiError::InvalidArgument { field, .. } if field == "source" => Ok(()),
        _ => Err(error),
    })
}

fn new_job<'a>(
    id: &'a str,
    caller: &'a Caller,
    sha256: &'a str,
    request: &'a [u8],
    webhook_url: &'a str,
    batch: Option<(&'a str, i64)>,
) -> NewJob<'a> {
    NewJob {
        id,
        user_id: &caller.user_id,
        key_id: &caller.key_id,
        tier: &caller.tier,
        module_sha256: sha256,
        request,
        webhook_url,
        now_ms: now_ms(),
        batch,
    }
}

/// Validates the run, accepts its module (inline bytes become a module of
/// the account) and queues the job.
pub async fn submit(
    state: &Arc<AppState>,
    request: Request<v1::SubmitExecutionRequest>,
) -> Result<Response<v1::SubmitExecutionResponse>, Status> {
    let caller = state.caller(&request).await?;
    let request = request.into_inner();
    check_webhook(state, &caller, &request.webhook_url).await?;
    let mut run = request
        .run
        .ok_or_else(|| ApiError::invalid("run", "`run` is required"))?;
    // Nobody is attached to a detached run to type into it.
    if run.interactive {
        return Err(ApiError::invalid(
            "run.interactive",
            "a detached execution cannot be interactive: use Run with interactive = true",
        )
        .into());
    }
    let tier = NamedTier {
        name: &caller.tier,
        tier: state.tier(&caller)?,
    };
    // Everything `Run` would refuse is refused now, not when a worker
    // begins the job.
    let mut check = run.clone();
    check.source = None;
    sourceless(RunSpec::try_from((check, tier)).map(drop))?;
    check_room(state, &caller, 1).await?;
    let sha256 = accept_module(state, &caller, run.source.take(), "run.source").await?;
    run.source = Some(Source::ModuleSha256(sha256.clone()));
    let id = uuid::Uuid::now_v7().to_string();
    let encoded = run.encode_to_vec();
    state
        .store
        .job_insert(&new_job(
            &id,
            &caller,
            &sha256,
            &encoded,
            &request.webhook_url,
            None,
        ))
        .await
        .map_err(ApiError::from)?;
    Ok(Response::new(v1::SubmitExecutionResponse {
        execution_id: id,
    }))
}

/// The tree of one case: the batch's, with the case's entries replacing
/// those of the same path, and both sets of `collect` patterns.
fn case_fs(
    shared: Option<&v1::Filesystem>,
    case: Option<v1::Filesystem>,
) -> Option<v1::Filesystem> {
    let Some(case) = case else {
        return shared.cloned();
    };
    let mut fs = shared.cloned().unwrap_or_default();
    for entry in case.entries {
        fs.entries.retain(|e| e.path != entry.path);
        fs.entries.push(entry);
    }
    fs.collect.extend(case.collect);
    Some(fs)
}

/// One case of a batch as a run of its own.
fn case_run(batch: &v1::RunBatchRequest, case: v1::BatchCase, sha256: &str) -> v1::RunRequest {
    v1::RunRequest {
        source: Some(Source::ModuleSha256(sha256.to_string())),
        stdin: case.stdin,
        args: case.args,
        program_name: batch.program_name.clone(),
        env: batch.env.clone(),
        limits: batch.limits,
        random_seed: batch.random_seed,
        expected_stdout: case.expected_stdout,
        keep_module: false,
        fs: case_fs(batch.fs.as_ref(), case.fs),
        receipt: batch.receipt,
        cache: batch.cache,
        interactive: false,
    }
}

/// Validates a batch like `RunBatch` and queues one job per case.
pub async fn submit_batch(
    state: &Arc<AppState>,
    request: Request<v1::SubmitBatchRequest>,
) -> Result<Response<v1::SubmitBatchResponse>, Status> {
    let caller = state.caller(&request).await?;
    let request = request.into_inner();
    check_webhook(state, &caller, &request.webhook_url).await?;
    let mut batch = request
        .batch
        .ok_or_else(|| ApiError::invalid("batch", "`batch` is required"))?;
    let tier = NamedTier {
        name: &caller.tier,
        tier: state.tier(&caller)?,
    };
    let source = batch.source.take().map(|source| match source {
        v1::run_batch_request::Source::Module(bytes) => Source::Module(bytes),
        v1::run_batch_request::Source::ModuleSha256(sha) => Source::ModuleSha256(sha),
    });
    sourceless(BatchSpec::try_from((batch.clone(), tier)).map(drop))?;
    check_room(state, &caller, batch.cases.len()).await?;
    let sha256 = accept_module(state, &caller, source, "batch.source").await?;
    let cases = std::mem::take(&mut batch.cases);
    let ids: Vec<String> = cases
        .iter()
        .map(|_| uuid::Uuid::now_v7().to_string())
        .collect();
    let encoded: Vec<Vec<u8>> = cases
        .into_iter()
        .map(|case| case_run(&batch, case, &sha256).encode_to_vec())
        .collect();
    let batch_id = uuid::Uuid::now_v7().to_string();
    let jobs: Vec<NewJob> = ids
        .iter()
        .zip(&encoded)
        .enumerate()
        .map(|(i, (id, run))| {
            new_job(
                id,
                &caller,
                &sha256,
                run,
                &request.webhook_url,
                Some((&batch_id, i as i64)),
            )
        })
        .collect();
    state
        .store
        .job_batch_insert(
            &NewBatch {
                id: &batch_id,
                user_id: &caller.user_id,
                webhook_url: &request.webhook_url,
                now_ms: now_ms(),
            },
            &jobs,
        )
        .await
        .map_err(ApiError::from)?;
    Ok(Response::new(v1::SubmitBatchResponse {
        batch_id,
        execution_ids: ids,
    }))
}

/// A page of a job's stored events after `after`, about [`PAGE_BYTES`]
/// of output, and the token of the next page when there is one.
async fn events_page(
    state: &AppState,
    id: &str,
    mut after: i64,
) -> Result<(Vec<v1::ExecuteEvent>, String), ApiError> {
    let mut events = Vec::new();
    let mut bytes = 0;
    loop {
        let page = state.store.job_events(id, after, EVENTS_PER_READ).await?;
        if page.is_empty() {
            return Ok((events, String::new()));
        }
        for (seq, data) in page {
            if bytes >= PAGE_BYTES {
                return Ok((events, after.to_string()));
            }
            bytes += data.len();
            after = seq;
            events.push(decode_event(&data)?);
        }
    }
}

fn decode_event(bytes: &[u8]) -> Result<v1::ExecuteEvent, ApiError> {
    v1::ExecuteEvent::decode(bytes)
        .map_err(|e| ApiError::Internal(anyhow::anyhow!("a stored event does not decode: {e}")))
}

/// The job's state and, once finished, its result, output and files.
pub async fn get(
    state: &Arc<AppState>,
    request: Request<v1::GetExecutionRequest>,
) -> Result<Response<v1::GetExecutionResponse>, Status> {
    let caller = state.caller(&request).await?;
    let request = request.into_inner();
    let id = request.execution_id;
    let after: i64 = match request.page_token.as_str() {
        "" => 0,
        token => token
            .parse()
            .ok()
            .filter(|n: &i64| *n >= 0)
            .ok_or_else(|| ApiError::invalid("page_token", "not a token this server gave"))?,
    };
    let job = owned(state, &caller, &id).await?;
    let mut response = v1::GetExecutionResponse {
        execution: Some(summary(&job)),
        error: job.error.clone(),
        attempt_execution_ids: state
            .store
            .job_attempt_usage_ids(&id)
            .await
            .map_err(ApiError::from)?,
        webhook_attempts: state
            .store
            .webhook_attempts(&id)
            .await
            .map_err(ApiError::from)?
            .iter()
            .map(webhook_attempt_proto)
            .collect(),
        ..Default::default()
    };
    if let Some(finished) = &job.finished {
        response.finished = Some(v1::Finished::decode(&finished[..]).map_err(|e| {
            ApiError::Internal(anyhow::anyhow!("a stored result does not decode: {e}"))
        })?);
    }
    if job.state.is_terminal() {
        let mut files: Vec<(String, Vec<u8>)> = Vec::new();
        let (events, next) = events_page(state, &id, after).await?;
        response.next_page_token = next;
        for event in events {
            match event.event {
                Some(Event::Stdout(data)) => response.stdout.extend_from_slice(&data),
                Some(Event::Stderr(data)) => response.stderr.extend_from_slice(&data),
                Some(Event::File(piece)) => append_file(&mut files, piece),
                _ => {}
            }
        }
        response.files = files
            .into_iter()
            .map(|(path, data)| v1::FsEntry {
                path,
                kind: Some(v1::fs_entry::Kind::File(data.into())),
            })
            .collect();
    }
    Ok(Response::new(response))
}

/// Joins consecutive pieces of one file.
fn append_file(files: &mut Vec<(String, Vec<u8>)>, piece: v1::FsEntry) {
    let Some(v1::fs_entry::Kind::File(data)) = piece.kind else {
        return;
    };
    match files.last_mut() {
        Some((path, whole)) if *path == piece.path => whole.extend_from_slice(&data),
        _ => files.push((piece.path, data.to_vec())),
    }
}

/// Where a watcher is.
struct Watch {
    state: Arc<AppState>,
    user_id: String,
    id: String,
    after: i64,
    pending: std::collections::VecDeque<v1::ExecuteEvent>,
    done: bool,
}

/// Every event from the start: what is stored, then new ones as the job
/// produces them, until it ends.
pub async fn watch(
    state: &Arc<AppState>,
    request: Request<v1::WatchExecutionRequest>,
) -> Result<Response<EventStream>, Status> {
    let caller = state.caller(&request).await?;
    let id = request.into_inner().execution_id;
    owned(state, &caller, &id).await?;
    let watch = Watch {
        state: state.clone(),
        user_id: caller.user_id,
        id,
        after: 0,
        pending: Default::default(),
        done: false,
    };
    let events = stream::unfold(watch, |mut watch| async move {
        loop {
            if let Some(event) = watch.pending.pop_front() {
                return Some((Ok(event), watch));
            }
            if watch.done {
                return None;
            }
            match next_events(&mut watch).await {
                Ok(true) => {}
                Ok(false) => tokio::time::sleep(WATCH_POLL).await,
                Err(error) => {
                    watch.done = true;
                    return Some((Err(error.into()), watch));
                }
            }
        }
    });
    Ok(Response::new(Box::pin(events)))
}

/// Reads what is new; false when nothing was. Marks the watch done once
/// the job has ended and everything it produced was read. A job re-run
/// after its replica died starts its events over; the watcher follows the
/// new run from where it was (a deterministic run produces the same).
async fn next_events(watch: &mut Watch) -> Result<bool, ApiError> {
    let store = &watch.state.store;
    // The state first: events read after seeing an end are complete.
    let job = store
        .job_get(&watch.user_id, &watch.id)
        .await?
        .ok_or_else(|| not_found(&watch.id))?;
    let page = store
        .job_events(&watch.id, watch.after, EVENTS_PER_READ)
        .await?;
    let got = !page.is_empty();
    for (seq, bytes) in page {
        watch.after = seq;
        watch.pending.push_back(decode_event(&bytes)?);
    }
    if !got && job.state.is_terminal() {
        watch.done = true;
        if job.state == JobState::Cancelled && !job.error.is_empty() {
            return Err(ApiError::Internal(anyhow::anyhow!(job.error)));
        }
    }
    Ok(got)
}

/// Stops a queued or running job.
pub async fn cancel(
    state: &Arc<AppState>,
    request: Request<v1::CancelExecutionRequest>,
) -> Result<Response<v1::CancelExecutionResponse>, Status> {
    let caller = state.caller(&request).await?;
    let id = request.into_inner().execution_id;
    let (job_state, ended_here) = state
        .store
        .job_cancel(&caller.user_id, &id, now_ms())
        .await
        .map_err(ApiError::from)?
        .ok_or_else(|| not_found(&id))?;
    if ended_here {
        // No replica will end this job: its webhook goes from here.
        let job = owned(state, &caller, &id).await?;
        crate::jobs::worker::notify(state, &job).await;
    }
    Ok(Response::new(v1::CancelExecutionResponse {
        state: state_proto(job_state) as i32,
    }))
}

/// A submitted batch's cases and its own webhook's attempts.
pub async fn get_batch(
    state: &Arc<AppState>,
    request: Request<v1::GetBatchRequest>,
) -> Result<Response<v1::GetBatchResponse>, Status> {
    let caller = state.caller(&request).await?;
    let batch_id = request.into_inner().batch_id;
    let (ended, cases) = state
        .store
        .job_batch_get(&caller.user_id, &batch_id)
        .await
        .map_err(ApiError::from)?
        .ok_or_else(|| ApiError::NotFound {
            resource_type: "batch",
            name: batch_id.clone(),
        })?;
    let webhook_attempts = state
        .store
        .webhook_attempts(&batch_id)
        .await
        .map_err(ApiError::from)?
        .iter()
        .map(webhook_attempt_proto)
        .collect();
    Ok(Response::new(v1::GetBatchResponse {
        batch_id,
        cases: cases.iter().map(summary).collect(),
        ended,
        webhook_attempts,
    }))
}

fn state_filter(state: v1::ExecutionState) -> Option<JobState> {
    match state {
        v1::ExecutionState::Unspecified => None,
        v1::ExecutionState::Queued => Some(JobState::Queued),
        v1::ExecutionState::Running => Some(JobState::Running),
        v1::ExecutionState::Finished => Some(JobState::Finished),
        v1::ExecutionState::Cancelled => Some(JobState::Cancelled),
    }
}

/// The caller's jobs, newest first, a page at a time.
pub async fn list(
    state: &Arc<AppState>,
    request: Request<v1::ListExecutionsRequest>,
) -> Result<Response<v1::ListExecutionsResponse>, Status> {
    let caller = state.caller(&request).await?;
    let request = request.into_inner();
    if request.page_size > MAX_PAGE {
        return Err(
            ApiError::invalid("page_size", format!("page_size is at most {MAX_PAGE}")).into(),
        );
    }
    let size = match request.page_size {
        0 => DEFAULT_PAGE,
        n => n,
    };
    let offset: i64 = match request.page_token.as_str() {
        "" => 0,
        token => token
            .parse()
            .ok()
            .filter(|n: &i64| *n >= 0)
            .ok_or_else(|| ApiError::invalid("page_token", "not a token this server gave"))?,
    };
    let filter = state_filter(request.state());
    // One more than asked tells whether another page follows.
    let mut jobs = state
        .store
        .job_list(&caller.user_id, filter, i64::from(size) + 1, offset)
        .await
        .map_err(ApiError::from)?;
    let more = jobs.len() > size as usize;
    jobs.truncate(size as usize);
    Ok(Response::new(v1::ListExecutionsResponse {
        executions: jobs.iter().map(summary).collect(),
        next_page_token: if more {
            (offset + i64::from(size)).to_string()
        } else {
            String::new()
        },
    }))
}
