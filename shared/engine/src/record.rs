//! The last phase: breaker outcomes written to the state store after the response is on its
//! way, never in front of it.

use crate::Inner;
use crate::limit::Held;
use gw_auth::Signer;
use gw_model::Usage;
use gw_ports::{BoxFuture, Clock, HttpClient, LogSink};
use gw_route::Provider;
use gw_state::{Command, StateStore};
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
    /// (breaker key, until unix ms): credentials an upstream asked to wait (`retry-after`).
    pub(crate) cooldowns: Vec<(String, u64)>,
    /// Limit corrections whose amounts are known.
    pub(crate) settles: Vec<(String, Command)>,
    /// Reservations of the answer being streamed: settled with its usage when it ends.
    pub(crate) streamed: Vec<Held>,
}

/// The breaker key of a provider and credential: a different key for the same provider gets its
/// own breaker, and the credential itself never reaches the store.
pub(crate) fn breaker_key(p: &Provider, signer: &Signer) -> String {
    match signer.identity() {
        Some(s) => format!("breaker:{}:{}", p.id, gw_auth::fingerprint(s)),
        None => format!("breaker:{}", p.id),
    }
}

/// The deferred writes of one request, as one future for the runtime to drive.
pub(crate) fn after<H: HttpClient, C: Clock, L: LogSink, S: StateStore>(
    inner: Arc<Inner<H, C, L, S>>,
    d: Deferred,
) -> BoxFuture<'static, ()> {
    Box::pin(async move {
        let record = |key: String, success: bool| {
            let inner = Arc::clone(&inner);
            async move {
                let cmd = Command::Record {
                    config: inner.cfg.breaker.clone(),
                    success,
                };
                let now_ms = inner.clock.now().0 / 1000;
                if let Err(e) = inner.store_apply(&key, &cmd, now_ms).await {
                    let line =
                        json!({"event": "state_store_error", "key": key, "error": e.to_string()});
                    inner.log.emit(&inner.scrub.scrub(&line.to_string()));
                }
            }
        };
        let settle = |key: String, cmd: Command| {
            let inner = Arc::clone(&inner);
            async move {
                let now_ms = inner.clock.now().0 / 1000;
                if let Err(e) = inner.store_apply(&key, &cmd, now_ms).await {
                    let line =
                        json!({"event": "state_store_error", "key": key, "error": e.to_string()});
                    inner.log.emit(&inner.scrub.scrub(&line.to_string()));
                }
            }
        };
        for (key, ok) in d.records {
            record(key, ok).await;
        }
        for (key, until_ms) in d.cooldowns {
            let config = inner.cfg.breaker.clone();
            settle(key, Command::Cooldown { config, until_ms }).await;
        }
        for (key, cmd) in d.settles {
            settle(key, cmd).await;
        }
        if let Some((key, rx)) = d.stream {
            // A stream whose relay vanished without a verdict was cut by its client: the upstream was fine.
            let (ok, usage) = rx.await.unwrap_or((true, None));
            record(key, ok).await;
            for h in d.streamed {
                // No usage (cut before the end): the estimate stands.
                let (key, cmd) = h.settle(Some(usage.map_or(h.tokens(), |u| u.total())));
                settle(key, cmd).await;
            }
        }
    })
}
