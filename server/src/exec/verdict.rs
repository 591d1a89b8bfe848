//! The verdict: stdout compared with the expected bytes as it streams past.

use bytes::Bytes;
use wasmwiz_proto::v1::Verdict;

/// Compares stdout with the expected bytes without keeping it.
pub struct VerdictTracker {
    expected: Option<Bytes>,
    matched: usize,
    ok: bool,
}

impl VerdictTracker {
    pub fn new(expected: Option<Bytes>) -> Self {
        Self {
            expected,
            matched: 0,
            ok: true,
        }
    }

    pub fn feed(&mut self, stdout: &[u8]) {
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

    pub fn verdict(&self) -> Verdict {
        match &self.expected {
            None => Verdict::Unspecified,
            Some(expected) if self.ok && self.matched == expected.len() => Verdict::Accepted,
            Some(_) => Verdict::WrongAnswer,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn verdict(expected: Option<&'static [u8]>, chunks: &[&[u8]]) -> Verdict {
        let mut tracker = VerdictTracker::new(expected.map(Bytes::from_static));
        for chunk in chunks {
            tracker.feed(chunk);
        }
        tracker.verdict()
    }

    #[test]
    fn nothing_expected_is_unspecified() {
        assert_eq!(verdict(None, &[b"anything"]), Verdict::Unspecified);
    }

    #[test]
    fn the_expected_bytes_in_any_chunking_are_accepted() {
        assert_eq!(verdict(Some(b"hello"), &[b"he", b"llo"]), Verdict::Accepted);
    }

    #[test]
    fn a_prefix_of_the_expected_bytes_is_wrong() {
        assert_eq!(verdict(Some(b"hello"), &[b"hel"]), Verdict::WrongAnswer);
    }

    #[test]
    fn more_than_the_expected_bytes_is_wrong() {
        assert_eq!(verdict(Some(b"hi"), &[b"hi", b"!"]), Verdict::WrongAnswer);
    }
}
