//! Bounds on one gRPC request message while the body streams in: its
//! declared length (the 5-byte length prefix every gRPC and, after
//! tonic-web's decoding, grpc-web message starts with) and the time the
//! server spends waiting for the rest of it once its first byte has come:
//! `timeout`, plus time for its declared length at `min_bytes_per_sec` (a
//! large module on a slow link is not a stall; a message trickled in to
//! hold memory is). Only waiting counts: while the handler is busy and not
//! reading, flow control holds the client back, and that is not its fault.
//! A message past either bound fails the body with a `Status` before it is
//! buffered; tonic's decoder passes that status on as the call's error.

use std::{
    future::Future,
    pin::Pin,
    sync::Arc,
    task::{ready, Context, Poll},
    time::Duration,
};

use bytes::{Buf, Bytes};
use http_body::{Body, Frame, SizeHint};
use tokio::time::{Instant, Sleep};
use tonic::{Code, Status};
use tonic_types::{ErrorDetails, StatusExt};

use super::BoxError;
use crate::api::errors::{limit_metadata, Unit, ERROR_DOMAIN, LIMIT_EXCEEDED};

/// Length of the gRPC message prefix: a compression flag and a u32 length.
const PREFIX_LEN: usize = 5;

/// What one request message may be.
#[derive(Debug, Clone)]
pub struct MessageLimit {
    /// Largest declared message length accepted.
    pub max_bytes: u64,
    /// Time from a message's first byte to its last, before the allowance
    /// for its size.
    pub timeout: Duration,
    /// Slowest rate a large message may arrive at; 0: no allowance.
    pub min_bytes_per_sec: u64,
    /// Whose limit it is, for the error (e.g. "the free tier's maximum").
    pub whose: Arc<str>,
    /// The tier whose limit it is, for the error's ErrorInfo; empty for
    /// limits that are not a tier's (unauthenticated or account calls).
    pub tier: Arc<str>,
}

impl MessageLimit {
    fn too_large(&self, declared: u64) -> Status {
        let description = format!(
            "a request message of {declared} bytes is above {} of {} bytes per message",
            self.whose, self.max_bytes
        );
        let mut details = ErrorDetails::with_bad_request_violation("message", description.clone());
        details.set_error_info(
            LIMIT_EXCEEDED,
            ERROR_DOMAIN,
            limit_metadata("message", declared, self.max_bytes, Unit::Bytes, &self.tier),
        );
        Status::with_error_details(Code::InvalidArgument, description, details)
    }

    /// The time a message of `declared` bytes may take.
    fn time_for(&self, declared: u64) -> Duration {
        match declared.checked_div(self.min_bytes_per_sec) {
            Some(secs) => self.timeout + Duration::from_secs(secs),
            None => self.timeout,
        }
    }

    fn too_slow(&self, declared: Option<u64>) -> Status {
        Status::deadline_exceeded(format!(
            "a request message started arriving but did not complete within {} s",
            self.time_for(declared.unwrap_or(0)).as_secs_f64()
        ))
    }
}

/// Where the parser is in the stream of length-prefixed messages.
#[derive(Debug, Default)]
struct Framing {
    prefix: [u8; PREFIX_LEN],
    prefix_len: usize,
    /// Bytes of the current message body still to come.
    remaining: u64,
    /// The current message's declared length.
    declared: u64,
}

/// What a chunk of data did to the message in flight.
enum Progress {
    /// Between messages: nothing is in flight.
    Idle,
    /// A message is incomplete; `started` if its first byte was in this chunk.
    InFlight { started: bool },
    /// A prefix declared more than the limit.
    TooLarge(u64),
}

impl Framing {
    fn in_flight(&self) -> bool {
        self.prefix_len > 0 || self.remaining > 0
    }

    /// The declared length of the message in flight, once its prefix is in.
    fn declared(&self) -> Option<u64> {
        (self.prefix_len == 0 && self.remaining > 0).then_some(self.declared)
    }

    fn observe(&mut self, mut data: &[u8], max: u64) -> Progress {
        let mut started = false;
        while !data.is_empty() {
            if self.remaining > 0 {
                let n = (self.remaining.min(data.len() as u64)) as usize;
                self.remaining -= n as u64;
                data = &data[n..];
                continue;
            }
            started |= self.prefix_len == 0;
            let n = (PREFIX_LEN - self.prefix_len).min(data.len());
            self.prefix[self.prefix_len..self.prefix_len + n].copy_from_slice(&data[..n]);
            self.prefix_len += n;
            data = &data[n..];
            if self.prefix_len == PREFIX_LEN {
                self.prefix_len = 0;
                let declared = u64::from(u32::from_be_bytes(
                    self.prefix[1..].try_into().expect("four bytes"),
                ));
                if declared > max {
                    return Progress::TooLarge(declared);
                }
                self.remaining = declared;
                self.declared = declared;
            }
        }
        if self.in_flight() {
            Progress::InFlight { started }
        } else {
            Progress::Idle
        }
    }
}

/// A request body that enforces a [`MessageLimit`] as it is read.
pub struct MessageLimitBody<B> {
    inner: B,
    limit: MessageLimit,
    framing: Framing,
    /// Waiting time the message in flight has left (set while one is).
    budget: Option<Duration>,
    /// Whether the budget includes the allowance for the declared length.
    sized: bool,
    /// Since when the server has been waiting for the client's next bytes.
    waiting_since: Option<Instant>,
    /// Fires when the budget runs out while waiting.
    deadline: Option<Pin<Box<Sleep>>>,
    failed: bool,
}

impl<B> MessageLimitBody<B> {
    pub fn new(inner: B, limit: MessageLimit) -> Self {
        Self {
            inner,
            limit,
            framing: Framing::default(),
            budget: None,
            sized: false,
            waiting_since: None,
            deadline: None,
            failed: false,
        }
    }

    /// Charges the time spent waiting to the message in flight.
    fn stop_waiting(&mut self) {
        if let (Some(since), Some(budget)) = (self.waiting_since.take(), self.budget.as_mut()) {
            *budget = budget.saturating_sub(since.elapsed());
        }
    }

    /// Updates the budget after a chunk of the stream was read.
    fn progressed(&mut self, progress_started: bool, in_flight: bool) {
        if !in_flight {
            self.budget = None;
            self.sized = false;
            return;
        }
        if progress_started || self.budget.is_none() {
            self.budget = Some(self.limit.timeout);
            self.sized = false;
        }
        if let (false, Some(declared)) = (self.sized, self.framing.declared()) {
            let allowance = self.limit.time_for(declared) - self.limit.timeout;
            self.budget = self.budget.map(|b| b + allowance);
            self.sized = true;
        }
    }

    /// Arms the deadline when the server starts waiting mid-message.
    fn start_waiting(&mut self) -> Option<Pin<&mut Sleep>> {
        let budget = self.budget?;
        if self.waiting_since.is_none() {
            let now = Instant::now();
            self.waiting_since = Some(now);
            match self.deadline.as_mut() {
                Some(sleep) => sleep.as_mut().reset(now + budget),
                None => self.deadline = Some(Box::pin(tokio::time::sleep_until(now + budget))),
            }
        }
        self.deadline.as_mut().map(|sleep| sleep.as_mut())
    }

    fn fail(&mut self, status: Status) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        self.failed = true;
        self.budget = None;
        self.deadline = None;
        Poll::Ready(Some(Err(Box::new(status))))
    }
}

impl<B> Body for MessageLimitBody<B>
where
    B: Body<Data = Bytes> + Unpin,
    B::Error: Into<BoxError>,
{
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let this = self.get_mut();
        if this.failed {
            return Poll::Ready(None);
        }
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                this.stop_waiting();
                if let Some(data) = frame.data_ref() {
                    match this.framing.observe(data.chunk(), this.limit.max_bytes) {
                        Progress::TooLarge(declared) => {
                            let status = this.limit.too_large(declared);
                            return this.fail(status);
                        }
                        Progress::Idle => this.progressed(false, false),
                        Progress::InFlight { started } => this.progressed(started, true),
                    }
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(error))) => Poll::Ready(Some(Err(error.into()))),
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending => {
                if let Some(deadline) = this.start_waiting() {
                    ready!(deadline.poll(cx));
                    let status = this.limit.too_slow(this.framing.declared());
                    return this.fail(status);
                }
                Poll::Pending
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.failed || self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn prefix(len: u32) -> Vec<u8> {
        let mut p = vec![0];
        p.extend_from_slice(&len.to_be_bytes());
        p
    }

    type Chunks =
        tokio::sync::mpsc::UnboundedSender<Result<Frame<Bytes>, std::convert::Infallible>>;

    fn body(timeout: Duration) -> (Chunks, impl Body<Data = Bytes, Error = BoxError> + Unpin) {
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        let inner = http_body_util::StreamBody::new(
            tokio_stream::wrappers::UnboundedReceiverStream::new(rx),
        );
        let limit = MessageLimit {
            max_bytes: 1 << 20,
            timeout,
            min_bytes_per_sec: 0,
            whose: "test".into(),
            tier: "".into(),
        };
        (tx, MessageLimitBody::new(inner, limit))
    }

    fn data(bytes: &[u8]) -> Result<Frame<Bytes>, std::convert::Infallible> {
        Ok(Frame::data(Bytes::copy_from_slice(bytes)))
    }

    #[tokio::test]
    async fn waiting_past_the_timeout_mid_message_fails_the_body() {
        use http_body_util::BodyExt;
        let (tx, mut body) = body(Duration::from_millis(200));
        tx.send(data(&prefix(10))).unwrap();
        body.frame().await.unwrap().unwrap();
        let error = body.frame().await.unwrap().unwrap_err();
        let status = error.downcast::<Status>().unwrap();
        assert_eq!(status.code(), Code::DeadlineExceeded);
    }

    #[tokio::test]
    async fn time_the_reader_is_busy_is_not_charged_to_the_client() {
        use http_body_util::BodyExt;
        let (tx, mut body) = body(Duration::from_millis(200));
        tx.send(data(&prefix(10))).unwrap();
        body.frame().await.unwrap().unwrap();
        // The handler does not read for thrice the timeout, then waits a
        // little for the rest: only that wait is the client's.
        tokio::time::sleep(Duration::from_millis(600)).await;
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(50)).await;
            tx.send(data(b"0123456789")).unwrap();
        });
        assert!(body.frame().await.unwrap().is_ok());
    }

    #[tokio::test]
    async fn a_stream_quiet_between_messages_is_not_timed() {
        use http_body_util::BodyExt;
        let (tx, mut body) = body(Duration::from_millis(200));
        let mut message = prefix(2).to_vec();
        message.extend_from_slice(b"ok");
        tx.send(data(&message)).unwrap();
        body.frame().await.unwrap().unwrap();
        let next = tokio::spawn(async move { body.frame().await.map(|f| f.is_ok()) });
        tokio::time::sleep(Duration::from_millis(600)).await;
        tx.send(data(&prefix(0))).unwrap();
        assert_eq!(next.await.unwrap(), Some(true));
    }

    #[test]
    fn a_large_message_gets_time_for_its_size() {
        let limit = MessageLimit {
            max_bytes: u64::MAX,
            timeout: Duration::from_secs(30),
            min_bytes_per_sec: 1 << 20,
            whose: "test".into(),
            tier: "".into(),
        };
        assert_eq!(limit.time_for(0), Duration::from_secs(30));
        assert_eq!(limit.time_for(100 << 20), Duration::from_secs(130));
    }

    #[test]
    fn a_prefix_split_across_chunks_is_still_read() {
        let mut framing = Framing::default();
        let p = prefix(1000);
        assert!(matches!(
            framing.observe(&p[..2], 10),
            Progress::InFlight { started: true }
        ));
        assert!(matches!(
            framing.observe(&p[2..], 10),
            Progress::TooLarge(1000)
        ));
    }

    #[test]
    fn consecutive_messages_are_each_checked() {
        let mut framing = Framing::default();
        let mut data = prefix(3);
        data.extend_from_slice(b"abc");
        assert!(matches!(framing.observe(&data, 10), Progress::Idle));
        let mut data = prefix(2);
        data.extend_from_slice(b"x");
        assert!(matches!(
            framing.observe(&data, 10),
            Progress::InFlight { started: true }
        ));
        assert_eq!(framing.declared(), Some(2));
        assert!(matches!(framing.observe(b"y", 10), Progress::Idle));
        assert!(matches!(
            framing.observe(&prefix(11), 10),
            Progress::TooLarge(11)
        ));
    }
}
