//! OpenAI Responses API request body <-> canonical request.

use crate::EncodeOpts;
use crate::json::*;
use gw_model::*;
use serde_json::{Map, Value, json};

/// Top-level fields this module maps; everything else goes to `extra` (passed to a native
/// Responses upstream only).
const KNOWN: &[&str] = &[
    "model",
    "instructions",
    "input",
    "tools",
    "tool_choice",
    "parallel_tool_calls",
    "text",
    "reasoning",
    "max_output_tokens",
    "temperature",
    "top_p",
    "stream",
    "user",
    "safety_identifier",
    "store",
    "include",
    "previous_response_id",
];

/// Decodes a Responses request.
pub fn decode_request(body: &[u8]) -> Result<ChatRequest, ApiError> {
    let m = parse_body(body)?;
    let mut req = ChatRequest {
        model: req_str(&m, "model", "")?,
        stream: opt_bool(&m, "stream", "")?.unwrap_or(false),
        // Streams always end with the usage in `response.completed`.
        include_usage: true,
        ..ChatRequest::default()
    };
    if let Some(i) = opt_str(&m, "instructions", "")? {
        req.system.push(Part::Text {
            text: i,
            cache: None,
        });
    }
    match m.get("input") {
        None | Some(Value::Null) => return Err(missing("input")),
        Some(Value::String(s)) => req.messages.push(Message {
            role: Role::User,
            content: vec![text(s)],
        }),
        Some(Value::Array(items)) => {
            for (i, item) in items.iter().enumerate() {
                decode_item(item, &format!("input[{i}]"), &mut req)?;
            }
        }
        Some(v) => return Err(wrong_type("input", "a string or an array", v)),
    }
    if let Some(Value::Array(tools)) = m.get("tools") {
        super::tools::decode_tools(tools, &mut req)?;
    }
    super::tools::decode_tool_choice(m.get("tool_choice"), &mut req)?;
    req.parallel_tool_calls = opt_bool(&m, "parallel_tool_calls", "")?;
    req.sampling.max_tokens = opt_u64(&m, "max_output_tokens", "")?;
    req.sampling.temperature = opt_f64(&m, "temperature", "")?;
    req.sampling.top_p = opt_f64(&m, "top_p", "")?;
    if let Some(f) = opt_obj(&m, "text", "")?.and_then(|t| t.get("format")) {
        req.response_format = match f.get("type").and_then(Value::as_str) {
            Some("json_schema") => Some(ResponseFormat::JsonSchema {
                name: f
                    .get("name")
                    .and_then(Value::as_str)
                    .unwrap_or("response")
                    .to_owned(),
                schema: f.get("schema").cloned().unwrap_or_else(|| json!({})),
                strict: f.get("strict").and_then(Value::as_bool),
            }),
            Some("json_object") => Some(ResponseFormat::JsonObject),
            _ => None,
        };
    }
    if let Some(r) = opt_obj(&m, "reasoning", "")?
        && let Some(e) = opt_str(r, "effort", "reasoning")?
    {
        req.reasoning = Some(Reasoning {
            effort: Some(e),
            budget_tokens: None,
        });
    }
    req.user = opt_str(&m, "safety_identifier", "")?.or(opt_str(&m, "user", "")?);
    for (k, v) in &m {
        if !KNOWN.contains(&k.as_str())
            || matches!(k.as_str(), "store" | "include" | "previous_response_id")
        {
            req.extra.fields.insert(k.clone(), v.clone());
        }
    }
    if !req.extra.fields.is_empty() {
        req.extra.format = Some(Format::Responses);
    }
    Ok(req)
}

fn text(s: &str) -> Part {
    Part::Text {
        text: s.to_owned(),
        cache: None,
    }
}

fn push(req: &mut ChatRequest, role: Role, part: Part) {
    match req.messages.last_mut() {
        // Consecutive items of one turn (calls after text, results after results) share it; a
        // user turn is all results or none, so its first part tells which.
        Some(last)
            if last.role == role
                && (role == Role::Assistant
                    || matches!(part, Part::ToolResult { .. })
                        == last
                            .content
                            .first()
                            .is_none_or(|p| matches!(p, Part::ToolResult { .. }))) =>
        {
            last.content.push(part);
        }
        _ => req.messages.push(Message {
            role,
            content: vec![part],
        }),
    }
}

fn decode_item(v: &Value, path: &str, req: &mut ChatRequest) -> Result<(), ApiError> {
    let o = as_obj(v, path)?;
    let ty = o.get("type").and_then(Value::as_str).unwrap_or("message");
    match ty {
        "message" => {
            let role = match req_str(o, "role", path)?.as_str() {
                "user" => Role::User,
                "assistant" => Role::Assistant,
                "system" | "developer" => Role::System,
                other => {
                    return Err(ApiError::invalid(format!(
                        "`{path}.role`: unknown role \"{other}\""
                    )));
                }
            };
            let parts = decode_content(o.get("content"), &join(path, "content"))?;
            if role == Role::System && req.messages.is_empty() {
                req.system.extend(parts);
            } else {
                for p in parts {
                    push(req, role, p);
                }
            }
        }
        "function_call" => push(
            req,
            Role::Assistant,
            Part::ToolUse {
                id: req_str(o, "call_id", path)?,
                name: match opt_str(o, "namespace", path)? {
                    Some(ns) => {
                        format!("{ns}{}{}", super::tools::NS_SEP, req_str(o, "name", path)?)
                    }
                    None => req_str(o, "name", path)?,
                },
                arguments: opt_str(o, "arguments", path)?.unwrap_or_default(),
                cache: None,
            },
        ),
        "function_call_output" => {
            let content = match o.get("output") {
                Some(Value::String(s)) => vec![text(s)],
                Some(Value::Array(_)) => decode_content(o.get("output"), &join(path, "output"))?,
                Some(other) => vec![text(&other.to_string())],
                None => return Err(missing(&join(path, "output"))),
            };
            push(
                req,
                Role::User,
                Part::ToolResult {
                    tool_use_id: req_str(o, "call_id", path)?,
                    content,
                    is_error: false,
                    cache: None,
                },
            );
        }
        "reasoning" => {
            // Reasoning the gateway itself produced from another provider's thinking carries that
            // provider's signature in `encrypted_content`; its summary is the thinking text.
            let summary: String = o
                .get("summary")
                .and_then(Value::as_array)
                .map(|a| {
                    a.iter()
                        .filter_map(|s| s.get("text").and_then(Value::as_str))
                        .collect::<Vec<_>>()
                        .join("\n")
                })
                .unwrap_or_default();
            let encrypted = o.get("encrypted_content").and_then(Value::as_str);
            let part = match encrypted.and_then(|e| e.strip_prefix(super::REDACTED)) {
                Some(data) => Part::RedactedThinking {
                    data: data.to_owned(),
                },
                None => Part::Thinking {
                    text: summary,
                    signature: encrypted.map(str::to_owned),
                },
            };
            push(req, Role::Assistant, part);
        }
        // Hosted tool calls, item references, computer use...: kept for a native upstream; any
        // other format refuses them by name.
        _ => push(
            req,
            Role::Assistant,
            Part::Opaque {
                format: Format::Responses,
                block: v.clone(),
            },
        ),
    }
    Ok(())
}

fn decode_content(v: Option<&Value>, path: &str) -> Result<Vec<Part>, ApiError> {
    match v {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::String(s)) => Ok(vec![text(s)]),
        Some(Value::Array(a)) => a
            .iter()
            .enumerate()
            .map(|(i, p)| {
                let pp = format!("{path}[{i}]");
                let po = as_obj(p, &pp)?;
                Ok(match po.get("type").and_then(Value::as_str) {
                    Some("input_text" | "output_text" | "text") => text(&req_str(po, "text", &pp)?),
                    Some("input_image") => {
                        let url = opt_str(po, "image_url", &pp)?.ok_or_else(|| {
                            ApiError::invalid(format!(
                                "`{pp}`: only images given by `image_url` can be translated (not file ids)"
                            ))
                        })?;
                        Part::Image {
                            source: match split_data_uri(&url) {
                                Some((media_type, data)) => ImageSource::Base64 { media_type, data },
                                None => ImageSource::Url { url },
                            },
                            detail: opt_str(po, "detail", &pp)?,
                            cache: None,
                        }
                    }
                    _ => Part::Opaque {
                        format: Format::Responses,
                        block: p.clone(),
                    },
                })
            })
            .collect(),
        Some(other) => Err(wrong_type(path, "a string or an array", other)),
    }
}

/// Refuses what only a native Responses upstream could do (state kept by OpenAI), for a request
/// that is about to be translated.
pub fn check_translatable(req: &ChatRequest) -> Result<(), ApiError> {
    if req.extra.format != Some(Format::Responses) {
        return Ok(());
    }
    super::tools::check_forced_hosted(req)?;
    if req
        .extra
        .fields
        .get("previous_response_id")
        .is_some_and(|v| !v.is_null())
    {
        return Err(ApiError::invalid(
            "`previous_response_id` needs a provider that stores responses (OpenAI): this route translates the request; send the whole conversation in `input` instead",
        )
        .with_param("previous_response_id"));
    }
    if req.extra.fields.get("store") == Some(&Value::Bool(true)) {
        return Err(ApiError::invalid(
            "`store: true` needs a provider that stores responses (OpenAI): this route translates the request; leave `store` out or set it to false",
        )
        .with_param("store"));
    }
    Ok(())
}

/// Encodes a canonical request as a Responses body (for a provider whose format is `responses`).
pub fn encode_request(req: &ChatRequest, o: &EncodeOpts<'_>) -> Result<Vec<u8>, ApiError> {
    let mut body = Map::new();
    body.insert("model".into(), json!(o.model));
    let instructions: Vec<&str> = req
        .system
        .iter()
        .filter_map(|p| match p {
            Part::Text { text, .. } => Some(text.as_str()),
            _ => None,
        })
        .collect();
    if !instructions.is_empty() {
        body.insert("instructions".into(), json!(instructions.join("\n\n")));
    }
    let mut input = Vec::new();
    for m in &req.messages {
        let role = match m.role {
            Role::User => "user",
            Role::Assistant => "assistant",
            Role::System => "developer",
        };
        let mut content = Vec::new();
        for p in &m.content {
            match p {
                Part::Text { text, .. } => content.push(if m.role == Role::Assistant {
                    json!({"type": "output_text", "text": text})
                } else {
                    json!({"type": "input_text", "text": text})
                }),
                Part::Image { source, detail, .. } => {
                    let url = match source {
                        ImageSource::Url { url } => url.clone(),
                        ImageSource::Base64 { media_type, data } => format!("data:{media_type};base64,{data}"),
                    };
                    let mut v = json!({"type": "input_image", "image_url": url});
                    if let Some(d) = detail {
                        v["detail"] = json!(d);
                    }
                    content.push(v);
                }
                Part::ToolUse {
                    id,
                    name,
                    arguments,
                    ..
                } => input.push(json!({"type": "function_call", "call_id": id, "name": name, "arguments": arguments})),
                Part::ToolResult {
                    tool_use_id,
                    content: c,
                    ..
                } => {
                    let out: Vec<&str> = c
                        .iter()
                        .filter_map(|p| match p {
                            Part::Text { text, .. } => Some(text.as_str()),
                            _ => None,
                        })
                        .collect();
                    input.push(json!({"type": "function_call_output", "call_id": tool_use_id, "output": out.join("\n")}));
                }
                Part::Thinking { text, signature } => {
                    if let Some(sig) = signature {
                        input.push(json!({"type": "reasoning", "summary": [{"type": "summary_text", "text": text}], "encrypted_content": sig}));
                    }
                }
                Part::RedactedThinking { .. } => {}
                Part::Opaque {
                    format: Format::Responses,
                    block,
                } => input.push(block.clone()),
                Part::Opaque { block, .. } => {
                    return Err(unsupported(
                        Format::Responses,
                        o,
                        &format!("the content block {}", block.get("type").unwrap_or(&Value::Null)),
                    ));
                }
            }
        }
        if !content.is_empty() {
            input.push(json!({"type": "message", "role": role, "content": content}));
        }
    }
    body.insert("input".into(), Value::Array(input));
    if !req.tools.is_empty() {
        let mut tools = Vec::new();
        for t in &req.tools {
            match t {
                Tool::Function {
                    name,
                    description,
                    parameters,
                    strict,
                    ..
                } => {
                    let mut f = json!({"type": "function", "name": name, "parameters": parameters});
                    if let Some(d) = description {
                        f["description"] = json!(d);
                    }
                    if let Some(s) = strict {
                        f["strict"] = json!(s);
                    }
                    tools.push(f);
                }
                Tool::Native {
                    format: Format::Responses,
                    def,
                } => tools.push(def.clone()),
                Tool::Native { def, .. } => {
                    return Err(server_tool(Format::Responses, o, def));
                }
            }
        }
        body.insert("tools".into(), Value::Array(tools));
        if let Some(tc) = &req.tool_choice {
            body.insert(
                "tool_choice".into(),
                match tc {
                    ToolChoice::Auto => json!("auto"),
                    ToolChoice::None => json!("none"),
                    ToolChoice::Required => json!("required"),
                    ToolChoice::Named(n) => json!({"type": "function", "name": n}),
                },
            );
        }
    }
    if let Some(p) = req.parallel_tool_calls {
        body.insert("parallel_tool_calls".into(), json!(p));
    }
    let s = &req.sampling;
    if let Some(mt) = s.max_tokens {
        body.insert("max_output_tokens".into(), json!(mt));
    }
    if let Some(t) = s.temperature {
        body.insert("temperature".into(), num(t));
    }
    if let Some(t) = s.top_p {
        body.insert("top_p".into(), num(t));
    }
    match &req.response_format {
        Some(ResponseFormat::JsonSchema {
            name,
            schema,
            strict,
        }) => {
            let mut f = json!({"type": "json_schema", "name": name, "schema": schema});
            if let Some(st) = strict {
                f["strict"] = json!(st);
            }
            body.insert("text".into(), json!({"format": f}));
        }
        Some(ResponseFormat::JsonObject) => {
            body.insert("text".into(), json!({"format": {"type": "json_object"}}));
        }
        _ => {}
    }
    if let Some(r) = &req.reasoning {
        let effort = r.effort.clone().or_else(|| {
            r.budget_tokens.map(|b| match b {
                0..=4095 => "low".to_owned(),
                4096..=16383 => "medium".to_owned(),
                _ => "high".to_owned(),
            })
        });
        if let Some(e) = effort {
            body.insert("reasoning".into(), json!({"effort": e, "summary": "auto"}));
        }
    }
    if req.stream {
        body.insert("stream".into(), json!(true));
    }
    // The gateway keeps no state for an upstream either: nothing is stored, reasoning comes back.
    body.insert("store".into(), json!(false));
    body.insert("include".into(), json!(["reasoning.encrypted_content"]));
    if req.extra.format == Some(Format::Responses) {
        for (k, v) in &req.extra.fields {
            body.insert(k.clone(), v.clone());
        }
    }
    body_bytes(body)
}
