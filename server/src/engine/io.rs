//! Guest stdio without blocking inside the interpreter.
//!
//! Writes land in an [`OutputBuffer`] shared with the driver, which sends
//! them to the client between fuel slices (and when the buffer passes
//! [`FLUSH_THRESHOLD`], the `fd_write` shim interrupts the guest so the driver
//! can flush with backpressure). Reads come from a [`StdinBuffer`] that the
//! driver fills; when it is empty and not at end of file, the `fd_read` shim
//! interrupts the guest and the driver completes the read once data arrives.

use std::{
    collections::VecDeque,
    io::{self, Read, Write},
    sync::Arc,
};

use bytes::Bytes;
use parking_lot::Mutex;

/// Buffered output above which the guest pauses so the driver can send it.
pub const FLUSH_THRESHOLD: usize = 64 * 1024;
/// Output is sent in chunks of at most this many bytes: slices of the one
/// buffer the guest's write was copied into, so no message is huge and
/// nothing is copied again before encoding.
pub const OUTPUT_CHUNK_BYTES: usize = 1024 * 1024;

/// Which output stream a chunk belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    Stdout,
    Stderr,
}

/// One chunk of guest output, in the order written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutputChunk {
    pub stream: Stream,
    pub data: Bytes,
}

/// Output written but not yet sent, plus the totals and the output limit.
#[derive(Debug)]
pub struct OutputState {
    pending: Vec<(Stream, Vec<u8>)>,
    pending_bytes: usize,
    limit: u64,
    stdout_total: u64,
    stderr_total: u64,
    truncated: bool,
}

/// Shared handle to the guest's output.
#[derive(Clone, Debug)]
pub struct OutputBuffer(Arc<Mutex<OutputState>>);

impl OutputBuffer {
    /// `limit` caps stdout + stderr together.
    pub fn new(limit: u64) -> Self {
        Self(Arc::new(Mutex::new(OutputState {
            pending: Vec::new(),
            pending_bytes: 0,
            limit,
            stdout_total: 0,
            stderr_total: 0,
            truncated: false,
        })))
    }

    /// A `Write` for one stream, to wrap in a WASI pipe.
    pub fn writer(&self, stream: Stream) -> OutputWriter {
        OutputWriter {
            buffer: self.clone(),
            stream,
        }
    }

    /// Takes every pending chunk, adjacent writes to one stream coalesced,
    /// cut into slices of at most [`OUTPUT_CHUNK_BYTES`] (no copy).
    pub fn take(&self) -> Vec<OutputChunk> {
        let pending = {
            let mut state = self.0.lock();
            state.pending_bytes = 0;
            std::mem::take(&mut state.pending)
        };
        let mut chunks = Vec::new();
        for (stream, data) in pending {
            let data = Bytes::from(data);
            let mut at = 0;
            while at < data.len() {
                let end = data.len().min(at + OUTPUT_CHUNK_BYTES);
                chunks.push(OutputChunk {
                    stream,
                    data: data.slice(at..end),
                });
                at = end;
            }
        }
        chunks
    }

    /// True when the guest should pause so pending output can be sent.
    pub fn wants_flush(&self) -> bool {
        self.0.lock().pending_bytes >= FLUSH_THRESHOLD
    }

    /// True once the guest tried to write past the output limit.
    pub fn truncated(&self) -> bool {
        self.0.lock().truncated
    }

    /// (stdout bytes, stderr bytes) accepted so far.
    pub fn totals(&self) -> (u64, u64) {
        let state = self.0.lock();
        (state.stdout_total, state.stderr_total)
    }

    fn append(&self, stream: Stream, buf: &[u8]) {
        let mut state = self.0.lock();
        let used = state.stdout_total + state.stderr_total;
        let room = state.limit.saturating_sub(used);
        let take = buf.len().min(usize::try_from(room).unwrap_or(usize::MAX));
        if take < buf.len() {
            state.truncated = true;
        }
        if take == 0 {
            return;
        }
        let data = &buf[..take];
        match stream {
            Stream::Stdout => state.stdout_total += take as u64,
            Stream::Stderr => state.stderr_total += take as u64,
        }
        state.pending_bytes += take;
        match state.pending.last_mut() {
            Some((last, bytes)) if *last == stream => bytes.extend_from_slice(data),
            _ => state.pending.push((stream, data.to_vec())),
        }
    }
}

/// `Write` end of one guest stream. It never blocks and never fails: bytes
/// past the output limit are dropped and the limit is flagged, which ends
/// the run at the `fd_write` shim.
pub struct OutputWriter {
    buffer: OutputBuffer,
    stream: Stream,
}

impl Write for OutputWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.buffer.append(self.stream, buf);
        Ok(buf.len())
    }
    /// Takes every buffer (the default takes only the first, so the guest
    /// would call again, and pay again, for the rest).
    fn write_vectored(&mut self, bufs: &[io::IoSlice<'_>]) -> io::Result<usize> {
        let mut total = 0;
        for buf in bufs {
            self.buffer.append(self.stream, buf);
            total += buf.len();
        }
        Ok(total)
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[derive(Debug, Default)]
struct StdinState {
    chunks: VecDeque<Bytes>,
    /// Bytes in `chunks` (every `fd_read` asks, to price itself).
    buffered: u64,
    eof: bool,
    total: u64,
}

/// The guest's stdin: whole bytes up front, or chunks fed while it runs.
#[derive(Clone, Debug, Default)]
pub struct StdinBuffer(Arc<Mutex<StdinState>>);

impl StdinBuffer {
    /// Stdin that is complete from the start.
    pub fn complete(bytes: Bytes) -> Self {
        let buffer = Self::default();
        buffer.push(bytes);
        buffer.close();
        buffer
    }

    /// Adds data (from the client's stream).
    pub fn push(&self, bytes: Bytes) {
        if bytes.is_empty() {
            return;
        }
        let mut state = self.0.lock();
        state.total += bytes.len() as u64;
        state.buffered += bytes.len() as u64;
        state.chunks.push_back(bytes);
    }

    /// Marks end of file.
    pub fn close(&self) {
        self.0.lock().eof = true;
    }

    /// True when a read would have to wait for more data.
    pub fn would_block(&self) -> bool {
        let state = self.0.lock();
        state.chunks.is_empty() && !state.eof
    }

    /// Bytes received but not yet read by the guest.
    pub fn buffered(&self) -> u64 {
        self.0.lock().buffered
    }

    /// Bytes received so far (for usage records).
    pub fn total(&self) -> u64 {
        self.0.lock().total
    }

    /// Copies available bytes into `out`; 0 means end of file (or nothing yet).
    pub fn read_into(&self, out: &mut [u8]) -> usize {
        let mut guard = self.0.lock();
        let state = &mut *guard;
        let mut written = 0;
        while written < out.len() {
            let Some(front) = state.chunks.front_mut() else {
                break;
            };
            let n = front.len().min(out.len() - written);
            out[written..written + n].copy_from_slice(&front[..n]);
            written += n;
            state.buffered -= n as u64;
            if n == front.len() {
                state.chunks.pop_front();
            } else {
                *front = front.slice(n..);
            }
        }
        written
    }

    /// A `Read` over this buffer, to wrap in a WASI pipe.
    pub fn reader(&self) -> StdinReader {
        StdinReader(self.clone())
    }
}

/// `Read` end of the guest's stdin (never blocks; the shim guarantees data
/// or end of file before wasi-common reads).
pub struct StdinReader(StdinBuffer);

impl Read for StdinReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        Ok(self.0.read_into(buf))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn output_is_cut_exactly_at_the_limit_and_coalesced() {
        let out = OutputBuffer::new(10);
        out.writer(Stream::Stdout).write_all(b"hello").unwrap();
        out.writer(Stream::Stdout).write_all(b" wor").unwrap();
        assert!(!out.truncated());
        out.writer(Stream::Stderr).write_all(b"ld!!").unwrap();
        assert!(out.truncated());
        let chunks = out.take();
        assert_eq!(chunks.len(), 2);
        assert_eq!(&chunks[0].data[..], b"hello wor");
        assert_eq!(&chunks[1].data[..], b"l");
        assert_eq!(out.totals(), (9, 1));
    }

    #[test]
    fn a_large_write_is_sent_as_bounded_slices_of_one_buffer() {
        let out = OutputBuffer::new(u64::MAX);
        let data = vec![7u8; 3 * OUTPUT_CHUNK_BYTES + 5];
        out.writer(Stream::Stdout).write_all(&data).unwrap();
        let chunks = out.take();
        let sizes: Vec<usize> = chunks.iter().map(|c| c.data.len()).collect();
        assert_eq!(
            sizes,
            [
                OUTPUT_CHUNK_BYTES,
                OUTPUT_CHUNK_BYTES,
                OUTPUT_CHUNK_BYTES,
                5
            ]
        );
        // Consecutive slices of one allocation: nothing was copied apart.
        for pair in chunks.windows(2) {
            let end = pair[0].data.as_ptr() as usize + pair[0].data.len();
            assert_eq!(end, pair[1].data.as_ptr() as usize);
        }
    }

    #[test]
    fn vectored_writes_take_every_buffer() {
        let out = OutputBuffer::new(u64::MAX);
        let bufs = [io::IoSlice::new(b"ab"), io::IoSlice::new(b"cde")];
        assert_eq!(out.writer(Stream::Stdout).write_vectored(&bufs).unwrap(), 5);
        assert_eq!(&out.take()[0].data[..], b"abcde");
    }

    #[test]
    fn stdin_reads_across_chunks_and_reports_blocking() {
        let stdin = StdinBuffer::default();
        assert!(stdin.would_block());
        stdin.push(Bytes::from_static(b"abc"));
        stdin.push(Bytes::from_static(b"def"));
        let mut buf = [0u8; 4];
        assert_eq!(stdin.read_into(&mut buf), 4);
        assert_eq!(&buf, b"abcd");
        assert_eq!(stdin.read_into(&mut buf), 2);
        assert!(stdin.would_block());
        stdin.close();
        assert!(!stdin.would_block());
        assert_eq!(stdin.read_into(&mut buf), 0);
        assert_eq!(stdin.total(), 6);
    }
}
