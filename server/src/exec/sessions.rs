//! Live interactive executions: `execution_id` → owner and the feed of the
//! guest's stdin, so `WriteStdin` can reach a guest started by `Run`.
//! Ended executions are remembered a while (id → owner), so a late write
//! gets FAILED_PRECONDITION while a stranger's still gets NOT_FOUND.

use std::{collections::HashMap, sync::Arc, time::Duration};

use bytes::Bytes;
use tokio::sync::{mpsc, oneshot};
use tonic::Status;

use super::stdin_route::StdinRoute;
use crate::{
    api::{convert::check_size, errors::ApiError},
    limits::StdinWriteLimits,
};

/// One `WriteStdin` carries at most this many bytes (the tier's stdin size
/// bounds the total): a write is one small gRPC message, not an upload.
pub const MAX_WRITE_BYTES: usize = 1024 * 1024;
/// How long an ended execution's id is remembered for late writes.
const ENDED_TTL: Duration = Duration::from_secs(3600);

/// The stdin side of one interactive execution.
pub struct StdinFeed {
    /// `None` once the client sent `eof`.
    tx: Option<mpsc::Sender<Bytes>>,
    total: u64,
    max: u64,
    tier_name: String,
    /// Stops the run when a write breaks the rules (taken on the first).
    refuse: Option<oneshot::Sender<ApiError>>,
}

impl StdinFeed {
    pub fn new(
        tx: mpsc::Sender<Bytes>,
        already: u64,
        max: u64,
        tier_name: String,
        refuse: oneshot::Sender<ApiError>,
    ) -> Self {
        Self {
            tx: Some(tx),
            total: already,
            max,
            tier_name,
            refuse: Some(refuse),
        }
    }

    /// Queues `data` for the guest (waiting while the guest is behind on
    /// reading), then closes stdin when `eof`.
    async fn write(&mut self, data: Bytes, eof: bool) -> Result<(), Status> {
        let ended = || Status::failed_precondition("the execution has ended");
        let Some(tx) = self.tx.as_ref() else {
            return Err(match self.refuse {
                None => ended(),
                Some(_) => Status::failed_precondition(
                    "stdin is closed: this execution's client already sent `eof`",
                ),
            });
        };
        if self.refuse.is_none() {
            return Err(ended());
        }
        let total = self.total + data.len() as u64;
        if let Err(error) = check_size("stdin", total, self.max, &self.tier_name) {
            // The guest must not run on: it is stopped with the same error.
            let status = Status::from(ApiError::invalid(
                "data",
                format!(
                    "this write would bring the execution's stdin to {total} bytes, past the \
                     {} tier's {} bytes; the execution was stopped",
                    self.tier_name, self.max
                ),
            ));
            if let Some(refuse) = self.refuse.take() {
                let _ = refuse.send(error);
            }
            return Err(status);
        }
        if !data.is_empty() {
            tx.send(data).await.map_err(|_| ended())?;
            self.total = total;
        }
        if eof {
            self.tx = None;
        }
        Ok(())
    }
}

struct Live {
    owner: String,
    feed: Arc<tokio::sync::Mutex<StdinFeed>>,
}

/// The registry of this replica's interactive executions.
pub struct Sessions {
    live: parking_lot::Mutex<HashMap<String, Live>>,
    ended: moka::sync::Cache<String, String>,
    /// Writes to executions on other replicas (with Redis configured).
    route: std::sync::OnceLock<Arc<StdinRoute>>,
    /// Each account's `WriteStdin` rate on this replica.
    pub writes: StdinWriteLimits,
}

impl Default for Sessions {
    fn default() -> Self {
        Self {
            live: parking_lot::Mutex::new(HashMap::new()),
            ended: moka::sync::Cache::builder()
                .max_capacity(100_000)
                .time_to_live(ENDED_TTL)
                .build(),
            route: std::sync::OnceLock::new(),
            writes: StdinWriteLimits::default(),
        }
    }
}

/// Keeps an execution in the registry; dropping it (when the guest has
/// ended) moves the id to the ended ones.
pub struct SessionGuard {
    sessions: Arc<Sessions>,
    execution_id: String,
}

impl SessionGuard {
    /// The guest has ended: recorded for other replicas first, so a write
    /// routed meanwhile still finds this replica's answer.
    pub async fn end(self) {
        if let Some(route) = self.sessions.route.get() {
            let owner = self
                .sessions
                .live
                .lock()
                .get(&self.execution_id)
                .map(|l| l.owner.clone());
            if let Some(owner) = owner {
                route.ended(&self.execution_id, &owner).await;
            }
        }
    }
}

impl Drop for SessionGuard {
    fn drop(&mut self) {
        if let Some(live) = self.sessions.live.lock().remove(&self.execution_id) {
            self.sessions
                .ended
                .insert(self.execution_id.clone(), live.owner);
        }
    }
}

/// Where a write went.
pub enum Lookup {
    /// Runs here: the write was handled, with this answer.
    Handled(Result<(), Status>),
    /// Not running here (maybe on another replica).
    Elsewhere,
}

impl Sessions {
    /// Routes writes for executions elsewhere through Redis at `url`, and
    /// answers those routed here.
    pub fn route_through_redis(self: &Arc<Self>, url: &str) -> redis::RedisResult<()> {
        let route = StdinRoute::start(url, self.clone())?;
        let _ = self.route.set(route);
        Ok(())
    }

    /// Registers a live execution of `owner` (and tells the other replicas).
    pub async fn open(
        self: &Arc<Self>,
        execution_id: &str,
        owner: &str,
        feed: StdinFeed,
        session: Duration,
    ) -> SessionGuard {
        if let Some(route) = self.route.get() {
            route.live(execution_id, owner, session).await;
        }
        self.live.lock().insert(
            execution_id.to_string(),
            Live {
                owner: owner.to_string(),
                feed: Arc::new(tokio::sync::Mutex::new(feed)),
            },
        );
        SessionGuard {
            sessions: self.clone(),
            execution_id: execution_id.to_string(),
        }
    }

    /// Live interactive executions on this replica.
    pub fn live_count(&self) -> usize {
        self.live.lock().len()
    }

    /// Writes to an execution running here; one of another account is
    /// NOT_FOUND, exactly as an unknown id. Writes are applied one at a
    /// time, in the order they take the feed's lock.
    pub async fn write_local(
        &self,
        user_id: &str,
        execution_id: &str,
        data: Bytes,
        eof: bool,
    ) -> Lookup {
        let feed = {
            let live = self.live.lock();
            match live.get(execution_id) {
                Some(session) if session.owner == user_id => session.feed.clone(),
                Some(_) => return Lookup::Handled(Err(not_found(execution_id))),
                None => match self.ended.get(execution_id) {
                    Some(owner) if owner == user_id => {
                        return Lookup::Handled(Err(Status::failed_precondition(
                            "the execution has ended",
                        )))
                    }
                    Some(_) => return Lookup::Handled(Err(not_found(execution_id))),
                    None => return Lookup::Elsewhere,
                },
            }
        };
        let mut feed = feed.lock().await;
        Lookup::Handled(feed.write(data, eof).await)
    }
}

/// What a write to an execution the caller cannot see gets.
pub fn not_found(execution_id: &str) -> Status {
    ApiError::NotFound {
        resource_type: "execution",
        name: execution_id.to_string(),
    }
    .into()
}

/// Writes to an interactive execution of `user_id`, wherever it runs.
pub async fn write(
    state: &crate::api::AppState,
    user_id: &str,
    execution_id: &str,
    data: Bytes,
    eof: bool,
) -> Result<(), Status> {
    // `Bytes` clones share the buffer.
    let data_for_route = data.clone();
    match state
        .sessions
        .write_local(user_id, execution_id, data, eof)
        .await
    {
        Lookup::Handled(answer) => answer,
        Lookup::Elsewhere => match state.sessions.route.get() {
            Some(route) => {
                route
                    .write(user_id, execution_id, data_for_route, eof)
                    .await
            }
            None => Err(not_found(execution_id)),
        },
    }
}
