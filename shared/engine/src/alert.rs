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

/// Tries per webhook POST, with 1 s then 2 s between them.
const WEBHOOK_TRIES: u32 = 3;
const WEBHOOK_TIMEOUT_MS: u64 = 5_000;

/// After an answer took a budget's window to `total` (of which `used` was this answer's):
/// the alert of every threshold this answer crossed, if no instance fired it yet.
pub(crate) async fn check<H: HttpClient, C: Clock, L: LogSink, S: StateStore>(
    inner: &Inner<H, C, L, S>,
    h: &Held,
    total: u64,
    used: u64,
) {
    for t in &inner.cfg.alerts.thresholds {
        let amount = h.cap.saturating_mul(u64::from(*t)) / 100;
        if total < amount || total.saturating_sub(used) >= amount {
            continue;
        }
        let (start_ms, end_ms) = h.window();
        let key = format!("alert:{}:{start_ms}:{t}", h.store_key());
        let now_ms = inner.clock.now().0 / 1000;
        let cmd = Command::Once { until_ms: end_ms };
        if let Ok(Reply::First) = inner.store_apply(&key, &cmd, now_ms).await {
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
