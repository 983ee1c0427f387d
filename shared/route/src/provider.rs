//! Providers: format, URL shape and credentials, from YAML and the environment. Adding a
//! provider of a known format is an entry in `providers:`, never code.

use crate::template::UrlTemplate;
use gw_auth::Signer;
use gw_model::{Format, Operation};
use gw_translate::embed::EmbedWire;
use serde::Deserialize;
use serde_yaml::Value;
use std::collections::BTreeMap;

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
    /// Azure AD (Entra ID) client credentials from the Azure SDKs' variables: `AZURE_TENANT_ID`,
    /// `AZURE_CLIENT_ID`, `AZURE_CLIENT_SECRET` (and `AZURE_AUTHORITY_HOST`).
    AzureAd {
        /// The token's scope.
        #[serde(default = "azure_scope")]
        scope: String,
    },
    /// A Google service account: its key file's JSON, or (where the runtime reads files) its
    /// path, in the first of `env` that is set.
    GoogleServiceAccount {
        /// Variables holding the key file or its path.
        env: Vec<String>,
        /// The token's scope.
        #[serde(default = "google_scope")]
        scope: String,
    },
    /// GitHub Copilot: a GitHub OAuth token (from `gateway auth copilot`, or an editor's) in the
    /// first of `env` that is set, exchanged for Copilot tokens.
    GithubCopilot {
        /// Variables holding the GitHub token.
        env: Vec<String>,
    },
    /// No credentials (local servers).
    None,
}

fn azure_scope() -> String {
    "https://cognitiveservices.azure.com/.default".into()
}

fn google_scope() -> String {
    "https://www.googleapis.com/auth/cloud-platform".into()
}

impl AuthSpec {
    /// The same scheme reading one variable.
    fn with_env(&self, var: &str) -> Self {
        let env = vec![var.to_owned()];
        match self {
            Self::Bearer { .. } => Self::Bearer { env },
            Self::Header { name, .. } => Self::Header {
                name: name.clone(),
                env,
            },
            Self::Query { name, .. } => Self::Query {
                name: name.clone(),
                env,
            },
            other => other.clone(),
        }
    }

    /// The variables an operator sets for this scheme, for messages.
    pub fn vars(&self) -> String {
        match self {
            Self::Bearer { env } | Self::Header { env, .. } | Self::Query { env, .. } => {
                env.join(" or ")
            }
            Self::AwsSigv4 { .. } => "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY".into(),
            Self::AzureAd { .. } => {
                "AZURE_TENANT_ID, AZURE_CLIENT_ID and AZURE_CLIENT_SECRET".into()
            }
            Self::GoogleServiceAccount { env, .. } | Self::GithubCopilot { env } => {
                env.join(" or ")
            }
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
    /// More variables that override `base_url` (after `<ID>_BASE_URL`), e.g. the AWS SDKs'.
    #[serde(default)]
    base_url_env: Vec<String>,
    auth: AuthOneOrMore,
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
    #[serde(default)]
    limits: crate::Limits,
    #[serde(default)]
    model_limits: BTreeMap<String, crate::Limits>,
    #[serde(default)]
    pool: Option<RawPool>,
    #[serde(default)]
    budget: crate::Budget,
    /// Top-level body fields set (or, with `null`, removed) on every request sent.
    #[serde(default)]
    body: serde_json::Map<String, serde_json::Value>,
    /// Models (globs) that another provider entry serves: `{"claude-*": vertex-claude}`.
    #[serde(default)]
    delegate: BTreeMap<String, String>,
    /// How it is asked for embeddings, when not its format's way (Vertex: `vertex_predict`).
    #[serde(default)]
    embed_wire: Option<EmbedWire>,
    /// Whether `/providers/{id}/...` forwards to its native API.
    #[serde(default)]
    passthrough: bool,
}

/// More credentials of the provider's auth scheme, each from its own variable.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPool {
    env: Vec<String>,
    #[serde(default)]
    strategy: PoolStrategy,
}

/// Which credential of a pool a request tries first (the others follow, in order).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PoolStrategy {
    /// The next one for each request (per instance), spreading the load.
    #[default]
    RoundRobin,
    /// Always the first that is usable: the others are spares.
    FillFirst,
}

/// One credential of a provider: the variable it came from, and what signs with it.
#[derive(Debug, Clone)]
pub struct Credential {
    /// The environment variable (named in logs; the value never is).
    pub var: String,
    /// Signs requests with it.
    pub signer: Signer,
    /// `gw_auth::fingerprint` of its identity, computed once: state keys name it per request.
    pub fingerprint: Option<String>,
}

impl Credential {
    fn new(var: String, signer: Signer) -> Self {
        let fingerprint = signer.identity().map(gw_auth::fingerprint);
        Self {
            var,
            signer,
            fingerprint,
        }
    }
}

/// One auth scheme, or several: the first whose credential is set is used.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum AuthOneOrMore {
    One(AuthSpec),
    More(Vec<AuthSpec>),
}

/// Keys of a provider's `paths:`: an operation, and its streamed variant where it differs.
const PATH_KEYS: [&str; 7] = [
    "chat",
    "chat_stream",
    "count_tokens",
    "responses",
    "embeddings",
    "completions",
    "probe",
];

/// The health probe's default path: the format's free model list, where it has one.
fn default_probe(format: Format) -> Option<&'static str> {
    match format {
        Format::OpenAi | Format::Gemini => Some("/models"),
        Format::Anthropic | Format::Cohere => Some("/v1/models"),
        Format::Replicate => Some("/account"),
        Format::Bedrock | Format::Responses => None,
    }
}

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
    /// With several schemes and none configured: every scheme's variables.
    missing_vars: Option<String>,
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
    /// Every usable credential: the `auth` one first, then the pool's that are set. Each has its
    /// own breaker, cooldown and limits.
    pub credentials: Vec<Credential>,
    /// How requests pick among `credentials`.
    pub pool_strategy: PoolStrategy,
    /// Limits on everything sent with one of this provider's credentials.
    pub limits: crate::Limits,
    /// Limits per upstream model.
    pub model_limits: BTreeMap<String, crate::Limits>,
    /// What may be spent with this provider (all its credentials together).
    pub budget: crate::Budget,
    /// Body fields to set (raw JSON) or remove (`None`) on every request.
    pub body_patches: Vec<(String, Option<String>)>,
    /// Model globs another provider serves, by that provider's id (resolved by the config).
    pub delegate: Vec<(String, String)>,
    /// How it is asked for embeddings (`None`: it has none).
    pub embed_wire: Option<EmbedWire>,
    /// `/providers/{id}/...` forwards to its native API.
    pub passthrough: bool,
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
        (!self.has_credential).then(|| {
            self.missing_vars
                .clone()
                .unwrap_or_else(|| self.auth.vars())
        })
    }

    /// The fingerprint of `signer`'s identity (`None`: it has none), from the credential it
    /// belongs to when it is one of this provider's, so no request hashes a key again.
    pub fn fingerprint_of(&self, signer: &Signer) -> Option<std::borrow::Cow<'_, str>> {
        let id = signer.identity()?;
        let known = self
            .credentials
            .iter()
            .find(|c| c.signer.identity() == Some(id))
            .and_then(|c| c.fingerprint.as_deref());
        Some(match known {
            Some(f) => std::borrow::Cow::Borrowed(f),
            None => std::borrow::Cow::Owned(gw_auth::fingerprint(id)),
        })
    }

    /// The signer of credential `i` (the main one when out of range, e.g. none configured).
    pub fn signer_at(&self, i: usize) -> &Signer {
        self.credentials.get(i).map_or(&self.signer, |c| &c.signer)
    }

    /// The health probe's URL (`paths.probe`, else the format's model list), if any.
    pub fn probe_url(&self) -> Option<String> {
        let t = self.paths.get("probe")?;
        Some(format!("{}{}", self.base_url, t.render("", &self.params)))
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
        (Operation::Responses, _) => "responses",
        (Operation::Embeddings, _) => "embeddings",
        (Operation::Completions, _) => "completions",
    }
}

/// The provider's path templates: configured ones, else the format's (a configured `chat` also
/// serves streams unless `chat_stream` is given).
fn path_templates(
    format: Format,
    embed: Option<EmbedWire>,
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
        ("responses", Operation::Responses, false),
        ("embeddings", Operation::Embeddings, false),
        ("completions", Operation::Completions, false),
    ] {
        let text = configured
            .get(key)
            .or_else(|| {
                (key == "chat_stream")
                    .then(|| configured.get("chat"))
                    .flatten()
            })
            .map(String::as_str)
            .or_else(|| match op {
                Operation::Embeddings => embed.map(EmbedWire::default_path),
                _ => gw_translate::wire::default_path(format, op, stream),
            });
        // An empty path: the provider does not serve it (its format's default does not apply).
        if let Some(text) = text.filter(|t| !t.is_empty()) {
            let t = UrlTemplate::parse(text, params).map_err(|r| (format!("paths.{key}"), r))?;
            out.insert(key, t);
        }
    }
    if let Some(text) = configured
        .get("probe")
        .map(String::as_str)
        .or_else(|| default_probe(format))
        .filter(|t| !t.is_empty())
    {
        let t = UrlTemplate::parse(text, params).map_err(|r| ("paths.probe".to_owned(), r))?;
        out.insert("probe", t);
    }
    Ok(out)
}

/// The signer for `auth`, if its credential is in the environment; an error for a credential
/// that is set but unusable (a key file that does not parse).
fn signer(auth: &AuthSpec, env: &dyn Fn(&str) -> Option<String>) -> Result<Option<Signer>, String> {
    match auth {
        AuthSpec::AzureAd { scope } => Ok(crate::token_auth::azure_ad(scope, env)),
        AuthSpec::GoogleServiceAccount { env: vars, scope } => {
            crate::token_auth::google(vars, scope, env)
        }
        AuthSpec::GithubCopilot { env: vars } => Ok(crate::token_auth::github_copilot(vars, env)),
        _ => Ok(static_signer(auth, env)),
    }
}

/// Signers whose credential is the variable's value itself.
fn static_signer(auth: &AuthSpec, env: &dyn Fn(&str) -> Option<String>) -> Option<Signer> {
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
        AuthSpec::AzureAd { .. }
        | AuthSpec::GoogleServiceAccount { .. }
        | AuthSpec::GithubCopilot { .. } => return None,
    })
}

/// Builds provider `id` from its YAML node; the error is (path below the provider, reason).
pub(crate) fn build(
    id: &str,
    v: Value,
    default_max_tokens: u64,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Provider, (String, String)> {
    let rp: RawProvider = serde_path_to_error::deserialize(v).map_err(|e| {
        let p = format!(".{}", e.path());
        (
            p.trim_end_matches("..").trim_end_matches('.').to_owned(),
            e.into_inner().to_string(),
        )
    })?;
    let embed_wire = rp.embed_wire.or_else(|| EmbedWire::of(rp.format));
    let paths = path_templates(rp.format, embed_wire, &rp.paths, &rp.params)
        .map_err(|(p, r)| (format!(".{p}"), r))?;
    let mut p = Provider {
        id: id.to_owned(),
        format: rp.format,
        base_url: rp.base_url,
        signer: Signer::None,
        has_credential: false,
        missing_vars: None,
        auth: AuthSpec::None,
        paths,
        params: rp.params,
        headers: rp.headers.into_iter().collect(),
        models: rp.models,
        max_tokens_field: rp.max_tokens_field.unwrap_or_else(|| "max_tokens".into()),
        default_max_tokens: rp.default_max_tokens.unwrap_or(default_max_tokens),
        limits: rp.limits,
        model_limits: rp.model_limits,
        credentials: Vec::new(),
        budget: rp.budget,
        pool_strategy: rp.pool.as_ref().map(|x| x.strategy).unwrap_or_default(),
        body_patches: rp
            .body
            .iter()
            .map(|(k, v)| (k.clone(), (!v.is_null()).then(|| v.to_string())))
            .collect(),
        delegate: rp.delegate.into_iter().collect(),
        embed_wire,
        passthrough: rp.passthrough,
    };
    let overrides = std::iter::once(p.base_url_var()).chain(rp.base_url_env.iter().cloned());
    if let Some(url) = overrides
        .into_iter()
        .find_map(|v| env(&v).filter(|u| !u.is_empty()))
    {
        p.base_url = url;
    }
    p.base_url = p.base_url.trim_end_matches('/').to_owned();
    if !(p.base_url.is_empty()
        || p.base_url.starts_with("http://")
        || p.base_url.starts_with("https://"))
    {
        return Err((
            ".base_url".into(),
            format!("`{}` is not an http(s) URL", p.base_url),
        ));
    }
    if !["max_tokens", "max_completion_tokens"].contains(&p.max_tokens_field.as_str()) {
        return Err((
            ".max_tokens_field".into(),
            "must be max_tokens or max_completion_tokens".into(),
        ));
    }
    let specs = match rp.auth {
        AuthOneOrMore::One(a) => vec![a],
        AuthOneOrMore::More(v) if !v.is_empty() => v,
        AuthOneOrMore::More(_) => return Err((".auth".into(), "an empty list of schemes".into())),
    };
    for spec in &specs {
        check_auth(spec)?;
    }
    // The first scheme whose credential is set; with none, the first (its variables are named).
    let mut found = None;
    let mut unusable = None;
    for a in &specs {
        match signer(a, env) {
            Ok(Some(s)) => {
                found = Some((a, s));
                break;
            }
            Ok(None) => {}
            Err(why) => {
                unusable.get_or_insert(why);
            }
        }
    }
    match found {
        Some((a, s)) => {
            p.auth = a.clone();
            p.credentials.push(Credential::new(a.vars(), s.clone()));
            p.signer = s;
            p.has_credential = true;
        }
        None if specs.len() == 1 => p.auth = specs[0].clone(),
        None => {
            p.auth = specs[0].clone();
            p.missing_vars = Some(
                specs
                    .iter()
                    .map(AuthSpec::vars)
                    .collect::<Vec<_>>()
                    .join(", or "),
            );
        }
    }
    if !p.has_credential
        && let Some(why) = unusable
    {
        p.missing_vars = Some(why);
    }
    if let Some(pool) = &rp.pool {
        let spec = &specs[0];
        if specs.len() > 1
            || !matches!(
                spec,
                AuthSpec::Bearer { .. } | AuthSpec::Header { .. } | AuthSpec::Query { .. }
            )
        {
            return Err((
                ".pool".into(),
                "a pool needs one `auth` scheme of type bearer, header or query".into(),
            ));
        }
        if pool.env.is_empty() {
            return Err((".pool.env".into(), "an empty list of variables".into()));
        }
        for var in &pool.env {
            let one = spec.with_env(var);
            if let Some(s) = static_signer(&one, env) {
                if p.credentials
                    .iter()
                    .any(|c| c.signer.identity() == s.identity())
                {
                    continue; // the same key twice is one credential
                }
                if !p.has_credential {
                    p.auth = one.clone();
                    p.signer = s.clone();
                    p.has_credential = true;
                }
                p.credentials.push(Credential::new(var.clone(), s));
            }
        }
        if !p.has_credential {
            p.missing_vars = Some(
                std::iter::once(spec.vars())
                    .chain(pool.env.iter().cloned())
                    .collect::<Vec<_>>()
                    .join(" or "),
            );
        }
    }
    // A Vertex-style `project` left empty is the service account's own.
    if p.params.get("project").is_some_and(String::is_empty)
        && let Some(project) = p.signer.token_source().and_then(|t| t.project())
    {
        p.params.insert("project".into(), project.to_owned());
    }
    // Vertex AI's `global` location has no regional host.
    if let Some(rest) = p.base_url.strip_prefix("https://global-aiplatform.") {
        p.base_url = format!("https://aiplatform.{rest}");
    }
    for (k, val) in &p.headers {
        if http::HeaderName::from_bytes(k.as_bytes()).is_err()
            || http::HeaderValue::from_str(val).is_err()
        {
            return Err((format!(".headers.{k}"), "not a valid HTTP header".into()));
        }
    }
    Ok(p)
}

fn check_auth(a: &AuthSpec) -> Result<(), (String, String)> {
    let bad = |path: &str, why: String| Err((path.to_owned(), why));
    match a {
        AuthSpec::Bearer { env: vars }
        | AuthSpec::Header { env: vars, .. }
        | AuthSpec::Query { env: vars, .. }
            if vars.is_empty() =>
        {
            bad(".auth.env", "name at least one environment variable".into())
        }
        AuthSpec::Header { name, .. } | AuthSpec::Query { name, .. }
            if name.is_empty() || http::HeaderName::from_bytes(name.as_bytes()).is_err() =>
        {
            bad(
                ".auth.name",
                format!("`{name}` is not a valid header or parameter name"),
            )
        }
        AuthSpec::AwsSigv4 { service, region } if service.is_empty() || region.is_empty() => {
            bad(".auth", "aws_sigv4 needs a service and a region".into())
        }
        AuthSpec::GoogleServiceAccount { env, .. } | AuthSpec::GithubCopilot { env }
            if env.is_empty() =>
        {
            bad(".auth.env", "name at least one environment variable".into())
        }
        _ => Ok(()),
    }
}
