//! A gRPC service behind a guard that runs before tonic decodes anything:
//! authenticated services check the API key from the headers (answering a
//! bad one at once, trailers-only UNAUTHENTICATED, without reading the
//! body) and bound each message by the caller's tier; anonymous services
//! (health, reflection) bound each message to a small cap. Placed inside
//! `GrpcWebLayer`, so grpc-web requests arrive here already translated to
//! gRPC framing and the error is translated back to grpc-web.

use std::{
    convert::Infallible,
    future::Future,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
    time::Duration,
};

use http::{HeaderMap, Request, Response};
use tonic::{body::Body, server::NamedService, Status};
use tower::Service;

use super::{connection::Http1Body, MessageLimit, MessageLimitBody};
use crate::{api::AppState, auth::Caller, config::Config};

/// How a guarded service's requests are checked.
#[derive(Clone)]
pub enum MessagePolicy {
    /// No key needed; every message is bounded by `limit`.
    Anonymous(MessageLimit),
    /// A valid key is needed. Calls that carry modules and stdin
    /// (`carries_modules`) are bounded by the caller's tier; the others
    /// (account, admin) by `message_overhead_bytes`.
    Authenticated {
        state: Arc<AppState>,
        carries_modules: bool,
    },
}

/// `inner` behind a [`MessagePolicy`].
#[derive(Clone)]
pub struct Guarded<S> {
    inner: S,
    policy: MessagePolicy,
}

impl<S> Guarded<S> {
    pub fn new(inner: S, policy: MessagePolicy) -> Self {
        Self { inner, policy }
    }
}

impl<S: NamedService> NamedService for Guarded<S> {
    const NAME: &'static str = S::NAME;
}

/// The key a request presents: `authorization: Bearer …` or `x-api-key`.
pub fn presented_key(headers: &HeaderMap) -> Option<&str> {
    headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .or_else(|| headers.get("x-api-key").and_then(|v| v.to_str().ok()))
        .map(str::trim)
}

/// Most bytes of input files one message may carry inline, whatever the
/// tier's `max_fs_bytes`: larger trees go through `Execute`'s `fs_chunk`s,
/// so no tier's single message (buffered whole before it is decoded) grows
/// by more than this.
pub const INLINE_FS_MAX_BYTES: u64 = 64 << 20;

/// Bytes of input files a `Run` or `RunBatch` of `tier` may carry inline.
pub fn inline_fs_bytes(tier: &crate::config::Tier) -> u64 {
    tier.max_fs_bytes.min(INLINE_FS_MAX_BYTES)
}

/// Bytes one message of `tier` may declare: its module, stdin, args and
/// env, and an inline input tree, in one message (browsers have only unary
/// `Run`/`PutModule`) plus the overhead.
pub fn tier_message_bytes(config: &Config, tier: &crate::config::Tier) -> u64 {
    tier.max_module_bytes
        + tier.max_stdin_bytes
        + tier.max_args_bytes
        + inline_fs_bytes(tier)
        + config.message_overhead_bytes as u64
}

/// The largest message any tier may send: tonic's own decoding limit.
pub fn largest_message_bytes(config: &Config) -> usize {
    config
        .tiers
        .values()
        .map(|tier| tier_message_bytes(config, tier))
        .max()
        .unwrap_or(config.message_overhead_bytes as u64)
        .try_into()
        .unwrap_or(usize::MAX)
}

/// The message limit of unauthenticated calls.
pub fn anonymous_limit(config: &Config) -> MessageLimit {
    MessageLimit {
        max_bytes: config.anonymous_message_bytes as u64,
        timeout: Duration::from_secs(config.message_timeout_secs),
        min_bytes_per_sec: config.message_min_bytes_per_sec,
        whose: "the maximum of an unauthenticated call".into(),
        tier: "".into(),
    }
}

/// `ExecutionService.WriteStdin`: small messages on a service whose
/// others carry modules.
fn is_write_stdin(path: &str) -> bool {
    path == "/wasmwiz.v1.ExecutionService/WriteStdin"
}

/// One `WriteStdin` message: its data (at most
/// [`crate::exec::sessions::MAX_WRITE_BYTES`]) plus the overhead.
fn write_stdin_limit(state: &AppState) -> MessageLimit {
    let config = &state.config;
    MessageLimit {
        max_bytes: crate::exec::sessions::MAX_WRITE_BYTES as u64
            + config.message_overhead_bytes as u64,
        timeout: Duration::from_secs(config.message_timeout_secs),
        min_bytes_per_sec: config.message_min_bytes_per_sec,
        whose: format!(
            "the maximum of one WriteStdin (data {} + {} for other fields; split larger input)",
            crate::exec::sessions::MAX_WRITE_BYTES,
            config.message_overhead_bytes
        )
        .into(),
        tier: "".into(),
    }
}

fn caller_limit(state: &AppState, caller: &Caller, carries_modules: bool) -> MessageLimit {
    let config = &state.config;
    let timeout = Duration::from_secs(config.message_timeout_secs);
    if !carries_modules {
        return MessageLimit {
            max_bytes: config.message_overhead_bytes as u64,
            timeout,
            min_bytes_per_sec: config.message_min_bytes_per_sec,
            whose: "the maximum of an account or admin call".into(),
            tier: "".into(),
        };
    }
    match config.tier(&caller.tier) {
        Some(tier) => MessageLimit {
            max_bytes: tier_message_bytes(config, tier),
            timeout,
            min_bytes_per_sec: config.message_min_bytes_per_sec,
            whose: format!(
                "the {} tier's maximum (module {} + stdin {} + args and env {} + inline files {} + {} for other fields; send larger file trees with Execute's fs_chunk messages)",
                caller.tier,
                tier.max_module_bytes,
                tier.max_stdin_bytes,
                tier.max_args_bytes,
                inline_fs_bytes(tier),
                config.message_overhead_bytes
            )
            .into(),
            tier: caller.tier.as_str().into(),
        },
        // The handler reports the unknown tier; bound the message anyway.
        None => MessageLimit {
            max_bytes: largest_message_bytes(config) as u64,
            timeout,
            min_bytes_per_sec: config.message_min_bytes_per_sec,
            whose: "the server's maximum".into(),
            tier: caller.tier.as_str().into(),
        },
    }
}

/// Bytes of a refused request's body read (and discarded) before answering.
pub const REFUSED_BODY_DISCARD_BYTES: usize = 64 * 1024;
/// How long a refused request's body may take to arrive before answering.
const REFUSED_BODY_DISCARD_TIME: Duration = Duration::from_secs(2);

/// Reads and discards `body` up to [`REFUSED_BODY_DISCARD_BYTES`] within
/// [`REFUSED_BODY_DISCARD_TIME`]; nothing is kept.
async fn discard_small_body(mut body: Body) {
    use http_body_util::BodyExt;
    let mut seen = 0usize;
    let _ = tokio::time::timeout(REFUSED_BODY_DISCARD_TIME, async {
        while let Some(Ok(frame)) = body.frame().await {
            if let Some(data) = frame.data_ref() {
                seen += data.len();
                if seen > REFUSED_BODY_DISCARD_BYTES {
                    return;
                }
            }
        }
    })
    .await;
}

#[tracing::instrument(name = "auth", skip_all)]
async fn authenticate(state: &AppState, headers: &HeaderMap) -> Result<Caller, Status> {
    let unauthenticated = || Status::unauthenticated("missing or invalid API key");
    let key = presented_key(headers).ok_or_else(|| {
        crate::audit::authentication_failed(None, crate::audit::AuthFailure::Missing);
        unauthenticated()
    })?;
    state
        .auth
        .authenticate(key)
        .await
        .map_err(|_| unauthenticated())
}

impl<S> Service<Request<Body>> for Guarded<S>
where
    S: Service<Request<Body>, Response = Response<Body>, Error = Infallible>
        + Clone
        + Send
        + 'static,
    S::Future: Send,
{
    type Response = Response<Body>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Response<Body>, Infallible>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request<Body>) -> Self::Future {
        // The ready service handles this call; a fresh clone takes its place.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let policy = self.policy.clone();
        Box::pin(async move {
            let limit = match policy {
                MessagePolicy::Anonymous(limit) => limit,
                MessagePolicy::Authenticated {
                    state,
                    carries_modules,
                } => {
                    match authenticate(&state, request.headers()).await {
                        Ok(caller) => {
                            let limit = if is_write_stdin(request.uri().path()) {
                                write_stdin_limit(&state)
                            } else {
                                caller_limit(&state, &caller, carries_modules)
                            };
                            request.extensions_mut().insert(caller);
                            limit
                        }
                        // Trailers-only. An HTTP/1.1 body (declared small, or
                        // chunked) is read and discarded first, up to a cap:
                        // otherwise hyper closes the connection and a client
                        // still writing, or reusing it, gets EPIPE instead of
                        // the answer. A body declared larger is dropped unread.
                        Err(status) => {
                            let small_http1 =
                                request.extensions().get::<Http1Body>().is_some_and(|b| {
                                    b.declared
                                        .is_none_or(|d| d <= REFUSED_BODY_DISCARD_BYTES as u64)
                                });
                            if small_http1 {
                                discard_small_body(request.into_body()).await;
                            }
                            return Ok(status.into_http());
                        }
                    }
                }
            };
            let request = request.map(|body| Body::new(MessageLimitBody::new(body, limit)));
            inner.call(request).await
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn room_for_files(config: &Config, tier: &str) -> u64 {
        let tier = &config.tiers[tier];
        tier_message_bytes(config, tier)
            - tier.max_module_bytes
            - tier.max_stdin_bytes
            - tier.max_args_bytes
            - config.message_overhead_bytes as u64
    }

    #[test]
    fn a_message_has_room_for_the_tiers_whole_tree_when_it_is_small() {
        let config = Config::default();
        assert_eq!(
            room_for_files(&config, "free"),
            config.tiers["free"].max_fs_bytes
        );
    }

    #[test]
    fn inline_files_are_capped_at_64_mib_whatever_the_tier_allows() {
        let config = Config::default();
        assert!(config.tiers["pro"].max_fs_bytes > INLINE_FS_MAX_BYTES);
        assert_eq!(room_for_files(&config, "pro"), INLINE_FS_MAX_BYTES);
    }
}
