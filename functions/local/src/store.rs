//! The local server's default state store: an embedded redb file, so breaker state (and later
//! spend and budgets) survives restarts. Writes are serialised redb transactions, so each
//! command is atomic; the healthy path (nothing to change) is a read and never blocks.

use gw_state::{Command, Record, Reply, StateStore, StoreError, apply, is_live};
use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};
use std::path::Path;
use std::sync::Arc;

const TABLE: TableDefinition<&str, &[u8]> = TableDefinition::new("state");

/// State in a redb file.
pub(crate) struct RedbStore {
    db: Arc<Database>,
}

fn err(e: impl std::fmt::Display) -> StoreError {
    StoreError(e.to_string())
}

impl RedbStore {
    /// Opens (or creates) the file; fails if another process holds it.
    pub(crate) fn open(path: &Path) -> Result<Self, String> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        }
        let db = Database::create(path).map_err(|e| format!("{}: {e}", path.display()))?;
        let tx = db.begin_write().map_err(|e| e.to_string())?;
        tx.open_table(TABLE).map_err(|e| e.to_string())?;
        tx.commit().map_err(|e| e.to_string())?;
        Ok(Self { db: Arc::new(db) })
    }

    fn read(db: &Database, key: &str, now_ms: u64) -> Result<Option<Record>, StoreError> {
        let tx = db.begin_read().map_err(err)?;
        let table = tx.open_table(TABLE).map_err(err)?;
        let rec = table
            .get(key)
            .map_err(err)?
            .and_then(|v| serde_json::from_slice::<Record>(v.value()).ok());
        Ok(rec.filter(|r| is_live(r, now_ms)))
    }

    fn write(db: &Database, key: &str, cmd: &Command, now_ms: u64) -> Result<Reply, StoreError> {
        let tx = db.begin_write().map_err(err)?;
        let reply = {
            let mut table = tx.open_table(TABLE).map_err(err)?;
            let prev = table
                .get(key)
                .map_err(err)?
                .and_then(|v| serde_json::from_slice::<Record>(v.value()).ok())
                .filter(|r| is_live(r, now_ms));
            let (next, reply) = apply(prev.as_ref(), cmd, now_ms);
            if let Some(n) = next {
                let bytes = serde_json::to_vec(&n).map_err(err)?;
                table.insert(key, bytes.as_slice()).map_err(err)?;
            }
            reply
        };
        tx.commit().map_err(err)?;
        Ok(reply)
    }
}

impl StateStore for RedbStore {
    async fn apply(&self, key: &str, cmd: &Command, now_ms: u64) -> Result<Reply, StoreError> {
        // Dry run on a snapshot: when the command changes nothing (a healthy target), that is the answer.
        let prev = Self::read(&self.db, key, now_ms)?;
        let (next, reply) = apply(prev.as_ref(), cmd, now_ms);
        if next.is_none() {
            return Ok(reply);
        }
        // Otherwise re-run inside a write transaction (atomic), off the async threads: commits fsync.
        let (db, key, cmd) = (Arc::clone(&self.db), key.to_owned(), cmd.clone());
        tokio::task::spawn_blocking(move || Self::write(&db, &key, &cmd, now_ms))
            .await
            .map_err(err)?
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn conformance_and_persistence() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.redb");
        {
            let s = RedbStore::open(&path).unwrap();
            gw_state::conformance::run_all(&s, "redb").await.unwrap();
            assert!(
                RedbStore::open(&path).is_err(),
                "a second process must not open a held file"
            );
        }
        // Reopened (a restart): the open breaker from the suite is still open.
        let s = RedbStore::open(&path).unwrap();
        let cfg = gw_state::BreakerConfig {
            consecutive_failures: 1,
            cooldown_ms: 60_000,
            ..Default::default()
        };
        let t = 1_900_000_000_000;
        s.apply(
            "restart",
            &Command::Record {
                config: cfg.clone(),
                success: false,
            },
            t,
        )
        .await
        .unwrap();
        drop(s);
        let s = RedbStore::open(&path).unwrap();
        assert!(matches!(
            s.apply("restart", &Command::Admit(cfg), t + 1)
                .await
                .unwrap(),
            Reply::Reject { .. }
        ));
    }
}
