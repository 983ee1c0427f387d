//! `/metrics`: this instance's counters and histograms in Prometheus text format, fed from each
//! request's log record. Names follow the OpenTelemetry GenAI conventions where one exists
//! (`gen_ai_client_token_usage`, `gen_ai_client_operation_duration_seconds`), `gateway_` otherwise.
//! Per instance (every Lambda environment and Worker isolate has its own): the usage API and the
//! store hold the global view.

use crate::log::{Outcome, RequestLog};
use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Mutex;

/// OpenTelemetry's recommended buckets for token counts.
const TOKEN_BUCKETS: [f64; 14] = [
    1.0,
    4.0,
    16.0,
    64.0,
    256.0,
    1024.0,
    4096.0,
    16384.0,
    65536.0,
    262_144.0,
    1_048_576.0,
    4_194_304.0,
    16_777_216.0,
    67_108_864.0,
];
/// Seconds: OpenTelemetry's operation-duration buckets, with finer ones below 10 ms for overhead.
const SECOND_BUCKETS: [f64; 18] = [
    0.0001, 0.0005, 0.001, 0.005, 0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12,
    10.24, 20.48, 40.96, 81.92,
];

#[derive(Default, Clone)]
struct Histogram {
    counts: Vec<u64>,
    sum: f64,
    count: u64,
}

impl Histogram {
    fn observe(&mut self, bounds: &[f64], v: f64) {
        if self.counts.is_empty() {
            self.counts = vec![0; bounds.len()];
        }
        for (i, b) in bounds.iter().enumerate() {
            if v <= *b {
                self.counts[i] += 1;
            }
        }
        self.sum += v;
        self.count += 1;
    }

    fn render(&self, out: &mut String, name: &str, labels: &str, bounds: &[f64]) {
        let sep = if labels.is_empty() { "" } else { "," };
        for (i, b) in bounds.iter().enumerate() {
            let _ = writeln!(
                out,
                "{name}_bucket{{{labels}{sep}le=\"{b}\"}} {}",
                self.counts[i]
            );
        }
        let _ = writeln!(
            out,
            "{name}_bucket{{{labels}{sep}le=\"+Inf\"}} {}",
            self.count
        );
        let braced = if labels.is_empty() {
            String::new()
        } else {
            format!("{{{labels}}}")
        };
        let _ = writeln!(out, "{name}_sum{braced} {}", self.sum);
        let _ = writeln!(out, "{name}_count{braced} {}", self.count);
    }
}

#[derive(Default)]
struct State {
    /// Reused to build series names: the target's labels, and a whole series name.
    scratch: String,
    scratch_key: String,
    requests: BTreeMap<String, u64>,
    tokens: BTreeMap<String, Histogram>,
    token_totals: BTreeMap<String, u64>,
    spend: BTreeMap<String, f64>,
    duration: BTreeMap<String, Histogram>,
    ttfb: BTreeMap<String, Histogram>,
    overhead: Histogram,
}

/// This instance's metrics.
#[derive(Default)]
pub(crate) struct Metrics(Mutex<State>);

/// A label value (its first 128 characters), escaped as it is written.
struct Esc<'a>(&'a str);

impl std::fmt::Display for Esc<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        use std::fmt::Write;
        for c in self.0.chars().take(128) {
            match c {
                '\\' => f.write_str("\\\\")?,
                '"' => f.write_str("\\\"")?,
                '\n' => f.write_str("\\n")?,
                c => f.write_char(c)?,
            }
        }
        Ok(())
    }
}

/// The entry for `name`, created (and the name allocated) only when it is new.
fn slot<'m, V: Default>(m: &'m mut BTreeMap<String, V>, name: &str) -> &'m mut V {
    if !m.contains_key(name) {
        m.insert(name.to_owned(), V::default());
    }
    match m.get_mut(name) {
        Some(v) => v,
        None => unreachable!("inserted above"),
    }
}

/// The closed set of reasons a request did not succeed: the gateway's own refusals apart from
/// the provider's failures.
fn error_type(r: &RequestLog) -> &'static str {
    match r.outcome {
        Outcome::Ok if r.status < 400 => "none",
        Outcome::Ok => "upstream",
        Outcome::Limited => "limit",
        Outcome::Rejected => "invalid_request",
        Outcome::Unauthenticated => "auth",
        Outcome::ClientDisconnected => "client_disconnected",
        Outcome::UpstreamIncomplete => "upstream_incomplete",
        Outcome::Error
            if !r.attempts.is_empty()
                && r.attempts
                    .iter()
                    .all(|a| a.error_class == Some("circuit_open")) =>
        {
            "circuit_open"
        }
        Outcome::Error if r.attempts.is_empty() => "gateway",
        Outcome::Error => "upstream",
    }
}

impl Metrics {
    /// Counts one finished request. Series names are built in one reused buffer, and a name is
    /// allocated only the first time its series is seen.
    pub(crate) fn observe(&self, r: &RequestLog) {
        use std::fmt::Write;
        let mut s = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let s = &mut *s;
        let mut target = std::mem::take(&mut s.scratch);
        target.clear();
        let _ = write!(
            target,
            "gen_ai_provider_name=\"{}\",gen_ai_request_model=\"{}\"",
            Esc(r.provider.as_deref().unwrap_or("")),
            Esc(r
                .upstream_model
                .as_deref()
                .or(r.model.as_deref())
                .unwrap_or("")),
        );
        let mut key = std::mem::take(&mut s.scratch_key);
        key.clear();
        let _ = write!(
            key,
            "{target},client_format=\"{}\",status_class=\"{}xx\",error_type=\"{}\"",
            Esc(r.client_format),
            r.status / 100,
            error_type(r)
        );
        *slot(&mut s.requests, &key) += 1;
        if let Some(u) = r.usage {
            for (ty, n) in [
                ("input", u.prompt_total()),
                ("output", u.output),
                ("cache_read", u.cache_read),
                ("cache_write", u.cache_write),
                ("reasoning", u.reasoning),
            ] {
                key.clear();
                let _ = write!(key, "{target},gen_ai_token_type=\"{ty}\"");
                if matches!(ty, "input" | "output") {
                    slot(&mut s.tokens, &key).observe(&TOKEN_BUCKETS, n as f64);
                }
                *slot(&mut s.token_totals, &key) += n;
            }
        }
        if let Some(c) = r.cost_usd {
            *slot(&mut s.spend, &target) += c;
        }
        if r.provider.is_some() {
            slot(&mut s.duration, &target).observe(&SECOND_BUCKETS, r.duration_ms / 1000.0);
            if let Some(t) = r.ttfb_ms {
                slot(&mut s.ttfb, &target).observe(&SECOND_BUCKETS, t / 1000.0);
                // What the gateway added before the first byte: all but the upstreams' time.
                let upstream: f64 = r.attempts.iter().map(|a| a.latency_ms).sum();
                s.overhead
                    .observe(&SECOND_BUCKETS, ((t - upstream).max(0.0)) / 1000.0);
            }
        }
        s.scratch = target;
        s.scratch_key = key;
    }

    /// The text exposition.
    pub(crate) fn render(&self) -> String {
        let s = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let mut out = String::new();
        let head = |out: &mut String, name: &str, ty: &str, help: &str| {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {ty}");
        };
        head(
            &mut out,
            "gateway_requests_total",
            "counter",
            "Requests by target, client format, status class and error type (none, limit, circuit_open, invalid_request, auth, gateway, upstream, upstream_incomplete, client_disconnected).",
        );
        for (k, v) in &s.requests {
            let _ = writeln!(out, "gateway_requests_total{{{k}}} {v}");
        }
        head(
            &mut out,
            "gen_ai_client_token_usage",
            "histogram",
            "Input and output tokens per request.",
        );
        for (k, h) in &s.tokens {
            h.render(&mut out, "gen_ai_client_token_usage", k, &TOKEN_BUCKETS);
        }
        head(
            &mut out,
            "gateway_tokens_total",
            "counter",
            "Tokens by type (input includes cache reads and writes; output includes reasoning).",
        );
        for (k, v) in &s.token_totals {
            let _ = writeln!(out, "gateway_tokens_total{{{k}}} {v}");
        }
        head(
            &mut out,
            "gateway_spend_usd_total",
            "counter",
            "Spend at the price table, USD.",
        );
        for (k, v) in &s.spend {
            let _ = writeln!(out, "gateway_spend_usd_total{{{k}}} {v}");
        }
        head(
            &mut out,
            "gen_ai_client_operation_duration_seconds",
            "histogram",
            "Whole request, to the last byte.",
        );
        for (k, h) in &s.duration {
            h.render(
                &mut out,
                "gen_ai_client_operation_duration_seconds",
                k,
                &SECOND_BUCKETS,
            );
        }
        head(
            &mut out,
            "gateway_time_to_first_byte_seconds",
            "histogram",
            "Arrival to the first byte sent to the client.",
        );
        for (k, h) in &s.ttfb {
            h.render(
                &mut out,
                "gateway_time_to_first_byte_seconds",
                k,
                &SECOND_BUCKETS,
            );
        }
        head(
            &mut out,
            "gateway_overhead_seconds",
            "histogram",
            "Time to first byte minus the upstream attempts' own time.",
        );
        if s.overhead.count > 0 {
            s.overhead
                .render(&mut out, "gateway_overhead_seconds", "", &SECOND_BUCKETS);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::Esc;

    #[test]
    fn label_values_are_escaped_and_cut_at_128_characters() {
        // A model name comes from the client: it must not break out of its label.
        assert_eq!(Esc("a\\b\"c\nd").to_string(), "a\\\\b\\\"c\\nd");
        let long = "é".repeat(200);
        assert_eq!(Esc(&long).to_string(), "é".repeat(128));
    }
}
