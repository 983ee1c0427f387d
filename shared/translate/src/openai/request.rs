//! OpenAI request body <-> canonical request.

use crate::EncodeOpts;
use crate::json::*;
use gw_model::*;
use serde_json::{Map, Value, json};

/// Top-level fields this module maps; everything else goes to `extra`.
pub(super) const KNOWN: &[&str] = &[
    "model",
    "messages",
    "tools",
    "tool_choice",
    "parallel_tool_calls",
    "max_tokens",
    "max_completion_tokens",
    "temperature",
    "top_p",
    "stop",
    "seed",
    "presence_penalty",
    "frequency_penalty",
    "response_format",
    "reasoning_effort",
    "stream",
    "stream_options",
    "user",
    "functions",
    "function_call",
];

/// Decodes an OpenAI Chat Completions request: the common shapes typed from the text
/// (`typed.rs`), the rest (and every error) through a JSON tree.
pub fn decode_request(body: &[u8]) -> Result<ChatRequest, ApiError> {
    if let Some(req) = super::typed::decode(body) {
        return Ok(req);
    }
    decode_tree(body)
}

/// Decodes an OpenAI Chat Completions request through a JSON tree, naming what is wrong.
pub(super) fn decode_tree(body: &[u8]) -> Result<ChatRequest, ApiError> {
    let m = parse_body(body)?;
    let mut req = ChatRequest {
        model: req_str(&m, "model", "")?,
        ..ChatRequest::default()
    };
    if req.model.is_empty() {
        return Err(ApiError::invalid("`model`: must not be empty").with_param("model"));
    }
    let msgs = req_array(m.get("messages"), "messages")?;
    if msgs.is_empty() {
        return Err(
            ApiError::invalid("`messages`: must contain at least one message")
                .with_param("messages"),
        );
    }
    for (i, v) in msgs.iter().enumerate() {
        decode_message(v, &format!("messages[{i}]"), &mut req)?;
    }
    if let Some(tools) = m.get("tools").filter(|v| !v.is_null()) {
        let arr = tools
            .as_array()
            .ok_or_else(|| wrong_type("tools", "an array", tools))?;
        for (i, t) in arr.iter().enumerate() {
            req.tools.push(decode_tool(t, &format!("tools[{i}]"))?);
        }
    }
    req.tool_choice = match m.get("tool_choice") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(match s.as_str() {
            "auto" => ToolChoice::Auto,
            "none" => ToolChoice::None,
            "required" => ToolChoice::Required,
            other => {
                return Err(ApiError::invalid(format!(
                    "`tool_choice`: expected \"auto\", \"none\", \"required\" or an object, got \"{other}\""
                ))
                .with_param("tool_choice"));
            }
        }),
        Some(Value::Object(o)) => {
            let f = opt_obj(o, "function", "tool_choice")?
                .ok_or_else(|| missing("tool_choice.function"))?;
            Some(ToolChoice::Named(req_str(
                f,
                "name",
                "tool_choice.function",
            )?))
        }
        Some(v) => return Err(wrong_type("tool_choice", "a string or an object", v)),
    };
    req.parallel_tool_calls = opt_bool(&m, "parallel_tool_calls", "")?;
    let s = &mut req.sampling;
    s.max_tokens = opt_u64(&m, "max_completion_tokens", "")?.or(opt_u64(&m, "max_tokens", "")?);
    s.temperature = opt_f64(&m, "temperature", "")?;
    s.top_p = opt_f64(&m, "top_p", "")?;
    s.seed = opt_i64(&m, "seed", "")?;
    s.presence_penalty = opt_f64(&m, "presence_penalty", "")?;
    s.frequency_penalty = opt_f64(&m, "frequency_penalty", "")?;
    s.stop = match m.get("stop") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::String(x)) => vec![x.clone()],
        Some(Value::Array(a)) => a
            .iter()
            .enumerate()
            .map(|(i, v)| {
                v.as_str()
                    .map(str::to_owned)
                    .ok_or_else(|| wrong_type(&format!("stop[{i}]"), "a string", v))
            })
            .collect::<Result<_, _>>()?,
        Some(v) => return Err(wrong_type("stop", "a string or an array of strings", v)),
    };
    req.response_format = match opt_obj(&m, "response_format", "")? {
        None => None,
        Some(o) => Some(match req_str(o, "type", "response_format")?.as_str() {
            "text" => ResponseFormat::Text,
            "json_object" => ResponseFormat::JsonObject,
            "json_schema" => {
                let js = opt_obj(o, "json_schema", "response_format")?
                    .ok_or_else(|| missing("response_format.json_schema"))?;
                ResponseFormat::JsonSchema {
                    name: opt_str(js, "name", "response_format.json_schema")?
                        .unwrap_or_else(|| "response".into()),
                    schema: js.get("schema").cloned().unwrap_or_else(|| json!({})),
                    strict: opt_bool(js, "strict", "response_format.json_schema")?,
                }
            }
            other => {
                return Err(ApiError::invalid(format!(
                    "`response_format.type`: unknown type \"{other}\""
                ))
                .with_param("response_format.type"));
            }
        }),
    };
    if let Some(effort) = opt_str(&m, "reasoning_effort", "")? {
        req.reasoning = Some(Reasoning {
            effort: Some(effort),
            budget_tokens: None,
        });
    }
    req.stream = opt_bool(&m, "stream", "")?.unwrap_or(false);
    if let Some(so) = opt_obj(&m, "stream_options", "")? {
        req.include_usage = opt_bool(so, "include_usage", "stream_options")?.unwrap_or(false);
    }
    req.user = opt_str(&m, "user", "")?;
    let mut extra = Map::new();
    for (k, v) in m {
        if !KNOWN.contains(&k.as_str()) {
            extra.insert(k, v);
        }
    }
    if !extra.is_empty() {
        req.extra = Extra {
            format: Some(Format::OpenAi),
            fields: extra,
        };
    }
    Ok(req)
}

fn decode_message(v: &Value, path: &str, req: &mut ChatRequest) -> Result<(), ApiError> {
    let m = as_obj(v, path)?;
    let role = req_str(m, "role", path)?;
    match role.as_str() {
        "system" | "developer" => {
            let parts = decode_content(m.get("content"), &join(path, "content"), false)?;
            // Leading instructions are the system prompt; later ones stay where they were said.
            if req.messages.is_empty() {
                req.system.extend(parts);
            } else {
                push(req, Role::System, parts);
            }
        }
        "user" => {
            let content = decode_content(m.get("content"), &join(path, "content"), true)?;
            push(req, Role::User, content);
        }
        "assistant" => {
            let mut content = Vec::new();
            if let Some(r) = opt_str(m, "reasoning_content", path)?
                && !r.is_empty()
            {
                content.push(Part::Thinking {
                    text: r,
                    signature: None,
                });
            }
            match m.get("content") {
                None | Some(Value::Null) => {}
                c => content.extend(decode_content(c, &join(path, "content"), false)?),
            }
            if let Some(r) = opt_str(m, "refusal", path)? {
                content.push(Part::Text {
                    text: r,
                    cache: None,
                });
            }
            if let Some(calls) = m.get("tool_calls").filter(|v| !v.is_null()) {
                let arr = calls
                    .as_array()
                    .ok_or_else(|| wrong_type(&join(path, "tool_calls"), "an array", calls))?;
                for (i, c) in arr.iter().enumerate() {
                    let p = format!("{path}.tool_calls[{i}]");
                    let co = as_obj(c, &p)?;
                    let f = opt_obj(co, "function", &p)?
                        .ok_or_else(|| missing(&join(&p, "function")))?;
                    content.push(Part::ToolUse {
                        id: req_str(co, "id", &p)?,
                        name: req_str(f, "name", &join(&p, "function"))?,
                        arguments: opt_str(f, "arguments", &join(&p, "function"))?
                            .unwrap_or_else(|| "{}".into()),
                        cache: None,
                    });
                }
            }
            push(req, Role::Assistant, content);
        }
        "tool" => {
            let id = req_str(m, "tool_call_id", path)?;
            let content = decode_content(m.get("content"), &join(path, "content"), false)?;
            push(
                req,
                Role::User,
                vec![Part::ToolResult {
                    tool_use_id: id,
                    content,
                    is_error: false,
                    cache: None,
                }],
            );
        }
        "function" => {
            return Err(ApiError::invalid(format!(
                "`{path}.role`: the legacy \"function\" role is not supported; use \"tool\" messages"
            ))
            .with_param(join(path, "role")));
        }
        other => {
            return Err(ApiError::invalid(format!(
                "`{path}.role`: unknown role \"{other}\" (expected system, developer, user, assistant or tool)"
            ))
            .with_param(join(path, "role")));
        }
    }
    Ok(())
}

/// Appends parts to the conversation, merging into the previous turn when the role repeats
/// (consecutive tool results become one user turn, as Anthropic requires).
pub(super) fn push(req: &mut ChatRequest, role: Role, content: Vec<Part>) {
    match req.messages.last_mut() {
        Some(last)
            if last.role == role
                && role == Role::User
                && is_tool_results(&last.content)
                && is_tool_results(&content) =>
        {
            last.content.extend(content)
        }
        _ => req.messages.push(Message { role, content }),
    }
}

fn is_tool_results(parts: &[Part]) -> bool {
    !parts.is_empty() && parts.iter().all(|p| matches!(p, Part::ToolResult { .. }))
}

fn decode_content(v: Option<&Value>, path: &str, allow_media: bool) -> Result<Vec<Part>, ApiError> {
    match v {
        None => Err(missing(path)),
        Some(Value::String(s)) => Ok(vec![Part::Text {
            text: s.clone(),
            cache: None,
        }]),
        Some(Value::Array(a)) => a
            .iter()
            .enumerate()
            .map(|(i, p)| decode_part(p, &format!("{path}[{i}]"), allow_media))
            .collect(),
        Some(v) => Err(wrong_type(path, "a string or an array of content parts", v)),
    }
}

fn decode_part(v: &Value, path: &str, allow_media: bool) -> Result<Part, ApiError> {
    let m = as_obj(v, path)?;
    let ty = req_str(m, "type", path)?;
    match ty.as_str() {
        "text" => Ok(Part::Text {
            text: req_str(m, "text", path)?,
            cache: m.get("cache_control").cloned(),
        }),
        "image_url" if allow_media => {
            let (url, detail) = match m.get("image_url") {
                Some(Value::String(u)) => (u.clone(), None),
                Some(Value::Object(o)) => (
                    req_str(o, "url", &join(path, "image_url"))?,
                    opt_str(o, "detail", &join(path, "image_url"))?,
                ),
                Some(v) => return Err(wrong_type(&join(path, "image_url"), "an object", v)),
                None => return Err(missing(&join(path, "image_url"))),
            };
            let source = match split_data_uri(&url) {
                Some((media_type, data)) => ImageSource::Base64 { media_type, data },
                None => ImageSource::Url { url },
            };
            Ok(Part::Image {
                source,
                detail,
                cache: None,
            })
        }
        "file" if allow_media => {
            // {"type":"file","file":{"file_data":"data:application/pdf;base64,...","filename":...}}
            let f = opt_obj(m, "file", path)?.ok_or_else(|| missing(&join(path, "file")))?;
            let data = opt_str(f, "file_data", &join(path, "file"))?
                .ok_or_else(|| missing(&join(path, "file.file_data")))?;
            let (media_type, data) = split_data_uri(&data).ok_or_else(|| {
                ApiError::invalid(format!(
                    "`{path}.file.file_data`: expected a base64 data URI"
                ))
                .with_param(join(path, "file.file_data"))
            })?;
            Ok(Part::Opaque {
                format: Format::Anthropic,
                block: json!({"type": "document", "source": {"type": "base64", "media_type": media_type, "data": data}}),
            })
        }
        "refusal" => Ok(Part::Text {
            text: req_str(m, "refusal", path)?,
            cache: None,
        }),
        other => Err(ApiError::invalid(format!(
            "`{path}.type`: unsupported content part type \"{other}\" here"
        ))
        .with_param(join(path, "type"))),
    }
}

fn decode_tool(v: &Value, path: &str) -> Result<Tool, ApiError> {
    let m = as_obj(v, path)?;
    let ty = req_str(m, "type", path)?;
    if ty != "function" {
        return Ok(Tool::Native {
            format: Format::OpenAi,
            def: v.clone(),
        });
    }
    let f = opt_obj(m, "function", path)?.ok_or_else(|| missing(&join(path, "function")))?;
    let fp = join(path, "function");
    Ok(Tool::Function {
        name: req_str(f, "name", &fp)?,
        description: opt_str(f, "description", &fp)?,
        // A schema that is not an object would be replaced or rejected upstream: refuse it here.
        parameters: opt_obj(f, "parameters", &fp)?.map_or_else(
            || json!({"type": "object", "properties": {}}),
            |o| Value::Object(o.clone()),
        ),
        strict: opt_bool(f, "strict", &fp)?,
        cache: m.get("cache_control").cloned(),
    })
}

/// Encodes a canonical request as an OpenAI Chat Completions body.
pub fn encode_request(req: &ChatRequest, o: &EncodeOpts<'_>) -> Result<Vec<u8>, ApiError> {
    let mut body = Map::new();
    body.insert("model".into(), Value::String(o.model.to_owned()));
    let mut msgs = Vec::new();
    if !req.system.is_empty() {
        msgs.push(json!({"role": "system", "content": text_content(&req.system, o)?}));
    }
    for m in &req.messages {
        encode_message(m, &mut msgs, o)?;
    }
    body.insert("messages".into(), Value::Array(msgs));
    if !req.tools.is_empty() {
        let tools = req
            .tools
            .iter()
            .map(|t| match t {
                Tool::Function {
                    name,
                    description,
                    parameters,
                    strict,
                    ..
                } => {
                    let mut f = Map::new();
                    f.insert("name".into(), json!(name));
                    if let Some(d) = description {
                        f.insert("description".into(), json!(d));
                    }
                    f.insert("parameters".into(), parameters.clone());
                    if let Some(s) = strict {
                        f.insert("strict".into(), json!(s));
                    }
                    Ok(json!({"type": "function", "function": f}))
                }
                Tool::Native {
                    format: Format::OpenAi,
                    def,
                } => Ok(def.clone()),
                Tool::Native { def, .. } => Err(server_tool(Format::OpenAi, o, def)),
            })
            .collect::<Result<Vec<_>, _>>()?;
        body.insert("tools".into(), Value::Array(tools));
        if let Some(tc) = &req.tool_choice {
            body.insert(
                "tool_choice".into(),
                match tc {
                    ToolChoice::Auto => json!("auto"),
                    ToolChoice::None => json!("none"),
                    ToolChoice::Required => json!("required"),
                    ToolChoice::Named(n) => json!({"type": "function", "function": {"name": n}}),
                },
            );
        }
        if let Some(p) = req.parallel_tool_calls {
            body.insert("parallel_tool_calls".into(), json!(p));
        }
    }
    let s = &req.sampling;
    if let Some(mt) = s.max_tokens {
        body.insert(o.max_tokens_field.into(), json!(mt));
    }
    for (k, v) in [
        ("temperature", s.temperature),
        ("top_p", s.top_p),
        ("presence_penalty", s.presence_penalty),
        ("frequency_penalty", s.frequency_penalty),
    ] {
        if let Some(v) = v {
            body.insert(k.into(), num(v));
        }
    }
    if s.top_k.is_some() {
        // Not an OpenAI parameter; many compatible servers (vLLM, Together) accept it, OpenAI rejects it.
        if o.provider != "openai" {
            body.insert("top_k".into(), json!(s.top_k));
        }
    }
    if let Some(seed) = s.seed {
        body.insert("seed".into(), json!(seed));
    }
    if !s.stop.is_empty() {
        if s.stop.len() > 4 {
            return Err(unsupported(Format::OpenAi, o, "more than 4 stop sequences")
                .with_param("stop_sequences"));
        }
        body.insert("stop".into(), json!(s.stop));
    }
    match &req.response_format {
        None => {}
        Some(ResponseFormat::Text) => {
            body.insert("response_format".into(), json!({"type": "text"}));
        }
        Some(ResponseFormat::JsonObject) => {
            body.insert("response_format".into(), json!({"type": "json_object"}));
        }
        Some(ResponseFormat::JsonSchema {
            name,
            schema,
            strict,
        }) => {
            let mut js = json!({"name": name, "schema": schema});
            if let Some(st) = strict {
                js["strict"] = json!(st);
            }
            body.insert(
                "response_format".into(),
                json!({"type": "json_schema", "json_schema": js}),
            );
        }
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
            body.insert("reasoning_effort".into(), json!(e));
        }
    }
    if req.stream {
        body.insert("stream".into(), json!(true));
        // Always ask for usage: the gateway accounts for every stream; the encoder hides the
        // extra chunk from clients that did not ask for it.
        body.insert("stream_options".into(), json!({"include_usage": true}));
    }
    if let Some(u) = &req.user {
        body.insert("user".into(), json!(u));
    }
    keep_own_fields(&mut body, req, Format::OpenAi);
    body_bytes(body)
}

/// System prompt / tool result content: a plain string when it is only text.
fn text_content(parts: &[Part], o: &EncodeOpts<'_>) -> Result<Value, ApiError> {
    let mut texts = Vec::new();
    for p in parts {
        match p {
            Part::Text { text, .. } => texts.push(text.as_str()),
            _ => {
                return Err(unsupported(
                    Format::OpenAi,
                    o,
                    "non-text content in system prompts or tool results",
                ));
            }
        }
    }
    Ok(Value::String(texts.join("\n\n")))
}

fn encode_part(p: &Part, o: &EncodeOpts<'_>) -> Result<Option<Value>, ApiError> {
    Ok(Some(match p {
        Part::Text { text, .. } => json!({"type": "text", "text": text}),
        Part::Image { source, detail, .. } => {
            let url = match source {
                ImageSource::Url { url } => url.clone(),
                ImageSource::Base64 { media_type, data } => {
                    format!("data:{media_type};base64,{data}")
                }
            };
            let mut iu = json!({"url": url});
            if let Some(d) = detail {
                iu["detail"] = json!(d);
            }
            json!({"type": "image_url", "image_url": iu})
        }
        Part::Opaque { block, .. } => {
            let src = block.get("source");
            match (
                block.get("type").and_then(Value::as_str),
                src.and_then(|s| s.get("type")).and_then(Value::as_str),
            ) {
                (Some("document"), Some("base64")) => {
                    let src = src.unwrap_or(&Value::Null);
                    let media = src
                        .get("media_type")
                        .and_then(Value::as_str)
                        .unwrap_or("application/pdf");
                    let data = src.get("data").and_then(Value::as_str).unwrap_or("");
                    json!({"type": "file", "file": {"file_data": format!("data:{media};base64,{data}"), "filename": "document.pdf"}})
                }
                (Some("document"), Some("text")) => {
                    json!({"type": "text", "text": src.and_then(|s| s.get("data")).and_then(Value::as_str).unwrap_or("")})
                }
                (t, _) => {
                    return Err(unsupported(
                        Format::OpenAi,
                        o,
                        &format!("content blocks of type {}", t.unwrap_or("unknown")),
                    ));
                }
            }
        }
        Part::Thinking { .. } | Part::RedactedThinking { .. } => return Ok(None),
        Part::ToolUse { .. } | Part::ToolResult { .. } => return Ok(None),
    }))
}

fn encode_message(m: &Message, out: &mut Vec<Value>, o: &EncodeOpts<'_>) -> Result<(), ApiError> {
    match m.role {
        Role::System => {
            out.push(json!({"role": "system", "content": text_content(&m.content, o)?}));
        }
        Role::User => {
            let mut rest = Vec::new();
            let mut late_images = Vec::new();
            for p in &m.content {
                if let Part::ToolResult {
                    tool_use_id,
                    content,
                    is_error,
                    ..
                } = p
                {
                    let mut texts = Vec::new();
                    for c in content {
                        match c {
                            Part::Text { text, .. } => texts.push(text.as_str()),
                            other => late_images.extend(encode_part(other, o)?),
                        }
                    }
                    let mut text = texts.join("\n");
                    if *is_error && !text.starts_with("Error") {
                        text = format!("Error: {text}");
                    }
                    // OpenAI allows 40-character ids: a carried Gemini signature stays behind.
                    let id = crate::gemini::bare_call_id(tool_use_id);
                    out.push(json!({"role": "tool", "tool_call_id": id, "content": text}));
                } else {
                    rest.extend(encode_part(p, o)?);
                }
            }
            // OpenAI tool messages carry text only: images from tool results follow as a user turn.
            rest.extend(late_images);
            if !rest.is_empty() {
                let content = match rest.as_slice() {
                    [one] if one["type"] == "text" => one["text"].clone(),
                    _ => Value::Array(rest),
                };
                out.push(json!({"role": "user", "content": content}));
            }
        }
        Role::Assistant => {
            let mut text = String::new();
            let mut calls = Vec::new();
            for p in &m.content {
                match p {
                    Part::Text { text: t, .. } => text.push_str(t),
                    Part::ToolUse { id, name, arguments, .. } => calls.push(json!({
                        "id": crate::gemini::bare_call_id(id), "type": "function", "function": {"name": name, "arguments": arguments}
                    })),
                    // Items only their own API can run (hosted tool calls, item references):
                    // refused by name, never dropped.
                    Part::Opaque { block, .. } => {
                        return Err(unsupported(
                            Format::OpenAi,
                            o,
                            &format!(
                                "the {} item",
                                block.get("type").and_then(Value::as_str).unwrap_or("unknown")
                            ),
                        ));
                    }
                    _ => {}
                }
            }
            let mut msg = json!({"role": "assistant", "content": if text.is_empty() && !calls.is_empty() { Value::Null } else { Value::String(text) }});
            if !calls.is_empty() {
                msg["tool_calls"] = Value::Array(calls);
            }
            out.push(msg);
        }
    }
    Ok(())
}
