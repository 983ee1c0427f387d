//! `gateway.yaml`: schema, `${VAR}` interpolation, validation with file, path and reason.

use crate::Route;
use crate::template::UrlTemplate;
use gw_auth::Signer;
use gw_model::{Format, Operation};
use serde::Deserialize;
use serde_yaml::Value;
use std::collections::BTreeMap;

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

/// A named proxy key.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeySpec {
    /// Shown in logs instead of the key.
    pub name: String,
    /// The key (usually `${SOME_VAR}`).
    pub key: String,
}

/// How the gateway authenticates to a provider.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum AuthSpec {
    /// `Authorization: Bearer <key>`.
    Bearer {
        /// Environment variables to take the key from, first set wins.
        env: Vec<String>,
    },
    /// `<name>: <key>`.
    Header {
        /// Header name.
        name: String,
        /// Environment variables to take the key from, first set wins.
        env: Vec<String>,
    },
    /// `?<name>=<key>` on the URL.
    Query {
        /// Query parameter name.
        name: String,
        /// Environment variables to take the key from, first set wins.
        env: Vec<String>,
    },
    /// AWS SigV4 with `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY` and `AWS_SESSION_TOKEN` (a
    /// Lambda function's role provides them).
    AwsSigv4 {
        /// Service in the credential scope (`bedrock`).
        service: String,
        /// Region (`${AWS_REGION:-us-east-1}`).
        region: String,
    },
    /// No credentials (local servers).
    None,
}

impl AuthSpec {
    /// The variables an operator sets for this scheme, for messages.
    pub fn vars(&self) -> String {
        match self {
            Self::Bearer { env } | Self::Header { env, .. } | Self::Query { env, .. } => {
                env.join(" or ")
            }
            Self::AwsSigv4 { .. } => "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY".into(),
            Self::None => "its credentials".into(),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawProvider {
    format: Format,
    #[serde(default)]
    base_url: String,
    auth: AuthSpec,
    #[serde(default)]
    headers: BTreeMap<String, String>,
    #[serde(default)]
    models: Vec<String>,
    #[serde(default)]
    max_tokens_field: Option<String>,
    #[serde(default)]
    default_max_tokens: Option<u64>,
    #[serde(default)]
    paths: BTreeMap<String, String>,
    #[serde(default)]
    params: BTreeMap<String, String>,
}

/// Keys of a provider's `paths:`: an operation, and its streamed variant where it differs.
const PATH_KEYS: [&str; 3] = ["chat", "chat_stream", "count_tokens"];

/// A provider, resolved against the environment.
#[derive(Debug, Clone)]
pub struct Provider {
    /// Id (the key under `providers:`).
    pub id: String,
    /// Wire format.
    pub format: Format,
    /// Base URL without a trailing slash (after `<ID>_BASE_URL`); empty if unset.
    pub base_url: String,
    /// Auth scheme, as configured.
    pub auth: AuthSpec,
    /// Signs upstream requests; `Signer::None` also when the credential is missing.
    pub signer: Signer,
    /// The credential was found (or none is needed).
    pub has_credential: bool,
    /// Extra headers sent upstream.
    pub headers: Vec<(String, String)>,
    /// Models it serves (for listing and resolution).
    pub models: Vec<String>,
    /// OpenAI-format output-limit field.
    pub max_tokens_field: String,
    /// Anthropic-format default `max_tokens`.
    pub default_max_tokens: u64,
    /// Path template per `paths:` key (configured, else the format's default).
    paths: BTreeMap<&'static str, UrlTemplate>,
    /// Values for the templates' variables.
    pub params: BTreeMap<String, String>,
}

impl Provider {
    /// The name of the variable holding the base URL override.
    pub fn base_url_var(&self) -> String {
        format!(
            "{}_BASE_URL",
            self.id.to_ascii_uppercase().replace('-', "_")
        )
    }

    /// `None` when usable, else what the operator must set.
    pub fn missing(&self) -> Option<String> {
        if self.base_url.is_empty() {
            return Some(self.base_url_var());
        }
        (!self.has_credential).then(|| self.auth.vars())
    }

    /// Whether the provider serves `op` (its format has it, or its config gives a path).
    pub fn supports(&self, op: Operation) -> bool {
        self.paths.contains_key(path_key(op, false))
    }

    /// The full upstream URL of `op` for `model`; `None` when the provider does not serve it.
    pub fn url_for(&self, op: Operation, stream: bool, model: &str) -> Option<String> {
        let t = self.paths.get(path_key(op, stream))?;
        Some(format!(
            "{}{}",
            self.base_url,
            t.render(model, &self.params)
        ))
    }
}

fn path_key(op: Operation, stream: bool) -> &'static str {
    match (op, stream) {
        (Operation::Chat, false) => "chat",
        (Operation::Chat, true) => "chat_stream",
        (Operation::CountTokens, _) => "count_tokens",
    }
}

/// The provider's path templates: configured ones, else the format's (a configured `chat` also
/// serves streams unless `chat_stream` is given).
fn path_templates(
    format: Format,
    configured: &BTreeMap<String, String>,
    params: &BTreeMap<String, String>,
) -> Result<BTreeMap<&'static str, UrlTemplate>, (String, String)> {
    for k in configured.keys() {
        if !PATH_KEYS.contains(&k.as_str()) {
            return Err((
                format!("paths.{k}"),
                format!("unknown operation (one of {})", PATH_KEYS.join(", ")),
            ));
        }
    }
    let mut out = BTreeMap::new();
    for (key, op, stream) in [
        ("chat", Operation::Chat, false),
        ("chat_stream", Operation::Chat, true),
        ("count_tokens", Operation::CountTokens, false),
    ] {
        let text = configured
            .get(key)
            .or_else(|| {
                (key == "chat_stream")
                    .then(|| configured.get("chat"))
                    .flatten()
            })
            .map(String::as_str)
            .or_else(|| gw_translate::wire::default_path(format, op, stream));
        if let Some(text) = text {
            let t = UrlTemplate::parse(text, params).map_err(|r| (format!("paths.{key}"), r))?;
            out.insert(key, t);
        }
    }
    Ok(out)
}

/// The signer for `auth`, if its credential is in the environment.
fn signer(auth: &AuthSpec, env: &dyn Fn(&str) -> Option<String>) -> Option<Signer> {
    let first = |vars: &[String]| vars.iter().find_map(|v| env(v).filter(|s| !s.is_empty()));
    Some(match auth {
        AuthSpec::None => Signer::None,
        AuthSpec::Bearer { env } => Signer::Bearer(first(env)?),
        AuthSpec::Header { name, env } => Signer::Header {
            name: name.clone(),
            value: first(env)?,
        },
        AuthSpec::Query { name, env } => Signer::Query {
            name: name.clone(),
            value: first(env)?,
        },
        AuthSpec::AwsSigv4 { service, region } => Signer::SigV4 {
            creds: gw_auth::sigv4::Credentials {
                access_key_id: env("AWS_ACCESS_KEY_ID").filter(|s| !s.is_empty())?,
                secret_access_key: env("AWS_SECRET_ACCESS_KEY").filter(|s| !s.is_empty())?,
                session_token: env("AWS_SESSION_TOKEN").filter(|s| !s.is_empty()),
            },
            region: region.clone(),
            service: service.clone(),
        },
    })
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
            let rp: RawProvider = serde_path_to_error::deserialize(v).map_err(|e| {
                let p = format!("{path}.{}", e.path());
                err(p.trim_end_matches(".."), e.into_inner().to_string())
            })?;
            let paths = path_templates(rp.format, &rp.paths, &rp.params)
                .map_err(|(p, r)| err(&format!("{path}.{p}"), r))?;
            let mut p = Provider {
                id: id.clone(),
                format: rp.format,
                base_url: rp.base_url,
                signer: Signer::None,
                has_credential: false,
                auth: rp.auth,
                paths,
                params: rp.params,
                headers: rp.headers.into_iter().collect(),
                models: rp.models,
                max_tokens_field: rp.max_tokens_field.unwrap_or_else(|| "max_tokens".into()),
                default_max_tokens: rp
                    .default_max_tokens
                    .unwrap_or(raw.server.default_max_tokens),
            };
            if let Some(url) = env(&p.base_url_var()).filter(|u| !u.is_empty()) {
                p.base_url = url;
            }
            p.base_url = p.base_url.trim_end_matches('/').to_owned();
            if !(p.base_url.is_empty()
                || p.base_url.starts_with("http://")
                || p.base_url.starts_with("https://"))
            {
                return Err(err(
                    &format!("{path}.base_url"),
                    format!("`{}` is not an http(s) URL", p.base_url),
                ));
            }
            if !["max_tokens", "max_completion_tokens"].contains(&p.max_tokens_field.as_str()) {
                return Err(err(
                    &format!("{path}.max_tokens_field"),
                    "must be max_tokens or max_completion_tokens".into(),
                ));
            }
            match &p.auth {
                AuthSpec::Bearer { env: vars }
                | AuthSpec::Header { env: vars, .. }
                | AuthSpec::Query { env: vars, .. }
                    if vars.is_empty() =>
                {
                    return Err(err(
                        &format!("{path}.auth.env"),
                        "name at least one environment variable".into(),
                    ));
                }
                AuthSpec::Header { name, .. } | AuthSpec::Query { name, .. }
                    if name.is_empty()
                        || http::HeaderName::from_bytes(name.as_bytes()).is_err() =>
                {
                    return Err(err(
                        &format!("{path}.auth.name"),
                        format!("`{name}` is not a valid header or parameter name"),
                    ));
                }
                AuthSpec::AwsSigv4 { service, region }
                    if service.is_empty() || region.is_empty() =>
                {
                    return Err(err(
                        &format!("{path}.auth"),
                        "aws_sigv4 needs a service and a region".into(),
                    ));
                }
                _ => {}
            }
            if let Some(s) = signer(&p.auth, env) {
                p.signer = s;
                p.has_credential = true;
            }
            providers.push(p);
        }

        let mut routes = Vec::new();
        for (k, v) in raw.routes {
            let pattern = match &k {
                Value::String(s) => s.clone(),
                other => serde_yaml::to_string(other)
                    .unwrap_or_default()
                    .trim()
                    .to_owned(),
            };
            let path = format!("routes.{pattern}");
            let items = match v {
                Value::Sequence(s) => s,
                Value::String(s) => vec![Value::String(s)],
                _ => {
                    return Err(err(
                        &path,
                        "expected a list of targets (\"provider/model\" or \"provider\")".into(),
                    ));
                }
            };
            if items.is_empty() {
                return Err(err(&path, "a route needs at least one target".into()));
            }
            let mut targets = Vec::new();
            for (i, item) in items.iter().enumerate() {
                let tp = format!("{path}[{i}]");
                let (prov, model) = match item {
                    Value::String(s) => match s.split_once('/') {
                        Some((p, m)) => (p.to_owned(), Some(m.to_owned())),
                        None => (s.clone(), None),
                    },
                    Value::Mapping(m) => {
                        let g = |key: &str| m.get(key).and_then(Value::as_str).map(str::to_owned);
                        (
                            g("provider").ok_or_else(|| err(&tp, "missing `provider`".into()))?,
                            g("model"),
                        )
                    }
                    _ => {
                        return Err(err(
                            &tp,
                            "expected \"provider/model\", \"provider\" or {provider, model}".into(),
                        ));
                    }
                };
                let idx = providers
                    .iter()
                    .position(|p: &Provider| p.id == prov)
                    .ok_or_else(|| err(&tp, format!("unknown provider `{prov}`")))?;
                if model.as_deref() == Some("") {
                    return Err(err(&tp, "empty model name".into()));
                }
                targets.push((idx, model));
            }
            routes.push(Route {
                is_glob: pattern.contains(['*', '?']),
                pattern,
                targets,
            });
        }

        let mut keys = Vec::new();
        if let Some(k) = env("GATEWAY_PROXY_KEY").filter(|k| !k.is_empty()) {
            keys.push(KeySpec {
                name: "default".into(),
                key: k,
            });
        }
        for (i, k) in raw.keys.into_iter().enumerate() {
            if k.name.is_empty() {
                return Err(err(&format!("keys[{i}].name"), "must not be empty".into()));
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
        Ok(Self {
            server: raw.server,
            timeouts: raw.timeouts,
            keys,
            providers,
            routes,
            breaker: raw.breaker,
        })
    }

    /// Every secret the gateway holds (provider credentials and proxy keys), for scrubbing.
    pub fn secrets(&self) -> Vec<String> {
        self.providers
            .iter()
            .flat_map(|p| p.signer.secrets())
            .chain(self.keys.iter().map(|k| k.key.clone()))
            .collect()
    }
}

/// Replaces `${VAR}` and `${VAR:-default}` in every string scalar.
fn interpolate(
    v: &mut Value,
    path: &str,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<(), (String, String)> {
    match v {
        Value::String(s) if s.contains("${") => {
            let mut out = String::with_capacity(s.len());
            let mut rest = s.as_str();
            while let Some(i) = rest.find("${") {
                out.push_str(&rest[..i]);
                let after = &rest[i + 2..];
                let end = after
                    .find('}')
                    .ok_or_else(|| (path.to_owned(), format!("unterminated `${{` in \"{s}\"")))?;
                let expr = &after[..end];
                let (name, default) = match expr.split_once(":-") {
                    Some((n, d)) => (n, Some(d)),
                    None => (expr, None),
                };
                if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                    return Err((
                        path.to_owned(),
                        format!("`${{{expr}}}` is not a valid variable reference"),
                    ));
                }
                match (env(name).filter(|x| !x.is_empty()), default) {
                    (Some(val), _) => out.push_str(&val),
                    (None, Some(d)) => out.push_str(d),
                    (None, None) => {
                        return Err((
                            path.to_owned(),
                            format!(
                                "environment variable {name} is not set (write `${{{name}:-}}` to make it optional)"
                            ),
                        ));
                    }
                }
                rest = &after[end + 1..];
            }
            out.push_str(rest);
            *s = out;
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
