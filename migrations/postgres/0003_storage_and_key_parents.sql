-- Keys created with CreateMyApiKey remember the key that created them, so
-- revoking a key revokes every key below it.
ALTER TABLE api_keys ADD COLUMN parent_key_id TEXT;
CREATE INDEX api_keys_parent ON api_keys(parent_key_id);

-- Import and export counts, so a module listing reports them without
-- compiling anything (NULL for modules stored before this migration until
-- they are compiled again).
ALTER TABLE modules ADD COLUMN import_count BIGINT;
ALTER TABLE modules ADD COLUMN export_count BIGINT;
