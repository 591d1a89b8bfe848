//! The deterministic result cache (opt-in per request: `cache =
//! CACHE_POLICY_USE` or `CACHE_POLICY_REFRESH`). A run's result — its output
//! chunks in order, collected files, report and receipt — is stored under
//! (account, inputs digest) once it ended deterministically; the same
//! request again is answered by replaying it, without running, without an
//! execution allowance and without fuel. Lookups have their own, larger,
//! per-minute budget. The durable half (shared by replicas) is
//! `store::result_cache`; here are the in-process moka front, the lookup
//! budget, the entry encoding and the lifecycle's two paths (replay a hit,
//! store a miss).

use std::{num::NonZeroU32, sync::Arc, time::Duration};

use bytes::Bytes;
use governor::{clock::Clock, DefaultKeyedRateLimiter, Quota, RateLimiter};
use prometheus::{IntCounterVec, Registry};
use prost::Message;
use tokio::sync::{mpsc, oneshot};
use tonic::Status;
use wasmwiz_proto::v1::{self, CachePolicy};

use super::{
    inputs::{Inputs, StdinInput},
    lifecycle::{allow_run, begin, resolve, Execution, Running},
    record::{UsageEnd, UsageRecord},
    spec::{RunSpec, StdinSpec},
};
use crate::{
    api::{
        convert::{CommandLine, EffectiveLimits},
        errors::ApiError,
        AppState, Resolved,
    },
    auth::Caller,
    config::{Config, Tier},
    engine::{
        vfs::{CollectedFile, FsSpec},
        Outcome, OutputChunk, Report, Stream,
    },
    limits::utc_day,
    store::{
        now_ms,
        result_cache::{CacheBounds, NewEntry},
    },
};

/// Stdin past this is hashed for the key on a blocking thread.
const INLINE_HASH_BYTES: usize = 64 * 1024;

/// One stored result.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Entry {
    /// The execution whose result this is.
    #[prost(string, tag = "1")]
    pub execution_id: String,
    /// stdout and stderr as delivered, in order.
    #[prost(message, repeated, tag = "2")]
    pub chunks: Vec<StoredChunk>,
    #[prost(message, optional, tag = "3")]
    pub report: Option<StoredReport>,
    /// The original run's receipt (always made for cached runs).
    #[prost(message, optional, tag = "4")]
    pub receipt: Option<v1::Receipt>,
    #[prost(message, repeated, tag = "5")]
    pub files: Vec<StoredFile>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct StoredChunk {
    #[prost(bool, tag = "1")]
    pub stderr: bool,
    #[prost(bytes = "bytes", tag = "2")]
    pub data: Bytes,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct StoredFile {
    #[prost(string, tag = "1")]
    pub path: String,
    #[prost(bytes = "bytes", tag = "2")]
    pub contents: Bytes,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct StoredReport {
    #[prost(string, tag = "1")]
    pub outcome: String,
    #[prost(int32, tag = "2")]
    pub exit_code: i32,
    #[prost(string, tag = "3")]
    pub trap_kind: String,
    #[prost(string, tag = "4")]
    pub message: String,
    #[prost(uint64, tag = "5")]
    pub fuel_consumed: u64,
    #[prost(uint64, tag = "6")]
    pub duration_us: u64,
    #[prost(uint64, tag = "7")]
    pub memory_peak_bytes: u64,
    #[prost(uint64, tag = "8")]
    pub stdout_bytes: u64,
    #[prost(uint64, tag = "9")]
    pub stderr_bytes: u64,
    #[prost(bool, tag = "10")]
    pub output_truncated: bool,
    #[prost(uint64, tag = "11")]
    pub stdin_bytes: u64,
}

const OUTCOMES: [Outcome; 8] = [
    Outcome::Success,
    Outcome::ExitNonzero,
    Outcome::Trap,
    Outcome::OutOfFuel,
    Outcome::Timeout,
    Outcome::MemoryLimit,
    Outcome::OutputLimit,
    Outcome::Cancelled,
];

/// Whether an ending depends only on the inputs: a timeout depends on the
/// machine's speed, a cancel on the client or the server's shutdown.
pub fn deterministic(outcome: Outcome) -> bool {
    !matches!(outcome, Outcome::Timeout | Outcome::Cancelled)
}

impl Entry {
    /// The stored result of a run; `None` when it is over `max_bytes`.
    pub fn of(
        execution_id: &str,
        chunks: Vec<OutputChunk>,
        report: &Report,
        receipt: v1::Receipt,
        max_bytes: u64,
    ) -> Option<Self> {
        let size = chunks.iter().map(|c| c.data.len() as u64).sum::<u64>()
            + report
                .files
                .iter()
                .map(|f| f.contents.len() as u64)
                .sum::<u64>();
        if size > max_bytes {
            return None;
        }
        Some(Self {
            execution_id: execution_id.to_string(),
            chunks: chunks
                .into_iter()
                .map(|c| StoredChunk {
                    stderr: c.stream == Stream::Stderr,
                    data: c.data,
                })
                .collect(),
            report: Some(StoredReport {
                outcome: report.outcome.as_str().to_string(),
                exit_code: report.exit_code,
                trap_kind: report.trap_kind.clone(),
                message: report.message.clone(),
                fuel_consumed: report.fuel_consumed,
                duration_us: report.duration.as_micros() as u64,
                memory_peak_bytes: report.memory_peak_bytes,
                stdout_bytes: report.stdout_bytes,
                stderr_bytes: report.stderr_bytes,
                output_truncated: report.output_truncated,
                stdin_bytes: report.stdin_bytes,
            }),
            receipt: Some(receipt),
            files: report
                .files
                .iter()
                .map(|f| StoredFile {
                    path: f.path.clone(),
                    contents: f.contents.clone(),
                })
                .collect(),
        })
    }

    /// The original run's report.
    pub fn report(&self) -> Result<Report, ApiError> {
        let stored = self.report.as_ref().ok_or_else(corrupt)?;
        let outcome = OUTCOMES
            .into_iter()
            .find(|o| o.as_str() == stored.outcome)
            .ok_or_else(corrupt)?;
        Ok(Report {
            outcome,
            exit_code: stored.exit_code,
            trap_kind: stored.trap_kind.clone(),
            message: stored.message.clone(),
            fuel_consumed: stored.fuel_consumed,
            duration: Duration::from_micros(stored.duration_us),
            memory_peak_bytes: stored.memory_peak_bytes,
            stdout_bytes: stored.stdout_bytes,
            stderr_bytes: stored.stderr_bytes,
            output_truncated: stored.output_truncated,
            stdin_bytes: stored.stdin_bytes,
            files: self
                .files
                .iter()
                .map(|f| CollectedFile {
                    path: f.path.clone(),
                    contents: f.contents.clone(),
                })
                .collect(),
        })
    }

    /// The output chunks, as the sandbox sent them.
    pub fn output(&self) -> impl Iterator<Item = OutputChunk> + '_ {
        self.chunks.iter().map(|c| OutputChunk {
            stream: if c.stderr {
                Stream::Stderr
            } else {
                Stream::Stdout
            },
            data: c.data.clone(),
        })
    }

    fn weight(&self) -> u32 {
        let bytes = self.chunks.iter().map(|c| c.data.len()).sum::<usize>()
            + self.files.iter().map(|f| f.contents.len()).sum::<usize>()
            + 512;
        bytes.min(u32::MAX as usize) as u32
    }
}

fn corrupt() -> ApiError {
    ApiError::Internal(anyhow::anyhow!("a result cache entry could not be decoded"))
}

/// The cache's settings, from the configuration.
#[derive(Debug, Clone, Copy)]
pub struct CacheSettings {
    pub max_entry_bytes: u64,
    pub bounds: CacheBounds,
    pub ttl: Duration,
    pub memory_bytes: u64,
    pub lookups_per_minute: u32,
}

impl CacheSettings {
    pub fn from_config(config: &Config) -> Self {
        Self {
            max_entry_bytes: config.result_cache_max_entry_bytes,
            bounds: CacheBounds {
                account_bytes: config.result_cache_account_bytes,
                total_bytes: config.result_cache_total_bytes,
            },
            ttl: Duration::from_secs(config.result_cache_ttl_secs),
            memory_bytes: config.result_cache_memory_mib * 1024 * 1024,
            lookups_per_minute: config.result_cache_lookups_per_minute,
        }
    }
}

/// A request's `cache` field; values this server does not know are refused
/// rather than ignored.
pub fn policy(value: i32) -> Result<CachePolicy, ApiError> {
    CachePolicy::try_from(value).map_err(|_| {
        ApiError::invalid(
            "cache",
            format!(
                "{value} is not a cache policy: use CACHE_POLICY_UNSPECIFIED (0, off), \
                 CACHE_POLICY_USE (1) or CACHE_POLICY_REFRESH (2)"
            ),
        )
    })
}

/// The in-process half: moka front, lookup budget, metrics.
pub struct ResultCache {
    pub settings: CacheSettings,
    front: moka::future::Cache<(String, String), Arc<Entry>>,
    lookups: Option<DefaultKeyedRateLimiter<String>>,
    /// `result="hit"` / `"miss"`: the hit ratio.
    lookups_total: IntCounterVec,
}

impl ResultCache {
    pub fn new(settings: CacheSettings, registry: &Registry) -> anyhow::Result<Self> {
        let lookups_total = IntCounterVec::new(
            prometheus::Opts::new(
                "result_cache_lookups_total",
                "Result cache lookups by result (hit ratio = hit / all)",
            ),
            &["result"],
        )?;
        registry.register(Box::new(lookups_total.clone()))?;
        Ok(Self {
            front: moka::future::Cache::builder()
                .max_capacity(settings.memory_bytes)
                .weigher(|_, entry: &Arc<Entry>| entry.weight())
                .time_to_live(settings.ttl)
                .build(),
            lookups: NonZeroU32::new(settings.lookups_per_minute)
                .map(|n| RateLimiter::keyed(Quota::per_minute(n))),
            lookups_total,
            settings,
        })
    }

    /// One lookup from the caller's per-minute lookup budget (unmetered
    /// tiers have none).
    pub fn allow_lookup(&self, caller: &Caller, tier: &Tier) -> Result<(), ApiError> {
        let Some(limiter) = self.lookups.as_ref().filter(|_| !tier.unmetered) else {
            return Ok(());
        };
        limiter
            .check_key(&caller.user_id)
            .map_err(|not_until| ApiError::CacheLookups {
                limit: u64::from(self.settings.lookups_per_minute),
                retry_after: not_until
                    .wait_time_from(governor::clock::DefaultClock::default().now()),
            })
    }

    /// The caller's entry for `key`: the front, else the database.
    pub async fn get(
        &self,
        state: &AppState,
        user_id: &str,
        key: &str,
    ) -> Result<Option<Arc<Entry>>, ApiError> {
        let id = (user_id.to_string(), key.to_string());
        let found = match self.front.get(&id).await {
            Some(entry) => Some(entry),
            None => match state.store.result_cache_get(user_id, key, now_ms()).await? {
                Some(bytes) => {
                    let entry = Arc::new(Entry::decode(bytes.as_slice()).map_err(|_| corrupt())?);
                    self.front.insert(id, entry.clone()).await;
                    Some(entry)
                }
                None => None,
            },
        };
        let result = if found.is_some() { "hit" } else { "miss" };
        self.lookups_total.with_label_values(&[result]).inc();
        Ok(found)
    }

    /// Stores `entry` for the caller (replacing any), evicting past the
    /// byte bounds; the front forgets what the database evicted.
    pub async fn put(
        &self,
        state: &AppState,
        user_id: &str,
        key: &str,
        entry: Entry,
    ) -> Result<(), ApiError> {
        let bytes = entry.encode_to_vec();
        let now = now_ms();
        let evicted = state
            .store
            .result_cache_put(
                NewEntry {
                    user_id,
                    inputs_sha256: key,
                    execution_id: &entry.execution_id,
                    bytes: &bytes,
                    now_ms: now,
                    expires_at_ms: now + self.settings.ttl.as_millis() as i64,
                },
                self.settings.bounds,
            )
            .await?;
        let id = (user_id.to_string(), key.to_string());
        if evicted
            .iter()
            .any(|e| e.user_id == user_id && e.inputs_sha256 == key)
        {
            self.front.invalidate(&id).await;
        } else {
            self.front.insert(id, Arc::new(entry)).await;
        }
        for gone in evicted {
            self.front
                .invalidate(&(gone.user_id, gone.inputs_sha256))
                .await;
        }
        Ok(())
    }
}

/// The key of a run: its inputs digest (hashed off the async runtime when
/// stdin is large).
pub async fn key_of(
    state: &AppState,
    module_sha256: &str,
    cmd: &CommandLine,
    stdin: &Bytes,
    fs: Option<&FsSpec>,
    limits: &EffectiveLimits,
    seed: u64,
) -> Result<String, ApiError> {
    let inputs = Inputs {
        engine: state.config.engine_identity.clone(),
        module_sha256: module_sha256.to_string(),
        program_name: cmd.program_name.clone(),
        args: cmd.args.clone(),
        env: cmd.env.clone(),
        stdin: StdinInput::Whole(stdin.clone()),
        fuel: limits.fuel,
        memory_bytes: limits.memory_bytes,
        timeout_ms: limits.timeout_ms,
        max_output_bytes: limits.max_output_bytes,
        random_seed: seed,
        fs: fs.cloned(),
    };
    if stdin.len() <= INLINE_HASH_BYTES && fs.is_none() {
        return Ok(inputs.sha256());
    }
    tokio::task::spawn_blocking(move || inputs.sha256())
        .await
        .map_err(|e| ApiError::Internal(e.into()))
}

/// What a run with the cache on stores at its end.
#[derive(Debug, Clone)]
pub struct CacheWrite {
    pub key: String,
}

/// How a launched run ended: its report, its receipt (made when asked for
/// or when the cache is on) and its recorded output (with the cache on).
pub(super) type Ended = (Report, Option<v1::Receipt>, Option<Vec<OutputChunk>>);

/// The end of a launched run as its client gets it: stored in the cache
/// first when `cache` is set (so the next identical request hits), the
/// receipt kept only when the client asked for one.
pub(super) async fn settle(
    state: &AppState,
    (user_id, execution_id): (&str, &str),
    cache: Option<&CacheWrite>,
    wants_receipt: bool,
    answer: Result<Ended, ApiError>,
) -> Result<(Report, Option<v1::Receipt>), ApiError> {
    let (report, receipt, recorded) = answer?;
    if let (Some(write), Some(receipt), Some(chunks)) = (cache, &receipt, recorded) {
        store_result(
            state,
            user_id,
            write,
            execution_id,
            &report,
            receipt.clone(),
            chunks,
        )
        .await;
    }
    Ok((report, receipt.filter(|_| wants_receipt)))
}

/// Stores a finished run when it ended deterministically.
async fn store_result(
    state: &AppState,
    user_id: &str,
    write: &CacheWrite,
    execution_id: &str,
    report: &Report,
    receipt: v1::Receipt,
    chunks: Vec<OutputChunk>,
) {
    if !deterministic(report.outcome) {
        return;
    }
    // The key was computed before the run; the receipt's digest is of the
    // job that ran. Stored only when they agree, so an input the key does
    // not cover can never be answered from the cache.
    let ran = v1::ReceiptStatement::decode(receipt.statement.as_slice())
        .map(|statement| statement.inputs_sha256)
        .unwrap_or_default();
    if ran != write.key {
        tracing::error!(
            key = %write.key,
            ran = %ran,
            "result cache key does not cover the run's inputs; not stored"
        );
        return;
    }
    let cache = &state.result_cache;
    let Some(entry) = Entry::of(
        execution_id,
        chunks,
        report,
        receipt,
        cache.settings.max_entry_bytes,
    ) else {
        return;
    };
    if let Err(error) = cache.put(state, user_id, &write.key, entry).await {
        tracing::warn!(%error, "storing a result in the result cache failed");
    }
}

/// `Run`/`Execute` with the cache on: one lookup from the lookup budget;
/// a hit (USE) is replayed, a miss (or REFRESH) runs like any execution and
/// stores its result.
pub async fn start(
    state: &Arc<AppState>,
    caller: &Caller,
    mut spec: RunSpec,
) -> Result<Execution, Status> {
    let tier = state.tier(caller)?;
    state.result_cache.allow_lookup(caller, tier)?;
    spec.check_fs().await?;
    let source = spec.take_source().await?;
    let fs = spec.take_fs().await?;
    let resolved = resolve(state, caller, source, spec.keep_module).await?;
    let StdinSpec::Bytes(stdin) = &spec.stdin else {
        return Err(Status::internal("streamed stdin cannot be cached"));
    };
    let key = key_of(
        state,
        &resolved.module.sha256,
        &spec.cmd,
        stdin,
        fs.as_ref(),
        &spec.limits,
        spec.seed,
    )
    .await?;
    if spec.cache == CachePolicy::Use {
        if let Some(entry) = state.result_cache.get(state, &caller.user_id, &key).await? {
            return Ok(replay(state, caller, &resolved, spec, entry).await?);
        }
    }
    let allowance = allow_run(state, caller, tier, &spec).await?;
    begin(
        state,
        caller,
        spec,
        resolved,
        allowance,
        fs,
        Some(CacheWrite { key }),
    )
    .await
}

/// The usage row of a hit: finished at once, the original run's outcome
/// and fuel (reported as saved), no time spent.
async fn record_hit(
    state: &AppState,
    caller: &Caller,
    module_sha256: &str,
    entry: &Entry,
    report: &Report,
) -> Result<String, ApiError> {
    let execution_id = uuid::Uuid::now_v7().to_string();
    let now = now_ms();
    let row = UsageRecord {
        id: execution_id.clone(),
        user_id: caller.user_id.clone(),
        key_id: caller.key_id.clone(),
        module_sha256: module_sha256.to_string(),
        day: utc_day(),
        started_at: now,
        end: Some(UsageEnd {
            duration_us: 0,
            ..UsageEnd::from_report(now, report)
        }),
        cached_from: Some(entry.execution_id.clone()),
        job: None,
    };
    // Group-committed with the other rows (a batch's hits share commits).
    state.usage.enqueue(row).await?.wait().await?;
    state.mark_seen(&caller.user_id, module_sha256);
    Ok(execution_id)
}

/// Answers a hit with the original run's events (its own execution id and
/// usage row; the original's receipt when asked for).
async fn replay(
    state: &Arc<AppState>,
    caller: &Caller,
    resolved: &Resolved,
    spec: RunSpec,
    entry: Arc<Entry>,
) -> Result<Execution, ApiError> {
    let report = entry.report()?;
    let module_sha256 = resolved.module.sha256.clone();
    let execution_id = record_hit(state, caller, &module_sha256, &entry, &report).await?;
    let receipt = if spec.receipt {
        entry.receipt.clone()
    } else {
        None
    };
    let (out_tx, output) = mpsc::channel(16);
    let (report_tx, report_rx) = oneshot::channel();
    let (admitted_tx, admitted) = oneshot::channel();
    let _ = admitted_tx.send(Ok(()));
    let cached_from = entry.execution_id.clone();
    tokio::spawn(async move {
        for chunk in entry.output() {
            if out_tx.send(chunk).await.is_err() {
                return;
            }
        }
        drop(out_tx);
        let _ = report_tx.send(Ok((report, receipt)));
    });
    Ok(Execution {
        running: Running {
            execution_id: execution_id.clone(),
            admitted,
            output,
            report: report_rx,
        },
        execution_id,
        module_sha256,
        cache_hit: resolved.cache_hit,
        limits: spec.limits,
        headers: None,
        expected: spec.expected,
        cached_from: Some(cached_from),
    })
}

/// A batch case answered from the cache: its result, recorded as a hit.
pub struct CaseHit {
    pub execution_id: String,
    pub cached_from: String,
    pub stdout: Bytes,
    pub stderr: Bytes,
    pub report: Report,
    pub receipt: Option<v1::Receipt>,
}

/// Looks one batch case up: `Ok(Err(key))` on a miss (or REFRESH), to be
/// run and stored under `key`.
#[allow(clippy::too_many_arguments)]
pub(super) async fn case_lookup(
    state: &AppState,
    caller: &Caller,
    tier: &Tier,
    resolved: &Resolved,
    cmd: &CommandLine,
    stdin: &Bytes,
    fs: Option<&FsSpec>,
    limits: &EffectiveLimits,
    seed: u64,
    policy: CachePolicy,
) -> Result<Result<Arc<Entry>, CacheWrite>, ApiError> {
    state.result_cache.allow_lookup(caller, tier)?;
    let module_sha256 = &resolved.module.sha256;
    let key = key_of(state, module_sha256, cmd, stdin, fs, limits, seed).await?;
    let found = match policy {
        CachePolicy::Use => state.result_cache.get(state, &caller.user_id, &key).await?,
        _ => None,
    };
    Ok(found.ok_or(CacheWrite { key }))
}

/// A batch case's hit, recorded (its usage row durable).
pub(super) async fn case_hit(
    state: &AppState,
    caller: &Caller,
    module_sha256: &str,
    entry: Arc<Entry>,
    receipt: bool,
) -> Result<CaseHit, ApiError> {
    let report = entry.report()?;
    let execution_id = record_hit(state, caller, module_sha256, &entry, &report).await?;
    let (mut stdout, mut stderr) = (Vec::new(), Vec::new());
    for chunk in entry.output() {
        match chunk.stream {
            Stream::Stdout => stdout.extend_from_slice(&chunk.data),
            Stream::Stderr => stderr.extend_from_slice(&chunk.data),
        }
    }
    Ok(CaseHit {
        execution_id,
        cached_from: entry.execution_id.clone(),
        stdout: stdout.into(),
        stderr: stderr.into(),
        report,
        receipt: if receipt { entry.receipt.clone() } else { None },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(outcome: Outcome) -> Report {
        Report {
            outcome,
            exit_code: 3,
            trap_kind: String::new(),
            message: "m".into(),
            fuel_consumed: 42,
            duration: Duration::from_micros(7),
            memory_peak_bytes: 65536,
            stdout_bytes: 2,
            stderr_bytes: 1,
            output_truncated: false,
            stdin_bytes: 0,
            files: vec![CollectedFile {
                path: "out/a".into(),
                contents: Bytes::from_static(b"A"),
            }],
        }
    }

    fn chunks() -> Vec<OutputChunk> {
        vec![
            OutputChunk {
                stream: Stream::Stdout,
                data: Bytes::from_static(b"o"),
            },
            OutputChunk {
                stream: Stream::Stderr,
                data: Bytes::from_static(b"e"),
            },
            OutputChunk {
                stream: Stream::Stdout,
                data: Bytes::from_static(b"o"),
            },
        ]
    }

    #[test]
    fn an_entry_round_trips_its_report_and_output_order() {
        let entry = Entry::of(
            "id",
            chunks(),
            &report(Outcome::ExitNonzero),
            v1::Receipt::default(),
            1 << 20,
        )
        .unwrap();
        let decoded = Entry::decode(entry.encode_to_vec().as_slice()).unwrap();
        assert_eq!(decoded.report().unwrap(), report(Outcome::ExitNonzero));
        let streams: Vec<Stream> = decoded.output().map(|c| c.stream).collect();
        assert_eq!(streams, [Stream::Stdout, Stream::Stderr, Stream::Stdout]);
    }

    #[test]
    fn an_entry_over_the_size_limit_is_not_made() {
        // Output 3 bytes + file 1 byte.
        let make = |max| {
            Entry::of(
                "id",
                chunks(),
                &report(Outcome::Success),
                v1::Receipt::default(),
                max,
            )
        };
        assert!(make(4).is_some());
        assert!(make(3).is_none());
    }

    #[test]
    fn timeouts_and_cancels_are_not_deterministic() {
        let kept: Vec<Outcome> = OUTCOMES.into_iter().filter(|o| deterministic(*o)).collect();
        assert_eq!(kept.len(), 6);
        assert!(!deterministic(Outcome::Timeout));
        assert!(!deterministic(Outcome::Cancelled));
    }
}
