//! One structured log line per request, emitted when the request is really over (after the
//! last streamed byte, or when the client went away), never containing a secret.

use crate::Inner;
use gw_model::{Format, Usage};
use gw_ports::{Clock, HttpClient, LogSink, Timestamp};
use gw_state::StateStore;
use serde::Serialize;
use std::sync::Arc;

/// One upstream attempt.
#[derive(Debug, Clone, Serialize)]
pub struct Attempt {
    /// Provider id.
    pub provider: String,
    /// Upstream model.
    pub model: String,
    /// HTTP status, if a response head arrived.
    pub status: Option<u16>,
    /// Time spent on this attempt.
    pub latency_ms: f64,
    /// Why it failed (`connect`, `timeout`, `rate_limited`, `upstream_error`, `not_configured`, ...).
    pub error_class: Option<&'static str>,
    /// The failure, scrubbed of secrets.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The variable of the credential used, when the provider has a pool.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub credential: Option<String>,
}

/// Client strings longer than this are cut in log lines (a 5 MB model name must not be logged
/// at full length, three times over).
const MAX_LOGGED: usize = 256;
/// Upstream error texts are cut here.
const MAX_LOGGED_ERROR: usize = 2048;

/// `s`, cut at a character boundary to at most `max` bytes, marked with `…` when cut.
pub(crate) fn cut(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_owned();
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &s[..end])
}

impl Attempt {
    pub(crate) fn ok(provider: &str, model: &str, status: u16, latency_ms: f64) -> Self {
        Self {
            provider: provider.into(),
            model: cut(model, MAX_LOGGED),
            status: Some(status),
            latency_ms: round(latency_ms),
            error_class: None,
            error: None,
            credential: None,
        }
    }
    /// Names the pool credential used.
    pub(crate) fn with_credential(mut self, var: Option<&str>) -> Self {
        self.credential = var.map(str::to_owned);
        self
    }
    pub(crate) fn skipped(provider: &str, model: &str, class: &'static str) -> Self {
        Self {
            provider: provider.into(),
            model: cut(model, MAX_LOGGED),
            status: None,
            latency_ms: 0.0,
            error_class: Some(class),
            error: None,
            credential: None,
        }
    }
    pub(crate) fn failed(
        provider: &str,
        model: &str,
        status: Option<u16>,
        latency_ms: f64,
        class: &'static str,
        error: &str,
    ) -> Self {
        Self {
            provider: provider.into(),
            model: cut(model, MAX_LOGGED),
            status,
            latency_ms: round(latency_ms),
            error_class: Some(class),
            error: Some(cut(error, MAX_LOGGED_ERROR)),
            credential: None,
        }
    }
}

/// How a request ended, as logged; it also decides what a stream's breaker records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// Answered.
    Ok,
    /// Answered with an error (the upstream's or the gateway's).
    Error,
    /// The request was refused before any upstream call (bad input, unknown model).
    Rejected,
    /// A configured limit refused it (the gateway's own 429).
    Limited,
    /// No valid proxy key.
    Unauthenticated,
    /// The client went away first.
    ClientDisconnected,
    /// A stream the upstream broke off or garbled.
    UpstreamIncomplete,
}

impl Outcome {
    /// Whether the upstream did its part (the breaker's view of a stream).
    pub(crate) fn upstream_served(self) -> bool {
        matches!(self, Self::Ok | Self::ClientDisconnected)
    }
}

fn round(ms: f64) -> f64 {
    (ms * 1000.0).round() / 1000.0
}

/// The log record of one request.
#[derive(Debug, Clone, Serialize)]
pub struct RequestLog {
    /// Unix milliseconds at arrival.
    pub ts: u64,
    /// `X-Request-ID`, honoured or generated.
    pub request_id: String,
    /// HTTP method.
    pub method: String,
    /// Path.
    pub path: String,
    /// The client's API format.
    pub client_format: &'static str,
    /// Name of the proxy key used.
    pub key: Option<String>,
    /// Requested model.
    pub model: Option<String>,
    /// Streamed request.
    pub stream: bool,
    /// Provider that answered.
    pub provider: Option<String>,
    /// Model sent upstream.
    pub upstream_model: Option<String>,
    /// Same-format byte forwarding was used.
    pub fast_path: bool,
    /// Every attempt in order.
    pub attempts: Vec<Attempt>,
    /// Time to the first upstream byte.
    pub ttfb_ms: Option<f64>,
    /// Total time.
    pub duration_ms: f64,
    /// Token usage, when the upstream reported it.
    pub usage: Option<Usage>,
    /// What the answer cost at the price table, when its model has a price.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cost_usd: Option<f64>,
    /// How it ended.
    pub outcome: Outcome,
    /// Status sent to the client.
    pub status: u16,
    /// The state store failed during admission (the request went ahead).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub store_error: Option<String>,
}

impl RequestLog {
    pub(crate) fn new(rid: &str, format: Format, method: &str, path: &str) -> Self {
        Self {
            ts: 0,
            request_id: rid.into(),
            method: cut(method, 16),
            path: cut(path, MAX_LOGGED),
            client_format: format.as_str(),
            key: None,
            model: None,
            stream: false,
            provider: None,
            upstream_model: None,
            fast_path: false,
            attempts: Vec::new(),
            ttfb_ms: None,
            duration_ms: 0.0,
            usage: None,
            cost_usd: None,
            // Until a phase settles it: a request dropped before then was left by its client.
            outcome: Outcome::ClientDisconnected,
            status: 499,
            store_error: None,
        }
    }
}

/// Owns the record and emits it exactly once, on drop.
pub(crate) struct LogGuard<H: HttpClient, C: Clock, L: LogSink, S: StateStore> {
    inner: Arc<Inner<H, C, L, S>>,
    rec: Option<RequestLog>,
    start: Timestamp,
    /// Told whether the upstream served the stream well, when the request is over.
    done: Option<futures_channel::oneshot::Sender<(bool, Option<Usage>)>>,
    /// The attempt in flight (provider, model, start): logged as cancelled if the request is
    /// dropped before it settles.
    pending: Option<(String, String, Timestamp)>,
    /// Counts the request in flight to its target (`least_busy`) until the answer is over.
    busy: Option<crate::balance::BusyGuard>,
    /// The serving target's price: the line's cost comes from it and the final usage.
    price: Option<gw_route::Price>,
}

impl<H: HttpClient, C: Clock, L: LogSink, S: StateStore> LogGuard<H, C, L, S> {
    /// The price of the target serving the answer.
    pub(crate) fn price(&mut self, p: Option<gw_route::Price>) {
        self.price = p;
    }

    /// Keeps `busy` until the request is over (a stream's end, not its first byte).
    pub(crate) fn hold(&mut self, busy: Option<crate::balance::BusyGuard>) {
        self.busy = busy;
    }

    pub(crate) fn new(
        inner: Arc<Inner<H, C, L, S>>,
        mut rec: RequestLog,
        start: Timestamp,
    ) -> Self {
        rec.ts = start.0 / 1000;
        Self {
            inner,
            rec: Some(rec),
            start,
            done: None,
            pending: None,
            busy: None,
            price: None,
        }
    }

    fn with(&mut self, f: impl FnOnce(&mut RequestLog)) {
        if let Some(r) = self.rec.as_mut() {
            f(r);
        }
    }

    pub(crate) fn pending(&mut self, provider: &str, model: &str, started: Timestamp) {
        self.pending = Some((provider.to_owned(), model.to_owned(), started));
    }
    pub(crate) fn settled(&mut self) {
        self.pending = None;
    }
    pub(crate) fn on_done(&mut self, tx: futures_channel::oneshot::Sender<(bool, Option<Usage>)>) {
        self.done = Some(tx);
    }
    pub(crate) fn store_error(&mut self, e: &str) {
        self.with(|r| r.store_error = Some(e.to_owned()));
    }
    pub(crate) fn outcome(&mut self, o: Outcome) {
        self.with(|r| r.outcome = o);
    }
    pub(crate) fn set_status(&mut self, s: u16) {
        self.with(|r| r.status = s);
    }
    /// The proxy key's name, once authenticated.
    pub(crate) fn key(&self) -> Option<&str> {
        self.rec.as_ref().and_then(|r| r.key.as_deref())
    }
    /// The usage reported so far.
    pub(crate) fn usage_so_far(&self) -> Option<Usage> {
        self.rec.as_ref().and_then(|r| r.usage)
    }
    pub(crate) fn key_name(&mut self, n: &str) {
        self.with(|r| r.key = Some(n.into()));
    }
    pub(crate) fn model(&mut self, m: &str, stream: bool) {
        self.with(|r| {
            r.model = Some(cut(m, MAX_LOGGED));
            r.stream = stream;
        });
    }
    pub(crate) fn route(&mut self, provider: &str, model: &str, fast: bool) {
        self.with(|r| {
            r.provider = Some(provider.into());
            r.upstream_model = Some(cut(model, MAX_LOGGED));
            r.fast_path = fast;
        });
    }
    pub(crate) fn attempt(&mut self, a: Attempt) {
        self.with(|r| r.attempts.push(a));
    }
    pub(crate) fn ttfb(&mut self, ms: f64) {
        self.with(|r| r.ttfb_ms = Some(round(ms)));
    }
    pub(crate) fn usage(&mut self, u: Usage) {
        self.with(|r| r.usage = Some(r.usage.unwrap_or_default().merge(u)));
    }
    pub(crate) fn request_id(&self) -> String {
        self.rec
            .as_ref()
            .map(|r| r.request_id.clone())
            .unwrap_or_default()
    }
    pub(crate) fn outcome_is(&self, o: Outcome) -> bool {
        self.rec.as_ref().is_some_and(|r| r.outcome == o)
    }

    /// Moves the record into a new guard (for the stream relay); this one then emits nothing.
    pub(crate) fn take(&mut self) -> Self {
        Self {
            inner: Arc::clone(&self.inner),
            rec: self.rec.take(),
            start: self.start,
            done: self.done.take(),
            pending: self.pending.take(),
            busy: self.busy.take(),
            price: self.price.take(),
        }
    }
}

impl<H: HttpClient, C: Clock, L: LogSink, S: StateStore> Drop for LogGuard<H, C, L, S> {
    fn drop(&mut self) {
        // The upstream did its part unless the stream broke or carried an error. Sent last:
        // the deferred writes wait for it, and then find this answer's spend in the ledger.
        let verdict = self
            .rec
            .as_ref()
            .map(|r| (r.outcome.upstream_served(), r.usage));
        let done = self.done.take();
        if let Some(mut r) = self.rec.take() {
            if let Some((provider, model, started)) = self.pending.take() {
                let waited = self.inner.clock.now().ms_since(started);
                r.attempts.push(Attempt::failed(
                    &provider,
                    &model,
                    None,
                    waited,
                    "cancelled",
                    "the client went away before the upstream answered",
                ));
            }
            r.duration_ms = round(self.inner.clock.now().ms_since(self.start));
            let micros = match (self.price, r.usage) {
                (Some(p), Some(u)) => {
                    let m = p.micros(&u);
                    r.cost_usd = Some(m as f64 / 1e6);
                    m
                }
                _ => 0,
            };
            // Spend is booked for what a provider served (a client's made-up model names that
            // the provider refused never grow the ledger).
            if let (Some(provider), Some(model), true) = (
                &r.provider,
                &r.upstream_model,
                (200..300).contains(&r.status),
            ) {
                let t = gw_state::Tally {
                    requests: 1,
                    tokens: r.usage.map_or(0, |u| u.total()),
                    micros,
                };
                let now_ms = self.inner.clock.now().0 / 1000;
                let key = r.key.as_deref();
                self.inner.ledger.add(now_ms, key, provider, model, t);
            }
            self.inner.metrics.observe(&r);
            // Sized for a typical line, so it is written without regrowing.
            let mut line = Vec::with_capacity(1024);
            if serde_json::to_writer(&mut line, &r).is_ok()
                && let Ok(line) = std::str::from_utf8(&line)
            {
                self.inner.log.emit(&self.inner.scrub.scrub_cow(line));
            }
        }
        if let (Some(tx), Some(v)) = (done, verdict) {
            let _ = tx.send(v);
        }
    }
}
