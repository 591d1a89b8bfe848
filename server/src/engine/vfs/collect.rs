//! What comes back after the run: regular files matching a `collect`
//! pattern that the run created or changed (or that now sit at a path other
//! than the one the request gave them), in path order, cut to what is left
//! of the output limit.

use globset::{Glob, GlobBuilder, GlobSet, GlobSetBuilder};

use super::{tree::Tree, CollectedFile};

/// One `collect` pattern: `*` and `?` stay within a path segment, `**`
/// crosses them ("**" alone matches every file).
pub fn glob(pattern: &str) -> Result<Glob, globset::Error> {
    GlobBuilder::new(pattern)
        .literal_separator(true)
        .backslash_escape(true)
        .build()
}

fn glob_set(patterns: &[String]) -> GlobSet {
    let mut set = GlobSetBuilder::new();
    for pattern in patterns {
        // Validated with the request; an invalid one matches nothing.
        if let Ok(glob) = glob(pattern) {
            set.add(glob);
        }
    }
    set.build().unwrap_or_else(|_| GlobSet::empty())
}

/// The files to send back, in path order.
pub fn collect(tree: &mut Tree, patterns: &[String]) -> Vec<CollectedFile> {
    if patterns.is_empty() {
        return Vec::new();
    }
    let set = glob_set(patterns);
    let mut out = Vec::new();
    for (path, ino) in tree.files() {
        let Some(node) = tree.node(ino) else { continue };
        let fresh = node.changed || node.input_path.as_deref() != Some(path.as_str());
        if !fresh || !set.is_match(&path) {
            continue;
        }
        if let Some(contents) = tree.share(ino) {
            out.push(CollectedFile { path, contents });
        }
    }
    out
}

/// Keeps at most `room` bytes of file contents: files in order, the one
/// that does not fit cut at exactly the limit, the rest dropped. Returns
/// whether anything was cut.
pub fn cut_to(files: &mut Vec<CollectedFile>, room: u64) -> bool {
    let mut left = room;
    for (i, file) in files.iter_mut().enumerate() {
        let len = file.contents.len() as u64;
        if len <= left {
            left -= len;
            continue;
        }
        file.contents.truncate(left as usize);
        files.truncate(i + 1);
        return true;
    }
    false
}
