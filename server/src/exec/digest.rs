//! sha256 digests of what an execution produced: stdout and stderr fed
//! chunk by chunk as they stream (no copy is kept), and each collected
//! file. A receipt signs these digests.

use sha2::{Digest, Sha256};

use crate::engine::{vfs::CollectedFile, Stream};

/// Running digests of stdout and stderr.
#[derive(Default, Clone)]
pub struct OutputDigest {
    stdout: Sha256,
    stderr: Sha256,
    stdout_bytes: u64,
    stderr_bytes: u64,
}

/// Final digests of one execution's output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutputDigests {
    pub stdout_sha256: String,
    pub stderr_sha256: String,
    pub stdout_bytes: u64,
    pub stderr_bytes: u64,
    /// (path, sha256, size) of each collected file, in path order.
    pub files: Vec<FileDigest>,
}

/// One collected file's digest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileDigest {
    pub path: String,
    pub sha256: String,
    pub size: u64,
}

impl OutputDigest {
    /// Adds one chunk of `stream`, in the order it was delivered.
    pub fn feed(&mut self, stream: Stream, data: &[u8]) {
        match stream {
            Stream::Stdout => {
                self.stdout.update(data);
                self.stdout_bytes += data.len() as u64;
            }
            Stream::Stderr => {
                self.stderr.update(data);
                self.stderr_bytes += data.len() as u64;
            }
        }
    }

    /// The digests, with the collected `files` (hashed here: call it off
    /// the async runtime when they may be large).
    pub fn finish(self, files: &[CollectedFile]) -> OutputDigests {
        OutputDigests {
            stdout_sha256: hex::encode(self.stdout.finalize()),
            stderr_sha256: hex::encode(self.stderr.finalize()),
            stdout_bytes: self.stdout_bytes,
            stderr_bytes: self.stderr_bytes,
            files: files
                .iter()
                .map(|file| FileDigest {
                    path: file.path.clone(),
                    sha256: hex::encode(Sha256::digest(&file.contents)),
                    size: file.contents.len() as u64,
                })
                .collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use super::*;

    const EMPTY_SHA256: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

    #[test]
    fn chunks_hash_like_the_whole_stream() {
        let mut digest = OutputDigest::default();
        digest.feed(Stream::Stdout, b"Hello, ");
        digest.feed(Stream::Stderr, b"oops");
        digest.feed(Stream::Stdout, b"WasmWiz!\n");
        let done = digest.finish(&[]);
        assert_eq!(
            done.stdout_sha256,
            hex::encode(Sha256::digest(b"Hello, WasmWiz!\n"))
        );
        assert_eq!(done.stderr_sha256, hex::encode(Sha256::digest(b"oops")));
        assert_eq!((done.stdout_bytes, done.stderr_bytes), (16, 4));
    }

    #[test]
    fn no_output_is_the_digest_of_nothing() {
        let done = OutputDigest::default().finish(&[]);
        assert_eq!(done.stdout_sha256, EMPTY_SHA256);
        assert_eq!(done.stderr_sha256, EMPTY_SHA256);
    }

    #[test]
    fn each_collected_file_gets_its_digest_and_size() {
        let files = [
            CollectedFile {
                path: "out/a.txt".into(),
                contents: Bytes::from_static(b"abc"),
            },
            CollectedFile {
                path: "out/empty".into(),
                contents: Bytes::new(),
            },
        ];
        let done = OutputDigest::default().finish(&files);
        assert_eq!(
            done.files,
            vec![
                FileDigest {
                    path: "out/a.txt".into(),
                    sha256: hex::encode(Sha256::digest(b"abc")),
                    size: 3,
                },
                FileDigest {
                    path: "out/empty".into(),
                    sha256: EMPTY_SHA256.into(),
                    size: 0,
                },
            ]
        );
    }
}
