//! Bedrock Converse request body <-> canonical request. The model is in the URL.

use crate::EncodeOpts;
use crate::json::*;
use gw_model::*;
use serde_json::{Map, Value, json};

/// Top-level fields this module maps; everything else goes to `extra`.
const KNOWN: &[&str] = &[
    "messages",
    "system",
    "inferenceConfig",
    "toolConfig",
    "additionalModelRequestFields",
];

/// Image formats Converse takes, by media type.
fn image_format(media_type: &str) -> Option<&'static str> {
    Some(match media_type {
        "image/png" => "png",
        "image/jpeg" | "image/jpg" => "jpeg",
        "image/gif" => "gif",
        "image/webp" => "webp",
        _ => return None,
    })
}

/// Decodes a Converse request.
pub fn decode_request(body: &[u8]) -> Result<ChatRequest, ApiError> {
    let m = parse_body(body)?;
    let mut req = ChatRequest::default();
    let msgs = req_array(m.get("messages"), "messages")?;
    for (i, v) in msgs.iter().enumerate() {
        let path = format!("messages[{i}]");
        let mo = as_obj(v, &path)?;
        let role = match req_str(mo, "role", &path)?.as_str() {
            "user" => Role::User,
            "assistant" => Role::Assistant,
            other => {
                return Err(ApiError::invalid(format!(
                    "`{path}.role`: unknown role \"{other}\" (expected user or assistant)"
                )));
            }
        };
        let blocks = mo
            .get("content")
            .and_then(Value::as_array)
            .ok_or_else(|| missing(&join(&path, "content")))?;
        let content = blocks
            .iter()
            .enumerate()
            .filter_map(|(j, b)| decode_block(b, &format!("{path}.content[{j}]")).transpose())
            .collect::<Result<Vec<_>, _>>()?;
        req.messages.push(Message { role, content });
    }
    if let Some(Value::Array(sys)) = m.get("system") {
        for s in sys {
            if let Some(t) = s.get("text").and_then(Value::as_str) {
                req.system.push(Part::Text {
                    text: t.to_owned(),
                    cache: None,
                });
            }
        }
    }
    if let Some(ic) = opt_obj(&m, "inferenceConfig", "")? {
        let p = "inferenceConfig";
        req.sampling.max_tokens = opt_u64(ic, "maxTokens", p)?;
        req.sampling.temperature = opt_f64(ic, "temperature", p)?;
        req.sampling.top_p = opt_f64(ic, "topP", p)?;
        if let Some(Value::Array(stop)) = ic.get("stopSequences") {
            req.sampling.stop = stop
                .iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect();
        }
    }
    if let Some(tc) = opt_obj(&m, "toolConfig", "")? {
        if let Some(Value::Array(tools)) = tc.get("tools") {
            for t in tools {
                if let Some(spec) = t.get("toolSpec") {
                    req.tools.push(Tool::Function {
                        name: spec
                            .get("name")
                            .and_then(Value::as_str)
                            .unwrap_or_default()
                            .to_owned(),
                        description: spec
                            .get("description")
                            .and_then(Value::as_str)
                            .map(str::to_owned),
                        parameters: spec
                            .pointer("/inputSchema/json")
                            .cloned()
                            .unwrap_or_else(|| json!({"type": "object", "properties": {}})),
                        strict: None,
                        cache: None,
                    });
                }
            }
        }
        req.tool_choice = tc.get("toolChoice").and_then(|c| {
            if c.get("any").is_some() {
                Some(ToolChoice::Required)
            } else if let Some(n) = c.pointer("/tool/name").and_then(Value::as_str) {
                Some(ToolChoice::Named(n.to_owned()))
            } else {
                c.get("auto").map(|_| ToolChoice::Auto)
            }
        });
    }
    for (k, v) in &m {
        if !KNOWN.contains(&k.as_str()) || k == "additionalModelRequestFields" {
            req.extra.fields.insert(k.clone(), v.clone());
        }
    }
    if !req.extra.fields.is_empty() {
        req.extra.format = Some(Format::Bedrock);
    }
    Ok(req)
}

/// A content block (also of an answer); `None` for cache points.
pub(crate) fn decode_block_pub(b: &Value, path: &str) -> Result<Option<Part>, ApiError> {
    decode_block(b, path)
}

/// An answer's block for a Converse client (`None`: nothing to show).
pub(crate) fn encode_answer_block(p: &Part) -> Option<Value> {
    match p {
        Part::Text { text, .. } => Some(json!({"text": text})),
        Part::ToolUse {
            id,
            name,
            arguments,
            ..
        } => {
            let input: Value = serde_json::from_str(arguments)
                .ok()
                .filter(Value::is_object)
                .unwrap_or_else(|| json!({}));
            Some(json!({"toolUse": {"toolUseId": id, "name": name, "input": input}}))
        }
        Part::Thinking { text, signature } => {
            let mut rt = json!({"text": text});
            if let Some(s) = signature {
                rt["signature"] = json!(s);
            }
            Some(json!({"reasoningContent": {"reasoningText": rt}}))
        }
        Part::RedactedThinking { data } => {
            Some(json!({"reasoningContent": {"redactedContent": data}}))
        }
        Part::Opaque {
            format: Format::Bedrock,
            block,
        } => Some(block.clone()),
        _ => None,
    }
}

fn decode_block(b: &Value, path: &str) -> Result<Option<Part>, ApiError> {
    let o = as_obj(b, path)?;
    let text = |t: &str| Part::Text {
        text: t.to_owned(),
        cache: None,
    };
    if let Some(t) = o.get("text").and_then(Value::as_str) {
        return Ok(Some(text(t)));
    }
    if let Some(img) = o.get("image") {
        let fmt = img.get("format").and_then(Value::as_str).unwrap_or("png");
        let data = img
            .pointer("/source/bytes")
            .and_then(Value::as_str)
            .ok_or_else(|| missing(&join(path, "image.source.bytes")))?;
        return Ok(Some(Part::Image {
            source: ImageSource::Base64 {
                media_type: format!("image/{fmt}"),
                data: data.to_owned(),
            },
            detail: None,
            cache: None,
        }));
    }
    if let Some(tu) = o.get("toolUse") {
        return Ok(Some(Part::ToolUse {
            id: tu
                .get("toolUseId")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned(),
            name: tu
                .get("name")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned(),
            arguments: tu
                .get("input")
                .cloned()
                .unwrap_or_else(|| json!({}))
                .to_string(),
            cache: None,
        }));
    }
    if let Some(tr) = o.get("toolResult") {
        let content = tr
            .get("content")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(|c| {
                        c.get("text")
                            .and_then(Value::as_str)
                            .map(text)
                            .or_else(|| c.get("json").map(|j| text(&j.to_string())))
                    })
                    .collect()
            })
            .unwrap_or_default();
        return Ok(Some(Part::ToolResult {
            tool_use_id: tr
                .get("toolUseId")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned(),
            content,
            is_error: tr.get("status").and_then(Value::as_str) == Some("error"),
            cache: None,
        }));
    }
    if let Some(rc) = o.get("reasoningContent") {
        if let Some(rt) = rc.get("reasoningText") {
            return Ok(Some(Part::Thinking {
                text: rt
                    .get("text")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_owned(),
                signature: rt
                    .get("signature")
                    .and_then(Value::as_str)
                    .map(str::to_owned),
            }));
        }
        if let Some(r) = rc.get("redactedContent").and_then(Value::as_str) {
            return Ok(Some(Part::RedactedThinking { data: r.to_owned() }));
        }
    }
    if o.contains_key("cachePoint") {
        return Ok(None);
    }
    Ok(Some(Part::Opaque {
        format: Format::Bedrock,
        block: b.clone(),
    }))
}

/// Encodes a canonical request as a Converse body.
pub fn encode_request(req: &ChatRequest, o: &EncodeOpts<'_>) -> Result<Vec<u8>, ApiError> {
    let mut body = Map::new();
    let mut msgs: Vec<Value> = Vec::new();
    for m in req.messages.iter().filter(|m| m.role != Role::System) {
        let role = if m.role == Role::User {
            "user"
        } else {
            "assistant"
        };
        let mut results = Vec::new();
        let mut blocks = Vec::new();
        for p in &m.content {
            let (is_result, encoded) = (matches!(p, Part::ToolResult { .. }), encode_block(p, o)?);
            for b in encoded {
                if is_result {
                    results.push(b);
                } else {
                    blocks.push(b);
                }
            }
        }
        // Tool results first (Claude requires it), then the rest of the turn; Converse wants
        // alternating roles, so consecutive turns of one role merge.
        results.extend(blocks);
        if results.is_empty() {
            continue;
        }
        match msgs.last_mut() {
            Some(last) if last["role"] == role => {
                if let Some(a) = last["content"].as_array_mut() {
                    let at = a
                        .iter()
                        .take_while(|b| b.get("toolResult").is_some())
                        .count();
                    let (r, rest): (Vec<Value>, Vec<Value>) = results
                        .into_iter()
                        .partition(|b| b.get("toolResult").is_some());
                    a.splice(at..at, r);
                    a.extend(rest);
                }
            }
            _ => msgs.push(json!({"role": role, "content": results})),
        }
    }
    body.insert("messages".into(), Value::Array(msgs));
    let system: Vec<Value> = req
        .system
        .iter()
        .chain(req.mid_system())
        .map(|p| match p {
            Part::Text { text, cache } => {
                let mut v = vec![json!({"text": text})];
                if cache.is_some() {
                    v.push(json!({"cachePoint": {"type": "default"}}));
                }
                Ok(v)
            }
            _ => Err(unsupported(Format::Bedrock, o, "non-text system content")),
        })
        .collect::<Result<Vec<_>, _>>()?
        .into_iter()
        .flatten()
        .collect();
    if !system.is_empty() {
        body.insert("system".into(), Value::Array(system));
    }
    let s = &req.sampling;
    let mut ic = Map::new();
    if let Some(mt) = s.max_tokens.or(Some(o.default_max_tokens)) {
        ic.insert("maxTokens".into(), json!(mt));
    }
    if let Some(t) = s.temperature {
        ic.insert("temperature".into(), num(t));
    }
    if let Some(t) = s.top_p {
        ic.insert("topP".into(), num(t));
    }
    if !s.stop.is_empty() {
        ic.insert("stopSequences".into(), json!(s.stop));
    }
    body.insert("inferenceConfig".into(), Value::Object(ic));
    if !req.tools.is_empty() {
        let mut tools = Vec::new();
        for t in &req.tools {
            match t {
                Tool::Function {
                    name,
                    description,
                    parameters,
                    cache,
                    ..
                } => {
                    let mut spec = json!({"name": name, "inputSchema": {"json": parameters}});
                    if let Some(d) = description {
                        spec["description"] = json!(d);
                    }
                    tools.push(json!({"toolSpec": spec}));
                    if cache.is_some() {
                        tools.push(json!({"cachePoint": {"type": "default"}}));
                    }
                }
                Tool::Native { def, .. } => {
                    return Err(server_tool(Format::Bedrock, o, def));
                }
            }
        }
        let mut tc = json!({"tools": tools});
        match &req.tool_choice {
            Some(ToolChoice::Required) => tc["toolChoice"] = json!({"any": {}}),
            Some(ToolChoice::Named(n)) => tc["toolChoice"] = json!({"tool": {"name": n}}),
            Some(ToolChoice::Auto) => tc["toolChoice"] = json!({"auto": {}}),
            // Converse has no "none": leaving the tools out is the same answer, unless the
            // history holds tool blocks, which need a toolConfig (then the model may choose).
            Some(ToolChoice::None) if !has_tool_blocks(req) => tc = Value::Null,
            Some(ToolChoice::None) => {}
            None => {}
        }
        if !tc.is_null() {
            body.insert("toolConfig".into(), tc);
        }
    }
    // Model-specific fields (Anthropic thinking, top_k) go in additionalModelRequestFields.
    let mut extra = match req.extra.fields.get("additionalModelRequestFields") {
        Some(Value::Object(m)) if req.extra.format == Some(Format::Bedrock) => m.clone(),
        _ => Map::new(),
    };
    if let Some(k) = s.top_k {
        extra.entry("top_k").or_insert(json!(k));
    }
    if let Some(r) = &req.reasoning {
        let budget = match r.effort.as_deref() {
            Some("none") => None,
            effort => r.budget_tokens.or_else(|| effort.map(thinking_budget)),
        };
        if let Some(b) = budget {
            extra
                .entry("thinking")
                .or_insert(json!({"type": "enabled", "budget_tokens": b}));
        }
    }
    if !extra.is_empty() {
        body.insert("additionalModelRequestFields".into(), Value::Object(extra));
    }
    keep_own_fields(&mut body, req, Format::Bedrock);
    body_bytes(body)
}

fn has_tool_blocks(req: &ChatRequest) -> bool {
    req.messages
        .iter()
        .flat_map(|m| m.content.iter())
        .any(|p| matches!(p, Part::ToolUse { .. } | Part::ToolResult { .. }))
}

fn encode_block(p: &Part, o: &EncodeOpts<'_>) -> Result<Vec<Value>, ApiError> {
    let with_cache = |v: Value, cache: &Option<Value>| {
        let mut out = vec![v];
        if cache.is_some() {
            out.push(json!({"cachePoint": {"type": "default"}}));
        }
        out
    };
    Ok(match p {
        // Converse refuses blank text blocks (Gemini clients send empty parts back).
        Part::Text { text, .. } if text.trim().is_empty() => Vec::new(),
        Part::Text { text, cache } => with_cache(json!({"text": text}), cache),
        Part::Image { source, cache, .. } => match source {
            ImageSource::Base64 { media_type, data } => {
                let fmt = image_format(media_type).ok_or_else(|| {
                    unsupported(Format::Bedrock, o, &format!("images of type {media_type}"))
                })?;
                with_cache(
                    json!({"image": {"format": fmt, "source": {"bytes": data}}}),
                    cache,
                )
            }
            ImageSource::Url { .. } => {
                return Err(unsupported(
                    Format::Bedrock,
                    o,
                    "images by URL (Bedrock takes bytes: send them inline, as base64 data)",
                ));
            }
        },
        Part::ToolUse {
            id,
            name,
            arguments,
            cache,
        } => {
            let input: Value = serde_json::from_str(arguments)
                .ok()
                .filter(Value::is_object)
                .unwrap_or_else(|| json!({}));
            with_cache(
                json!({"toolUse": {"toolUseId": id, "name": name, "input": input}}),
                cache,
            )
        }
        Part::ToolResult {
            tool_use_id,
            content,
            is_error,
            cache,
        } => {
            let mut c = Vec::new();
            for part in content {
                match part {
                    Part::Text { text, .. } => c.push(json!({"text": text})),
                    Part::Image { .. } => c.extend(encode_block(part, o)?),
                    _ => {}
                }
            }
            if c.is_empty() {
                c.push(json!({"text": ""}));
            }
            let mut tr = json!({"toolUseId": tool_use_id, "content": c});
            if *is_error {
                tr["status"] = json!("error");
            }
            with_cache(json!({"toolResult": tr}), cache)
        }
        Part::Thinking { text, signature } => match signature {
            Some(sig) => vec![
                json!({"reasoningContent": {"reasoningText": {"text": text, "signature": sig}}}),
            ],
            None => Vec::new(),
        },
        Part::RedactedThinking { data } => {
            vec![json!({"reasoningContent": {"redactedContent": data}})]
        }
        Part::Opaque {
            format: Format::Bedrock,
            block,
        } => vec![block.clone()],
        Part::Opaque { block, .. } => {
            return Err(unsupported(
                Format::Bedrock,
                o,
                &format!(
                    "the content block {}",
                    block.get("type").unwrap_or(&Value::Null)
                ),
            ));
        }
    })
}
