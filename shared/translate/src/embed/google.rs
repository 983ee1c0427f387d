//! Gemini's embeddings: the Gemini API (`:embedContent`, `:batchEmbedContents`, as client and
//! upstream) and Vertex AI's `:predict`.

use super::{malformed, vector};
use gw_model::{ApiError, EmbedInput, EmbedRequest, EmbedResponse};
use serde_json::{Map, Value, json};

/// The text of a `Content` (its text parts, joined).
fn content_text(c: &Value) -> Result<String, ApiError> {
    let parts = c
        .get("parts")
        .and_then(Value::as_array)
        .ok_or_else(|| ApiError::invalid("`content.parts` is required").with_param("content"))?;
    Ok(parts
        .iter()
        .filter_map(|p| p.get("text").and_then(Value::as_str))
        .collect::<Vec<_>>()
        .join(""))
}

fn field<'a>(o: &'a Value, camel: &str, snake: &str) -> Option<&'a Value> {
    o.get(camel).or_else(|| o.get(snake))
}

pub(super) fn decode_client(batch: bool, body: &[u8]) -> Result<EmbedRequest, ApiError> {
    let v: Value = serde_json::from_slice(body)
        .map_err(|e| ApiError::invalid(format!("request body is not valid JSON: {e}")))?;
    let requests: Vec<&Value> = if batch {
        v.get("requests")
            .and_then(Value::as_array)
            .ok_or_else(|| ApiError::invalid("`requests` is required").with_param("requests"))?
            .iter()
            .collect()
    } else {
        vec![&v]
    };
    let mut req = EmbedRequest::default();
    for (i, r) in requests.iter().enumerate() {
        let c = r
            .get("content")
            .ok_or_else(|| ApiError::invalid("`content` is required").with_param("content"))?;
        req.inputs.push(EmbedInput::Text(content_text(c)?));
        if i == 0 {
            req.task = field(r, "taskType", "task_type")
                .and_then(Value::as_str)
                .map(str::to_owned);
            req.dimensions = field(r, "outputDimensionality", "output_dimensionality")
                .and_then(Value::as_u64)
                .and_then(|d| u32::try_from(d).ok());
        }
    }
    Ok(req)
}

pub(super) fn encode_client(batch: bool, resp: &EmbedResponse) -> Value {
    let one = |v: &Vec<f64>| json!({"values": v});
    if batch {
        json!({"embeddings": resp.vectors.iter().map(one).collect::<Vec<_>>()})
    } else {
        json!({"embedding": resp.vectors.first().map(one).unwrap_or(json!({"values": []}))})
    }
}

pub(super) fn encode_batch(model: &str, req: &EmbedRequest, texts: &[&str]) -> Value {
    let requests: Vec<Value> = texts
        .iter()
        .map(|t| {
            let mut o = Map::new();
            o.insert("model".into(), json!(format!("models/{model}")));
            o.insert("content".into(), json!({"parts": [{"text": t}]}));
            if let Some(task) = &req.task {
                o.insert("taskType".into(), json!(task));
            }
            if let Some(d) = req.dimensions {
                o.insert("outputDimensionality".into(), json!(d));
            }
            Value::Object(o)
        })
        .collect();
    json!({ "requests": requests })
}

pub(super) fn decode_batch(v: &Value) -> Result<(Vec<Vec<f64>>, Option<u64>), ApiError> {
    let e = v
        .get("embeddings")
        .and_then(Value::as_array)
        .ok_or_else(|| malformed("no `embeddings`"))?;
    let vectors = e
        .iter()
        .map(|x| vector(x.get("values").unwrap_or(&Value::Null)))
        .collect::<Result<_, _>>()?;
    // The Gemini API reports no token count for embeddings.
    Ok((vectors, None))
}

pub(super) fn encode_predict(req: &EmbedRequest, texts: &[&str]) -> Value {
    let instances: Vec<Value> = texts
        .iter()
        .map(|t| match &req.task {
            Some(task) => json!({"content": t, "task_type": task}),
            None => json!({"content": t}),
        })
        .collect();
    let mut o = Map::new();
    o.insert("instances".into(), Value::Array(instances));
    if let Some(d) = req.dimensions {
        o.insert("parameters".into(), json!({"outputDimensionality": d}));
    }
    Value::Object(o)
}

pub(super) fn decode_predict(v: &Value) -> Result<(Vec<Vec<f64>>, Option<u64>), ApiError> {
    let p = v
        .get("predictions")
        .and_then(Value::as_array)
        .ok_or_else(|| malformed("no `predictions`"))?;
    let mut tokens = None;
    let mut vectors = Vec::with_capacity(p.len());
    for x in p {
        let e = x
            .get("embeddings")
            .ok_or_else(|| malformed("no `embeddings`"))?;
        vectors.push(vector(e.get("values").unwrap_or(&Value::Null))?);
        if let Some(n) = e
            .get("statistics")
            .and_then(|s| s.get("token_count"))
            .and_then(Value::as_f64)
        {
            *tokens.get_or_insert(0) += n as u64;
        }
    }
    Ok((vectors, tokens))
}
