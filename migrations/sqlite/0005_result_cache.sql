-- The deterministic result cache (docs/receipts-and-cache.md): one entry per
-- account and inputs digest, its encoded result split into pieces of at
-- most 1 MiB. Usage rows of cache hits name the execution they replayed.
CREATE TABLE result_cache (
    user_id TEXT NOT NULL,
    inputs_sha256 TEXT NOT NULL,
    execution_id TEXT NOT NULL,
    size_bytes BIGINT NOT NULL,
    pieces BIGINT NOT NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    PRIMARY KEY (user_id, inputs_sha256)
);
CREATE INDEX result_cache_user_created ON result_cache(user_id, created_at);
CREATE INDEX result_cache_created ON result_cache(created_at);
CREATE INDEX result_cache_expires ON result_cache(expires_at);

CREATE TABLE result_cache_pieces (
    user_id TEXT NOT NULL,
    inputs_sha256 TEXT NOT NULL,
    seq BIGINT NOT NULL,
    data BLOB NOT NULL,
    PRIMARY KEY (user_id, inputs_sha256, seq)
);

ALTER TABLE usage_records ADD COLUMN cached_from TEXT;
