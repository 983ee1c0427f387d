//! In-memory store: a mutex around a map. For unit tests, and for runtimes with nothing better.

use crate::{Command, Record, Reply, StateStore, StoreError, apply, is_live};
use std::collections::HashMap;
use std::sync::Mutex;

/// Records in a `HashMap` behind a `Mutex`; `apply` runs under the lock.
#[derive(Debug, Default)]
pub struct MemoryStore {
    map: Mutex<HashMap<String, Record>>,
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// Runs a command synchronously.
    pub fn apply_now(&self, key: &str, cmd: &Command, now_ms: u64) -> Result<Reply, StoreError> {
        let mut map = self
            .map
            .lock()
            .map_err(|_| StoreError("memory store lock poisoned".into()))?;
        let live = map.get(key).filter(|r| is_live(r, now_ms));
        let (next, reply) = apply(live, cmd, now_ms);
        if let Some(rec) = next {
            map.insert(key.to_owned(), rec);
        }
        Ok(reply)
    }
}

impl StateStore for MemoryStore {
    async fn apply(&self, key: &str, cmd: &Command, now_ms: u64) -> Result<Reply, StoreError> {
        self.apply_now(key, cmd, now_ms)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conformance() {
        futures_util::FutureExt::now_or_never(crate::conformance::run_all(
            &MemoryStore::new(),
            "mem",
        ))
        .expect("the memory store never waits")
        .unwrap();
    }
}
