//! Limits before the upstream call: one reservation per scope (a proxy key, a provider's
//! credential, one of its models) and window, taken atomically in the store, all scopes in
//! parallel; settled with the real token count after the answer, or given back.

use crate::Inner;
use futures_util::future::join_all;
use gw_auth::Signer;
use gw_model::{ApiError, ErrorKind};
use gw_ports::{Clock, HttpClient, LogSink};
use gw_route::{Limits, Provider};
use gw_state::{Command, Exhausted, Reply, Reserve, Settle, StateStore};

/// A scope with limits: its store key prefix and its config path (for messages).
pub(crate) struct Scope<'a> {
    pub(crate) key: String,
    pub(crate) path: String,
    pub(crate) limits: &'a Limits,
}

/// The scopes of one target: the provider's credential and the model there.
pub(crate) fn target_scopes<'a>(p: &'a Provider, signer: &Signer, model: &str) -> Vec<Scope<'a>> {
    let mut out = Vec::new();
    if p.limits.is_set() {
        out.push(Scope {
            key: crate::record::breaker_key(p, signer).replacen("breaker:", "lim:p:", 1),
            path: format!("providers.{}.limits", p.id),
            limits: &p.limits,
        });
    }
    if let Some(l) = p.model_limits.get(model).filter(|l| l.is_set()) {
        out.push(Scope {
            key: format!("lim:m:{}:{model}", p.id),
            path: format!("providers.{}.model_limits.{model}", p.id),
            limits: l,
        });
    }
    out
}

/// One reservation taken, to settle later.
#[derive(Debug, Clone)]
pub(crate) struct Held {
    key: String,
    start_ms: u64,
    end_ms: u64,
    requests: u64,
    tokens: u64,
}

impl Held {
    /// The tokens reserved.
    pub(crate) fn tokens(&self) -> u64 {
        self.tokens
    }

    /// The correction once `used` tokens are known (`None`: give the request back too).
    pub(crate) fn settle(&self, used: Option<u64>) -> (String, Command) {
        let diff = |a: u64, b: u64| {
            i64::try_from(a).unwrap_or(i64::MAX) - i64::try_from(b).unwrap_or(i64::MAX)
        };
        let (requests, tokens) = match used {
            Some(u) => (0, diff(u, self.tokens)),
            None => (
                -i64::try_from(self.requests).unwrap_or(0),
                -i64::try_from(self.tokens).unwrap_or(0),
            ),
        };
        let cmd = Command::Settle(Settle {
            start_ms: self.start_ms,
            end_ms: self.end_ms,
            requests,
            tokens,
        });
        (self.key.clone(), cmd)
    }
}

/// A limit that refused: which, and until when.
#[derive(Debug, Clone)]
pub(crate) struct Refusal {
    pub(crate) message: String,
    pub(crate) retry_after_ms: u64,
}

impl Refusal {
    /// The client's 429: names the limit, and says when to come back.
    pub(crate) fn error(&self) -> ApiError {
        ApiError::new(ErrorKind::RateLimit, self.message.clone()).with_code("rate_limit_exceeded")
    }

    pub(crate) fn retry_after_secs(&self) -> u64 {
        self.retry_after_ms.div_ceil(1000).max(1)
    }
}

/// Reserves `estimate` tokens and one request in every window of every scope. All or nothing:
/// after a refusal, what was taken is given back. A store that fails is reported and let through
/// (like the breaker: state trouble must not stop traffic).
pub(crate) async fn reserve<H: HttpClient, C: Clock, L: LogSink, S: StateStore>(
    inner: &Inner<H, C, L, S>,
    scopes: &[Scope<'_>],
    estimate: u64,
    now_ms: u64,
) -> (Result<Vec<Held>, Refusal>, Option<String>) {
    let mut wanted = Vec::new();
    for s in scopes {
        for (period, max_requests, max_tokens) in s.limits.allowances() {
            let (start_ms, end_ms) = period.window(now_ms);
            let r = Reserve {
                start_ms,
                end_ms,
                requests: 1,
                tokens: estimate,
                max_requests,
                max_tokens,
            };
            let key = format!("{}:{}", s.key, period.name());
            wanted.push((s, period, key, r, Command::Reserve(r)));
        }
    }
    let replies = join_all(
        wanted
            .iter()
            .map(|(_, _, key, _, cmd)| inner.store_apply(key, cmd, now_ms)),
    )
    .await;
    let mut held = Vec::new();
    let mut refusal: Option<Refusal> = None;
    let mut store_error = None;
    for ((scope, period, key, r, _), reply) in wanted.iter().zip(replies) {
        match reply {
            Ok(Reply::Limited {
                which,
                retry_after_ms,
            }) => {
                let field = Limits::field(*period, which == Exhausted::Requests);
                let value = scope.limits.value(field).unwrap_or(0);
                let unit = if which == Exhausted::Requests {
                    "requests"
                } else {
                    "tokens"
                };
                let alone = which == Exhausted::Tokens && r.tokens > r.max_tokens;
                let message = if alone {
                    format!(
                        "this request (about {} tokens) is larger than the limit `{}.{field}` ({value} {unit} per {})",
                        r.tokens,
                        scope.path,
                        period.name()
                    )
                } else {
                    format!(
                        "rate limit reached: `{}.{field}` allows {value} {unit} per {}; retry in {} s",
                        scope.path,
                        period.name(),
                        retry_after_ms.div_ceil(1000).max(1)
                    )
                };
                // The longest wait wins: every window must have room again.
                if refusal
                    .as_ref()
                    .is_none_or(|f| retry_after_ms > f.retry_after_ms)
                {
                    refusal = Some(Refusal {
                        message,
                        retry_after_ms,
                    });
                }
            }
            Ok(_) => held.push(Held {
                key: key.clone(),
                start_ms: r.start_ms,
                end_ms: r.end_ms,
                requests: r.requests,
                tokens: r.tokens,
            }),
            Err(e) => store_error = Some(e.to_string()),
        }
    }
    match refusal {
        Some(f) => {
            give_back(inner, &held, now_ms).await;
            (Err(f), store_error)
        }
        None => (Ok(held), store_error),
    }
}

/// Returns reservations that were not used at all.
pub(crate) async fn give_back<H: HttpClient, C: Clock, L: LogSink, S: StateStore>(
    inner: &Inner<H, C, L, S>,
    held: &[Held],
    now_ms: u64,
) {
    let cmds: Vec<(String, Command)> = held.iter().map(|h| h.settle(None)).collect();
    let _ = join_all(cmds.iter().map(|(k, c)| inner.store_apply(k, c, now_ms))).await;
}
