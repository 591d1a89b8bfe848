//! Limits shared by replicas through Redis: per-minute GCRA, daily quota
//! counters and per-user concurrency, each one atomic Lua script using
//! Redis's clock, so N replicas together admit what one would.

use std::time::Duration;

use redis::{aio::ConnectionManager, aio::ConnectionManagerConfig, Script};

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
