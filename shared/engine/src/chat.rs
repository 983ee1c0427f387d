//! A chat request from plan to answer: each target in order (skipping unconfigured ones, open
//! breakers and formats that cannot express the request), one attempt each until one answers
//! or a failure is the client's; then the answer, streamed or whole, or the best error.

use crate::attempt::Outcome as Attempted;
use crate::authenticate::forced_provider;
use crate::limit::{self, Admission};
use crate::log::{Attempt, LogGuard, Outcome};
use crate::record::{self, Deferred, breaker_key};
use crate::unserved::{Unserved, limited_response};
use crate::{Body, Gateway, plan, relay, util::error_response};
use gw_model::{ApiError, ErrorKind, Format};
use gw_ports::{BodyStream, Clock, HttpClient, LogSink, Timestamp};
use gw_route::Strategy;
use gw_state::StateStore;
use gw_translate::wire::UrlCall;
use http::{HeaderMap, Response};
use std::sync::Arc;

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
        let key = match self.key_policy(&req.model, log) {
            Ok(k) => k,
            Err(e) => return error_response(format, &e),
        };
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
        let first = plan.first().map_or("", |t| t.model.as_str());
        let key_held = match self.reserve_key(key_spec, estimate(first), log).await {
            Ok(h) => h,
            Err(f) => return limited_response(format, &f, log),
        };
        let deadline = Timestamp(start.0 + cfg.timeouts.total_ms * 1000);
        let mut un = Unserved::default();
        let mut attempted = false;
        let order = crate::balance::with_credentials(cfg, &self.inner.next_credential, &plan);
        for (target, cred) in order {
            let p = &cfg.providers[target.provider];
            let signer = p.signer_at(cred);
            let pooled = (p.credentials.len() > 1).then(|| p.credentials[cred].var.as_str());
            if let Some(var) = p.missing() {
                log.attempt(
                    Attempt::skipped(&p.id, &target.model, "not_configured")
                        .with_credential(pooled),
                );
                un.missing.push((p.id.clone(), var));
                continue;
            }
            let now = self.inner.clock.now();
            if now >= deadline {
                log.attempt(
                    Attempt::skipped(&p.id, &target.model, "total_timeout").with_credential(pooled),
                );
                un.last = Some(gw_translate::wire::transport_error(
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
                    un.unsupported.get_or_insert(e);
                    continue;
                }
            };
            // Admission: an open breaker or a spent limit skips the target.
            let bkey = breaker_key(p, signer);
            let est = estimate(&target.model);
            let admitted = limit::admit(
                &self.inner,
                p,
                &bkey,
                &target.model,
                est,
                now.0 / 1000,
                |e| {
                    log.store_error(e);
                },
            )
            .await;
            let target_held = match admitted {
                Admission::Go(h) => h,
                Admission::Open(retry_after_ms) => {
                    log.attempt(
                        Attempt::skipped(&p.id, &target.model, "circuit_open")
                            .with_credential(pooled),
                    );
                    un.open(retry_after_ms);
                    continue;
                }
                Admission::Limited(f) => {
                    log.attempt(
                        Attempt::skipped(&p.id, &target.model, "rate_limited")
                            .with_credential(pooled),
                    );
                    un.limited(f);
                    continue;
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
                    if let Err(err) = record::failed(&self.inner, bkey, &e, deferred).await {
                        log.store_error(&err.to_string());
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
                    un.last = Some(e);
                }
            }
        }
        // No answer: the key's reservation is corrected (no tokens; no request either when
        // nothing went upstream).
        let give = attempted.then(limit::Amounts::default);
        deferred
            .settles
            .extend(key_held.into_iter().map(|h| (h, give)));
        un.response(format, &req.model, plan.len(), log)
    }
}
