//! The guest's filesystem as plain Rust values: the tree a run starts with
//! ([`Filesystem`], [`FsEntry`]), what comes back ([`File`]), and the
//! pieces both travel in.

use std::path::Path;

use bytes::Bytes;

use crate::proto;

/// Largest piece of a file in one message, both ways (the server sends
/// collected files in pieces of at most this; [`crate::Run`] streams input
/// files in pieces of this).
pub const PIECE_BYTES: usize = 1 << 20;

/// What an entry of the input tree is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FsKind {
    /// A regular file with these contents.
    File(Bytes),
    /// A directory (parents of any entry are created implicitly).
    Directory,
    /// A symbolic link with this target.
    Symlink(String),
}

/// One entry of the input tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FsEntry {
    /// Relative to the guest's root `/`, `/`-separated (`data/in.txt`).
    pub path: String,
    /// What it is.
    pub kind: FsKind,
}

/// A per-execution in-memory filesystem: the guest sees it as one
/// preopened directory, fd 3, named `/`. Without one (the default) the
/// guest has no preopens at all.
///
/// ```
/// use wasmwiz::Filesystem;
///
/// let fs = Filesystem::new()
///     .file("input/data.txt", "hello\n")
///     .directory("out")
///     .collect("out/**");
/// # let _ = fs;
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Filesystem {
    /// The initial tree, in order.
    pub entries: Vec<FsEntry>,
    /// Glob patterns of files to send back after the run.
    pub collect: Vec<String>,
}

impl Filesystem {
    /// An empty filesystem (the guest still gets its preopen).
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a regular file.
    pub fn file(mut self, path: impl Into<String>, contents: impl Into<Bytes>) -> Self {
        self.entries.push(FsEntry {
            path: path.into(),
            kind: FsKind::File(contents.into()),
        });
        self
    }

    /// Adds a directory.
    pub fn directory(mut self, path: impl Into<String>) -> Self {
        self.entries.push(FsEntry {
            path: path.into(),
            kind: FsKind::Directory,
        });
        self
    }

    /// Adds a symbolic link.
    pub fn symlink(mut self, path: impl Into<String>, target: impl Into<String>) -> Self {
        self.entries.push(FsEntry {
            path: path.into(),
            kind: FsKind::Symlink(target.into()),
        });
        self
    }

    /// Adds a file read from the local disk at `guest_path`.
    pub fn local_file(self, guest_path: &str, local: impl AsRef<Path>) -> std::io::Result<Self> {
        let contents = std::fs::read(local)?;
        Ok(self.file(guest_path, contents))
    }

    /// Adds a local directory's contents, recursively, under `guest_dir`
    /// (`""` for the root): files, directories and symlinks (as links,
    /// never followed), in name order. Names that are not UTF-8 are an
    /// error.
    pub fn local_dir(mut self, guest_dir: &str, local: impl AsRef<Path>) -> std::io::Result<Self> {
        let guest_dir = guest_dir.trim_matches('/');
        if !guest_dir.is_empty() {
            self = self.directory(guest_dir);
        }
        add_dir(&mut self, guest_dir, local.as_ref())?;
        Ok(self)
    }

    /// Adds a glob pattern of files to send back (`out/*.png`, `**`).
    pub fn collect(mut self, pattern: impl Into<String>) -> Self {
        self.collect.push(pattern.into());
        self
    }

    /// Bytes of file contents in the tree.
    pub fn file_bytes(&self) -> u64 {
        self.entries
            .iter()
            .map(|e| match &e.kind {
                FsKind::File(b) => b.len() as u64,
                _ => 0,
            })
            .sum()
    }

    pub(crate) fn to_proto(&self) -> proto::Filesystem {
        proto::Filesystem {
            entries: self.entries.iter().map(FsEntry::to_proto).collect(),
            collect: self.collect.clone(),
        }
    }

    /// The entries as `fs_chunk`s: files in pieces of at most `piece`
    /// bytes (an empty file is one empty chunk).
    pub(crate) fn chunks(&self, piece: usize) -> impl Iterator<Item = proto::FsEntry> + '_ {
        self.entries
            .iter()
            .flat_map(move |entry| match &entry.kind {
                FsKind::File(contents) => {
                    let len = contents.len();
                    let count = len.div_ceil(piece).max(1);
                    (0..count)
                        .map(|i| proto::FsEntry {
                            path: entry.path.clone(),
                            kind: Some(proto::fs_entry::Kind::File(
                                contents.slice(i * piece..((i + 1) * piece).min(len)),
                            )),
                        })
                        .collect::<Vec<_>>()
                }
                _ => vec![entry.to_proto()],
            })
    }
}

fn add_dir(fs: &mut Filesystem, guest_dir: &str, local: &Path) -> std::io::Result<()> {
    let mut children: Vec<_> = std::fs::read_dir(local)?.collect::<Result<_, _>>()?;
    children.sort_by_key(|c| c.file_name());
    for child in children {
        let name = child.file_name().into_string().map_err(|name| {
            std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!("{name:?} in {} is not UTF-8", local.display()),
            )
        })?;
        let path = if guest_dir.is_empty() {
            name
        } else {
            format!("{guest_dir}/{name}")
        };
        let kind = child.file_type()?;
        if kind.is_symlink() {
            let target = std::fs::read_link(child.path())?;
            let target = target.to_str().ok_or_else(|| {
                std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    format!("the target of {} is not UTF-8", child.path().display()),
                )
            })?;
            fs.entries.push(FsEntry {
                path,
                kind: FsKind::Symlink(target.to_string()),
            });
        } else if kind.is_dir() {
            fs.entries.push(FsEntry {
                path: path.clone(),
                kind: FsKind::Directory,
            });
            add_dir(fs, &path, &child.path())?;
        } else {
            let contents = std::fs::read(child.path())?;
            fs.entries.push(FsEntry {
                path,
                kind: FsKind::File(contents.into()),
            });
        }
    }
    Ok(())
}

impl FsEntry {
    pub(crate) fn to_proto(&self) -> proto::FsEntry {
        proto::FsEntry {
            path: self.path.clone(),
            kind: Some(match &self.kind {
                FsKind::File(b) => proto::fs_entry::Kind::File(b.clone()),
                FsKind::Directory => proto::fs_entry::Kind::Directory(true),
                FsKind::Symlink(t) => proto::fs_entry::Kind::Symlink(t.clone()),
            }),
        }
    }
}

/// A file the guest left that matched a `collect` pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct File {
    /// Relative to the guest's root, `/`-separated.
    pub path: String,
    /// Its whole contents.
    pub contents: Bytes,
}

/// Reassembles collected files from their pieces: consecutive pieces with
/// one path are one file.
#[derive(Debug, Default)]
pub(crate) struct Reassembly {
    files: Vec<File>,
    open: Option<(String, bytes::BytesMut)>,
}

impl Reassembly {
    /// Adds one piece (a proto `file` event's entry).
    pub(crate) fn push(&mut self, path: String, data: &[u8]) {
        match &mut self.open {
            Some((open, contents)) if *open == path => contents.extend_from_slice(data),
            _ => {
                self.close();
                self.open = Some((path, bytes::BytesMut::from(data)));
            }
        }
    }

    fn close(&mut self) {
        if let Some((path, contents)) = self.open.take() {
            self.files.push(File {
                path,
                contents: contents.freeze(),
            });
        }
    }

    pub(crate) fn finish(mut self) -> Vec<File> {
        self.close();
        self.files
    }
}

/// The bytes of a proto `file` event (always a file).
pub(crate) fn piece_data(entry: &proto::FsEntry) -> Bytes {
    match &entry.kind {
        Some(proto::fs_entry::Kind::File(data)) => data.clone(),
        _ => Bytes::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn big_files_are_streamed_in_pieces_and_empty_files_as_one_chunk() {
        let fs = Filesystem::new()
            .file("big", vec![1u8; 5])
            .file("empty", "")
            .directory("d");
        let sizes: Vec<(String, Option<usize>)> = fs
            .chunks(2)
            .map(|c| {
                let len = match c.kind {
                    Some(proto::fs_entry::Kind::File(b)) => Some(b.len()),
                    _ => None,
                };
                (c.path, len)
            })
            .collect();
        assert_eq!(
            sizes,
            [
                ("big".to_string(), Some(2)),
                ("big".to_string(), Some(2)),
                ("big".to_string(), Some(1)),
                ("empty".to_string(), Some(0)),
                ("d".to_string(), None),
            ]
        );
    }

    #[test]
    fn pieces_of_one_path_reassemble_into_one_file() {
        let mut files = Reassembly::default();
        files.push("a".into(), b"12");
        files.push("a".into(), b"34");
        files.push("b".into(), b"");
        let files = files.finish();
        assert_eq!(files.len(), 2);
        assert_eq!(files[0].contents, "1234");
        assert_eq!(files[1].contents, "");
    }

    #[test]
    fn a_local_directory_is_added_recursively_under_its_guest_path() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("sub")).unwrap();
        std::fs::write(dir.path().join("sub/b.txt"), "b").unwrap();
        std::fs::write(dir.path().join("a.txt"), "a").unwrap();
        let fs = Filesystem::new().local_dir("src", dir.path()).unwrap();
        let paths: Vec<&str> = fs.entries.iter().map(|e| e.path.as_str()).collect();
        assert_eq!(paths, ["src", "src/a.txt", "src/sub", "src/sub/b.txt"]);
    }
}
