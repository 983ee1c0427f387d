//! Reading the gateway's own state: `/metrics` (this instance's counters, for the admin key or,
//! if the config says so, anyone) and `/v1/usage` (a key's limits and budgets in the store: its
//! own with a proxy key, any with the admin key).

use crate::Gateway;
use crate::limit;
use crate::log::LogGuard;
use crate::util::{bytes_response, error_response, json_response};
use bytes::Bytes;
use gw_model::{ApiError, ErrorKind, Format};
use gw_ports::{BodyStream, Clock, HttpClient, LogSink};
use gw_route::KeySpec;
use gw_state::{Command, Reply, StateStore};
use http::{HeaderMap, Response, StatusCode};
use serde_json::{Value, json};

impl<H: HttpClient, C: Clock, L: LogSink, S: StateStore> Gateway<H, C, L, S> {
    /// Every configured credential's breaker as the store holds it: (provider, variable, state).
    pub(crate) async fn breakers(&self, now_ms: u64) -> Vec<(String, String, Reply)> {
        let inner = &self.inner;
        let mut reads = Vec::new();
        for p in inner.cfg.providers.iter().filter(|p| p.missing().is_none()) {
            for c in &p.credentials {
                let key = crate::record::breaker_key(p, &c.signer);
                reads.push(async move {
                    let r = inner.store_apply(&key, &Command::Inspect, now_ms).await;
                    r.ok().map(|r| (p.id.clone(), c.var.clone(), r))
                });
            }
        }
        futures_util::future::join_all(reads)
            .await
            .into_iter()
            .flatten()
            .collect()
    }

    /// Whether `headers` carry `GATEWAY_ADMIN_KEY`.
    pub(crate) fn is_admin(&self, headers: &HeaderMap) -> bool {
        match (&self.inner.admin, gw_auth::presented_key(headers)) {
            (Some(set), Some(k)) => set.check(k).is_some(),
            _ => false,
        }
    }

    /// The keys whose figures `headers` may read, all or the one `asked` for: any with the admin
    /// key, else only the proxy key's own (`what` names the figures in the refusal).
    pub(crate) fn reader(
        &self,
        headers: &HeaderMap,
        asked: Option<&str>,
        what: &str,
        log: &mut LogGuard<H, C, L, S>,
    ) -> Result<Vec<&KeySpec>, ApiError> {
        let cfg = &self.inner.cfg;
        if self.is_admin(headers) {
            return Ok(cfg
                .keys
                .iter()
                .filter(|k| asked.is_none_or(|a| a == k.name))
                .collect());
        }
        self.authenticate(headers, log)?;
        let own = log.key().unwrap_or_default().to_owned();
        if asked.is_some_and(|a| a != own) {
            return Err(ApiError::new(
                ErrorKind::Permission,
                format!("a proxy key reads only its own {what} (the admin key reads any)"),
            ));
        }
        Ok(cfg.keys.iter().filter(|k| k.name == own).collect())
    }

    pub(crate) async fn metrics(
        &self,
        format: Format,
        headers: &HeaderMap,
        log: &mut LogGuard<H, C, L, S>,
    ) -> Response<BodyStream> {
        if !(self.inner.cfg.server.public_metrics || self.is_admin(headers)) {
            log.outcome(crate::log::Outcome::Unauthenticated);
            let e = ApiError::new(
                ErrorKind::Authentication,
                "/metrics needs the admin key (GATEWAY_ADMIN_KEY), or `server.public_metrics: true`",
            );
            return error_response(format, &e);
        }
        let mut text = self.inner.metrics.render();
        // Breakers and cooldowns are global: read from the store at each scrape.
        let now_ms = self.inner.clock.now().0 / 1000;
        text.push_str("# HELP gateway_breaker_open Whether a provider credential is out of traffic now (breaker open or cooldown), from the state store.\n# TYPE gateway_breaker_open gauge\n");
        let mut waits = String::from(
            "# HELP gateway_breaker_retry_after_seconds How long until an open breaker or cooldown ends.\n# TYPE gateway_breaker_retry_after_seconds gauge\n",
        );
        for (p, var, r) in self.breakers(now_ms).await {
            if let Reply::Breaker { open_until_ms, .. } = r {
                let open = open_until_ms > now_ms;
                let labels = format!("gen_ai_provider_name=\"{p}\",credential=\"{var}\"");
                text.push_str(&format!(
                    "gateway_breaker_open{{{labels}}} {}\n",
                    u8::from(open)
                ));
                let secs = open_until_ms.saturating_sub(now_ms) as f64 / 1000.0;
                waits.push_str(&format!(
                    "gateway_breaker_retry_after_seconds{{{labels}}} {secs}\n"
                ));
            }
        }
        text.push_str(&waits);
        bytes_response(
            StatusCode::OK,
            "text/plain; version=0.0.4; charset=utf-8",
            Bytes::from(text),
        )
    }

    /// `POST /admin/health-check`: one round, for an outside scheduler (admin key).
    pub(crate) async fn run_health_check(
        &self,
        format: Format,
        headers: &HeaderMap,
        log: &mut LogGuard<H, C, L, S>,
    ) -> Response<BodyStream> {
        if !self.is_admin(headers) {
            log.outcome(crate::log::Outcome::Unauthenticated);
            let e = ApiError::new(
                ErrorKind::Authentication,
                "/admin/health-check needs the admin key (GATEWAY_ADMIN_KEY)",
            );
            return error_response(format, &e);
        }
        json_response(StatusCode::OK, &self.health_check().await)
    }

    pub(crate) async fn usage(
        &self,
        format: Format,
        headers: &HeaderMap,
        query: Option<&str>,
        log: &mut LogGuard<H, C, L, S>,
    ) -> Response<BodyStream> {
        let asked = query_param(query, "key");
        let keys = match self.reader(headers, asked.as_deref(), "usage", log) {
            Ok(keys) => keys,
            Err(e) => return error_response(format, &e),
        };
        let now_ms = self.inner.clock.now().0 / 1000;
        let mut out = Vec::new();
        for k in keys {
            let scopes = limit::key_scopes(k);
            let mut windows = Vec::new();
            for s in &scopes {
                for w in s.read_windows(now_ms) {
                    let cmd = Command::Peek {
                        start_ms: w.start_ms,
                    };
                    let got = self.inner.store_apply(&w.key, &cmd, now_ms).await;
                    let (requests, units) = match got {
                        Ok(Reply::Reserved { requests, tokens }) => (requests, tokens),
                        _ => (0, 0),
                    };
                    windows.push(w.describe(requests, units));
                }
            }
            out.push(json!({"key": k.name, "windows": windows}));
        }
        let mut body = json!({"object": "usage", "now_ms": now_ms, "keys": Value::Array(out)});
        if self.is_admin(headers) {
            let providers: Vec<Value> = self
                .breakers(now_ms)
                .await
                .iter()
                .map(|(p, var, r)| {
                    json!({"provider": p, "credential": var, "breaker": breaker_state(r, now_ms)})
                })
                .collect();
            body["providers"] = Value::Array(providers);
        }
        json_response(StatusCode::OK, &body)
    }
}

/// A breaker as JSON: `open` (with `retry_after_ms`: a trip or an upstream's cooldown, a
/// failed health probe included), `half_open`, or `closed` with its failures in a row.
pub(crate) fn breaker_state(r: &Reply, now_ms: u64) -> Value {
    match r {
        Reply::Breaker { open_until_ms, .. } if *open_until_ms > now_ms => {
            json!({"state": "open", "retry_after_ms": open_until_ms - now_ms})
        }
        Reply::Breaker {
            half_open: true, ..
        } => json!({"state": "half_open"}),
        Reply::Breaker { consecutive, .. } => {
            json!({"state": "closed", "consecutive_failures": consecutive})
        }
        _ => json!({"state": "unknown"}),
    }
}

/// The percent-decoded value of `name` in a query string.
pub(crate) fn query_param(query: Option<&str>, name: &str) -> Option<String> {
    query?.split('&').find_map(|kv| {
        let (k, v) = kv.split_once('=')?;
        (k == name).then(|| gw_codec::percent_decode(v))
    })
}
