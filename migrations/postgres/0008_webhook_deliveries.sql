-- Webhook deliveries still to make (README "Detached executions"): queued
-- when a job or batch ends, claimed by any replica for one attempt at a
-- time under a lease, rescheduled with their backoff or deleted, so a
-- replica that dies between attempts (or during one) loses none.
CREATE TABLE webhook_deliveries (
    -- The job (or batch) whose webhook this is; its attempts are listed
    -- in webhook_attempts under the same id.
    id TEXT PRIMARY KEY,
    user_id TEXT NOT NULL,
    url TEXT NOT NULL,
    -- The JSON body, signed anew at each attempt.
    body BYTEA NOT NULL,
    attempts BIGINT NOT NULL DEFAULT 0,
    next_attempt_at BIGINT NOT NULL,
    backoff_ms BIGINT NOT NULL,
    give_up_at BIGINT NOT NULL,
    lease_owner TEXT,
    lease_expires_at BIGINT
);
CREATE INDEX webhook_deliveries_due ON webhook_deliveries(next_attempt_at);
