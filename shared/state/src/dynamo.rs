//! DynamoDB store over the `HttpClient` port (JSON 1.0 protocol, SigV4), so the same code runs
//! on Lambda, in the local server and anywhere else with an HTTP client.
//!
//! Table: hash key `pk` (S); attributes `v` (the record, JSON), `ver` (N), `expires_at` (N, unix
//! seconds, the table's TTL attribute). Breaker commands read consistently, then write only when
//! the state changes, conditioned on the version read (retried on conflict). Counters use one
//! atomic `UpdateItem ADD` on a per-window key.

use crate::{Command, Record, Reply, StateStore, StoreError, apply, is_live};
use bytes::Bytes;
use futures_util::StreamExt;
use gw_auth::sigv4::{self, Credentials};
use gw_ports::HttpClient;
use serde_json::{Value, json};

/// Optimistic writes give up after this many conflicts in a row.
const MAX_CONFLICTS: usize = 64;

/// A DynamoDB table as a [`StateStore`].
pub struct DynamoStore<H> {
    http: H,
    endpoint: String,
    region: String,
    table: String,
    creds: Credentials,
}

enum Call {
    Ok(Value),
    ConditionFailed,
}

impl<H: HttpClient> DynamoStore<H> {
    /// `endpoint`: `https://dynamodb.<region>.amazonaws.com`, or a local server's URL.
    pub fn new(
        http: H,
        endpoint: String,
        region: String,
        table: String,
        creds: Credentials,
    ) -> Self {
        Self {
            http,
            endpoint: endpoint.trim_end_matches('/').to_owned(),
            region,
            table,
            creds,
        }
    }

    async fn call(&self, op: &str, body: Value, now_ms: u64) -> Result<Call, StoreError> {
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
            now_ms / 1000,
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
        Err(StoreError(format!(
            "DynamoDB {op} failed ({status}): {} {msg}",
            ty.rsplit('#').next().unwrap_or(ty)
        )))
    }

    /// Creates the table with TTL on `expires_at` (tests and first-run helpers; SAM creates it in AWS).
    pub async fn create_table(&self, now_ms: u64) -> Result<(), StoreError> {
        let body = json!({
            "TableName": self.table,
            "AttributeDefinitions": [{"AttributeName": "pk", "AttributeType": "S"}],
            "KeySchema": [{"AttributeName": "pk", "KeyType": "HASH"}],
            "BillingMode": "PAY_PER_REQUEST",
        });
        match self.call("CreateTable", body, now_ms).await {
            Ok(_) => {}
            Err(e) if e.0.contains("ResourceInUseException") => return Ok(()),
            Err(e) => return Err(e),
        }
        let ttl = json!({"TableName": self.table, "TimeToLiveSpecification": {"AttributeName": "expires_at", "Enabled": true}});
        self.call("UpdateTimeToLive", ttl, now_ms).await.map(|_| ())
    }

    async fn breaker(&self, key: &str, cmd: &Command, now_ms: u64) -> Result<Reply, StoreError> {
        for _ in 0..MAX_CONFLICTS {
            let got = self.call("GetItem", json!({"TableName": self.table, "Key": {"pk": {"S": key}}, "ConsistentRead": true}), now_ms).await?;
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
            let Some(next) = next else { return Ok(reply) };
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
            match self.call("PutItem", put, now_ms).await? {
                Call::Ok(_) => return Ok(reply),
                Call::ConditionFailed => {} // someone else wrote first: read again
            }
        }
        Err(StoreError(format!(
            "DynamoDB: {MAX_CONFLICTS} write conflicts in a row on {key}"
        )))
    }
}

impl<H: HttpClient> StateStore for DynamoStore<H> {
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
                match self.call("UpdateItem", body, now_ms).await? {
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
            _ => self.breaker(key, cmd, now_ms).await,
        }
    }
}
