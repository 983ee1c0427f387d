//! `gateway.yaml`: schema, `${VAR}` interpolation, validation with file, path and reason.

use crate::Route;
use crate::provider::Provider;
use serde::Deserialize;
use serde_yaml::Value;

/// A configuration error: where (file and path) and why.
#[derive(Debug, thiserror::Error)]
#[error("{file}: {path}: {reason}")]
pub struct ConfigError {
    /// The file (or source name) the YAML came from.
    pub file: String,
    /// Dotted path to the offending node (`.` for the document).
    pub path: String,
    /// What is wrong.
    pub reason: String,
}

/// Server-wide limits: what one client may make the gateway hold, and what one upstream may.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Server {
    /// Largest accepted request body.
    pub max_body_bytes: usize,
    /// `max_tokens` for Anthropic-format upstreams when the client gives none.
    pub default_max_tokens: u64,
    /// The request line and headers must arrive within this (local server).
    pub header_read_timeout_ms: u64,
    /// The whole body must arrive within this once the headers are in; else 408.
    pub body_read_timeout_ms: u64,
    /// A keep-alive connection with no request in flight is closed after this much silence.
    pub idle_timeout_ms: u64,
    /// Open client connections at most (local server); more get a 503 and are closed.
    pub max_connections: usize,
    /// Messages in one request at most.
    pub max_messages: usize,
    /// Longest model name.
    pub max_model_bytes: usize,
    /// Deepest JSON nesting in a request body.
    pub max_json_depth: usize,
    /// Longest upstream stream line or event.
    pub max_upstream_event_bytes: usize,
    /// `/metrics` without the admin key.
    pub public_metrics: bool,
    /// Refuse (503) a request whose budget the state store cannot check, instead of letting it
    /// through uncounted.
    pub budgets_fail_closed: bool,
    /// Largest non-streamed upstream body.
    pub max_upstream_body_bytes: usize,
}

impl Default for Server {
    fn default() -> Self {
        Self {
            max_body_bytes: 10 * 1024 * 1024,
            default_max_tokens: 4096,
            header_read_timeout_ms: 10_000,
            body_read_timeout_ms: 60_000,
            idle_timeout_ms: 60_000,
            max_connections: 4096,
            max_messages: 10_000,
            max_model_bytes: 256,
            max_json_depth: 64,
            max_upstream_event_bytes: 16 * 1024 * 1024,
            public_metrics: false,
            budgets_fail_closed: false,
            max_upstream_body_bytes: 32 * 1024 * 1024,
        }
    }
}

/// Timeouts in milliseconds.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Timeouts {
    /// Connect + response head + first body chunk, per target.
    pub per_attempt_ms: u64,
    /// All attempts of one request, until the first byte.
    pub total_ms: u64,
    /// Longest silence inside a stream.
    pub stream_idle_ms: u64,
    /// Longest wait for the state store per command; past it the gateway fails open.
    pub store_ms: u64,
}

impl Default for Timeouts {
    fn default() -> Self {
        Self {
            per_attempt_ms: 60_000,
            total_ms: 180_000,
            stream_idle_ms: 300_000,
            store_ms: 1_000,
        }
    }
}

/// Active health checks: a probe of every configured provider credential on a schedule.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HealthChecks {
    /// Seconds between rounds (the local server's own timer); 0: no timer. A failed probe
    /// keeps its credential out of traffic on every instance for this long.
    pub interval_s: u64,
    /// Longest wait for one probe.
    pub timeout_ms: u64,
}

impl Default for HealthChecks {
    fn default() -> Self {
        Self {
            interval_s: 0,
            timeout_ms: 10_000,
        }
    }
}

/// A named proxy key.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeySpec {
    /// Shown in logs instead of the key.
    pub name: String,
    /// The key (usually `${SOME_VAR}`).
    pub key: String,
    /// Requests and tokens this key may use.
    #[serde(default)]
    pub limits: crate::Limits,
    /// What this key may spend.
    #[serde(default)]
    pub budget: crate::Budget,
    /// Models it may ask for (names or globs, as requested); empty: any.
    #[serde(default)]
    pub models: Vec<String>,
    /// When it stops working: `YYYY-MM-DD` (midnight UTC) or `YYYY-MM-DDTHH:MM:SSZ`.
    #[serde(default)]
    pub expires: Option<String>,
    /// `expires` as unix ms.
    #[serde(skip)]
    pub expires_ms: Option<u64>,
}

impl KeySpec {
    /// A key with a name and nothing else.
    pub fn plain(name: &str, key: String) -> Self {
        Self {
            name: name.to_owned(),
            key,
            limits: crate::Limits::default(),
            budget: crate::Budget::default(),
            models: Vec::new(),
            expires: None,
            expires_ms: None,
        }
    }

    /// Whether it may ask for `model`.
    pub fn allows(&self, model: &str) -> bool {
        self.models.is_empty()
            || self
                .models
                .iter()
                .any(|p| p == model || crate::glob::matches(p, model))
    }
}

/// The validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// Server limits.
    pub server: Server,
    /// Timeouts.
    pub timeouts: Timeouts,
    /// Proxy keys (name, key); `GATEWAY_PROXY_KEY` comes first as `default`.
    pub keys: Vec<KeySpec>,
    /// Providers in file order.
    pub providers: Vec<Provider>,
    /// Routes in file order.
    pub routes: Vec<Route>,
    /// Circuit breaker thresholds, per provider and credential.
    pub breaker: gw_state::BreakerConfig,
    /// Prices per model (shipped table and `prices:`).
    pub prices: crate::Prices,
    /// Budget alerts.
    pub alerts: crate::Alerts,
    /// `GATEWAY_ADMIN_KEY`: reads `/metrics` and every key's usage.
    pub admin_key: Option<String>,
    /// Active health checks.
    pub health_checks: HealthChecks,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    #[serde(default)]
    server: Server,
    #[serde(default)]
    timeouts: Timeouts,
    #[serde(default)]
    keys: Vec<KeySpec>,
    #[serde(default)]
    providers: serde_yaml::Mapping,
    #[serde(default)]
    routes: serde_yaml::Mapping,
    #[serde(default)]
    breaker: gw_state::BreakerConfig,
    #[serde(default)]
    prices: std::collections::HashMap<String, crate::Price>,
    #[serde(default)]
    alerts: crate::Alerts,
    #[serde(default)]
    health_checks: HealthChecks,
}

const ZERO: &str = "must be at least 1 (leave it out for no limit)";

/// The first limit set to zero, by field name.
fn check_limits(l: &crate::Limits) -> Result<(), &'static str> {
    for f in ["rpm", "tpm", "tokens_per_day", "tokens_per_month"] {
        if l.value(f) == Some(0) {
            return Err(f);
        }
    }
    Ok(())
}

impl Config {
    /// Parses and validates `yaml` (named `file` in errors), reading variables through `env`.
    pub fn load(
        yaml: &str,
        file: &str,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Self, ConfigError> {
        let err = |path: &str, reason: String| ConfigError {
            file: file.to_owned(),
            path: path.to_owned(),
            reason,
        };
        let mut doc: Value =
            serde_yaml::from_str(yaml).map_err(|e| err(".", format!("invalid YAML: {e}")))?;
        if doc.is_null() {
            doc = Value::Mapping(Default::default());
        }
        interpolate(&mut doc, "", env).map_err(|(p, r)| err(&p, r))?;
        let raw: RawConfig = serde_path_to_error::deserialize(doc).map_err(|e| {
            let p = e.path().to_string();
            err(&p, e.into_inner().to_string())
        })?;

        let mut providers = Vec::new();
        for (k, v) in raw.providers {
            let id = k
                .as_str()
                .ok_or_else(|| err("providers", "provider ids must be strings".into()))?
                .to_owned();
            let path = format!("providers.{id}");
            if id.is_empty()
                || !id
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
            {
                return Err(err(
                    &path,
                    "provider ids may contain only letters, digits, `-` and `_`".into(),
                ));
            }
            let p = crate::provider::build(&id, v, raw.server.default_max_tokens, env)
                .map_err(|(sub, reason)| err(&format!("{path}{sub}"), reason))?;
            providers.push(p);
        }

        share_token_sources(&mut providers);
        for p in &providers {
            for (glob, to) in &p.delegate {
                if !providers.iter().any(|o| &o.id == to && o.id != p.id) {
                    return Err(err(
                        &format!("providers.{}.delegate.{glob}", p.id),
                        format!("`{to}` is not another provider"),
                    ));
                }
            }
            check_limits(&p.limits)
                .map_err(|f| err(&format!("providers.{}.limits.{f}", p.id), ZERO.into()))?;
            for (m, l) in &p.model_limits {
                check_limits(l).map_err(|f| {
                    err(
                        &format!("providers.{}.model_limits.{m}.{f}", p.id),
                        ZERO.into(),
                    )
                })?;
            }
        }

        let mut routes = Vec::new();
        for (k, v) in raw.routes {
            routes.push(crate::routes::parse(k, v, &providers).map_err(|(p, r)| err(&p, r))?);
        }

        let mut keys = Vec::new();
        if let Some(k) = env("GATEWAY_PROXY_KEY").filter(|k| !k.is_empty()) {
            keys.push(KeySpec::plain("default", k));
        }
        for (i, k) in raw.keys.into_iter().enumerate() {
            if k.name.is_empty() {
                return Err(err(&format!("keys[{i}].name"), "must not be empty".into()));
            }
            // Limits and usage are kept per key name: two keys must not share one.
            if keys.iter().any(|o: &KeySpec| o.name == k.name) {
                return Err(err(
                    &format!("keys[{i}].name"),
                    format!(
                        "`{}` is used twice (or is `default`, the name of GATEWAY_PROXY_KEY)",
                        k.name
                    ),
                ));
            }
            check_limits(&k.limits)
                .map_err(|f| err(&format!("keys[{i}].limits.{f}"), ZERO.into()))?;
            let mut k = k;
            if let Some(e) = &k.expires {
                k.expires_ms = Some(crate::limits::parse_utc(e).ok_or_else(|| {
                    err(
                        &format!("keys[{i}].expires"),
                        format!("`{e}` is not YYYY-MM-DD or YYYY-MM-DDTHH:MM:SSZ"),
                    )
                })?);
            }
            if !k.key.is_empty() {
                keys.push(k);
            }
        }
        let sv = &raw.server;
        for (name, v) in [
            ("max_body_bytes", sv.max_body_bytes as u64),
            ("header_read_timeout_ms", sv.header_read_timeout_ms),
            ("body_read_timeout_ms", sv.body_read_timeout_ms),
            ("idle_timeout_ms", sv.idle_timeout_ms),
            ("max_connections", sv.max_connections as u64),
            ("max_messages", sv.max_messages as u64),
            ("max_model_bytes", sv.max_model_bytes as u64),
            ("max_json_depth", sv.max_json_depth as u64),
            (
                "max_upstream_event_bytes",
                sv.max_upstream_event_bytes as u64,
            ),
            ("max_upstream_body_bytes", sv.max_upstream_body_bytes as u64),
        ] {
            if v == 0 {
                return Err(err(
                    &format!("server.{name}"),
                    "must be greater than 0".into(),
                ));
            }
        }
        if raw.timeouts.per_attempt_ms == 0 || raw.timeouts.total_ms == 0 {
            return Err(err("timeouts", "timeouts must be greater than 0".into()));
        }
        let budgets = keys
            .iter()
            .enumerate()
            .map(|(i, k)| (format!("keys[{i}].budget"), k.budget))
            .chain(
                providers
                    .iter()
                    .map(|p| (format!("providers.{}.budget", p.id), p.budget)),
            );
        for (path, b) in budgets {
            for (field, v) in [("daily_usd", b.daily_usd), ("monthly_usd", b.monthly_usd)] {
                if v.is_some_and(|v| !(v.is_finite() && v > 0.0)) {
                    return Err(err(
                        &format!("{path}.{field}"),
                        "must be a positive amount".into(),
                    ));
                }
            }
        }
        for (m, p) in &raw.prices {
            let all = [Some(p.input), Some(p.output), p.cache_read, p.cache_write];
            if all
                .into_iter()
                .flatten()
                .any(|v| !(v.is_finite() && v >= 0.0))
            {
                return Err(err(
                    &format!("prices.{m}"),
                    "prices must be amounts of 0 or more".into(),
                ));
            }
        }
        if let Some(t) = raw
            .alerts
            .thresholds
            .iter()
            .find(|t| !(1..=1000).contains(*t))
        {
            return Err(err(
                "alerts.thresholds",
                format!("{t} is not a percentage from 1 to 1000"),
            ));
        }
        let hook = &raw.alerts.webhook_url;
        if !(hook.is_empty() || hook.starts_with("http://") || hook.starts_with("https://")) {
            return Err(err(
                "alerts.webhook_url",
                "must be an http(s) URL or empty".into(),
            ));
        }
        Ok(Self {
            server: raw.server,
            timeouts: raw.timeouts,
            keys,
            providers,
            routes,
            breaker: raw.breaker,
            prices: crate::Prices::with(raw.prices),
            admin_key: env("GATEWAY_ADMIN_KEY").filter(|k| !k.is_empty()),
            health_checks: raw.health_checks,
            alerts: raw.alerts,
        })
    }

    /// Every secret the gateway holds (provider credentials and proxy keys), for scrubbing.
    pub fn secrets(&self) -> Vec<String> {
        self.providers
            .iter()
            // `signer` is the first credential (or holds none).
            .flat_map(|p| p.credentials.iter().flat_map(|c| c.signer.secrets()))
            .chain(self.keys.iter().map(|k| k.key.clone()))
            .chain(self.admin_key.clone())
            .collect()
    }
}

/// One string's `${...}` expansions, as the shell does them: `${VAR}` (an error if unset),
/// `${VAR:-word}` (`word` if unset or empty), `${VAR:+word}` (`word` if set, else nothing). The
/// words may hold expansions themselves: `${RES:+https://${RES}.openai.azure.com}`.
fn expand(s: &str, env: &dyn Fn(&str) -> Option<String>) -> Result<String, String> {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find("${") {
        out.push_str(&rest[..i]);
        let after = &rest[i + 2..];
        let mut depth = 1;
        let mut end = None;
        let bytes = after.as_bytes();
        let mut j = 0;
        while j < bytes.len() {
            if bytes[j] == b'$' && bytes.get(j + 1) == Some(&b'{') {
                depth += 1;
                j += 1;
            } else if bytes[j] == b'}' {
                depth -= 1;
                if depth == 0 {
                    end = Some(j);
                    break;
                }
            }
            j += 1;
        }
        let end = end.ok_or_else(|| format!("unterminated `${{` in \"{s}\""))?;
        let expr = &after[..end];
        let (name, op, word) = match expr.find(":-").into_iter().chain(expr.find(":+")).min() {
            Some(k) => (&expr[..k], &expr[k..k + 2], Some(&expr[k + 2..])),
            None => (expr, "", None),
        };
        if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            return Err(format!("`${{{expr}}}` is not a valid variable reference"));
        }
        let val = env(name).filter(|x| !x.is_empty());
        match (val, op, word) {
            (Some(_), ":+", Some(w)) => out.push_str(&expand(w, env)?),
            (None, ":+", _) => {}
            (Some(v), _, _) => out.push_str(&v),
            (None, _, Some(w)) => out.push_str(&expand(w, env)?),
            (None, _, None) => {
                return Err(format!(
                    "environment variable {name} is not set (write `${{{name}:-}}` to make it optional)"
                ));
            }
        }
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

/// Providers that use one credential the same way share one token source, so one exchange
/// serves them all (Vertex's Gemini and Claude entries, one service account).
fn share_token_sources(providers: &mut [crate::Provider]) {
    let mut seen: Vec<gw_auth::Signer> = Vec::new();
    for p in providers.iter_mut() {
        for c in &mut p.credentials {
            let Some(src) = c.signer.token_source() else {
                continue;
            };
            match seen
                .iter()
                .find(|s| s.token_source().is_some_and(|o| o.same_exchange(src)))
            {
                Some(s) => c.signer = s.clone(),
                None => seen.push(c.signer.clone()),
            }
        }
        if let Some(c) = p.credentials.first() {
            p.signer = c.signer.clone();
        }
    }
}

/// Replaces `${VAR}`, `${VAR:-default}` and `${VAR:+alternative}` in every string scalar.
fn interpolate(
    v: &mut Value,
    path: &str,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<(), (String, String)> {
    match v {
        Value::String(s) if s.contains("${") => {
            *s = expand(s, env).map_err(|r| (path.to_owned(), r))?;
        }
        Value::Sequence(seq) => {
            for (i, x) in seq.iter_mut().enumerate() {
                interpolate(x, &format!("{path}[{i}]"), env)?;
            }
        }
        Value::Mapping(m) => {
            for (k, x) in m.iter_mut() {
                let key = k.as_str().unwrap_or("?");
                let p = if path.is_empty() {
                    key.to_owned()
                } else {
                    format!("{path}.{key}")
                };
                interpolate(x, &p, env)?;
            }
        }
        _ => {}
    }
    Ok(())
}
