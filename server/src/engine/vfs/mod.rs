//! The guest's per-execution in-memory filesystem: the tree a request gives,
//! what the guest sees of it (one preopened directory, fd 3, named `/`), and
//! the files collected from it after the run. Nothing here touches the
//! host's filesystem.
//!
//! This file holds the types the rest of the server uses; the tree and its
//! WASI preview1 implementation live in the submodules.

use std::sync::Arc;

use bytes::Bytes;
use parking_lot::{Mutex, MutexGuard};

mod collect;
mod dir;
mod file;
pub mod limits;
pub mod tree;
mod validate;

pub use self::{dir::VDir, file::VFile};

/// One entry of the input tree, as the request gives it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FsInput {
    /// Relative to the guest's root, `/`-separated (validated by [`validate`]).
    pub path: String,
    pub kind: FsInputKind,
}

/// What an input entry is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FsInputKind {
    /// A regular file with these contents.
    File(Bytes),
    /// A directory (parents of any entry exist implicitly).
    Directory,
    /// A symbolic link with this target.
    Symlink(String),
}

/// Everything the engine needs to give a guest a filesystem.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FsSpec {
    /// The initial tree, in request order (already merged: one entry per path).
    pub entries: Vec<FsInput>,
    /// Glob patterns of files to send back after the run.
    pub collect: Vec<String>,
    /// Total bytes of file contents the tree may hold, input included.
    pub max_bytes: u64,
    /// Entries (files, directories, symlinks) the tree may hold.
    pub max_entries: u64,
}

/// A regular file sent back after the run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CollectedFile {
    pub path: String,
    pub contents: Bytes,
}

/// Why an input tree was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TreeError {
    /// Entry `index` (path `path`) is not acceptable, for `reason`.
    #[error("fs.entries[{index}] ({path:?}): {reason}")]
    BadEntry {
        index: usize,
        path: String,
        reason: String,
    },
    /// A `collect` pattern is not a valid glob.
    #[error("fs.collect[{index}] ({pattern:?}): {reason}")]
    BadPattern {
        index: usize,
        pattern: String,
        reason: String,
    },
    /// The tree's file contents exceed `max_bytes`.
    #[error("the input files hold {requested} bytes; the limit is {maximum}")]
    TooManyBytes { requested: u64, maximum: u64 },
    /// The tree has more entries than `max_entries`.
    #[error("the input tree has {requested} entries; the limit is {maximum}")]
    TooManyEntries { requested: u64, maximum: u64 },
}

/// Checks an input tree without building it: paths, duplicates, a file
/// used as a directory, glob patterns, and the byte and entry limits
/// (implicit parent directories count as entries).
/// Linear in the entries' total path bytes.
pub fn validate(spec: &FsSpec) -> Result<(), TreeError> {
    validate::validate(spec)
}

/// One execution's filesystem, shared by the guest's handles and the host
/// (which pays the fuel the tree's work owes and collects files after).
#[derive(Clone, Debug)]
pub struct Fs(Arc<Mutex<tree::Tree>>);

impl Fs {
    /// Builds the tree a request gives (validating it first).
    pub fn build(spec: &FsSpec) -> Result<Self, TreeError> {
        Ok(Self(Arc::new(Mutex::new(tree::Tree::build(spec)?))))
    }

    pub fn lock(&self) -> MutexGuard<'_, tree::Tree> {
        self.0.lock()
    }

    /// Whether both handles are the same filesystem.
    pub fn same(&self, other: &Fs) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }

    /// The guest's root directory handle (its preopen).
    pub fn root(&self) -> VDir {
        VDir::new(self.clone(), tree::ROOT)
    }

    /// Fuel owed for the tree's work since the last call.
    pub fn take_fuel(&self) -> u64 {
        self.lock().take_fuel()
    }

    /// The files to send back after the run, in path order.
    pub fn collect(&self, patterns: &[String]) -> Vec<CollectedFile> {
        collect::collect(&mut self.lock(), patterns)
    }
}

/// Keeps at most `room` bytes of collected contents (the last kept file
/// cut at exactly the limit, later ones dropped); true if anything was cut.
pub fn cut_files(files: &mut Vec<CollectedFile>, room: u64) -> bool {
    collect::cut_to(files, room)
}
#[cfg(test)]
mod tests;
