//! Embeddings, from plan to answer: the chat loop's rules on a simpler call (no streams). Each
//! target in order; unconfigured ones, open breakers, spent limits and providers that cannot
//! embed are skipped; a failure that is the client's ends it. OpenAI to an OpenAI-shaped
//! provider forwards the client's bytes both ways; anything else goes through the canonical
//! request, vectors kept exact and in input order.

use crate::attempt::Outcome as Attempted;
use crate::authenticate::forced_provider;
use crate::limit;
use crate::log::{Attempt, LogGuard, Outcome};
use crate::record::{self, Deferred, breaker_key};
use crate::unserved::{Unserved, limited_response};
use crate::{Body, Gateway, body, util};
use bytes::Bytes;
use gw_model::{ApiError, EmbedRequest, ErrorKind, Format, Operation, Usage};
use gw_ports::{BodyStream, Clock, HttpClient, LogSink};
use gw_state::StateStore;
use gw_translate::embed;
use gw_translate::wire::UrlCall;
use http::{HeaderMap, HeaderValue, Method, Request, Response, StatusCode};

impl<H: HttpClient, C: Clock, L: LogSink, S: StateStore> Gateway<H, C, L, S> {
    pub(crate) async fn embeddings(
        &self,
        format: Format,
        call: &UrlCall,
        headers: &HeaderMap,
        body: Body,
        log: &mut LogGuard<H, C, L, S>,
        deferred: &mut Deferred,
    ) -> Response<BodyStream> {
        let (raw, req) = match self.admit_embed(format, call, headers, body, log).await {
            Ok(x) => x,
            Err(e) => {
                log.outcome(Outcome::Rejected);
                return util::error_response(format, &e);
            }
        };
        let cfg = &self.inner.cfg;
        log.model(&req.model, false);
        let key = match self.key_policy(&req.model, log) {
            Ok(k) => k,
            Err(e) => return util::error_response(format, &e),
        };
        let plan = match cfg.resolve_plan(&req.model, forced_provider(headers)) {
            Ok(p) => self.inner.balancer.order(p, &cfg.prices),
            Err(e) => {
                log.outcome(Outcome::Rejected);
                return util::error_response(format, &e);
            }
        };
        let tokens = req.estimate_tokens();
        let estimate = |model: &str| limit::Amounts {
            tokens,
            micros: cfg
                .prices
                .get(model)
                .map_or(0, |p| (tokens as f64 * p.input).round() as u64),
        };
        let first = plan.first().map_or("", |t| t.model.as_str());
        let key_held = match self.reserve_key(key, estimate(first), log).await {
            Ok(h) => h,
            Err(f) => return limited_response(format, &f, log),
        };
        let mut un = Unserved::default();
        let mut attempted = false;
        let order = crate::balance::with_credentials(cfg, &self.inner.next_credential, &plan);
        for (target, cred) in order {
            let p = &cfg.providers[target.provider];
            if let Some(var) = p.missing() {
                log.attempt(Attempt::skipped(&p.id, &target.model, "not_configured"));
                un.missing.push((p.id.clone(), var));
                continue;
            }
            let (Some(wire), true) = (p.embed_wire, p.supports(Operation::Embeddings)) else {
                log.attempt(Attempt::skipped(&p.id, &target.model, "unsupported"));
                un.unsupported.get_or_insert_with(|| {
                    ApiError::invalid(format!("provider `{}` does not serve embeddings", p.id))
                });
                continue;
            };
            let fast = embed::forwards_bytes(format, wire);
            let bodies = if fast {
                let model = gw_translate::fast::json_string(&target.model);
                match gw_translate::fast::patch_fields(&raw, &[("model", Some(&model))]) {
                    Some(b) => vec![b],
                    None => vec![raw.to_vec()],
                }
            } else {
                match embed::encode_requests(wire, &target.model, &req) {
                    Ok(b) => b,
                    Err(e) => {
                        log.attempt(Attempt::skipped(&p.id, &target.model, "unsupported"));
                        un.unsupported.get_or_insert(e);
                        continue;
                    }
                }
            };
            let signer = p.signer_at(cred);
            let bkey = breaker_key(p, signer);
            let now = self.inner.clock.now();
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
                limit::Admission::Go(h) => h,
                limit::Admission::Open(ms) => {
                    log.attempt(Attempt::skipped(&p.id, &target.model, "circuit_open"));
                    un.open(ms);
                    continue;
                }
                limit::Admission::Limited(f) => {
                    log.attempt(Attempt::skipped(&p.id, &target.model, "rate_limited"));
                    un.limited(f);
                    continue;
                }
            };
            attempted = true;
            log.pending(&p.id, &target.model, now);
            let mut answers: Vec<Bytes> = Vec::with_capacity(bodies.len());
            let mut failed = None;
            for b in bodies {
                let Some(url) = p.url_for(Operation::Embeddings, false, &target.model) else {
                    break;
                };
                let up = upstream(p, url, b);
                match self
                    .attempt(up, signer, p, p.format, false, cfg.timeouts.per_attempt_ms)
                    .await
                {
                    Attempted::Full { body, .. } => answers.push(body),
                    Attempted::Failed(e) => {
                        failed = Some(e);
                        break;
                    }
                    Attempted::Stream { .. } => {}
                }
            }
            log.settled();
            let latency = self.inner.clock.now().ms_since(now);
            if let Some(mut e) = failed {
                e.error = self.inner.scrubbed(e.error);
                log.attempt(Attempt::failed(
                    &p.id,
                    &target.model,
                    e.status,
                    latency,
                    e.class,
                    &e.error.message,
                ));
                if let Err(err) = record::failed(&self.inner, bkey, &e, deferred).await {
                    log.store_error(&err.to_string());
                }
                deferred.settles.extend(
                    target_held
                        .into_iter()
                        .map(|h| (h, Some(Default::default()))),
                );
                if !e.fault.fails_over() {
                    deferred
                        .settles
                        .extend(key_held.into_iter().map(|h| (h, Some(Default::default()))));
                    log.outcome(Outcome::Error);
                    return util::error_response(format, &e.error);
                }
                un.last = Some(e);
                continue;
            }
            let answered = if fast {
                let input = answers
                    .first()
                    .and_then(|b| embed::usage_of_openai_body(b))
                    .unwrap_or(tokens);
                answers
                    .into_iter()
                    .next()
                    .map(|b| (b, input))
                    .ok_or_else(|| ApiError::new(ErrorKind::Api, "no answer"))
            } else {
                let refs: Vec<&[u8]> = answers.iter().map(|b| b.as_ref()).collect();
                embed::decode_responses(wire, &target.model, &refs).map(|resp| {
                    let input = resp.input_tokens.unwrap_or(tokens);
                    let out = embed::encode_response(format, call.batch, &req, &resp);
                    (Bytes::from(out), input)
                })
            };
            log.attempt(Attempt::ok(&p.id, &target.model, 200, latency));
            log.route(&p.id, &target.model, fast);
            return match answered {
                Ok((bytes, input)) => {
                    let usage = Usage {
                        input,
                        ..Default::default()
                    };
                    log.usage(usage);
                    let price = cfg.prices.get(&target.model);
                    log.price(price.copied());
                    let used = limit::Amounts::of(&usage, price);
                    deferred.records.push((bkey, true));
                    deferred.settles.extend(
                        key_held
                            .into_iter()
                            .chain(target_held)
                            .map(|h| (h, Some(used))),
                    );
                    log.outcome(Outcome::Ok);
                    util::bytes_response(StatusCode::OK, "application/json", bytes)
                }
                Err(e) => {
                    // The upstream answered 200 with something that is not embeddings.
                    deferred.records.push((bkey, false));
                    let e = self.inner.scrubbed(e);
                    log.outcome(Outcome::Error);
                    util::error_response(
                        format,
                        &ApiError::new(
                            ErrorKind::Api,
                            format!("provider `{}`: {}", p.id, e.message),
                        ),
                    )
                }
            };
        }
        let give = attempted.then(limit::Amounts::default);
        deferred
            .settles
            .extend(key_held.into_iter().map(|h| (h, give)));
        un.response(format, &req.model, plan.len(), log)
    }

    /// The proxy key, the body within its limits, and the request decoded.
    async fn admit_embed(
        &self,
        format: Format,
        call: &UrlCall,
        headers: &HeaderMap,
        body: Body,
        log: &mut LogGuard<H, C, L, S>,
    ) -> Result<(Bytes, EmbedRequest), ApiError> {
        self.authenticate(headers, log)?;
        let sv = &self.inner.cfg.server;
        let b = body::read(
            body,
            headers,
            sv.max_body_bytes,
            sv.body_read_timeout_ms,
            &self.inner.clock,
        )
        .await?;
        let limits = gw_translate::limits::Limits {
            max_depth: sv.max_json_depth,
            max_model_bytes: sv.max_model_bytes,
            max_messages: sv.max_messages,
        };
        gw_translate::limits::check(&b, &limits)?;
        let req = embed::decode_request(format, call.batch, call.model.as_deref(), &b)?;
        Ok((b, req))
    }
}

/// The upstream request, unsigned.
fn upstream(p: &gw_route::Provider, url: String, body: Vec<u8>) -> Request<Bytes> {
    let mut r = Request::new(Bytes::from(body));
    *r.method_mut() = Method::POST;
    if let Ok(u) = url.parse() {
        *r.uri_mut() = u;
    }
    let h = r.headers_mut();
    h.insert("content-type", HeaderValue::from_static("application/json"));
    h.insert("accept", HeaderValue::from_static("application/json"));
    for (k, v) in &p.headers {
        if let (Ok(k), Ok(v)) = (
            http::HeaderName::from_bytes(k.as_bytes()),
            HeaderValue::from_str(v),
        ) {
            h.insert(k, v);
        }
    }
    r
}
