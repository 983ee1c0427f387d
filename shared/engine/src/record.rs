//! The last phase: breaker outcomes and limit and budget corrections written to the state store
//! after the response is on its way, never in front of it.

use crate::Inner;
use crate::limit::{Amounts, Held};
use gw_auth::Signer;
use gw_model::Usage;
use gw_ports::{BoxFuture, Clock, HttpClient, LogSink};
use gw_route::{Price, Provider};
use gw_state::{Command, Reply, StateStore};
use serde_json::json;
use std::sync::Arc;

/// How a stream ended (upstream served it, its usage), sent when its relay is dropped.
pub(crate) type Verdict = futures_channel::oneshot::Receiver<(bool, Option<Usage>)>;

/// Store writes that wait until the response is on its way.
#[derive(Default)]
pub(crate) struct Deferred {
    /// (breaker key, success) for attempts already decided.
    pub(crate) records: Vec<(String, bool)>,
    /// The streamed attempt: whether the upstream served it well, and its usage, arrive when
    /// the stream ends.
    pub(crate) stream: Option<(String, Verdict)>,
    /// Reservations to correct, with what was really used (`None`: nothing went upstream).
    pub(crate) settles: Vec<(Held, Option<Amounts>)>,
    /// Reservations of the answer being streamed: settled with its usage when it ends.
    pub(crate) streamed: Vec<Held>,
    /// The streamed target's price, for its cost.
    pub(crate) price: Option<Price>,
}

/// The breaker key of a provider and credential: a different key for the same provider gets its
/// own breaker, and the credential itself never reaches the store.
pub(crate) fn breaker_key(p: &Provider, signer: &Signer) -> String {
    match p.fingerprint_of(signer) {
        Some(f) => format!("breaker:{}:{f}", p.id),
        None => format!("breaker:{}", p.id),
    }
}

/// A future that is already done, of no size: boxing it allocates nothing.
struct Done;

impl std::future::Future for Done {
    type Output = ();
    fn poll(self: std::pin::Pin<&mut Self>, _: &mut std::task::Context<'_>) -> std::task::Poll<()> {
        std::task::Poll::Ready(())
    }
}

/// The deferred writes of one request, as one future for the runtime to drive. A request with
/// none (refused before any attempt, while the ledger's batch is not due) gets a future that is
/// already done, without the allocation the writes' state would take. Every attempt has its
/// breaker outcome to record.
pub(crate) fn after<H: HttpClient, C: Clock, L: LogSink, S: StateStore>(
    inner: Arc<Inner<H, C, L, S>>,
    d: Deferred,
) -> BoxFuture<'static, ()> {
    let idle = d.records.is_empty() && d.settles.is_empty() && d.stream.is_none();
    if idle && !inner.ledger.due(inner.clock.now().0 / 1000) {
        return Box::pin(Done);
    }
    Box::pin(async move {
        let apply = |key: String, cmd: Command| {
            let inner = Arc::clone(&inner);
            async move {
                let now_ms = inner.clock.now().0 / 1000;
                let r = inner.store_apply(&key, &cmd, now_ms).await;
                if let Err(e) = &r {
                    let line =
                        json!({"event": "state_store_error", "key": key, "error": e.to_string()});
                    inner.log.emit(&inner.scrub.scrub(&line.to_string()));
                }
                r.ok()
            }
        };
        let record = |key: String, success: bool| {
            let config = inner.cfg.breaker.clone();
            apply(key, Command::Record { config, success })
        };
        let settle = |h: Held, used: Option<Amounts>| {
            let inner = Arc::clone(&inner);
            let (key, cmd) = h.settle(used);
            let done = apply(key, cmd);
            async move {
                // A budget's total after this answer: alerts for the thresholds it reached.
                if let (Some(Reply::Reserved { tokens: total, .. }), Some(_)) = (done.await, used)
                    && h.is_budget()
                {
                    // Boxed: the alert (a webhook call) is large and rare; unboxed it made
                    // every request's deferred future 1,416 bytes instead of 1,160.
                    Box::pin(crate::alert::check(&inner, &h, total)).await;
                }
            }
        };
        for (key, ok) in d.records {
            record(key, ok).await;
        }
        for (h, used) in d.settles {
            settle(h, used).await;
        }
        if let Some((key, rx)) = d.stream {
            // A stream whose relay vanished without a verdict was cut by its client: the upstream was fine.
            let (ok, usage) = rx.await.unwrap_or((true, None));
            record(key, ok).await;
            for h in d.streamed {
                // No usage (cut before the end): the estimate stands.
                let used =
                    usage.map_or_else(|| h.estimate(), |u| Amounts::of(&u, d.price.as_ref()));
                settle(h, Some(used)).await;
            }
        }
        flush_ledger(&inner, false).await;
    })
}

/// Books the ledger's pending spend when due (`all`: now), in parallel per period; a booking
/// the store refuses stays pending for the next flush.
pub(crate) async fn flush_ledger<H: HttpClient, C: Clock, L: LogSink, S: StateStore>(
    inner: &Inner<H, C, L, S>,
    all: bool,
) {
    let now_ms = inner.clock.now().0 / 1000;
    let calls = inner
        .ledger
        .take(now_ms, all)
        .into_iter()
        .map(|(period, book)| async move {
            let key = crate::ledger::store_key(period, book.start_ms);
            let cmd = Command::Book(book);
            if let Err(e) = inner.store_apply(&key, &cmd, now_ms).await {
                if let Command::Book(b) = &cmd {
                    inner.ledger.restore(now_ms, period, b);
                }
                let line =
                    json!({"event": "state_store_error", "key": key, "error": e.to_string()});
                inner.log.emit(&inner.scrub.scrub(&line.to_string()));
            }
        });
    futures_util::future::join_all(calls).await;
}

/// A failed attempt's mark on its credential: a 429 or 529 that says when to come back cools it
/// down for exactly that long (at most a day) on every instance, written now (the next request
/// must already see it); any other failure that counts against the target goes to its breaker
/// after the response.
pub(crate) async fn failed<H: HttpClient, C: Clock, L: LogSink, S: StateStore>(
    inner: &Inner<H, C, L, S>,
    bkey: String,
    e: &gw_model::UpstreamError,
    d: &mut Deferred,
) -> Result<(), gw_state::StoreError> {
    if !e.fault.counts_against_target() {
        return Ok(());
    }
    match (e.status, e.retry_after_secs) {
        (Some(429 | 529), Some(secs)) => {
            let at = inner.clock.now().0 / 1000;
            let cmd = Command::Cooldown {
                config: inner.cfg.breaker.clone(),
                until_ms: at + secs.min(86_400) * 1000,
            };
            inner.store_apply(&bkey, &cmd, at).await.map(|_| ())
        }
        _ => {
            d.records.push((bkey, false));
            Ok(())
        }
    }
}
