//! What an `Execute` client streams after `start`: the module's chunks,
//! then (when `start.fs` is set) filesystem entries, then (when it asked to
//! stream stdin) the guest's stdin.

use bytes::{Bytes, BytesMut};
use tokio::sync::{mpsc, oneshot};
use tonic::{Status, Streaming};
use wasmwiz_proto::v1::{self, execute_request::Msg};

use super::{
    fs_input::{FsRequest, StreamedTree},
    sessions::StdinFeed,
};
use crate::{
    api::{convert::check_size, errors::ApiError, upload::next_within},
    engine::StdinSource,
};

/// The client's request stream after its `start` message.
pub type ClientStream = Streaming<v1::ExecuteRequest>;

/// Reads exactly `size` module bytes from `module_chunk` messages, each
/// within `idle` of the one before (as uploads and `fs_chunk`s are).
pub async fn receive_module(
    size: u64,
    incoming: &mut ClientStream,
    idle: std::time::Duration,
) -> Result<Bytes, Status> {
    // Grows with what arrived: the announced size may never come.
    let mut module = BytesMut::new();
    while (module.len() as u64) < size {
        match next_within(incoming, idle).await? {
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

/// Reads `fs_chunk`s into `tree` until `fs_eof`, the first stdin message
/// (returned, for the stdin that follows) or the end of the client's
/// stream. A stream quiet for `idle` is abandoned, as uploads are; limits
/// are checked as each chunk arrives.
pub async fn receive_fs(
    tree: FsRequest,
    incoming: &mut ClientStream,
    idle: std::time::Duration,
    tier_name: &str,
) -> Result<(FsRequest, Option<Msg>), Status> {
    let mut streamed = StreamedTree::new(tree, tier_name);
    loop {
        let message = next_within(incoming, idle).await?;
        match message.and_then(|m| m.msg) {
            Some(Msg::FsChunk(chunk)) => {
                if let Err(refusal) = streamed.push(chunk) {
                    drain_briefly(incoming).await;
                    return Err(refusal.into());
                }
            }
            Some(Msg::FsEof(_)) | None => return Ok((streamed.finish(), None)),
            Some(stdin @ (Msg::StdinChunk(_) | Msg::StdinEof(_))) => {
                return Ok((streamed.finish(), Some(stdin)))
            }
            Some(Msg::Start(_)) => {
                return Err(ApiError::invalid("msg", "a second `start` is not allowed").into())
            }
            Some(Msg::ModuleChunk(_)) => {
                return Err(ApiError::invalid(
                    "module_chunk",
                    "a `module_chunk` after the whole module; send `fs_chunk`s after the module",
                )
                .into())
            }
        }
    }
}

/// At most this much of the client's stream is read after a refusal...
const DRAIN_BYTES: usize = 2 * 1024 * 1024;
/// ...within this long.
const DRAIN_TIME: std::time::Duration = std::time::Duration::from_millis(500);

/// After refusing entries mid-stream, reads (and drops) what the client is
/// still sending, bounded by [`DRAIN_BYTES`] and [`DRAIN_TIME`], so a client
/// about to finish its stream gets the refusal after its half-close instead
/// of a reset stream, which gRPC's C core can report as INTERNAL before it
/// reads the status.
async fn drain_briefly(incoming: &mut ClientStream) {
    let deadline = tokio::time::Instant::now() + DRAIN_TIME;
    let mut drained = 0;
    while drained < DRAIN_BYTES {
        match tokio::time::timeout_at(deadline, incoming.message()).await {
            Ok(Ok(Some(message))) => drained += prost::Message::encoded_len(&message),
            _ => return,
        }
    }
}

/// The refusal of `fs_chunk`/`fs_eof` where no entries are expected.
fn misplaced_fs(fs_given: bool) -> ApiError {
    ApiError::invalid(
        "fs_chunk",
        if fs_given {
            "`fs_chunk` and `fs_eof` come right after the module, before any stdin"
        } else {
            "`fs_chunk` needs a filesystem: set `start.fs` (even empty) to send entries"
        },
    )
}

/// The guest's stdin as the client gives it. A streamed stdin comes with the
/// error that stops the run if the client breaks the rules mid-stream (too
/// much stdin, or a message that is not stdin).
pub struct ClientStdin {
    pub source: StdinSource,
    pub refused: Option<oneshot::Receiver<ApiError>>,
    /// An interactive run's feed, registered under its execution id for
    /// `WriteStdin` once it has one.
    pub feed: Option<StdinFeed>,
}

impl ClientStdin {
    pub fn bytes(bytes: Bytes) -> Self {
        Self {
            source: StdinSource::Bytes(bytes),
            refused: None,
            feed: None,
        }
    }

    /// Stdin given whole in `start`, while the client's next message is
    /// watched for: stdin messages are not expected (refused when one ended
    /// the filesystem entries), and a misplaced `fs_chunk` stops the run.
    /// Other messages are ignored, as they always were.
    pub fn bytes_watching(
        bytes: Bytes,
        mut incoming: ClientStream,
        pending: Option<Msg>,
        fs_given: bool,
    ) -> Result<Self, ApiError> {
        if pending.is_some() {
            return Err(ApiError::invalid(
                "msg",
                "stdin messages need `start.stream_stdin`; without it stdin is `start.stdin`",
            ));
        }
        let (mut refuse, refused) = oneshot::channel();
        tokio::spawn(async move {
            // The first message decides: a misplaced `fs_chunk` is refused;
            // anything else ends the watch and the stream is dropped unread,
            // as it always was, so a client cannot make the server read
            // messages it never uses.
            let watch = async {
                match incoming.message().await {
                    Ok(Some(v1::ExecuteRequest {
                        msg: Some(Msg::FsChunk(_) | Msg::FsEof(_)),
                    })) => Some(misplaced_fs(fs_given)),
                    _ => None,
                }
            };
            tokio::select! {
                // The run ended: nothing more to watch for.
                () = refuse.closed() => {}
                refusal = watch => {
                    if let Some(error) = refusal {
                        let _ = refuse.send(error);
                    }
                }
            }
        });
        Ok(Self {
            source: StdinSource::Bytes(bytes),
            refused: Some(refused),
            feed: None,
        })
    }

    /// Forwards the rest of `incoming` to the guest, up to `max` bytes,
    /// starting with `first` when the filesystem entries ended with it.
    /// `interactive` (idle, session) pauses the timeout while the guest waits.
    pub fn streamed(
        incoming: ClientStream,
        max: u64,
        tier_name: String,
        first: Option<Msg>,
        fs_given: bool,
        interactive: Option<(std::time::Duration, std::time::Duration)>,
    ) -> Self {
        let (chunks, source) = mpsc::channel::<Bytes>(8);
        let (refuse, refused) = oneshot::channel();
        tokio::spawn(async move {
            let rules = StdinRules {
                max,
                tier_name: &tier_name,
                fs_given,
            };
            if let Err(error) = forward_stdin(incoming, first, &chunks, rules).await {
                let _ = refuse.send(error);
                // No end of file for a refused stream: the guest must not run
                // on to success. It waits for stdin until the refusal stops
                // it, and the feed is dropped only after that.
                chunks.closed().await;
            }
        });
        let source = match interactive {
            None => StdinSource::Stream(source),
            Some((idle, session)) => StdinSource::Interactive {
                feed: source,
                idle,
                session,
                permit: None,
            },
        };
        Self {
            source,
            refused: Some(refused),
            feed: None,
        }
    }

    /// Stdin of an interactive `Run`: `initial` first, then what
    /// `WriteStdin` sends through the returned feed, until `eof`.
    pub fn interactive(initial: Bytes, settings: InteractiveStdin) -> Self {
        let (tx, source) = mpsc::channel::<Bytes>(8);
        let already = initial.len() as u64;
        if !initial.is_empty() {
            tx.try_send(initial)
                .expect("a new channel has room for the first chunk");
        }
        let (refuse, refused) = oneshot::channel();
        Self {
            source: StdinSource::Interactive {
                feed: source,
                idle: settings.idle,
                session: settings.session,
                permit: None,
            },
            refused: Some(refused),
            feed: Some(StdinFeed::new(
                tx,
                already,
                settings.max,
                settings.tier_name,
                refuse,
            )),
        }
    }
}

/// What an interactive run's stdin is held to.
pub struct InteractiveStdin {
    pub max: u64,
    pub tier_name: String,
    pub idle: std::time::Duration,
    pub session: std::time::Duration,
}

/// What streamed stdin is held to.
struct StdinRules<'a> {
    max: u64,
    tier_name: &'a str,
    /// `start.fs` was set (so a late `fs_chunk` is misplaced, not unasked).
    fs_given: bool,
}

/// Feeds the client's `stdin_chunk`s to the guest until `stdin_eof` or the
/// end of the client's stream (both are end of file for the guest). Stdin
/// past the tier's size, or any other message, is the client's error: the
/// run stops and the call ends with it.
async fn forward_stdin(
    mut incoming: ClientStream,
    first: Option<Msg>,
    tx: &mpsc::Sender<Bytes>,
    rules: StdinRules<'_>,
) -> Result<(), ApiError> {
    let mut total = 0u64;
    let mut first = first.map(|msg| v1::ExecuteRequest { msg: Some(msg) });
    loop {
        let message = match first.take() {
            Some(message) => message,
            None => match incoming.message().await {
                Ok(Some(message)) => message,
                _ => break,
            },
        };
        match message.msg {
            Some(Msg::StdinChunk(chunk)) => {
                total += chunk.len() as u64;
                check_size("stdin", total, rules.max, rules.tier_name)?;
                if tx.send(Bytes::from(chunk)).await.is_err() {
                    // The guest has ended; what it did not read is not an error.
                    return Ok(());
                }
            }
            Some(Msg::StdinEof(_)) => return Ok(()),
            Some(Msg::FsChunk(_) | Msg::FsEof(_)) => return Err(misplaced_fs(rules.fs_given)),
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
