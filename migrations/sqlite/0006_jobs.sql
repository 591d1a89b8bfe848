-- Detached executions (README "Detached executions"): the durable job
-- queue, the events each job produced (in bounded pieces, replayed by
-- WatchExecution) and the usage row of each attempt.
CREATE TABLE jobs (
    id TEXT PRIMARY KEY,
    user_id TEXT NOT NULL,
    key_id TEXT NOT NULL,
    tier TEXT NOT NULL,
    module_sha256 TEXT NOT NULL,
    -- The RunRequest, encoded, its module given by sha256.
    request BLOB NOT NULL,
    webhook_url TEXT NOT NULL,
    state TEXT NOT NULL,
    cancel_requested BIGINT NOT NULL DEFAULT 0,
    attempts BIGINT NOT NULL DEFAULT 0,
    lease_owner TEXT,
    lease_expires_at BIGINT,
    -- The encoded Finished once the job has ended.
    finished BLOB,
    outcome BIGINT NOT NULL DEFAULT 0,
    -- Set when the job ended without a result: the error that ended it.
    error TEXT NOT NULL DEFAULT '',
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE INDEX jobs_claim ON jobs(state, created_at);
CREATE INDEX jobs_user_created ON jobs(user_id, created_at);

CREATE TABLE job_events (
    job_id TEXT NOT NULL,
    seq BIGINT NOT NULL,
    -- One encoded ExecuteEvent (output chunks and file pieces are bounded).
    event BLOB NOT NULL,
    PRIMARY KEY (job_id, seq)
);

CREATE TABLE job_attempts (
    job_id TEXT NOT NULL,
    attempt BIGINT NOT NULL,
    -- The usage record of this attempt.
    usage_id TEXT NOT NULL,
    replica TEXT NOT NULL,
    started_at BIGINT NOT NULL,
    PRIMARY KEY (job_id, attempt)
);

-- The secret that signs each account's webhooks (never returned again
-- after RotateWebhookSecret).
CREATE TABLE webhook_secrets (
    user_id TEXT PRIMARY KEY,
    secret TEXT NOT NULL,
    created_at BIGINT NOT NULL
);

CREATE TABLE webhook_attempts (
    job_id TEXT NOT NULL,
    seq BIGINT NOT NULL,
    at BIGINT NOT NULL,
    http_status BIGINT NOT NULL,
    error TEXT NOT NULL,
    PRIMARY KEY (job_id, seq)
);

-- Batches submitted detached: each case is a job naming its batch; the
-- batch's own webhook is sent once, by whichever replica ends its last case.
CREATE TABLE job_batches (
    id TEXT PRIMARY KEY,
    user_id TEXT NOT NULL,
    webhook_url TEXT NOT NULL,
    cases BIGINT NOT NULL,
    notified BIGINT NOT NULL DEFAULT 0,
    created_at BIGINT NOT NULL
);
ALTER TABLE jobs ADD COLUMN batch_id TEXT;
ALTER TABLE jobs ADD COLUMN case_index BIGINT NOT NULL DEFAULT 0;
CREATE INDEX jobs_batch ON jobs(batch_id);
