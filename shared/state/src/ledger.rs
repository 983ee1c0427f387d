//! The spend ledger: requests, tokens and cost summed per named entry (a proxy key, a provider,
//! a model) in one record per period (a UTC day, a month, all time). Entries only ever grow, so
//! instances may batch their additions and send them in any order: the sums stay exact.

use crate::{Record, Reply, Value};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// One entry's sums.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tally {
    /// Requests served.
    pub requests: u64,
    /// Tokens used (input, output, cache and reasoning together).
    pub tokens: u64,
    /// Cost, micro-USD.
    pub micros: u64,
}

impl Tally {
    /// Adds `other` to this (saturating: a sum never wraps).
    pub fn add(&mut self, other: &Self) {
        self.requests = self.requests.saturating_add(other.requests);
        self.tokens = self.tokens.saturating_add(other.tokens);
        self.micros = self.micros.saturating_add(other.micros);
    }
}

/// Additions to one period's ledger.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Book {
    /// The period's start, unix ms: a record of another period starts afresh.
    pub start_ms: u64,
    /// When the record may go (`u64::MAX`: never).
    pub expires_at_ms: u64,
    /// What to add, by entry name.
    pub entries: Vec<(String, Tally)>,
}

pub(crate) fn book(prev: Option<&Record>, b: &Book, version: u64) -> (Option<Record>, Reply) {
    let mut entries = match prev.map(|r| &r.value) {
        Some(Value::Ledger { start_ms, entries }) if *start_ms == b.start_ms => entries.clone(),
        _ => BTreeMap::new(),
    };
    for (name, t) in &b.entries {
        entries.entry(name.clone()).or_default().add(t);
    }
    let rec = Record {
        version,
        expires_at_ms: b.expires_at_ms,
        value: Value::Ledger {
            start_ms: b.start_ms,
            entries,
        },
    };
    (Some(rec), Reply::Done)
}

pub(crate) fn read(prev: Option<&Record>, start_ms: u64) -> Reply {
    let entries = match prev.map(|r| &r.value) {
        Some(Value::Ledger {
            start_ms: s,
            entries,
        }) if *s == start_ms => entries.clone(),
        _ => BTreeMap::new(),
    };
    Reply::Ledger { entries }
}
