//! `GET /v1/spend`: the spend ledger as the store holds it (so global across instances), per
//! proxy key (and its models), provider and model, for a UTC day, its month and all time.
//! A proxy key reads its own figures; the admin key reads every key, provider and model.

use crate::Gateway;
use crate::admin::query_param;
use crate::ledger::{self, PERIODS};
use crate::log::LogGuard;
use crate::util::{error_response, json_response};
use gw_model::{ApiError, Format};
use gw_ports::{BodyStream, Clock, HttpClient, LogSink};
use gw_state::{Command, Reply, StateStore, Tally};
use http::{HeaderMap, Response, StatusCode};
use serde_json::{Map, Value, json};

fn figures(t: &Tally) -> Value {
    json!({"requests": t.requests, "tokens": t.tokens, "spent_usd": t.micros as f64 / 1e6})
}

impl<H: HttpClient, C: Clock, L: LogSink, S: StateStore> Gateway<H, C, L, S> {
    pub(crate) async fn spend(
        &self,
        format: Format,
        headers: &HeaderMap,
        query: Option<&str>,
        log: &mut LogGuard<H, C, L, S>,
    ) -> Response<BodyStream> {
        let asked = query_param(query, "key");
        let keys = match self.reader(headers, asked.as_deref(), "spend", log) {
            Ok(keys) => keys,
            Err(e) => return error_response(format, &e),
        };
        let admin = self.is_admin(headers);
        let now_ms = self.inner.clock.now().0 / 1000;
        let at_ms = match query_param(query, "date") {
            None => now_ms,
            Some(d) => match gw_route::parse_utc(&d) {
                Some(t) => t,
                None => {
                    let e = ApiError::invalid(format!(
                        "`date` must be a UTC day as YYYY-MM-DD, got `{}`",
                        crate::log::cut(&d, 64)
                    ));
                    return error_response(format, &e);
                }
            },
        };
        // This instance's own pending spend first, so a reader sees what it just spent.
        crate::record::flush_ledger(&self.inner, true).await;
        let reads = PERIODS.map(|period| async move {
            let (start, end) = ledger::window(period, at_ms);
            let cmd = Command::Ledger { start_ms: start };
            let key = ledger::store_key(period, start);
            (
                period,
                start,
                end,
                self.inner.store_apply(&key, &cmd, now_ms).await,
            )
        });
        let mut periods = Vec::new();
        for (period, start, end, got) in futures_util::future::join_all(reads).await {
            let entries = match got {
                Ok(Reply::Ledger { entries }) => entries,
                Ok(_) => Default::default(),
                Err(e) => {
                    let e = ApiError::new(
                        gw_model::ErrorKind::Overloaded,
                        format!("the state store did not answer: {e}"),
                    )
                    .with_status(503);
                    return error_response(format, &self.inner.scrubbed(e));
                }
            };
            let mut by_key: Map<String, Value> = keys
                .iter()
                .map(|k| {
                    let mut v = figures(&Tally::default());
                    v["models"] = json!({});
                    (k.name.clone(), v)
                })
                .collect();
            let (mut providers, mut models) = (Map::new(), Map::new());
            for (name, t) in &entries {
                match ledger::parse(name) {
                    Some(("k", p)) => {
                        if let (Some(Value::Object(k)), Value::Object(f)) =
                            (by_key.get_mut(p[0]), figures(t))
                        {
                            k.extend(f); // keeps the key's `models`
                        }
                    }
                    Some(("km", p)) => {
                        if let Some(k) = by_key.get_mut(p[0]) {
                            k["models"][format!("{}/{}", p[1], p[2])] = figures(t);
                        }
                    }
                    Some(("p", p)) if admin => {
                        providers.insert(p[0].to_owned(), figures(t));
                    }
                    Some(("m", p)) if admin => {
                        models.insert(format!("{}/{}", p[0], p[1]), figures(t));
                    }
                    _ => {}
                }
            }
            let mut v = json!({"period": period, "keys": by_key});
            if period != "total" {
                v["period_start_ms"] = json!(start);
                v["resets_at_ms"] = json!(end);
            }
            if admin {
                v["providers"] = Value::Object(providers);
                v["models"] = Value::Object(models);
            }
            periods.push(v);
        }
        json_response(
            StatusCode::OK,
            &json!({"object": "spend", "now_ms": now_ms, "periods": periods}),
        )
    }
}
