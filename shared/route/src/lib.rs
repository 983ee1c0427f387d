//! Configuration and routing as pure functions: parse and validate `gateway.yaml`, resolve a
//! requested model to an ordered list of targets. No clock, no network, no filesystem: the
//! caller hands in the YAML text and an environment lookup.

mod config;
mod glob;
mod limits;
mod provider;
mod template;

pub use config::{Config, ConfigError, KeySpec, Server, Timeouts};
use gw_model::{ApiError, ErrorKind};
pub use limits::{Allowance, Limits, Period};
pub use provider::{AuthSpec, Credential, PoolStrategy, Provider};
pub use template::UrlTemplate;

/// One place a request can go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// Index into [`Config::providers`].
    pub provider: usize,
    /// Model name to send upstream.
    pub model: String,
}

impl Config {
    /// The provider with this id.
    pub fn provider_index(&self, id: &str) -> Option<usize> {
        self.providers.iter().position(|p| p.id == id)
    }

    /// Resolves a requested model (and an optional `X-Provider` header) to an ordered fallback
    /// plan. Order: header, exact route, `provider/model`, a provider's model list, glob routes.
    pub fn resolve(&self, model: &str, forced: Option<&str>) -> Result<Vec<Target>, ApiError> {
        if let Some(p) = forced {
            let idx = self.provider_index(p).ok_or_else(|| {
                ApiError::invalid(format!(
                    "X-Provider names unknown provider `{p}` (known: {})",
                    self.providers
                        .iter()
                        .map(|p| p.id.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ))
            })?;
            let bare = model
                .strip_prefix(p)
                .and_then(|m| m.strip_prefix('/'))
                .unwrap_or(model);
            let routed: Vec<Target> = self
                .route_targets(bare)
                .into_iter()
                .flatten()
                .filter(|t| t.provider == idx)
                .collect();
            if !routed.is_empty() {
                return Ok(routed);
            }
            return Ok(vec![Target {
                provider: idx,
                model: bare.to_owned(),
            }]);
        }
        if let Some(t) = self.exact_route(model) {
            return Ok(t);
        }
        if let Some((p, rest)) = model.split_once('/')
            && let Some(idx) = self.provider_index(p)
            && !rest.is_empty()
        {
            return Ok(vec![Target {
                provider: idx,
                model: rest.to_owned(),
            }]);
        }
        let listed: Vec<Target> = self
            .providers
            .iter()
            .enumerate()
            .filter(|(_, p)| p.models.iter().any(|m| m == model))
            .map(|(i, _)| Target {
                provider: i,
                model: model.to_owned(),
            })
            .collect();
        if !listed.is_empty() {
            return Ok(listed);
        }
        if let Some(t) = self.glob_route(model) {
            return Ok(t);
        }
        Err(ApiError::new(
            ErrorKind::NotFound,
            format!("model `{model}` is not configured: no route, alias, provider prefix or provider model list matches it (GET /v1/models lists what is available)"),
        )
        .with_param("model")
        .with_code("model_not_found"))
    }

    fn route_targets(&self, model: &str) -> Option<Vec<Target>> {
        self.exact_route(model).or_else(|| self.glob_route(model))
    }

    fn exact_route(&self, model: &str) -> Option<Vec<Target>> {
        self.routes
            .iter()
            .find(|r| !r.is_glob && r.pattern == model)
            .map(|r| r.expand(model))
    }

    fn glob_route(&self, model: &str) -> Option<Vec<Target>> {
        self.routes
            .iter()
            .find(|r| r.is_glob && glob::matches(&r.pattern, model))
            .map(|r| r.expand(model))
    }
}

/// A configured route: a name or glob pattern and its ordered targets.
#[derive(Debug, Clone)]
pub struct Route {
    /// Exact name or glob.
    pub pattern: String,
    /// Contains `*` or `?`.
    pub is_glob: bool,
    /// Provider index and model (`None`: keep the requested model).
    pub targets: Vec<(usize, Option<String>)>,
}

impl Route {
    fn expand(&self, requested: &str) -> Vec<Target> {
        self.targets
            .iter()
            .map(|(p, m)| Target {
                provider: *p,
                model: m.clone().unwrap_or_else(|| requested.to_owned()),
            })
            .collect()
    }
}

#[cfg(test)]
mod tests;
