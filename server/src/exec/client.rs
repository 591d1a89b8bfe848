//! What an `Execute` client streams after `start`: the module's chunks,
//! then (when it asked to stream stdin) the guest's stdin.

use bytes::{Bytes, BytesMut};
use tokio::sync::{mpsc, oneshot};
use tonic::{Status, Streaming};
use wasmwiz_proto::v1::{self, execute_request::Msg};

use crate::{api::convert::check_size, api::errors::ApiError, engine::StdinSource};

/// The client's request stream after its `start` message.
pub type ClientStream = Streaming<v1::ExecuteRequest>;

/// Reads exactly `size` module bytes from `module_chunk` messages.
pub async fn receive_module(size: u64, incoming: &mut ClientStream) -> Result<Bytes, Status> {
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
    Ok(module.freeze())
}

/// The guest's stdin as the client gives it. A streamed stdin comes with the
/// error that stops the run if the client breaks the rules mid-stream (too
/// much stdin, or a message that is not stdin).
pub struct ClientStdin {
    pub source: StdinSource,
    pub refused: Option<oneshot::Receiver<ApiError>>,
}

impl ClientStdin {
    pub fn bytes(bytes: Bytes) -> Self {
        Self {
            source: StdinSource::Bytes(bytes),
            refused: None,
        }
    }

    /// Forwards the rest of `incoming` to the guest, up to `max` bytes.
    pub fn streamed(incoming: ClientStream, max: u64, tier_name: String) -> Self {
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

/// Feeds the client's `stdin_chunk`s to the guest until `stdin_eof` or the
/// end of the client's stream (both are end of file for the guest). Stdin
/// past the tier's size, or any other message, is the client's error: the
/// run stops and the call ends with it.
async fn forward_stdin(
    mut incoming: ClientStream,
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
