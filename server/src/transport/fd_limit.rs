//! The process's file-descriptor limit, set deliberately at start: every
//! connection holds one, so the global connection cap is derived from it.

use rlimit::Resource;

/// Descriptors kept free of connections: database pool, log files, the
/// listener, module files.
pub const RESERVED_FDS: u64 = 256;

/// Raises the soft RLIMIT_NOFILE to the hard limit and returns the soft
/// limit now in force (logged: "too many open files" is otherwise a puzzle).
pub fn raise_fd_limit() -> u64 {
    let raised = rlimit::increase_nofile_limit(u64::MAX);
    let (soft, hard) = current().unwrap_or((0, 0));
    match raised {
        Ok(_) => tracing::info!(soft, hard, "file-descriptor limit (RLIMIT_NOFILE)"),
        Err(error) => tracing::warn!(%error, soft, hard, "could not raise RLIMIT_NOFILE"),
    }
    soft
}

/// The (soft, hard) RLIMIT_NOFILE.
pub fn current() -> std::io::Result<(u64, u64)> {
    rlimit::getrlimit(Resource::NOFILE)
}

/// The global connection cap: `configured` if set, else the soft fd limit
/// less [`RESERVED_FDS`] (at least 16).
pub fn connection_cap(configured: usize) -> usize {
    if configured > 0 {
        return configured;
    }
    let soft = current().map(|(soft, _)| soft).unwrap_or(1024);
    soft.saturating_sub(RESERVED_FDS)
        .clamp(16, usize::MAX as u64) as usize
}
