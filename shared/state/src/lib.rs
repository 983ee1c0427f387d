//! Shared state as commands, not get/put.
//!
//! Every store (memory, the local embedded store, DynamoDB, Durable Objects) runs the same pure
//! function, [`apply`], atomically on one record: under a mutex, in a transaction, as a
//! conditional write on `version`, or inside the object. So the breaker's rules exist once, and
//! stateless instances that share a store share the breaker.

mod breaker;
pub mod conformance;
pub mod dynamo;
mod ledger;
mod memory;
mod window;

pub use breaker::{BreakerConfig, BreakerState};
use gw_ports::{MaybeSend, MaybeSync};
pub use ledger::{Book, Tally};
pub use memory::MemoryStore;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::future::Future;
pub use window::{Exhausted, Reserve, Settle};

/// A store of records that runs [`apply`] atomically per key.
pub trait StateStore: MaybeSend + MaybeSync + 'static {
    /// Applies `cmd` to `key` at `now_ms` atomically and returns the reply.
    fn apply(
        &self,
        key: &str,
        cmd: &Command,
        now_ms: u64,
    ) -> impl Future<Output = Result<Reply, StoreError>> + MaybeSend;
}

/// One record under one key, as stored (JSON) by every implementation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Record {
    /// Bumped by every write: conditional writes compare it.
    pub version: u64,
    /// Unix ms after which the record is dead (stores skip it on read; TTL deletes it later).
    pub expires_at_ms: u64,
    /// The value.
    pub value: Value,
}

/// What a record holds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Value {
    /// A circuit breaker.
    Breaker(BreakerState),
    /// A window's reserved requests and tokens.
    Window {
        /// Window start, unix ms.
        start_ms: u64,
        /// Requests taken.
        requests: u64,
        /// Tokens taken.
        tokens: u64,
    },
    /// A mark set by [`Command::Once`].
    Mark,
    /// A fixed-window counter.
    Counter {
        /// Window start, unix ms.
        window_start_ms: u64,
        /// Sum in this window.
        total: u64,
    },
    /// One period of the spend ledger.
    Ledger {
        /// The period's start, unix ms.
        start_ms: u64,
        /// Sums by entry name.
        entries: BTreeMap<String, Tally>,
    },
}

/// A command, applied atomically to one key.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "cmd", rename_all = "snake_case")]
pub enum Command {
    /// May a request go to this target now? Reserves a half-open trial when one is due.
    Admit(BreakerConfig),
    /// The outcome of a request that was admitted.
    Record {
        /// Thresholds.
        config: BreakerConfig,
        /// The upstream worked.
        success: bool,
    },
    /// The upstream said when to come back (a 429 or 529 with `retry-after`): the breaker
    /// rejects until then, whatever it counted.
    Cooldown {
        /// Thresholds.
        config: BreakerConfig,
        /// Unix ms until which nothing is sent.
        until_ms: u64,
    },
    /// Marks the key, once: the first caller until `until_ms` hears `First`, every other `Seen`
    /// (an alert fired exactly once across instances).
    Once {
        /// Unix ms when the mark lapses.
        until_ms: u64,
    },
    /// Takes requests and tokens from a window if both stay within their limits.
    Reserve(Reserve),
    /// Corrects a window after the fact.
    Settle(Settle),
    /// Reads a breaker (`Breaker`), changing nothing.
    Inspect,
    /// Reads a window's totals (`Reserved`), changing nothing.
    Peek {
        /// The window's start, unix ms.
        start_ms: u64,
    },
    /// Adds to a fixed-window counter and returns the window's total.
    Add {
        /// Amount to add.
        amount: u64,
        /// Window length.
        window_ms: u64,
    },
    /// Adds to a period of the spend ledger.
    Book(Book),
    /// Reads a period of the spend ledger (`Ledger`), changing nothing.
    Ledger {
        /// The period's start, unix ms.
        start_ms: u64,
    },
}

/// A command's answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "reply", rename_all = "snake_case")]
pub enum Reply {
    /// Go ahead.
    Allow,
    /// Go ahead as a half-open trial.
    Trial,
    /// Open: skip this target.
    Reject {
        /// When it may be tried again.
        retry_after_ms: u64,
    },
    /// Recorded.
    Done,
    /// Reserved; the window's totals after it.
    Reserved {
        /// Requests taken in the window.
        requests: u64,
        /// Tokens taken in the window.
        tokens: u64,
    },
    /// Where a breaker stands.
    Breaker {
        /// Rejecting until this unix ms (0: not open).
        open_until_ms: u64,
        /// Letting trials through.
        half_open: bool,
        /// Failures in a row while closed.
        consecutive: u32,
    },
    /// The mark was not there: this caller set it.
    First,
    /// The mark was already there.
    Seen,
    /// Over a limit: nothing was taken.
    Limited {
        /// The allowance that ran out.
        which: Exhausted,
        /// When the window ends.
        retry_after_ms: u64,
    },
    /// The counter's total in the current window.
    Total {
        /// The total.
        total: u64,
    },
    /// A ledger period's sums by entry name (empty when nothing was booked).
    Ledger {
        /// The sums.
        entries: BTreeMap<String, Tally>,
    },
}

/// A store failed. The gateway fails open on these: a store outage must not stop traffic.
#[derive(Debug, Clone, thiserror::Error)]
#[error("state store: {0}")]
pub struct StoreError(pub String);

/// The one transition function. `prev` is the live record (the store has already dropped an
/// expired one); returns the record to write (`None`: leave the key as it is) and the reply.
pub fn apply(prev: Option<&Record>, cmd: &Command, now_ms: u64) -> (Option<Record>, Reply) {
    let version = prev.map_or(0, |r| r.version) + 1;
    match cmd {
        Command::Admit(cfg) => breaker(prev, cfg, now_ms, version, |b| b.admit(cfg, now_ms)),
        Command::Record { config, success } => breaker(prev, config, now_ms, version, |b| {
            (b.record(config, *success, now_ms), Reply::Done)
        }),
        Command::Cooldown { config, until_ms } => breaker(prev, config, now_ms, version, |b| {
            (b.cool_down(*until_ms), Reply::Done)
        }),
        Command::Once { until_ms } => match prev {
            Some(_) => (None, Reply::Seen),
            None => (
                Some(Record {
                    version,
                    expires_at_ms: *until_ms,
                    value: Value::Mark,
                }),
                Reply::First,
            ),
        },
        Command::Reserve(r) => window::reserve(prev, r, now_ms, version),
        Command::Settle(st) => window::settle(prev, st, version),
        Command::Peek { start_ms } => (None, window::peek(prev, *start_ms)),
        Command::Book(b) => ledger::book(prev, b, version),
        Command::Ledger { start_ms } => (None, ledger::read(prev, *start_ms)),
        Command::Inspect => {
            let reply = match prev.map(|r| &r.value) {
                Some(Value::Breaker(BreakerState::Open { until_ms, .. })) => Reply::Breaker {
                    open_until_ms: *until_ms,
                    half_open: false,
                    consecutive: 0,
                },
                Some(Value::Breaker(BreakerState::HalfOpen { .. })) => Reply::Breaker {
                    open_until_ms: 0,
                    half_open: true,
                    consecutive: 0,
                },
                Some(Value::Breaker(BreakerState::Closed { consecutive, .. })) => Reply::Breaker {
                    open_until_ms: 0,
                    half_open: false,
                    consecutive: *consecutive,
                },
                _ => Reply::Breaker {
                    open_until_ms: 0,
                    half_open: false,
                    consecutive: 0,
                },
            };
            (None, reply)
        }
        Command::Add { amount, window_ms } => {
            let window_start = now_ms - now_ms % window_ms.max(&1);
            let total = match prev.map(|r| &r.value) {
                Some(Value::Counter {
                    window_start_ms,
                    total,
                }) if *window_start_ms == window_start => total + amount,
                _ => *amount,
            };
            let rec = Record {
                version,
                expires_at_ms: window_start + window_ms.max(&1),
                value: Value::Counter {
                    window_start_ms: window_start,
                    total,
                },
            };
            (Some(rec), Reply::Total { total })
        }
    }
}

fn breaker(
    prev: Option<&Record>,
    cfg: &BreakerConfig,
    now_ms: u64,
    version: u64,
    step: impl FnOnce(BreakerState) -> (BreakerState, Reply),
) -> (Option<Record>, Reply) {
    let state = match prev.map(|r| &r.value) {
        Some(Value::Breaker(b)) => b.clone(),
        _ => BreakerState::default(),
    };
    let (next, reply) = step(state);
    if next.is_clean() {
        // A healthy target needs no record at all, so healthy traffic costs no writes: none
        // while there is no record, one tombstone (already expired, so every store reads it as
        // absent) when a record becomes clean again.
        let Some(prev) = prev else {
            return (None, reply);
        };
        let tombstone = Record {
            version,
            expires_at_ms: now_ms.min(prev.expires_at_ms),
            value: Value::Breaker(BreakerState::default()),
        };
        return (Some(tombstone), reply);
    }
    if prev.is_some_and(|p| matches!(&p.value, Value::Breaker(b) if *b == next)) {
        return (None, reply); // unchanged: admitting to a closed breaker, a late answer, ...
    }
    // Kept for the retention after the last write, and past the end of a cooldown however long.
    let mut expires_at_ms = now_ms.saturating_add(cfg.retention_ms());
    if let BreakerState::Open { until_ms, .. } = &next {
        expires_at_ms = expires_at_ms.max(until_ms.saturating_add(cfg.retention_ms()));
    }
    let rec = Record {
        version,
        expires_at_ms,
        value: Value::Breaker(next),
    };
    (Some(rec), reply)
}

/// Whether a stored record is still live at `now_ms` (stores treat dead records as absent,
/// since TTL deletion is lazy: DynamoDB may keep expired items for days).
pub fn is_live(r: &Record, now_ms: u64) -> bool {
    r.expires_at_ms > now_ms
}
