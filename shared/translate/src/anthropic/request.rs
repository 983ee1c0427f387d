//! Anthropic Messages request body <-> canonical request.

use crate::EncodeOpts;
use crate::json::*;
use gw_model::*;
use serde_json::{Map, Value, json};

const KNOWN: &[&str] = &[
    "model",
    "messages",
    "system",
    "max_tokens",
    "temperature",
    "top_p",
    "top_k",
    "stop_sequences",
    "stream",
    "tools",
    "tool_choice",
    "thinking",
    "output_config",
    "metadata",
];

/// Decodes an Anthropic Messages request.
pub fn decode_request(body: &[u8]) -> Result<ChatRequest, ApiError> {
    let m = parse_body(body)?;
    let mut req = ChatRequest {
        model: req_str(&m, "model", "")?,
        ..ChatRequest::default()
    };
    if req.model.is_empty() {
        return Err(ApiError::invalid("`model`: must not be empty").with_param("model"));
    }
    let msgs = req_array(m.get("messages"), "messages")?;
    for (i, v) in msgs.iter().enumerate() {
        let path = format!("messages[{i}]");
        let mo = as_obj(v, &path)?;
        let role = match req_str(mo, "role", &path)?.as_str() {
            "user" => Role::User,
            "assistant" => Role::Assistant,
            // Mid-conversation instructions (the beta Claude Code enables for other models).
            "system" => Role::System,
            other => {
                return Err(ApiError::invalid(format!(
                    "`{path}.role`: Unexpected role \"{other}\": the input message role must be user, assistant or system"
                ))
                .with_param(join(&path, "role")));
            }
        };
        let content = decode_blocks(mo.get("content"), &join(&path, "content"))?;
        req.messages.push(Message { role, content });
    }
    req.system = match m.get("system") {
        None | Some(Value::Null) => Vec::new(),
        s => decode_blocks(s, "system")?,
    };
    let s = &mut req.sampling;
    s.max_tokens = opt_u64(&m, "max_tokens", "")?;
    s.temperature = opt_f64(&m, "temperature", "")?;
    s.top_p = opt_f64(&m, "top_p", "")?;
    s.top_k = opt_u64(&m, "top_k", "")?;
    if let Some(v) = m.get("stop_sequences").filter(|v| !v.is_null()) {
        let a = v
            .as_array()
            .ok_or_else(|| wrong_type("stop_sequences", "an array of strings", v))?;
        for (i, x) in a.iter().enumerate() {
            s.stop.push(
                x.as_str()
                    .ok_or_else(|| wrong_type(&format!("stop_sequences[{i}]"), "a string", x))?
                    .to_owned(),
            );
        }
    }
    req.stream = opt_bool(&m, "stream", "")?.unwrap_or(false);
    req.include_usage = true;
    if let Some(v) = m.get("tools").filter(|v| !v.is_null()) {
        let a = v
            .as_array()
            .ok_or_else(|| wrong_type("tools", "an array", v))?;
        for (i, t) in a.iter().enumerate() {
            let path = format!("tools[{i}]");
            let to = as_obj(t, &path)?;
            let custom = matches!(
                to.get("type").and_then(Value::as_str),
                None | Some("custom")
            );
            if custom {
                req.tools.push(Tool::Function {
                    name: req_str(to, "name", &path)?,
                    description: opt_str(to, "description", &path)?,
                    parameters: opt_obj(to, "input_schema", &path)?
                        .map(|o| Value::Object(o.clone()))
                        .ok_or_else(|| missing(&join(&path, "input_schema")))?,
                    strict: None,
                    cache: to.get("cache_control").cloned(),
                });
            } else {
                req.tools.push(Tool::Native {
                    format: Format::Anthropic,
                    def: t.clone(),
                });
            }
        }
    }
    if let Some(tc) = opt_obj(&m, "tool_choice", "")? {
        req.tool_choice = Some(match req_str(tc, "type", "tool_choice")?.as_str() {
            "auto" => ToolChoice::Auto,
            "any" => ToolChoice::Required,
            "none" => ToolChoice::None,
            "tool" => ToolChoice::Named(req_str(tc, "name", "tool_choice")?),
            other => {
                return Err(ApiError::invalid(format!(
                    "`tool_choice.type`: unknown type \"{other}\""
                ))
                .with_param("tool_choice.type"));
            }
        });
        if opt_bool(tc, "disable_parallel_tool_use", "tool_choice")? == Some(true) {
            req.parallel_tool_calls = Some(false);
        }
    }
    // `output_config.effort` (low / medium / high / max) says how hard to think; adaptive
    // thinking leaves the budget to the model.
    let effort = opt_obj(&m, "output_config", "")?
        .map(|oc| opt_str(oc, "effort", "output_config"))
        .transpose()?
        .flatten()
        .map(|e| if e == "max" { "high".to_owned() } else { e });
    if let Some(th) = opt_obj(&m, "thinking", "")? {
        req.reasoning = match req_str(th, "type", "thinking")?.as_str() {
            "enabled" => Some(Reasoning {
                effort,
                budget_tokens: opt_u64(th, "budget_tokens", "thinking")?,
            }),
            "adaptive" => Some(Reasoning {
                effort: Some(effort.unwrap_or_else(|| "medium".into())),
                budget_tokens: None,
            }),
            "disabled" => None,
            other => {
                return Err(ApiError::invalid(format!(
                    "`thinking.type`: unknown type \"{other}\" (enabled, adaptive or disabled)"
                ))
                .with_param("thinking.type"));
            }
        };
    } else if effort.is_some() {
        req.reasoning = Some(Reasoning {
            effort,
            budget_tokens: None,
        });
    }
    if let Some(md) = opt_obj(&m, "metadata", "")? {
        req.user = opt_str(md, "user_id", "metadata")?;
    }
    let mut extra = Map::new();
    for (k, v) in m {
        if !KNOWN.contains(&k.as_str()) {
            extra.insert(k, v);
        }
    }
    if !extra.is_empty() {
        req.extra = Extra {
            format: Some(Format::Anthropic),
            fields: extra,
        };
    }
    Ok(req)
}

fn decode_blocks(v: Option<&Value>, path: &str) -> Result<Vec<Part>, ApiError> {
    match v {
        None => Err(missing(path)),
        Some(Value::String(s)) => Ok(vec![Part::Text {
            text: s.clone(),
            cache: None,
        }]),
        Some(Value::Array(a)) => a
            .iter()
            .enumerate()
            .map(|(i, b)| decode_block(b, &format!("{path}[{i}]")))
            .collect(),
        Some(v) => Err(wrong_type(
            path,
            "a string or an array of content blocks",
            v,
        )),
    }
}

fn decode_block(v: &Value, path: &str) -> Result<Part, ApiError> {
    let m = as_obj(v, path)?;
    let cache = m.get("cache_control").cloned();
    Ok(match req_str(m, "type", path)?.as_str() {
        "text" => Part::Text {
            text: req_str(m, "text", path)?,
            cache,
        },
        "image" => {
            let sp = join(path, "source");
            let src = opt_obj(m, "source", path)?.ok_or_else(|| missing(&sp))?;
            let source = match req_str(src, "type", &sp)?.as_str() {
                "base64" => ImageSource::Base64 {
                    media_type: req_str(src, "media_type", &sp)?,
                    data: req_str(src, "data", &sp)?,
                },
                "url" => ImageSource::Url {
                    url: req_str(src, "url", &sp)?,
                },
                _ => {
                    return Ok(Part::Opaque {
                        format: Format::Anthropic,
                        block: v.clone(),
                    });
                }
            };
            Part::Image {
                source,
                detail: None,
                cache,
            }
        }
        "tool_use" => Part::ToolUse {
            id: req_str(m, "id", path)?,
            name: req_str(m, "name", path)?,
            arguments: serde_json::to_string(m.get("input").unwrap_or(&json!({})))
                .unwrap_or_else(|_| "{}".into()),
            cache,
        },
        "tool_result" => Part::ToolResult {
            tool_use_id: req_str(m, "tool_use_id", path)?,
            content: match m.get("content") {
                None | Some(Value::Null) => Vec::new(),
                c => decode_blocks(c, &join(path, "content"))?,
            },
            is_error: opt_bool(m, "is_error", path)?.unwrap_or(false),
            cache,
        },
        "thinking" => Part::Thinking {
            text: req_str(m, "thinking", path)?,
            signature: opt_str(m, "signature", path)?,
        },
        "redacted_thinking" => Part::RedactedThinking {
            data: req_str(m, "data", path)?,
        },
        _ => Part::Opaque {
            format: Format::Anthropic,
            block: v.clone(),
        },
    })
}

/// Encodes a canonical request as an Anthropic Messages body.
pub fn encode_request(req: &ChatRequest, o: &EncodeOpts<'_>) -> Result<Vec<u8>, ApiError> {
    // Fields an OpenAI client may send that would silently change the answer if dropped.
    if req.extra.format == Some(Format::OpenAi) {
        let f = &req.extra.fields;
        if f.get("n").and_then(Value::as_u64).is_some_and(|n| n > 1) {
            return Err(
                unsupported(Format::Anthropic, o, "`n` > 1 (several choices)").with_param("n"),
            );
        }
        if f.get("logprobs").and_then(Value::as_bool) == Some(true) {
            return Err(unsupported(Format::Anthropic, o, "`logprobs`").with_param("logprobs"));
        }
        if f.get("audio").is_some_and(|v| !v.is_null()) {
            return Err(unsupported(Format::Anthropic, o, "audio output").with_param("audio"));
        }
    }
    let s = &req.sampling;
    for (name, v) in [
        ("presence_penalty", s.presence_penalty),
        ("frequency_penalty", s.frequency_penalty),
    ] {
        if v.is_some_and(|x| x != 0.0) {
            return Err(unsupported(Format::Anthropic, o, &format!("`{name}`")).with_param(name));
        }
    }
    if let Some(t) = s.temperature
        && !(0.0..=1.0).contains(&t)
    {
        return Err(ApiError::invalid(format!(
            "`temperature`: provider `{}` accepts 0 to 1, got {t}",
            o.provider
        ))
        .with_param("temperature"));
    }
    if s.stop.iter().any(|x| x.trim().is_empty()) {
        return Err(ApiError::invalid(format!(
            "`stop`: provider `{}` rejects stop sequences that are empty or only whitespace",
            o.provider
        ))
        .with_param("stop"));
    }

    let mut body = Map::new();
    body.insert("model".into(), json!(o.model));
    let mut max_tokens = s.max_tokens.unwrap_or(o.default_max_tokens);
    let budget = req.reasoning.as_ref().and_then(|r| {
        r.budget_tokens.or_else(|| {
            r.effort
                .as_deref()
                .filter(|e| *e != "none")
                .map(thinking_budget)
        })
    });
    if let Some(b) = budget {
        // Anthropic requires max_tokens > budget_tokens; keep the client's output room on top.
        if max_tokens <= b {
            max_tokens = b.saturating_add(s.max_tokens.unwrap_or(o.default_max_tokens).min(8192));
        }
    }
    body.insert("max_tokens".into(), json!(max_tokens));
    // Mid-conversation instructions need a beta the upstream may not have: folded into the
    // system prompt (an Anthropic client's own requests take the byte path and keep them).
    let system: Vec<&Part> = req.system.iter().chain(req.mid_system()).collect();
    if !system.is_empty() {
        let plain = system
            .iter()
            .all(|p| matches!(p, Part::Text { cache: None, .. }));
        let sys = if plain {
            Value::String(
                system
                    .iter()
                    .filter_map(|p| {
                        if let Part::Text { text, .. } = p {
                            Some(text.as_str())
                        } else {
                            None
                        }
                    })
                    .collect::<Vec<_>>()
                    .join("\n\n"),
            )
        } else {
            Value::Array(
                system
                    .iter()
                    .map(|p| encode_block(p, o))
                    .collect::<Result<Vec<_>, _>>()?
                    .into_iter()
                    .flatten()
                    .collect(),
            )
        };
        body.insert("system".into(), sys);
    }
    let mut msgs: Vec<(Role, Vec<Value>)> = Vec::new();
    for m in req.messages.iter().filter(|m| m.role != Role::System) {
        let mut blocks = Vec::new();
        // Anthropic wants tool results first in a user turn.
        let (results, others): (Vec<&Part>, Vec<&Part>) = m
            .content
            .iter()
            .partition(|p| matches!(p, Part::ToolResult { .. }));
        for p in results.into_iter().chain(others) {
            blocks.extend(encode_block(p, o)?);
        }
        if blocks.is_empty() {
            continue;
        }
        match msgs.last_mut() {
            // Anthropic requires alternating roles: merge consecutive turns of one role.
            Some((r, prev)) if *r == m.role => {
                if m.role == Role::User && blocks.iter().any(|b| b["type"] == "tool_result") {
                    let insert_at = prev
                        .iter()
                        .take_while(|b| b["type"] == "tool_result")
                        .count();
                    let (tr, rest): (Vec<Value>, Vec<Value>) =
                        blocks.into_iter().partition(|b| b["type"] == "tool_result");
                    prev.splice(insert_at..insert_at, tr);
                    prev.extend(rest);
                } else {
                    prev.extend(blocks);
                }
            }
            _ => msgs.push((m.role, blocks)),
        }
    }
    let msgs: Vec<Value> = msgs
        .into_iter()
        .map(|(r, c)| json!({"role": if r == Role::User { "user" } else { "assistant" }, "content": c}))
        .collect();
    body.insert("messages".into(), Value::Array(msgs));
    for (k, v) in [("temperature", s.temperature), ("top_p", s.top_p)] {
        if let Some(v) = v {
            body.insert(k.into(), num(v));
        }
    }
    if let Some(k) = s.top_k {
        body.insert("top_k".into(), json!(k));
    }
    if !s.stop.is_empty() {
        body.insert("stop_sequences".into(), json!(s.stop));
    }
    let mut tools: Vec<Value> = Vec::new();
    for t in &req.tools {
        tools.push(match t {
            Tool::Function {
                name,
                description,
                parameters,
                cache,
                ..
            } => {
                let mut to = Map::new();
                to.insert("name".into(), json!(name));
                if let Some(d) = description {
                    to.insert("description".into(), json!(d));
                }
                let schema = if parameters.is_object() {
                    parameters.clone()
                } else {
                    json!({"type": "object", "properties": {}})
                };
                to.insert("input_schema".into(), schema);
                if let Some(c) = cache {
                    to.insert("cache_control".into(), c.clone());
                }
                Value::Object(to)
            }
            Tool::Native {
                format: Format::Anthropic,
                def,
            } => def.clone(),
            Tool::Native { def, .. } => {
                return Err(unsupported(
                    Format::Anthropic,
                    o,
                    &format!("the tool type {}", def.get("type").unwrap_or(&Value::Null)),
                ));
            }
        });
    }
    let mut choice = req.tool_choice.as_ref().map(|tc| match tc {
        ToolChoice::Auto => json!({"type": "auto"}),
        ToolChoice::None => json!({"type": "none"}),
        ToolChoice::Required => json!({"type": "any"}),
        ToolChoice::Named(n) => json!({"type": "tool", "name": n}),
    });
    match &req.response_format {
        None | Some(ResponseFormat::Text) => {}
        Some(rf) => {
            // Structured output through a forced tool: the answer is that tool's input, turned back
            // into text by the response side (see `JSON_TOOL`).
            let schema = match rf {
                ResponseFormat::JsonSchema { schema, .. } => schema.clone(),
                _ => json!({"type": "object"}),
            };
            tools.push(json!({"name": crate::anthropic::response::JSON_TOOL, "description": "Respond with the final answer as JSON matching this schema.", "input_schema": schema}));
            choice = Some(json!({"type": "tool", "name": crate::anthropic::response::JSON_TOOL}));
        }
    }
    if !tools.is_empty() {
        body.insert("tools".into(), Value::Array(tools));
        if req.parallel_tool_calls == Some(false) {
            let c = choice.get_or_insert_with(|| json!({"type": "auto"}));
            if c["type"] != "none" {
                c["disable_parallel_tool_use"] = json!(true);
            }
        }
        if let Some(c) = choice {
            body.insert("tool_choice".into(), c);
        }
    }
    if let Some(b) = budget {
        body.insert(
            "thinking".into(),
            json!({"type": "enabled", "budget_tokens": b}),
        );
    }
    if let Some(u) = &req.user {
        body.insert("metadata".into(), json!({"user_id": u}));
    }
    if req.stream {
        body.insert("stream".into(), json!(true));
    }
    keep_own_fields(&mut body, req, Format::Anthropic);
    body_bytes(body)
}

fn with_cache(mut v: Value, cache: &Option<Value>) -> Value {
    if let Some(c) = cache {
        v["cache_control"] = c.clone();
    }
    v
}

/// One canonical part as an Anthropic block (`None`: nothing to send, e.g. an empty text).
pub(crate) fn encode_block(p: &Part, o: &EncodeOpts<'_>) -> Result<Option<Value>, ApiError> {
    Ok(Some(match p {
        Part::Text { text, cache } => {
            if text.is_empty() {
                return Ok(None); // Anthropic rejects empty text blocks
            }
            with_cache(json!({"type": "text", "text": text}), cache)
        }
        Part::Image { source, cache, .. } => {
            let src = match source {
                ImageSource::Base64 { media_type, data } => {
                    json!({"type": "base64", "media_type": media_type, "data": data})
                }
                ImageSource::Url { url } => json!({"type": "url", "url": url}),
            };
            with_cache(json!({"type": "image", "source": src}), cache)
        }
        Part::Opaque {
            format: Format::Anthropic,
            block,
        } => block.clone(),
        Part::Opaque { block, .. } => {
            return Err(unsupported(
                Format::Anthropic,
                o,
                &format!(
                    "content of type {}",
                    block.get("type").unwrap_or(&Value::Null)
                ),
            ));
        }
        Part::ToolUse {
            id,
            name,
            arguments,
            cache,
        } => {
            let input: Value = if arguments.trim().is_empty() {
                json!({})
            } else {
                serde_json::from_str(arguments).map_err(|e| {
                    ApiError::invalid(format!("tool call `{id}` has arguments that are not valid JSON ({e}); provider `{}` needs a JSON object", o.provider))
                })?
            };
            with_cache(
                json!({"type": "tool_use", "id": id, "name": name, "input": input}),
                cache,
            )
        }
        Part::ToolResult {
            tool_use_id,
            content,
            is_error,
            cache,
        } => {
            let inner: Vec<Value> = content
                .iter()
                .map(|c| encode_block(c, o))
                .collect::<Result<Vec<_>, _>>()?
                .into_iter()
                .flatten()
                .collect();
            let mut b =
                json!({"type": "tool_result", "tool_use_id": tool_use_id, "content": inner});
            if *is_error {
                b["is_error"] = json!(true);
            }
            with_cache(b, cache)
        }
        Part::Thinking { text, signature } => match signature {
            Some(sig) => json!({"type": "thinking", "thinking": text, "signature": sig}),
            // Reasoning from another provider has no signature; Anthropic would reject a forged one.
            None => return Ok(None),
        },
        Part::RedactedThinking { data } => json!({"type": "redacted_thinking", "data": data}),
    }))
}
