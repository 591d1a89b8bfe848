-- WasmWiz schema (PostgreSQL). Times are unix milliseconds; booleans 0/1.
CREATE TABLE users (
    id TEXT PRIMARY KEY,
    email TEXT NOT NULL UNIQUE,
    tier TEXT NOT NULL,
    created_at BIGINT NOT NULL
);

CREATE TABLE api_keys (
    id TEXT PRIMARY KEY,
    user_id TEXT NOT NULL REFERENCES users(id),
    secret_hash TEXT NOT NULL,
    admin BIGINT NOT NULL,
    label TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT,
    revoked_at BIGINT
);
CREATE INDEX api_keys_user ON api_keys(user_id);

CREATE TABLE modules (
    sha256 TEXT PRIMARY KEY,
    size BIGINT NOT NULL,
    bytes BYTEA NOT NULL,
    created_at BIGINT NOT NULL
);

CREATE TABLE account_modules (
    user_id TEXT NOT NULL REFERENCES users(id),
    sha256 TEXT NOT NULL REFERENCES modules(sha256),
    created_at BIGINT NOT NULL,
    PRIMARY KEY (user_id, sha256)
);

CREATE TABLE usage_records (
    id TEXT PRIMARY KEY,
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
    stderr_bytes BIGINT NOT NULL DEFAULT 0
);
CREATE INDEX usage_user_day ON usage_records(user_id, day);
CREATE INDEX usage_started ON usage_records(started_at);
CREATE INDEX usage_outcome ON usage_records(outcome);

CREATE TABLE settings (
    name TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
