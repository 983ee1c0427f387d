//! Phase 1: who is calling, and what. The proxy key from the headers alone, then the body
//! (bounded in size and time), then cheap limits, then the decode into the canonical request.

use crate::log::{LogGuard, Outcome};
use crate::{Gateway, body, util::error_response};
use bytes::Bytes;
use gw_model::{ApiError, ChatRequest, ErrorKind, Format};
use gw_ports::{BodyStream, Clock, HttpClient, LogSink};
use gw_state::StateStore;
use gw_translate::limits::{self, Limits};
use gw_translate::wire::UrlCall;
use http::{HeaderMap, Response};

impl<H: HttpClient, C: Clock, L: LogSink, S: StateStore> Gateway<H, C, L, S> {
    /// The authenticated proxy key's policy, checked for `model`: a key whose `models` list
    /// leaves it out gets a 403 that names what it may use.
    pub(crate) fn key_policy(
        &self,
        model: &str,
        log: &mut LogGuard<H, C, L, S>,
    ) -> Result<Option<&gw_route::KeySpec>, ApiError> {
        let cfg = &self.inner.cfg;
        let key = log
            .key()
            .and_then(|n| cfg.keys.iter().find(|k| k.name == n));
        if let Some(k) = key.filter(|k| !k.allows(model)) {
            log.outcome(Outcome::Rejected);
            return Err(ApiError::new(
                ErrorKind::Permission,
                format!(
                    "proxy key `{}` may not use model `{}`; it may use: {}",
                    k.name,
                    crate::log::cut(model, 256),
                    k.models.join(", ")
                ),
            )
            .with_code("model_not_allowed"));
        }
        Ok(key)
    }

    /// Reserves the key's limits and budget (they refuse the whole request) for `estimate`.
    pub(crate) async fn reserve_key(
        &self,
        key: Option<&gw_route::KeySpec>,
        estimate: crate::limit::Amounts,
        log: &mut LogGuard<H, C, L, S>,
    ) -> Result<Vec<crate::limit::Held>, crate::limit::Refusal> {
        let Some(k) = key.filter(|k| k.limits.is_set() || k.budget.is_set()) else {
            return Ok(Vec::new());
        };
        let now_ms = self.inner.clock.now().0 / 1000;
        let scopes = crate::limit::key_scopes(k);
        let (got, store_error) =
            crate::limit::reserve(&self.inner, &scopes, estimate, now_ms).await;
        if let Some(e) = store_error {
            log.store_error(&e);
        }
        got
    }

    /// Whether `headers` carry a configured proxy key (no log, no error: for `/health`).
    pub(crate) fn knows_key(&self, headers: &HeaderMap) -> bool {
        gw_auth::presented_key(headers).is_some_and(|k| self.inner.keys.check(k).is_some())
    }

    /// Checks the proxy key; the error is in the caller's format.
    pub(crate) fn authenticate(
        &self,
        headers: &HeaderMap,
        log: &mut LogGuard<H, C, L, S>,
    ) -> Result<(), ApiError> {
        if self.inner.keys.is_empty() {
            // Serverless runtimes cannot print a generated key; never run open instead. A
            // server-side misconfiguration, so a 5xx rather than a 401 blaming the client.
            log.outcome(Outcome::Unauthenticated);
            return Err(ApiError::new(
                ErrorKind::Api,
                "this gateway has no proxy key configured: set GATEWAY_PROXY_KEY (`wrangler secret put GATEWAY_PROXY_KEY` on Workers, the ProxyKey parameter of the SAM stack on Lambda)",
            )
            .with_status(503)
            .with_code("proxy_key_not_configured"));
        }
        let Some(presented) = gw_auth::presented_key(headers) else {
            log.outcome(Outcome::Unauthenticated);
            return Err(ApiError::new(
                ErrorKind::Authentication,
                "missing proxy key: send it as `Authorization: Bearer <key>`, `x-api-key`, `X-Proxy-Key` or `x-goog-api-key`",
            ));
        };
        match self.inner.keys.check(presented) {
            Some(name) => {
                log.key_name(name);
                let spec = self.inner.cfg.keys.iter().find(|k| k.name == name);
                if let Some((at, when)) = spec.and_then(|k| k.expires_ms.zip(k.expires.as_deref()))
                    && self.inner.clock.now().0 / 1000 >= at
                {
                    log.outcome(Outcome::Unauthenticated);
                    return Err(ApiError::new(
                        ErrorKind::Authentication,
                        format!("proxy key `{name}` expired at {when}"),
                    )
                    .with_code("key_expired"));
                }
                Ok(())
            }
            None => {
                log.outcome(Outcome::Unauthenticated);
                Err(ApiError::new(
                    ErrorKind::Authentication,
                    "invalid proxy key",
                ))
            }
        }
    }

    /// The prelude of every operation with a body: key, body, limits, decode. On failure the
    /// response to send, in the client's format.
    pub(crate) async fn admit_request(
        &self,
        format: Format,
        call: &UrlCall,
        headers: &HeaderMap,
        body: body::Body,
        log: &mut LogGuard<H, C, L, S>,
    ) -> Result<(Bytes, ChatRequest), Response<BodyStream>> {
        if let Err(e) = self.authenticate(headers, log) {
            return Err(error_response(format, &e));
        }
        let sv = &self.inner.cfg.server;
        let read = body::read(
            body,
            headers,
            sv.max_body_bytes,
            sv.body_read_timeout_ms,
            &self.inner.clock,
        )
        .await;
        let limits = Limits {
            max_depth: sv.max_json_depth,
            max_model_bytes: sv.max_model_bytes,
            max_messages: sv.max_messages,
        };
        let decoded = read.and_then(|b| {
            limits::check(&b, &limits)?;
            let mut r = gw_translate::decode_request(format, &b)?;
            // What the URL fixes (Gemini: the model, the stream and its framing) wins.
            if let Some(m) = &call.model {
                r.model.clone_from(m);
            }
            if let Some(st) = call.stream {
                r.stream = st;
            }
            r.stream_json_array = call.json_array;
            if r.model.is_empty() {
                return Err(ApiError::invalid("`model`: must not be empty").with_param("model"));
            }
            Ok((b, r))
        });
        decoded.map_err(|e| {
            log.outcome(Outcome::Rejected);
            error_response(format, &e)
        })
    }
}

/// `X-Provider`, when the client forces one.
pub(crate) fn forced_provider(headers: &HeaderMap) -> Option<&str> {
    headers
        .get("x-provider")
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|v| !v.is_empty())
}
