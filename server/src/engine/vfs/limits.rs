//! Bounds on everything a request or a guest controls in the filesystem.

/// Longest path a request or a guest may give (Linux `PATH_MAX`).
pub const MAX_PATH_BYTES: usize = 4096;
/// Longest single path component (Linux `NAME_MAX`).
pub const MAX_NAME_BYTES: usize = 255;
/// Deepest input path, in components.
pub const MAX_INPUT_DEPTH: usize = 128;
/// Longest symlink target (Linux `PATH_MAX`).
pub const MAX_SYMLINK_TARGET_BYTES: usize = 4096;
/// Symlinks one path resolution may follow before `ELOOP` (Linux's 40).
pub const MAX_SYMLINK_HOPS: u32 = 40;
/// `collect` patterns a request may give, and the longest one.
pub const MAX_COLLECT_PATTERNS: usize = 64;
pub const MAX_PATTERN_BYTES: usize = 1024;
/// Fuel per unit of tree work a call's arguments do not price: a path
/// component walked, a directory entry produced or skipped by
/// `fd_readdir`, a level walked up by `rename` (a map lookup plus the component's copy, ≈ 50–100 ns).
pub const STEP_FUEL: u64 = 100;
