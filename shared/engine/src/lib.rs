//! The gateway pipeline, written once and run by every runtime:
//! `Gateway::handle_body(http::Request<Body>) -> Handled { response, after }`.
//!
//! The files name the phases: `authenticate` (proxy key, body, limits, decode), `plan` (route
//! and the upstream request), `attempt` (send, wait for the first byte, classify), `chat` (the
//! loop over targets), `respond` (complete answers and the small endpoints), `relay` (streams)
//! and `record` (breaker writes after the response). Generic over the ports, so it runs on
//! tokio, Lambda and Workers alike; it never matches on a wire format (`gw_translate::wire`
//! answers every format question).

mod admin;
mod alert;
mod attempt;
mod authenticate;
mod balance;
mod body;
mod chat;
mod embed;
mod forward;
mod health;
mod ledger;
mod limit;
mod log;
mod metrics;
mod plan;
mod record;
mod relay;
mod respond;
mod spend;
mod unserved;
mod util;

use bytes::Bytes;
use futures_util::future::{Either, select};
use gw_auth::{KeySet, Scrubber};
use gw_model::{ApiError, ErrorKind, Operation};
use gw_ports::{BodyStream, BoxFuture, Clock, HttpClient, LogSink};
use gw_route::Config;
use gw_state::{Command, Reply, StateStore, StoreError};
use gw_translate::wire::{self, Endpoint};
use http::{HeaderValue, Request, Response};
use log::{LogGuard, Outcome};
use std::sync::Arc;

pub use body::Body;
pub use log::{Attempt, RequestLog};
pub use respond::estimate_tokens;
pub use util::error_response;

/// The gateway: configuration plus the ports it runs on.
pub struct Gateway<H, C, L, S> {
    inner: Arc<Inner<H, C, L, S>>,
}

impl<H, C, L, S> Clone for Gateway<H, C, L, S> {
    fn clone(&self) -> Self {
        Self {
            inner: Arc::clone(&self.inner),
        }
    }
}

pub(crate) struct Inner<H, C, L, S> {
    pub(crate) cfg: Config,
    keys: KeySet,
    /// `GATEWAY_ADMIN_KEY`, when set.
    admin: Option<KeySet>,
    pub(crate) scrub: Scrubber,
    http: H,
    pub(crate) clock: C,
    pub(crate) log: L,
    store: S,
    /// This instance's metrics.
    pub(crate) metrics: metrics::Metrics,
    /// The last health check results (this instance's).
    pub(crate) checks: health::Checks,
    /// Target order per route strategy (per instance).
    pub(crate) balancer: balance::Balancer,
    /// Per provider: the next credential of its pool to try first (per instance).
    pub(crate) next_credential: Vec<std::sync::atomic::AtomicUsize>,
    /// Budget alerts this instance knows were fired.
    pub(crate) alerts_fired: alert::Fired,
    /// Spend not yet booked in the store.
    pub(crate) ledger: ledger::Ledger,
}

impl<H, C: Clock, L, S: StateStore> Inner<H, C, L, S> {
    /// One store command, bounded by `timeouts.store_ms`: a slow or unreachable store must not
    /// hold requests up (the caller fails open on the error).
    async fn store_apply(
        &self,
        key: &str,
        cmd: &Command,
        now_ms: u64,
    ) -> Result<Reply, StoreError> {
        let limit = self.cfg.timeouts.store_ms.max(1);
        let call = std::pin::pin!(self.store.apply(key, cmd, now_ms));
        let timer = std::pin::pin!(self.clock.sleep(limit));
        match select(call, timer).await {
            Either::Left((r, _)) => r,
            Either::Right(((), _)) => Err(StoreError(format!(
                "no answer within {limit} ms (timeouts.store_ms)"
            ))),
        }
    }

    fn scrubbed(&self, mut e: ApiError) -> ApiError {
        e.message = self.scrub.scrub(&e.message);
        // Tokens the gateway fetched are secrets too, though no config holds them.
        for t in self
            .cfg
            .providers
            .iter()
            .flat_map(|p| &p.credentials)
            .filter_map(|c| c.signer.token_source()?.current_value())
        {
            if e.message.contains(&t) {
                e.message = e.message.replace(&t, "[REDACTED]");
            }
        }
        e
    }
}

/// A handled request: the response, and work the runtime must drive after it (without delaying
/// it): locally a spawned task, on Workers `ctx.wait_until`, on Lambda after the stream ends.
pub struct Handled {
    /// The response to send.
    pub response: Response<BodyStream>,
    /// Deferred state writes.
    pub after: BoxFuture<'static, ()>,
}

impl<H: HttpClient, C: Clock, L: LogSink, S: StateStore> Gateway<H, C, L, S> {
    /// Builds a gateway from a validated config and its ports.
    pub fn new(cfg: Config, http: H, clock: C, log: L, store: S) -> Self {
        let keys = KeySet::new(cfg.keys.iter().map(|k| (k.name.as_str(), k.key.as_str())));
        let scrub = Scrubber::new(cfg.secrets());
        let admin = cfg
            .admin_key
            .as_deref()
            .map(|k| KeySet::new([("admin", k)]));
        let next_credential = cfg.providers.iter().map(|_| Default::default()).collect();
        let balancer = balance::Balancer::new(cfg.routes.len(), clock.now().0);
        Self {
            inner: Arc::new(Inner {
                admin,
                metrics: metrics::Metrics::default(),
                checks: health::Checks::default(),
                alerts_fired: alert::Fired::default(),
                ledger: ledger::Ledger::default(),
                next_credential,
                balancer,
                cfg,
                keys,
                scrub,
                http,
                clock,
                log,
                store,
            }),
        }
    }

    /// The configuration in use.
    pub fn config(&self) -> &Config {
        &self.inner.cfg
    }

    /// Books spend in the store at most every `ms` instead of after every request. Only for a
    /// runtime that also calls [`Self::flush_ledger`] on a timer and before it exits: what is
    /// pending is lost if the process dies.
    pub fn batch_ledger(&self, ms: u64) {
        self.inner
            .ledger
            .flush_ms
            .store(ms, std::sync::atomic::Ordering::Relaxed);
    }

    /// Books all pending spend in the store now.
    pub async fn flush_ledger(&self) {
        record::flush_ledger(&self.inner, true).await;
    }

    /// Handles one request whose body is complete. See [`Self::handle_body`].
    pub async fn handle(&self, req: Request<Bytes>, fallback_id: String) -> Handled {
        let (parts, body) = req.into_parts();
        self.handle_body(Request::from_parts(parts, Body::Full(body)), fallback_id)
            .await
    }

    /// Handles one request. `fallback_id` is used as the request id when the client sent no
    /// valid `X-Request-ID`. Never fails: every problem becomes a response in the client's format.
    /// The body is read only once the proxy key was accepted from the headers.
    pub async fn handle_body(&self, req: Request<Body>, fallback_id: String) -> Handled {
        let start = self.inner.clock.now();
        let (parts, body) = req.into_parts();
        let rid = parts
            .headers
            .get("x-request-id")
            .and_then(|v| v.to_str().ok())
            .filter(|v| !v.is_empty() && v.len() <= 128 && v.bytes().all(|b| b.is_ascii_graphic()))
            .map_or(fallback_id, str::to_owned);
        let path = parts.uri.path();
        let query = parts.uri.query();
        let endpoint = wire::endpoint(&parts.method, path, query, &parts.headers);
        let client_format = wire::client_format(path, &parts.headers);
        let mut log = LogGuard::new(
            Arc::clone(&self.inner),
            RequestLog::new(&rid, client_format, parts.method.as_str(), path),
            start,
        );
        let mut deferred = record::Deferred::default();
        // Gemini clients may send the key as `?key=`: it counts as an `x-goog-api-key` header.
        let with_query_key = query_key(query)
            .filter(|_| !parts.headers.contains_key("x-goog-api-key"))
            .map(|k| {
                let mut h = parts.headers.clone();
                h.insert("x-goog-api-key", k);
                h
            });
        let headers = with_query_key.as_ref().unwrap_or(&parts.headers);
        let mut resp = match endpoint {
            Endpoint::Health => self.health(headers).await,
            Endpoint::Metrics { format } => self.metrics(format, headers, &mut log).await,
            Endpoint::HealthCheck { format } => {
                self.run_health_check(format, headers, &mut log).await
            }
            Endpoint::Usage { format } => self.usage(format, headers, query, &mut log).await,
            Endpoint::Spend { format } => self.spend(format, headers, query, &mut log).await,
            // A Responses call is a chat that some providers serve natively.
            Endpoint::Api {
                format,
                op: Operation::Chat | Operation::Responses,
                call,
            } => {
                self.chat(format, &call, headers, body, &mut log, start, &mut deferred)
                    .await
            }
            Endpoint::Api {
                format,
                op: Operation::Completions,
                ..
            } => {
                self.completions(format, headers, body, &mut log, &mut deferred)
                    .await
            }
            Endpoint::Passthrough {
                format,
                provider,
                rest,
            } => {
                self.passthrough(
                    format,
                    &provider,
                    &rest,
                    &parts.method,
                    headers,
                    body,
                    &mut log,
                )
                .await
            }
            Endpoint::Api {
                format,
                op: Operation::Embeddings,
                call,
            } => {
                self.embeddings(format, &call, headers, body, &mut log, &mut deferred)
                    .await
            }
            Endpoint::Api {
                format,
                op: Operation::CountTokens,
                call,
            } => {
                self.count_tokens(format, &call, headers, body, &mut log)
                    .await
            }
            Endpoint::Models { format, id } => {
                self.models(format, headers, id.as_deref(), &mut log)
            }
            Endpoint::MethodNotAllowed { format } => error_response(
                format,
                &ApiError::invalid(format!("method {} is not allowed on {path}", parts.method))
                    .with_status(405),
            ),
            Endpoint::NotFound { format } => error_response(
                format,
                &ApiError::new(
                    ErrorKind::NotFound,
                    format!("no route for {} {}", parts.method, log::cut(path, 256)),
                ),
            ),
        };
        if let Ok(v) = HeaderValue::from_str(&rid) {
            resp.headers_mut().insert("x-request-id", v);
        }
        log.set_status(resp.status().as_u16());
        // Still "client_disconnected" only if no phase settled it (a relay took its own record).
        if log.outcome_is(Outcome::ClientDisconnected) {
            log.outcome(if resp.status().is_success() {
                Outcome::Ok
            } else {
                Outcome::Error
            });
        }
        Handled {
            response: resp,
            after: record::after(Arc::clone(&self.inner), deferred),
        }
    }
}

/// The `key` query parameter, as a header value.
fn query_key(query: Option<&str>) -> Option<HeaderValue> {
    let v = query?.split('&').find_map(|kv| kv.strip_prefix("key="))?;
    HeaderValue::from_str(&gw_codec::percent_decode(v)).ok()
}

#[cfg(not(target_arch = "wasm32"))]
#[allow(dead_code)]
fn _handle_is_send<H: HttpClient, C: Clock, L: LogSink, S: StateStore>(
    g: &Gateway<H, C, L, S>,
    r: Request<Bytes>,
) {
    fn send<T: Send>(_: T) {}
    send(g.handle(r, String::new()));
}

#[cfg(test)]
mod tests;
