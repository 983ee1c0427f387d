//! Per-request target order for a route's strategy. What it learns (recent time to first byte,
//! requests in flight, turn counters) is per instance: balancing needs no shared state, while
//! limits, cooldowns and breakers (which must be exact) live in the store.

use gw_route::{Config, Plan, PoolStrategy, Prices, Strategy, Target};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

/// What one instance knows about its targets.
pub(crate) struct Balancer {
    /// Per route: requests so far (seeded, so instances started together do not march in step).
    turns: Vec<AtomicU64>,
    seed: u64,
    stats: Mutex<HashMap<(usize, String), Stat>>,
}

#[derive(Default)]
struct Stat {
    /// Recent time to first byte (exponentially weighted), ms; `None` before the first answer.
    ttfb_ms: Option<f64>,
    /// Requests in flight to the target.
    busy: Arc<AtomicU32>,
}

/// Counts a request in flight until dropped (when its answer or stream is over).
pub(crate) struct BusyGuard(Arc<AtomicU32>);

impl Drop for BusyGuard {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// SplitMix64: a well-mixed number from a counter (weighted picks without a random source).
fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

impl Balancer {
    pub(crate) fn new(routes: usize, seed: u64) -> Self {
        Self {
            turns: (0..routes).map(|_| AtomicU64::new(mix(seed))).collect(),
            seed,
            stats: Mutex::new(HashMap::new()),
        }
    }

    fn turn(&self, plan: &Plan) -> u64 {
        plan.route
            .and_then(|r| self.turns.get(r))
            .map_or(self.seed, |t| t.fetch_add(1, Ordering::Relaxed))
    }

    /// The targets in the order to try them: the strategy's choice first, the rest after it.
    pub(crate) fn order(&self, plan: Plan, prices: &Prices) -> Vec<Target> {
        let n = plan.targets.len();
        if n < 2 || plan.strategy == Strategy::Priority {
            return plan.targets;
        }
        let mut idx: Vec<usize> = (0..n).collect();
        match plan.strategy {
            Strategy::Priority => {}
            Strategy::Cost => {
                let price = |i: usize| {
                    prices
                        .get(&plan.targets[i].model)
                        .map_or(f64::INFINITY, |p| p.input + p.output)
                };
                let keys: Vec<f64> = (0..n).map(price).collect();
                idx.sort_by(|a, b| keys[*a].total_cmp(&keys[*b]));
            }
            Strategy::RoundRobin => idx.rotate_left((self.turn(&plan) % n as u64) as usize),
            Strategy::Weighted => {
                let total: u64 = plan.weights.iter().map(|w| u64::from(*w)).sum();
                let mut at = mix(self.turn(&plan)) % total.max(1);
                let chosen = plan
                    .weights
                    .iter()
                    .position(|w| {
                        let w = u64::from(*w);
                        if at < w {
                            true
                        } else {
                            at -= w;
                            false
                        }
                    })
                    .unwrap_or(0);
                idx.remove(chosen);
                idx.insert(0, chosen);
            }
            Strategy::LeastLatency | Strategy::LeastBusy => {
                // Ties (no data yet, equally busy) take turns.
                idx.rotate_left((self.turn(&plan) % n as u64) as usize);
                let stats = self.stats.lock().unwrap_or_else(|e| e.into_inner());
                let key = |i: usize| {
                    let t = &plan.targets[i];
                    let s = stats.get(&(t.provider, t.model.clone()));
                    if plan.strategy == Strategy::LeastBusy {
                        s.map_or(0.0, |s| f64::from(s.busy.load(Ordering::Relaxed)))
                    } else {
                        // Unmeasured targets first: they get measured.
                        s.and_then(|s| s.ttfb_ms).unwrap_or(0.0)
                    }
                };
                let keys: Vec<f64> = (0..n).map(key).collect();
                idx.sort_by(|a, b| keys[*a].total_cmp(&keys[*b]));
            }
        }
        let mut targets: Vec<Option<Target>> = plan.targets.into_iter().map(Some).collect();
        idx.into_iter().filter_map(|i| targets[i].take()).collect()
    }

    /// A target answered after `ttfb_ms` (kept for `least_latency` routes).
    pub(crate) fn answered(&self, t: &Target, ttfb_ms: f64) {
        let mut stats = self.stats.lock().unwrap_or_else(|e| e.into_inner());
        let s = stats.entry((t.provider, t.model.clone())).or_default();
        s.ttfb_ms = Some(s.ttfb_ms.map_or(ttfb_ms, |old| old * 0.7 + ttfb_ms * 0.3));
    }

    /// A request to `t` starts (for `least_busy` routes); in flight until the guard drops.
    pub(crate) fn busy(&self, t: &Target) -> BusyGuard {
        let mut stats = self.stats.lock().unwrap_or_else(|e| e.into_inner());
        let s = stats.entry((t.provider, t.model.clone())).or_default();
        s.busy.fetch_add(1, Ordering::Relaxed);
        BusyGuard(Arc::clone(&s.busy))
    }
}

/// Each target once per credential of its provider's pool, the pool's strategy first
/// (round-robin: the next credential of this instance's turn; fill-first: the first).
pub(crate) fn with_credentials<'a>(
    cfg: &Config,
    next: &[AtomicUsize],
    plan: &'a [Target],
) -> Vec<(&'a Target, usize)> {
    plan.iter()
        .flat_map(|t| {
            let p = &cfg.providers[t.provider];
            let n = p.credentials.len().max(1);
            let first = match p.pool_strategy {
                PoolStrategy::RoundRobin if n > 1 => {
                    next[t.provider].fetch_add(1, Ordering::Relaxed) % n
                }
                _ => 0,
            };
            (0..n).map(move |i| (t, (first + i) % n))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(strategy: Strategy, weights: Vec<u32>) -> Plan {
        Plan {
            targets: (0..weights.len())
                .map(|i| Target {
                    provider: i,
                    model: format!("m{i}"),
                })
                .collect(),
            weights,
            strategy,
            route: Some(0),
        }
    }

    fn firsts(b: &Balancer, p: &Plan, n: usize) -> Vec<usize> {
        (0..n)
            .map(|_| b.order(p.clone(), &Prices::default())[0].provider)
            .collect()
    }

    #[test]
    fn weighted_splits_in_proportion_and_keeps_the_rest_as_fallbacks() {
        let b = Balancer::new(1, 42);
        let p = plan(Strategy::Weighted, vec![3, 1]);
        let f = firsts(&b, &p, 4000);
        let zeros = f.iter().filter(|x| **x == 0).count();
        // 3000 expected; binomial sd ~27: well inside 5 sd.
        assert!((2860..=3140).contains(&zeros), "{zeros}");
        let o = b.order(p, &Prices::default());
        assert_eq!(o.len(), 2, "the other target stays as the fallback");
    }

    #[test]
    fn round_robin_rotates_and_least_busy_avoids_the_busy_one() {
        let b = Balancer::new(1, 0);
        let p = plan(Strategy::RoundRobin, vec![1, 1, 1]);
        let mut f = firsts(&b, &p, 6);
        f.sort_unstable();
        assert_eq!(f, [0, 0, 1, 1, 2, 2]);
        let p = plan(Strategy::LeastBusy, vec![1, 1]);
        let g0 = b.busy(&p.targets[0]);
        assert_eq!(firsts(&b, &p, 4), [1, 1, 1, 1]);
        drop(g0);
        let mut f = firsts(&b, &p, 4);
        f.sort_unstable();
        assert_eq!(f, [0, 0, 1, 1], "idle again: they take turns");
    }

    #[test]
    fn least_latency_prefers_the_fastest_measured_target() {
        let b = Balancer::new(1, 0);
        let p = plan(Strategy::LeastLatency, vec![1, 1, 1]);
        b.answered(&p.targets[0], 300.0);
        b.answered(&p.targets[1], 40.0);
        b.answered(&p.targets[2], 120.0);
        let o: Vec<usize> = b
            .order(p.clone(), &Prices::default())
            .iter()
            .map(|t| t.provider)
            .collect();
        assert_eq!(o, [1, 2, 0]);
        // Target 1 slows down: it drops behind once its average passes the others'.
        for _ in 0..10 {
            b.answered(&p.targets[1], 900.0);
        }
        assert_eq!(b.order(p, &Prices::default())[0].provider, 2);
    }

    #[test]
    fn cost_tries_the_cheapest_priced_target_first_and_unpriced_last() {
        let yaml = "prices: {cheap: {input: 0.1, output: 0.4}, dear: {input: 3, output: 15}}";
        let cfg = gw_route::Config::load(yaml, "t.yaml", &|_| None).unwrap();
        let p = Plan {
            targets: ["dear", "unknown-model", "cheap"]
                .iter()
                .enumerate()
                .map(|(i, m)| Target {
                    provider: i,
                    model: (*m).to_owned(),
                })
                .collect(),
            weights: vec![1; 3],
            strategy: Strategy::Cost,
            route: Some(0),
        };
        let o: Vec<String> = Balancer::new(1, 0)
            .order(p, &cfg.prices)
            .into_iter()
            .map(|t| t.model)
            .collect();
        assert_eq!(o, ["cheap", "dear", "unknown-model"]);
    }
}
