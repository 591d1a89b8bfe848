//! `RunBatch`: one module, many cases, run up to the tier's concurrency at
//! once, paced within the caller's per-minute rate, and reported as each
//! ends. A batch larger than what is left of today's quota is refused whole. A batch lives only as long as its
//! response stream: once the client goes away, the running cases are
//! cancelled and no further case starts.

use std::{pin::Pin, sync::Arc};

use bytes::Bytes;
use futures::{stream::FuturesUnordered, Stream, StreamExt};
use tokio::sync::{mpsc, Semaphore};
use tokio_stream::wrappers::ReceiverStream;
use tokio_util::sync::CancellationToken;
use tonic::Status;
use wasmwiz_proto::v1;

use super::{
    client::ClientStdin,
    fs_input::FsRequest,
    lifecycle::{allow, finished, launch, record_refusal, resolve, Finished, Launch, Running},
    result_cache::{case_hit, case_lookup, CacheWrite, CaseHit, Entry},
    spec::{given_fs, GivenSource, ModuleSource, NamedTier},
    verdict::VerdictTracker,
};
use crate::{
    api::{
        convert::{check_size, CommandLine, EffectiveLimits},
        errors::ApiError,
        AppState, Resolved,
    },
    auth::Caller,
    config::Tier,
    engine::{
        vfs::{CollectedFile, FsSpec},
        Stream as OutStream,
    },
    limits::{AdmitError, Allowance, LimitError, RateHeaders},
};

/// One case of a batch: its own args and stdin, the batch's module.
pub struct CaseSpec {
    pub name: String,
    pub cmd: CommandLine,
    pub stdin: Bytes,
    pub expected: Option<Bytes>,
    /// The case's own `fs` (laid over the batch's tree when it has one).
    pub fs: Option<FsRequest>,
}

/// A validated batch.
pub struct BatchSpec {
    pub source: ModuleSource,
    pub limits: EffectiveLimits,
    pub seed: u64,
    /// The tree every case starts from.
    pub fs: Option<FsRequest>,
    pub cases: Vec<CaseSpec>,
    pub tier_name: String,
    /// Sign a receipt of each case.
    pub receipt: bool,
    /// Whether the result cache answers or stores each case.
    pub cache: v1::CachePolicy,
}

impl BatchSpec {
    /// Checks the shared tree and each case's own entries on their own
    /// (before admission, so a refused tree costs nothing). A case's
    /// entries laid over the shared tree are checked again when the case
    /// starts, where the combined tree exists (building every case's tree
    /// up front would hold them all at once).
    pub async fn check_trees(&mut self) -> Result<(), ApiError> {
        if let Some(fs) = self.fs.take() {
            self.fs = Some(fs.checked(&self.tier_name).await?);
        }
        for case in &mut self.cases {
            if let Some(fs) = case.fs.take() {
                case.fs = Some(fs.checked(&self.tier_name).await?);
            }
        }
        Ok(())
    }
}

/// The tree a case starts from: the batch's, with the case's entries laid
/// over it (checked again, since the two together may conflict). Copying
/// and layering a shared tree of tens of thousands of entries is done on a
/// blocking thread, as checking it is.
async fn case_tree(
    shared: Option<&Arc<FsRequest>>,
    own: Option<FsRequest>,
    tier_name: &str,
) -> Result<Option<FsSpec>, ApiError> {
    let copy_failed = |e| ApiError::Internal(anyhow::anyhow!("copying a case's tree failed: {e}"));
    Ok(match (shared.cloned(), own) {
        (None, None) => None,
        (None, Some(own)) => Some(own.spec),
        (Some(shared), None) => Some(
            tokio::task::spawn_blocking(move || shared.spec.clone())
                .await
                .map_err(copy_failed)?,
        ),
        (Some(shared), Some(own)) => {
            let layered = tokio::task::spawn_blocking(move || shared.layered(&own))
                .await
                .map_err(copy_failed)?;
            Some(layered.checked(tier_name).await?.spec)
        }
    })
}

impl TryFrom<(v1::RunBatchRequest, NamedTier<'_>)> for BatchSpec {
    type Error = ApiError;

    fn try_from((req, named): (v1::RunBatchRequest, NamedTier<'_>)) -> Result<Self, ApiError> {
        let (tier, name) = (named.tier, named.name);
        let limits = EffectiveLimits::resolve(req.limits.as_ref(), tier, name)?;
        if req.cases.is_empty() {
            return Err(ApiError::invalid("cases", "give at least one case"));
        }
        if req.cases.len() as u64 > u64::from(tier.max_batch_cases) {
            return Err(ApiError::invalid(
                "cases",
                format!(
                    "{} cases is more than this tier's maximum of {} per batch; split it into smaller batches",
                    req.cases.len(),
                    tier.max_batch_cases
                ),
            ));
        }
        let mut cases = Vec::with_capacity(req.cases.len());
        for (i, case) in req.cases.into_iter().enumerate() {
            check_size(
                &format!("cases[{i}].stdin"),
                case.stdin.len() as u64,
                tier.max_stdin_bytes,
                name,
            )?;
            let cmd = CommandLine::new(req.program_name.clone(), case.args, req.env.clone())?
                .within(tier, name, &format!("cases[{i}].args"))?;
            cases.push(CaseSpec {
                name: case.name,
                cmd,
                stdin: Bytes::from(case.stdin),
                expected: case.expected_stdout.map(Bytes::from),
                fs: given_fs(case.fs, &format!("cases[{i}].fs"), &limits, tier)?,
            });
        }
        Ok(Self {
            source: ModuleSource::given(req.source.map(GivenSource::from), named)?,
            limits,
            seed: req.random_seed,
            fs: given_fs(req.fs, "fs", &limits, tier)?,
            cases,
            tier_name: name.to_string(),
            receipt: req.receipt,
            cache: super::result_cache::policy(req.cache)?,
        })
    }
}

/// One case's whole result.
pub struct CaseResult {
    pub index: u32,
    pub name: String,
    pub execution_id: String,
    pub module_sha256: String,
    pub stdout: Bytes,
    pub stderr: Bytes,
    /// Collected files, in path order.
    pub files: Vec<CollectedFile>,
    pub finished: Finished,
    /// Set when the case was answered from the result cache.
    pub cached_from: Option<String>,
}

pub type CaseResults = Pin<Box<dyn Stream<Item = Result<CaseResult, Status>> + Send>>;

/// A batch that has begun: its first case is admitted.
pub struct Batch {
    /// The caller's rate-limit state after the first case's admission.
    pub headers: Option<RateHeaders>,
    /// Each case as it ends (not in order); dropping it stops the batch.
    pub results: CaseResults,
}

/// Admits the first case before answering (so limits show as an error
/// status) and checks that today's quota covers every case (a batch is
/// refused whole rather than cut short by the quota), then runs the cases
/// in the background.
pub async fn start(
    state: &Arc<AppState>,
    caller: &Caller,
    mut spec: BatchSpec,
) -> Result<Batch, Status> {
    let tier = state.tier(caller)?.clone();
    spec.check_trees().await?;
    // With the cache on, cases that hit take no allowance: each miss takes
    // its own when it runs (and today's quota is checked case by case).
    let first = match spec.cache {
        v1::CachePolicy::Unspecified => {
            let first = allow(state, caller, &tier, true).await?;
            check_daily_quota_covers(state, caller, &tier, spec.cases.len() as u64).await?;
            Some(first)
        }
        _ => None,
    };
    let resolved = Arc::new(resolve(state, caller, spec.source, false).await?);
    let headers = first.as_ref().and_then(|first| first.headers);
    let (tx, rx) = mpsc::channel::<Result<CaseResult, Status>>(16);
    // Cancelled when the client drops the response (or at hard stop).
    let stop = state.hard_stop.child_token();
    let scheduler = Scheduler {
        state: state.clone(),
        caller: caller.clone(),
        resolved,
        limits: spec.limits,
        seed: spec.seed,
        fs: spec.fs.map(Arc::new),
        tier_name: spec.tier_name,
        receipt: spec.receipt,
        cache: spec.cache,
        slots: Arc::new(Semaphore::new(tier.max_concurrent.max(1) as usize)),
        stop: stop.clone(),
        tx,
    };
    tokio::spawn(scheduler.run(spec.cases, first, tier));
    let guard = stop.drop_guard();
    let results = ReceiverStream::new(rx).map(move |result| {
        let _stops_the_batch_when_dropped = &guard;
        result
    });
    Ok(Batch {
        headers,
        results: Box::pin(results),
    })
}

/// Refuses the batch whole when today's quota has fewer executions left
/// than it has cases (the first case's allowance, already taken, counts as
/// left: it is given back with the refusal).
async fn check_daily_quota_covers(
    state: &AppState,
    caller: &Caller,
    tier: &Tier,
    cases: u64,
) -> Result<(), ApiError> {
    if tier.unmetered || cases <= 1 {
        return Ok(());
    }
    let remaining = state
        .limits
        .remaining_today(&caller.user_id, tier)
        .await
        .map_err(ApiError::Internal)?
        + 1;
    if remaining < cases {
        let refusal = LimitError::daily_too_small_for_batch(cases, remaining, tier);
        record_refusal(state, caller, &refusal);
        return Err(refusal.into());
    }
    Ok(())
}

/// Starts the cases in order as slots and allowances allow.
struct Scheduler {
    state: Arc<AppState>,
    caller: Caller,
    resolved: Arc<Resolved>,
    limits: EffectiveLimits,
    seed: u64,
    fs: Option<Arc<FsRequest>>,
    tier_name: String,
    receipt: bool,
    cache: v1::CachePolicy,
    slots: Arc<Semaphore>,
    stop: CancellationToken,
    tx: mpsc::Sender<Result<CaseResult, Status>>,
}

impl Scheduler {
    async fn run(self, cases: Vec<CaseSpec>, first: Option<Allowance>, tier: Tier) {
        let mut first = first;
        let mut running = FuturesUnordered::new();
        for (index, mut case) in cases.into_iter().enumerate() {
            let fs = match case_tree(self.fs.as_ref(), case.fs.take(), &self.tier_name).await {
                Ok(fs) => fs,
                Err(error) => {
                    let _ = self.tx.send(Err(error.into())).await;
                    break;
                }
            };
            let cache = match self.cache {
                v1::CachePolicy::Unspecified => None,
                policy => match self.lookup(&tier, &case, fs.as_ref(), policy).await {
                    // Recorded concurrently: hits share usage-row commits.
                    Ok(Ok(entry)) => {
                        running.push(tokio::spawn(self.replay(index as u32, case, entry)));
                        continue;
                    }
                    Ok(Err(write)) => Some(write),
                    Err(error) => {
                        let _ = self.tx.send(Err(error.into())).await;
                        break;
                    }
                },
            };
            // Waiting for a slot or an allowance ends with the batch.
            let slot = tokio::select! {
                biased;
                () = self.stop.cancelled() => break,
                slot = self.slots.clone().acquire_owned() => slot.expect("semaphore is open"),
            };
            let allowance = match first.take() {
                Some(allowance) => allowance,
                None => match self.paced_allowance(&tier).await {
                    Some(allowance) => allowance,
                    None => break,
                },
            };
            let launched = launch(
                &self.state,
                Launch {
                    caller: self.caller.clone(),
                    resolved: Resolved::clone(&self.resolved),
                    cmd: case.cmd,
                    limits: self.limits,
                    seed: self.seed,
                    stdin: ClientStdin::bytes(case.stdin),
                    fs,
                    allowance,
                    receipt: self.receipt,
                    cache,
                    job: None,
                },
                self.stop.child_token(),
            )
            .await;
            let tx = self.tx.clone();
            let sha = self.resolved.module.sha256.clone();
            running.push(tokio::spawn(async move {
                let _slot = slot;
                let result = match launched {
                    Ok(running) => {
                        collect(index as u32, case.name, case.expected, sha, running).await
                    }
                    Err(error) => Err(Status::from(error)),
                };
                let _ = tx.send(result).await;
            }));
        }
        while running.next().await.is_some() {}
    }

    /// The next case's allowance. Past the per-minute rate the batch waits
    /// for the next cell instead of failing: the server paces the cases
    /// within the caller's allowance, so a batch larger than a minute's rate
    /// runs whole. Any other refusal (today's quota used up meanwhile by
    /// other calls) ends the batch after the cases that ran. `None`: stop.
    async fn paced_allowance(&self, tier: &Tier) -> Option<Allowance> {
        loop {
            let admitted = tokio::select! {
                biased;
                () = self.stop.cancelled() => return None,
                admitted = self.state.limits.admit(&self.caller.user_id, tier, true) => admitted,
            };
            let error = match admitted {
                Ok(allowance) => return Some(allowance),
                Err(AdmitError::Refused(LimitError::PerMinute { retry_after, .. })) => {
                    tokio::select! {
                        biased;
                        () = self.stop.cancelled() => return None,
                        () = tokio::time::sleep(retry_after) => {}
                    }
                    continue;
                }
                Err(AdmitError::Refused(refusal)) => {
                    record_refusal(&self.state, &self.caller, &refusal);
                    ApiError::from(refusal)
                }
                Err(AdmitError::Counter(error)) => ApiError::Internal(error),
            };
            let _ = self.tx.send(Err(error.into())).await;
            return None;
        }
    }

    /// One case against the result cache.
    async fn lookup(
        &self,
        tier: &Tier,
        case: &CaseSpec,
        fs: Option<&FsSpec>,
        policy: v1::CachePolicy,
    ) -> Result<Result<Arc<Entry>, CacheWrite>, ApiError> {
        case_lookup(
            &self.state,
            &self.caller,
            tier,
            &self.resolved,
            &case.cmd,
            &case.stdin,
            fs,
            &self.limits,
            self.seed,
            policy,
        )
        .await
    }

    /// Records and sends one case answered from the cache.
    fn replay(
        &self,
        index: u32,
        case: CaseSpec,
        entry: Arc<Entry>,
    ) -> impl std::future::Future<Output = ()> + Send + 'static {
        let (state, caller, resolved, tx, receipt) = (
            self.state.clone(),
            self.caller.clone(),
            self.resolved.clone(),
            self.tx.clone(),
            self.receipt,
        );
        async move {
            let hit = case_hit(&state, &caller, &resolved.module.sha256, entry, receipt).await;
            let result = hit
                .map(|hit| hit_result(index, case, &resolved, hit))
                .map_err(Status::from);
            let _ = tx.send(result).await;
        }
    }
}

/// A case's result replayed from the cache (its verdict against this
/// request's expectation).
fn hit_result(index: u32, case: CaseSpec, resolved: &Resolved, hit: CaseHit) -> CaseResult {
    let mut tracker = VerdictTracker::new(case.expected);
    tracker.feed(&hit.stdout);
    let mut report = hit.report;
    let files = std::mem::take(&mut report.files);
    CaseResult {
        index,
        name: case.name,
        execution_id: hit.execution_id,
        module_sha256: resolved.module.sha256.clone(),
        stdout: hit.stdout,
        stderr: hit.stderr,
        files,
        finished: Finished {
            report,
            verdict: tracker.verdict(),
            receipt: hit.receipt,
        },
        cached_from: Some(hit.cached_from),
    }
}

/// Gathers one case's output and report.
async fn collect(
    index: u32,
    name: String,
    expected: Option<Bytes>,
    module_sha256: String,
    mut running: Running,
) -> Result<CaseResult, Status> {
    let (mut stdout, mut stderr) = (Vec::new(), Vec::new());
    while let Some(chunk) = running.output.recv().await {
        match chunk.stream {
            OutStream::Stdout => stdout.extend_from_slice(&chunk.data),
            OutStream::Stderr => stderr.extend_from_slice(&chunk.data),
        }
    }
    let (mut report, receipt) = finished(running.report).await?;
    let files = std::mem::take(&mut report.files);
    let mut tracker = VerdictTracker::new(expected);
    tracker.feed(&stdout);
    Ok(CaseResult {
        index,
        name,
        execution_id: running.execution_id,
        module_sha256,
        stdout: stdout.into(),
        stderr: stderr.into(),
        files,
        finished: Finished {
            report,
            verdict: tracker.verdict(),
            receipt,
        },
        cached_from: None,
    })
}
