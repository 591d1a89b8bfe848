//! A receipt for one execution, when the request asked for one: the
//! inputs are captured before the run, stdout and stderr (and streamed
//! stdin) are hashed as they pass, and at the end the statement is built
//! and signed. The lifecycle calls [`Receipting::start`] and
//! [`Receipting::finish`]; nothing else of it knows about receipts.

use std::sync::Arc;

use bytes::Bytes;
use sha2::{Digest, Sha256};
use tokio::{sync::mpsc, task::JoinHandle};
use wasmwiz_proto::v1;

use super::{
    digest::{OutputDigest, OutputDigests},
    inputs::Inputs,
};
use crate::{
    api::{errors::ApiError, execution::outcome_proto, AppState},
    engine::{Job, OutputChunk, Report, StdinSource},
};

/// Version of the `ReceiptStatement` layout the server signs.
pub const STATEMENT_VERSION: u32 = 1;

/// An execution being receipted.
pub struct Receipting {
    inputs: Inputs,
    output: JoinHandle<(OutputDigest, Option<Vec<OutputChunk>>)>,
    stdin: Option<JoinHandle<([u8; 32], u64)>>,
}

impl Receipting {
    /// Captures `job`'s inputs and puts taps on its output (towards `out`)
    /// and its streamed stdin; returns the sender the sandbox writes to.
    /// With `record`, the output chunks are also kept, up to that many
    /// bytes (for the result cache).
    pub fn start(
        state: &AppState,
        job: &mut Job,
        out: mpsc::Sender<OutputChunk>,
        record: Option<u64>,
    ) -> (Self, mpsc::Sender<OutputChunk>) {
        let inputs = Inputs::of(job, &state.config.engine_identity);
        let stdin = match std::mem::replace(&mut job.stdin, StdinSource::Bytes(Bytes::new())) {
            StdinSource::Stream(from_client) => {
                let (to_guest, guest) = mpsc::channel(8);
                job.stdin = StdinSource::Stream(guest);
                Some(tokio::spawn(tap_stdin(from_client, to_guest)))
            }
            StdinSource::Interactive {
                feed,
                idle,
                session,
                permit,
            } => {
                let (to_guest, guest) = mpsc::channel(8);
                job.stdin = StdinSource::Interactive {
                    feed: guest,
                    idle,
                    session,
                    permit,
                };
                Some(tokio::spawn(tap_stdin(feed, to_guest)))
            }
            whole => {
                job.stdin = whole;
                None
            }
        };
        let (tapped, from_sandbox) = mpsc::channel(16);
        let output = tokio::spawn(tap_output(from_sandbox, out, record));
        (
            Self {
                inputs,
                output,
                stdin,
            },
            tapped,
        )
    }

    /// [`Receipting::start`] when `wanted`; else `out` untouched.
    pub fn start_if(
        wanted: bool,
        state: &AppState,
        job: &mut Job,
        out: mpsc::Sender<OutputChunk>,
        record: Option<u64>,
    ) -> (Option<Self>, mpsc::Sender<OutputChunk>) {
        if !wanted {
            return (None, out);
        }
        let (receipting, out) = Self::start(state, job, out, record);
        (Some(receipting), out)
    }

    /// The signed receipt of the run that ended with `report` (hashing
    /// collected files, the inputs and signing run off the async runtime),
    /// and the recorded output when it was recorded and fit.
    pub async fn finish(
        self,
        state: &Arc<AppState>,
        report: &Report,
        execution_id: &str,
        finished_at_ms: i64,
    ) -> Result<(v1::Receipt, Option<Vec<OutputChunk>>), ApiError> {
        let internal = |e: tokio::task::JoinError| ApiError::Internal(e.into());
        let mut inputs = self.inputs;
        if let Some(stdin) = self.stdin {
            let (sha256, len) = stdin.await.map_err(internal)?;
            inputs.set_streamed_stdin(sha256, len);
        }
        let (output, recorded) = self.output.await.map_err(internal)?;
        let files = report.files.clone();
        let mut statement = statement_of(report, execution_id, finished_at_ms);
        let state = state.clone();
        let receipt = tokio::task::spawn_blocking(move || {
            let digests = output.finish(&files);
            statement.inputs_sha256 = inputs.sha256();
            statement.module_sha256 = inputs.module_sha256.clone();
            statement.engine = Some(inputs.engine.to_proto());
            fill_digests(&mut statement, digests);
            crate::receipts::sign(&state.receipt_keys, &statement)
        })
        .await
        .map_err(internal)?;
        Ok((receipt, recorded))
    }
}

/// The statement's facts from the report (digests come separately).
fn statement_of(report: &Report, execution_id: &str, finished_at_ms: i64) -> v1::ReceiptStatement {
    v1::ReceiptStatement {
        version: STATEMENT_VERSION,
        outcome: outcome_proto(report.outcome) as i32,
        exit_code: report.exit_code,
        fuel_consumed: report.fuel_consumed,
        execution_id: execution_id.to_string(),
        finished_at: Some(prost_types::Timestamp {
            seconds: finished_at_ms.div_euclid(1000),
            nanos: (finished_at_ms.rem_euclid(1000) * 1_000_000) as i32,
        }),
        output_truncated: report.output_truncated,
        trap_kind: report.trap_kind.clone(),
        ..Default::default()
    }
}

fn fill_digests(statement: &mut v1::ReceiptStatement, digests: OutputDigests) {
    statement.stdout_sha256 = digests.stdout_sha256;
    statement.stderr_sha256 = digests.stderr_sha256;
    statement.stdout_bytes = digests.stdout_bytes;
    statement.stderr_bytes = digests.stderr_bytes;
    statement.files = digests
        .files
        .into_iter()
        .map(|file| v1::FileDigest {
            path: file.path,
            sha256: file.sha256,
            size: file.size,
        })
        .collect();
}

/// Hashes each chunk the sandbox sends, then passes it on. When the
/// client's side goes away the tap lets go too, so the sandbox sees the
/// disconnect as it would without it (that run's receipt is never sent).
async fn tap_output(
    mut from_sandbox: mpsc::Receiver<OutputChunk>,
    to_client: mpsc::Sender<OutputChunk>,
    record: Option<u64>,
) -> (OutputDigest, Option<Vec<OutputChunk>>) {
    let mut digest = OutputDigest::default();
    let mut recorded = record.map(|_| Vec::new());
    let mut recorded_bytes = 0u64;
    loop {
        let chunk = tokio::select! {
            biased;
            chunk = from_sandbox.recv() => chunk,
            () = to_client.closed() => return (digest, None),
        };
        let Some(chunk) = chunk else {
            return (digest, recorded);
        };
        digest.feed(chunk.stream, &chunk.data);
        if let (Some(kept), Some(max)) = (recorded.as_mut(), record) {
            recorded_bytes += chunk.data.len() as u64;
            if recorded_bytes > max {
                recorded = None;
            } else {
                kept.push(chunk.clone());
            }
        }
        if to_client.send(chunk).await.is_err() {
            return (digest, None);
        }
    }
}

/// Hashes streamed stdin on its way to the guest: what the server passed
/// on before the guest ended (or the client ended its stdin).
async fn tap_stdin(
    mut from_client: mpsc::Receiver<Bytes>,
    to_guest: mpsc::Sender<Bytes>,
) -> ([u8; 32], u64) {
    let (mut hasher, mut len) = (Sha256::new(), 0u64);
    loop {
        let chunk = tokio::select! {
            biased;
            chunk = from_client.recv() => chunk,
            () = to_guest.closed() => break,
        };
        let Some(chunk) = chunk else { break };
        if to_guest.send(chunk.clone()).await.is_err() {
            break;
        }
        hasher.update(&chunk);
        len += chunk.len() as u64;
    }
    (hasher.finalize().into(), len)
}
