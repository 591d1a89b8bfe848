//! One client connection (HTTP/1.1 or HTTP/2, by hyper's auto-detection):
//! closed if its first request's headers do not arrive within the
//! handshake timeout (preface, TLS and HTTP/1.1 headers alike), and shut
//! down gracefully once it has had no open request for the idle timeout.
//! A request counts as open until its response body is finished, so a
//! quiet streaming call keeps its connection.

use std::{
    convert::Infallible,
    future::Future,
    pin::Pin,
    sync::{
        atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering},
        Arc,
    },
    task::{Context, Poll},
    time::Duration,
};

use bytes::Bytes;
use http::{Request, Response};
use http_body::{Body as HttpBody, Frame, SizeHint};
use hyper::body::Incoming;
use hyper_util::{
    rt::{TokioExecutor, TokioIo, TokioTimer},
    server::conn::auto,
    service::TowerToHyperService,
};
use tokio::{
    io::{AsyncRead, AsyncWrite},
    sync::Notify,
    time::Instant,
};
use tokio_util::sync::CancellationToken;
use tonic::body::Body;
use tower::{util::BoxCloneSyncService, Service};

use super::{BoxError, TransportMetrics};
use crate::config::Config;

/// The whole HTTP side of the port as one service.
pub type HttpService = BoxCloneSyncService<Request<Body>, Response<Body>, Infallible>;

/// How connections are served.
pub struct ConnectionSettings {
    pub handshake_timeout: Duration,
    pub idle_timeout: Duration,
    pub http: auto::Builder<TokioExecutor>,
}

impl ConnectionSettings {
    pub fn from_config(config: &Config) -> Self {
        let mut http = auto::Builder::new(TokioExecutor::new());
        // hyper's header timer also runs while a keep-alive connection waits
        // for its next request, so it is the HTTP/1.1 idle timeout; the
        // first request's headers are bounded by the handshake timeout.
        http.http1()
            .timer(TokioTimer::new())
            .header_read_timeout(Duration::from_secs(config.idle_timeout_secs));
        http.http2()
            .timer(TokioTimer::new())
            .max_concurrent_streams(config.max_concurrent_streams)
            .keep_alive_interval(Some(Duration::from_secs(30)))
            .keep_alive_timeout(Duration::from_secs(20))
            .max_pending_accept_reset_streams(Some(200));
        Self {
            handshake_timeout: Duration::from_secs(config.handshake_timeout_secs),
            idle_timeout: Duration::from_secs(config.idle_timeout_secs),
            http,
        }
    }
}

/// Open requests of one connection, and a generation that changes with
/// every request that starts or ends.
#[derive(Default)]
struct Activity {
    open: AtomicUsize,
    generation: AtomicU64,
    changed: Notify,
}

impl Activity {
    fn begin(self: &Arc<Self>) -> OpenRequest {
        self.open.fetch_add(1, Ordering::SeqCst);
        self.generation.fetch_add(1, Ordering::SeqCst);
        self.changed.notify_waiters();
        OpenRequest(self.clone())
    }

    /// Resolves when the connection should close: `Handshake` if no request
    /// started by `handshake_deadline`, `Idle` once no request has been
    /// open for `idle`.
    async fn until_close(&self, handshake_deadline: Instant, idle: Duration) -> CloseReason {
        loop {
            let changed = self.changed.notified();
            tokio::pin!(changed);
            changed.as_mut().enable();
            let generation = self.generation.load(Ordering::SeqCst);
            let open = self.open.load(Ordering::SeqCst);
            if generation == 0 {
                tokio::select! {
                    () = tokio::time::sleep_until(handshake_deadline) => {
                        if self.generation.load(Ordering::SeqCst) == 0 {
                            return CloseReason::Handshake;
                        }
                    }
                    () = &mut changed => {}
                }
            } else if open == 0 {
                tokio::select! {
                    () = tokio::time::sleep(idle) => {
                        if self.generation.load(Ordering::SeqCst) == generation {
                            return CloseReason::Idle;
                        }
                    }
                    () = &mut changed => {}
                }
            } else {
                changed.await;
            }
        }
    }
}

/// Why a connection is being closed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum CloseReason {
    Handshake,
    Idle,
}

/// Held from a request's start until its response body is dropped.
struct OpenRequest(Arc<Activity>);

impl Drop for OpenRequest {
    fn drop(&mut self) {
        self.0.open.fetch_sub(1, Ordering::SeqCst);
        self.0.generation.fetch_add(1, Ordering::SeqCst);
        self.0.changed.notify_waiters();
    }
}

/// A response body that keeps its request open while alive.
struct TrackedBody {
    inner: Body,
    _open: OpenRequest,
}

impl HttpBody for TrackedBody {
    type Data = Bytes;
    type Error = tonic::Status;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        Pin::new(&mut self.inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// A request body that counts the bytes read from the client.
struct CountedBody {
    inner: Incoming,
    counter: prometheus::IntCounter,
    /// Set once the body has been read to its end.
    finished: Arc<AtomicBool>,
}

impl HttpBody for CountedBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        match &polled {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    self.counter.inc_by(data.len() as u64);
                }
                if self.inner.is_end_stream() {
                    self.finished.store(true, Ordering::Relaxed);
                }
            }
            Poll::Ready(None) => self.finished.store(true, Ordering::Relaxed),
            _ => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// Marks an HTTP/1.x request, with the `content-length` it declared (none
/// when chunked).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Http1Body {
    pub declared: Option<u64>,
}

fn http1_body<B>(request: &Request<B>) -> Option<Http1Body> {
    if request.version() >= http::Version::HTTP_2 {
        return None;
    }
    let declared = request
        .headers()
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok());
    Some(Http1Body { declared })
}

/// The service of one connection: counts body bytes and open requests.
#[derive(Clone)]
struct ConnectionService {
    inner: HttpService,
    activity: Arc<Activity>,
    body_bytes: prometheus::IntCounter,
}

impl Service<Request<Incoming>> for ConnectionService {
    type Response = Response<TrackedBody>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Infallible>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request<Incoming>) -> Self::Future {
        let open = self.activity.begin();
        let counter = self.body_bytes.clone();
        // tonic-web drops `content-length` when it translates grpc-web; the
        // guard still needs it to answer a refused HTTP/1.1 request cleanly.
        let http1 = http1_body(&request);
        if let Some(body) = http1 {
            request.extensions_mut().insert(body);
        }
        let finished = Arc::new(AtomicBool::new(request.body().is_end_stream()));
        let request = request.map(|inner| {
            Body::new(CountedBody {
                inner,
                counter,
                finished: finished.clone(),
            })
        });
        let response = self.inner.call(request);
        Box::pin(async move {
            let mut response = response.await?;
            // An HTTP/1.1 answer given before its request body was read to
            // the end closes the connection: say so, so the client does not
            // reuse it and fail its next request with a broken pipe.
            if http1.is_some() && !finished.load(Ordering::Relaxed) {
                response.headers_mut().insert(
                    http::header::CONNECTION,
                    http::HeaderValue::from_static("close"),
                );
            }
            Ok(response.map(|inner| TrackedBody { inner, _open: open }))
        })
    }
}

/// Serves `io` until it closes, times out, or `shutdown` asks it to finish
/// (graceful: open requests complete) or `force_close` drops it.
pub async fn serve_connection<I>(
    io: I,
    service: HttpService,
    settings: &ConnectionSettings,
    handshake_deadline: Instant,
    metrics: &TransportMetrics,
    shutdown: &CancellationToken,
    force_close: &CancellationToken,
) where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let activity = Arc::new(Activity::default());
    let service = ConnectionService {
        inner: service,
        activity: activity.clone(),
        body_bytes: metrics.request_body_bytes.clone(),
    };
    let connection = settings
        .http
        .serve_connection_with_upgrades(TokioIo::new(io), TowerToHyperService::new(service));
    tokio::pin!(connection);
    let until_close = activity.until_close(handshake_deadline, settings.idle_timeout);
    tokio::pin!(until_close);
    let mut closing = false;
    loop {
        tokio::select! {
            result = connection.as_mut() => {
                if let Err(error) = result {
                    tracing::debug!(error = %DisplayError(&error), "connection ended with an error");
                }
                return;
            }
            reason = &mut until_close, if !closing => match reason {
                CloseReason::Handshake => {
                    metrics.connections_timed_out.with_label_values(&["handshake"]).inc();
                    return;
                }
                CloseReason::Idle => {
                    metrics.connections_timed_out.with_label_values(&["idle"]).inc();
                    closing = true;
                    connection.as_mut().graceful_shutdown();
                }
            },
            () = shutdown.cancelled(), if !closing => {
                closing = true;
                connection.as_mut().graceful_shutdown();
            }
            () = force_close.cancelled() => return,
        }
    }
}

struct DisplayError<'a>(&'a BoxError);

impl std::fmt::Display for DisplayError<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)?;
        let mut source = self.0.source();
        while let Some(error) = source {
            write!(f, ": {error}")?;
            source = error.source();
        }
        Ok(())
    }
}
