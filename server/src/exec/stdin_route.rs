//! `WriteStdin` across replicas, over Redis: every replica subscribes to
//! `wasmwiz:stdin:*`; a replica that does not run an execution publishes
//! the write on `wasmwiz:stdin:{id}` and waits on a reply list for the
//! owner's answer (the exact gRPC status, details included), so a client
//! sees the same ordering and errors wherever its call lands. An owner
//! records each ended execution (id → owner) for an hour, so a late write
//! through another replica still gets FAILED_PRECONDITION.

use std::{sync::Arc, time::Duration};

use bytes::Bytes;
use futures::StreamExt;
use redis::{aio::ConnectionManager, aio::ConnectionManagerConfig, AsyncCommands};
use serde::{Deserialize, Serialize};
use tonic::{Code, Status};

use super::sessions::{not_found, Lookup, Sessions};

const CHANNELS: &str = "wasmwiz:stdin:";
const ENDED: &str = "wasmwiz:stdin-ended:";
const LIVE: &str = "wasmwiz:stdin-live:";
const REPLIES: &str = "wasmwiz:stdin-reply:";
/// How long an ended execution's owner is kept, as locally.
const ENDED_TTL_SECS: u64 = 3600;
/// The longest a routed write waits for the owner's answer (the owner
/// itself may wait while its guest is behind on reading).
const REPLY_WAIT_SECS: f64 = 30.0;

/// One routed write, as published.
#[derive(Serialize, Deserialize)]
struct Routed {
    user_id: String,
    data: String,
    eof: bool,
    reply: String,
}

/// The owner's answer: a gRPC status (code 0 is success).
#[derive(Serialize, Deserialize)]
struct Reply {
    code: i32,
    message: String,
    details: String,
}

/// Routes writes through one Redis.
pub struct StdinRoute {
    client: redis::Client,
    conn: ConnectionManager,
}

impl StdinRoute {
    /// Connects lazily (a server starts while Redis is down) and starts
    /// answering writes routed to `sessions`.
    pub fn start(url: &str, sessions: Arc<Sessions>) -> redis::RedisResult<Arc<Self>> {
        let client = redis::Client::open(url)?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(Duration::from_millis(500)))
            .set_response_timeout(Some(Duration::from_secs(2)))
            .set_number_of_retries(1);
        let route = Arc::new(Self {
            conn: ConnectionManager::new_lazy_with_config(client.clone(), config)?,
            client,
        });
        tokio::spawn(listen(route.clone(), sessions));
        Ok(route)
    }

    /// Records that `execution_id` of `owner` runs (on some replica) for
    /// at most `session`.
    pub async fn live(&self, execution_id: &str, owner: &str, session: Duration) {
        let mut conn = self.conn.clone();
        let set: redis::RedisResult<()> = conn
            .set_ex(
                format!("{LIVE}{execution_id}"),
                owner,
                session.as_secs() + 60,
            )
            .await;
        if let Err(error) = set {
            tracing::warn!(%error, execution_id, "could not record an interactive execution in Redis; writes through other replicas will not find it");
        }
    }

    /// Records that `execution_id` of `owner` has ended.
    pub async fn ended(&self, execution_id: &str, owner: &str) {
        let mut conn = self.conn.clone();
        let set: redis::RedisResult<()> = redis::pipe()
            .set_ex(format!("{ENDED}{execution_id}"), owner, ENDED_TTL_SECS)
            .del(format!("{LIVE}{execution_id}"))
            .query_async(&mut conn)
            .await;
        if let Err(error) = set {
            tracing::warn!(%error, execution_id, "could not record an ended interactive execution in Redis");
        }
    }

    /// Sends a write to the replica running `execution_id`, and its answer back.
    pub async fn write(
        &self,
        user_id: &str,
        execution_id: &str,
        data: Bytes,
        eof: bool,
    ) -> Result<(), Status> {
        let unavailable = |error: redis::RedisError| {
            Status::unavailable(format!(
                "routing stdin to the replica running this execution failed: {error}"
            ))
        };
        let reply = format!("{REPLIES}{}", uuid::Uuid::new_v4());
        let routed = toml::to_string(&Routed {
            user_id: user_id.to_string(),
            data: hex::encode(&data),
            eof,
            reply: reply.clone(),
        })
        .expect("a routed write serializes");
        let mut conn = self.conn.clone();
        let owner: Option<String> = conn
            .get(format!("{LIVE}{execution_id}"))
            .await
            .map_err(unavailable)?;
        match owner {
            None => return Err(self.not_running(user_id, execution_id).await?),
            Some(owner) if owner != user_id => return Err(not_found(execution_id)),
            Some(_) => {}
        }
        // The owning replica answers even if the guest ends meanwhile (it
        // remembers its ended executions).
        let _: u64 = conn
            .publish(format!("{CHANNELS}{execution_id}"), routed)
            .await
            .map_err(unavailable)?;
        // BLPOP blocks its connection: a connection of its own, not the
        // shared one, allowed to wait as long as the owner may take.
        let config = redis::AsyncConnectionConfig::new()
            .set_connection_timeout(Some(Duration::from_millis(500)))
            .set_response_timeout(Some(Duration::from_secs_f64(REPLY_WAIT_SECS + 5.0)));
        let mut waiting = self
            .client
            .get_multiplexed_async_connection_with_config(&config)
            .await
            .map_err(unavailable)?;
        let answer: Option<(String, String)> = waiting
            .blpop(&reply, REPLY_WAIT_SECS)
            .await
            .map_err(unavailable)?;
        match answer {
            // Every replica hears the write; only the owner answers.
            Some((_, answer)) => decode(&answer),
            None => Err(Status::unavailable(
                "the replica running this execution did not answer in time",
            )),
        }
    }

    /// The answer for an id no replica runs: ended (for its owner) or unknown.
    async fn not_running(&self, user_id: &str, execution_id: &str) -> Result<Status, Status> {
        let mut conn = self.conn.clone();
        let owner: Option<String> =
            conn.get(format!("{ENDED}{execution_id}"))
                .await
                .map_err(|error| {
                    Status::unavailable(format!("looking up the execution failed: {error}"))
                })?;
        Ok(match owner {
            Some(owner) if owner == user_id => {
                Status::failed_precondition("the execution has ended")
            }
            _ => not_found(execution_id),
        })
    }
}

fn decode(answer: &str) -> Result<(), Status> {
    let reply: Reply = toml::from_str(answer)
        .map_err(|_| Status::internal("an unreadable answer from another replica"))?;
    match Code::from(reply.code) {
        Code::Ok => Ok(()),
        code => Err(Status::with_details(
            code,
            reply.message,
            hex::decode(reply.details).unwrap_or_default().into(),
        )),
    }
}

fn encode(answer: &Result<(), Status>) -> String {
    let reply = match answer {
        Ok(()) => Reply {
            code: 0,
            message: String::new(),
            details: String::new(),
        },
        Err(status) => Reply {
            code: status.code() as i32,
            message: status.message().to_string(),
            details: hex::encode(status.details()),
        },
    };
    toml::to_string(&reply).expect("a reply serializes")
}

/// Answers the writes routed to executions that run here, for as long as
/// the server lives (resubscribing after Redis comes back).
async fn listen(route: Arc<StdinRoute>, sessions: Arc<Sessions>) {
    loop {
        match route.client.get_async_pubsub().await {
            Ok(mut pubsub) => {
                if let Err(error) = pubsub.psubscribe(format!("{CHANNELS}*")).await {
                    tracing::warn!(%error, "subscribing to routed stdin failed");
                } else {
                    let mut messages = pubsub.into_on_message();
                    while let Some(message) = messages.next().await {
                        let channel = message.get_channel_name().to_string();
                        let Some(execution_id) = channel.strip_prefix(CHANNELS) else {
                            continue;
                        };
                        let Ok(payload) = message.get_payload::<String>() else {
                            continue;
                        };
                        let (route, sessions) = (route.clone(), sessions.clone());
                        let execution_id = execution_id.to_string();
                        // Each write on its own task: a guest slow to read
                        // holds up only its own writers.
                        tokio::spawn(async move {
                            answer(&route, &sessions, &execution_id, &payload).await
                        });
                    }
                }
            }
            Err(error) => tracing::warn!(%error, "connecting for routed stdin failed"),
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

/// Applies one routed write when its execution runs here, and replies.
async fn answer(route: &StdinRoute, sessions: &Sessions, execution_id: &str, payload: &str) {
    let Ok(routed) = toml::from_str::<Routed>(payload) else {
        return;
    };
    let Ok(data) = hex::decode(&routed.data) else {
        return;
    };
    let answer = match sessions
        .write_local(&routed.user_id, execution_id, data.into(), routed.eof)
        .await
    {
        Lookup::Handled(answer) => answer,
        // Another replica's (or nobody's): the owner answers.
        Lookup::Elsewhere => return,
    };
    let mut conn = route.conn.clone();
    let pushed: redis::RedisResult<()> = redis::pipe()
        .rpush(&routed.reply, encode(&answer))
        .expire(&routed.reply, 60)
        .query_async(&mut conn)
        .await;
    if let Err(error) = pushed {
        tracing::warn!(%error, execution_id, "answering a routed stdin write failed");
    }
}
