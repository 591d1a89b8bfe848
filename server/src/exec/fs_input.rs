//! The guest's input tree as a request gives it: proto entries become a
//! [`FsSpec`], a batch case lays its entries over the batch's shared tree,
//! and every tree is validated off the async threads, with errors that name
//! the request's own fields (`fs.entries[2]`, `cases[1].fs.collect[0]`,
//! `fs_chunk`).

use bytes::Bytes;
use wasmwiz_proto::v1::{self, fs_entry::Kind};

use crate::{
    api::errors::{ApiError, Unit},
    engine::vfs::{self, FsInput, FsInputKind, FsSpec, TreeError},
};

/// Longest path or symlink target an entry may have: the engine's limit,
/// checked here too so a streamed entry is refused as it arrives (it bounds
/// what the server keeps per entry beyond the bytes the tree limit counts).
pub use crate::engine::vfs::limits::MAX_PATH_BYTES;

/// Where an entry or pattern of a tree came from: the request list's name
/// (`fs.entries`, `cases[3].fs.collect`, `fs_chunk`) and its index there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Origin {
    list: usize,
    index: usize,
}

/// An input tree with the request field of each entry and pattern.
#[derive(Debug, Clone)]
pub struct FsRequest {
    pub spec: FsSpec,
    lists: Vec<String>,
    entry_origins: Vec<Origin>,
    collect_origins: Vec<Origin>,
}

/// The byte and entry limits a tree is held to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TreeLimits {
    pub max_bytes: u64,
    pub max_entries: u64,
}

impl FsRequest {
    /// An empty tree (a filesystem with nothing in it yet).
    pub fn empty(limits: TreeLimits) -> Self {
        Self {
            spec: FsSpec {
                entries: Vec::new(),
                collect: Vec::new(),
                max_bytes: limits.max_bytes,
                max_entries: limits.max_entries,
            },
            lists: Vec::new(),
            entry_origins: Vec::new(),
            collect_origins: Vec::new(),
        }
    }

    /// The request's `fs` (named `field`, e.g. `fs` or `cases[2].fs`) as a
    /// tree; entries are checked for a kind and for path lengths here, the
    /// rest by [`FsRequest::checked`].
    pub fn from_proto(
        fs: v1::Filesystem,
        field: &str,
        limits: TreeLimits,
    ) -> Result<Self, ApiError> {
        let mut tree = Self::empty(limits);
        let entries = tree.list(format!("{field}.entries"));
        for (index, entry) in fs.entries.into_iter().enumerate() {
            let input = entry_input(entry, || format!("{field}.entries[{index}]"))?;
            tree.push_entry(
                input,
                Origin {
                    list: entries,
                    index,
                },
            );
        }
        let collect = tree.list(format!("{field}.collect"));
        for (index, pattern) in fs.collect.into_iter().enumerate() {
            tree.spec.collect.push(pattern);
            tree.collect_origins.push(Origin {
                list: collect,
                index,
            });
        }
        Ok(tree)
    }

    /// Registers a request list name; returns its number for [`Origin`].
    fn list(&mut self, name: String) -> usize {
        self.lists.push(name);
        self.lists.len() - 1
    }

    fn push_entry(&mut self, input: FsInput, origin: Origin) {
        self.spec.entries.push(input);
        self.entry_origins.push(origin);
    }

    /// Bytes the tree holds as the engine counts them: file contents and
    /// symlink targets.
    pub fn file_bytes(&self) -> u64 {
        self.spec
            .entries
            .iter()
            .map(|entry| match &entry.kind {
                FsInputKind::File(bytes) => bytes.len() as u64,
                FsInputKind::Symlink(target) => target.len() as u64,
                FsInputKind::Directory => 0,
            })
            .sum()
    }

    /// This tree with `case`'s entries laid over it (an entry with a path
    /// already here replaces it in place, others are added in order) and
    /// `case`'s collect patterns added: the tree one batch case starts from.
    /// File contents are shared, not copied.
    pub fn layered(&self, case: &FsRequest) -> FsRequest {
        let mut tree = self.clone();
        let offset = tree.lists.len();
        tree.lists.extend(case.lists.iter().cloned());
        let shift = |origin: Origin| Origin {
            list: origin.list + offset,
            index: origin.index,
        };
        let mut at: std::collections::HashMap<String, usize> = tree
            .spec
            .entries
            .iter()
            .enumerate()
            .map(|(i, entry)| (entry.path.clone(), i))
            .collect();
        for (entry, origin) in case.spec.entries.iter().zip(&case.entry_origins) {
            match at.get(&entry.path) {
                Some(&i) => {
                    tree.spec.entries[i] = entry.clone();
                    tree.entry_origins[i] = shift(*origin);
                }
                None => {
                    at.insert(entry.path.clone(), tree.spec.entries.len());
                    tree.push_entry(entry.clone(), shift(*origin));
                }
            }
        }
        for (pattern, origin) in case.spec.collect.iter().zip(&case.collect_origins) {
            tree.spec.collect.push(pattern.clone());
            tree.collect_origins.push(shift(*origin));
        }
        tree
    }

    /// Runs the engine's checks (paths, duplicates, files used as
    /// directories, patterns, limits) on a blocking thread, since a tree
    /// may hold tens of thousands of entries; the tree comes back when it
    /// passes.
    pub async fn checked(self, tier_name: &str) -> Result<Self, ApiError> {
        let (tree, checked) = tokio::task::spawn_blocking(move || {
            let checked = vfs::validate(&self.spec);
            (self, checked)
        })
        .await
        .map_err(|e| ApiError::Internal(anyhow::anyhow!("tree validation failed: {e}")))?;
        match checked {
            Ok(()) => Ok(tree),
            Err(error) => Err(tree.refusal(error, tier_name)),
        }
    }

    /// The request field that entry `index` of the tree came from.
    fn entry_field(&self, index: usize) -> String {
        self.field(self.entry_origins.get(index).copied())
    }

    fn collect_field(&self, index: usize) -> String {
        self.field(self.collect_origins.get(index).copied())
    }

    fn field(&self, origin: Option<Origin>) -> String {
        match origin {
            Some(origin) => {
                let list = &self.lists[origin.list];
                if list == STREAMED {
                    // Streamed entries are named by message, not by index.
                    STREAMED.to_string()
                } else {
                    format!("{list}[{}]", origin.index)
                }
            }
            None => "fs".to_string(),
        }
    }

    /// A refused tree as the API reports it, naming the request's field.
    pub fn refusal(&self, error: TreeError, tier_name: &str) -> ApiError {
        match error {
            TreeError::BadEntry {
                index,
                path,
                reason,
            } => {
                let field = self.entry_field(index);
                ApiError::invalid(field.clone(), format!("{field} ({path:?}): {reason}"))
            }
            TreeError::BadPattern {
                index,
                pattern,
                reason,
            } => {
                let field = self.collect_field(index);
                ApiError::invalid(field.clone(), format!("{field} ({pattern:?}): {reason}"))
            }
            TreeError::TooManyBytes { requested, maximum } => {
                self.too_big(requested, maximum, Unit::Bytes, tier_name)
            }
            TreeError::TooManyEntries { requested, maximum } => {
                self.too_big(requested, maximum, Unit::Count, tier_name)
            }
        }
    }

    fn too_big(&self, requested: u64, maximum: u64, unit: Unit, tier: &str) -> ApiError {
        ApiError::TreeTooBig(Box::new(crate::api::errors::TreeTooBig {
            requested,
            maximum,
            unit,
            tier: tier.to_string(),
        }))
    }
}

/// The list name of entries streamed as `fs_chunk` messages.
pub const STREAMED: &str = "fs_chunk";

/// One proto entry as the engine's input, or INVALID_ARGUMENT naming it.
fn entry_input(entry: v1::FsEntry, field: impl Fn() -> String) -> Result<FsInput, ApiError> {
    check_length(&entry.path, "path", &field)?;
    let kind = match entry.kind {
        Some(Kind::File(bytes)) => FsInputKind::File(bytes),
        Some(Kind::Directory(_)) => FsInputKind::Directory,
        Some(Kind::Symlink(target)) => {
            check_length(&target, "symlink target", &field)?;
            FsInputKind::Symlink(target)
        }
        None => {
            return Err(ApiError::invalid(
                field(),
                format!(
                    "{} ({:?}) has no kind: set `file`, `directory` or `symlink`",
                    field(),
                    entry.path
                ),
            ))
        }
    };
    Ok(FsInput {
        path: entry.path,
        kind,
    })
}

fn check_length(text: &str, what: &str, field: &impl Fn() -> String) -> Result<(), ApiError> {
    if text.len() > MAX_PATH_BYTES {
        return Err(ApiError::invalid(
            field(),
            format!(
                "{}: the {what} is {} bytes long; the limit is {MAX_PATH_BYTES}",
                field(),
                text.len()
            ),
        ));
    }
    Ok(())
}

/// Entries streamed as `fs_chunk` messages, added to a tree as they arrive:
/// consecutive chunks with one path append to that file; a path seen before
/// (in `start.fs` or earlier in the stream) is a duplicate. Limits are
/// checked per chunk, so a client past them is refused before the server
/// holds more than one message beyond the limit.
pub struct StreamedTree {
    tree: FsRequest,
    list: usize,
    seen: std::collections::HashSet<String>,
    /// The file being appended to: its path and contents so far.
    open: Option<(String, bytes::BytesMut)>,
    bytes: u64,
    entries: u64,
    tier_name: String,
}

impl StreamedTree {
    pub fn new(mut tree: FsRequest, tier_name: &str) -> Self {
        let list = tree.list(STREAMED.to_string());
        let seen = tree.spec.entries.iter().map(|e| e.path.clone()).collect();
        let bytes = tree.file_bytes();
        let entries = tree.spec.entries.len() as u64;
        Self {
            tree,
            list,
            seen,
            open: None,
            bytes,
            entries,
            tier_name: tier_name.to_string(),
        }
    }

    /// Adds one `fs_chunk`.
    pub fn push(&mut self, chunk: v1::FsEntry) -> Result<(), ApiError> {
        let appends = matches!(
            (&self.open, &chunk.kind),
            (Some((path, _)), Some(Kind::File(_))) if *path == chunk.path
        );
        // Symlink targets count as the engine counts them: tree bytes.
        let data_len = match &chunk.kind {
            Some(Kind::File(data)) => data.len() as u64,
            Some(Kind::Symlink(target)) => target.len() as u64,
            _ => 0,
        };
        self.bytes += data_len;
        let (max_bytes, max_entries) = (self.tree.spec.max_bytes, self.tree.spec.max_entries);
        if self.bytes > max_bytes {
            return Err(self
                .tree
                .too_big(self.bytes, max_bytes, Unit::Bytes, &self.tier_name));
        }
        if appends {
            if let (Some((_, contents)), Some(Kind::File(data))) = (&mut self.open, &chunk.kind) {
                contents.extend_from_slice(data);
            }
            return Ok(());
        }
        self.close_open();
        let path = chunk.path.clone();
        if self.seen.contains(&path) {
            return Err(ApiError::invalid(
                STREAMED,
                format!(
                    "fs_chunk ({path:?}): this path was already given; chunks of one file \
                     must follow each other"
                ),
            ));
        }
        self.entries += 1;
        if self.entries > max_entries {
            return Err(self
                .tree
                .too_big(self.entries, max_entries, Unit::Count, &self.tier_name));
        }
        let input = entry_input(chunk, || STREAMED.to_string())?;
        self.seen.insert(path.clone());
        match input.kind {
            FsInputKind::File(data) => {
                self.open = Some((path, bytes::BytesMut::from(&data[..])));
            }
            kind => {
                let origin = Origin {
                    list: self.list,
                    index: self.entries as usize,
                };
                self.tree.push_entry(FsInput { path, kind }, origin);
            }
        }
        Ok(())
    }

    fn close_open(&mut self) {
        if let Some((path, contents)) = self.open.take() {
            let origin = Origin {
                list: self.list,
                index: self.entries as usize,
            };
            self.tree.push_entry(
                FsInput {
                    path,
                    kind: FsInputKind::File(Bytes::from(contents)),
                },
                origin,
            );
        }
    }

    /// The whole tree, once the stream of entries has ended.
    pub fn finish(mut self) -> FsRequest {
        self.close_open();
        self.tree
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: TreeLimits = TreeLimits {
        max_bytes: 10,
        max_entries: 3,
    };

    fn file(path: &str, data: &[u8]) -> v1::FsEntry {
        v1::FsEntry {
            path: path.into(),
            kind: Some(Kind::File(Bytes::copy_from_slice(data))),
        }
    }

    fn tree(entries: Vec<v1::FsEntry>, collect: &[&str], field: &str) -> FsRequest {
        FsRequest::from_proto(
            v1::Filesystem {
                entries,
                collect: collect.iter().map(|s| s.to_string()).collect(),
            },
            field,
            LIMITS,
        )
        .unwrap()
    }

    fn contents(tree: &FsRequest, path: &str) -> Option<Bytes> {
        tree.spec
            .entries
            .iter()
            .find(|e| e.path == path)
            .and_then(|e| match &e.kind {
                FsInputKind::File(bytes) => Some(bytes.clone()),
                _ => None,
            })
    }

    #[test]
    fn an_entry_without_a_kind_is_refused_by_its_index() {
        let error = FsRequest::from_proto(
            v1::Filesystem {
                entries: vec![
                    file("a", b""),
                    v1::FsEntry {
                        path: "b".into(),
                        kind: None,
                    },
                ],
                collect: vec![],
            },
            "fs",
            LIMITS,
        )
        .unwrap_err();
        assert!(
            matches!(&error, ApiError::InvalidArgument { field, .. } if field == "fs.entries[1]"),
            "{error:?}"
        );
    }

    #[test]
    fn a_path_past_path_max_is_refused() {
        let error = FsRequest::from_proto(
            v1::Filesystem {
                entries: vec![file(&"a".repeat(MAX_PATH_BYTES + 1), b"")],
                collect: vec![],
            },
            "fs",
            LIMITS,
        )
        .unwrap_err();
        assert!(error.to_string().contains("4096"), "{error}");
    }

    #[test]
    fn a_case_replaces_shared_entries_by_path_and_adds_the_rest() {
        let shared = tree(
            vec![file("a", b"shared"), file("b", b"b")],
            &["out/*"],
            "fs",
        );
        let case = tree(
            vec![file("a", b"case"), file("c", b"c")],
            &["*.txt"],
            "cases[1].fs",
        );
        let layered = shared.layered(&case);
        let paths: Vec<&str> = layered
            .spec
            .entries
            .iter()
            .map(|e| e.path.as_str())
            .collect();
        assert_eq!(paths, ["a", "b", "c"]);
        assert_eq!(contents(&layered, "a").unwrap(), "case");
        assert_eq!(layered.spec.collect, ["out/*", "*.txt"]);
    }

    #[test]
    fn a_layered_tree_names_the_case_field_of_a_case_entry() {
        let shared = tree(vec![file("a", b"")], &["x"], "fs");
        let case = tree(vec![file("b", b"")], &["y"], "cases[4].fs");
        let layered = shared.layered(&case);
        assert_eq!(layered.entry_field(0), "fs.entries[0]");
        assert_eq!(layered.entry_field(1), "cases[4].fs.entries[0]");
        assert_eq!(layered.collect_field(1), "cases[4].fs.collect[0]");
    }

    #[test]
    fn an_engine_refusal_names_the_entry_it_is_about() {
        let shared = tree(vec![file("a", b""), file("b", b"")], &[], "fs");
        let error = shared.refusal(
            TreeError::BadEntry {
                index: 1,
                path: "b".into(),
                reason: "duplicate".into(),
            },
            "free",
        );
        assert!(
            matches!(&error, ApiError::InvalidArgument { field, .. } if field == "fs.entries[1]"),
            "{error:?}"
        );
    }

    #[test]
    fn consecutive_chunks_of_one_path_append() {
        let mut streamed = StreamedTree::new(FsRequest::empty(LIMITS), "free");
        streamed.push(file("a", b"12")).unwrap();
        streamed.push(file("a", b"34")).unwrap();
        streamed.push(file("b", b"5")).unwrap();
        let tree = streamed.finish();
        assert_eq!(contents(&tree, "a").unwrap(), "1234");
        assert_eq!(contents(&tree, "b").unwrap(), "5");
    }

    #[test]
    fn a_path_given_again_later_is_a_duplicate() {
        let mut streamed = StreamedTree::new(FsRequest::empty(LIMITS), "free");
        streamed.push(file("a", b"1")).unwrap();
        streamed.push(file("b", b"2")).unwrap();
        let error = streamed.push(file("a", b"3")).unwrap_err();
        assert!(
            matches!(&error, ApiError::InvalidArgument { field, .. } if field == "fs_chunk"),
            "{error:?}"
        );
    }

    #[test]
    fn a_streamed_path_already_in_start_fs_is_a_duplicate() {
        let start = tree(vec![file("a", b"1")], &[], "fs");
        let mut streamed = StreamedTree::new(start, "free");
        assert!(streamed.push(file("a", b"2")).is_err());
    }

    #[test]
    fn streamed_bytes_past_the_limit_are_refused_at_the_chunk_that_passes_it() {
        let mut streamed = StreamedTree::new(FsRequest::empty(LIMITS), "free");
        streamed.push(file("a", &[0; 6])).unwrap();
        let error = streamed.push(file("a", &[0; 5])).unwrap_err();
        assert!(matches!(error, ApiError::TreeTooBig(ref big) if big.requested == 11));
    }

    #[test]
    fn streamed_entries_past_the_limit_are_refused() {
        let mut streamed = StreamedTree::new(FsRequest::empty(LIMITS), "free");
        for path in ["a", "b", "c"] {
            streamed.push(file(path, b"")).unwrap();
        }
        let error = streamed.push(file("d", b"")).unwrap_err();
        assert!(matches!(error, ApiError::TreeTooBig(ref big) if big.unit == Unit::Count));
    }
}
