//! `RunBatch`: one module, many cases, run up to the tier's concurrency at
//! once and reported as each ends. A batch lives only as long as its
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
    lifecycle::{allow, finished, launch, resolve, Finished, Launch, Running},
    result_cache::{case_hit, case_lookup, CacheWrite, CaseHit, Entry},
    spec::{GivenSource, ModuleSource, NamedTier},
    verdict::VerdictTracker,
};
use crate::{
    api::{
        convert::{check_size, CommandLine, EffectiveLimits},
        errors::ApiError,
        AppState, Resolved,
    },
    auth::Caller,
    engine::Stream as OutStream,
    limits::RateHeaders,
};

/// One case of a batch: its own args and stdin, the batch's module.
pub struct CaseSpec {
    pub name: String,
    pub cmd: CommandLine,
    pub stdin: Bytes,
    pub expected: Option<Bytes>,
}

/// A validated batch.
pub struct BatchSpec {
    pub source: ModuleSource,
    pub limits: EffectiveLimits,
    pub seed: u64,
    pub cases: Vec<CaseSpec>,
    /// Sign a receipt of each case.
    pub receipt: bool,
    /// Whether the result cache answers or stores each case.
    pub cache: v1::CachePolicy,
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
            });
        }
        Ok(Self {
            source: ModuleSource::given(req.source.map(GivenSource::from), named)?,
            limits,
            seed: req.random_seed,
            cases,
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
/// status), then runs the cases in the background.
pub async fn start(
    state: &Arc<AppState>,
    caller: &Caller,
    spec: BatchSpec,
) -> Result<Batch, Status> {
    let tier = state.tier(caller)?.clone();
    // With the cache on, cases that hit take no allowance: each miss takes
    // its own when it runs.
    let first = match spec.cache {
        v1::CachePolicy::Unspecified => Some(allow(state, caller, &tier, true).await?),
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

/// Starts the cases in order as slots and allowances allow.
struct Scheduler {
    state: Arc<AppState>,
    caller: Caller,
    resolved: Arc<Resolved>,
    limits: EffectiveLimits,
    seed: u64,
    receipt: bool,
    cache: v1::CachePolicy,
    slots: Arc<Semaphore>,
    stop: CancellationToken,
    tx: mpsc::Sender<Result<CaseResult, Status>>,
}

impl Scheduler {
    async fn run(
        self,
        cases: Vec<CaseSpec>,
        first: Option<crate::limits::Allowance>,
        tier: crate::config::Tier,
    ) {
        let mut first = first;
        let mut running = FuturesUnordered::new();
        for (index, case) in cases.into_iter().enumerate() {
            let cache = match self.cache {
                v1::CachePolicy::Unspecified => None,
                policy => match self.lookup(&tier, &case, policy).await {
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
                None => tokio::select! {
                    biased;
                    () = self.stop.cancelled() => break,
                    allowed = allow(&self.state, &self.caller, &tier, true) => match allowed {
                        Ok(allowance) => allowance,
                        Err(error) => {
                            let _ = self.tx.send(Err(error.into())).await;
                            break;
                        }
                    },
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
                    allowance,
                    receipt: self.receipt,
                    cache,
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

    /// One case against the result cache.
    async fn lookup(
        &self,
        tier: &crate::config::Tier,
        case: &CaseSpec,
        policy: v1::CachePolicy,
    ) -> Result<Result<Arc<Entry>, CacheWrite>, ApiError> {
        case_lookup(
            &self.state,
            &self.caller,
            tier,
            &self.resolved,
            &case.cmd,
            &case.stdin,
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
    CaseResult {
        index,
        name: case.name,
        execution_id: hit.execution_id,
        module_sha256: resolved.module.sha256.clone(),
        stdout: hit.stdout,
        stderr: hit.stderr,
        finished: Finished {
            report: hit.report,
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
    let (report, receipt) = finished(running.report).await?;
    let mut tracker = VerdictTracker::new(expected);
    tracker.feed(&stdout);
    Ok(CaseResult {
        index,
        name,
        execution_id: running.execution_id,
        module_sha256,
        stdout: stdout.into(),
        stderr: stderr.into(),
        finished: Finished {
            report,
            verdict: tracker.verdict(),
            receipt,
        },
        cached_from: None,
    })
}
