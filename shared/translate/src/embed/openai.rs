//! OpenAI's embeddings API, as client and as upstream (every OpenAI-compatible provider).

use super::{malformed, vector};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use gw_model::{ApiError, EmbedInput, EmbedRequest, EmbedResponse};
use serde_json::{Map, Value, json};

pub(super) fn decode_request(body: &[u8]) -> Result<EmbedRequest, ApiError> {
    let v: Value = serde_json::from_slice(body)
        .map_err(|e| ApiError::invalid(format!("request body is not valid JSON: {e}")))?;
    let o = v
        .as_object()
        .ok_or_else(|| ApiError::invalid("request body must be a JSON object"))?;
    let model = o.get("model").and_then(Value::as_str).unwrap_or_default();
    let inputs = inputs(o.get("input").unwrap_or(&Value::Null))?;
    let base64 = match o.get("encoding_format").and_then(Value::as_str) {
        None | Some("float") => false,
        Some("base64") => true,
        Some(other) => {
            return Err(ApiError::invalid(format!(
                "`encoding_format` must be float or base64, not `{other}`"
            ))
            .with_param("encoding_format"));
        }
    };
    let dimensions = match o.get("dimensions") {
        None | Some(Value::Null) => None,
        Some(d) => Some(
            d.as_u64()
                .and_then(|d| u32::try_from(d).ok())
                .filter(|d| *d > 0)
                .ok_or_else(|| {
                    ApiError::invalid("`dimensions` must be a positive integer")
                        .with_param("dimensions")
                })?,
        ),
    };
    Ok(EmbedRequest {
        model: model.to_owned(),
        inputs,
        dimensions,
        base64,
        task: None,
        user: o.get("user").and_then(Value::as_str).map(str::to_owned),
    })
}

/// `input`: a string, strings, one token array, or token arrays.
fn inputs(v: &Value) -> Result<Vec<EmbedInput>, ApiError> {
    let bad = || {
        ApiError::invalid("`input` must be a string, an array of strings, or token arrays")
            .with_param("input")
    };
    let tokens = |a: &[Value]| -> Option<Vec<u32>> {
        a.iter()
            .map(|t| t.as_u64().and_then(|t| u32::try_from(t).ok()))
            .collect()
    };
    match v {
        Value::String(s) => Ok(vec![EmbedInput::Text(s.clone())]),
        Value::Array(a) if !a.is_empty() && a.iter().all(Value::is_number) => {
            Ok(vec![EmbedInput::Tokens(tokens(a).ok_or_else(bad)?)])
        }
        Value::Array(a) => a
            .iter()
            .map(|x| match x {
                Value::String(s) => Ok(EmbedInput::Text(s.clone())),
                Value::Array(t) => tokens(t).map(EmbedInput::Tokens).ok_or_else(bad),
                _ => Err(bad()),
            })
            .collect(),
        _ => Err(bad()),
    }
}

pub(super) fn encode_request(model: &str, req: &EmbedRequest) -> Value {
    let input: Vec<Value> = req
        .inputs
        .iter()
        .map(|i| match i {
            EmbedInput::Text(t) => json!(t),
            EmbedInput::Tokens(t) => json!(t),
        })
        .collect();
    let mut o = Map::new();
    o.insert("model".into(), json!(model));
    o.insert("input".into(), Value::Array(input));
    // Floats: the gateway decodes them (the fast path forwards the client's own choice).
    o.insert("encoding_format".into(), json!("float"));
    if let Some(d) = req.dimensions {
        o.insert("dimensions".into(), json!(d));
    }
    if let Some(u) = &req.user {
        o.insert("user".into(), json!(u));
    }
    Value::Object(o)
}

pub(super) fn decode_response(
    v: &Value,
    model: &mut String,
) -> Result<(Vec<Vec<f64>>, Option<u64>), ApiError> {
    if let Some(m) = v.get("model").and_then(Value::as_str) {
        m.clone_into(model);
    }
    let data = v
        .get("data")
        .and_then(Value::as_array)
        .ok_or_else(|| malformed("no `data`"))?;
    let mut items: Vec<(u64, Vec<f64>)> = Vec::with_capacity(data.len());
    for (i, d) in data.iter().enumerate() {
        let index = d.get("index").and_then(Value::as_u64).unwrap_or(i as u64);
        let e = d
            .get("embedding")
            .ok_or_else(|| malformed("no `embedding`"))?;
        let vec = match e.as_str() {
            Some(b64) => from_base64(b64)?,
            None => vector(e)?,
        };
        items.push((index, vec));
    }
    // In input order, whatever order the upstream listed them in.
    items.sort_by_key(|(i, _)| *i);
    let tokens = v
        .get("usage")
        .and_then(|u| u.get("prompt_tokens"))
        .and_then(Value::as_u64);
    Ok((items.into_iter().map(|(_, v)| v).collect(), tokens))
}

pub(super) fn encode_response(req: &EmbedRequest, resp: &EmbedResponse) -> Value {
    let data: Vec<Value> = resp
        .vectors
        .iter()
        .enumerate()
        .map(|(i, v)| {
            let embedding = if req.base64 {
                json!(to_base64(v))
            } else {
                json!(v)
            };
            json!({"object": "embedding", "index": i, "embedding": embedding})
        })
        .collect();
    let tokens = resp.input_tokens.unwrap_or_else(|| req.estimate_tokens());
    json!({
        "object": "list",
        "data": data,
        "model": resp.model,
        "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
    })
}

/// OpenAI's base64: the float32 values, little-endian.
fn to_base64(v: &[f64]) -> String {
    let bytes: Vec<u8> = v.iter().flat_map(|x| (*x as f32).to_le_bytes()).collect();
    STANDARD.encode(bytes)
}

fn from_base64(s: &str) -> Result<Vec<f64>, ApiError> {
    let bytes = STANDARD
        .decode(s)
        .map_err(|_| malformed("an embedding is not valid base64"))?;
    if bytes.len() % 4 != 0 {
        return Err(malformed("a base64 embedding is not float32 data"));
    }
    Ok(bytes
        .chunks_exact(4)
        .map(|c| f64::from(f32::from_le_bytes([c[0], c[1], c[2], c[3]])))
        .collect())
}
