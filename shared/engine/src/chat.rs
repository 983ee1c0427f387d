//! A chat request from plan to answer: each target in order (skipping unconfigured ones, open
//! breakers and formats that cannot express the request), one attempt each until one answers
//! or a failure is the client's; then the answer, streamed or whole, or the best error.

use crate::attempt::Outcome as Attempted;
use crate::authenticate::forced_provider;
use crate::limit::{self, Held, Refusal};
use crate::log::{self, Attempt, LogGuard, Outcome};
use crate::record::{Deferred, breaker_key};
use crate::{Body, Gateway, plan, relay, util::error_response};
use gw_model::{ApiError, ErrorKind, Format, UpstreamError};
use gw_ports::{BodyStream, Clock, HttpClient, LogSink, Timestamp};
use gw_route::{PoolStrategy, Strategy};
use gw_state::{Command, Reply, StateStore};
use gw_translate::wire::UrlCall;
use http::{HeaderMap, HeaderValue, Response};
use std::sync::Arc;
use std::sync::atomic::Ordering;

impl<H: HttpClient, C: Clock, L: LogSink, S: StateStore> Gateway<H, C, L, S> {
    #[expect(
        clippy::too_many_arguments,
        reason = "the request's parts and the phase state"
    )]
    pub(crate) async fn chat(
        &self,
        format: Format,
        call: &UrlCall,
        headers: &HeaderMap,
        body: Body,
        log: &mut LogGuard<H, C, L, S>,
        start: Timestamp,
        deferred: &mut Deferred,
    ) -> Response<BodyStream> {
        let (body, req) = match self.admit_request(format, call, headers, body, log).await {
            Ok(x) => x,
            Err(r) => return r,
        };
        let cfg = &self.inner.cfg;
        log.model(&req.model, req.stream);
        let key = log
            .key()
            .and_then(|n| cfg.keys.iter().find(|k| k.name == n));
        if let Some(k) = key.filter(|k| !k.allows(&req.model)) {
            log.outcome(Outcome::Rejected);
            let e = ApiError::new(
                ErrorKind::Permission,
                format!(
                    "proxy key `{}` may not use model `{}`; it may use: {}",
                    k.name,
                    log::cut(&req.model, 256),
                    k.models.join(", ")
                ),
            )
            .with_code("model_not_allowed");
            return error_response(format, &e);
        }
        let plan = match cfg.resolve_plan(&req.model, forced_provider(headers)) {
            Ok(p) => p,
            Err(e) => {
                log.outcome(Outcome::Rejected);
                return error_response(format, &e);
            }
        };
        let strategy = plan.strategy;
        let plan = self.inner.balancer.order(plan, &cfg.prices);
        // Limits and budgets: the key's first (they refuse the whole request), then each
        // target's with its breaker. The estimate is made only when something needs it.
        let key_spec = key.filter(|k| k.limits.is_set() || k.budget.is_set());
        let counted_targets = plan.iter().any(|t| {
            let p = &cfg.providers[t.provider];
            p.limits.is_set() || p.budget.is_set() || p.model_limits.contains_key(&t.model)
        });
        let tokens = if key_spec.is_some() || counted_targets {
            req.estimate_input_tokens()
        } else {
            0
        };
        // The input's cost at a target's price (the key's: at the first target's).
        let estimate = |model: &str| limit::Amounts {
            tokens,
            micros: cfg
                .prices
                .get(model)
                .map_or(0, |p| (tokens as f64 * p.input).round() as u64),
        };
        let mut key_held: Vec<Held> = Vec::new();
        if let Some(k) = key_spec {
            let scopes = limit::key_scopes(k);
            let now_ms = self.inner.clock.now().0 / 1000;
            let first = plan.first().map_or("", |t| t.model.as_str());
            let (got, store_error) =
                limit::reserve(&self.inner, &scopes, estimate(first), now_ms).await;
            if let Some(e) = store_error {
                log.store_error(&e);
            }
            match got {
                Ok(h) => key_held = h,
                Err(f) => return limited_response(format, &f, log),
            }
        }
        let deadline = Timestamp(start.0 + cfg.timeouts.total_ms * 1000);
        let mut last: Option<UpstreamError> = None;
        let mut limited: Option<Refusal> = None;
        let mut attempted = false;
        let mut missing: Vec<(String, String)> = Vec::new();
        let mut unsupported: Option<ApiError> = None;
        let mut open_for: Option<u64> = None;
        // Each target once per credential of its provider's pool, the pool's strategy first.
        let order: Vec<(&gw_route::Target, usize)> = plan
            .iter()
            .flat_map(|t| {
                let p = &cfg.providers[t.provider];
                let n = p.credentials.len().max(1);
                let first = match p.pool_strategy {
                    PoolStrategy::RoundRobin if n > 1 => {
                        self.inner.next_credential[t.provider].fetch_add(1, Ordering::Relaxed) % n
                    }
                    _ => 0,
                };
                (0..n).map(move |i| (t, (first + i) % n))
            })
            .collect();
        for (target, cred) in order {
            let p = &cfg.providers[target.provider];
            let signer = p.signer_at(cred);
            let pooled = (p.credentials.len() > 1).then(|| p.credentials[cred].var.as_str());
            if let Some(var) = p.missing() {
                log.attempt(
                    Attempt::skipped(&p.id, &target.model, "not_configured")
                        .with_credential(pooled),
                );
                missing.push((p.id.clone(), var));
                continue;
            }
            let now = self.inner.clock.now();
            if now >= deadline {
                log.attempt(
                    Attempt::skipped(&p.id, &target.model, "total_timeout").with_credential(pooled),
                );
                last = Some(gw_translate::wire::transport_error(
                    "total_timeout",
                    ApiError::new(
                        ErrorKind::Timeout,
                        format!(
                            "gave up after {} ms (timeouts.total_ms)",
                            cfg.timeouts.total_ms
                        ),
                    ),
                    None,
                ));
                break;
            }
            let (upstream_body, fast) = match plan::upstream_body(format, &body, &req, p, target) {
                Ok(b) => b,
                Err(e) => {
                    log.attempt(
                        Attempt::skipped(&p.id, &target.model, "unsupported")
                            .with_credential(pooled),
                    );
                    unsupported.get_or_insert(e);
                    continue;
                }
            };
            // Admission: one store round trip (the breaker and the target's limits in
            // parallel); an open breaker or a spent limit skips the target. A store that fails
            // is logged and ignored: state trouble must never stop traffic.
            let bkey = breaker_key(p, signer);
            let scopes = limit::target_scopes(p, signer, &target.model);
            let (admit, (reserved, store_error)) = futures_util::future::join(
                self.inner
                    .store_apply(&bkey, &Command::Admit(cfg.breaker.clone()), now.0 / 1000),
                async {
                    if scopes.is_empty() {
                        (Ok(Vec::new()), None)
                    } else {
                        limit::reserve(&self.inner, &scopes, estimate(&target.model), now.0 / 1000)
                            .await
                    }
                },
            )
            .await;
            if let Some(e) = store_error {
                log.store_error(&e);
            }
            let target_held = match (admit, reserved) {
                (Ok(Reply::Reject { retry_after_ms }), reserved) => {
                    if let Ok(h) = reserved {
                        limit::give_back(&self.inner, &h, now.0 / 1000).await;
                    }
                    log.attempt(
                        Attempt::skipped(&p.id, &target.model, "circuit_open")
                            .with_credential(pooled),
                    );
                    open_for = Some(open_for.map_or(retry_after_ms, |o| o.min(retry_after_ms)));
                    continue;
                }
                (_, Err(f)) => {
                    log.attempt(
                        Attempt::skipped(&p.id, &target.model, "rate_limited")
                            .with_credential(pooled),
                    );
                    // The soonest any target has room again.
                    if limited
                        .as_ref()
                        .is_none_or(|l| f.retry_after_ms < l.retry_after_ms)
                    {
                        limited = Some(f);
                    }
                    continue;
                }
                (Ok(_), Ok(h)) => h,
                (Err(e), Ok(h)) => {
                    log.store_error(&e.to_string());
                    h
                }
            };
            attempted = true;
            let budget_ms = cfg
                .timeouts
                .per_attempt_ms
                .min((deadline.0 - now.0) / 1000)
                .max(1);
            // Logged as cancelled if the client leaves while the attempt is in flight.
            log.pending(&p.id, &target.model, now);
            let busy = (strategy == Strategy::LeastBusy).then(|| self.inner.balancer.busy(target));
            let (wire_format, op) = plan::wire_for(format, p);
            let outcome = match plan::upstream_request(
                p,
                format,
                headers,
                op,
                req.stream,
                &target.model,
                upstream_body,
            ) {
                Ok(up) => {
                    self.attempt(up, signer, p, wire_format, req.stream, budget_ms)
                        .await
                }
                Err(e) => Attempted::Failed(e),
            };
            log.settled();
            let latency = self.inner.clock.now().ms_since(now);
            let ident = relay::Identity {
                id: format!("gw-{}", log.request_id()),
                model: target.model.clone(),
                created: i64::try_from(now.0 / 1_000_000).unwrap_or(0),
            };
            match outcome {
                Attempted::Stream {
                    status,
                    first,
                    rest,
                } => {
                    log.attempt(
                        Attempt::ok(&p.id, &target.model, status.as_u16(), latency)
                            .with_credential(pooled),
                    );
                    log.route(&p.id, &target.model, fast);
                    log.ttfb(self.inner.clock.now().ms_since(start));
                    let (tx, rx) = futures_channel::oneshot::channel();
                    if strategy == Strategy::LeastLatency {
                        self.inner.balancer.answered(target, latency);
                    }
                    log.hold(busy);
                    log.on_done(tx);
                    deferred.stream = Some((bkey, rx));
                    deferred.streamed.extend(key_held);
                    deferred.streamed.extend(target_held);
                    deferred.price = cfg.prices.get(&target.model).copied();
                    log.price(deferred.price);
                    return relay::stream_response(
                        Arc::clone(&self.inner),
                        format,
                        wire_format,
                        fast,
                        &req,
                        ident,
                        first,
                        rest,
                        log.take(),
                    );
                }
                Attempted::Full { status, body: ub } => {
                    log.attempt(
                        Attempt::ok(&p.id, &target.model, status.as_u16(), latency)
                            .with_credential(pooled),
                    );
                    log.route(&p.id, &target.model, fast);
                    log.ttfb(self.inner.clock.now().ms_since(start));
                    if strategy == Strategy::LeastLatency {
                        self.inner.balancer.answered(target, latency);
                    }
                    let (resp, served) =
                        self.full_response(format, &req, p, wire_format, fast, ub, &ident, log);
                    deferred.records.push((bkey, served));
                    let used = limit::Amounts::of(
                        &log.usage_so_far().unwrap_or_default(),
                        cfg.prices.get(&target.model),
                    );
                    log.price(cfg.prices.get(&target.model).copied());
                    deferred.settles.extend(
                        key_held
                            .into_iter()
                            .chain(target_held)
                            .map(|h| (h, Some(used))),
                    );
                    return resp;
                }
                Attempted::Failed(mut e) => {
                    e.error = self.inner.scrubbed(e.error);
                    log.attempt(
                        Attempt::failed(
                            &p.id,
                            &target.model,
                            e.status,
                            latency,
                            e.class,
                            &e.error.message,
                        )
                        .with_credential(pooled),
                    );
                    if e.fault.counts_against_target() {
                        match (e.status, e.retry_after_secs) {
                            // The upstream said when to come back: this credential cools down
                            // for exactly that long (at most a day), on every instance. Written
                            // now, not after the answer: the next request must already see it.
                            (Some(429 | 529), Some(secs)) => {
                                let cmd = Command::Cooldown {
                                    config: cfg.breaker.clone(),
                                    until_ms: now.0 / 1000 + secs.min(86_400) * 1000,
                                };
                                let at = self.inner.clock.now().0 / 1000;
                                if let Err(err) = self.inner.store_apply(&bkey, &cmd, at).await {
                                    log.store_error(&err.to_string());
                                }
                            }
                            _ => deferred.records.push((bkey, false)),
                        }
                    }
                    // The request went out (it counts); it used no tokens.
                    deferred.settles.extend(
                        target_held
                            .into_iter()
                            .map(|h| (h, Some(limit::Amounts::default()))),
                    );
                    if !e.fault.fails_over() {
                        deferred.settles.extend(
                            key_held
                                .into_iter()
                                .map(|h| (h, Some(limit::Amounts::default()))),
                        );
                        log.route(&p.id, &target.model, fast);
                        log.outcome(Outcome::Error);
                        return error_response(format, &e.error);
                    }
                    last = Some(e);
                }
            }
        }
        // No answer: the key's reservation is corrected (no tokens; no request either when
        // nothing went upstream).
        let give = attempted.then(limit::Amounts::default);
        deferred
            .settles
            .extend(key_held.into_iter().map(|h| (h, give)));
        if last.is_none()
            && let Some(f) = limited
        {
            return limited_response(format, &f, log);
        }
        log.outcome(Outcome::Error);
        if let Some(e) = last {
            let mut err = e.error;
            if plan.len() > 1 {
                err.message = format!("all {} targets failed; last: {}", plan.len(), err.message);
            }
            let mut r = error_response(format, &err);
            if let Some(secs) = e.retry_after_secs {
                r.headers_mut()
                    .insert("retry-after", HeaderValue::from(secs));
            }
            return r;
        }
        if let Some(ms) = open_for {
            let secs = ms.div_ceil(1000).max(1);
            let e = ApiError::new(
                ErrorKind::Overloaded,
                format!("every target for model `{}` is cooling down after repeated failures (circuit open); retry in {secs} s", req.model),
            )
            .with_code("circuit_open");
            let mut r = error_response(format, &e);
            r.headers_mut()
                .insert("retry-after", HeaderValue::from(secs));
            return r;
        }
        if let Some(e) = unsupported {
            return error_response(format, &e);
        }
        let what: Vec<String> = missing
            .iter()
            .map(|(p, v)| format!("provider `{p}` is not configured: set {v}"))
            .collect();
        error_response(
            format,
            &ApiError::new(
                ErrorKind::Api,
                format!(
                    "model `{}` cannot be served: {}",
                    req.model,
                    what.join("; ")
                ),
            )
            .with_status(503)
            .with_code("provider_not_configured"),
        )
    }
}

/// The gateway's own 429 for a spent limit, in the client's format, with `Retry-After`.
fn limited_response<H: HttpClient, C: Clock, L: LogSink, S: StateStore>(
    format: Format,
    f: &Refusal,
    log: &mut LogGuard<H, C, L, S>,
) -> Response<BodyStream> {
    log.outcome(Outcome::Limited);
    let mut r = error_response(format, &f.error());
    r.headers_mut()
        .insert("retry-after", HeaderValue::from(f.retry_after_secs()));
    r
}
