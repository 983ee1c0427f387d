//! The local server's default state store: an embedded redb file, so breaker, limit, budget and
//! spend state survives restarts. One process owns the file (redb locks it), so memory holds the
//! truth: each command runs on an in-memory view under a lock (atomic, no I/O on the request
//! path), and what changed goes, in order, to a writer thread that commits it in batches (one
//! fsync for many changes). A crash loses the changes of the last commit in flight (a few ms); a
//! graceful stop loses none (`sync`, and the drop, wait for the writer).

use gw_state::{Command, Record, Reply, StateStore, StoreError, apply, is_live};
use redb::{Database, ReadableDatabase, TableDefinition};
use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};

const TABLE: TableDefinition<&str, &[u8]> = TableDefinition::new("state");

/// The view is swept of dead records when it grows past this many keys.
const SWEEP_AT: usize = 10_000;

enum Write {
    Put(String, Vec<u8>),
    /// Answered once everything sent before it is committed.
    Sync(mpsc::Sender<()>),
}

struct Inner {
    db: Arc<Database>,
    /// Records as the file holds them once written (`None`: known absent).
    view: Mutex<HashMap<String, Option<Record>>>,
    /// `None` once closed.
    tx: Mutex<Option<mpsc::Sender<Write>>>,
    writer: Mutex<Option<std::thread::JoinHandle<()>>>,
    /// The view's size that triggers the next sweep of expired records.
    sweep_at: AtomicUsize,
}

/// State in a redb file; clones share it.
#[derive(Clone)]
pub(crate) struct RedbStore(Arc<Inner>);

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
        let db = Arc::new(db);
        let (tx, rx) = mpsc::channel();
        let wdb = Arc::clone(&db);
        let writer = std::thread::Builder::new()
            .name("state-writer".into())
            .spawn(move || write_loop(&wdb, &rx))
            .map_err(|e| format!("cannot start the state writer: {e}"))?;
        Ok(Self(Arc::new(Inner {
            db,
            view: Mutex::new(HashMap::new()),
            tx: Mutex::new(Some(tx)),
            writer: Mutex::new(Some(writer)),
            sweep_at: AtomicUsize::new(SWEEP_AT),
        })))
    }

    fn read(db: &Database, key: &str) -> Result<Option<Record>, StoreError> {
        let tx = db.begin_read().map_err(err)?;
        let table = tx.open_table(TABLE).map_err(err)?;
        Ok(table
            .get(key)
            .map_err(err)?
            .and_then(|v| serde_json::from_slice::<Record>(v.value()).ok()))
    }

    /// Waits until every change made so far is committed to the file.
    pub(crate) fn sync(&self) {
        let (ack, done) = mpsc::channel();
        let sent = self
            .0
            .tx
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .as_ref()
            .is_some_and(|tx| tx.send(Write::Sync(ack)).is_ok());
        if sent {
            let _ = done.recv();
        }
    }

    fn run(&self, key: &str, cmd: &Command, now_ms: u64) -> Result<Reply, StoreError> {
        let inner = &self.0;
        let mut view = inner.view.lock().unwrap_or_else(|e| e.into_inner());
        if !view.contains_key(key) {
            // First use of the key since start: the file has what an earlier run left.
            let r = Self::read(&inner.db, key)?;
            view.insert(key.to_owned(), r);
        }
        // Applied on the view's record in place: a command that changes nothing copies nothing.
        let prev = view
            .get(key)
            .and_then(Option::as_ref)
            .filter(|r| is_live(r, now_ms));
        let (next, reply) = apply(prev, cmd, now_ms);
        if let Some(n) = next {
            let bytes = serde_json::to_vec(&n).map_err(err)?;
            // Sent under the view's lock: changes to one key reach the file in order.
            let tx = inner.tx.lock().unwrap_or_else(|e| e.into_inner());
            let tx = tx.as_ref().ok_or_else(|| err("the state file is closed"))?;
            tx.send(Write::Put(key.to_owned(), bytes))
                .map_err(|_| err("the state writer stopped"))?;
            view.insert(key.to_owned(), Some(n));
            // Expired records go once the view has doubled since the last sweep, so a large
            // live set is not swept on every write.
            let sweep_at = inner.sweep_at.load(Ordering::Relaxed);
            if view.len() > sweep_at {
                view.retain(|_, r| r.as_ref().is_some_and(|r| is_live(r, now_ms)));
                inner
                    .sweep_at
                    .store(SWEEP_AT.max(2 * view.len()), Ordering::Relaxed);
            }
        }
        Ok(reply)
    }
}

/// Commits what arrives, as many changes per transaction as are waiting.
fn write_loop(db: &Database, rx: &mpsc::Receiver<Write>) {
    let mut failing = false;
    while let Ok(first) = rx.recv() {
        let mut batch = vec![first];
        batch.extend(rx.try_iter().take(4_096));
        let mut acks = Vec::new();
        let result = (|| -> Result<(), redb::Error> {
            let tx = db.begin_write()?;
            {
                let mut table = tx.open_table(TABLE)?;
                for w in batch {
                    match w {
                        Write::Put(k, v) => {
                            table.insert(k.as_str(), v.as_slice())?;
                        }
                        Write::Sync(ack) => acks.push(ack),
                    }
                }
            }
            tx.commit()?;
            Ok(())
        })();
        match result {
            Err(e) if !failing => {
                eprintln!("gateway: cannot write the state file: {e}");
                failing = true;
            }
            Err(_) => {}
            Ok(()) => failing = false,
        }
        for a in acks {
            let _ = a.send(());
        }
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        // Closing the channel ends the writer once it has committed everything sent.
        self.tx.get_mut().unwrap_or_else(|e| e.into_inner()).take();
        let writer = self
            .writer
            .get_mut()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        if let Some(w) = writer {
            let _ = w.join();
        }
    }
}

impl StateStore for RedbStore {
    async fn apply(&self, key: &str, cmd: &Command, now_ms: u64) -> Result<Reply, StoreError> {
        self.run(key, cmd, now_ms)
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

    #[test]
    fn changes_from_many_threads_all_reach_the_file_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.redb");
        let add = Command::Add {
            amount: 1,
            window_ms: 3_600_000,
        };
        let t = 1_900_000_000_000;
        {
            let s = RedbStore::open(&path).unwrap();
            let threads: Vec<_> = (0..4)
                .map(|_| {
                    let (s, add) = (s.clone(), add.clone());
                    std::thread::spawn(move || {
                        for _ in 0..250 {
                            s.run("count", &add, t).unwrap();
                        }
                    })
                })
                .collect();
            for th in threads {
                th.join().unwrap();
            }
        } // dropped: the writer commits what is queued
        let s = RedbStore::open(&path).unwrap();
        let zero = Command::Add {
            amount: 0,
            window_ms: 3_600_000,
        };
        assert_eq!(
            s.run("count", &zero, t).unwrap(),
            Reply::Total { total: 1000 }
        );
    }
}
