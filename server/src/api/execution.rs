//! ExecutionService: `Run`, `Execute` and `RunBatch` on the wire. Each
//! handler authenticates, converts its request to a spec, hands it to the
//! lifecycle ([`crate::exec`]) and maps what comes back to events.

use std::{pin::Pin, sync::Arc};

use futures::{stream, Stream, StreamExt};
use tonic::{Request, Response, Status, Streaming};
use wasmwiz_proto::v1::{
    self, execute_event::Event, execute_request::Msg, execution_service_server::ExecutionService,
};

use super::{
    errors::{insert_rate_headers, ApiError},
    AppState,
};
use crate::{
    auth::Caller,
    engine::{Outcome, Report},
    exec::sessions::MAX_WRITE_BYTES,
    exec::{
        self,
        fs_output::{pieces, FilePiece},
        BatchSpec, CaseResult, ExecEvent, Execution, Finished, NamedTier, RunSpec,
    },
    limits::RateHeaders,
};

pub type EventStream = Pin<Box<dyn Stream<Item = Result<v1::ExecuteEvent, Status>> + Send>>;
pub type BatchStream = Pin<Box<dyn Stream<Item = Result<v1::BatchEvent, Status>> + Send>>;

/// The gRPC face of executions.
pub struct ExecutionApi {
    pub state: Arc<AppState>,
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

fn finished_proto(
    Finished {
        report,
        verdict,
        receipt,
    }: &Finished,
) -> v1::Finished {
    let report: &Report = report;
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
        verdict: *verdict as i32,
        receipt: receipt.clone(),
    }
}

pub(crate) fn event_proto(event: ExecEvent) -> v1::ExecuteEvent {
    let event = match event {
        ExecEvent::Stdout(data) => Event::Stdout(data),
        ExecEvent::Stderr(data) => Event::Stderr(data),
        ExecEvent::File(piece) => Event::File(file_proto(piece)),
        ExecEvent::Finished(finished) => Event::Finished(finished_proto(&finished)),
    };
    v1::ExecuteEvent { event: Some(event) }
}

fn file_proto(piece: FilePiece) -> v1::FsEntry {
    v1::FsEntry {
        path: piece.path,
        kind: Some(v1::fs_entry::Kind::File(piece.data)),
    }
}

/// A case's events: its collected files in pieces (each naming the case),
/// then the event with `finished`.
fn case_proto(mut case: CaseResult) -> Vec<v1::BatchEvent> {
    let files = std::mem::take(&mut case.files);
    let mut events: Vec<v1::BatchEvent> = pieces(files)
        .map(|piece| v1::BatchEvent {
            case_index: case.index,
            name: case.name.clone(),
            execution_id: case.execution_id.clone(),
            file: Some(file_proto(piece)),
            ..Default::default()
        })
        .collect();
    events.push(v1::BatchEvent {
        case_index: case.index,
        finished: Some(finished_proto(&case.finished)),
        stdout: case.stdout,
        stderr: case.stderr,
        name: case.name,
        execution_id: case.execution_id,
        module_sha256: case.module_sha256,
        result_cache_hit: case.cached_from.is_some(),
        cached_from: case.cached_from.unwrap_or_default(),
        file: None,
    });
    events
}

/// `started` (the admission row is durable by then), output as produced,
/// then `finished` once the final row is.
fn respond(execution: Execution) -> Response<EventStream> {
    let started = started_proto(&execution);
    let headers = execution.headers;
    let events = execution.events().map(|event| event.map(event_proto));
    with_headers(
        Box::pin(stream::once(async { Ok(started) }).chain(events)),
        headers,
    )
}

/// The `started` event of an execution.
pub(crate) fn started_proto(execution: &Execution) -> v1::ExecuteEvent {
    v1::ExecuteEvent {
        event: Some(Event::Started(v1::Started {
            module_sha256: execution.module_sha256.clone(),
            cache_hit: execution.cache_hit,
            limits: Some(execution.limits.to_proto()),
            execution_id: execution.execution_id.clone(),
            result_cache_hit: execution.cached_from.is_some(),
            cached_from: execution.cached_from.clone().unwrap_or_default(),
        })),
    }
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
    type WatchExecutionStream = EventStream;

    async fn submit_execution(
        &self,
        request: Request<v1::SubmitExecutionRequest>,
    ) -> Result<Response<v1::SubmitExecutionResponse>, Status> {
        super::jobs::submit(&self.state, request).await
    }

    async fn get_execution(
        &self,
        request: Request<v1::GetExecutionRequest>,
    ) -> Result<Response<v1::GetExecutionResponse>, Status> {
        super::jobs::get(&self.state, request).await
    }

    async fn watch_execution(
        &self,
        request: Request<v1::WatchExecutionRequest>,
    ) -> Result<Response<EventStream>, Status> {
        super::jobs::watch(&self.state, request).await
    }

    async fn cancel_execution(
        &self,
        request: Request<v1::CancelExecutionRequest>,
    ) -> Result<Response<v1::CancelExecutionResponse>, Status> {
        super::jobs::cancel(&self.state, request).await
    }

    async fn submit_batch(
        &self,
        request: Request<v1::SubmitBatchRequest>,
    ) -> Result<Response<v1::SubmitBatchResponse>, Status> {
        super::jobs::submit_batch(&self.state, request).await
    }

    async fn list_executions(
        &self,
        request: Request<v1::ListExecutionsRequest>,
    ) -> Result<Response<v1::ListExecutionsResponse>, Status> {
        super::jobs::list(&self.state, request).await
    }

    async fn get_batch(
        &self,
        request: Request<v1::GetBatchRequest>,
    ) -> Result<Response<v1::GetBatchResponse>, Status> {
        super::jobs::get_batch(&self.state, request).await
    }

    async fn run(&self, request: Request<v1::RunRequest>) -> Result<Response<EventStream>, Status> {
        let caller = self.state.caller(&request).await?;
        let spec = RunSpec::try_from((request.into_inner(), named_tier(&self.state, &caller)?))?;
        Ok(respond(
            exec::lifecycle::start(&self.state, &caller, spec).await?,
        ))
    }

    async fn execute(
        &self,
        request: Request<Streaming<v1::ExecuteRequest>>,
    ) -> Result<Response<EventStream>, Status> {
        let caller = self.state.caller(&request).await?;
        let mut incoming = request.into_inner();
        let start = match incoming.message().await? {
            Some(v1::ExecuteRequest {
                msg: Some(Msg::Start(start)),
            }) => start,
            _ => {
                return Err(ApiError::invalid("start", "the first message must be `start`").into())
            }
        };
        let spec = RunSpec::try_from((start, incoming, named_tier(&self.state, &caller)?))?;
        Ok(respond(
            exec::lifecycle::start(&self.state, &caller, spec).await?,
        ))
    }

    async fn run_batch(
        &self,
        request: Request<v1::RunBatchRequest>,
    ) -> Result<Response<BatchStream>, Status> {
        let caller = self.state.caller(&request).await?;
        let spec = BatchSpec::try_from((request.into_inner(), named_tier(&self.state, &caller)?))?;
        let batch = exec::batch::start(&self.state, &caller, spec).await?;
        let events = batch.results.flat_map(|case| {
            stream::iter(match case {
                Ok(case) => case_proto(case).into_iter().map(Ok).collect(),
                Err(status) => vec![Err(status)],
            })
        });
        Ok(with_headers(Box::pin(events), batch.headers))
    }

    async fn write_stdin(
        &self,
        request: Request<v1::WriteStdinRequest>,
    ) -> Result<Response<v1::WriteStdinResponse>, Status> {
        let caller = self.state.caller(&request).await?;
        // Counted before anything else, so refused writes cost no more.
        self.state
            .sessions
            .writes
            .take(&caller.user_id, self.state.tier(&caller)?)
            .map_err(ApiError::from)?;
        let write = request.into_inner();
        if write.data.len() > MAX_WRITE_BYTES {
            return Err(ApiError::invalid(
                "data",
                format!(
                    "one WriteStdin carries at most {MAX_WRITE_BYTES} bytes (got {}); split it",
                    write.data.len()
                ),
            )
            .into());
        }
        if write.execution_id.is_empty() {
            return Err(ApiError::invalid("execution_id", "give `Started.execution_id`").into());
        }
        exec::sessions::write(
            &self.state,
            &caller.user_id,
            &write.execution_id,
            write.data.into(),
            write.eof,
        )
        .await?;
        Ok(Response::new(v1::WriteStdinResponse {}))
    }
}

/// The caller's tier with its name.
fn named_tier<'a>(state: &'a AppState, caller: &'a Caller) -> Result<NamedTier<'a>, ApiError> {
    Ok(NamedTier {
        name: &caller.tier,
        tier: state.tier(caller)?,
    })
}
