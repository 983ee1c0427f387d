//! Complete answers: a whole upstream response for the client, and the small endpoints
//! (token counts, the model list, health).

use crate::attempt::Outcome as Attempted;
use crate::authenticate::forced_provider;
use crate::log::{Attempt, LogGuard, Outcome};
use crate::util::{bytes_response, error_response, json_response};
use crate::{Body, Gateway, plan};
use bytes::Bytes;
use gw_model::{ApiError, ChatRequest, ErrorKind, Format, Operation};
use gw_ports::{BodyStream, Clock, HttpClient, LogSink};
use gw_route::Provider;
use gw_state::StateStore;
use gw_translate::wire::{self, UrlCall};
use http::{HeaderMap, HeaderValue, Response, StatusCode};
use serde_json::{Value, json};

impl<H: HttpClient, C: Clock, L: LogSink, S: StateStore> Gateway<H, C, L, S> {
    /// A complete upstream answer for the client; `false` when the upstream's 200 was garbage
    /// (then the client gets a 502 and the breaker a failure, on either path).
    #[expect(
        clippy::too_many_arguments,
        reason = "one call site: the attempt's parts"
    )]
    pub(crate) fn full_response(
        &self,
        client: Format,
        req: &ChatRequest,
        p: &Provider,
        upstream: Format,
        fast: bool,
        body: Bytes,
        ident: &crate::relay::Identity,
        log: &mut LogGuard<H, C, L, S>,
    ) -> (Response<BodyStream>, bool) {
        let bad = |why: String, log: &mut LogGuard<H, C, L, S>| {
            log.outcome(Outcome::Error);
            let e = ApiError::new(
                ErrorKind::Api,
                format!("provider `{}` sent an unreadable answer: {why}", p.id),
            );
            (error_response(client, &self.inner.scrubbed(e)), false)
        };
        let ok = |body: Bytes| bytes_response(StatusCode::OK, "application/json", body);
        if fast {
            // A byte copy, but only of a body that is JSON: an HTML error page or a cut-off
            // body must not reach the client as a 200.
            return match wire::usage_of_body(upstream, &body) {
                Ok(u) => {
                    if let Some(u) = u {
                        log.usage(u);
                    }
                    log.outcome(Outcome::Ok);
                    (ok(body), true)
                }
                Err(why) => bad(why, log),
            };
        }
        match gw_translate::decode_response(upstream, &body) {
            Ok(mut r) => {
                // An answer the upstream did not name (Bedrock) gets the gateway's id and model.
                if r.id.is_empty() {
                    r.id.clone_from(&ident.id);
                }
                if r.model.is_empty() {
                    r.model.clone_from(&ident.model);
                }
                r.created.get_or_insert(ident.created);
                log.usage(r.usage);
                log.outcome(Outcome::Ok);
                let out = gw_translate::encode_response(client, req, &r);
                (ok(Bytes::from(out)), true)
            }
            Err(e) => bad(e.message, log),
        }
    }

    /// An exact count from the first usable target that serves counting in the client's own
    /// format; otherwise an honest estimate, marked as one.
    pub(crate) async fn count_tokens(
        &self,
        format: Format,
        call: &UrlCall,
        headers: &HeaderMap,
        body: Body,
        log: &mut LogGuard<H, C, L, S>,
    ) -> Response<BodyStream> {
        let (body, req) = match self.admit_request(format, call, headers, body, log).await {
            Ok(x) => x,
            Err(r) => return r,
        };
        let cfg = &self.inner.cfg;
        log.model(&req.model, false);
        let targets = match cfg.resolve(&req.model, forced_provider(headers)) {
            Ok(p) => p,
            Err(e) => {
                log.outcome(Outcome::Rejected);
                return error_response(format, &e);
            }
        };
        let counter = targets.iter().find(|t| {
            let p = &cfg.providers[t.provider];
            p.format == format && p.supports(Operation::CountTokens) && p.missing().is_none()
        });
        if let Some(t) = counter {
            let p = &cfg.providers[t.provider];
            if let Some(b) = wire::fast_request(format, &body, &t.model, &ChatRequest::default()) {
                let started = self.inner.clock.now();
                log.pending(&p.id, &t.model, started);
                let up = plan::upstream_request(
                    p,
                    format,
                    headers,
                    Operation::CountTokens,
                    false,
                    &t.model,
                    b,
                );
                let outcome = match up {
                    Ok(up) => {
                        self.attempt(
                            up,
                            &p.signer,
                            p,
                            p.format,
                            false,
                            cfg.timeouts.per_attempt_ms,
                        )
                        .await
                    }
                    Err(e) => Attempted::Failed(e),
                };
                log.settled();
                let latency = self.inner.clock.now().ms_since(started);
                match outcome {
                    Attempted::Full { status, body } => {
                        log.attempt(Attempt::ok(&p.id, &t.model, status.as_u16(), latency));
                        log.route(&p.id, &t.model, true);
                        log.outcome(Outcome::Ok);
                        return bytes_response(StatusCode::OK, "application/json", body);
                    }
                    Attempted::Failed(e) => {
                        let err = self.inner.scrubbed(e.error);
                        let (status, class) = (e.status, e.class);
                        log.attempt(Attempt::failed(
                            &p.id,
                            &t.model,
                            status,
                            latency,
                            class,
                            &err.message,
                        ));
                        if !e.fault.fails_over() {
                            log.outcome(Outcome::Error);
                            return error_response(format, &err);
                        }
                    }
                    Attempted::Stream { .. } => {}
                }
            }
        }
        log.outcome(Outcome::Ok);
        let mut r = json_response(
            StatusCode::OK,
            &wire::count_tokens_body(format, estimate_tokens(&req)),
        );
        r.headers_mut().insert(
            "x-gateway-token-count",
            HeaderValue::from_static("estimate"),
        );
        r
    }

    /// Models of configured providers, and routes that reach one, in the client's shape.
    pub(crate) fn models(
        &self,
        format: Format,
        headers: &HeaderMap,
        one: Option<&str>,
        log: &mut LogGuard<H, C, L, S>,
    ) -> Response<BodyStream> {
        if let Err(e) = self.authenticate(headers, log) {
            return error_response(format, &e);
        }
        log.outcome(Outcome::Ok);
        let cfg = &self.inner.cfg;
        let usable = |i: usize| cfg.providers[i].missing().is_none();
        let mut list: Vec<(String, String)> = Vec::new();
        for p in cfg.providers.iter().filter(|p| p.missing().is_none()) {
            for m in &p.models {
                list.push((m.clone(), p.id.clone()));
            }
        }
        for r in cfg.routes.iter().filter(|r| !r.is_glob) {
            if let Some((i, _)) = r.targets.iter().find(|(i, _)| usable(*i))
                && !list.iter().any(|(m, _)| *m == r.pattern)
            {
                list.push((r.pattern.clone(), cfg.providers[*i].id.clone()));
            }
        }
        match one {
            Some(id) => match list.iter().find(|(m, _)| m == id) {
                Some((m, owner)) => {
                    json_response(StatusCode::OK, &wire::model_entry(format, m, owner))
                }
                None => {
                    log.outcome(Outcome::Error);
                    let shown = crate::log::cut(id, 256);
                    error_response(
                        format,
                        &ApiError::new(
                            ErrorKind::NotFound,
                            format!("model `{shown}` is not available"),
                        )
                        .with_code("model_not_found"),
                    )
                }
            },
            None => {
                let entries: Vec<Value> = list
                    .iter()
                    .map(|(m, owner)| wire::model_entry(format, m, owner))
                    .collect();
                let ids: Vec<&str> = list.iter().map(|(m, _)| m.as_str()).collect();
                json_response(StatusCode::OK, &wire::model_list(format, entries, &ids))
            }
        }
    }

    /// Liveness for anyone; which providers are configured (and which variables are missing)
    /// only for a caller with a proxy key.
    /// `/health`: liveness for anyone; with a proxy key also each provider's configuration, this
    /// instance's last health checks, and each credential's breaker and cooldown as the store
    /// holds them (one read per credential, so only on the detailed view).
    pub(crate) async fn health(&self, headers: &HeaderMap) -> Response<BodyStream> {
        if !self.knows_key(headers) {
            return json_response(StatusCode::OK, &json!({"status": "ok"}));
        }
        let now_ms = self.inner.clock.now().0 / 1000;
        let mut breakers = serde_json::Map::new();
        for (p, var, r) in self.breakers(now_ms).await {
            let state = crate::admin::breaker_state(&r, now_ms);
            let entry = breakers.entry(p).or_insert_with(|| json!({}));
            entry[var] = json!({"breaker": state});
        }
        let mut providers = serde_json::Map::new();
        for p in &self.inner.cfg.providers {
            let mut o = json!({"configured": p.missing().is_none(), "format": p.format.as_str()});
            if let Some(m) = p.missing() {
                o["missing"] = json!(m);
            }
            if let Some(c) = self.inner.checks.of(&p.id) {
                o["checks"] = c;
            }
            if let Some(b) = breakers.remove(&p.id) {
                o["credentials"] = b;
            }
            providers.insert(p.id.clone(), o);
        }
        json_response(
            StatusCode::OK,
            &json!({"status": "ok", "providers": providers}),
        )
    }
}

/// An honest estimate of `req`'s input tokens (see [`ChatRequest::estimate_input_tokens`]).
pub fn estimate_tokens(req: &ChatRequest) -> u64 {
    req.estimate_input_tokens()
}
