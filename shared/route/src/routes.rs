//! `routes:`: a name or glob and its targets, as a list (a fallback chain, tried in order) or as
//! `{strategy, targets}` with per-target weights.

use crate::{Provider, Route};
use serde_yaml::Value;

/// How a route orders its targets for each request: the first is tried first, the rest follow
/// as the fallback chain.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Strategy {
    /// In the order written.
    #[default]
    Priority,
    /// One picked in proportion to its `weight`, then the others in order.
    Weighted,
    /// Each request starts at the next target.
    RoundRobin,
    /// The lowest recent time to first byte first.
    LeastLatency,
    /// The fewest requests in flight first.
    LeastBusy,
    /// The cheapest by the price table first (input + output per 1M tokens; unpriced last).
    Cost,
}

const STRATEGIES: &str = "priority, weighted, round_robin, least_latency, least_busy or cost";

fn strategy(name: &str) -> Option<Strategy> {
    Some(match name {
        "priority" => Strategy::Priority,
        "weighted" => Strategy::Weighted,
        "round_robin" => Strategy::RoundRobin,
        "least_latency" => Strategy::LeastLatency,
        "least_busy" => Strategy::LeastBusy,
        "cost" => Strategy::Cost,
        _ => return None,
    })
}

/// Parses one route; the error is (path, reason).
pub(crate) fn parse(k: Value, v: Value, providers: &[Provider]) -> Result<Route, (String, String)> {
    let pattern = match &k {
        Value::String(s) => s.clone(),
        other => serde_yaml::to_string(other)
            .unwrap_or_default()
            .trim()
            .to_owned(),
    };
    let path = format!("routes.{pattern}");
    let err = |p: &str, r: &str| (p.to_owned(), r.to_owned());
    let (items, strat, tpath) = match v {
        Value::Sequence(s) => (s, Strategy::Priority, path.clone()),
        Value::String(s) => (vec![Value::String(s)], Strategy::Priority, path.clone()),
        Value::Mapping(mut m) => {
            let strat = match m.remove("strategy") {
                None => Strategy::Priority,
                Some(Value::String(s)) => strategy(&s).ok_or_else(|| {
                    err(
                        &format!("{path}.strategy"),
                        &format!("`{s}` is not one of {STRATEGIES}"),
                    )
                })?,
                Some(_) => return Err(err(&format!("{path}.strategy"), "expected a name")),
            };
            let targets = match m.remove("targets") {
                Some(Value::Sequence(s)) => s,
                _ => {
                    return Err(err(
                        &format!("{path}.targets"),
                        "expected a list of targets",
                    ));
                }
            };
            if let Some((extra, _)) = m.iter().next() {
                let name = extra.as_str().unwrap_or("?");
                return Err(err(
                    &format!("{path}.{name}"),
                    "unknown field (a route has `strategy` and `targets`)",
                ));
            }
            (targets, strat, format!("{path}.targets"))
        }
        _ => {
            return Err(err(
                &path,
                "expected a list of targets (\"provider/model\" or \"provider\") or {strategy, targets}",
            ));
        }
    };
    if items.is_empty() {
        return Err(err(&path, "a route needs at least one target"));
    }
    let mut targets = Vec::new();
    let mut weights = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let tp = format!("{tpath}[{i}]");
        let (prov, model, weight) = match item {
            Value::String(s) => match s.split_once('/') {
                Some((p, m)) => (p.to_owned(), Some(m.to_owned()), 1),
                None => (s.clone(), None, 1),
            },
            Value::Mapping(m) => {
                let g = |key: &str| m.get(key).and_then(Value::as_str).map(str::to_owned);
                let weight = match m.get("weight") {
                    None => 1,
                    Some(w) => w
                        .as_u64()
                        .filter(|w| (1..=1_000_000).contains(w))
                        .ok_or_else(|| {
                            err(
                                &format!("{tp}.weight"),
                                "expected a whole number from 1 to 1000000",
                            )
                        })?,
                };
                if let Some(k) = m
                    .keys()
                    .filter_map(Value::as_str)
                    .find(|k| !["provider", "model", "weight"].contains(k))
                {
                    return Err(err(
                        &format!("{tp}.{k}"),
                        "unknown field (a target has `provider`, `model` and `weight`)",
                    ));
                }
                (
                    g("provider").ok_or_else(|| err(&tp, "missing `provider`"))?,
                    g("model"),
                    weight,
                )
            }
            _ => {
                return Err(err(
                    &tp,
                    "expected \"provider/model\", \"provider\" or {provider, model, weight}",
                ));
            }
        };
        let idx = providers
            .iter()
            .position(|p| p.id == prov)
            .ok_or_else(|| err(&tp, &format!("unknown provider `{prov}`")))?;
        if model.as_deref() == Some("") {
            return Err(err(&tp, "empty model name"));
        }
        if weight != 1 && strat != Strategy::Weighted {
            return Err(err(
                &format!("{tp}.weight"),
                "weights need `strategy: weighted`",
            ));
        }
        targets.push((idx, model));
        weights.push(u32::try_from(weight).unwrap_or(1));
    }
    Ok(Route {
        is_glob: pattern.contains(['*', '?']),
        pattern,
        targets,
        weights,
        strategy: strat,
    })
}
