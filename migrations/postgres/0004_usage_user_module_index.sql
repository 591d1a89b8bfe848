-- `Started.cache_hit` is true only when the account has run (or stored) the
-- same module before: look that up by user and module without scanning the
-- user's whole history.
CREATE INDEX usage_user_module ON usage_records(user_id, module_sha256);
