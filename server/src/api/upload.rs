//! Receiving a module in chunks: a buffer that grows with what arrived and
//! a receive that gives up on a quiet stream.

use std::time::Duration;

use bytes::{Bytes, BytesMut};
use tonic::{Status, Streaming};

use super::errors::ApiError;

/// The bytes of a module announced as `declared` bytes. Memory follows
/// what arrived: a client can announce a large size and never send it, so
/// nothing is reserved from the announcement.
#[derive(Debug)]
pub struct ChunkBuffer {
    declared: u64,
    bytes: BytesMut,
}

impl ChunkBuffer {
    pub fn new(declared: u64) -> Self {
        Self {
            declared,
            bytes: BytesMut::new(),
        }
    }

    /// Appends a chunk, refusing one that passes the announced size.
    pub fn push(&mut self, chunk: &[u8], field: &str) -> Result<(), ApiError> {
        if self.bytes.len() as u64 + chunk.len() as u64 > self.declared {
            return Err(ApiError::invalid(
                field,
                format!(
                    "received more than the announced size of {} bytes",
                    self.declared
                ),
            ));
        }
        self.bytes.extend_from_slice(chunk);
        Ok(())
    }

    /// Bytes received so far.
    pub fn len(&self) -> usize {
        self.bytes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }

    /// Bytes allocated (for tests of the growth policy).
    pub fn capacity(&self) -> usize {
        self.bytes.capacity()
    }

    /// The module, once exactly the announced size arrived.
    pub fn finish(self, field: &str) -> Result<Bytes, ApiError> {
        if self.bytes.len() as u64 != self.declared {
            return Err(ApiError::invalid(
                field,
                format!(
                    "announced {} bytes but received {}",
                    self.declared,
                    self.bytes.len()
                ),
            ));
        }
        Ok(self.bytes.freeze())
    }
}

/// The stream's next message, or [`ApiError::UploadIdle`] when none arrives
/// within `idle` (a stream that stalls would hold its buffer and its
/// upload slot forever).
pub async fn next_within<T>(
    incoming: &mut Streaming<T>,
    idle: Duration,
) -> Result<Option<T>, Status> {
    match tokio::time::timeout(idle, incoming.message()).await {
        Ok(message) => message,
        Err(_) => Err(ApiError::UploadIdle {
            timeout_ms: idle.as_millis() as u64,
        }
        .into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_buffer_grows_with_what_arrived_not_with_the_announced_size() {
        let mut buffer = ChunkBuffer::new(256 << 20);
        buffer.push(&[7; 1024], "chunk").unwrap();
        assert_eq!(buffer.len(), 1024);
        assert!(buffer.capacity() < 64 * 1024, "{}", buffer.capacity());
    }

    #[test]
    fn chunks_past_the_announced_size_are_refused() {
        let mut buffer = ChunkBuffer::new(4);
        buffer.push(b"abc", "chunk").unwrap();
        assert!(buffer.push(b"de", "chunk").is_err());
    }

    #[test]
    fn a_short_upload_is_refused_at_the_end() {
        let mut buffer = ChunkBuffer::new(4);
        buffer.push(b"abc", "chunk").unwrap();
        assert!(buffer.finish("size").is_err());
    }
}
