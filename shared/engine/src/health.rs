//! Active health checks: one probe per configured provider credential (the format's free model
//! list, or `paths.probe`), all in parallel. A failed probe cools its credential down in the store
//! for the check interval, so every instance skips it; the last results show in `/health`.
//! The local server runs rounds on its own timer; anything else (an EventBridge schedule, a Cron
//! Trigger, cron and curl) runs one with `POST /admin/health-check` and the admin key.

use crate::Gateway;
use crate::record::breaker_key;
use bytes::Bytes;
use futures_util::StreamExt;
use futures_util::future::{Either, join_all, select};
use gw_ports::{Clock, HttpClient, LogSink, TransportErrorKind};
use gw_state::{Command, StateStore};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::sync::Mutex;

/// The last probe of each (provider, credential variable), this instance's view.
#[derive(Default)]
pub(crate) struct Checks(Mutex<BTreeMap<(String, String), Value>>);

impl Checks {
    /// The last results of `provider`, by credential variable.
    pub(crate) fn of(&self, provider: &str) -> Option<Value> {
        let m = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let found: serde_json::Map<String, Value> = m
            .iter()
            .filter(|((p, _), _)| p == provider)
            .map(|((_, var), v)| (var.clone(), v.clone()))
            .collect();
        (!found.is_empty()).then_some(Value::Object(found))
    }
}

impl<H: HttpClient, C: Clock, L: LogSink, S: StateStore> Gateway<H, C, L, S> {
    /// Runs one round of health checks and returns its results.
    pub async fn health_check(&self) -> Value {
        let inner = &self.inner;
        let hc = &inner.cfg.health_checks;
        let cool_ms = hc.interval_s.max(60) * 1000;
        let mut probes = Vec::new();
        for p in inner.cfg.providers.iter().filter(|p| p.missing().is_none()) {
            let Some(url) = p.probe_url() else { continue };
            for c in &p.credentials {
                let url = url.clone();
                probes.push(async move {
                    let started = inner.clock.now();
                    let result = probe(self, p, &c.signer, &url).await;
                    let at_ms = inner.clock.now().0 / 1000;
                    if let Err(why) = &result {
                        // Out of traffic everywhere until the next round.
                        let cmd = Command::Cooldown {
                            config: inner.cfg.breaker.clone(),
                            until_ms: at_ms + cool_ms,
                        };
                        let _ = inner.store_apply(&breaker_key(p, &c.signer), &cmd, at_ms).await;
                        let line = json!({"event": "health_check_failed", "provider": p.id, "credential": c.var, "error": why});
                        inner.log.emit(&inner.scrub.scrub(&line.to_string()));
                    }
                    let v = json!({
                        "ok": result.is_ok(),
                        "error": result.err().map(|e| inner.scrub.scrub(&e)),
                        "checked_at_ms": at_ms,
                        "latency_ms": inner.clock.now().ms_since(started),
                    });
                    ((p.id.clone(), c.var.clone()), v)
                });
            }
        }
        let results = join_all(probes).await;
        let mut out = serde_json::Map::new();
        {
            let mut m = inner.checks.0.lock().unwrap_or_else(|e| e.into_inner());
            for ((p, var), v) in results {
                m.insert((p.clone(), var.clone()), v.clone());
                out.entry(p)
                    .or_insert_with(|| json!({}))
                    .as_object_mut()
                    .map(|o| o.insert(var, v));
            }
        }
        json!({"object": "health_check", "providers": out})
    }
}

/// One probe: a GET that must answer 2xx within the timeout.
async fn probe<H: HttpClient, C: Clock, L: LogSink, S: StateStore>(
    g: &Gateway<H, C, L, S>,
    p: &gw_route::Provider,
    signer: &gw_auth::Signer,
    url: &str,
) -> Result<(), String> {
    let inner = &g.inner;
    let mut b = http::Request::get(url);
    for (k, v) in &p.headers {
        b = b.header(k.as_str(), v.as_str());
    }
    let mut req = b.body(Bytes::new()).map_err(|e| e.to_string())?;
    // Signing is inside the timeout: a token may need fetching.
    let send = std::pin::pin!(async {
        signer
            .sign(&mut req, inner.clock.now().0 / 1_000_000, &inner.http)
            .await
            .map_err(|e| gw_ports::TransportError::new(TransportErrorKind::Other, e.0))?;
        inner.http.send(req).await
    });
    let timer = std::pin::pin!(inner.clock.sleep(inner.cfg.health_checks.timeout_ms));
    match select(send, timer).await {
        Either::Left((Ok(resp), _)) => {
            let status = resp.status();
            // Drain a little of it (a connection given back unread cannot be reused); never all
            // of an answer that does not end.
            let mut body = resp.into_body();
            let mut read = 0usize;
            while read < 1 << 20
                && let Some(Ok(chunk)) = body.next().await
            {
                read += chunk.len();
            }
            if status.is_success() {
                Ok(())
            } else {
                Err(format!("the probe answered {}", status.as_u16()))
            }
        }
        Either::Left((Err(e), _)) => Err(e.message),
        Either::Right(_) => Err(format!(
            "no answer within {} ms",
            inner.cfg.health_checks.timeout_ms
        )),
    }
}
