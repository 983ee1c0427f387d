//! Budget alerts: a threshold crossed fires once per budget, threshold and period across every
//! instance (a mark set once in the store), as a JSON log line and, when configured, a webhook
//! POST retried off the request path.

use crate::Inner;
use crate::limit::Held;
use bytes::Bytes;
use futures_util::future::{Either, select};
use gw_ports::{Clock, HttpClient, LogSink};
use gw_state::{Command, Reply, StateStore};
use serde_json::json;
use std::collections::HashMap;
use std::sync::Mutex;

/// Tries per webhook POST, with 1 s then 2 s between them.
const WEBHOOK_TRIES: u32 = 3;
const WEBHOOK_TIMEOUT_MS: u64 = 5_000;

/// Alert marks this instance knows are set in the store, with the end of their period: a mark
/// is asked of the store until then at most once per instance.
#[derive(Default)]
pub(crate) struct Fired(Mutex<HashMap<String, u64>>);

impl Fired {
    fn known(&self, key: &str) -> bool {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .contains_key(key)
    }

    fn remember(&self, key: String, until_ms: u64, now_ms: u64) {
        let mut m = self.0.lock().unwrap_or_else(|p| p.into_inner());
        m.retain(|_, end| *end > now_ms);
        m.insert(key, until_ms);
    }
}

/// After an answer was settled into a budget's window, now at `total`: the alert of every
/// threshold the window has reached, if no instance fired it yet. Every threshold reached is
/// asked (not only those this answer's own amount crossed): other requests' reservations
/// settle in any order, so the answer that crosses a threshold may not be the one that sees it.
pub(crate) async fn check<H: HttpClient, C: Clock, L: LogSink, S: StateStore>(
    inner: &Inner<H, C, L, S>,
    h: &Held,
    total: u64,
) {
    for t in &inner.cfg.alerts.thresholds {
        let amount = h.cap.saturating_mul(u64::from(*t)) / 100;
        if total < amount {
            continue;
        }
        let (start_ms, end_ms) = h.window();
        let key = format!("alert:{}:{start_ms}:{t}", h.store_key());
        if inner.alerts_fired.known(&key) {
            continue;
        }
        let now_ms = inner.clock.now().0 / 1000;
        let cmd = Command::Once { until_ms: end_ms };
        let reply = inner.store_apply(&key, &cmd, now_ms).await;
        if reply.is_ok() {
            inner.alerts_fired.remember(key, end_ms, now_ms);
        }
        if let Ok(Reply::First) = reply {
            let event = json!({
                "event": "budget_alert",
                "ts": now_ms,
                "budget": h.name,
                "threshold_percent": t,
                "spent_usd": total as f64 / 1e6,
                "cap_usd": h.cap as f64 / 1e6,
                "period_start_ms": start_ms,
                "period_end_ms": end_ms,
            });
            inner.log.emit(&event.to_string());
            webhook(inner, &event).await;
        }
    }
}

async fn webhook<H: HttpClient, C: Clock, L: LogSink, S: StateStore>(
    inner: &Inner<H, C, L, S>,
    event: &serde_json::Value,
) {
    let url = &inner.cfg.alerts.webhook_url;
    if url.is_empty() {
        return;
    }
    let mut last = String::new();
    for attempt in 0..WEBHOOK_TRIES {
        if attempt > 0 {
            inner.clock.sleep(1_000 << (attempt - 1)).await;
        }
        let Ok(req) = http::Request::post(url.as_str())
            .header("content-type", "application/json")
            .body(Bytes::from(event.to_string()))
        else {
            return;
        };
        let send = std::pin::pin!(inner.http.send(req));
        let timer = std::pin::pin!(inner.clock.sleep(WEBHOOK_TIMEOUT_MS));
        match select(send, timer).await {
            Either::Left((Ok(resp), _)) if resp.status().is_success() => return,
            Either::Left((Ok(resp), _)) => last = format!("status {}", resp.status().as_u16()),
            Either::Left((Err(e), _)) => last = e.message,
            Either::Right(_) => last = format!("no answer within {WEBHOOK_TIMEOUT_MS} ms"),
        }
    }
    let line = json!({"event": "alert_webhook_failed", "tries": WEBHOOK_TRIES, "error": last});
    inner.log.emit(&inner.scrub.scrub(&line.to_string()));
}
