//! The result cache's durable half: one entry per (account, inputs digest),
//! its encoded bytes split into pieces of at most [`PIECE_BYTES`], with an
//! expiry; bounded in bytes per account and in total by evicting the oldest
//! entries. Shared by every replica on the same database. Also the cache
//! hits of the usage summary.

use sqlx::Row;

use super::Store;

/// Largest piece of one entry in one row.
pub const PIECE_BYTES: usize = 1 << 20;

/// An entry to store.
pub struct NewEntry<'a> {
    pub user_id: &'a str,
    pub inputs_sha256: &'a str,
    pub execution_id: &'a str,
    pub bytes: &'a [u8],
    pub now_ms: i64,
    pub expires_at_ms: i64,
}

/// Byte bounds the store keeps after each write.
#[derive(Debug, Clone, Copy)]
pub struct CacheBounds {
    pub account_bytes: u64,
    pub total_bytes: u64,
}

/// An entry evicted to stay within the bounds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Evicted {
    pub user_id: String,
    pub inputs_sha256: String,
}

impl Store {
    /// The unexpired entry of `user_id` for `inputs_sha256`, whole.
    pub async fn result_cache_get(
        &self,
        user_id: &str,
        inputs_sha256: &str,
        now_ms: i64,
    ) -> sqlx::Result<Option<Vec<u8>>> {
        let mut tx = self.pool().begin().await?;
        let head = sqlx::query(
            "SELECT pieces, size_bytes FROM result_cache \
             WHERE user_id = $1 AND inputs_sha256 = $2 AND expires_at > $3",
        )
        .bind(user_id)
        .bind(inputs_sha256)
        .bind(now_ms)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(head) = head else {
            return Ok(None);
        };
        let pieces: i64 = head.try_get(0)?;
        let size: i64 = head.try_get(1)?;
        let rows = sqlx::query(
            "SELECT data FROM result_cache_pieces WHERE user_id = $1 AND inputs_sha256 = $2 ORDER BY seq",
        )
        .bind(user_id)
        .bind(inputs_sha256)
        .fetch_all(&mut *tx)
        .await?;
        tx.commit().await?;
        if rows.len() as i64 != pieces {
            return Ok(None);
        }
        let mut bytes = Vec::with_capacity(size.max(0) as usize);
        for row in rows {
            bytes.extend_from_slice(&row.try_get::<Vec<u8>, _>(0)?);
        }
        Ok((bytes.len() as i64 == size).then_some(bytes))
    }

    /// Stores (or replaces) an entry, then evicts the oldest entries of the
    /// account and of everyone past `bounds`; returns what was evicted.
    pub async fn result_cache_put(
        &self,
        entry: NewEntry<'_>,
        bounds: CacheBounds,
    ) -> sqlx::Result<Vec<Evicted>> {
        let pieces: Vec<&[u8]> = if entry.bytes.is_empty() {
            vec![&[][..]]
        } else {
            entry.bytes.chunks(PIECE_BYTES).collect()
        };
        let mut tx = self.begin_write().await?;
        delete_entry(&mut tx, entry.user_id, entry.inputs_sha256).await?;
        sqlx::query(
            "INSERT INTO result_cache (user_id, inputs_sha256, execution_id, size_bytes, pieces, created_at, expires_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(entry.user_id)
        .bind(entry.inputs_sha256)
        .bind(entry.execution_id)
        .bind(entry.bytes.len() as i64)
        .bind(pieces.len() as i64)
        .bind(entry.now_ms)
        .bind(entry.expires_at_ms)
        .execute(&mut *tx)
        .await?;
        for (seq, piece) in pieces.iter().enumerate() {
            sqlx::query(
                "INSERT INTO result_cache_pieces (user_id, inputs_sha256, seq, data) VALUES ($1, $2, $3, $4)",
            )
            .bind(entry.user_id)
            .bind(entry.inputs_sha256)
            .bind(seq as i64)
            .bind(piece.to_vec())
            .execute(&mut *tx)
            .await?;
        }
        let account = sqlx::query(
            "SELECT user_id, inputs_sha256, size_bytes FROM result_cache WHERE user_id = $1 \
             ORDER BY created_at DESC, inputs_sha256",
        )
        .bind(entry.user_id)
        .fetch_all(&mut *tx)
        .await?;
        let mut evicted = past_bound(account, bounds.account_bytes)?;
        for gone in &evicted {
            delete_entry(&mut tx, &gone.user_id, &gone.inputs_sha256).await?;
        }
        let total: i64 = sqlx::query_scalar(
            "SELECT CAST(COALESCE(SUM(size_bytes), 0) AS BIGINT) FROM result_cache",
        )
        .fetch_one(&mut *tx)
        .await?;
        if total as u64 > bounds.total_bytes {
            let everyone = sqlx::query(
                "SELECT user_id, inputs_sha256, size_bytes FROM result_cache \
                 ORDER BY created_at DESC, user_id, inputs_sha256",
            )
            .fetch_all(&mut *tx)
            .await?;
            let more = past_bound(everyone, bounds.total_bytes)?;
            for gone in &more {
                delete_entry(&mut tx, &gone.user_id, &gone.inputs_sha256).await?;
            }
            evicted.extend(more);
        }
        tx.commit().await?;
        Ok(evicted)
    }

    /// Deletes entries expired by `now_ms`; returns how many.
    pub async fn result_cache_purge(&self, now_ms: i64) -> sqlx::Result<u64> {
        let mut tx = self.begin_write().await?;
        sqlx::query(
            "DELETE FROM result_cache_pieces WHERE EXISTS (SELECT 1 FROM result_cache c \
             WHERE c.user_id = result_cache_pieces.user_id \
             AND c.inputs_sha256 = result_cache_pieces.inputs_sha256 AND c.expires_at <= $1)",
        )
        .bind(now_ms)
        .execute(&mut *tx)
        .await?;
        let done = sqlx::query("DELETE FROM result_cache WHERE expires_at <= $1")
            .bind(now_ms)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(done.rows_affected())
    }

    /// Cache hits and the fuel they saved (the replayed runs' fuel), for
    /// one user or everyone, from UTC day `since_day` on.
    pub async fn usage_cache_hits(
        &self,
        user_id: Option<&str>,
        since_day: &str,
    ) -> sqlx::Result<(u64, u64)> {
        self.settle_usage().await?;
        let filter = if user_id.is_some() {
            "AND user_id = $2"
        } else {
            ""
        };
        let sql = format!(
            "SELECT COUNT(*), CAST(COALESCE(SUM(fuel_consumed), 0) AS BIGINT) FROM usage_records \
             WHERE day >= $1 AND cached_from IS NOT NULL {filter}"
        );
        let mut query = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(since_day);
        if let Some(user_id) = user_id {
            query = query.bind(user_id);
        }
        let row = query.fetch_one(self.pool()).await?;
        Ok((
            row.try_get::<i64, _>(0)? as u64,
            row.try_get::<i64, _>(1)? as u64,
        ))
    }
}

/// The entries of `rows` (newest first) past the first `bound` bytes.
fn past_bound(rows: Vec<sqlx::any::AnyRow>, bound: u64) -> sqlx::Result<Vec<Evicted>> {
    let mut kept = 0u64;
    let mut evicted = Vec::new();
    for row in rows {
        let size = row.try_get::<i64, _>(2)?.max(0) as u64;
        kept = kept.saturating_add(size);
        if kept > bound {
            evicted.push(Evicted {
                user_id: row.try_get(0)?,
                inputs_sha256: row.try_get(1)?,
            });
        }
    }
    Ok(evicted)
}

async fn delete_entry(
    tx: &mut sqlx::Transaction<'static, sqlx::Any>,
    user_id: &str,
    inputs_sha256: &str,
) -> sqlx::Result<()> {
    sqlx::query("DELETE FROM result_cache_pieces WHERE user_id = $1 AND inputs_sha256 = $2")
        .bind(user_id)
        .bind(inputs_sha256)
        .execute(&mut **tx)
        .await?;
    sqlx::query("DELETE FROM result_cache WHERE user_id = $1 AND inputs_sha256 = $2")
        .bind(user_id)
        .bind(inputs_sha256)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const BOUNDS: CacheBounds = CacheBounds {
        account_bytes: 1 << 30,
        total_bytes: 1 << 30,
    };

    async fn store() -> (Store, tempfile::TempDir) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::connect(&crate::store::sqlite_url(dir.path()))
            .await
            .unwrap();
        (store, dir)
    }

    fn entry<'a>(user_id: &'a str, key: &'a str, bytes: &'a [u8], expires: i64) -> NewEntry<'a> {
        NewEntry {
            user_id,
            inputs_sha256: key,
            execution_id: "e",
            bytes,
            now_ms: 1_000,
            expires_at_ms: expires,
        }
    }

    #[tokio::test]
    async fn an_entry_larger_than_a_piece_comes_back_whole() {
        let (store, _dir) = store().await;
        let bytes: Vec<u8> = (0..PIECE_BYTES * 2 + 5).map(|i| (i % 251) as u8).collect();
        store
            .result_cache_put(entry("u", "k", &bytes, 10_000), BOUNDS)
            .await
            .unwrap();
        assert_eq!(
            store.result_cache_get("u", "k", 2_000).await.unwrap(),
            Some(bytes)
        );
    }

    #[tokio::test]
    async fn an_expired_entry_is_not_served_and_is_purged() {
        let (store, _dir) = store().await;
        store
            .result_cache_put(entry("u", "k", b"x", 5_000), BOUNDS)
            .await
            .unwrap();
        assert!(store
            .result_cache_get("u", "k", 4_999)
            .await
            .unwrap()
            .is_some());
        assert_eq!(store.result_cache_get("u", "k", 5_000).await.unwrap(), None);
        assert_eq!(store.result_cache_purge(5_000).await.unwrap(), 1);
        let pieces: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM result_cache_pieces")
            .fetch_one(store.pool())
            .await
            .unwrap();
        assert_eq!(pieces, 0);
    }

    #[tokio::test]
    async fn the_global_bound_evicts_the_oldest_entry_of_anyone() {
        let (store, _dir) = store().await;
        let bounds = CacheBounds {
            account_bytes: 1 << 30,
            total_bytes: 15,
        };
        let mut old = entry("alice", "k1", &[1; 10], 10_000);
        old.now_ms = 1;
        store.result_cache_put(old, bounds).await.unwrap();
        let evicted = store
            .result_cache_put(entry("bob", "k2", &[2; 10], 10_000), bounds)
            .await
            .unwrap();
        assert_eq!(
            evicted,
            vec![Evicted {
                user_id: "alice".into(),
                inputs_sha256: "k1".into()
            }]
        );
        assert_eq!(
            store.result_cache_get("alice", "k1", 2).await.unwrap(),
            None
        );
        assert!(store
            .result_cache_get("bob", "k2", 2)
            .await
            .unwrap()
            .is_some());
    }
}
