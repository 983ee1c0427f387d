//! DynamoDB store over the `HttpClient` port (JSON 1.0 protocol, SigV4), so the same code runs
//! on Lambda, in the local server and anywhere else with an HTTP client.
//!
//! Table: hash key `pk` (S); attributes `v` (the record, JSON), `ver` (N), `expires_at` (N, unix
//! seconds, the table's TTL attribute). Breaker commands read consistently, then write only when
//! the state changes, conditioned on the version read (retried on conflict after a short jittered
//! pause). `ver` only ever grows, even across expired records and tombstones, so a stale writer's
//! condition can never match again. Counters and request/token windows use one atomic
//! `UpdateItem ADD` on a per-window key (`{key}#{window start}`, attributes `r` and `t`), a
//! reservation conditioned on staying within its limits: no read, no conflict to retry.
//! The spend ledger adds to one item per period with `ADD` as well.
//! Requests are signed with the clock's time, not the command's `now_ms` (which tests may set).

use crate::{
    Book, Command, Exhausted, Record, Reply, Reserve, Settle, StateStore, StoreError, Tally, apply,
    is_live,
};
use bytes::Bytes;
use futures_util::StreamExt;
use gw_auth::sigv4::{self, Credentials};
use gw_ports::{Clock, HttpClient};
use serde_json::{Value, json};
use std::collections::BTreeMap;

/// Optimistic writes give up after this many conflicts in a row (the engine then fails open).
const MAX_CONFLICTS: u32 = 16;

/// A DynamoDB table as a [`StateStore`].
pub struct DynamoStore<H, C> {
    http: H,
    clock: C,
    endpoint: String,
    region: String,
    table: String,
    creds: Credentials,
}

enum Call {
    Ok(Value),
    ConditionFailed,
}

impl<H: HttpClient, C: Clock> DynamoStore<H, C> {
    /// `endpoint`: `https://dynamodb.<region>.amazonaws.com`, or a local server's URL.
    pub fn new(
        http: H,
        clock: C,
        endpoint: String,
        region: String,
        table: String,
        creds: Credentials,
    ) -> Self {
        Self {
            http,
            clock,
            endpoint: endpoint.trim_end_matches('/').to_owned(),
            region,
            table,
            creds,
        }
    }

    async fn call(&self, op: &str, body: Value) -> Result<Call, StoreError> {
        let mut req = http::Request::post(format!("{}/", self.endpoint))
            .header("content-type", "application/x-amz-json-1.0")
            .header("x-amz-target", format!("DynamoDB_20120810.{op}"))
            .body(Bytes::from(body.to_string()))
            .map_err(|e| StoreError(e.to_string()))?;
        let host = req
            .uri()
            .authority()
            .map(|a| a.as_str().to_owned())
            .unwrap_or_default();
        if let Ok(h) = host.parse() {
            req.headers_mut().insert("host", h);
        }
        sigv4::sign(
            &mut req,
            &self.creds,
            &self.region,
            "dynamodb",
            self.clock.now().0 / 1_000_000,
            sigv4::Settings::default(),
        );
        let resp = self
            .http
            .send(req)
            .await
            .map_err(|e| StoreError(format!("DynamoDB {op}: {e}")))?;
        let status = resp.status();
        let mut body = resp.into_body();
        let mut buf = Vec::new();
        while let Some(chunk) = body.next().await {
            buf.extend_from_slice(&chunk.map_err(|e| StoreError(format!("DynamoDB {op}: {e}")))?);
        }
        let v: Value = serde_json::from_slice(&buf).unwrap_or(Value::Null);
        if status.is_success() {
            return Ok(Call::Ok(v));
        }
        let ty = v.get("__type").and_then(Value::as_str).unwrap_or_default();
        if ty.ends_with("ConditionalCheckFailedException") {
            return Ok(Call::ConditionFailed);
        }
        let msg = v
            .get("message")
            .or_else(|| v.get("Message"))
            .and_then(Value::as_str)
            .unwrap_or_default();
        // A signature mismatch quotes the canonical request, session token included: cut it.
        let msg = msg
            .split("The Canonical String")
            .next()
            .unwrap_or_default()
            .trim();
        Err(StoreError(format!(
            "DynamoDB {op} failed ({status}): {} {msg}",
            ty.rsplit('#').next().unwrap_or(ty)
        )))
    }

    /// Creates the table (if missing) and turns TTL on `expires_at` on (if not yet): for tests and
    /// first runs; SAM creates it in AWS. Waits, bounded, for a new table to become active.
    pub async fn create_table(&self) -> Result<(), StoreError> {
        let body = json!({
            "TableName": self.table,
            "AttributeDefinitions": [{"AttributeName": "pk", "AttributeType": "S"}],
            "KeySchema": [{"AttributeName": "pk", "KeyType": "HASH"}],
            "BillingMode": "PAY_PER_REQUEST",
        });
        match self.call("CreateTable", body).await {
            Ok(_) => {}
            Err(e) if e.0.contains("ResourceInUseException") => {}
            Err(e) => return Err(e),
        }
        for _ in 0..120 {
            let d = self
                .call("DescribeTable", json!({"TableName": self.table}))
                .await?;
            let status = match &d {
                Call::Ok(v) => v.pointer("/Table/TableStatus").and_then(Value::as_str),
                Call::ConditionFailed => None,
            };
            if status == Some("ACTIVE") {
                break;
            }
            self.clock.sleep(500).await;
        }
        let ttl = json!({"TableName": self.table, "TimeToLiveSpecification": {"AttributeName": "expires_at", "Enabled": true}});
        match self.call("UpdateTimeToLive", ttl).await {
            Ok(_) => Ok(()),
            // Already on (a second start): nothing to do.
            Err(e) if e.0.contains("already enabled") => Ok(()),
            Err(e) => Err(e),
        }
    }

    async fn breaker(&self, key: &str, cmd: &Command, now_ms: u64) -> Result<Reply, StoreError> {
        for attempt in 0..MAX_CONFLICTS {
            if attempt > 0 {
                // Another instance won the race: let it finish before reading again.
                let jitter = self.clock.now().0 % 10_000;
                self.clock
                    .sleep(((5_000 << attempt.min(5)) + jitter) / 1_000)
                    .await;
            }
            let got = self
                .call(
                    "GetItem",
                    json!({"TableName": self.table, "Key": {"pk": {"S": key}}, "ConsistentRead": true}),
                )
                .await?;
            let Call::Ok(v) = got else { continue };
            let item = v.get("Item");
            let stored_ver = item
                .and_then(|i| i.pointer("/ver/N"))
                .and_then(Value::as_str)
                .map(str::to_owned);
            let prev: Option<Record> = item
                .and_then(|i| i.pointer("/v/S"))
                .and_then(Value::as_str)
                .and_then(|s| serde_json::from_str(s).ok())
                .filter(|r| is_live(r, now_ms));
            let (next, reply) = apply(prev.as_ref(), cmd, now_ms);
            let Some(mut next) = next else {
                return Ok(reply);
            };
            // Versions grow from what is stored, dead or alive: never back to 1.
            next.version = stored_ver
                .as_deref()
                .and_then(|v| v.parse::<u64>().ok())
                .map_or(next.version, |v| next.version.max(v + 1));
            let mut put = json!({
                "TableName": self.table,
                "Item": {
                    "pk": {"S": key},
                    "v": {"S": serde_json::to_string(&next).map_err(|e| StoreError(e.to_string()))?},
                    "ver": {"N": next.version.to_string()},
                    "expires_at": {"N": next.expires_at_ms.div_ceil(1000).to_string()},
                },
            });
            match stored_ver {
                Some(ver) => {
                    put["ConditionExpression"] = json!("ver = :ver");
                    put["ExpressionAttributeValues"] = json!({":ver": {"N": ver}});
                }
                None => put["ConditionExpression"] = json!("attribute_not_exists(pk)"),
            }
            match self.call("PutItem", put).await? {
                Call::Ok(_) => return Ok(reply),
                Call::ConditionFailed => {} // someone else wrote first: read again
            }
        }
        Err(StoreError(format!(
            "DynamoDB: {MAX_CONFLICTS} write conflicts in a row on {key}"
        )))
    }
}

fn num(v: &Value, path: &str) -> u64 {
    v.pointer(path)
        .and_then(Value::as_str)
        .and_then(|n| n.parse::<i64>().ok())
        .map_or(0, |n| u64::try_from(n).unwrap_or(0))
}

impl<H: HttpClient, C: Clock> DynamoStore<H, C> {
    async fn reserve(&self, key: &str, r: &Reserve, now_ms: u64) -> Result<Reply, StoreError> {
        let pk = format!("{key}#{}", r.start_ms);
        let limited = |which| Reply::Limited {
            which,
            retry_after_ms: r.end_ms.saturating_sub(now_ms).max(1),
        };
        let (Some(rmax), Some(tmax)) = (
            r.max_requests.checked_sub(r.requests),
            r.max_tokens.checked_sub(r.tokens),
        ) else {
            let which = if r.requests > r.max_requests {
                Exhausted::Requests
            } else {
                Exhausted::Tokens
            };
            return Ok(limited(which));
        };
        // The totals after adding must stay within the limits: before adding, at most max - n.
        let mut cond = vec!["(attribute_not_exists(#r) OR #r <= :rmax)"];
        if r.tokens > 0 {
            cond.push("(attribute_not_exists(#t) OR #t <= :tmax)");
        }
        let mut values = json!({
            ":r": {"N": r.requests.to_string()}, ":t": {"N": r.tokens.to_string()},
            ":rmax": {"N": rmax.to_string()}, ":e": {"N": r.end_ms.div_ceil(1000).to_string()},
        });
        if r.tokens > 0 {
            values[":tmax"] = json!({"N": tmax.to_string()});
        }
        let body = json!({
            "TableName": self.table,
            "Key": {"pk": {"S": pk}},
            "UpdateExpression": "ADD #r :r, #t :t SET expires_at = :e",
            "ConditionExpression": cond.join(" AND "),
            "ExpressionAttributeNames": {"#r": "r", "#t": "t"},
            "ExpressionAttributeValues": values,
            "ReturnValues": "UPDATED_NEW",
        });
        match self.call("UpdateItem", body).await? {
            Call::Ok(v) => Ok(Reply::Reserved {
                requests: num(&v, "/Attributes/r/N"),
                tokens: num(&v, "/Attributes/t/N"),
            }),
            Call::ConditionFailed => {
                // Refused: which allowance ran out (a read only on this path).
                let got = self
                    .call(
                        "GetItem",
                        json!({"TableName": self.table, "Key": {"pk": {"S": format!("{key}#{}", r.start_ms)}}, "ConsistentRead": true}),
                    )
                    .await?;
                let requests = match got {
                    Call::Ok(v) => num(&v, "/Item/r/N"),
                    Call::ConditionFailed => 0,
                };
                Ok(limited(if requests > rmax {
                    Exhausted::Requests
                } else {
                    Exhausted::Tokens
                }))
            }
        }
    }

    async fn settle(&self, key: &str, st: &Settle) -> Result<Reply, StoreError> {
        let body = json!({
            "TableName": self.table,
            "Key": {"pk": {"S": format!("{key}#{}", st.start_ms)}},
            "UpdateExpression": "ADD #r :r, #t :t",
            // A window whose item is gone (TTL) is over: nothing to correct.
            "ConditionExpression": "attribute_exists(pk)",
            "ExpressionAttributeNames": {"#r": "r", "#t": "t"},
            "ExpressionAttributeValues": {":r": {"N": st.requests.to_string()}, ":t": {"N": st.tokens.to_string()}},
            "ReturnValues": "UPDATED_NEW",
        });
        Ok(match self.call("UpdateItem", body).await? {
            Call::Ok(v) => Reply::Reserved {
                requests: num(&v, "/Attributes/r/N"),
                tokens: num(&v, "/Attributes/t/N"),
            },
            Call::ConditionFailed => Reply::Done,
        })
    }
}

/// Ledger entries per `UpdateItem` (three attributes each), well inside the 4 KB expression limit.
const BOOK_BATCH: usize = 25;

impl<H: HttpClient, C: Clock> DynamoStore<H, C> {
    /// A ledger period is one item, `{key}#{start}`, with numbers `r|NAME`, `t|NAME` and
    /// `u|NAME` (requests, tokens, micro-USD) per entry: `ADD` needs no read and no retry.
    async fn book(&self, key: &str, b: &Book) -> Result<Reply, StoreError> {
        let pk = format!("{key}#{}", b.start_ms);
        for chunk in b.entries.chunks(BOOK_BATCH) {
            let (mut adds, mut names, mut values) = (Vec::new(), json!({}), json!({}));
            for (i, (name, t)) in chunk.iter().enumerate() {
                for (field, n) in [("r", t.requests), ("t", t.tokens), ("u", t.micros)] {
                    adds.push(format!("#{field}{i} :{field}{i}"));
                    names[format!("#{field}{i}")] = json!(format!("{field}|{name}"));
                    values[format!(":{field}{i}")] = json!({"N": n.to_string()});
                }
            }
            let mut expr = format!("ADD {}", adds.join(", "));
            if b.expires_at_ms != u64::MAX {
                expr.push_str(" SET expires_at = :e");
                values[":e"] = json!({"N": b.expires_at_ms.div_ceil(1000).to_string()});
            }
            let body = json!({
                "TableName": self.table,
                "Key": {"pk": {"S": pk}},
                "UpdateExpression": expr,
                "ExpressionAttributeNames": names,
                "ExpressionAttributeValues": values,
            });
            self.call("UpdateItem", body).await?;
        }
        Ok(Reply::Done)
    }

    async fn ledger(&self, key: &str, start_ms: u64) -> Result<Reply, StoreError> {
        let get = json!({"TableName": self.table, "Key": {"pk": {"S": format!("{key}#{start_ms}")}}, "ConsistentRead": true});
        let mut entries = BTreeMap::<String, Tally>::new();
        if let Call::Ok(v) = self.call("GetItem", get).await?
            && let Some(item) = v.get("Item").and_then(Value::as_object)
        {
            for (attr, val) in item {
                let Some((field, name)) = attr.split_once('|') else {
                    continue;
                };
                let n = num(val, "/N");
                let t = entries.entry(name.to_owned()).or_default();
                match field {
                    "r" => t.requests = n,
                    "t" => t.tokens = n,
                    "u" => t.micros = n,
                    _ => {}
                }
            }
        }
        Ok(Reply::Ledger { entries })
    }
}

impl<H: HttpClient, C: Clock> StateStore for DynamoStore<H, C> {
    async fn apply(&self, key: &str, cmd: &Command, now_ms: u64) -> Result<Reply, StoreError> {
        match cmd {
            Command::Add { amount, window_ms } => {
                let w = (*window_ms).max(1);
                let start = now_ms - now_ms % w;
                let body = json!({
                    "TableName": self.table,
                    "Key": {"pk": {"S": format!("{key}#{start}")}},
                    "UpdateExpression": "ADD #t :n SET expires_at = :e",
                    "ExpressionAttributeNames": {"#t": "total"},
                    "ExpressionAttributeValues": {":n": {"N": amount.to_string()}, ":e": {"N": (start + w).div_ceil(1000).to_string()}},
                    "ReturnValues": "UPDATED_NEW",
                });
                match self.call("UpdateItem", body).await? {
                    Call::Ok(v) => {
                        let total = v
                            .pointer("/Attributes/total/N")
                            .and_then(Value::as_str)
                            .and_then(|n| n.parse().ok());
                        total.map(|total| Reply::Total { total }).ok_or_else(|| {
                            StoreError("DynamoDB UpdateItem returned no total".into())
                        })
                    }
                    Call::ConditionFailed => Err(StoreError(
                        "DynamoDB UpdateItem: unexpected condition failure".into(),
                    )),
                }
            }
            Command::Book(b) => self.book(key, b).await,
            Command::Ledger { start_ms } => self.ledger(key, *start_ms).await,
            Command::Reserve(r) => self.reserve(key, r, now_ms).await,
            Command::Settle(st) => self.settle(key, st).await,
            Command::Peek { start_ms } => {
                let get = json!({"TableName": self.table, "Key": {"pk": {"S": format!("{key}#{start_ms}")}}, "ConsistentRead": true});
                match self.call("GetItem", get).await? {
                    Call::Ok(v) => Ok(Reply::Reserved {
                        requests: num(&v, "/Item/r/N"),
                        tokens: num(&v, "/Item/t/N"),
                    }),
                    Call::ConditionFailed => Ok(Reply::Reserved {
                        requests: 0,
                        tokens: 0,
                    }),
                }
            }
            _ => self.breaker(key, cmd, now_ms).await,
        }
    }
}
