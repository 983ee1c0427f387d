//! Cohere's embeddings: v2 `/v2/embed`, and Bedrock `InvokeModel` (Cohere and Titan bodies).

use super::{malformed, vector};
use gw_model::{ApiError, EmbedRequest};
use serde_json::{Map, Value, json};

/// Cohere's `input_type` for a Gemini-style task (documents unless the task says otherwise).
fn input_type(task: Option<&str>) -> &'static str {
    match task {
        Some(
            "RETRIEVAL_QUERY" | "QUESTION_ANSWERING" | "FACT_VERIFICATION" | "CODE_RETRIEVAL_QUERY",
        ) => "search_query",
        Some("CLASSIFICATION") => "classification",
        Some("CLUSTERING") => "clustering",
        _ => "search_document",
    }
}

pub(super) fn encode_v2(model: &str, req: &EmbedRequest, texts: &[&str]) -> Value {
    let mut o = Map::new();
    o.insert("model".into(), json!(model));
    o.insert("texts".into(), json!(texts));
    o.insert("input_type".into(), json!(input_type(req.task.as_deref())));
    o.insert("embedding_types".into(), json!(["float"]));
    if let Some(d) = req.dimensions {
        o.insert("output_dimension".into(), json!(d));
    }
    Value::Object(o)
}

/// Bedrock: Cohere models take every text at once; Titan one text per call.
pub(super) fn encode_bedrock(model: &str, req: &EmbedRequest, texts: &[&str]) -> Vec<Value> {
    if model.contains("cohere.embed") {
        return vec![json!({
            "texts": texts,
            "input_type": input_type(req.task.as_deref()),
            "embedding_types": ["float"],
        })];
    }
    texts
        .iter()
        .map(|t| {
            let mut o = Map::new();
            o.insert("inputText".into(), json!(t));
            if let Some(d) = req.dimensions {
                o.insert("dimensions".into(), json!(d));
            }
            Value::Object(o)
        })
        .collect()
}

/// Cohere (v2, or v1's bare list), and Titan's `embedding`.
pub(super) fn decode(v: &Value) -> Result<(Vec<Vec<f64>>, Option<u64>), ApiError> {
    if let Some(e) = v.get("embedding") {
        let tokens = v.get("inputTextTokenCount").and_then(Value::as_u64);
        return Ok((vec![vector(e)?], tokens));
    }
    let e = v
        .get("embeddings")
        .ok_or_else(|| malformed("no `embeddings`"))?;
    let list = e.get("float").unwrap_or(e);
    let vectors = list
        .as_array()
        .ok_or_else(|| malformed("`embeddings` is not a list"))?
        .iter()
        .map(vector)
        .collect::<Result<_, _>>()?;
    let tokens = v
        .get("meta")
        .and_then(|m| m.get("billed_units"))
        .and_then(|b| b.get("input_tokens"))
        .and_then(Value::as_u64);
    Ok((vectors, tokens))
}
