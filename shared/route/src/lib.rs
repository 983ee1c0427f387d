//! Configuration and routing as pure functions: parse and validate `gateway.yaml`, resolve a
//! requested model to an ordered list of targets. No clock, no network, no filesystem: the
//! caller hands in the YAML text and an environment lookup.

mod config;
mod glob;
mod limits;
mod prices;
mod provider;
mod routes;
mod template;
mod token_auth;

pub use token_auth::FILE_PREFIX;

pub use config::{Config, ConfigError, HealthChecks, KeySpec, Server, Timeouts};
use gw_model::{ApiError, ErrorKind};
pub use limits::{Allowance, Limits, Period, parse_utc};
pub use prices::{Alerts, Budget, Price, Prices};
pub use provider::{AuthSpec, Credential, PoolStrategy, Provider};
pub use routes::Strategy;
pub use template::UrlTemplate;

/// One place a request can go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// Index into [`Config::providers`].
    pub provider: usize,
    /// Model name to send upstream.
    pub model: String,
}

/// Where a request may go: targets in configured order, and how to order them per request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    /// The targets, as configured (or as resolved without a route).
    pub targets: Vec<Target>,
    /// Their weights (all 1 unless `weighted`).
    pub weights: Vec<u32>,
    /// The route's strategy (`Priority` without a route).
    pub strategy: Strategy,
    /// The route's index in [`Config::routes`], if a route matched.
    pub route: Option<usize>,
}

impl Plan {
    fn direct(targets: Vec<Target>) -> Self {
        Self {
            weights: vec![1; targets.len()],
            targets,
            strategy: Strategy::Priority,
            route: None,
        }
    }
}

impl Config {
    /// The provider with this id.
    pub fn provider_index(&self, id: &str) -> Option<usize> {
        self.providers.iter().position(|p| p.id == id)
    }

    /// Resolves a requested model (and an optional `X-Provider` header) to an ordered fallback
    /// plan. Order: header, exact route, `provider/model`, a provider's model list, glob routes.
    pub fn resolve(&self, model: &str, forced: Option<&str>) -> Result<Vec<Target>, ApiError> {
        self.resolve_plan(model, forced).map(|p| p.targets)
    }

    /// [`Self::resolve`], with the matched route's strategy and weights.
    pub fn resolve_plan(&self, model: &str, forced: Option<&str>) -> Result<Plan, ApiError> {
        let mut plan = self.resolve_undelegated(model, forced)?;
        for t in &mut plan.targets {
            let p = &self.providers[t.provider];
            if let Some((_, to)) = p.delegate.iter().find(|(g, _)| glob::matches(g, &t.model))
                && let Some(i) = self.provider_index(to)
            {
                t.provider = i;
            }
        }
        Ok(plan)
    }

    fn resolve_undelegated(&self, model: &str, forced: Option<&str>) -> Result<Plan, ApiError> {
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
                .route_plan(bare)
                .into_iter()
                .flat_map(|p| p.targets)
                .filter(|t| t.provider == idx)
                .collect();
            if !routed.is_empty() {
                return Ok(Plan::direct(routed));
            }
            return Ok(Plan::direct(vec![Target {
                provider: idx,
                model: bare.to_owned(),
            }]));
        }
        if let Some(p) = self.exact_route(model) {
            return Ok(p);
        }
        if let Some((p, rest)) = model.split_once('/')
            && let Some(idx) = self.provider_index(p)
            && !rest.is_empty()
        {
            return Ok(Plan::direct(vec![Target {
                provider: idx,
                model: rest.to_owned(),
            }]));
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
            return Ok(Plan::direct(listed));
        }
        if let Some(p) = self.glob_route(model) {
            return Ok(p);
        }
        Err(ApiError::new(
            ErrorKind::NotFound,
            format!("model `{model}` is not configured: no route, alias, provider prefix or provider model list matches it (GET /v1/models lists what is available)"),
        )
        .with_param("model")
        .with_code("model_not_found"))
    }

    fn route_plan(&self, model: &str) -> Option<Plan> {
        self.exact_route(model).or_else(|| self.glob_route(model))
    }

    fn exact_route(&self, model: &str) -> Option<Plan> {
        self.routes
            .iter()
            .position(|r| !r.is_glob && r.pattern == model)
            .map(|i| self.routes[i].expand(i, model))
    }

    fn glob_route(&self, model: &str) -> Option<Plan> {
        self.routes
            .iter()
            .position(|r| r.is_glob && glob::matches(&r.pattern, model))
            .map(|i| self.routes[i].expand(i, model))
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
    /// Each target's weight (1 unless the strategy is `weighted`).
    pub weights: Vec<u32>,
    /// How targets are ordered per request.
    pub strategy: Strategy,
}

impl Route {
    fn expand(&self, index: usize, requested: &str) -> Plan {
        Plan {
            targets: self
                .targets
                .iter()
                .map(|(p, m)| Target {
                    provider: *p,
                    model: m.clone().unwrap_or_else(|| requested.to_owned()),
                })
                .collect(),
            weights: self.weights.clone(),
            strategy: self.strategy,
            route: Some(index),
        }
    }
}

#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_cloud;
