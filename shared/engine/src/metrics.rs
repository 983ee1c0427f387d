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

/// At most this many (provider, model) series: model names come from clients, so past it new
/// ones are counted under the model `_other`, and memory stays bounded.
const MAX_TARGETS: usize = 10_000;

/// The token types, in the order of `Series::token_totals`; the first two have histograms.
const TOKEN_TYPES: [&str; 5] = ["input", "output", "cache_read", "cache_write", "reasoning"];

/// One of a series' histograms.
type PickHistogram = fn(&Series) -> &Histogram;

/// Everything counted for one target (provider and model).
#[derive(Default)]
struct Series {
    /// By client format, status class and error type.
    requests: BTreeMap<(&'static str, u16, &'static str), u64>,
    /// Set once a request with usage was counted.
    usage_seen: bool,
    tokens: [Histogram; 2],
    token_totals: [u64; 5],
    spend: Option<f64>,
    duration: Histogram,
    ttfb: Histogram,
}

#[derive(Default)]
struct State {
    /// Reused to build the target key: provider, NUL, model (each cut to 128 characters).
    scratch: String,
    targets: BTreeMap<String, Series>,
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

/// Appends the first 128 characters of `v`.
fn push_cut(out: &mut String, v: &str) {
    match v.char_indices().nth(128) {
        Some((i, _)) => out.push_str(&v[..i]),
        None => out.push_str(v),
    }
}

/// The target's labels, from its key.
fn target_labels(key: &str) -> String {
    let (provider, model) = key.split_once('\0').unwrap_or((key, ""));
    format!(
        "gen_ai_provider_name=\"{}\",gen_ai_request_model=\"{}\"",
        Esc(provider),
        Esc(model)
    )
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
    /// Counts one finished request. The target's key is built in one reused buffer and allocated
    /// only the first time the target is seen; its series are plain fields, so the rest is a
    /// lookup in a handful of entries.
    pub(crate) fn observe(&self, r: &RequestLog) {
        let mut s = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let s = &mut *s;
        let key = &mut s.scratch;
        key.clear();
        push_cut(key, r.provider.as_deref().unwrap_or(""));
        key.push('\0');
        let model_at = key.len();
        let model = r.upstream_model.as_deref().or(r.model.as_deref());
        push_cut(key, model.unwrap_or(""));
        if s.targets.len() >= MAX_TARGETS && !s.targets.contains_key(key.as_str()) {
            key.truncate(model_at);
            key.push_str("_other");
        }
        if !s.targets.contains_key(key.as_str()) {
            s.targets.insert(key.clone(), Series::default());
        }
        let Some(t) = s.targets.get_mut(key.as_str()) else {
            unreachable!("inserted above")
        };
        *t.requests
            .entry((r.client_format, r.status / 100, error_type(r)))
            .or_default() += 1;
        if let Some(u) = r.usage {
            t.usage_seen = true;
            let counts = [
                u.prompt_total(),
                u.output,
                u.cache_read,
                u.cache_write,
                u.reasoning,
            ];
            for (i, n) in counts.into_iter().enumerate() {
                if let Some(h) = t.tokens.get_mut(i) {
                    h.observe(&TOKEN_BUCKETS, n as f64);
                }
                t.token_totals[i] += n;
            }
        }
        if let Some(c) = r.cost_usd {
            *t.spend.get_or_insert(0.0) += c;
        }
        if r.provider.is_some() {
            t.duration.observe(&SECOND_BUCKETS, r.duration_ms / 1000.0);
            if let Some(ms) = r.ttfb_ms {
                t.ttfb.observe(&SECOND_BUCKETS, ms / 1000.0);
                // What the gateway added before the first byte: all but the upstreams' time.
                let upstream: f64 = r.attempts.iter().map(|a| a.latency_ms).sum();
                s.overhead
                    .observe(&SECOND_BUCKETS, ((ms - upstream).max(0.0)) / 1000.0);
            }
        }
    }

    /// The text exposition.
    pub(crate) fn render(&self) -> String {
        let s = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let targets: Vec<(String, &Series)> = s
            .targets
            .iter()
            .map(|(k, t)| (target_labels(k), t))
            .collect();
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
        for (labels, t) in &targets {
            for ((format, class, error), n) in &t.requests {
                let _ = writeln!(
                    out,
                    "gateway_requests_total{{{labels},client_format=\"{}\",status_class=\"{class}xx\",error_type=\"{error}\"}} {n}",
                    Esc(format)
                );
            }
        }
        head(
            &mut out,
            "gen_ai_client_token_usage",
            "histogram",
            "Input and output tokens per request.",
        );
        for (labels, t) in targets.iter().filter(|(_, t)| t.usage_seen) {
            for (h, ty) in t.tokens.iter().zip(TOKEN_TYPES) {
                let labels = format!("{labels},gen_ai_token_type=\"{ty}\"");
                h.render(
                    &mut out,
                    "gen_ai_client_token_usage",
                    &labels,
                    &TOKEN_BUCKETS,
                );
            }
        }
        head(
            &mut out,
            "gateway_tokens_total",
            "counter",
            "Tokens by type (input includes cache reads and writes; output includes reasoning).",
        );
        for (labels, t) in targets.iter().filter(|(_, t)| t.usage_seen) {
            for (n, ty) in t.token_totals.iter().zip(TOKEN_TYPES) {
                let _ = writeln!(
                    out,
                    "gateway_tokens_total{{{labels},gen_ai_token_type=\"{ty}\"}} {n}"
                );
            }
        }
        head(
            &mut out,
            "gateway_spend_usd_total",
            "counter",
            "Spend at the price table, USD.",
        );
        for (labels, t) in &targets {
            if let Some(v) = t.spend {
                let _ = writeln!(out, "gateway_spend_usd_total{{{labels}}} {v}");
            }
        }
        let histograms: [(&str, &str, PickHistogram); 2] = [
            (
                "gen_ai_client_operation_duration_seconds",
                "Whole request, to the last byte.",
                |t| &t.duration,
            ),
            (
                "gateway_time_to_first_byte_seconds",
                "Arrival to the first byte sent to the client.",
                |t| &t.ttfb,
            ),
        ];
        for (name, help, of) in histograms {
            head(&mut out, name, "histogram", help);
            for (labels, t) in &targets {
                let h = of(t);
                if h.count > 0 {
                    h.render(&mut out, name, labels, &SECOND_BUCKETS);
                }
            }
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
    use super::{Esc, MAX_TARGETS, Metrics, push_cut};
    use crate::log::{Outcome, RequestLog};
    use gw_model::Usage;

    #[test]
    fn label_values_are_escaped_and_cut_at_128_characters() {
        // A model name comes from the client: it must not break out of its label.
        assert_eq!(Esc("a\\b\"c\nd").to_string(), "a\\\\b\\\"c\\nd");
        let long = "é".repeat(200);
        assert_eq!(Esc(&long).to_string(), "é".repeat(128));
        let mut cut = String::new();
        push_cut(&mut cut, &long);
        assert_eq!(cut, "é".repeat(128));
    }

    fn request(provider: Option<&str>, model: &str, status: u16) -> RequestLog {
        let path = "/v1/chat/completions";
        let format = gw_translate::wire::client_format(path, &http::HeaderMap::new());
        let mut r = RequestLog::new("r", format, "POST", path);
        r.provider = provider.map(Into::into);
        r.model = Some(model.into());
        r.status = status;
        r.outcome = Outcome::Ok;
        r
    }

    #[test]
    fn series_are_kept_apart_by_target_and_by_status() {
        let m = Metrics::default();
        let mut ok = request(Some("oa"), "gpt-x", 200);
        ok.usage = Some(Usage {
            input: 7,
            output: 3,
            ..Usage::default()
        });
        m.observe(&ok);
        m.observe(&ok);
        m.observe(&request(Some("oa"), "gpt-y", 200));
        m.observe(&request(Some("oa"), "gpt-x", 502));
        let text = m.render();
        let line = |l: &str| text.lines().any(|x| x == l);
        let x = "gen_ai_provider_name=\"oa\",gen_ai_request_model=\"gpt-x\"";
        assert!(
            line(&format!(
                "gateway_requests_total{{{x},client_format=\"openai\",status_class=\"2xx\",error_type=\"none\"}} 2"
            )),
            "{text}"
        );
        assert!(
            line(&format!(
                "gateway_requests_total{{{x},client_format=\"openai\",status_class=\"5xx\",error_type=\"upstream\"}} 1"
            )),
            "{text}"
        );
        assert!(
            line(
                "gateway_requests_total{gen_ai_provider_name=\"oa\",gen_ai_request_model=\"gpt-y\",client_format=\"openai\",status_class=\"2xx\",error_type=\"none\"} 1"
            ),
            "{text}"
        );
        assert!(
            line(&format!(
                "gateway_tokens_total{{{x},gen_ai_token_type=\"output\"}} 6"
            )),
            "{text}"
        );
        assert!(
            line(&format!(
                "gen_ai_client_token_usage_count{{{x},gen_ai_token_type=\"input\"}} 2"
            )),
            "{text}"
        );
        assert!(
            line(&format!(
                "gen_ai_client_operation_duration_seconds_count{{{x}}} 3"
            )),
            "{text}"
        );
        // gpt-y never reported usage: it has no token series.
        assert!(!text.contains("gpt-y\",gen_ai_token_type"), "{text}");
    }

    #[test]
    fn client_chosen_model_names_cannot_grow_the_series_without_bound() {
        let m = Metrics::default();
        for i in 0..MAX_TARGETS + 5 {
            m.observe(&request(None, &format!("made-up-{i}"), 404));
        }
        let text = m.render();
        let rows = text
            .lines()
            .filter(|l| l.starts_with("gateway_requests_total{"))
            .count();
        assert_eq!(rows, MAX_TARGETS + 1, "the cap, then one `_other`");
        assert!(text.lines().any(|l| l == "gateway_requests_total{gen_ai_provider_name=\"\",gen_ai_request_model=\"_other\",client_format=\"openai\",status_class=\"4xx\",error_type=\"upstream\"} 5"), "{}", &text[text.len().saturating_sub(2000)..]);
        // A target seen before the cap keeps its own series.
        m.observe(&request(None, "made-up-0", 404));
        assert!(m.render().contains("gen_ai_request_model=\"made-up-0\",client_format=\"openai\",status_class=\"4xx\",error_type=\"upstream\"} 2"));
    }
}
