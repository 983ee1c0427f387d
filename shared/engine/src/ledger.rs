//! The spend ledger, engine side: every answer a provider served adds its request, tokens and
//! cost to four entries (its proxy key, provider, model, and key × model) in three periods (the
//! UTC day, the month, all time). Additions wait here and go to the store as one `Book` command
//! per period: at the end of every request by default (Lambda and Workers may be frozen or
//! evicted after it), or at most every `flush_ms` when the runtime also flushes on a timer and
//! at shutdown (the local server). Sums only grow, so batched and reordered additions stay exact.

use gw_route::Period;
use gw_state::{Book, Tally};
use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

/// Separates the parts of an entry name (never in a key name, provider id or model name a client
/// can route: those are config names and printable model ids).
pub(crate) const SEP: char = '\u{1f}';

/// Days are kept this long in the store, months this long; all time forever.
const KEEP_DAYS_MS: u64 = 92 * 86_400_000;
const KEEP_MONTHS_MS: u64 = 25 * 31 * 86_400_000;

/// The ledger's periods, by name.
pub(crate) const PERIODS: [&str; 3] = ["day", "month", "total"];

/// `[start, end)` of the ledger period `name` holding `now_ms` (all time: `[0, MAX)`).
pub(crate) fn window(name: &str, now_ms: u64) -> (u64, u64) {
    match name {
        "day" => Period::Day.window(now_ms),
        "month" => Period::Month.window(now_ms),
        _ => (0, u64::MAX),
    }
}

/// The store key of one period.
pub(crate) fn store_key(name: &str, start_ms: u64) -> String {
    format!("ledger:{name}:{start_ms}")
}

fn expires(name: &str, end_ms: u64) -> u64 {
    match name {
        "day" => end_ms.saturating_add(KEEP_DAYS_MS),
        "month" => end_ms.saturating_add(KEEP_MONTHS_MS),
        _ => u64::MAX,
    }
}

/// Pending sums: (period name, start) → entry → sums.
type Pending = BTreeMap<(&'static str, u64), BTreeMap<String, Tally>>;

/// Additions not yet in the store.
#[derive(Default)]
pub(crate) struct Ledger {
    pending: Mutex<Pending>,
    /// When the oldest pending addition was made (0: none).
    oldest_ms: AtomicU64,
    /// Flush at most this often (0: at the end of every request).
    pub(crate) flush_ms: AtomicU64,
}

impl Ledger {
    /// Adds one served answer.
    pub(crate) fn add(
        &self,
        now_ms: u64,
        key: Option<&str>,
        provider: &str,
        model: &str,
        t: Tally,
    ) {
        let starts = PERIODS.map(|period| (period, window(period, now_ms).0));
        let mut p = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        // Each name is built in one buffer and copied only when new to its period: between
        // flushes (the common case) adding allocates nothing but the buffer.
        let mut name = String::with_capacity(64);
        let mut add = |parts: &[&str]| {
            name.clear();
            for (i, part) in parts.iter().enumerate() {
                if i > 0 {
                    name.push(SEP);
                }
                name.push_str(part);
            }
            for period in starts {
                let entries = p.entry(period).or_default();
                match entries.get_mut(name.as_str()) {
                    Some(e) => e.add(&t),
                    None => {
                        entries.insert(name.clone(), t);
                    }
                }
            }
        };
        add(&["p", provider]);
        add(&["m", provider, model]);
        if let Some(k) = key {
            add(&["k", k]);
            add(&["km", k, provider, model]);
        }
        drop(p);
        let _ =
            self.oldest_ms
                .compare_exchange(0, now_ms.max(1), Ordering::Relaxed, Ordering::Relaxed);
    }

    /// Whether `take` (not `all`) would find a flush due now.
    pub(crate) fn due(&self, now_ms: u64) -> bool {
        let oldest = self.oldest_ms.load(Ordering::Relaxed);
        let every = self.flush_ms.load(Ordering::Relaxed);
        oldest != 0 && (every == 0 || now_ms >= oldest.saturating_add(every))
    }

    /// What is pending, by period (its name and a booking), taken when a flush is due (`all`:
    /// always).
    pub(crate) fn take(&self, now_ms: u64, all: bool) -> Vec<(&'static str, Book)> {
        if self.oldest_ms.load(Ordering::Relaxed) == 0 || !(all || self.due(now_ms)) {
            return Vec::new();
        }
        let taken = {
            let mut p = self.pending.lock().unwrap_or_else(|e| e.into_inner());
            self.oldest_ms.store(0, Ordering::Relaxed);
            std::mem::take(&mut *p)
        };
        taken
            .into_iter()
            .map(|((period, start_ms), entries)| {
                let (_, end) = window(period, start_ms);
                let book = Book {
                    start_ms,
                    expires_at_ms: expires(period, end),
                    entries: entries.into_iter().collect(),
                };
                (period, book)
            })
            .collect()
    }

    /// Puts back a booking of `period` the store did not take (an outage), for the next flush.
    pub(crate) fn restore(&self, now_ms: u64, period: &'static str, book: &Book) {
        let mut p = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        let entries = p.entry((period, book.start_ms)).or_default();
        for (n, t) in &book.entries {
            entries.entry(n.clone()).or_default().add(t);
        }
        let _ =
            self.oldest_ms
                .compare_exchange(0, now_ms.max(1), Ordering::Relaxed, Ordering::Relaxed);
    }
}

/// One entry name split back: (kind, key, provider, model), the parts it has.
pub(crate) fn parse(name: &str) -> Option<(&str, Vec<&str>)> {
    let mut parts = name.split(SEP);
    let kind = parts.next()?;
    let n = match kind {
        "k" | "p" => 1,
        "m" => 2,
        "km" => 3,
        _ => return None,
    };
    let rest: Vec<&str> = name[kind.len() + 1..].splitn(n, SEP).collect();
    (rest.len() == n).then_some((kind, rest))
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: u64 = 1_796_233_510_500; // 2026-12-02T...Z

    fn tally(micros: u64) -> Tally {
        Tally {
            requests: 1,
            tokens: 10,
            micros,
        }
    }

    #[test]
    fn one_answer_books_four_entries_in_three_periods() {
        let l = Ledger::default();
        l.add(T, Some("ci"), "openai", "gpt-4o", tally(5));
        l.add(T + 1, None, "openai", "gpt-4o", tally(7));
        let cmds = l.take(T + 2, false);
        assert_eq!(cmds.len(), 3);
        let (period, b) = &cmds[0];
        let (day, end) = Period::Day.window(T);
        assert_eq!((*period, b.start_ms), ("day", day));
        assert_eq!(b.expires_at_ms, end + KEEP_DAYS_MS);
        let get = |n: String| b.entries.iter().find(|(k, _)| *k == n).map(|e| e.1);
        assert_eq!(get(format!("p{SEP}openai")).unwrap().micros, 12);
        assert_eq!(get(format!("k{SEP}ci")).unwrap().micros, 5);
        assert_eq!(
            get(format!("km{SEP}ci{SEP}openai{SEP}gpt-4o"))
                .unwrap()
                .requests,
            1
        );
        assert!(matches!(&cmds[2], ("total", b) if b.start_ms == 0 && b.expires_at_ms == u64::MAX));
        assert!(l.take(T + 3, true).is_empty(), "taken once");
    }

    #[test]
    fn batching_waits_for_the_interval_and_keeps_periods_apart() {
        let l = Ledger::default();
        l.flush_ms.store(1_000, Ordering::Relaxed);
        let (_, midnight) = Period::Day.window(T);
        l.add(midnight - 1, Some("ci"), "openai", "m", tally(1));
        assert!(l.take(midnight + 500, false).is_empty(), "not due yet");
        l.add(midnight + 1, Some("ci"), "openai", "m", tally(2));
        let cmds = l.take(midnight + 999, false);
        let days: Vec<u64> = cmds
            .iter()
            .filter(|(p, _)| *p == "day")
            .map(|(_, b)| b.start_ms)
            .collect();
        assert_eq!(days.len(), 2, "one booking per day: {cmds:?}");
    }

    #[test]
    fn a_failed_booking_is_kept_for_the_next_flush() {
        let l = Ledger::default();
        l.add(T, Some("ci"), "openai", "m", tally(4));
        let cmds = l.take(T, false);
        for (period, b) in &cmds {
            l.restore(T, period, b);
        }
        assert_eq!(l.take(T, false), cmds);
    }

    #[test]
    fn names_split_back_with_any_model() {
        let n = format!("km{SEP}ci{SEP}openai{SEP}org/model:v1");
        assert_eq!(
            parse(&n),
            Some(("km", vec!["ci", "openai", "org/model:v1"]))
        );
        assert_eq!(parse(&format!("k{SEP}ci")), Some(("k", vec!["ci"])));
        assert_eq!(parse("x"), None);
        assert_eq!(parse(&format!("m{SEP}openai")), None);
    }
}
