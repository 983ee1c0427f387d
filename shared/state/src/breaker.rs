//! The circuit breaker: a state machine persisted per target, advanced by `admit` and `record`
//! as pure functions of `now` (no background task: Lambda and Workers have none).

use crate::Reply;
use serde::{Deserialize, Serialize};

/// Thresholds (the `breaker:` section of the config).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BreakerConfig {
    /// Consecutive failures that open the breaker.
    pub consecutive_failures: u32,
    /// Failure percentage over the window that opens it (0 disables)...
    pub failure_rate_percent: u32,
    /// ...once the window has at least this many requests.
    pub min_requests: u32,
    /// Window for the failure rate.
    pub window_ms: u64,
    /// First cooldown; each further trip without a recovery doubles it...
    pub cooldown_ms: u64,
    /// ...up to this.
    pub max_cooldown_ms: u64,
    /// Requests let through at once while half-open.
    pub half_open_trials: u32,
    /// A trial that never reports back frees its slot after this long.
    pub trial_lease_ms: u64,
}

impl Default for BreakerConfig {
    fn default() -> Self {
        Self {
            consecutive_failures: 5,
            failure_rate_percent: 50,
            min_requests: 20,
            window_ms: 60_000,
            cooldown_ms: 5_000,
            max_cooldown_ms: 300_000,
            half_open_trials: 1,
            trial_lease_ms: 60_000,
        }
    }
}

impl BreakerConfig {
    /// How long a record stays useful after its last write.
    pub(crate) fn retention_ms(&self) -> u64 {
        self.max_cooldown_ms
            .max(self.window_ms)
            .max(self.trial_lease_ms)
            * 2
    }

    fn cooldown(&self, trips: u32) -> u64 {
        let factor = 1u64 << trips.saturating_sub(1).min(30);
        self.cooldown_ms
            .saturating_mul(factor)
            .min(self.max_cooldown_ms)
    }
}

/// Where a breaker stands.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum BreakerState {
    /// Traffic flows; failures are being counted.
    Closed {
        /// Failures in a row.
        consecutive: u32,
        /// Start of the rate window.
        window_start_ms: u64,
        /// Requests in the window.
        total: u32,
        /// Failures in the window.
        failed: u32,
        /// Trips so far without a full recovery (drives the growing cooldown).
        trips: u32,
    },
    /// Rejecting until `until_ms`.
    Open {
        /// End of the cooldown.
        until_ms: u64,
        /// Trips so far.
        trips: u32,
    },
    /// Letting a few trials through.
    HalfOpen {
        /// Trips so far.
        trips: u32,
        /// Lease ends of the trials in flight.
        trials: Vec<u64>,
    },
}

impl Default for BreakerState {
    fn default() -> Self {
        Self::Closed {
            consecutive: 0,
            window_start_ms: 0,
            total: 0,
            failed: 0,
            trips: 0,
        }
    }
}

impl BreakerState {
    /// Closed with nothing to remember: no failures in a row or in the window, no past trips.
    /// Equivalent to having no record (the window's success count is not kept before its first
    /// failure, so the failure rate is counted from there).
    pub(crate) fn is_clean(&self) -> bool {
        matches!(
            self,
            Self::Closed {
                consecutive: 0,
                failed: 0,
                trips: 0,
                ..
            }
        )
    }

    pub(crate) fn admit(self, cfg: &BreakerConfig, now: u64) -> (Self, Reply) {
        match self {
            Self::Closed { .. } => (self, Reply::Allow),
            Self::Open { until_ms, .. } if now < until_ms => (
                self,
                Reply::Reject {
                    retry_after_ms: until_ms - now,
                },
            ),
            Self::Open { trips, .. } => (
                Self::HalfOpen {
                    trips,
                    trials: vec![now + cfg.trial_lease_ms],
                },
                Reply::Trial,
            ),
            Self::HalfOpen { trips, mut trials } => {
                trials.retain(|lease| *lease > now);
                if (trials.len() as u32) < cfg.half_open_trials.max(1) {
                    trials.push(now + cfg.trial_lease_ms);
                    (Self::HalfOpen { trips, trials }, Reply::Trial)
                } else {
                    let wait = trials.iter().min().map_or(1, |l| l - now);
                    (
                        Self::HalfOpen { trips, trials },
                        Reply::Reject {
                            retry_after_ms: wait,
                        },
                    )
                }
            }
        }
    }

    /// Open until `until_ms` at least (a later cooldown already running stands). Not a trip: the
    /// upstream is healthy, only busy, so the cooldown does not grow the next one.
    pub(crate) fn cool_down(self, until_ms: u64) -> Self {
        match self {
            Self::Open { until_ms: u, trips } => Self::Open {
                until_ms: u.max(until_ms),
                trips,
            },
            Self::Closed { trips, .. } | Self::HalfOpen { trips, .. } => {
                Self::Open { until_ms, trips }
            }
        }
    }

    pub(crate) fn record(self, cfg: &BreakerConfig, success: bool, now: u64) -> Self {
        match self {
            Self::Closed {
                consecutive,
                window_start_ms,
                total,
                failed,
                trips,
            } => {
                let (mut total, mut failed, mut start) = (total, failed, window_start_ms);
                if now.saturating_sub(start) >= cfg.window_ms {
                    (total, failed, start) = (0, 0, now);
                }
                total += 1;
                let consecutive = if success { 0 } else { consecutive + 1 };
                if !success {
                    failed += 1;
                }
                let by_count = !success && consecutive >= cfg.consecutive_failures.max(1);
                let by_rate = !success
                    && cfg.failure_rate_percent > 0
                    && total >= cfg.min_requests.max(1)
                    && u64::from(failed) * 100
                        >= u64::from(cfg.failure_rate_percent) * u64::from(total);
                if by_count || by_rate {
                    let trips = trips + 1;
                    Self::Open {
                        until_ms: now + cfg.cooldown(trips),
                        trips,
                    }
                } else if success
                    && consecutive == 0
                    && failed == 0
                    && trips > 0
                    && total >= cfg.min_requests.max(1)
                {
                    // A full clean window after recovering: forget past trips.
                    Self::Closed {
                        consecutive,
                        window_start_ms: start,
                        total,
                        failed,
                        trips: 0,
                    }
                } else {
                    Self::Closed {
                        consecutive,
                        window_start_ms: start,
                        total,
                        failed,
                        trips,
                    }
                }
            }
            // A late answer from before the trip changes nothing.
            open @ Self::Open { .. } => open,
            Self::HalfOpen { trips, .. } => {
                if success {
                    Self::Closed {
                        consecutive: 0,
                        window_start_ms: now,
                        total: 0,
                        failed: 0,
                        trips,
                    }
                } else {
                    let trips = trips + 1;
                    Self::Open {
                        until_ms: now + cfg.cooldown(trips),
                        trips,
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Command, Record, apply};

    fn cfg() -> BreakerConfig {
        BreakerConfig {
            consecutive_failures: 3,
            failure_rate_percent: 50,
            min_requests: 10,
            window_ms: 1_000,
            cooldown_ms: 100,
            max_cooldown_ms: 350,
            half_open_trials: 1,
            trial_lease_ms: 500,
        }
    }

    /// Runs commands through `apply` as a store would.
    struct Sim(Option<Record>);
    impl Sim {
        fn run(&mut self, cmd: Command, now: u64) -> Reply {
            let live = self.0.as_ref().filter(|r| crate::is_live(r, now));
            let (next, reply) = apply(live, &cmd, now);
            if next.is_some() {
                self.0 = next;
            }
            reply
        }
        fn admit(&mut self, now: u64) -> Reply {
            self.run(Command::Admit(cfg()), now)
        }
        fn record(&mut self, ok: bool, now: u64) {
            assert_eq!(
                self.run(
                    Command::Record {
                        config: cfg(),
                        success: ok
                    },
                    now
                ),
                Reply::Done
            );
        }
    }

    #[test]
    fn opens_after_consecutive_failures_and_recovers_through_a_trial() {
        let mut s = Sim(None);
        assert_eq!(s.admit(0), Reply::Allow);
        assert!(s.0.is_none(), "a healthy target writes nothing");
        s.record(false, 1);
        s.record(true, 2);
        s.record(false, 3);
        s.record(false, 4);
        assert_eq!(s.admit(5), Reply::Allow, "a success reset the run");
        s.record(false, 6);
        assert_eq!(s.admit(7), Reply::Reject { retry_after_ms: 99 });
        assert_eq!(s.admit(105), Reply::Reject { retry_after_ms: 1 });
        assert_eq!(s.admit(106), Reply::Trial, "cooldown over: one trial");
        assert_eq!(
            s.admit(107),
            Reply::Reject {
                retry_after_ms: 499
            },
            "only one trial at a time"
        );
        s.record(true, 110);
        assert_eq!(s.admit(111), Reply::Allow);
    }

    #[test]
    fn cooldown_doubles_on_repeated_trips_up_to_the_cap() {
        let mut s = Sim(None);
        let mut now = 0;
        for _ in 0..3 {
            s.record(false, now);
        }
        let mut cooldowns = Vec::new();
        for _ in 0..4 {
            let Reply::Reject { retry_after_ms } = s.admit(now) else {
                panic!("should be open")
            };
            cooldowns.push(retry_after_ms);
            now += retry_after_ms;
            assert_eq!(s.admit(now), Reply::Trial);
            s.record(false, now);
        }
        assert_eq!(cooldowns, vec![100, 200, 350, 350]);
    }

    #[test]
    fn opens_on_failure_rate_over_the_window() {
        let mut s = Sim(None);
        // Alternate from the first failure: never 3 in a row; 6 failures of 11 (over 50 %).
        for i in 0..11 {
            s.record(i % 2 == 1, i);
        }
        assert!(matches!(s.admit(11), Reply::Reject { .. }));
    }

    #[test]
    fn an_unchanged_breaker_is_not_rewritten() {
        let mut s = Sim(None);
        s.record(false, 0); // closed, one failure: a record
        let admit = Command::Admit(cfg());
        let live = s.0.clone();
        assert_eq!(
            apply(live.as_ref(), &admit, 1),
            (None, Reply::Allow),
            "admitting to a closed breaker changes nothing"
        );
        for i in 1..3 {
            s.record(false, i);
        }
        let open = s.0.clone();
        assert!(matches!(
            apply(open.as_ref(), &admit, 5),
            (None, Reply::Reject { .. })
        ));
        let late = Command::Record {
            config: cfg(),
            success: true,
        };
        assert_eq!(
            apply(open.as_ref(), &late, 6),
            (None, Reply::Done),
            "a late answer leaves an open breaker as it is"
        );
    }

    #[test]
    fn healthy_traffic_writes_nothing_once_a_failure_has_aged_out() {
        let mut s = Sim(None);
        let writes = std::cell::Cell::new(0);
        let record = |s: &mut Sim, ok: bool, now: u64| {
            let cmd = Command::Record {
                config: cfg(),
                success: ok,
            };
            let live = s.0.as_ref().filter(|r| crate::is_live(r, now));
            let (next, _) = apply(live, &cmd, now);
            if let Some(n) = next {
                writes.set(writes.get() + 1);
                s.0 = Some(n);
            }
        };
        for i in 0..100 {
            record(&mut s, true, i);
        }
        record(&mut s, false, 100);
        for i in 101..1_100 {
            record(&mut s, true, i); // counted while the failure is in the window, then a tombstone
        }
        assert!(
            s.0.as_ref().is_some_and(|r| !crate::is_live(r, 1_100)),
            "the window rolled: the record became a tombstone"
        );
        let before = writes.get();
        for i in 1_100..2_000 {
            record(&mut s, true, i);
        }
        assert_eq!(writes.get(), before, "healthy traffic writes nothing");
        assert_eq!(s.admit(2_000), Reply::Allow);
        assert!(
            s.0.as_ref().is_none_or(|r| !crate::is_live(r, 2_000)),
            "the tombstone reads as no record"
        );
    }

    #[test]
    fn the_window_rolls_over() {
        let mut s = Sim(None);
        for i in 0..9 {
            s.record(i % 2 == 0, i);
        }
        s.record(false, 2_000); // new window: 1 failure of 1 is under min_requests
        assert_eq!(s.admit(2_001), Reply::Allow);
    }

    #[test]
    fn a_lost_trial_frees_its_slot_after_the_lease() {
        let mut s = Sim(None);
        for i in 0..3 {
            s.record(false, i);
        }
        assert_eq!(s.admit(200), Reply::Trial);
        assert!(matches!(s.admit(300), Reply::Reject { .. }));
        assert_eq!(s.admit(701), Reply::Trial, "the first trial never reported");
    }

    #[test]
    fn late_results_do_not_reopen_or_close() {
        let mut s = Sim(None);
        for i in 0..3 {
            s.record(false, i);
        }
        s.record(true, 5);
        assert!(
            matches!(s.admit(6), Reply::Reject { .. }),
            "a success from before the trip does not close it"
        );
    }

    #[test]
    fn counters_sum_per_window() {
        let mut s = Sim(None);
        let add = |s: &mut Sim, n, now| {
            s.run(
                Command::Add {
                    amount: n,
                    window_ms: 1000,
                },
                now,
            )
        };
        assert_eq!(add(&mut s, 3, 10), Reply::Total { total: 3 });
        assert_eq!(add(&mut s, 4, 999), Reply::Total { total: 7 });
        assert_eq!(add(&mut s, 1, 1000), Reply::Total { total: 1 });
    }
}
