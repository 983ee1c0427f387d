//! The answer when no target served a request (chat and embeddings alike): the last upstream
//! error, else the gateway's own 429 for a spent limit, else a 503 for open circuits, else why
//! no target could take it (unsupported, not configured).

use crate::limit::Refusal;
use crate::log::{LogGuard, Outcome};
use crate::util::error_response;
use gw_model::{ApiError, ErrorKind, Format, UpstreamError};
use gw_ports::{BodyStream, Clock, HttpClient, LogSink};
use gw_state::StateStore;
use http::{HeaderValue, Response};

/// Why each target was passed over, gathered while trying them.
#[derive(Default)]
pub(crate) struct Unserved {
    /// The last upstream failure.
    pub(crate) last: Option<UpstreamError>,
    /// The limit that has room again soonest.
    pub(crate) limited: Option<Refusal>,
    /// The soonest an open breaker lets a trial through, ms.
    pub(crate) open_for: Option<u64>,
    /// A target's provider cannot serve this request.
    pub(crate) unsupported: Option<ApiError>,
    /// (provider, variable to set) of providers not configured.
    pub(crate) missing: Vec<(String, String)>,
}

impl Unserved {
    /// Notes a spent limit, keeping the one that renews first.
    pub(crate) fn limited(&mut self, f: Refusal) {
        if self
            .limited
            .as_ref()
            .is_none_or(|l| f.retry_after_ms < l.retry_after_ms)
        {
            self.limited = Some(f);
        }
    }

    /// Notes an open breaker.
    pub(crate) fn open(&mut self, retry_after_ms: u64) {
        self.open_for = Some(
            self.open_for
                .map_or(retry_after_ms, |o| o.min(retry_after_ms)),
        );
    }

    pub(crate) fn response<H: HttpClient, C: Clock, L: LogSink, S: StateStore>(
        self,
        format: Format,
        model: &str,
        targets: usize,
        log: &mut LogGuard<H, C, L, S>,
    ) -> Response<BodyStream> {
        if self.last.is_none()
            && let Some(f) = self.limited
        {
            return limited_response(format, &f, log);
        }
        log.outcome(Outcome::Error);
        if let Some(e) = self.last {
            let mut err = e.error;
            if targets > 1 {
                err.message = format!("all {targets} targets failed; last: {}", err.message);
            }
            let mut r = error_response(format, &err);
            if let Some(secs) = e.retry_after_secs {
                r.headers_mut()
                    .insert("retry-after", HeaderValue::from(secs));
            }
            return r;
        }
        if let Some(ms) = self.open_for {
            let secs = ms.div_ceil(1000).max(1);
            let e = ApiError::new(
                ErrorKind::Overloaded,
                format!("every target for model `{model}` is cooling down after repeated failures (circuit open); retry in {secs} s"),
            )
            .with_code("circuit_open");
            let mut r = error_response(format, &e);
            r.headers_mut()
                .insert("retry-after", HeaderValue::from(secs));
            return r;
        }
        if let Some(e) = self.unsupported {
            return error_response(format, &e);
        }
        let what: Vec<String> = self
            .missing
            .iter()
            .map(|(p, v)| format!("provider `{p}` is not configured: set {v}"))
            .collect();
        error_response(
            format,
            &ApiError::new(
                ErrorKind::Api,
                format!("model `{model}` cannot be served: {}", what.join("; ")),
            )
            .with_status(503)
            .with_code("provider_not_configured"),
        )
    }
}

/// The gateway's own 429 for a spent limit, in the client's format, with `Retry-After`.
pub(crate) fn limited_response<H: HttpClient, C: Clock, L: LogSink, S: StateStore>(
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
