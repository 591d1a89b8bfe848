//! Checks a request's input tree before anything is built: one pass over
//! the entries, each new path prefix hashed once.

use std::collections::HashMap;

use super::{
    limits::{
        MAX_COLLECT_PATTERNS, MAX_INPUT_DEPTH, MAX_NAME_BYTES, MAX_PATH_BYTES, MAX_PATTERN_BYTES,
        MAX_SYMLINK_TARGET_BYTES,
    },
    FsInputKind, FsSpec, TreeError,
};

/// What a path is in the tree being checked.
#[derive(Clone, Copy)]
struct Seen {
    /// The entry that gave it (or first needed it as a parent).
    index: usize,
    is_dir: bool,
    explicit: bool,
}

pub fn validate(spec: &FsSpec) -> Result<(), TreeError> {
    check_patterns(&spec.collect)?;
    let mut seen: HashMap<&str, Seen> = HashMap::with_capacity(spec.entries.len());
    let mut bytes: u64 = 0;
    for (index, entry) in spec.entries.iter().enumerate() {
        let bad = |reason: String| TreeError::BadEntry {
            index,
            path: entry.path.clone(),
            reason,
        };
        check_path(&entry.path).map_err(bad)?;
        let is_dir = matches!(entry.kind, FsInputKind::Directory);
        bytes = bytes.saturating_add(match &entry.kind {
            FsInputKind::File(contents) => contents.len() as u64,
            FsInputKind::Symlink(target) => {
                check_target(target).map_err(bad)?;
                target.len() as u64
            }
            FsInputKind::Directory => 0,
        });
        if bytes > spec.max_bytes {
            return Err(TreeError::TooManyBytes {
                requested: total_bytes(spec),
                maximum: spec.max_bytes,
            });
        }
        match seen.get_mut(entry.path.as_str()) {
            Some(other) if other.explicit => {
                return Err(bad(format!("the same path as fs.entries[{}]", other.index)))
            }
            Some(other) if !is_dir => {
                return Err(bad(format!(
                    "is a {} but fs.entries[{}] is inside it",
                    kind_name(&entry.kind),
                    other.index
                )))
            }
            Some(other) => {
                other.explicit = true;
                other.index = index;
                continue;
            }
            None => {}
        }
        seen.insert(
            &entry.path,
            Seen {
                index,
                is_dir,
                explicit: true,
            },
        );
        // Parents, longest first, until one already known (whose own
        // parents are then known directories).
        let mut path = entry.path.as_str();
        while let Some(cut) = path.rfind('/') {
            path = &path[..cut];
            match seen.get(path) {
                Some(parent) if parent.is_dir => break,
                Some(parent) => {
                    return Err(bad(format!(
                        "is inside fs.entries[{}] ({path:?}), which is not a directory",
                        parent.index
                    )))
                }
                None => {
                    seen.insert(
                        path,
                        Seen {
                            index,
                            is_dir: true,
                            explicit: false,
                        },
                    );
                }
            }
        }
        if seen.len() as u64 > spec.max_entries {
            return Err(TreeError::TooManyEntries {
                requested: count_entries(spec),
                maximum: spec.max_entries,
            });
        }
    }
    Ok(())
}

fn kind_name(kind: &FsInputKind) -> &'static str {
    match kind {
        FsInputKind::File(_) => "file",
        FsInputKind::Directory => "directory",
        FsInputKind::Symlink(_) => "symlink",
    }
}

fn total_bytes(spec: &FsSpec) -> u64 {
    spec.entries
        .iter()
        .map(|e| match &e.kind {
            FsInputKind::File(contents) => contents.len() as u64,
            FsInputKind::Symlink(target) => target.len() as u64,
            FsInputKind::Directory => 0,
        })
        .fold(0, u64::saturating_add)
}

/// Entries with implicit parents, for the error message (each distinct
/// path once; only computed when the limit is already passed).
fn count_entries(spec: &FsSpec) -> u64 {
    let mut paths = std::collections::HashSet::new();
    for entry in &spec.entries {
        let mut path = entry.path.as_str();
        if !paths.insert(path) {
            continue;
        }
        while let Some(cut) = path.rfind('/') {
            path = &path[..cut];
            if !paths.insert(path) {
                break;
            }
        }
    }
    paths.len() as u64
}

fn check_path(path: &str) -> Result<(), String> {
    if path.is_empty() {
        return Err("the path is empty".into());
    }
    if path.len() > MAX_PATH_BYTES {
        return Err(format!(
            "the path is {} bytes; at most {MAX_PATH_BYTES}",
            path.len()
        ));
    }
    if path.starts_with('/') {
        return Err("the path must be relative (no leading '/')".into());
    }
    let mut depth = 0;
    for segment in path.split('/') {
        depth += 1;
        match segment {
            "" => return Err("the path has an empty segment".into()),
            "." | ".." => return Err(format!("the path has a {segment:?} segment")),
            _ if segment.len() > MAX_NAME_BYTES => {
                return Err(format!(
                    "a path segment is {} bytes; at most {MAX_NAME_BYTES}",
                    segment.len()
                ))
            }
            _ if segment.contains('\0') => return Err("the path contains a NUL byte".into()),
            _ => {}
        }
    }
    if depth > MAX_INPUT_DEPTH {
        return Err(format!(
            "the path is {depth} segments deep; at most {MAX_INPUT_DEPTH}"
        ));
    }
    Ok(())
}

fn check_target(target: &str) -> Result<(), String> {
    if target.is_empty() {
        return Err("the symlink target is empty".into());
    }
    if target.len() > MAX_SYMLINK_TARGET_BYTES {
        return Err(format!(
            "the symlink target is {} bytes; at most {MAX_SYMLINK_TARGET_BYTES}",
            target.len()
        ));
    }
    if target.contains('\0') {
        return Err("the symlink target contains a NUL byte".into());
    }
    Ok(())
}

fn check_patterns(patterns: &[String]) -> Result<(), TreeError> {
    if patterns.len() > MAX_COLLECT_PATTERNS {
        return Err(TreeError::BadPattern {
            index: MAX_COLLECT_PATTERNS,
            pattern: patterns[MAX_COLLECT_PATTERNS].clone(),
            reason: format!("at most {MAX_COLLECT_PATTERNS} patterns"),
        });
    }
    for (index, pattern) in patterns.iter().enumerate() {
        let bad = |reason: String| TreeError::BadPattern {
            index,
            pattern: pattern.clone(),
            reason,
        };
        if pattern.len() > MAX_PATTERN_BYTES {
            return Err(bad(format!(
                "the pattern is {} bytes; at most {MAX_PATTERN_BYTES}",
                pattern.len()
            )));
        }
        super::collect::glob(pattern).map_err(|e| bad(e.kind().to_string()))?;
    }
    Ok(())
}
