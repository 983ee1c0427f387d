//! The price table (USD per 1M tokens, `config/prices.yaml` shipped in the binary, overridable
//! under `prices:`), and budgets with their alert thresholds.

use gw_model::Usage;
use serde::Deserialize;
use std::collections::HashMap;

const SHIPPED: &str = include_str!("../../../config/prices.yaml");

/// One model's prices, USD per 1M tokens.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Price {
    /// Uncached input.
    pub input: f64,
    /// Output, reasoning included.
    pub output: f64,
    /// Prompt-cache reads (default: `input`).
    #[serde(default)]
    pub cache_read: Option<f64>,
    /// Prompt-cache writes (default: `input`).
    #[serde(default)]
    pub cache_write: Option<f64>,
}

impl Price {
    /// The cost of `u` in micro-USD: a price per 1M tokens is micro-USD per token.
    pub fn micros(&self, u: &Usage) -> u64 {
        let f = |tokens: u64, price: f64| tokens as f64 * price;
        let total = f(u.input, self.input)
            + f(u.cache_read, self.cache_read.unwrap_or(self.input))
            + f(u.cache_write, self.cache_write.unwrap_or(self.input))
            + f(u.output, self.output);
        total.round().max(0.0) as u64
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Shipped {
    as_of: String,
    models: HashMap<String, Price>,
}

/// Prices by upstream model name.
#[derive(Debug, Clone, Default)]
pub struct Prices {
    /// When the shipped table was taken.
    pub as_of: String,
    models: HashMap<String, Price>,
}

impl Prices {
    /// The shipped table with `overrides` on top.
    pub(crate) fn with(overrides: HashMap<String, Price>) -> Self {
        let shipped: Shipped = serde_yaml::from_str(SHIPPED).unwrap_or(Shipped {
            as_of: String::new(),
            models: HashMap::new(),
        });
        let mut models = shipped.models;
        models.extend(overrides);
        Self {
            as_of: shipped.as_of,
            models,
        }
    }

    /// The price of `model`: by its name, else without a trailing date (`-20250929`,
    /// `-2024-08-06`) or `-latest`.
    pub fn get(&self, model: &str) -> Option<&Price> {
        self.models.get(model).or_else(|| {
            let base = strip_version(model);
            (base != model).then(|| self.models.get(base)).flatten()
        })
    }
}

fn strip_version(m: &str) -> &str {
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    if let Some(b) = m.strip_suffix("-latest") {
        return b;
    }
    if let Some((b, d)) = m.rsplit_once('-')
        && d.len() == 8
        && digits(d)
    {
        return b;
    }
    // -YYYY-MM-DD
    if m.len() > 11 && m.is_char_boundary(m.len() - 11) {
        let (b, d) = m.split_at(m.len() - 11);
        let p: Vec<&str> = d[1..].split('-').collect();
        if d.starts_with('-') && p.len() == 3 && p.iter().all(|x| digits(x)) {
            return b;
        }
    }
    m
}

/// Spending caps of a key or provider, in USD; each absent one is no cap.
#[derive(Debug, Clone, Copy, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Budget {
    /// Per UTC day.
    pub daily_usd: Option<f64>,
    /// Per UTC calendar month.
    pub monthly_usd: Option<f64>,
}

impl Budget {
    /// Whether any cap is set.
    pub fn is_set(&self) -> bool {
        self.daily_usd.is_some() || self.monthly_usd.is_some()
    }

    /// `(period, cap in micro-USD, config field)` for each cap set.
    pub fn caps(&self) -> impl Iterator<Item = (crate::Period, u64, &'static str)> {
        let micros = |usd: f64| (usd * 1e6).round() as u64;
        [
            self.daily_usd
                .map(|d| (crate::Period::Day, micros(d), "daily_usd")),
            self.monthly_usd
                .map(|m| (crate::Period::Month, micros(m), "monthly_usd")),
        ]
        .into_iter()
        .flatten()
    }
}

/// Budget alerts: thresholds in percent of each cap, and where to send them.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Alerts {
    /// Percentages of a cap that raise an alert, once per period each.
    pub thresholds: Vec<u32>,
    /// A URL to POST each alert to (JSON), besides the log line; empty: none.
    pub webhook_url: String,
}

impl Default for Alerts {
    fn default() -> Self {
        Self {
            thresholds: vec![50, 80, 100],
            webhook_url: String::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cost_in_micro_usd_prices_cache_and_output_right() {
        let p = Prices::with(HashMap::new());
        assert!(!p.as_of.is_empty());
        let sonnet = p
            .get("claude-sonnet-4-5-20250929")
            .expect("dated names fall back");
        let u = Usage {
            input: 1_000,
            output: 2_000,
            cache_read: 10_000,
            cache_write: 4_000,
            reasoning: 500,
        };
        // 1000*3 + 10000*0.30 + 4000*3.75 + 2000*15 = 3000 + 3000 + 15000 + 30000
        assert_eq!(sonnet.micros(&u), 51_000);
        assert!(p.get("gpt-4o-2024-08-06").is_some() && p.get("claude-3-opus-latest").is_some());
        assert!(p.get("no-such-model").is_none());
        let custom = Prices::with(HashMap::from([(
            "mine".to_owned(),
            Price {
                input: 1.0,
                output: 2.0,
                cache_read: None,
                cache_write: None,
            },
        )]));
        assert_eq!(
            custom.get("mine").unwrap().micros(&u),
            1_000 + 10_000 + 4_000 + 4_000
        );
    }
}
