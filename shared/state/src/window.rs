//! Request and token allowances per window (a minute for RPM/TPM, a UTC day or month for
//! quotas): reserved atomically before an upstream call, settled with the real usage after.

use crate::{Record, Reply, Value};
use serde::{Deserialize, Serialize};

/// What a reservation asks of one window.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reserve {
    /// Window start, unix ms (the caller's period boundary: minute, day or month).
    pub start_ms: u64,
    /// Window end, unix ms; the record dies then.
    pub end_ms: u64,
    /// Requests to take (1, or 0 for a token-only quota).
    pub requests: u64,
    /// Tokens to take (the request's estimate).
    pub tokens: u64,
    /// Requests allowed in the window (`u64::MAX`: no limit).
    pub max_requests: u64,
    /// Tokens allowed in the window (`u64::MAX`: no limit).
    pub max_tokens: u64,
}

/// A correction to a window, once the real usage is known (or a reservation is given back).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Settle {
    /// The window the reservation was made in; a later window is left alone.
    pub start_ms: u64,
    /// Its end.
    pub end_ms: u64,
    /// Requests to add (negative: give back).
    pub requests: i64,
    /// Tokens to add (negative: the estimate was too high).
    pub tokens: i64,
}

/// Which allowance ran out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Exhausted {
    /// The request count.
    Requests,
    /// The token count.
    Tokens,
}

/// The window's totals in a record, when it is the window asked about.
fn totals(prev: Option<&Record>, start_ms: u64) -> (u64, u64) {
    match prev.map(|r| &r.value) {
        Some(Value::Window {
            start_ms: s,
            requests,
            tokens,
        }) if *s == start_ms => (*requests, *tokens),
        _ => (0, 0),
    }
}

fn record(version: u64, end_ms: u64, start_ms: u64, requests: u64, tokens: u64) -> Record {
    Record {
        version,
        expires_at_ms: end_ms,
        value: Value::Window {
            start_ms,
            requests,
            tokens,
        },
    }
}

/// Takes the reservation if both totals stay within their limits, else nothing.
pub(crate) fn reserve(
    prev: Option<&Record>,
    r: &Reserve,
    now_ms: u64,
    version: u64,
) -> (Option<Record>, Reply) {
    let (requests, tokens) = totals(prev, r.start_ms);
    let over = if requests.saturating_add(r.requests) > r.max_requests {
        Some(Exhausted::Requests)
    } else if r.tokens > 0 && tokens.saturating_add(r.tokens) > r.max_tokens {
        Some(Exhausted::Tokens)
    } else {
        None
    };
    if let Some(which) = over {
        let retry_after_ms = r.end_ms.saturating_sub(now_ms).max(1);
        return (
            None,
            Reply::Limited {
                which,
                retry_after_ms,
            },
        );
    }
    let (requests, tokens) = (
        requests.saturating_add(r.requests),
        tokens.saturating_add(r.tokens),
    );
    (
        Some(record(version, r.end_ms, r.start_ms, requests, tokens)),
        Reply::Reserved { requests, tokens },
    )
}

/// Applies a correction to the window it names (never below zero); replies with its totals.
pub(crate) fn settle(prev: Option<&Record>, s: &Settle, version: u64) -> (Option<Record>, Reply) {
    let (requests, tokens) = totals(prev, s.start_ms);
    if prev.is_none_or(
        |p| !matches!(p.value, Value::Window { start_ms, .. } if start_ms == s.start_ms),
    ) {
        // The window is over (or never held anything): nothing to correct.
        return (None, Reply::Done);
    }
    let add = |a: u64, d: i64| a.saturating_add_signed(d);
    let (requests, tokens) = (add(requests, s.requests), add(tokens, s.tokens));
    (
        Some(record(version, s.end_ms, s.start_ms, requests, tokens)),
        Reply::Reserved { requests, tokens },
    )
}

/// A window's totals, changing nothing.
pub(crate) fn peek(prev: Option<&Record>, start_ms: u64) -> Reply {
    let (requests, tokens) = totals(prev, start_ms);
    Reply::Reserved { requests, tokens }
}
