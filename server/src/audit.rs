//! The security-event log: one function per event, each emitting exactly
//! one `tracing` event on the target [`TARGET`] with typed fields, so an
//! operator can search (or route) them apart from diagnostics. In
//! production the log is JSON and every event carries `target`, `event`
//! and the fields below (docs/security/audit.md). Secrets never appear:
//! a key is named by its id only.

use crate::{auth::Caller, engine::Outcome};

/// The tracing target of every audit event (`RUST_LOG=wasmwiz::audit=info`
/// keeps them when other logs are quieter).
pub const TARGET: &str = "wasmwiz::audit";

/// Why a presented key was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthFailure {
    /// No `authorization` (or `x-api-key`) header on an authenticated RPC.
    Missing,
    /// Not of the shape `wwz_<16 hex>_<64 hex>` (nothing of it is logged).
    Malformed,
    /// No key has this id.
    UnknownKey,
    /// The id exists and the secret does not match.
    WrongSecret,
    Revoked,
    Expired,
}

impl AuthFailure {
    pub fn as_str(self) -> &'static str {
        match self {
            AuthFailure::Missing => "missing",
            AuthFailure::Malformed => "malformed",
            AuthFailure::UnknownKey => "unknown_key",
            AuthFailure::WrongSecret => "wrong_secret",
            AuthFailure::Revoked => "revoked",
            AuthFailure::Expired => "expired",
        }
    }
}

/// Who made or revoked a key: an admin through AdminService, or the key's
/// owner through AccountService.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Via {
    Admin,
    SelfService,
}

impl Via {
    fn as_str(self) -> &'static str {
        match self {
            Via::Admin => "admin",
            Via::SelfService => "self_service",
        }
    }
}

/// A presented key was refused. `key_id` only when the key had a valid
/// shape (it is then 16 hex digits, never the secret).
pub fn authentication_failed(key_id: Option<&str>, reason: AuthFailure) {
    tracing::warn!(
        target: TARGET,
        event = "authentication_failed",
        key_id = key_id.unwrap_or(""),
        reason = reason.as_str(),
        "authentication failed"
    );
}

/// An authenticated caller asked for something its key may not do.
pub fn permission_denied(caller: &Caller, action: &str) {
    tracing::warn!(
        target: TARGET,
        event = "permission_denied",
        key_id = %caller.key_id,
        user_id = %caller.user_id,
        action,
        "permission denied"
    );
}

/// `by` created the key `key_id` for `owner_user_id`.
pub fn key_created(by: &Caller, key_id: &str, owner_user_id: &str, admin: bool, via: Via) {
    tracing::info!(
        target: TARGET,
        event = "key_created",
        by_key_id = %by.key_id,
        by_user_id = %by.user_id,
        key_id,
        user_id = owner_user_id,
        admin,
        via = via.as_str(),
        "API key created"
    );
}

/// `by` revoked `key_id`; `revoked` counts it and the keys made from it.
pub fn key_revoked(by: &Caller, key_id: &str, revoked: u64, via: Via) {
    tracing::info!(
        target: TARGET,
        event = "key_revoked",
        by_key_id = %by.key_id,
        by_user_id = %by.user_id,
        key_id,
        revoked,
        via = via.as_str(),
        "API key revoked"
    );
}

/// A request was refused by a rate limit or a quota: `limit` is
/// `per_minute`, `per_day`, `concurrency`, `storage` or `api_keys`.
pub fn limit_refused(caller: &Caller, limit: &str) {
    tracing::info!(
        target: TARGET,
        event = "limit_refused",
        key_id = %caller.key_id,
        user_id = %caller.user_id,
        limit,
        "request refused by a limit"
    );
}

/// An admin call other than key creation or revocation (those have their
/// own events) succeeded: `subject` is the email it was about, or empty
/// for every user; `tier` when the call set one.
pub fn admin_action(by: &Caller, action: &str, subject: &str, tier: Option<&str>) {
    tracing::info!(
        target: TARGET,
        event = "admin_action",
        by_key_id = %by.key_id,
        by_user_id = %by.user_id,
        action,
        subject,
        tier = tier.unwrap_or(""),
        "admin action"
    );
}

/// The limit an outcome means the guest reached, if any.
fn limit_of(outcome: Outcome) -> Option<&'static str> {
    match outcome {
        Outcome::OutOfFuel => Some("fuel"),
        Outcome::Timeout => Some("timeout"),
        Outcome::MemoryLimit => Some("memory"),
        Outcome::OutputLimit => Some("output"),
        Outcome::Success | Outcome::ExitNonzero | Outcome::Trap | Outcome::Cancelled => None,
    }
}

/// A guest ended by reaching a limit (fuel, timeout, memory, output);
/// other outcomes log nothing.
pub fn guest_limit_hit(user_id: &str, key_id: &str, execution_id: &str, outcome: Outcome) {
    let Some(limit) = limit_of(outcome) else {
        return;
    };
    tracing::info!(
        target: TARGET,
        event = "guest_limit_hit",
        key_id,
        user_id,
        execution_id,
        limit,
        "guest reached a limit"
    );
}
