//! `limits:` on a provider, on one of its models, or on a proxy key: requests and tokens per
//! minute, tokens per UTC day and month. The state store holds the counts; this is the policy.

use serde::Deserialize;

/// Limits of one scope; an absent field is no limit.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Limits {
    /// Requests per minute.
    pub rpm: Option<u64>,
    /// Tokens (input + output) per minute.
    pub tpm: Option<u64>,
    /// Tokens per UTC day.
    pub tokens_per_day: Option<u64>,
    /// Tokens per UTC month.
    pub tokens_per_month: Option<u64>,
}

/// The length of a limit's window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Period {
    /// A clock minute.
    Minute,
    /// A UTC day.
    Day,
    /// A UTC calendar month.
    Month,
}

impl Period {
    /// The key suffix and the unit in messages.
    pub fn name(self) -> &'static str {
        match self {
            Self::Minute => "minute",
            Self::Day => "day",
            Self::Month => "month",
        }
    }

    /// `[start, end)` of the window holding `now_ms`, unix ms.
    pub fn window(self, now_ms: u64) -> (u64, u64) {
        const MIN: u64 = 60_000;
        const DAY: u64 = 86_400_000;
        match self {
            Self::Minute => (now_ms - now_ms % MIN, now_ms - now_ms % MIN + MIN),
            Self::Day => (now_ms - now_ms % DAY, now_ms - now_ms % DAY + DAY),
            Self::Month => {
                let (y, m) = year_month(now_ms / DAY);
                let next = if m == 12 { (y + 1, 1) } else { (y, m + 1) };
                (
                    days_from_civil(y, m) * DAY,
                    days_from_civil(next.0, next.1) * DAY,
                )
            }
        }
    }
}

/// One window's allowance: `(period, max requests, max tokens)`, each `u64::MAX` when unlimited.
pub type Allowance = (Period, u64, u64);

impl Limits {
    /// Whether any limit is set.
    pub fn is_set(&self) -> bool {
        *self != Self::default()
    }

    /// The windows to reserve in, with their allowances.
    pub fn allowances(&self) -> impl Iterator<Item = Allowance> {
        let or_max = |v: Option<u64>| v.unwrap_or(u64::MAX);
        [
            (self.rpm.is_some() || self.tpm.is_some())
                .then(|| (Period::Minute, or_max(self.rpm), or_max(self.tpm))),
            self.tokens_per_day.map(|t| (Period::Day, u64::MAX, t)),
            self.tokens_per_month.map(|t| (Period::Month, u64::MAX, t)),
        ]
        .into_iter()
        .flatten()
    }

    /// The config name of the limit that ran out in `period` (`requests`: the request count).
    pub fn field(period: Period, requests: bool) -> &'static str {
        match (period, requests) {
            (Period::Minute, true) => "rpm",
            (Period::Minute, false) => "tpm",
            (Period::Day, _) => "tokens_per_day",
            (Period::Month, _) => "tokens_per_month",
        }
    }

    /// The configured value of `field`.
    pub fn value(&self, field: &str) -> Option<u64> {
        match field {
            "rpm" => self.rpm,
            "tpm" => self.tpm,
            "tokens_per_day" => self.tokens_per_day,
            "tokens_per_month" => self.tokens_per_month,
            _ => None,
        }
    }
}

/// (year, month) of a day number since 1970-01-01 (Howard Hinnant's civil-from-days).
fn year_month(days: u64) -> (i64, u64) {
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u64;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m)
}

/// Days since 1970-01-01 of the first of month `m` in year `y`.
pub(crate) fn days_from_civil(y: i64, m: u64) -> u64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = m as i64;
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    u64::try_from(era * 146_097 + doe - 719_468).unwrap_or(0)
}

/// Unix ms of `YYYY-MM-DD` (midnight UTC) or `YYYY-MM-DDTHH:MM:SSZ`.
pub fn parse_utc(s: &str) -> Option<u64> {
    let num = |t: &str| -> Option<u64> {
        (!t.is_empty() && t.bytes().all(|b| b.is_ascii_digit())).then(|| t.parse().ok())?
    };
    let (date, time) = match s.split_once('T') {
        Some((d, t)) => (d, Some(t.strip_suffix('Z')?)),
        None => (s, None),
    };
    let mut d = date.split('-');
    let (y, m, day) = (num(d.next()?)?, num(d.next()?)?, num(d.next()?)?);
    if d.next().is_some() || !(1..=12).contains(&m) || !(1..=31).contains(&day) || y < 1970 {
        return None;
    }
    let mut ms = (days_from_civil(y as i64, m) + day - 1) * 86_400_000;
    if let Some(t) = time {
        let mut p = t.split(':');
        let (h, mi, sec) = (num(p.next()?)?, num(p.next()?)?, num(p.next()?)?);
        if p.next().is_some() || h > 23 || mi > 59 || sec > 60 {
            return None;
        }
        ms += ((h * 60 + mi) * 60 + sec) * 1000;
    }
    Some(ms)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_follow_the_utc_calendar() {
        // 2026-12-02T17:45:10.5Z
        let now = 1_796_233_510_500;
        assert_eq!(
            Period::Minute.window(now),
            (1_796_233_500_000, 1_796_233_560_000)
        );
        assert_eq!(
            Period::Day.window(now),
            (1_796_169_600_000, 1_796_256_000_000)
        );
        // December 2026 -> January 2027; February of a leap year has 29 days.
        assert_eq!(
            Period::Month.window(now),
            (1_796_083_200_000, 1_798_761_600_000)
        );
        let feb_2028 = 1_832_976_000_000; // 2028-02-01T00:00:00Z
        assert_eq!(
            Period::Month.window(feb_2028 + 1),
            (feb_2028, feb_2028 + 29 * 86_400_000)
        );
    }
}
