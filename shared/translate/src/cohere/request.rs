//! Cohere v2 `/v2/chat` request body <-> canonical request.

use crate::EncodeOpts;
use crate::json::*;
use gw_model::*;
use serde_json::{Map, Value, json};

/// Top-level fields this module maps; everything else goes to `extra`.
const KNOWN: &[&str] = &[
    "model",
    "messages",
    "tools",
    "tool_choice",
    "max_tokens",
    "temperature",
    "p",
    "k",
    "stop_sequences",
    "seed",
    "presence_penalty",
    "frequency_penalty",
    "response_format",
    "thinking",
    "stream",
];

/// Decodes a Cohere v2 chat request.
pub fn decode_request(body: &[u8]) -> Result<ChatRequest, ApiError> {
    let m = parse_body(body)?;
    let mut req = ChatRequest {
        model: req_str(&m, "model", "")?,
        stream: opt_bool(&m, "stream", "")?.unwrap_or(false),
        ..ChatRequest::default()
    };
    let msgs = req_array(m.get("messages"), "messages")?;
    for (i, v) in msgs.iter().enumerate() {
        decode_message(v, &format!("messages[{i}]"), &mut req)?;
    }
    if let Some(Value::Array(tools)) = m.get("tools") {
        for (i, t) in tools.iter().enumerate() {
            let path = format!("tools[{i}]");
            let f = opt_obj(as_obj(t, &path)?, "function", &path)?
                .ok_or_else(|| missing(&join(&path, "function")))?;
            let fp = join(&path, "function");
            req.tools.push(Tool::Function {
                name: req_str(f, "name", &fp)?,
                description: opt_str(f, "description", &fp)?,
                parameters: opt_obj(f, "parameters", &fp)?.map_or_else(
                    || json!({"type": "object", "properties": {}}),
                    |o| Value::Object(o.clone()),
                ),
                strict: None,
                cache: None,
            });
        }
    }
    req.tool_choice = match m.get("tool_choice").and_then(Value::as_str) {
        Some("REQUIRED") => Some(ToolChoice::Required),
        Some("NONE") => Some(ToolChoice::None),
        _ => None,
    };
    let s = &mut req.sampling;
    s.max_tokens = opt_u64(&m, "max_tokens", "")?;
    s.temperature = opt_f64(&m, "temperature", "")?;
    s.top_p = opt_f64(&m, "p", "")?;
    s.top_k = opt_u64(&m, "k", "")?;
    s.seed = opt_i64(&m, "seed", "")?;
    s.presence_penalty = opt_f64(&m, "presence_penalty", "")?;
    s.frequency_penalty = opt_f64(&m, "frequency_penalty", "")?;
    if let Some(Value::Array(stop)) = m.get("stop_sequences") {
        s.stop = stop
            .iter()
            .filter_map(Value::as_str)
            .map(str::to_owned)
            .collect();
    }
    if let Some(rf) = opt_obj(&m, "response_format", "")? {
        req.response_format = match (
            rf.get("type").and_then(Value::as_str),
            rf.get("json_schema"),
        ) {
            (Some("json_object"), Some(schema)) => Some(ResponseFormat::JsonSchema {
                name: "response".into(),
                schema: schema.clone(),
                strict: None,
            }),
            (Some("json_object"), None) => Some(ResponseFormat::JsonObject),
            _ => Some(ResponseFormat::Text),
        };
    }
    if let Some(th) = opt_obj(&m, "thinking", "")? {
        req.reasoning = Some(Reasoning {
            effort: (th.get("type").and_then(Value::as_str) == Some("disabled"))
                .then(|| "none".into()),
            budget_tokens: opt_u64(th, "token_budget", "thinking")?,
        });
    }
    for (k, v) in &m {
        if !KNOWN.contains(&k.as_str()) {
            req.extra.fields.insert(k.clone(), v.clone());
        }
    }
    if !req.extra.fields.is_empty() {
        req.extra.format = Some(Format::Cohere);
    }
    Ok(req)
}

fn decode_message(v: &Value, path: &str, req: &mut ChatRequest) -> Result<(), ApiError> {
    let m = as_obj(v, path)?;
    let role = req_str(m, "role", path)?;
    let content = decode_content(m.get("content"), &join(path, "content"))?;
    match role.as_str() {
        "system" => req.system.extend(content),
        "user" => req.messages.push(Message {
            role: Role::User,
            content,
        }),
        "assistant" => {
            let mut parts = content;
            if let Some(Value::Array(calls)) = m.get("tool_calls") {
                for (i, c) in calls.iter().enumerate() {
                    let cp = format!("{path}.tool_calls[{i}]");
                    let co = as_obj(c, &cp)?;
                    let f = opt_obj(co, "function", &cp)?
                        .ok_or_else(|| missing(&join(&cp, "function")))?;
                    parts.push(Part::ToolUse {
                        id: req_str(co, "id", &cp)?,
                        name: req_str(f, "name", &join(&cp, "function"))?,
                        arguments: opt_str(f, "arguments", &join(&cp, "function"))?
                            .unwrap_or_default(),
                        cache: None,
                    });
                }
            }
            req.messages.push(Message {
                role: Role::Assistant,
                content: parts,
            });
        }
        "tool" => {
            let result = Part::ToolResult {
                tool_use_id: req_str(m, "tool_call_id", path)?,
                content,
                is_error: false,
                cache: None,
            };
            // Consecutive results share one user turn, as canonically.
            match req.messages.last_mut() {
                Some(last)
                    if last.role == Role::User
                        && last
                            .content
                            .iter()
                            .all(|p| matches!(p, Part::ToolResult { .. })) =>
                {
                    last.content.push(result);
                }
                _ => req.messages.push(Message {
                    role: Role::User,
                    content: vec![result],
                }),
            }
        }
        other => {
            return Err(ApiError::invalid(format!(
                "`{path}.role`: unknown role \"{other}\" (expected system, user, assistant or tool)"
            )));
        }
    }
    Ok(())
}

fn decode_content(v: Option<&Value>, path: &str) -> Result<Vec<Part>, ApiError> {
    let text = |t: &str| Part::Text {
        text: t.to_owned(),
        cache: None,
    };
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
                    Some("text") => text(&req_str(po, "text", &pp)?),
                    Some("image_url") => {
                        let url = opt_obj(po, "image_url", &pp)?
                            .and_then(|u| u.get("url"))
                            .and_then(Value::as_str)
                            .ok_or_else(|| missing(&join(&pp, "image_url.url")))?;
                        Part::Image {
                            source: match split_data_uri(url) {
                                Some((media_type, data)) => {
                                    ImageSource::Base64 { media_type, data }
                                }
                                None => ImageSource::Url {
                                    url: url.to_owned(),
                                },
                            },
                            detail: None,
                            cache: None,
                        }
                    }
                    _ => Part::Opaque {
                        format: Format::Cohere,
                        block: p.clone(),
                    },
                })
            })
            .collect(),
        Some(other) => Err(wrong_type(path, "a string or an array", other)),
    }
}

/// Encodes a canonical request as a Cohere v2 chat body.
pub fn encode_request(req: &ChatRequest, o: &EncodeOpts<'_>) -> Result<Vec<u8>, ApiError> {
    let mut body = Map::new();
    body.insert("model".into(), json!(o.model));
    let mut msgs = Vec::new();
    if !req.system.is_empty() {
        msgs.push(json!({"role": "system", "content": encode_content(&req.system, o)?}));
    }
    for m in &req.messages {
        encode_message(m, &mut msgs, o)?;
    }
    body.insert("messages".into(), Value::Array(msgs));
    if !req.tools.is_empty() {
        let mut tools = Vec::new();
        for t in &req.tools {
            match t {
                Tool::Function {
                    name,
                    description,
                    parameters,
                    ..
                } => {
                    let mut f = json!({"name": name, "parameters": parameters});
                    if let Some(d) = description {
                        f["description"] = json!(d);
                    }
                    tools.push(json!({"type": "function", "function": f}));
                }
                Tool::Native { def, .. } => {
                    return Err(server_tool(Format::Cohere, o, def));
                }
            }
        }
        body.insert("tools".into(), Value::Array(tools));
        match &req.tool_choice {
            Some(ToolChoice::Required) => {
                body.insert("tool_choice".into(), json!("REQUIRED"));
            }
            Some(ToolChoice::None) => {
                body.insert("tool_choice".into(), json!("NONE"));
            }
            Some(ToolChoice::Named(_)) => {
                return Err(unsupported(Format::Cohere, o, "forcing one named tool")
                    .with_param("tool_choice"));
            }
            Some(ToolChoice::Auto) | None => {}
        }
    }
    let s = &req.sampling;
    if let Some(mt) = s.max_tokens {
        body.insert("max_tokens".into(), json!(mt));
    }
    for (k, v) in [
        ("temperature", s.temperature),
        ("p", s.top_p),
        ("presence_penalty", s.presence_penalty),
        ("frequency_penalty", s.frequency_penalty),
    ] {
        if let Some(v) = v {
            body.insert(k.into(), num(v));
        }
    }
    if let Some(k) = s.top_k {
        body.insert("k".into(), json!(k));
    }
    if let Some(seed) = s.seed {
        body.insert("seed".into(), json!(seed));
    }
    if !s.stop.is_empty() {
        body.insert("stop_sequences".into(), json!(s.stop));
    }
    match &req.response_format {
        None | Some(ResponseFormat::Text) => {}
        Some(ResponseFormat::JsonObject) => {
            body.insert("response_format".into(), json!({"type": "json_object"}));
        }
        Some(ResponseFormat::JsonSchema { schema, .. }) => {
            body.insert(
                "response_format".into(),
                json!({"type": "json_object", "json_schema": schema}),
            );
        }
    }
    if let Some(r) = &req.reasoning {
        let budget = match r.effort.as_deref() {
            Some("none") => None,
            effort => r.budget_tokens.or_else(|| effort.map(thinking_budget)),
        };
        body.insert(
            "thinking".into(),
            match budget {
                Some(b) => json!({"type": "enabled", "token_budget": b}),
                None => json!({"type": "disabled"}),
            },
        );
    }
    if req.stream {
        body.insert("stream".into(), json!(true));
    }
    keep_own_fields(&mut body, req, Format::Cohere);
    body_bytes(body)
}

fn encode_content(parts: &[Part], o: &EncodeOpts<'_>) -> Result<Value, ApiError> {
    let mut out = Vec::new();
    for p in parts {
        out.push(match p {
            Part::Text { text, .. } => json!({"type": "text", "text": text}),
            Part::Image { source, .. } => {
                let url = match source {
                    ImageSource::Url { url } => url.clone(),
                    ImageSource::Base64 { media_type, data } => {
                        format!("data:{media_type};base64,{data}")
                    }
                };
                json!({"type": "image_url", "image_url": {"url": url}})
            }
            Part::Opaque {
                format: Format::Cohere,
                block,
            } => block.clone(),
            // Reasoning from another provider cannot be replayed to Cohere: its text is history.
            Part::Thinking { .. } | Part::RedactedThinking { .. } => continue,
            other => {
                return Err(unsupported(
                    Format::Cohere,
                    o,
                    &format!("{} content here", part_name(other)),
                ));
            }
        });
    }
    // Plain text stays a string (what every Cohere model accepts).
    if let [only] = out.as_slice()
        && only["type"] == "text"
    {
        return Ok(only["text"].clone());
    }
    Ok(Value::Array(out))
}

fn part_name(p: &Part) -> &'static str {
    match p {
        Part::Text { .. } => "text",
        Part::Image { .. } => "image",
        Part::Opaque { .. } => "opaque",
        Part::ToolUse { .. } => "tool call",
        Part::ToolResult { .. } => "tool result",
        Part::Thinking { .. } => "thinking",
        Part::RedactedThinking { .. } => "redacted thinking",
    }
}

fn encode_message(m: &Message, out: &mut Vec<Value>, o: &EncodeOpts<'_>) -> Result<(), ApiError> {
    match m.role {
        Role::System => {
            out.push(json!({"role": "system", "content": encode_content(&m.content, o)?}));
        }
        Role::User => {
            let (results, rest): (Vec<&Part>, Vec<&Part>) = m
                .content
                .iter()
                .partition(|p| matches!(p, Part::ToolResult { .. }));
            for r in results {
                if let Part::ToolResult {
                    tool_use_id,
                    content,
                    ..
                } = r
                {
                    out.push(json!({
                        "role": "tool",
                        "tool_call_id": tool_use_id,
                        "content": encode_content(content, o)?,
                    }));
                }
            }
            if !rest.is_empty() {
                let rest: Vec<Part> = rest.into_iter().cloned().collect();
                out.push(json!({"role": "user", "content": encode_content(&rest, o)?}));
            }
        }
        Role::Assistant => {
            let (calls, rest): (Vec<&Part>, Vec<&Part>) = m
                .content
                .iter()
                .partition(|p| matches!(p, Part::ToolUse { .. }));
            let mut msg = json!({"role": "assistant"});
            let rest: Vec<Part> = rest.into_iter().cloned().collect();
            let content = encode_content(&rest, o)?;
            if calls.is_empty() {
                msg["content"] = content;
            } else {
                // The turn's text (however many parts) is its tool plan in Cohere's shape.
                let plan: String = rest
                    .iter()
                    .filter_map(|p| match p {
                        Part::Text { text, .. } => Some(text.as_str()),
                        _ => None,
                    })
                    .collect();
                if !plan.is_empty() {
                    msg["tool_plan"] = json!(plan);
                }
            }
            if !calls.is_empty() {
                let calls: Vec<Value> = calls
                    .iter()
                    .filter_map(|c| match c {
                        Part::ToolUse {
                            id,
                            name,
                            arguments,
                            ..
                        } => Some(json!({
                            "id": id, "type": "function",
                            "function": {"name": name, "arguments": arguments},
                        })),
                        _ => None,
                    })
                    .collect();
                msg["tool_calls"] = Value::Array(calls);
            }
            out.push(msg);
        }
    }
    Ok(())
}
