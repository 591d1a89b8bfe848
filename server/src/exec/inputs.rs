//! The inputs digest: sha256 over a canonical, versioned encoding of
//! everything that determines an execution's result. It is the result
//! cache's key and the `inputs_sha256` of a receipt. The encoding is
//! specified in docs/receipts-and-cache.md; change it only with a new
//! [`ENCODING_VERSION`].
//!
//! Large inputs (stdin, file contents) enter as their own sha256, so the
//! encoding stays small; hashing them is proportional to their size, which
//! is why [`Inputs::sha256`] belongs off the async runtime.

use bytes::Bytes;
use sha2::{Digest, Sha256};

use super::identity::EngineIdentity;
use crate::engine::{
    vfs::{FsInputKind, FsSpec},
    Job, StdinSource,
};

/// The first field of every encoding: bump it with any change below.
pub const ENCODING_VERSION: &str = "wasmwiz-inputs-1";

/// The guest's stdin as far as the digest needs it.
#[derive(Debug, Clone)]
pub enum StdinInput {
    /// Given whole, up front.
    Whole(Bytes),
    /// Streamed: the sha256 and length of what arrived (known at the end).
    Hashed { sha256: [u8; 32], len: u64 },
}

/// Everything that determines a result, captured from a [`Job`] before it
/// runs (cheap: byte buffers are shared, not copied).
#[derive(Debug, Clone)]
pub struct Inputs {
    pub engine: EngineIdentity,
    pub module_sha256: String,
    pub program_name: String,
    pub args: Vec<String>,
    pub env: Vec<(String, String)>,
    pub stdin: StdinInput,
    pub fuel: u64,
    pub memory_bytes: u64,
    pub timeout_ms: u64,
    pub max_output_bytes: u64,
    pub random_seed: u64,
    pub fs: Option<FsSpec>,
}

impl Inputs {
    /// The inputs of `job` on `engine`. Streamed stdin is recorded as
    /// empty until [`Inputs::set_streamed_stdin`] gives its digest.
    pub fn of(job: &Job, engine: &EngineIdentity) -> Self {
        Self {
            engine: engine.clone(),
            module_sha256: job.module.sha256.clone(),
            program_name: job.program_name.clone(),
            args: job.args.clone(),
            env: job.env.clone(),
            stdin: match &job.stdin {
                StdinSource::Bytes(bytes) => StdinInput::Whole(bytes.clone()),
                StdinSource::Stream(_) | StdinSource::Interactive { .. } => StdinInput::Hashed {
                    sha256: Sha256::digest(b"").into(),
                    len: 0,
                },
            },
            fuel: job.fuel,
            memory_bytes: job.memory_bytes,
            timeout_ms: job.timeout.as_millis() as u64,
            max_output_bytes: job.max_output_bytes,
            random_seed: job.random_seed,
            fs: job.fs.clone(),
        }
    }

    /// Streamed stdin, once it has all arrived.
    pub fn set_streamed_stdin(&mut self, sha256: [u8; 32], len: u64) {
        self.stdin = StdinInput::Hashed { sha256, len };
    }

    /// The canonical encoding (see the module docs).
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Encoder::default();
        out.str(ENCODING_VERSION);
        out.str(&self.engine.wasmi_version);
        out.str(&self.engine.fuel_cost_model);
        out.str(&self.engine.wasi_version);
        out.str(&self.module_sha256);
        out.str(&self.program_name);
        out.u64(self.args.len() as u64);
        for arg in &self.args {
            out.str(arg);
        }
        let mut env: Vec<&(String, String)> = self.env.iter().collect();
        env.sort();
        out.u64(env.len() as u64);
        for (key, value) in env {
            out.str(key);
            out.str(value);
        }
        match &self.stdin {
            StdinInput::Whole(bytes) => out.digest(bytes),
            StdinInput::Hashed { sha256, len } => {
                out.u64(*len);
                out.raw(sha256);
            }
        }
        for limit in [
            self.fuel,
            self.memory_bytes,
            self.timeout_ms,
            self.max_output_bytes,
        ] {
            out.u64(limit);
        }
        out.u64(self.random_seed);
        match &self.fs {
            None => out.u8(0),
            Some(fs) => {
                out.u8(1);
                out.u64(fs.max_bytes);
                out.u64(fs.max_entries);
                let mut entries: Vec<_> = fs.entries.iter().collect();
                entries.sort_by(|a, b| a.path.cmp(&b.path));
                out.u64(entries.len() as u64);
                for entry in entries {
                    out.str(&entry.path);
                    match &entry.kind {
                        FsInputKind::File(contents) => {
                            out.u8(1);
                            out.digest(contents);
                        }
                        FsInputKind::Directory => out.u8(2),
                        FsInputKind::Symlink(target) => {
                            out.u8(3);
                            out.str(target);
                        }
                    }
                }
                let mut collect: Vec<&String> = fs.collect.iter().collect();
                collect.sort();
                collect.dedup();
                out.u64(collect.len() as u64);
                for pattern in collect {
                    out.str(pattern);
                }
            }
        }
        out.0
    }

    /// sha256 of [`Inputs::encode`], lowercase hex.
    pub fn sha256(&self) -> String {
        hex::encode(Sha256::digest(self.encode()))
    }
}

/// Fixed-order fields: integers as 8 bytes big-endian, strings as their
/// length then their UTF-8 bytes, large byte strings as their length then
/// their sha256. Every field's extent is known from what precedes it, so
/// two different inputs never encode alike.
#[derive(Default)]
struct Encoder(Vec<u8>);

impl Encoder {
    fn u8(&mut self, value: u8) {
        self.0.push(value);
    }
    fn u64(&mut self, value: u64) {
        self.0.extend_from_slice(&value.to_be_bytes());
    }
    fn raw(&mut self, bytes: &[u8]) {
        self.0.extend_from_slice(bytes);
    }
    fn str(&mut self, text: &str) {
        self.u64(text.len() as u64);
        self.raw(text.as_bytes());
    }
    fn digest(&mut self, bytes: &[u8]) {
        self.u64(bytes.len() as u64);
        self.raw(&Sha256::digest(bytes));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::vfs::FsInput;

    fn inputs() -> Inputs {
        Inputs {
            engine: EngineIdentity::default(),
            module_sha256: "ab".repeat(32),
            program_name: "main.wasm".into(),
            args: vec!["a".into(), "b".into()],
            env: vec![("A".into(), "1".into()), ("B".into(), "2".into())],
            stdin: StdinInput::Whole(Bytes::from_static(b"in")),
            fuel: 1_000,
            memory_bytes: 65_536,
            timeout_ms: 5_000,
            max_output_bytes: 1 << 20,
            random_seed: 7,
            fs: None,
        }
    }

    fn with_fs(entries: Vec<FsInput>, collect: &[&str]) -> Inputs {
        Inputs {
            fs: Some(FsSpec {
                entries,
                collect: collect.iter().map(|p| p.to_string()).collect(),
                max_bytes: 1 << 20,
                max_entries: 100,
            }),
            ..inputs()
        }
    }

    fn file(path: &str, contents: &'static [u8]) -> FsInput {
        FsInput {
            path: path.into(),
            kind: FsInputKind::File(Bytes::from_static(contents)),
        }
    }

    #[test]
    fn the_same_inputs_give_the_same_digest() {
        assert_eq!(inputs().sha256(), inputs().sha256());
    }

    type Change = Box<dyn Fn(&mut Inputs)>;

    #[test]
    fn every_field_changes_the_digest() {
        let base = inputs().sha256();
        let changes: Vec<(&str, Change)> = vec![
            ("wasmi", Box::new(|i| i.engine.wasmi_version.push('x'))),
            (
                "fuel model",
                Box::new(|i| i.engine.fuel_cost_model.push('x')),
            ),
            ("wasi", Box::new(|i| i.engine.wasi_version.push('x'))),
            ("module", Box::new(|i| i.module_sha256 = "cd".repeat(32))),
            ("program", Box::new(|i| i.program_name = "p".into())),
            ("args", Box::new(|i| i.args.push("c".into()))),
            ("env", Box::new(|i| i.env[0].1 = "9".into())),
            (
                "stdin",
                Box::new(|i| i.stdin = StdinInput::Whole(Bytes::from_static(b"iN"))),
            ),
            ("fuel", Box::new(|i| i.fuel += 1)),
            ("memory", Box::new(|i| i.memory_bytes += 1)),
            ("timeout", Box::new(|i| i.timeout_ms += 1)),
            ("output", Box::new(|i| i.max_output_bytes += 1)),
            ("seed", Box::new(|i| i.random_seed += 1)),
            ("fs", Box::new(|i| *i = with_fs(vec![], &[]))),
        ];
        for (name, change) in changes {
            let mut changed = inputs();
            change(&mut changed);
            assert_ne!(changed.sha256(), base, "{name} did not change the digest");
        }
    }

    #[test]
    fn moving_a_boundary_between_strings_changes_the_digest() {
        let mut joined = inputs();
        joined.args = vec!["ab".into()];
        let mut split = inputs();
        split.args = vec!["a".into(), "b".into()];
        assert_ne!(joined.sha256(), split.sha256());
    }

    #[test]
    fn env_order_does_not_matter() {
        let mut reversed = inputs();
        reversed.env.reverse();
        assert_eq!(reversed.sha256(), inputs().sha256());
    }

    #[test]
    fn file_contents_and_collect_patterns_change_the_digest() {
        let base = with_fs(vec![file("a.txt", b"one")], &["out/*"]).sha256();
        assert_ne!(
            with_fs(vec![file("a.txt", b"two")], &["out/*"]).sha256(),
            base
        );
        assert_ne!(
            with_fs(vec![file("a.txt", b"one")], &["out/**"]).sha256(),
            base
        );
    }

    #[test]
    fn entry_and_pattern_order_do_not_matter() {
        let one = with_fs(vec![file("a", b"1"), file("b", b"2")], &["x", "y"]);
        let other = with_fs(vec![file("b", b"2"), file("a", b"1")], &["y", "x"]);
        assert_eq!(one.sha256(), other.sha256());
    }

    #[test]
    fn streamed_stdin_is_keyed_by_its_digest_like_whole_stdin() {
        let mut streamed = inputs();
        streamed.set_streamed_stdin(Sha256::digest(b"in").into(), 2);
        assert_eq!(streamed.sha256(), inputs().sha256());
    }
}
