//! ExecutionService: `Run`, `Execute` and `RunBatch`.

use std::{pin::Pin, sync::Arc};

use bytes::{Bytes, BytesMut};
use futures::{stream, Stream, StreamExt};
use parking_lot::Mutex;
use tokio::sync::{mpsc, oneshot};
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status, Streaming};
use wasmwiz_proto::v1::{
    self, execute_event::Event, execute_request::Msg, execution_service_server::ExecutionService,
};

use super::{
    convert::{check_size, sha256_field, CommandLine, EffectiveLimits},
    errors::{insert_rate_headers, ApiError},
    AppState, Resolved,
};
use crate::{
    auth::Caller,
    config::Tier,
    engine::{Job, Outcome, OutputChunk, Report, StdinSource, Stream as OutStream},
    limits::{utc_day, Allowance, RateHeaders},
    store::{now_ms, UsageRow},
};

pub type EventStream = Pin<Box<dyn Stream<Item = Result<v1::ExecuteEvent, Status>> + Send>>;
pub type BatchStream = Pin<Box<dyn Stream<Item = Result<v1::BatchEvent, Status>> + Send>>;

/// The gRPC face of executions.
pub struct ExecutionApi {
    pub state: Arc<AppState>,
}

/// Everything needed to start one admitted execution.
struct Launch {
    caller: Caller,
    resolved: Resolved,
    cmd: CommandLine,
    limits: EffectiveLimits,
    seed: u64,
    stdin: ClientStdin,
    allowance: Allowance,
}

/// The guest's stdin as the client gives it. A streamed stdin comes with the
/// error that stops the run if the client breaks the rules mid-stream (too
/// much stdin, or a message that is not stdin).
struct ClientStdin {
    source: StdinSource,
    refused: Option<oneshot::Receiver<ApiError>>,
}

impl ClientStdin {
    fn bytes(bytes: Vec<u8>) -> Self {
        Self {
            source: StdinSource::Bytes(Bytes::from(bytes)),
            refused: None,
        }
    }

    /// Forwards the rest of `incoming` to the guest, up to `max` bytes.
    fn streamed(incoming: Streaming<v1::ExecuteRequest>, max: u64, tier_name: String) -> Self {
        let (chunks, source) = mpsc::channel::<Bytes>(8);
        let (refuse, refused) = oneshot::channel();
        tokio::spawn(async move {
            if let Err(error) = forward_stdin(incoming, &chunks, max, &tier_name).await {
                let _ = refuse.send(error);
                // No end of file for a refused stream: the guest must not run
                // on to success. It waits for stdin until the refusal stops
                // it, and the feed is dropped only after that.
                chunks.closed().await;
            }
        });
        Self {
            source: StdinSource::Stream(source),
            refused: Some(refused),
        }
    }
}

/// A running execution: its id, output and (durably recorded) report.
struct Started {
    execution_id: String,
    /// The admission row's commit (and with it the charge confirmed, or
    /// given back when it failed): `started` is sent only after it.
    admitted: oneshot::Receiver<Result<(), String>>,
    output: mpsc::Receiver<OutputChunk>,
    report: oneshot::Receiver<Result<Report, ApiError>>,
}

pub fn outcome_proto(outcome: Outcome) -> v1::Outcome {
    match outcome {
        Outcome::Success => v1::Outcome::Success,
        Outcome::ExitNonzero => v1::Outcome::ExitNonzero,
        Outcome::Trap => v1::Outcome::Trap,
        Outcome::OutOfFuel => v1::Outcome::OutOfFuel,
        Outcome::Timeout => v1::Outcome::Timeout,
        Outcome::MemoryLimit => v1::Outcome::MemoryLimit,
        Outcome::OutputLimit => v1::Outcome::OutputLimit,
        Outcome::Cancelled => v1::Outcome::Cancelled,
    }
}

fn finished_proto(report: &Report, verdict: v1::Verdict) -> v1::Finished {
    v1::Finished {
        outcome: outcome_proto(report.outcome) as i32,
        exit_code: report.exit_code,
        trap_kind: report.trap_kind.clone(),
        message: report.message.clone(),
        fuel_consumed: report.fuel_consumed,
        duration_us: report.duration.as_micros() as u64,
        memory_peak_bytes: report.memory_peak_bytes,
        stdout_bytes: report.stdout_bytes,
        stderr_bytes: report.stderr_bytes,
        output_truncated: report.output_truncated,
        verdict: verdict as i32,
    }
}

/// Compares stdout with the expected bytes as it streams past.
struct VerdictTracker {
    expected: Option<Bytes>,
    matched: usize,
    ok: bool,
}

impl VerdictTracker {
    fn new(expected: Option<Bytes>) -> Self {
        Self {
            expected,
            matched: 0,
            ok: true,
        }
    }

    fn feed(&mut self, stdout: &[u8]) {
        let Some(expected) = &self.expected else {
            return;
        };
        let end = self.matched + stdout.len();
        if self.ok && end <= expected.len() && &expected[self.matched..end] == stdout {
            self.matched = end;
        } else {
            self.ok = false;
        }
    }

    fn verdict(&self) -> v1::Verdict {
        match &self.expected {
            None => v1::Verdict::Unspecified,
            Some(expected) if self.ok && self.matched == expected.len() => v1::Verdict::Accepted,
            Some(_) => v1::Verdict::WrongAnswer,
        }
    }
}

impl ExecutionApi {
    /// Rate limits, quota and per-user concurrency for one execution.
    async fn allow(&self, caller: &Caller, tier: &Tier, wait: bool) -> Result<Allowance, ApiError> {
        match self
            .state
            .limits
            .admit(&caller.user_id, &caller.tier, tier, wait)
            .await?
        {
            Ok(allowance) => Ok(allowance),
            Err(refusal) => {
                let reason = match refusal {
                    crate::limits::LimitError::PerMinute { .. } => "per_minute",
                    crate::limits::LimitError::Daily { .. } => "per_day",
                    crate::limits::LimitError::Concurrency { .. } => "concurrency",
                };
                self.state
                    .metrics
                    .rate_limited
                    .with_label_values(&[reason])
                    .inc();
                Err(refusal.into())
            }
        }
    }

    /// Server admission, the durable usage row, then the execution itself.
    /// The allowance is confirmed (charged) once the admission row commits;
    /// every earlier return drops it unconfirmed, which gives it back.
    async fn start(&self, launch: Launch) -> Result<Started, ApiError> {
        let state = self.state.clone();
        if state.is_draining() {
            return Err(ApiError::Draining);
        }
        // The operator's unmetered tiers are trusted: no per-tenant share.
        let trusted = state.tier(&launch.caller)?.unmetered;
        let tenant = (!trusted).then_some(launch.caller.user_id.as_str());
        let permit = state
            .sandbox
            .admit(tenant, &launch.resolved.module, launch.limits.memory_bytes)
            .await?;
        let execution_id = uuid::Uuid::now_v7().to_string();
        let module = launch.resolved.module.clone();
        // The admission row is queued now and committed while the guest
        // starts; `started` waits for that commit. The final row is queued
        // after it, so `finished` (sent once that one commits) implies both
        // are durable.
        let row = UsageRow {
            id: execution_id.clone(),
            user_id: launch.caller.user_id.clone(),
            key_id: launch.caller.key_id.clone(),
            module_sha256: module.sha256.clone(),
            day: utc_day(),
            started_at: now_ms(),
            end: None,
        };
        let begun = state.usage.enqueue(row.clone()).await?;
        let (admitted_tx, admitted) = oneshot::channel();
        let job = Job {
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
        };
        let (out_tx, out_rx) = mpsc::channel(16);
        let (report_tx, report_rx) = oneshot::channel();
        let tier_name = launch.caller.tier.clone();
        let mut allowance = launch.allowance;
        let refused = launch.stdin.refused;
        let span = tracing::Span::current();
        tokio::spawn(tracing::Instrument::instrument(
            async move {
                state.metrics.running.inc();
                let cancel = state.hard_stop.child_token();
                // Charged once on record; a run whose admission row cannot
                // be written is stopped and costs the caller nothing.
                let on_record = async {
                    let committed = begun.wait().await;
                    match &committed {
                        Ok(()) => {
                            allowance.confirm();
                            state.mark_seen(&row.user_id, &row.module_sha256);
                        }
                        Err(_) => {
                            allowance.give_back();
                            cancel.cancel();
                        }
                    }
                    let _ = admitted_tx
                        .send(committed.as_ref().map(|_| ()).map_err(|e| format!("{e:#}")));
                    committed
                };
                let execution = state.sandbox.execute(job, out_tx, cancel.clone());
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
                let ((report, refusal), on_record) = tokio::join!(run, on_record);
                state.metrics.running.dec();
                state
                    .metrics
                    .executions
                    .with_label_values(&[report.outcome.as_str(), &tier_name])
                    .inc();
                state
                    .metrics
                    .duration_seconds
                    .with_label_values(&[&tier_name])
                    .observe(report.duration.as_secs_f64());
                state
                    .metrics
                    .fuel
                    .with_label_values(&[&tier_name])
                    .observe(report.fuel_consumed as f64);
                tracing::debug!(execution_id = %row.id, outcome = report.outcome.as_str(), "execution finished");
                let finish = UsageRow {
                    end: Some((now_ms(), Box::new(report.clone()))),
                    ..row
                };
                // Queued behind the admission row, often in the same commit.
                let recorded = match (on_record, state.usage.enqueue(finish).await) {
                    (Ok(()), Ok(finished)) => finished.wait().await,
                    (Err(error), _) | (_, Err(error)) => Err(error),
                };
                let answer = match (recorded, refusal) {
                    (Err(error), _) => Err(ApiError::from(error)),
                    (Ok(()), Some(refusal)) => Err(refusal),
                    (Ok(()), None) => Ok(report),
                };
                // A client that saw `finished` may start its next run at
                // once: its slots are free by then.
                drop(permit);
                drop(allowance);
                let _ = report_tx.send(answer);
            },
            span,
        ));
        Ok(Started {
            execution_id,
            admitted,
            output: out_rx,
            report: report_rx,
        })
    }

    /// `started` (the admission row is durable by then), output as
    /// produced, then `finished` once the final row is.
    fn event_stream(
        resolved: &Resolved,
        limits: EffectiveLimits,
        started: Started,
        expected: Option<Bytes>,
    ) -> EventStream {
        let first = v1::ExecuteEvent {
            event: Some(Event::Started(v1::Started {
                module_sha256: resolved.module.sha256.clone(),
                cache_hit: resolved.cache_hit,
                limits: Some(limits.to_proto()),
                execution_id: started.execution_id,
            })),
        };
        let tracker = Arc::new(Mutex::new(VerdictTracker::new(expected)));
        let feed = tracker.clone();
        let output = ReceiverStream::new(started.output).map(move |chunk| {
            let event = match chunk.stream {
                OutStream::Stdout => {
                    feed.lock().feed(&chunk.data);
                    Event::Stdout(chunk.data)
                }
                OutStream::Stderr => Event::Stderr(chunk.data),
            };
            Ok(v1::ExecuteEvent { event: Some(event) })
        });
        let last = stream::once(async move {
            match started.report.await {
                Ok(Ok(report)) => Ok(v1::ExecuteEvent {
                    event: Some(Event::Finished(finished_proto(
                        &report,
                        tracker.lock().verdict(),
                    ))),
                }),
                Ok(Err(error)) => Err(Status::from(error)),
                Err(_) => Err(Status::internal("the execution ended unexpectedly")),
            }
        });
        Box::pin(stream::once(async { Ok(first) }).chain(output).chain(last))
    }

    /// Admission and the event stream: what `Run` and `Execute` share once
    /// their request is validated, allowed and its module resolved.
    #[allow(clippy::too_many_arguments)]
    async fn stream_execution(
        &self,
        caller: Caller,
        allowance: Allowance,
        resolved: Resolved,
        cmd: CommandLine,
        limits: EffectiveLimits,
        seed: u64,
        stdin: ClientStdin,
        expected: Option<Bytes>,
    ) -> Result<Response<EventStream>, Status> {
        let headers = allowance.headers;
        let mut started = self
            .start(Launch {
                caller,
                resolved: resolved.clone(),
                cmd,
                limits,
                seed,
                stdin,
                allowance,
            })
            .await?;
        // The response (its headers and `started`) waits for the admission
        // row: an execution a client saw begin is on record even if the
        // server dies. A fast run's final row usually shares that commit, so
        // headers, events and trailers then leave in one write.
        let admitted = match (&mut started.admitted).await {
            Ok(admitted) => admitted,
            Err(_) => Err("the execution ended before its admission was recorded".into()),
        };
        if let Err(error) = admitted {
            return Err(ApiError::Internal(anyhow::anyhow!(error)).into());
        }
        Ok(with_headers(
            Self::event_stream(&resolved, limits, started, expected),
            headers,
        ))
    }

    /// The module to run (compiled or cached). Runs after the rate limit,
    /// so a refused caller costs no compilation; a module that is not found
    /// or invalid drops the allowance, which gives it back.
    async fn resolve_allowed(
        &self,
        caller: &Caller,
        source: Source,
        keep: bool,
        allowance: Allowance,
    ) -> Result<(Resolved, Allowance), Status> {
        let resolved = match source {
            Source::Bytes(bytes) => {
                self.state.metrics.uploaded_bytes.inc_by(bytes.len() as u64);
                self.state.module_from_bytes(caller, bytes, keep).await
            }
            Source::Sha256(sha) => self.state.module_by_sha(caller, &sha).await,
        }?;
        Ok((resolved, allowance))
    }
}

enum Source {
    Bytes(Bytes),
    Sha256(String),
}

fn with_headers<T>(body: T, headers: Option<RateHeaders>) -> Response<T> {
    let mut response = Response::new(body);
    if let Some(headers) = headers {
        insert_rate_headers(response.metadata_mut(), &headers);
    }
    response
}

#[tonic::async_trait]
impl ExecutionService for ExecutionApi {
    type ExecuteStream = EventStream;
    type RunStream = EventStream;
    type RunBatchStream = BatchStream;

    async fn run(&self, request: Request<v1::RunRequest>) -> Result<Response<EventStream>, Status> {
        let caller = self.state.caller(&request).await?;
        let tier = self.state.tier(&caller)?.clone();
        let req = request.into_inner();
        let limits = EffectiveLimits::resolve(req.limits.as_ref(), &tier, &caller.tier)?;
        check_size(
            "stdin",
            req.stdin.len() as u64,
            tier.max_stdin_bytes,
            &caller.tier,
        )?;
        let cmd = CommandLine::new(req.program_name, req.args, req.env)?.within(
            &tier,
            &caller.tier,
            "args",
        )?;
        let source = match req.source {
            Some(v1::run_request::Source::Module(bytes)) => {
                check_size(
                    "module",
                    bytes.len() as u64,
                    tier.max_module_bytes,
                    &caller.tier,
                )?;
                Source::Bytes(Bytes::from(bytes))
            }
            Some(v1::run_request::Source::ModuleSha256(sha)) => {
                Source::Sha256(sha256_field("module_sha256", &sha)?)
            }
            None => {
                return Err(
                    ApiError::invalid("source", "give `module` bytes or a `module_sha256`").into(),
                )
            }
        };
        let allowance = self.allow(&caller, &tier, false).await?;
        let (resolved, allowance) = self
            .resolve_allowed(&caller, source, req.keep_module, allowance)
            .await?;
        let stdin = ClientStdin::bytes(req.stdin);
        let expected = req.expected_stdout.map(Bytes::from);
        self.stream_execution(
            caller,
            allowance,
            resolved,
            cmd,
            limits,
            req.random_seed,
            stdin,
            expected,
        )
        .await
    }

    async fn execute(
        &self,
        request: Request<Streaming<v1::ExecuteRequest>>,
    ) -> Result<Response<EventStream>, Status> {
        let caller = self.state.caller(&request).await?;
        let tier = self.state.tier(&caller)?.clone();
        let mut incoming = request.into_inner();
        let start = match incoming.message().await? {
            Some(v1::ExecuteRequest {
                msg: Some(Msg::Start(start)),
            }) => start,
            _ => {
                return Err(ApiError::invalid("start", "the first message must be `start`").into())
            }
        };
        let limits = EffectiveLimits::resolve(start.limits.as_ref(), &tier, &caller.tier)?;
        check_size(
            "stdin",
            start.stdin.len() as u64,
            tier.max_stdin_bytes,
            &caller.tier,
        )?;
        let cmd = CommandLine::new(start.program_name, start.args, start.env)?.within(
            &tier,
            &caller.tier,
            "args",
        )?;
        if let Some(v1::execute_start::Source::ModuleSize(size)) = start.source {
            check_size("module_size", size, tier.max_module_bytes, &caller.tier)?;
        }
        let allowance = self.allow(&caller, &tier, false).await?;
        // An incomplete module drops (and so gives back) the allowance.
        let source = receive_source(start.source, &mut incoming).await?;
        let (resolved, allowance) = self
            .resolve_allowed(&caller, source, start.keep_module, allowance)
            .await?;
        let stdin = if start.stream_stdin {
            ClientStdin::streamed(incoming, tier.max_stdin_bytes, caller.tier.clone())
        } else {
            ClientStdin::bytes(start.stdin)
        };
        let expected = start.expected_stdout.map(Bytes::from);
        self.stream_execution(
            caller,
            allowance,
            resolved,
            cmd,
            limits,
            start.random_seed,
            stdin,
            expected,
        )
        .await
    }
    async fn run_batch(
        &self,
        request: Request<v1::RunBatchRequest>,
    ) -> Result<Response<BatchStream>, Status> {
        let caller = self.state.caller(&request).await?;
        let tier = self.state.tier(&caller)?.clone();
        let req = request.into_inner();
        let limits = EffectiveLimits::resolve(req.limits.as_ref(), &tier, &caller.tier)?;
        if req.cases.is_empty() {
            return Err(ApiError::invalid("cases", "give at least one case").into());
        }
        let mut commands = Vec::with_capacity(req.cases.len());
        for (i, case) in req.cases.iter().enumerate() {
            check_size(
                &format!("cases[{i}].stdin"),
                case.stdin.len() as u64,
                tier.max_stdin_bytes,
                &caller.tier,
            )?;
            commands.push(
                CommandLine::new(req.program_name.clone(), case.args.clone(), req.env.clone())?
                    .within(&tier, &caller.tier, &format!("cases[{i}].args"))?,
            );
        }
        let source = match req.source {
            Some(v1::run_batch_request::Source::Module(bytes)) => {
                check_size(
                    "module",
                    bytes.len() as u64,
                    tier.max_module_bytes,
                    &caller.tier,
                )?;
                Source::Bytes(Bytes::from(bytes))
            }
            Some(v1::run_batch_request::Source::ModuleSha256(sha)) => {
                Source::Sha256(sha256_field("module_sha256", &sha)?)
            }
            None => {
                return Err(
                    ApiError::invalid("source", "give `module` bytes or a `module_sha256`").into(),
                )
            }
        };
        // The first case is admitted before answering, so limits show as an error status.
        let first_allowance = self.allow(&caller, &tier, true).await?;
        let (resolved, first_allowance) = self
            .resolve_allowed(&caller, source, false, first_allowance)
            .await?;
        let resolved = Arc::new(resolved);
        let headers = first_allowance.headers;
        let (tx, rx) = mpsc::channel::<Result<v1::BatchEvent, Status>>(16);
        let api = ExecutionApi {
            state: self.state.clone(),
        };
        let concurrency = Arc::new(tokio::sync::Semaphore::new(
            tier.max_concurrent.max(1) as usize
        ));
        let seed = req.random_seed;
        tokio::spawn(async move {
            let mut first = Some(first_allowance);
            let mut running = futures::stream::FuturesUnordered::new();
            for (index, (case, cmd)) in req.cases.into_iter().zip(commands).enumerate() {
                let slot = concurrency
                    .clone()
                    .acquire_owned()
                    .await
                    .expect("semaphore is open");
                let allowance = match first.take() {
                    Some(a) => a,
                    None => match api.allow(&caller, &tier, true).await {
                        Ok(a) => a,
                        Err(error) => {
                            let _ = tx.send(Err(error.into())).await;
                            break;
                        }
                    },
                };
                let launch = Launch {
                    caller: caller.clone(),
                    resolved: Resolved::clone(&resolved),
                    cmd,
                    limits,
                    seed,
                    stdin: ClientStdin::bytes(case.stdin),
                    allowance,
                };
                let started = api.start(launch).await;
                let tx = tx.clone();
                let sha = resolved.module.sha256.clone();
                running.push(tokio::spawn(async move {
                    let _slot = slot;
                    let event = match started {
                        Ok(started) => {
                            collect_case(
                                index as u32,
                                case.name,
                                case.expected_stdout,
                                sha,
                                started,
                            )
                            .await
                        }
                        Err(error) => Err(Status::from(error)),
                    };
                    let _ = tx.send(event).await;
                }));
            }
            while running.next().await.is_some() {}
        });
        Ok(with_headers(Box::pin(ReceiverStream::new(rx)), headers))
    }
}

async fn collect_case(
    case_index: u32,
    name: String,
    expected: Option<Vec<u8>>,
    module_sha256: String,
    mut started: Started,
) -> Result<v1::BatchEvent, Status> {
    let (mut stdout, mut stderr) = (Vec::new(), Vec::new());
    while let Some(chunk) = started.output.recv().await {
        match chunk.stream {
            OutStream::Stdout => stdout.extend_from_slice(&chunk.data),
            OutStream::Stderr => stderr.extend_from_slice(&chunk.data),
        }
    }
    let report = match started.report.await {
        Ok(Ok(report)) => report,
        Ok(Err(error)) => return Err(error.into()),
        Err(_) => return Err(Status::internal("the execution ended unexpectedly")),
    };
    let mut tracker = VerdictTracker::new(expected.map(Bytes::from));
    tracker.feed(&stdout);
    Ok(v1::BatchEvent {
        case_index,
        finished: Some(finished_proto(&report, tracker.verdict())),
        stdout: stdout.into(),
        stderr: stderr.into(),
        name,
        execution_id: started.execution_id,
        module_sha256,
    })
}

/// Reads the module announced by `start` (inline chunks) or names it.
async fn receive_source(
    source: Option<v1::execute_start::Source>,
    incoming: &mut Streaming<v1::ExecuteRequest>,
) -> Result<Source, Status> {
    match source {
        Some(v1::execute_start::Source::ModuleSize(size)) => {
            // Grows with what arrived: the announced size may never come.
            let mut module = BytesMut::new();
            while (module.len() as u64) < size {
                match incoming.message().await? {
                    Some(v1::ExecuteRequest {
                        msg: Some(Msg::ModuleChunk(chunk)),
                    }) if module.len() as u64 + chunk.len() as u64 <= size => {
                        module.extend_from_slice(&chunk);
                    }
                    _ => {
                        return Err(ApiError::invalid(
                            "module_chunk",
                            format!(
                                "expected exactly {size} module bytes in module_chunk messages after `start`"
                            ),
                        )
                        .into())
                    }
                }
            }
            Ok(Source::Bytes(module.freeze()))
        }
        Some(v1::execute_start::Source::ModuleSha256(sha)) => {
            Ok(Source::Sha256(sha256_field("module_sha256", &sha)?))
        }
        None => Err(ApiError::invalid("source", "give `module_size` or a `module_sha256`").into()),
    }
}

/// Feeds the client's `stdin_chunk`s to the guest until `stdin_eof` or the
/// end of the client's stream (both are end of file for the guest). Stdin
/// past the tier's size, or any other message, is the client's error: the
/// run stops and the call ends with it.
async fn forward_stdin(
    mut incoming: Streaming<v1::ExecuteRequest>,
    tx: &mpsc::Sender<Bytes>,
    max: u64,
    tier_name: &str,
) -> Result<(), ApiError> {
    let mut total = 0u64;
    while let Ok(Some(message)) = incoming.message().await {
        match message.msg {
            Some(Msg::StdinChunk(chunk)) => {
                total += chunk.len() as u64;
                check_size("stdin", total, max, tier_name)?;
                if tx.send(Bytes::from(chunk)).await.is_err() {
                    // The guest has ended; what it did not read is not an error.
                    return Ok(());
                }
            }
            Some(Msg::StdinEof(_)) => return Ok(()),
            other => {
                let got = match other {
                    Some(Msg::Start(_)) => "a second `start`",
                    Some(Msg::ModuleChunk(_)) => "a `module_chunk` after the whole module",
                    _ => "an empty message",
                };
                return Err(ApiError::invalid(
                    "msg",
                    format!("once the run has started only `stdin_chunk` and `stdin_eof` may follow; got {got}"),
                ));
            }
        }
    }
    Ok(())
}
