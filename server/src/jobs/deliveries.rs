//! Each replica's webhook sender: claims due deliveries from the database
//! queue ([`crate::store::webhook_deliveries`]), makes one attempt each,
//! records it, and reschedules the delivery with its backoff or ends it.
//! Retries wait in the database, not in memory, so any replica makes them.

use std::{sync::Arc, time::Duration};

use bytes::Bytes;
use tokio::task::JoinSet;

use super::webhooks::{self, FIRST_BACKOFF, MAX_BACKOFF};
use crate::{
    api::AppState,
    store::{
        now_ms,
        webhook_deliveries::{Delivery, NewDelivery},
    },
};

/// How long an idle sender waits before looking for a due delivery again.
const POLL: Duration = Duration::from_millis(100);

/// Deliveries one replica attempts at once (each bounded by
/// [`webhooks::ATTEMPT_TIMEOUT`]), so one slow receiver holds up no other.
const SLOTS: usize = 8;

/// A claim outlives an attempt by this much before another replica may
/// take the delivery over (its claimant died mid-attempt).
const LEASE_MARGIN: Duration = Duration::from_secs(20);

/// Queues `body` for `url`: the webhook of job or batch `id` of `user_id`.
pub async fn queue(state: &AppState, id: &str, user_id: &str, url: &str, body: &[u8]) {
    let now = now_ms();
    let delivery = NewDelivery {
        id,
        user_id,
        url,
        body,
        now_ms: now,
        first_backoff_ms: FIRST_BACKOFF.as_millis() as i64,
        give_up_at: now + (state.config.webhook_retry_secs as i64).saturating_mul(1000),
    };
    if let Err(error) = state.store.delivery_queue(&delivery).await {
        tracing::warn!(%error, id, "queueing a webhook delivery failed");
    }
}

/// Starts the sender; it runs until the task is aborted (its attempts in
/// flight with it).
pub fn spawn(state: Arc<AppState>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(run(state))
}

async fn run(state: Arc<AppState>) {
    let replica = uuid::Uuid::now_v7().to_string();
    let lease_ms = (webhooks::ATTEMPT_TIMEOUT + LEASE_MARGIN).as_millis() as i64;
    let mut attempts = JoinSet::new();
    loop {
        while attempts.try_join_next().is_some() {}
        if attempts.len() >= SLOTS {
            attempts.join_next().await;
            continue;
        }
        match state
            .store
            .delivery_claim(&replica, now_ms(), lease_ms)
            .await
        {
            Ok(Some(delivery)) => {
                attempts.spawn(attempt(state.clone(), replica.clone(), delivery));
            }
            Ok(None) => tokio::time::sleep(POLL).await,
            Err(error) => {
                tracing::warn!(%error, "claiming a webhook delivery failed");
                tokio::time::sleep(POLL * 10).await;
            }
        }
    }
}

/// One attempt of a claimed delivery, then its next step.
async fn attempt(state: Arc<AppState>, owner: String, delivery: Delivery) {
    let attempted = webhooks::attempt(
        &state,
        &delivery.user_id,
        &delivery.url,
        Bytes::from(delivery.body),
    )
    .await;
    webhooks::record(&state, &delivery.id, delivery.attempts + 1, &attempted).await;
    let next_at = now_ms() + delivery.backoff_ms;
    let ended = if attempted.retry && next_at <= delivery.give_up_at {
        let backoff = (delivery.backoff_ms * 2).min(MAX_BACKOFF.as_millis() as i64);
        state
            .store
            .delivery_reschedule(&delivery.id, &owner, next_at, backoff)
            .await
    } else {
        state.store.delivery_done(&delivery.id, &owner).await
    };
    if let Err(error) = ended {
        tracing::warn!(%error, id = %delivery.id, "updating a webhook delivery failed");
    }
}
