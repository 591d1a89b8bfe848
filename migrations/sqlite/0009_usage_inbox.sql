-- Usage rows land here first, on the embedded file only: the commit a run
-- waits for appends to this one B-tree instead of writing usage_records'
-- table and indexes (five B-trees for a finished row). The usage writer
-- moves them into usage_records in batches (one commit for many rows), and
-- every read of usage_records moves what is left first
-- (server/src/store/usage_inbox.rs).
-- The columns are usage_records'; seq keeps the order rows were written.
CREATE TABLE usage_inbox (
    seq INTEGER PRIMARY KEY,
    id TEXT NOT NULL,
    user_id TEXT NOT NULL,
    key_id TEXT NOT NULL,
    module_sha256 TEXT NOT NULL,
    day TEXT NOT NULL,
    started_at BIGINT NOT NULL,
    finished_at BIGINT,
    outcome TEXT NOT NULL,
    exit_code BIGINT,
    fuel_consumed BIGINT NOT NULL DEFAULT 0,
    duration_us BIGINT NOT NULL DEFAULT 0,
    memory_peak_bytes BIGINT NOT NULL DEFAULT 0,
    stdin_bytes BIGINT NOT NULL DEFAULT 0,
    stdout_bytes BIGINT NOT NULL DEFAULT 0,
    stderr_bytes BIGINT NOT NULL DEFAULT 0,
    cached_from TEXT,
    job_id TEXT,
    charged BIGINT NOT NULL DEFAULT 1
);
