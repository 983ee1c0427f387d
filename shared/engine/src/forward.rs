//! Calls the gateway forwards rather than translates: a provider's native API through
//! `/providers/{id}/{path}` (when its config says `passthrough: true`), and OpenAI's legacy
//! `/v1/completions` to providers that declare it. The gateway's credential is attached (signed
//! or fetched as the provider needs), the proxy key and hop-by-hop headers are never passed on,
//! and the answer streams back as the provider sent it.

use crate::attempt::{Outcome as Attempted, copy};
use crate::authenticate::forced_provider;
use crate::log::{Attempt, LogGuard, Outcome};
use crate::record::{self, Deferred, breaker_key};
use crate::{Body, Gateway, body, util};
use bytes::Bytes;
use futures_util::StreamExt;
use futures_util::future::{Either, select};
use gw_auth::Signer;
use gw_model::{ApiError, ErrorKind, Format, Operation, UpstreamError};
use gw_ports::{BodyStream, ByteStream, Clock, HttpClient, LogSink};
use gw_route::Provider;
use gw_state::{Command, Reply, StateStore};
use http::{HeaderMap, HeaderName, HeaderValue, Method, Request, Response, StatusCode};

/// Never passed on in either direction: hop-by-hop headers (RFC 9110 7.6.1) and what the HTTP
/// layer sets itself.
const HOP_BY_HOP: [&str; 10] = [
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "host",
    "content-length",
];

/// Credentials a client may send: the proxy key in any of its forms, never forwarded.
const CLIENT_CREDENTIALS: [&str; 5] = [
    "authorization",
    "x-api-key",
    "x-goog-api-key",
    "x-proxy-key",
    "api-key",
];

impl<H: HttpClient, C: Clock, L: LogSink, S: StateStore> Gateway<H, C, L, S> {
    /// `/providers/{id}/{rest}`: the provider's own API, any method.
    #[expect(
        clippy::too_many_arguments,
        reason = "the request's parts and the phase state"
    )]
    pub(crate) async fn passthrough(
        &self,
        format: Format,
        id: &str,
        rest: &str,
        method: &Method,
        headers: &HeaderMap,
        body: Body,
        log: &mut LogGuard<H, C, L, S>,
    ) -> Response<BodyStream> {
        let refuse = |log: &mut LogGuard<H, C, L, S>, e: ApiError| {
            log.outcome(Outcome::Rejected);
            util::error_response(format, &e)
        };
        if let Err(e) = self.authenticate(headers, log) {
            return refuse(log, e);
        }
        let cfg = &self.inner.cfg;
        let Some(p) = cfg.provider_index(id).map(|i| &cfg.providers[i]) else {
            return refuse(
                log,
                ApiError::new(ErrorKind::NotFound, format!("no provider `{id}`")),
            );
        };
        if !p.passthrough {
            return refuse(
                log,
                ApiError::new(
                    ErrorKind::Permission,
                    format!(
                        "pass-through is off for provider `{id}` (its config can set `passthrough: true`)"
                    ),
                ),
            );
        }
        if let Some(var) = p.missing() {
            return refuse(
                log,
                ApiError::new(
                    ErrorKind::Api,
                    format!("provider `{id}` is not configured: set {var}"),
                )
                .with_status(503)
                .with_code("provider_not_configured"),
            );
        }
        let sv = &cfg.server;
        // A body still arriving streams straight on when the credential is a plain header or
        // query key; SigV4 signs the payload's hash and a token may need the body again after a
        // 401, so those read it whole first.
        let static_key = matches!(
            p.signer,
            Signer::None | Signer::Bearer(_) | Signer::Header { .. } | Signer::Query { .. }
        );
        let (b, streamed) = match body {
            Body::Stream(s) if static_key => {
                if let Some(n) = declared_length(headers).filter(|n| *n > sv.max_body_bytes as u64)
                {
                    return refuse(
                        log,
                        body::too_large(
                            usize::try_from(n).unwrap_or(usize::MAX),
                            sv.max_body_bytes,
                        ),
                    );
                }
                (Bytes::new(), Some(limited(s, sv.max_body_bytes)))
            }
            other => match body::read(
                other,
                headers,
                sv.max_body_bytes,
                sv.body_read_timeout_ms,
                &self.inner.clock,
            )
            .await
            {
                Ok(b) => (b, None),
                Err(e) => return refuse(log, e),
            },
        };
        log.model(rest, false);
        let url = format!("{}/{}", p.base_url, without_key_param(rest));
        let mut req = Request::new(b);
        *req.method_mut() = method.clone();
        match url.parse() {
            Ok(u) => *req.uri_mut() = u,
            Err(_) => {
                return refuse(
                    log,
                    ApiError::invalid(format!(
                        "`{}` is not a valid path",
                        crate::log::cut(rest, 200)
                    )),
                );
            }
        }
        let h = req.headers_mut();
        for (k, v) in headers {
            let n = k.as_str();
            if !HOP_BY_HOP.contains(&n) && !CLIENT_CREDENTIALS.contains(&n) {
                h.append(k.clone(), v.clone());
            }
        }
        // The provider's own headers (anthropic-version, Copilot's editor headers) unless the
        // client set them.
        for (k, v) in &p.headers {
            if let (Ok(k), Ok(v)) = (
                HeaderName::from_bytes(k.as_bytes()),
                HeaderValue::from_str(v),
            ) && !h.contains_key(&k)
            {
                h.insert(k, v);
            }
        }
        if streamed.is_some()
            && let Some(n) = headers.get(http::header::CONTENT_LENGTH)
        {
            // The length is the client's own: the bytes go on unchanged.
            req.headers_mut()
                .insert(http::header::CONTENT_LENGTH, n.clone());
        }
        let started = self.inner.clock.now();
        log.pending(&p.id, rest, started);
        let sent = match streamed {
            Some(s) => self.send_streamed(req, s, p).await,
            None => self.send_signed(req, &p.signer, p).await,
        };
        log.settled();
        let latency = self.inner.clock.now().ms_since(started);
        match sent {
            Ok(resp) => {
                let status = resp.status();
                log.attempt(Attempt::ok(&p.id, "", status.as_u16(), latency));
                log.route(&p.id, "", true);
                log.outcome(if status.is_success() {
                    Outcome::Ok
                } else {
                    Outcome::Error
                });
                relay_as_is(resp)
            }
            Err(e) => {
                let e = self.inner.scrubbed(e);
                log.attempt(Attempt::failed(
                    &p.id,
                    "",
                    None,
                    latency,
                    "transport",
                    &e.message,
                ));
                log.outcome(Outcome::Error);
                util::error_response(format, &e)
            }
        }
    }

    /// OpenAI's legacy `/v1/completions`: routed like chat, forwarded to the first target whose
    /// provider declares `paths.completions`, streamed or not, as the provider answers.
    pub(crate) async fn completions(
        &self,
        format: Format,
        headers: &HeaderMap,
        body: Body,
        log: &mut LogGuard<H, C, L, S>,
        deferred: &mut Deferred,
    ) -> Response<BodyStream> {
        let refuse = |log: &mut LogGuard<H, C, L, S>, e: ApiError| {
            log.outcome(Outcome::Rejected);
            util::error_response(format, &e)
        };
        if let Err(e) = self.authenticate(headers, log) {
            return refuse(log, e);
        }
        let cfg = &self.inner.cfg;
        let sv = &cfg.server;
        let raw = match body::read(
            body,
            headers,
            sv.max_body_bytes,
            sv.body_read_timeout_ms,
            &self.inner.clock,
        )
        .await
        {
            Ok(b) => b,
            Err(e) => return refuse(log, e),
        };
        #[derive(serde::Deserialize)]
        struct Head {
            model: Option<String>,
            #[serde(default)]
            stream: bool,
        }
        let head: Head = match serde_json::from_slice(&raw) {
            Ok(h) => h,
            Err(e) => {
                return refuse(
                    log,
                    ApiError::invalid(format!("request body is not valid JSON: {e}")),
                );
            }
        };
        let Some(model) = head.model.filter(|m| !m.is_empty()) else {
            return refuse(
                log,
                ApiError::invalid("`model` is required").with_param("model"),
            );
        };
        log.model(&model, head.stream);
        let key = log
            .key()
            .and_then(|n| cfg.keys.iter().find(|k| k.name == n));
        if let Some(k) = key.filter(|k| !k.allows(&model)) {
            return refuse(
                log,
                ApiError::new(
                    ErrorKind::Permission,
                    format!("proxy key `{}` may not use model `{model}`", k.name),
                )
                .with_code("model_not_allowed"),
            );
        }
        let plan = match cfg.resolve_plan(&model, forced_provider(headers)) {
            Ok(p) => self.inner.balancer.order(p, &cfg.prices),
            Err(e) => return refuse(log, e),
        };
        let mut last: Option<UpstreamError> = None;
        for target in &plan {
            let p = &cfg.providers[target.provider];
            if p.missing().is_some() || !p.supports(Operation::Completions) {
                log.attempt(Attempt::skipped(&p.id, &target.model, "unsupported"));
                continue;
            }
            let Some(url) = p.url_for(Operation::Completions, head.stream, &target.model) else {
                continue;
            };
            let m = gw_translate::fast::json_string(&target.model);
            let Some(b) = gw_translate::fast::patch_fields(&raw, &[("model", Some(&m))]) else {
                return refuse(log, ApiError::invalid("request body must be a JSON object"));
            };
            let bkey = breaker_key(p, &p.signer);
            let now = self.inner.clock.now();
            let admit = self
                .inner
                .store_apply(&bkey, &Command::Admit(cfg.breaker.clone()), now.0 / 1000)
                .await;
            if let Ok(Reply::Reject { .. }) = admit {
                log.attempt(Attempt::skipped(&p.id, &target.model, "circuit_open"));
                continue;
            }
            let mut req = Request::new(Bytes::from(b));
            *req.method_mut() = Method::POST;
            if let Ok(u) = url.parse() {
                *req.uri_mut() = u;
            }
            let h = req.headers_mut();
            h.insert("content-type", HeaderValue::from_static("application/json"));
            for (k, v) in &p.headers {
                if let (Ok(k), Ok(v)) = (
                    HeaderName::from_bytes(k.as_bytes()),
                    HeaderValue::from_str(v),
                ) {
                    h.insert(k, v);
                }
            }
            log.pending(&p.id, &target.model, now);
            let outcome = self
                .attempt(
                    req,
                    &p.signer,
                    p,
                    p.format,
                    head.stream,
                    cfg.timeouts.per_attempt_ms,
                )
                .await;
            log.settled();
            let latency = self.inner.clock.now().ms_since(now);
            match outcome {
                Attempted::Full { status, body } => {
                    log.attempt(Attempt::ok(&p.id, &target.model, status.as_u16(), latency));
                    log.route(&p.id, &target.model, true);
                    log.outcome(Outcome::Ok);
                    deferred.records.push((bkey, true));
                    return util::bytes_response(status, "application/json", body);
                }
                Attempted::Stream {
                    status,
                    first,
                    rest,
                } => {
                    log.attempt(Attempt::ok(&p.id, &target.model, status.as_u16(), latency));
                    log.route(&p.id, &target.model, true);
                    log.outcome(Outcome::Ok);
                    deferred.records.push((bkey, true));
                    let body: BodyStream = Box::pin(
                        futures_util::stream::once(async move { first }).chain(ok_chunks(rest)),
                    );
                    let mut r = Response::new(body);
                    *r.status_mut() = status;
                    r.headers_mut().insert(
                        "content-type",
                        HeaderValue::from_static("text/event-stream; charset=utf-8"),
                    );
                    return r;
                }
                Attempted::Failed(mut e) => {
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
                    if !e.fault.fails_over() {
                        log.outcome(Outcome::Error);
                        return util::error_response(format, &e.error);
                    }
                    last = Some(e);
                }
            }
        }
        log.outcome(Outcome::Error);
        let e = match last {
            Some(e) => e.error,
            None => ApiError::invalid(format!(
                "model `{model}` has no provider that serves the legacy completions API (`paths.completions`); use /v1/chat/completions"
            ))
            .with_code("completions_unsupported"),
        };
        util::error_response(format, &e)
    }

    /// Signs and sends, waiting at most `timeouts.per_attempt_ms` for the response head; a token
    /// refused with 401 is renewed and the request sent once more.
    async fn send_signed(
        &self,
        req: Request<Bytes>,
        signer: &Signer,
        p: &Provider,
    ) -> Result<Response<ByteStream>, ApiError> {
        let budget = self.inner.cfg.timeouts.per_attempt_ms;
        let work = async {
            let again = signer.token_source().map(|_| copy(&req));
            let (resp, token) = self.sign_and_send(req, signer, p).await?;
            match (again, token) {
                (Some(again), Some(token)) if resp.status() == StatusCode::UNAUTHORIZED => {
                    if let Some(src) = signer.token_source() {
                        src.invalidate(&token);
                    }
                    Ok(self.sign_and_send(again, signer, p).await?.0)
                }
                _ => Ok(resp),
            }
        };
        let timer = self.inner.clock.sleep(budget);
        match select(Box::pin(work), Box::pin(timer)).await {
            Either::Left((r, _)) => r,
            Either::Right(_) => Err(ApiError::new(
                ErrorKind::Timeout,
                format!("provider `{}` did not answer within {budget} ms", p.id),
            )),
        }
    }

    /// Signs (a static key) and sends with the body streaming on, waiting at most
    /// `timeouts.per_attempt_ms` for the response head.
    async fn send_streamed(
        &self,
        mut req: Request<Bytes>,
        body: ByteStream,
        p: &Provider,
    ) -> Result<Response<ByteStream>, ApiError> {
        let now = self.inner.clock.now().0 / 1_000_000;
        p.signer
            .sign(&mut req, now, &self.inner.http)
            .await
            .map_err(|e| ApiError::new(ErrorKind::Api, format!("provider `{}`: {e}", p.id)))?;
        let (parts, _) = req.into_parts();
        let send = self
            .inner
            .http
            .send_streaming(Request::from_parts(parts, body));
        let budget = self.inner.cfg.timeouts.per_attempt_ms;
        let timer = self.inner.clock.sleep(budget);
        match select(Box::pin(send), Box::pin(timer)).await {
            Either::Left((r, _)) => r.map_err(|e| {
                ApiError::new(
                    ErrorKind::Api,
                    format!("provider `{}` unreachable: {}", p.id, e.message),
                )
            }),
            Either::Right(_) => Err(ApiError::new(
                ErrorKind::Timeout,
                format!("provider `{}` did not answer within {budget} ms", p.id),
            )),
        }
    }

    async fn sign_and_send(
        &self,
        mut req: Request<Bytes>,
        signer: &Signer,
        p: &Provider,
    ) -> Result<(Response<ByteStream>, Option<String>), ApiError> {
        let now = self.inner.clock.now().0 / 1_000_000;
        signer
            .sign(&mut req, now, &self.inner.http)
            .await
            .map_err(|e| {
                ApiError::new(
                    ErrorKind::Api,
                    format!(
                        "provider `{}`: cannot sign the request ({e}); check {}",
                        p.id,
                        p.auth.vars()
                    ),
                )
            })?;
        let token = signer.token_source().and_then(|_| {
            let v = req.headers().get("authorization")?.to_str().ok()?;
            Some(v.strip_prefix("Bearer ")?.to_owned())
        });
        let resp = self.inner.http.send(req).await.map_err(|e| {
            ApiError::new(
                ErrorKind::Api,
                format!("provider `{}` unreachable: {}", p.id, e.message),
            )
        })?;
        Ok((resp, token))
    }
}

/// The provider's answer as it came: status, end-to-end headers, body streamed.
fn relay_as_is(resp: Response<ByteStream>) -> Response<BodyStream> {
    let (parts, body) = resp.into_parts();
    let mut r = Response::new(ok_chunks(body));
    *r.status_mut() = parts.status;
    for (k, v) in &parts.headers {
        if !HOP_BY_HOP.contains(&k.as_str()) {
            r.headers_mut().append(k.clone(), v.clone());
        }
    }
    r
}

/// The chunks until the first transport error (the stream then just ends: the client sees a
/// cut-short body, as it would from the provider itself).
fn ok_chunks(s: ByteStream) -> BodyStream {
    Box::pin(
        s.take_while(|c| std::future::ready(c.is_ok()))
            .filter_map(|c| std::future::ready(c.ok())),
    )
}

fn declared_length(h: &HeaderMap) -> Option<u64> {
    h.get(http::header::CONTENT_LENGTH)?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()
}

/// The stream, ended with an error once it passes `limit` bytes (the upstream then sees a
/// broken upload, never more than the gateway allows).
fn limited(s: ByteStream, limit: usize) -> ByteStream {
    let mut seen = 0usize;
    Box::pin(s.map(move |c| {
        let c = c?;
        seen += c.len();
        if seen > limit {
            return Err(gw_ports::TransportError::new(
                gw_ports::TransportErrorKind::Body,
                format!("the request body passed server.max_body_bytes ({limit})"),
            ));
        }
        Ok(c)
    }))
}

/// `rest` without a `key=` query parameter (Gemini clients may send the proxy key there).
fn without_key_param(rest: &str) -> String {
    let Some((path, query)) = rest.split_once('?') else {
        return rest.to_owned();
    };
    let kept: Vec<&str> = query
        .split('&')
        .filter(|kv| !kv.starts_with("key=") && *kv != "key")
        .collect();
    if kept.is_empty() {
        path.to_owned()
    } else {
        format!("{path}?{}", kept.join("&"))
    }
}

#[cfg(test)]
mod tests {
    use super::without_key_param;

    #[test]
    fn the_proxy_key_query_parameter_is_dropped() {
        assert_eq!(
            without_key_param("v1/models?key=k&alt=sse"),
            "v1/models?alt=sse"
        );
        assert_eq!(without_key_param("v1/models?key=k"), "v1/models");
        assert_eq!(
            without_key_param("v1/models?monkey=1"),
            "v1/models?monkey=1"
        );
        assert_eq!(without_key_param("v1/x"), "v1/x");
    }
}
