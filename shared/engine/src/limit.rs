//! Limits and budgets before the upstream call: one reservation per scope (a proxy key, a
//! provider's credential, one of its models) and window, taken atomically in the store, all
//! scopes in parallel; settled with the real tokens and cost after the answer, or given back.

use crate::Inner;
use futures_util::future::join_all;
use gw_model::{ApiError, ErrorKind, Usage};
use gw_ports::{Clock, HttpClient, LogSink};
use gw_route::{Budget, Limits, Period, Provider};
use gw_state::{Command, Exhausted, Reply, Reserve, Settle, StateStore};

/// What a window counts besides requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Unit {
    /// Tokens (limits).
    Tokens,
    /// Micro-USD (budgets).
    Micros,
}

/// One window of a scope: its period, its caps and the config fields that set them.
#[derive(Debug, Clone)]
pub(crate) struct Window {
    period: Period,
    max_requests: u64,
    max_units: u64,
    requests_field: &'static str,
    units_field: &'static str,
}

/// A scope with limits or a budget: its store key prefix, its config path and its windows.
pub(crate) struct Scope {
    pub(crate) key: String,
    pub(crate) path: String,
    pub(crate) unit: Unit,
    pub(crate) windows: Vec<Window>,
}

impl Scope {
    pub(crate) fn limits(key: String, path: String, l: &Limits) -> Self {
        let windows = l
            .allowances()
            .map(|(period, max_requests, max_units)| Window {
                period,
                max_requests,
                max_units,
                requests_field: Limits::field(period, true),
                units_field: Limits::field(period, false),
            })
            .collect();
        Self {
            key,
            path,
            unit: Unit::Tokens,
            windows,
        }
    }

    pub(crate) fn budget(key: String, path: String, b: &Budget) -> Self {
        let windows = b
            .caps()
            .map(|(period, cap, field)| Window {
                period,
                max_requests: u64::MAX,
                max_units: cap,
                requests_field: field,
                units_field: field,
            })
            .collect();
        Self {
            key,
            path,
            unit: Unit::Micros,
            windows,
        }
    }
}

/// One window of a scope as of now, for reading.
pub(crate) struct ReadWindow<'a> {
    pub(crate) key: String,
    pub(crate) start_ms: u64,
    end_ms: u64,
    scope: &'a Scope,
    w: &'a Window,
}

impl ReadWindow<'_> {
    /// What a usage report says of it.
    pub(crate) fn describe(&self, requests: u64, units: u64) -> serde_json::Value {
        let (s, w) = (self.scope, self.w);
        let mut v = serde_json::json!({
            "period": w.period.name(), "period_start_ms": self.start_ms, "resets_at_ms": self.end_ms,
        });
        match s.unit {
            Unit::Micros => {
                v["budget"] = format!("{}.{}", s.path, w.units_field).into();
                v["spent_usd"] = (units as f64 / 1e6).into();
                v["cap_usd"] = (w.max_units as f64 / 1e6).into();
            }
            Unit::Tokens => {
                v["limits"] = s.path.clone().into();
                v["requests"] = requests.into();
                v["tokens"] = units.into();
                if w.max_requests != u64::MAX {
                    v[w.requests_field] = w.max_requests.into();
                }
                if w.max_units != u64::MAX {
                    v[w.units_field] = w.max_units.into();
                }
            }
        }
        v
    }
}

impl Scope {
    /// Its windows as of `now_ms`.
    pub(crate) fn read_windows(&self, now_ms: u64) -> impl Iterator<Item = ReadWindow<'_>> {
        self.windows.iter().map(move |w| {
            let (start_ms, end_ms) = w.period.window(now_ms);
            ReadWindow {
                key: format!("{}:{}", self.key, w.period.name()),
                start_ms,
                end_ms,
                scope: self,
                w,
            }
        })
    }
}

/// The scopes of a proxy key: its limits and its budget.
pub(crate) fn key_scopes(k: &gw_route::KeySpec) -> Vec<Scope> {
    let mut out = Vec::new();
    if k.limits.is_set() {
        let path = format!("keys.{}.limits", k.name);
        out.push(Scope::limits(format!("lim:k:{}", k.name), path, &k.limits));
    }
    if k.budget.is_set() {
        let path = format!("keys.{}.budget", k.name);
        out.push(Scope::budget(
            format!("spend:k:{}", k.name),
            path,
            &k.budget,
        ));
    }
    out
}

/// The scopes of one target: the provider's credential and the model there, and the
/// provider's budget (all its credentials together).
/// `bkey` is the credential's breaker key (`breaker:ID[:FINGERPRINT]`): its limits are keyed
/// the same way.
pub(crate) fn target_scopes(p: &Provider, bkey: &str, model: &str) -> Vec<Scope> {
    let mut out = Vec::new();
    if p.limits.is_set() {
        let key = format!("lim:p:{}", bkey.strip_prefix("breaker:").unwrap_or(bkey));
        out.push(Scope::limits(
            key,
            format!("providers.{}.limits", p.id),
            &p.limits,
        ));
    }
    if let Some(l) = p.model_limits.get(model).filter(|l| l.is_set()) {
        let path = format!("providers.{}.model_limits.{model}", p.id);
        out.push(Scope::limits(format!("lim:m:{}:{model}", p.id), path, l));
    }
    if p.budget.is_set() {
        let path = format!("providers.{}.budget", p.id);
        out.push(Scope::budget(format!("spend:p:{}", p.id), path, &p.budget));
    }
    out
}

/// Tokens and cost of one request (estimated before, real after).
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Amounts {
    pub(crate) tokens: u64,
    pub(crate) micros: u64,
}

impl Amounts {
    /// What `usage` amounts to at `price` (no price: no cost).
    pub(crate) fn of(usage: &Usage, price: Option<&gw_route::Price>) -> Self {
        Self {
            tokens: usage.total(),
            micros: price.map_or(0, |p| p.micros(usage)),
        }
    }
}

/// One reservation taken, to settle later.
#[derive(Debug, Clone)]
pub(crate) struct Held {
    key: String,
    start_ms: u64,
    end_ms: u64,
    requests: u64,
    amount: u64,
    unit: Unit,
    /// The cap, and its config name, for budget alerts.
    pub(crate) cap: u64,
    pub(crate) name: String,
}

impl Held {
    fn pick(&self, a: Amounts) -> u64 {
        match self.unit {
            Unit::Tokens => a.tokens,
            Unit::Micros => a.micros,
        }
    }

    /// Its store key.
    pub(crate) fn store_key(&self) -> &str {
        &self.key
    }

    /// Its window, unix ms.
    pub(crate) fn window(&self) -> (u64, u64) {
        (self.start_ms, self.end_ms)
    }

    /// Whether this is a budget (its total is checked against alert thresholds).
    pub(crate) fn is_budget(&self) -> bool {
        self.unit == Unit::Micros
    }

    /// The correction once the real amounts are known (`None`: give the request back too).
    pub(crate) fn settle(&self, used: Option<Amounts>) -> (String, Command) {
        let signed = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
        let (requests, delta) = match used {
            Some(u) => (0, signed(self.pick(u)) - signed(self.amount)),
            None => (-signed(self.requests), -signed(self.amount)),
        };
        let cmd = Command::Settle(Settle {
            start_ms: self.start_ms,
            end_ms: self.end_ms,
            requests,
            tokens: delta,
        });
        (self.key.clone(), cmd)
    }

    /// The reservation itself, when nothing more is known (a stream cut short): the estimate stands.
    pub(crate) fn estimate(&self) -> Amounts {
        Amounts {
            tokens: self.amount,
            micros: self.amount,
        }
    }
}

/// A limit or budget that refused: which, and until when.
#[derive(Debug, Clone)]
pub(crate) struct Refusal {
    pub(crate) message: String,
    pub(crate) retry_after_ms: u64,
    pub(crate) budget: bool,
    /// The store could not check a budget (and budgets fail closed): a 503, not a 429.
    pub(crate) unchecked: bool,
}

impl Refusal {
    /// The client's 429: names the limit, and says when to come back.
    pub(crate) fn error(&self) -> ApiError {
        if self.unchecked {
            return ApiError::new(ErrorKind::Overloaded, self.message.clone())
                .with_status(503)
                .with_code("budget_unavailable");
        }
        let code = if self.budget {
            "budget_exceeded"
        } else {
            "rate_limit_exceeded"
        };
        ApiError::new(ErrorKind::RateLimit, self.message.clone()).with_code(code)
    }

    pub(crate) fn retry_after_secs(&self) -> u64 {
        self.retry_after_ms.div_ceil(1000).max(1)
    }
}

fn usd(micros: u64) -> String {
    format!("${:.2}", micros as f64 / 1e6)
}

fn refusal(
    scope: &Scope,
    w: &Window,
    r: &Reserve,
    which: Exhausted,
    retry_after_ms: u64,
) -> Refusal {
    let per = w.period.name();
    let wait = retry_after_ms.div_ceil(1000).max(1);
    let message = match (scope.unit, which) {
        (Unit::Micros, _) => format!(
            "budget `{}.{}` ({} per {per}) is spent; it renews in {wait} s",
            scope.path,
            w.units_field,
            usd(w.max_units)
        ),
        (Unit::Tokens, Exhausted::Tokens) if r.tokens > r.max_tokens => format!(
            "this request (about {} tokens) is larger than the limit `{}.{}` ({} tokens per {per})",
            r.tokens, scope.path, w.units_field, w.max_units
        ),
        (Unit::Tokens, Exhausted::Tokens) => format!(
            "rate limit reached: `{}.{}` allows {} tokens per {per}; retry in {wait} s",
            scope.path, w.units_field, w.max_units
        ),
        (Unit::Tokens, Exhausted::Requests) => format!(
            "rate limit reached: `{}.{}` allows {} requests per {per}; retry in {wait} s",
            scope.path, w.requests_field, w.max_requests
        ),
    };
    Refusal {
        message,
        retry_after_ms,
        budget: scope.unit == Unit::Micros,
        unchecked: false,
    }
}

/// Reserves one request and `estimate` in every window of every scope. All or nothing: after a
/// refusal, what was taken is given back. A store that fails is reported and let through (like
/// the breaker: state trouble must not stop traffic).
pub(crate) async fn reserve<H: HttpClient, C: Clock, L: LogSink, S: StateStore>(
    inner: &Inner<H, C, L, S>,
    scopes: &[Scope],
    estimate: Amounts,
    now_ms: u64,
) -> (Result<Vec<Held>, Refusal>, Option<String>) {
    let mut wanted = Vec::new();
    for s in scopes {
        for w in &s.windows {
            let (start_ms, end_ms) = w.period.window(now_ms);
            let (requests, amount) = match s.unit {
                Unit::Tokens => (1, estimate.tokens),
                Unit::Micros => (0, estimate.micros),
            };
            let r = Reserve {
                start_ms,
                end_ms,
                requests,
                tokens: amount,
                max_requests: w.max_requests,
                max_tokens: w.max_units,
            };
            let key = format!("{}:{}", s.key, w.period.name());
            wanted.push((s, w, key, r, Command::Reserve(r)));
        }
    }
    let replies = join_all(
        wanted
            .iter()
            .map(|(_, _, key, _, cmd)| inner.store_apply(key, cmd, now_ms)),
    )
    .await;
    let mut held = Vec::new();
    let mut refused: Option<Refusal> = None;
    let mut store_error = None;
    for ((scope, w, key, r, _), reply) in wanted.iter().zip(replies) {
        match reply {
            Ok(Reply::Limited {
                which,
                retry_after_ms,
            }) => {
                // The longest wait wins: every window must have room again.
                if refused
                    .as_ref()
                    .is_none_or(|f| retry_after_ms > f.retry_after_ms)
                {
                    refused = Some(refusal(scope, w, r, which, retry_after_ms));
                }
            }
            Ok(_) => held.push(Held {
                key: key.clone(),
                start_ms: r.start_ms,
                end_ms: r.end_ms,
                requests: r.requests,
                amount: r.tokens,
                unit: scope.unit,
                cap: w.max_units,
                name: format!("{}.{}", scope.path, w.units_field),
            }),
            Err(e) => {
                if scope.unit == Unit::Micros && inner.cfg.server.budgets_fail_closed {
                    refused = Some(Refusal {
                        message: format!(
                            "budget `{}.{}` cannot be checked: the state store is unavailable ({e}); server.budgets_fail_closed is on",
                            scope.path, w.units_field
                        ),
                        retry_after_ms: 1_000,
                        budget: true,
                        unchecked: true,
                    });
                }
                store_error = Some(e.to_string());
            }
        }
    }
    match refused {
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

/// What admission decided for one target (a provider's credential and a model).
pub(crate) enum Admission {
    /// Go ahead; the target's reservations, to settle after the answer.
    Go(Vec<Held>),
    /// Its breaker is open (a trip or a cooldown) for this many ms more.
    Open(u64),
    /// One of its limits or budgets is spent.
    Limited(Refusal),
}

/// Admits one target in one store round trip: its breaker and its limits and budgets, in
/// parallel. An open breaker gives back what was reserved. A store that fails is reported
/// through `store_error` and let through: state trouble must never stop traffic.
pub(crate) async fn admit<H: HttpClient, C: Clock, L: LogSink, S: StateStore>(
    inner: &Inner<H, C, L, S>,
    p: &Provider,
    bkey: &str,
    model: &str,
    estimate: Amounts,
    now_ms: u64,
    mut store_error: impl FnMut(&str),
) -> Admission {
    let scopes = target_scopes(p, bkey, model);
    let admit_cmd = Command::Admit(inner.cfg.breaker.clone());
    let (admitted, (reserved, failed)) =
        futures_util::future::join(inner.store_apply(bkey, &admit_cmd, now_ms), async {
            if scopes.is_empty() {
                (Ok(Vec::new()), None)
            } else {
                reserve(inner, &scopes, estimate, now_ms).await
            }
        })
        .await;
    if let Some(e) = failed {
        store_error(&e);
    }
    match (admitted, reserved) {
        (Ok(Reply::Reject { retry_after_ms }), reserved) => {
            if let Ok(h) = reserved {
                give_back(inner, &h, now_ms).await;
            }
            Admission::Open(retry_after_ms)
        }
        (_, Err(f)) => Admission::Limited(f),
        (Ok(_), Ok(h)) => Admission::Go(h),
        (Err(e), Ok(h)) => {
            store_error(&e.to_string());
            Admission::Go(h)
        }
    }
}
