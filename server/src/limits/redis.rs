//! Limits shared by replicas through Redis: per-minute GCRA, daily quota
//! counters and per-user concurrency, each one atomic Lua script using
//! Redis's clock, so N replicas together admit what one would.

use std::{sync::Arc, time::Duration};

use redis::{aio::ConnectionManager, aio::ConnectionManagerConfig, Script};

use super::{
    backend::{Backend, BackendError, Budget, Minute, Slot, StoreError, Unreachable},
    charge::Taken,
};
use crate::store::Store;

/// GCRA: KEYS[1] bucket; ARGV[1] emission interval µs; ARGV[2] burst.
/// Returns {allowed, remaining, retry_after_us, reset_us}.
const GCRA: &str = r#"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local interval = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local tolerance = interval * (burst - 1)
local tat = tonumber(redis.call('GET', KEYS[1]) or now)
if tat < now then tat = now end
if tat - now > tolerance then
  return {0, 0, tat - now - tolerance, tat - now}
end
local new_tat = tat + interval
redis.call('SET', KEYS[1], string.format('%d', new_tat), 'PX', math.ceil((new_tat - now) / 1000) + 1000)
local remaining = math.floor((now + tolerance + interval - new_tat) / interval)
return {1, remaining, 0, new_tat - now}
"#;

/// Gives one GCRA cell back: KEYS[1] bucket; ARGV[1] emission interval µs.
/// The arrival time moves back by one interval (a time in the past reads
/// as "now", so the burst is never exceeded).
const GCRA_REFUND: &str = r#"
local tat = tonumber(redis.call('GET', KEYS[1]))
if not tat then return 0 end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local new_tat = tat - tonumber(ARGV[1])
if new_tat <= now then
  redis.call('DEL', KEYS[1])
else
  redis.call('SET', KEYS[1], string.format('%d', new_tat), 'PX', math.ceil((new_tat - now) / 1000) + 1000)
end
return 1
"#;

/// Daily quota: KEYS[1] counter; ARGV[1] count from the database to seed a
/// new day with, or -1 when not looked up yet (then {-1, 0} asks for it);
/// ARGV[2] limit; ARGV[3] ttl seconds. Returns {allowed, used}.
const DAILY: &str = r#"
if redis.call('EXISTS', KEYS[1]) == 0 then
  if tonumber(ARGV[1]) < 0 then
    return {-1, 0}
  end
  redis.call('SET', KEYS[1], ARGV[1], 'EX', tonumber(ARGV[3]))
end
local used = redis.call('INCR', KEYS[1])
if used > tonumber(ARGV[2]) then
  redis.call('DECR', KEYS[1])
  return {0, used - 1}
end
return {1, used}
"#;

/// Concurrency: KEYS[1] zset of running executions scored by expiry;
/// ARGV[1] member; ARGV[2] limit; ARGV[3] lease ms. Returns 1 if admitted.
const CONCURRENCY: &str = r#"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[2]) then
  return 0
end
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[3]), ARGV[1])
redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[3]))
return 1
"#;

/// Heartbeat: KEYS[1] zset of replicas; ARGV[1] replica id. Returns live count.
const HEARTBEAT: &str = r#"
local t = redis.call('TIME')
local now = tonumber(t[1])
redis.call('ZADD', KEYS[1], now, ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - 15)
redis.call('EXPIRE', KEYS[1], 60)
return redis.call('ZCARD', KEYS[1])
"#;

/// Outcome of a shared per-minute check.
pub struct MinuteCheck {
    pub allowed: bool,
    pub remaining: u64,
    pub retry_after: Duration,
}

/// Connection and scripts.
#[derive(Clone)]
pub struct RedisLimits {
    conn: ConnectionManager,
    gcra: Script,
    gcra_refund: Script,
    daily: Script,
    concurrency: Script,
    heartbeat: Script,
    prefix: String,
}

impl RedisLimits {
    /// Connects lazily (the server starts even when Redis is down) with
    /// short timeouts, so a dead Redis turns into a quick fallback.
    pub fn new(url: &str) -> redis::RedisResult<Self> {
        let client = redis::Client::open(url)?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(Duration::from_millis(500)))
            .set_response_timeout(Some(Duration::from_millis(500)))
            .set_number_of_retries(1)
            .set_max_delay(Duration::from_millis(500));
        Ok(Self {
            conn: ConnectionManager::new_lazy_with_config(client, config)?,
            gcra: Script::new(GCRA),
            gcra_refund: Script::new(GCRA_REFUND),
            daily: Script::new(DAILY),
            concurrency: Script::new(CONCURRENCY),
            heartbeat: Script::new(HEARTBEAT),
            prefix: "wasmwiz".into(),
        })
    }

    fn minute_key(&self, user_id: &str) -> String {
        format!("{}:minute:{user_id}", self.prefix)
    }

    pub async fn minute(&self, user_id: &str, per_minute: u64) -> redis::RedisResult<MinuteCheck> {
        let interval_us = 60_000_000 / per_minute.max(1);
        let (allowed, remaining, retry_us, _reset_us): (i64, i64, i64, i64) = self
            .gcra
            .key(self.minute_key(user_id))
            .arg(interval_us)
            .arg(per_minute)
            .invoke_async(&mut self.conn.clone())
            .await?;
        Ok(MinuteCheck {
            allowed: allowed == 1,
            remaining: remaining.max(0) as u64,
            retry_after: Duration::from_micros(retry_us.max(0) as u64),
        })
    }

    /// Gives back a cell [`RedisLimits::minute`] took.
    pub async fn minute_refund(&self, user_id: &str, per_minute: u64) -> redis::RedisResult<()> {
        let _: i64 = self
            .gcra_refund
            .key(self.minute_key(user_id))
            .arg(60_000_000 / per_minute.max(1))
            .invoke_async(&mut self.conn.clone())
            .await?;
        Ok(())
    }

    /// Counts one execution against today's quota; `from_db` seeds a new
    /// day (`None`: answers `Ok(None)` when the day needs seeding).
    pub async fn daily(
        &self,
        user_id: &str,
        day: &str,
        from_db: Option<u64>,
        limit: u64,
    ) -> redis::RedisResult<Option<(bool, u64)>> {
        let from_db = from_db.map_or(-1, |n| n as i64);
        let (allowed, used): (i64, i64) = self
            .daily
            .key(self.daily_key(user_id, day))
            .arg(from_db)
            .arg(limit)
            .arg(2 * 86_400)
            .invoke_async(&mut self.conn.clone())
            .await?;
        if allowed < 0 {
            return Ok(None);
        }
        Ok(Some((allowed == 1, used.max(0) as u64)))
    }

    /// Executions counted today, if Redis has the day.
    pub async fn daily_used(&self, user_id: &str, day: &str) -> redis::RedisResult<Option<u64>> {
        redis::cmd("GET")
            .arg(self.daily_key(user_id, day))
            .query_async(&mut self.conn.clone())
            .await
    }

    pub async fn daily_refund(&self, user_id: &str, day: &str) -> redis::RedisResult<()> {
        redis::cmd("DECR")
            .arg(self.daily_key(user_id, day))
            .query_async(&mut self.conn.clone())
            .await
    }

    fn daily_key(&self, user_id: &str, day: &str) -> String {
        format!("{}:day:{day}:{user_id}", self.prefix)
    }

    fn running_key(&self, user_id: &str) -> String {
        format!("{}:running:{user_id}", self.prefix)
    }

    /// Takes a concurrency slot named `member` for at most `lease`.
    pub async fn acquire(
        &self,
        user_id: &str,
        member: &str,
        limit: u32,
        lease: Duration,
    ) -> redis::RedisResult<bool> {
        let admitted: i64 = self
            .concurrency
            .key(self.running_key(user_id))
            .arg(member)
            .arg(limit)
            .arg(lease.as_millis() as u64)
            .invoke_async(&mut self.conn.clone())
            .await?;
        Ok(admitted == 1)
    }

    pub async fn release(&self, user_id: &str, member: &str) -> redis::RedisResult<()> {
        redis::cmd("ZREM")
            .arg(self.running_key(user_id))
            .arg(member)
            .query_async(&mut self.conn.clone())
            .await
    }

    /// Announces this replica; returns how many are alive.
    pub async fn heartbeat(&self, replica: &str) -> redis::RedisResult<u64> {
        let n: i64 = self
            .heartbeat
            .key(format!("{}:replicas", self.prefix))
            .arg(replica)
            .invoke_async(&mut self.conn.clone())
            .await?;
        Ok(n.max(1) as u64)
    }
}

/// The shared backend: the scripts above, with new days seeded from the
/// usage records.
pub(super) struct RedisBackend {
    redis: Arc<RedisLimits>,
    store: Store,
}

impl RedisBackend {
    pub(super) fn new(url: &str, store: Store) -> redis::RedisResult<Self> {
        Ok(Self {
            redis: Arc::new(RedisLimits::new(url)?),
            store,
        })
    }

    /// Announces this replica; returns how many are alive.
    pub(super) async fn heartbeat(&self, replica: &str) -> Result<u64, Unreachable> {
        Ok(self.redis.heartbeat(replica).await?)
    }

    async fn count_in_store(&self, user_id: &str, day: &str) -> Result<u64, StoreError> {
        Ok(self.store.usage_count_day(user_id, day).await?)
    }
}

/// Redis key space of a budget (user ids are UUIDs, so `upload:` never
/// collides with one).
fn budget_key(budget: Budget, user_id: &str) -> String {
    match budget {
        Budget::Executions => user_id.to_string(),
        Budget::Uploads => format!("upload:{user_id}"),
    }
}

/// How often a waiting caller asks for a shared slot again.
const SLOT_POLL: Duration = Duration::from_millis(20);

impl Backend for RedisBackend {
    async fn take_minute(
        &self,
        budget: Budget,
        user_id: &str,
        per_minute: u64,
    ) -> Result<Minute, Unreachable> {
        let key = budget_key(budget, user_id);
        let check = self.redis.minute(&key, per_minute).await?;
        Ok(if check.allowed {
            Minute::Taken {
                remaining: check.remaining,
                cell: Taken::RedisMinute {
                    redis: self.redis.clone(),
                    user_id: key,
                    per_minute,
                },
            }
        } else {
            Minute::Refused {
                retry_after: check.retry_after,
            }
        })
    }

    async fn take_day(
        &self,
        user_id: &str,
        day: &str,
        limit: u64,
    ) -> Result<Option<Taken>, BackendError> {
        let mut counted = self.redis.daily(user_id, day, None, limit).await?;
        if counted.is_none() {
            let from_db = self.count_in_store(user_id, day).await?;
            counted = self.redis.daily(user_id, day, Some(from_db), limit).await?;
        }
        Ok(match counted {
            Some((true, _)) => Some(Taken::RedisDay {
                redis: self.redis.clone(),
                user_id: user_id.to_string(),
                day: day.to_string(),
            }),
            _ => None,
        })
    }

    async fn used_on(&self, user_id: &str, day: &str) -> Result<u64, BackendError> {
        match self.redis.daily_used(user_id, day).await? {
            Some(used) => Ok(used),
            None => Ok(self.count_in_store(user_id, day).await?),
        }
    }

    async fn take_slot(
        &self,
        budget: Budget,
        user_id: &str,
        limit: u32,
        lease: Duration,
        wait: bool,
    ) -> Result<Option<Slot>, Unreachable> {
        let key = budget_key(budget, user_id);
        let member = uuid::Uuid::new_v4().to_string();
        loop {
            if self
                .redis
                .acquire(&key, &member, limit.max(1), lease)
                .await?
            {
                return Ok(Some(Slot::Redis {
                    redis: self.redis.clone(),
                    key,
                    member,
                }));
            }
            if !wait {
                return Ok(None);
            }
            tokio::time::sleep(SLOT_POLL).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A backend on the real Redis (None when it is not there; with
    /// `CI=true` its absence is a failure), with its own fresh key prefix.
    async fn redis() -> Option<(RedisBackend, tempfile::TempDir)> {
        let reachable = tokio::net::TcpStream::connect("127.0.0.1:6379")
            .await
            .is_ok();
        if !reachable {
            if std::env::var("CI").as_deref() == Ok("true") {
                panic!("CI=true but Redis is not reachable on 127.0.0.1:6379");
            }
            eprintln!("Redis is not reachable here; run with CI=true to require it");
            return None;
        }
        let dir = tempfile::tempdir().unwrap();
        let store = Store::connect(&crate::store::sqlite_url(dir.path()))
            .await
            .unwrap();
        let mut backend = RedisBackend::new("redis://127.0.0.1:6379", store).unwrap();
        Arc::get_mut(&mut backend.redis).unwrap().prefix =
            format!("wasmwiz-test-{}", uuid::Uuid::new_v4().simple());
        Some((backend, dir))
    }

    async fn take(redis: &RedisBackend, budget: Budget, per_minute: u64) -> Option<Taken> {
        match redis.take_minute(budget, "u", per_minute).await.unwrap() {
            Minute::Taken { cell, .. } => Some(cell),
            Minute::Refused { .. } => None,
        }
    }

    #[tokio::test]
    async fn the_shared_minute_burst_is_the_rate_and_then_refuses_with_a_wait() {
        let Some((redis, _dir)) = redis().await else {
            return;
        };
        for left in [2, 1, 0] {
            match redis.take_minute(Budget::Executions, "u", 3).await.unwrap() {
                Minute::Taken { remaining, .. } => assert_eq!(remaining, left),
                Minute::Refused { .. } => panic!("refused inside the burst"),
            }
        }
        match redis.take_minute(Budget::Executions, "u", 3).await.unwrap() {
            Minute::Refused { retry_after } => {
                assert!(retry_after > Duration::ZERO && retry_after <= Duration::from_secs(20))
            }
            Minute::Taken { .. } => panic!("a fourth cell of three"),
        }
    }

    #[tokio::test]
    async fn shared_executions_and_uploads_have_minutes_of_their_own() {
        let Some((redis, _dir)) = redis().await else {
            return;
        };
        assert!(take(&redis, Budget::Executions, 1).await.is_some());
        assert!(take(&redis, Budget::Executions, 1).await.is_none());
        assert!(take(&redis, Budget::Uploads, 1).await.is_some());
    }

    #[tokio::test]
    async fn a_shared_minute_refund_makes_the_cell_usable_again() {
        let Some((redis, _dir)) = redis().await else {
            return;
        };
        assert!(take(&redis, Budget::Executions, 1).await.is_some());
        redis.redis.minute_refund("u", 1).await.unwrap();
        assert!(take(&redis, Budget::Executions, 1).await.is_some());
    }

    #[tokio::test]
    async fn a_new_shared_day_is_seeded_from_the_usage_records() {
        let Some((redis, _dir)) = redis().await else {
            return;
        };
        let day = "2026-01-01";
        let row = crate::exec::UsageRecord {
            id: uuid::Uuid::new_v4().to_string(),
            user_id: "u".into(),
            key_id: "k".into(),
            module_sha256: "00".repeat(32),
            day: day.into(),
            started_at: 0,
            end: None,
            cached_from: None,
            job: None,
        };
        let writer = crate::store::UsageWriter::spawn(redis.store.clone());
        writer.enqueue(row).await.unwrap().wait().await.unwrap();
        assert_eq!(
            redis.used_on("u", day).await.unwrap(),
            1,
            "read from the store"
        );
        assert!(redis.take_day("u", day, 2).await.unwrap().is_some());
        assert!(redis.take_day("u", day, 2).await.unwrap().is_none());
        assert_eq!(redis.used_on("u", day).await.unwrap(), 2);
    }

    #[tokio::test]
    async fn a_shared_day_refund_gives_the_execution_back() {
        let Some((redis, _dir)) = redis().await else {
            return;
        };
        let day = "2026-01-01";
        assert!(redis.take_day("u", day, 1).await.unwrap().is_some());
        redis.redis.daily_refund("u", day).await.unwrap();
        assert_eq!(redis.used_on("u", day).await.unwrap(), 0);
        assert!(redis.take_day("u", day, 1).await.unwrap().is_some());
    }

    #[tokio::test]
    async fn a_shared_slot_is_refused_past_the_limit() {
        let Some((redis, _dir)) = redis().await else {
            return;
        };
        let lease = Duration::from_secs(60);
        let _held = redis
            .take_slot(Budget::Executions, "u", 1, lease, false)
            .await
            .unwrap()
            .expect("the first slot");
        let refused = redis.take_slot(Budget::Executions, "u", 1, lease, false);
        assert!(refused.await.unwrap().is_none());
    }

    #[tokio::test]
    async fn shared_executions_and_uploads_have_slots_of_their_own() {
        let Some((redis, _dir)) = redis().await else {
            return;
        };
        let lease = Duration::from_secs(60);
        let _held = redis
            .take_slot(Budget::Executions, "u", 1, lease, false)
            .await
            .unwrap()
            .expect("the first slot");
        let upload = redis.take_slot(Budget::Uploads, "u", 1, lease, false);
        assert!(upload.await.unwrap().is_some());
    }

    #[tokio::test]
    async fn a_waiting_shared_slot_is_admitted_once_the_holder_lets_go() {
        let Some((redis, _dir)) = redis().await else {
            return;
        };
        let lease = Duration::from_secs(60);
        let held = redis
            .take_slot(Budget::Executions, "u", 1, lease, false)
            .await
            .unwrap()
            .expect("the first slot");
        let redis = Arc::new(redis);
        let waiter = tokio::spawn({
            let redis = redis.clone();
            async move {
                let slot = redis.take_slot(Budget::Executions, "u", 1, lease, true);
                slot.await.unwrap().is_some()
            }
        });
        tokio::task::yield_now().await;
        assert!(!waiter.is_finished());
        drop(held);
        assert!(waiter.await.unwrap());
    }
}
