//! Small helpers for walking untyped JSON with precise, path-named error messages.

use gw_model::{ApiError, Format};
use serde_json::{Map, Value};

/// Parses a request body, turning syntax errors into a 400 that says where.
pub(crate) fn parse_body(body: &[u8]) -> Result<Map<String, Value>, ApiError> {
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(m)) => Ok(m),
        Ok(other) => Err(ApiError::invalid(format!(
            "request body must be a JSON object, got {}",
            type_name(&other)
        ))),
        Err(e) => Err(ApiError::invalid(format!(
            "malformed JSON in request body: {e}"
        ))),
    }
}

pub(crate) fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

pub(crate) fn wrong_type(path: &str, expected: &str, got: &Value) -> ApiError {
    ApiError::invalid(format!(
        "`{path}`: expected {expected}, got {}",
        type_name(got)
    ))
    .with_param(path)
}

pub(crate) fn missing(path: &str) -> ApiError {
    ApiError::invalid(format!("`{path}`: required field is missing")).with_param(path)
}

/// A required string.
pub(crate) fn req_str(m: &Map<String, Value>, key: &str, path: &str) -> Result<String, ApiError> {
    match m.get(key) {
        Some(Value::String(s)) => Ok(s.clone()),
        Some(v) => Err(wrong_type(&join(path, key), "a string", v)),
        None => Err(missing(&join(path, key))),
    }
}

/// An optional string (null counts as absent).
pub(crate) fn opt_str(
    m: &Map<String, Value>,
    key: &str,
    path: &str,
) -> Result<Option<String>, ApiError> {
    match m.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(v) => Err(wrong_type(&join(path, key), "a string", v)),
    }
}

pub(crate) fn opt_f64(
    m: &Map<String, Value>,
    key: &str,
    path: &str,
) -> Result<Option<f64>, ApiError> {
    match m.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => Ok(n.as_f64()),
        Some(v) => Err(wrong_type(&join(path, key), "a number", v)),
    }
}

pub(crate) fn opt_u64(
    m: &Map<String, Value>,
    key: &str,
    path: &str,
) -> Result<Option<u64>, ApiError> {
    match m.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => n.as_u64().map(Some).ok_or_else(|| {
            ApiError::invalid(format!(
                "`{}`: expected a non-negative integer, got {n}",
                join(path, key)
            ))
            .with_param(join(path, key))
        }),
        Some(v) => Err(wrong_type(&join(path, key), "an integer", v)),
    }
}

pub(crate) fn opt_i64(
    m: &Map<String, Value>,
    key: &str,
    path: &str,
) -> Result<Option<i64>, ApiError> {
    match m.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => n.as_i64().map(Some).ok_or_else(|| {
            ApiError::invalid(format!(
                "`{}`: expected an integer, got {n}",
                join(path, key)
            ))
            .with_param(join(path, key))
        }),
        Some(v) => Err(wrong_type(&join(path, key), "an integer", v)),
    }
}

pub(crate) fn opt_bool(
    m: &Map<String, Value>,
    key: &str,
    path: &str,
) -> Result<Option<bool>, ApiError> {
    match m.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Bool(b)) => Ok(Some(*b)),
        Some(v) => Err(wrong_type(&join(path, key), "a boolean", v)),
    }
}

pub(crate) fn opt_obj<'a>(
    m: &'a Map<String, Value>,
    key: &str,
    path: &str,
) -> Result<Option<&'a Map<String, Value>>, ApiError> {
    match m.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Object(o)) => Ok(Some(o)),
        Some(v) => Err(wrong_type(&join(path, key), "an object", v)),
    }
}

/// A required array at `path`.
pub(crate) fn req_array<'a>(v: Option<&'a Value>, path: &str) -> Result<&'a Vec<Value>, ApiError> {
    match v {
        Some(Value::Array(a)) => Ok(a),
        Some(v) => Err(wrong_type(path, "an array", v)),
        None => Err(missing(path)),
    }
}

pub(crate) fn as_obj<'a>(v: &'a Value, path: &str) -> Result<&'a Map<String, Value>, ApiError> {
    v.as_object()
        .ok_or_else(|| wrong_type(path, "an object", v))
}

pub(crate) fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_owned()
    } else {
        format!("{path}.{key}")
    }
}

/// `image/png` and the payload from a `data:image/png;base64,...` URI.
pub(crate) fn split_data_uri(url: &str) -> Option<(String, String)> {
    let rest = url.strip_prefix("data:")?;
    let (meta, data) = rest.split_once(',')?;
    let media = meta.strip_suffix(";base64")?;
    Some((media.to_owned(), data.to_owned()))
}

/// Numbers as JSON without trailing noise (serde_json keeps integers integral).
pub(crate) fn num(f: f64) -> Value {
    serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number)
}

/// A request the target's format cannot express: named, never silently dropped.
/// The refusal of a server-side tool (`def`, another format's) that `format` cannot run.
pub(crate) fn server_tool(format: Format, o: &crate::EncodeOpts<'_>, def: &Value) -> ApiError {
    let ty = def.get("type").unwrap_or(&Value::Null);
    unsupported(format, o, &format!("the server tool {ty}"))
}

/// A same-format client's fields the canonical model does not name, kept where the encoder set
/// nothing of its own.
pub(crate) fn keep_own_fields(
    body: &mut Map<String, Value>,
    req: &gw_model::ChatRequest,
    format: Format,
) {
    if req.extra.format == Some(format) {
        for (k, v) in &req.extra.fields {
            body.entry(k.clone()).or_insert_with(|| v.clone());
        }
    }
}

/// The encoded request body.
pub(crate) fn body_bytes(body: Map<String, Value>) -> Result<Vec<u8>, ApiError> {
    serde_json::to_vec(&Value::Object(body))
        .map_err(|e| ApiError::invalid(format!("cannot encode request: {e}")))
}

pub(crate) fn unsupported(format: Format, o: &crate::EncodeOpts<'_>, what: &str) -> ApiError {
    let name = match format {
        Format::OpenAi => "OpenAI",
        Format::Anthropic => "Anthropic",
        Format::Gemini => "Gemini",
        Format::Cohere => "Cohere",
        Format::Bedrock => "Bedrock",
        Format::Responses => "Responses",
        Format::Replicate => "Replicate",
    };
    ApiError::invalid(format!(
        "provider `{}` ({name} format) does not support {what}",
        o.provider
    ))
    .with_code("unsupported_parameter")
}

/// Thinking budget for an OpenAI-style effort (Anthropic and Gemini budgets).
pub(crate) fn thinking_budget(effort: &str) -> u64 {
    match effort {
        "minimal" => 1024,
        "low" => 2048,
        "medium" => 8192,
        _ => 24576,
    }
}
