//! The gateway pipeline, written once and run by every runtime:
//! `Gateway::handle(http::Request<Bytes>) -> http::Response<BodyStream>`.
//!
//! Phases: authenticate, decode (client format -> canonical), resolve the route, try each target
//! in order (encode, sign, send, wait for the first byte), then relay the answer back in the
//! client's format. Generic over the ports, so it runs on tokio, Lambda and Workers alike.

mod body;
mod log;
mod relay;
mod util;

pub use body::Body;
use bytes::Bytes;
use futures_util::StreamExt;
use futures_util::future::{Either, select};
use gw_auth::{KeySet, Scrubber};
use gw_model::{ApiError, ErrorKind, Format, Part};
use gw_ports::{
    BodyStream, BoxFuture, ByteStream, Clock, HttpClient, LogSink, Timestamp, TransportErrorKind,
};
use gw_route::{AuthSpec, Config, Provider, Target};
use gw_state::{Command, Reply, StateStore, StoreError};
use gw_translate::EncodeOpts;
use http::{HeaderMap, HeaderValue, Method, Request, Response, StatusCode};
use log::LogGuard;
pub use log::{Attempt, RequestLog};
use serde_json::{Value, json};
use std::sync::Arc;
use util::{error_response, json_response};

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
    pub(crate) scrub: Scrubber,
    http: H,
    pub(crate) clock: C,
    pub(crate) log: L,
    store: S,
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
}

/// Store writes that wait until the response is on its way (breaker outcomes).
#[derive(Default)]
struct Deferred {
    /// (breaker key, success) for attempts already decided.
    records: Vec<(String, bool)>,
    /// The streamed attempt: its outcome arrives when the stream ends.
    stream: Option<(String, futures_channel::oneshot::Receiver<bool>)>,
}

/// A handled request: the response, and work the runtime must drive after it (without delaying
/// it): locally a spawned task, on Workers `ctx.wait_until`, on Lambda after the stream ends.
pub struct Handled {
    /// The response to send.
    pub response: Response<BodyStream>,
    /// Deferred state writes.
    pub after: BoxFuture<'static, ()>,
}

/// How an upstream attempt ended.
enum Outcome {
    /// A streamed answer whose first chunk arrived.
    Stream {
        status: StatusCode,
        first: Bytes,
        rest: ByteStream,
        headers: HeaderMap,
    },
    /// A complete non-streamed answer.
    Full { status: StatusCode, body: Bytes },
    /// Try the next target.
    Failover {
        error: ApiError,
        class: &'static str,
        status: Option<u16>,
        retry_after: Option<HeaderValue>,
    },
    /// Stop and tell the client (a request error the next target would also refuse).
    Final { error: ApiError, status: u16 },
}

impl<H: HttpClient, C: Clock, L: LogSink, S: StateStore> Gateway<H, C, L, S> {
    /// Builds a gateway from a validated config and its ports.
    pub fn new(cfg: Config, http: H, clock: C, log: L, store: S) -> Self {
        let keys = KeySet::new(cfg.keys.iter().map(|k| (k.name.as_str(), k.key.as_str())));
        let scrub = Scrubber::new(cfg.secrets());
        Self {
            inner: Arc::new(Inner {
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
        let path = parts.uri.path().to_owned();
        let client_format = if path.starts_with("/v1/messages")
            || parts.headers.contains_key("anthropic-version")
        {
            Format::Anthropic
        } else {
            Format::OpenAi
        };
        let mut log = LogGuard::new(
            Arc::clone(&self.inner),
            RequestLog::new(&rid, client_format, parts.method.as_str(), &path),
            start,
        );
        let mut deferred = Deferred::default();
        let mut resp = match (parts.method.clone(), path.as_str()) {
            (Method::GET, "/health") => self.health(&parts.headers),
            (Method::POST, "/v1/chat/completions") => {
                self.chat(
                    Format::OpenAi,
                    &parts.headers,
                    body,
                    &mut log,
                    start,
                    &mut deferred,
                )
                .await
            }
            (Method::POST, "/v1/messages") => {
                self.chat(
                    Format::Anthropic,
                    &parts.headers,
                    body,
                    &mut log,
                    start,
                    &mut deferred,
                )
                .await
            }
            (Method::POST, "/v1/messages/count_tokens") => {
                self.count_tokens(&parts.headers, body, &mut log).await
            }
            (Method::GET, "/v1/models") => {
                self.models(client_format, &parts.headers, None, &mut log)
            }
            (Method::GET, p) if p.starts_with("/v1/models/") => {
                let id = util::percent_decode(&p["/v1/models/".len()..]);
                self.models(client_format, &parts.headers, Some(&id), &mut log)
            }
            (
                _,
                "/health"
                | "/v1/chat/completions"
                | "/v1/messages"
                | "/v1/messages/count_tokens"
                | "/v1/models",
            ) => error_response(
                client_format,
                &ApiError::invalid(format!("method {} is not allowed on {path}", parts.method))
                    .with_status(405),
            ),
            _ => error_response(
                client_format,
                &ApiError::new(
                    ErrorKind::NotFound,
                    format!("no route for {} {path}", parts.method),
                ),
            ),
        };
        if let Ok(v) = HeaderValue::from_str(&rid) {
            resp.headers_mut().insert("x-request-id", v);
        }
        log.set_status(resp.status().as_u16());
        // Still "client_disconnected" only if no phase settled it (a relay took its own record).
        if log.outcome_is("client_disconnected") {
            log.outcome(if resp.status().is_success() {
                "ok"
            } else {
                "error"
            });
        }
        Handled {
            response: resp,
            after: self.after(deferred),
        }
    }

    /// The deferred breaker writes of one request, as one future for the runtime to drive.
    fn after(&self, d: Deferred) -> BoxFuture<'static, ()> {
        let inner = Arc::clone(&self.inner);
        Box::pin(async move {
            let record = |key: String, success: bool| {
                let inner = Arc::clone(&inner);
                async move {
                    let cmd = Command::Record {
                        config: inner.cfg.breaker.clone(),
                        success,
                    };
                    let now_ms = inner.clock.now().0 / 1000;
                    if let Err(e) = inner.store_apply(&key, &cmd, now_ms).await {
                        let line = json!({"event": "state_store_error", "key": key, "error": e.to_string()});
                        inner.log.emit(&inner.scrub.scrub(&line.to_string()));
                    }
                }
            };
            for (key, ok) in d.records {
                record(key, ok).await;
            }
            if let Some((key, rx)) = d.stream {
                // A stream whose relay vanished without a verdict was cut by its client: the upstream was fine.
                let ok = rx.await.unwrap_or(true);
                record(key, ok).await;
            }
        })
    }

    /// Liveness for anyone; which providers are configured (and which variables are missing)
    /// only for a caller with a proxy key.
    fn health(&self, headers: &HeaderMap) -> Response<BodyStream> {
        let known =
            gw_auth::presented_key(headers).is_some_and(|k| self.inner.keys.check(k).is_some());
        if !known {
            return json_response(StatusCode::OK, &json!({"status": "ok"}));
        }
        let mut providers = serde_json::Map::new();
        for p in &self.inner.cfg.providers {
            let mut o = json!({"configured": p.missing().is_none(), "format": p.format.as_str()});
            if let Some(m) = p.missing() {
                o["missing"] = json!(m);
            }
            providers.insert(p.id.clone(), o);
        }
        json_response(
            StatusCode::OK,
            &json!({"status": "ok", "providers": providers}),
        )
    }

    /// Checks the proxy key; the error is in the client's format.
    fn authenticate(
        &self,
        headers: &HeaderMap,
        log: &mut LogGuard<H, C, L, S>,
    ) -> Result<(), ApiError> {
        if self.inner.keys.is_empty() {
            // Serverless runtimes cannot print a generated key; never run open instead. A
            // server-side misconfiguration, so a 5xx rather than a 401 blaming the client.
            log.outcome("unauthenticated");
            return Err(ApiError::new(
                ErrorKind::Api,
                "this gateway has no proxy key configured: set GATEWAY_PROXY_KEY (`wrangler secret put GATEWAY_PROXY_KEY` on Workers, the ProxyKey parameter of the SAM stack on Lambda)",
            )
            .with_status(503)
            .with_code("proxy_key_not_configured"));
        }
        let Some(presented) = gw_auth::presented_key(headers) else {
            log.outcome("unauthenticated");
            return Err(ApiError::new(
                ErrorKind::Authentication,
                "missing proxy key: send it as `Authorization: Bearer <key>`, `x-api-key`, `X-Proxy-Key` or `x-goog-api-key`",
            ));
        };
        match self.inner.keys.check(presented) {
            Some(name) => {
                log.key_name(name);
                Ok(())
            }
            None => {
                log.outcome("unauthenticated");
                Err(ApiError::new(
                    ErrorKind::Authentication,
                    "invalid proxy key",
                ))
            }
        }
    }

    fn models(
        &self,
        format: Format,
        headers: &HeaderMap,
        one: Option<&str>,
        log: &mut LogGuard<H, C, L, S>,
    ) -> Response<BodyStream> {
        if let Err(e) = self.authenticate(headers, log) {
            return error_response(format, &e);
        }
        log.outcome("ok");
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
        let entry = |(id, owner): &(String, String)| match format {
            Format::OpenAi => json!({"id": id, "object": "model", "created": 0, "owned_by": owner}),
            Format::Anthropic => {
                json!({"type": "model", "id": id, "display_name": id, "created_at": "1970-01-01T00:00:00Z"})
            }
        };
        match one {
            Some(id) => match list.iter().find(|(m, _)| m == id) {
                Some(e) => json_response(StatusCode::OK, &entry(e)),
                None => {
                    log.outcome("error");
                    error_response(
                        format,
                        &ApiError::new(
                            ErrorKind::NotFound,
                            format!("model `{id}` is not available"),
                        )
                        .with_code("model_not_found"),
                    )
                }
            },
            None => {
                let data: Vec<Value> = list.iter().map(entry).collect();
                let body = match format {
                    Format::OpenAi => json!({"object": "list", "data": data}),
                    Format::Anthropic => json!({
                        "data": data, "has_more": false,
                        "first_id": list.first().map(|e| &e.0), "last_id": list.last().map(|e| &e.0),
                    }),
                };
                json_response(StatusCode::OK, &body)
            }
        }
    }

    /// The prelude of every body-carrying operation: the proxy key (from the headers alone),
    /// then the body (bounded in size and time), then cheap limits, then the decode.
    async fn admit_request(
        &self,
        format: Format,
        headers: &HeaderMap,
        body: Body,
        log: &mut LogGuard<H, C, L, S>,
    ) -> Result<(Bytes, gw_model::ChatRequest), Response<BodyStream>> {
        if let Err(e) = self.authenticate(headers, log) {
            return Err(error_response(format, &e));
        }
        let sv = &self.inner.cfg.server;
        let checked = match body::read(
            body,
            headers,
            sv.max_body_bytes,
            sv.body_read_timeout_ms,
            &self.inner.clock,
        )
        .await
        {
            Ok(b) => gw_translate::limits::check(
                &b,
                &gw_translate::limits::Limits {
                    max_depth: sv.max_json_depth,
                    max_model_bytes: sv.max_model_bytes,
                    max_messages: sv.max_messages,
                },
            )
            .map(|()| b),
            Err(e) => Err(e),
        };
        let decoded = checked.and_then(|b| {
            let r = gw_translate::decode_request(format, &b)?;
            Ok((b, r))
        });
        decoded.map_err(|e| {
            log.outcome("rejected");
            error_response(format, &e)
        })
    }

    async fn chat(
        &self,
        format: Format,
        headers: &HeaderMap,
        body: Body,
        log: &mut LogGuard<H, C, L, S>,
        start: Timestamp,
        deferred: &mut Deferred,
    ) -> Response<BodyStream> {
        let (body, req) = match self.admit_request(format, headers, body, log).await {
            Ok(x) => x,
            Err(r) => return r,
        };
        let cfg = &self.inner.cfg;
        log.model(&req.model, req.stream);
        let forced = forced_provider(headers);
        let plan = match cfg.resolve(&req.model, forced) {
            Ok(p) => p,
            Err(e) => {
                log.outcome("rejected");
                return error_response(format, &e);
            }
        };
        let deadline = Timestamp(start.0 + cfg.timeouts.total_ms * 1000);
        let mut last: Option<(ApiError, Option<HeaderValue>)> = None;
        let mut missing: Vec<(String, String)> = Vec::new();
        let mut unsupported: Option<ApiError> = None;
        let mut open_for: Option<u64> = None;
        for target in &plan {
            let p = &cfg.providers[target.provider];
            if let Some(var) = p.missing() {
                log.attempt(Attempt::skipped(&p.id, &target.model, "not_configured"));
                missing.push((p.id.clone(), var));
                continue;
            }
            let now = self.inner.clock.now();
            if now >= deadline {
                log.attempt(Attempt::skipped(&p.id, &target.model, "total_timeout"));
                last = Some((
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
            let fast = p.format == format;
            let upstream_body = if fast {
                match fast_body(format, &body, target, &req) {
                    Some(b) => b,
                    None => {
                        log.outcome("rejected");
                        return error_response(
                            format,
                            &ApiError::invalid("request body must be a JSON object"),
                        );
                    }
                }
            } else {
                let opts = EncodeOpts {
                    model: &target.model,
                    provider: &p.id,
                    default_max_tokens: p.default_max_tokens,
                    max_tokens_field: &p.max_tokens_field,
                };
                match gw_translate::encode_request(p.format, &req, &opts) {
                    Ok(b) => b,
                    Err(e) => {
                        log.attempt(Attempt::skipped(&p.id, &target.model, "unsupported"));
                        unsupported.get_or_insert(e);
                        continue;
                    }
                }
            };
            // Admission: one store round trip; an open breaker skips the target. A store that
            // fails is logged and ignored: state trouble must never stop traffic.
            let bkey = breaker_key(p);
            match self
                .inner
                .store_apply(&bkey, &Command::Admit(cfg.breaker.clone()), now.0 / 1000)
                .await
            {
                Ok(Reply::Reject { retry_after_ms }) => {
                    log.attempt(Attempt::skipped(&p.id, &target.model, "circuit_open"));
                    open_for = Some(open_for.map_or(retry_after_ms, |o| o.min(retry_after_ms)));
                    continue;
                }
                Ok(_) => {}
                Err(e) => log.store_error(&e.to_string()),
            }
            let budget_ms = cfg
                .timeouts
                .per_attempt_ms
                .min((deadline.0 - now.0) / 1000)
                .max(1);
            let upstream = build_request(p, format, headers, upstream_body, req.stream, "chat");
            // Logged as cancelled if the client leaves while the attempt is in flight.
            log.pending(&p.id, &target.model, now);
            let outcome = self.attempt(upstream, p, req.stream, budget_ms).await;
            log.settled();
            let latency = self.inner.clock.now().ms_since(now);
            match outcome {
                Outcome::Stream {
                    status,
                    first,
                    rest,
                    headers: uh,
                } => {
                    log.attempt(Attempt::ok(&p.id, &target.model, status.as_u16(), latency));
                    log.route(&p.id, &target.model, fast);
                    log.ttfb(self.inner.clock.now().ms_since(start));
                    let (tx, rx) = futures_channel::oneshot::channel();
                    log.on_done(tx);
                    deferred.stream = Some((bkey, rx));
                    return relay::stream_response(
                        Arc::clone(&self.inner),
                        format,
                        p.format,
                        fast,
                        req.include_usage,
                        first,
                        rest,
                        uh,
                        log.take(),
                    );
                }
                Outcome::Full {
                    status, body: ub, ..
                } => {
                    log.attempt(Attempt::ok(&p.id, &target.model, status.as_u16(), latency));
                    log.route(&p.id, &target.model, fast);
                    log.ttfb(self.inner.clock.now().ms_since(start));
                    let (resp, served) = self.full_response(format, p, fast, ub, log);
                    deferred.records.push((bkey, served));
                    return resp;
                }
                Outcome::Failover {
                    error,
                    class,
                    status,
                    retry_after,
                } => {
                    let e = self.scrubbed(error);
                    log.attempt(Attempt::failed(
                        &p.id,
                        &target.model,
                        status,
                        latency,
                        class,
                        &e.message,
                    ));
                    last = Some((e, retry_after));
                    deferred.records.push((bkey, false));
                }
                Outcome::Final { error, status } => {
                    let e = self.scrubbed(error);
                    log.attempt(Attempt::failed(
                        &p.id,
                        &target.model,
                        Some(status),
                        latency,
                        "client_error",
                        &e.message,
                    ));
                    log.route(&p.id, &target.model, fast);
                    log.outcome("error");
                    return error_response(format, &e);
                }
            }
        }
        log.outcome("error");
        if let Some((e, retry_after)) = last {
            let mut e = e;
            if plan.len() > 1 {
                e.message = format!("all {} targets failed; last: {}", plan.len(), e.message);
            }
            let mut r = error_response(format, &e);
            if let Some(ra) = retry_after {
                r.headers_mut().insert("retry-after", ra);
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

    fn scrubbed(&self, mut e: ApiError) -> ApiError {
        e.message = self.inner.scrub.scrub(&e.message);
        e
    }

    /// One upstream attempt, bounded by `budget_ms` up to the first body chunk (streams) or the
    /// whole body (non-streamed answers).
    async fn attempt(
        &self,
        req: Request<Bytes>,
        p: &Provider,
        stream: bool,
        budget_ms: u64,
    ) -> Outcome {
        let work = async {
            let resp = match self.inner.http.send(req).await {
                Ok(r) => r,
                Err(e) => {
                    let class = match e.kind {
                        TransportErrorKind::Connect => "connect",
                        TransportErrorKind::Timeout => "timeout",
                        _ => "transport",
                    };
                    return Outcome::Failover {
                        error: ApiError::new(
                            ErrorKind::Api,
                            format!("provider `{}` unreachable: {}", p.id, e.message),
                        ),
                        class,
                        status: None,
                        retry_after: None,
                    };
                }
            };
            let (parts, mut body) = resp.into_parts();
            let status = parts.status;
            if !status.is_success() {
                let raw = util::read_all(&mut body, 64 * 1024)
                    .await
                    .unwrap_or_default();
                let mut err = gw_translate::decode_error(p.format, status.as_u16(), &raw);
                err.message = format!(
                    "provider `{}` returned {}: {}",
                    p.id,
                    status.as_u16(),
                    err.message
                );
                let code = status.as_u16();
                if matches!(code, 408 | 409 | 429 | 529) || code >= 500 {
                    return Outcome::Failover {
                        class: if code == 429 {
                            "rate_limited"
                        } else if code == 529 {
                            "overloaded"
                        } else {
                            "upstream_error"
                        },
                        status: Some(code),
                        retry_after: parts.headers.get("retry-after").cloned(),
                        error: if code >= 500 && code != 529 && code != 503 {
                            err.with_status(502)
                        } else {
                            err
                        },
                    };
                }
                if matches!(code, 401 | 403) {
                    // The gateway's credential was refused: not the client's fault, and not a reason
                    // to show the client an auth error about its proxy key.
                    let vars = match &p.auth {
                        AuthSpec::Bearer { env } | AuthSpec::Header { env, .. } => env.join(" or "),
                        AuthSpec::None => "its credentials".into(),
                    };
                    let e =
                        ApiError::new(ErrorKind::Api, format!("{} (check {vars})", err.message))
                            .with_code("upstream_auth_failed");
                    return Outcome::Final {
                        error: e,
                        status: code,
                    };
                }
                return Outcome::Final {
                    error: err,
                    status: code,
                };
            }
            if stream {
                loop {
                    match body.next().await {
                        Some(Ok(c)) if c.is_empty() => continue,
                        Some(Ok(first)) => {
                            return Outcome::Stream {
                                status,
                                first,
                                rest: body,
                                headers: parts.headers,
                            };
                        }
                        Some(Err(e)) => {
                            return Outcome::Failover {
                                error: ApiError::new(
                                    ErrorKind::Api,
                                    format!(
                                        "provider `{}` stream broke before its first byte: {}",
                                        p.id, e.message
                                    ),
                                ),
                                class: "transport",
                                status: Some(status.as_u16()),
                                retry_after: None,
                            };
                        }
                        None => {
                            return Outcome::Failover {
                                error: ApiError::new(
                                    ErrorKind::Api,
                                    format!("provider `{}` sent an empty stream", p.id),
                                ),
                                class: "empty_stream",
                                status: Some(status.as_u16()),
                                retry_after: None,
                            };
                        }
                    }
                }
            }
            match util::read_all(&mut body, self.inner.cfg.server.max_upstream_body_bytes).await {
                Ok(b) => Outcome::Full { status, body: b },
                Err(e) => Outcome::Failover {
                    error: ApiError::new(
                        ErrorKind::Api,
                        format!("provider `{}` body failed: {e}", p.id),
                    ),
                    class: "transport",
                    status: Some(status.as_u16()),
                    retry_after: None,
                },
            }
        };
        let timer = self.inner.clock.sleep(budget_ms);
        match select(Box::pin(work), Box::pin(timer)).await {
            Either::Left((o, _)) => o,
            Either::Right(((), _)) => Outcome::Failover {
                error: ApiError::new(
                    ErrorKind::Timeout,
                    format!("provider `{}` did not answer within {budget_ms} ms", p.id),
                ),
                class: "timeout",
                status: None,
                retry_after: None,
            },
        }
    }

    /// A complete upstream answer for the client; `false` when the upstream's 200 was garbage
    /// (then the client gets a 502 and the breaker a failure, on either path).
    fn full_response(
        &self,
        client: Format,
        p: &Provider,
        fast: bool,
        body: Bytes,
        log: &mut LogGuard<H, C, L, S>,
    ) -> (Response<BodyStream>, bool) {
        let bad = |e: ApiError, log: &mut LogGuard<H, C, L, S>| {
            log.outcome("error");
            let e = ApiError::new(
                ErrorKind::Api,
                format!(
                    "provider `{}` sent an unreadable answer: {}",
                    p.id, e.message
                ),
            );
            (error_response(client, &self.scrubbed(e)), false)
        };
        if fast {
            // A byte copy, but only of a body that is JSON: an HTML error page or a cut-off
            // body must not reach the client as a 200.
            return match util::usage_of_body(p.format, &body) {
                Ok(u) => {
                    if let Some(u) = u {
                        log.usage(u);
                    }
                    log.outcome("ok");
                    (
                        util::bytes_response(StatusCode::OK, "application/json", body),
                        true,
                    )
                }
                Err(e) => bad(ApiError::invalid(e), log),
            };
        }
        match gw_translate::decode_response(p.format, &body) {
            Ok(r) => {
                log.usage(r.usage);
                log.outcome("ok");
                let out = Bytes::from(gw_translate::encode_response(client, &r));
                (
                    util::bytes_response(StatusCode::OK, "application/json", out),
                    true,
                )
            }
            Err(e) => bad(e, log),
        }
    }

    async fn count_tokens(
        &self,
        headers: &HeaderMap,
        body: Body,
        log: &mut LogGuard<H, C, L, S>,
    ) -> Response<BodyStream> {
        let format = Format::Anthropic;
        let (body, req) = match self.admit_request(format, headers, body, log).await {
            Ok(x) => x,
            Err(r) => return r,
        };
        let cfg = &self.inner.cfg;
        log.model(&req.model, false);
        let forced = forced_provider(headers);
        let plan = match cfg.resolve(&req.model, forced) {
            Ok(p) => p,
            Err(e) => {
                log.outcome("rejected");
                return error_response(format, &e);
            }
        };
        // Exact count from the first usable Anthropic-format target; otherwise an estimate.
        if let Some(t) = plan.iter().find(|t| {
            cfg.providers[t.provider].format == Format::Anthropic
                && cfg.providers[t.provider].missing().is_none()
        }) {
            let p = &cfg.providers[t.provider];
            if let Some(b) = fast_body(format, &body, t, &gw_model::ChatRequest::default()) {
                let started = self.inner.clock.now();
                let up = build_request(p, format, headers, b, false, "count_tokens");
                log.pending(&p.id, &t.model, started);
                let outcome = self
                    .attempt(up, p, false, cfg.timeouts.per_attempt_ms)
                    .await;
                log.settled();
                match outcome {
                    Outcome::Full { status, body, .. } => {
                        log.attempt(Attempt::ok(
                            &p.id,
                            &t.model,
                            status.as_u16(),
                            self.inner.clock.now().ms_since(started),
                        ));
                        log.route(&p.id, &t.model, true);
                        log.outcome("ok");
                        return util::bytes_response(StatusCode::OK, "application/json", body);
                    }
                    Outcome::Final { error, status } => {
                        let e = self.scrubbed(error);
                        log.attempt(Attempt::failed(
                            &p.id,
                            &t.model,
                            Some(status),
                            0.0,
                            "client_error",
                            &e.message,
                        ));
                        log.outcome("error");
                        return error_response(format, &e);
                    }
                    Outcome::Failover {
                        error,
                        class,
                        status,
                        ..
                    } => {
                        let e = self.scrubbed(error);
                        log.attempt(Attempt::failed(
                            &p.id, &t.model, status, 0.0, class, &e.message,
                        ));
                    }
                    Outcome::Stream { .. } => {}
                }
            }
        }
        log.outcome("ok");
        let mut r = json_response(
            StatusCode::OK,
            &json!({"input_tokens": estimate_tokens(&req)}),
        );
        r.headers_mut().insert(
            "x-gateway-token-count",
            HeaderValue::from_static("estimate"),
        );
        r
    }
}

/// `X-Provider`, when the client forces one.
fn forced_provider(headers: &HeaderMap) -> Option<&str> {
    headers
        .get("x-provider")
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|v| !v.is_empty())
}

/// The breaker key of a provider and credential: a different key for the same provider gets its
/// own breaker, and the credential itself never reaches the store.
fn breaker_key(p: &Provider) -> String {
    match &p.secret {
        Some(s) => format!("breaker:{}:{}", p.id, gw_auth::fingerprint(s)),
        None => format!("breaker:{}", p.id),
    }
}

/// The client's body with only the model (and, for OpenAI streams, the usage option) rewritten.
fn fast_body(
    format: Format,
    body: &[u8],
    t: &Target,
    req: &gw_model::ChatRequest,
) -> Option<Vec<u8>> {
    let model = gw_translate::fast::json_string(&t.model);
    let mut patches: Vec<(&str, Option<&str>)> = vec![("model", Some(&model))];
    if format == Format::OpenAi && req.stream && !req.include_usage {
        // Usage is needed for accounting; the relay drops the extra chunk the client did not ask for.
        patches.push(("stream_options", Some(r#"{"include_usage":true}"#)));
    }
    gw_translate::fast::patch_fields(body, &patches)
}

fn build_request(
    p: &Provider,
    client: Format,
    client_headers: &HeaderMap,
    body: Vec<u8>,
    stream: bool,
    what: &str,
) -> Request<Bytes> {
    let path = match (p.format, what) {
        (Format::OpenAi, _) => "/chat/completions",
        (Format::Anthropic, "count_tokens") => "/v1/messages/count_tokens",
        (Format::Anthropic, _) => "/v1/messages",
    };
    let mut b = Request::builder()
        .method(Method::POST)
        .uri(p.url(path))
        .header("content-type", "application/json")
        .header(
            "accept",
            if stream {
                "text/event-stream"
            } else {
                "application/json"
            },
        );
    for (k, v) in &p.headers {
        b = b.header(k.as_str(), v.as_str());
    }
    if let Some(s) = &p.secret {
        b = match &p.auth {
            AuthSpec::Bearer { .. } => b.header("authorization", format!("Bearer {s}")),
            AuthSpec::Header { name, .. } => b.header(name.as_str(), s.as_str()),
            AuthSpec::None => b,
        };
    }
    let mut req = b
        .body(Bytes::from(body))
        .unwrap_or_else(|_| Request::new(Bytes::new()));
    if client == Format::Anthropic && p.format == Format::Anthropic {
        // Anthropic clients pin their API version and opt into betas (Claude Code relies on them).
        for h in ["anthropic-version", "anthropic-beta"] {
            if let Some(v) = client_headers.get(h) {
                req.headers_mut().insert(h, v.clone());
            }
        }
    }
    req
}

/// An honest estimate (about 4 characters a token, plus fixed costs) for upstreams with no
/// counting endpoint; never a fake zero.
pub fn estimate_tokens(req: &gw_model::ChatRequest) -> u64 {
    fn part_chars(p: &Part) -> (usize, u64) {
        match p {
            Part::Text { text, .. } | Part::Thinking { text, .. } => (text.len(), 0),
            Part::ToolUse {
                name, arguments, ..
            } => (name.len() + arguments.len(), 0),
            Part::ToolResult { content, .. } => content
                .iter()
                .map(part_chars)
                .fold((0, 0), |a, b| (a.0 + b.0, a.1 + b.1)),
            Part::Image { .. } => (0, 1_600),
            Part::Opaque { block, .. } => (block.to_string().len(), 0),
            Part::RedactedThinking { data } => (data.len() / 4, 0),
        }
    }
    let mut chars = 0usize;
    let mut fixed = 3u64;
    for p in req
        .system
        .iter()
        .chain(req.messages.iter().flat_map(|m| m.content.iter()))
    {
        let (c, f) = part_chars(p);
        chars += c;
        fixed += f;
    }
    fixed += 4 * req.messages.len() as u64;
    for t in &req.tools {
        chars += match t {
            gw_model::Tool::Function {
                name,
                description,
                parameters,
                ..
            } => {
                name.len()
                    + description.as_ref().map_or(0, String::len)
                    + parameters.to_string().len()
            }
            gw_model::Tool::Native { def, .. } => def.to_string().len(),
        };
    }
    (chars as u64).div_ceil(4) + fixed
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
