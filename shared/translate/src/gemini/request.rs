//! Gemini `generateContent` request body <-> canonical request. The model and the stream flag
//! are in the URL, not the body: the endpoint sets them after decoding.

use super::{ids, schema};
use crate::EncodeOpts;
use crate::json::*;
use gw_model::*;
use serde_json::{Map, Value, json};
use std::collections::{HashMap, VecDeque};

/// Top-level fields this module maps; everything else goes to `extra`.
const KNOWN: &[&str] = &[
    "contents",
    "systemInstruction",
    "system_instruction",
    "tools",
    "toolConfig",
    "tool_config",
    "generationConfig",
    "generation_config",
    "model",
];

/// A field by its JSON name or its proto name (the API accepts both).
fn field<'a>(m: &'a Map<String, Value>, camel: &str, snake: &str) -> Option<&'a Value> {
    m.get(camel)
        .or_else(|| m.get(snake))
        .filter(|v| !v.is_null())
}

/// Decodes a `generateContent` (or `countTokens`) request.
pub fn decode_request(body: &[u8]) -> Result<ChatRequest, ApiError> {
    let mut m = parse_body(body)?;
    // countTokens may wrap a whole generateContent request.
    if let Some(Value::Object(inner)) =
        field(&m, "generateContentRequest", "generate_content_request")
    {
        m = inner.clone();
    }
    let mut req = ChatRequest::default();
    if let Some(Value::String(model)) = m.get("model") {
        req.model = model.trim_start_matches("models/").to_owned();
    }
    let contents = req_array(field(&m, "contents", "contents"), "contents")?;
    let mut calls = Calls::default();
    for (i, c) in contents.iter().enumerate() {
        decode_content(c, &format!("contents[{i}]"), &mut req, &mut calls)?;
    }
    if let Some(si) = field(&m, "systemInstruction", "system_instruction") {
        let parts = as_obj(si, "systemInstruction")?
            .get("parts")
            .and_then(Value::as_array)
            .ok_or_else(|| missing("systemInstruction.parts"))?;
        for (i, p) in parts.iter().enumerate() {
            let path = format!("systemInstruction.parts[{i}]");
            let text = as_obj(p, &path)?
                .get("text")
                .and_then(Value::as_str)
                .ok_or_else(|| {
                    ApiError::invalid(format!("`{path}`: only text parts are allowed"))
                })?;
            req.system.push(Part::Text {
                text: text.to_owned(),
                cache: None,
            });
        }
    }
    if let Some(tools) = field(&m, "tools", "tools") {
        let arr = tools
            .as_array()
            .ok_or_else(|| wrong_type("tools", "an array", tools))?;
        for (i, t) in arr.iter().enumerate() {
            decode_tool(t, &format!("tools[{i}]"), &mut req)?;
        }
    }
    if let Some(tc) = field(&m, "toolConfig", "tool_config") {
        let tc = as_obj(tc, "toolConfig")?;
        if let Some(fc) = field(tc, "functionCallingConfig", "function_calling_config") {
            let fc = as_obj(fc, "toolConfig.functionCallingConfig")?;
            let names: Vec<&str> = field(fc, "allowedFunctionNames", "allowed_function_names")
                .and_then(Value::as_array)
                .map(|a| a.iter().filter_map(Value::as_str).collect())
                .unwrap_or_default();
            req.tool_choice = match fc.get("mode").and_then(Value::as_str) {
                Some("NONE") => Some(ToolChoice::None),
                Some("ANY") if names.len() == 1 => Some(ToolChoice::Named(names[0].to_owned())),
                Some("ANY") => Some(ToolChoice::Required),
                Some("AUTO") | Some("VALIDATED") | None => Some(ToolChoice::Auto),
                Some(other) => {
                    return Err(ApiError::invalid(format!(
                        "`toolConfig.functionCallingConfig.mode`: unknown mode \"{other}\""
                    )));
                }
            };
        }
    }
    if let Some(gc) = field(&m, "generationConfig", "generation_config") {
        decode_generation_config(as_obj(gc, "generationConfig")?, &mut req)?;
    }
    for (k, v) in &m {
        if !KNOWN.contains(&k.as_str()) {
            req.extra.fields.insert(k.clone(), v.clone());
        }
    }
    if !req.extra.fields.is_empty() {
        req.extra.format = Some(Format::Gemini);
    }
    Ok(req)
}

/// Ids given to calls that came without one, so their results can name them. Lookups are
/// indexed (a body may hold 100k calls); answered slots are emptied and skipped lazily.
#[derive(Default)]
struct Calls {
    /// The id of each call, `None` once answered.
    slots: Vec<Option<String>>,
    by_name: HashMap<String, VecDeque<usize>>,
    by_id: HashMap<String, VecDeque<usize>>,
    n: usize,
}

impl Calls {
    fn push(&mut self, name: &str, id: &str) {
        let i = self.slots.len();
        self.slots.push(Some(id.to_owned()));
        self.by_name
            .entry(name.to_owned())
            .or_default()
            .push_back(i);
        self.by_id.entry(id.to_owned()).or_default().push_back(i);
    }

    /// The oldest unanswered call in `index[key]`, now answered.
    fn take(
        slots: &mut [Option<String>],
        index: &mut HashMap<String, VecDeque<usize>>,
        key: &str,
    ) -> Option<String> {
        let queue = index.get_mut(key)?;
        while let Some(i) = queue.pop_front() {
            if let Some(id) = slots[i].take() {
                return Some(id);
            }
        }
        None
    }

    /// Answers the call `id` names, else the oldest unanswered one named `name`.
    fn answer(&mut self, name: &str, id: Option<&str>) -> Option<String> {
        match id {
            Some(id) => Self::take(&mut self.slots, &mut self.by_id, id),
            None => Self::take(&mut self.slots, &mut self.by_name, name),
        }
    }
}

fn decode_content(
    v: &Value,
    path: &str,
    req: &mut ChatRequest,
    calls: &mut Calls,
) -> Result<(), ApiError> {
    let c = as_obj(v, path)?;
    let role = match c.get("role").and_then(Value::as_str) {
        None | Some("user") | Some("function") => Role::User,
        Some("model") => Role::Assistant,
        Some(other) => {
            return Err(ApiError::invalid(format!(
                "`{path}.role`: unknown role \"{other}\" (expected user or model)"
            )));
        }
    };
    let parts = c
        .get("parts")
        .and_then(Value::as_array)
        .ok_or_else(|| missing(&join(path, "parts")))?;
    let mut out = Vec::new();
    for (i, p) in parts.iter().enumerate() {
        let pp = format!("{path}.parts[{i}]");
        let po = as_obj(p, &pp)?;
        let signature = field(po, "thoughtSignature", "thought_signature")
            .and_then(Value::as_str)
            .map(ids::unwrap_signature);
        let signature = signature.as_deref();
        if let Some(fc) = field(po, "functionCall", "function_call") {
            let fc = as_obj(fc, &join(&pp, "functionCall"))?;
            let name = req_str(fc, "name", &join(&pp, "functionCall"))?;
            let id = match fc.get("id").and_then(Value::as_str) {
                Some(id) if !id.is_empty() => id.to_owned(),
                _ => {
                    calls.n += 1;
                    ids::call_id("hist", calls.n, signature)
                }
            };
            calls.push(&name, &id);
            let args = fc.get("args").cloned().unwrap_or_else(|| json!({}));
            out.push(Part::ToolUse {
                id,
                name,
                arguments: args.to_string(),
                cache: None,
            });
        } else if let Some(fr) = field(po, "functionResponse", "function_response") {
            let fr = as_obj(fr, &join(&pp, "functionResponse"))?;
            let name = req_str(fr, "name", &join(&pp, "functionResponse"))?;
            let by_id = fr
                .get("id")
                .and_then(Value::as_str)
                .filter(|s| !s.is_empty());
            let id = match (calls.answer(&name, by_id), by_id) {
                (Some(id), _) => id,
                (None, Some(id)) => id.to_owned(),
                (None, None) => {
                    return Err(ApiError::invalid(format!(
                        "`{pp}.functionResponse`: no earlier functionCall named \"{name}\" to answer"
                    )));
                }
            };
            let response = fr.get("response").cloned().unwrap_or_else(|| json!({}));
            out.push(Part::ToolResult {
                tool_use_id: id,
                content: vec![Part::Text {
                    text: result_text(&response),
                    cache: None,
                }],
                is_error: response.get("error").is_some(),
                cache: None,
            });
        } else if let Some(t) = po.get("text").and_then(Value::as_str) {
            if po.get("thought").and_then(Value::as_bool) == Some(true) {
                // A streamed thought comes back as many parts, the signature on the last one:
                // they are one thinking block, signed as a whole.
                match out.last_mut() {
                    Some(Part::Thinking {
                        text,
                        signature: prev @ None,
                    }) => {
                        text.push_str(t);
                        *prev = signature.map(str::to_owned);
                    }
                    _ => out.push(Part::Thinking {
                        text: t.to_owned(),
                        signature: signature.map(str::to_owned),
                    }),
                }
            } else if !t.is_empty() {
                // Gemini ends turns with an empty text part; other providers refuse blank text.
                out.push(Part::Text {
                    text: t.to_owned(),
                    cache: None,
                });
            }
        } else if let Some(d) = field(po, "inlineData", "inline_data") {
            let d = as_obj(d, &join(&pp, "inlineData"))?;
            out.push(Part::Image {
                source: ImageSource::Base64 {
                    media_type: req_str(d, "mimeType", &join(&pp, "inlineData"))
                        .or_else(|_| req_str(d, "mime_type", &join(&pp, "inlineData")))?,
                    // Other providers read standard base64 only.
                    data: ids::standard_base64(&req_str(d, "data", &join(&pp, "inlineData"))?),
                },
                detail: None,
                cache: None,
            });
        } else {
            // fileData, executable code, ...: kept for a Gemini upstream, refused elsewhere.
            out.push(Part::Opaque {
                format: Format::Gemini,
                block: p.clone(),
            });
        }
    }
    // A turn of tool results holds only results; anything else goes in a turn of its own.
    let (results, rest): (Vec<Part>, Vec<Part>) = out
        .into_iter()
        .partition(|p| matches!(p, Part::ToolResult { .. }));
    for content in [results, rest] {
        if !content.is_empty() {
            req.messages.push(Message { role, content });
        }
    }
    Ok(())
}

/// A tool result's text: the plain value of `{"result": ...}`-style objects, else the JSON.
fn result_text(response: &Value) -> String {
    if let Value::Object(o) = response
        && o.len() == 1
        && let Some(Value::String(s)) = o
            .get("result")
            .or_else(|| o.get("content"))
            .or_else(|| o.get("output"))
    {
        return s.clone();
    }
    response.to_string()
}

fn decode_tool(v: &Value, path: &str, req: &mut ChatRequest) -> Result<(), ApiError> {
    let t = as_obj(v, path)?;
    let Some(decls) = field(t, "functionDeclarations", "function_declarations") else {
        req.tools.push(Tool::Native {
            format: Format::Gemini,
            def: v.clone(),
        });
        return Ok(());
    };
    let decls = decls
        .as_array()
        .ok_or_else(|| wrong_type(&join(path, "functionDeclarations"), "an array", decls))?;
    for (i, d) in decls.iter().enumerate() {
        let dp = format!("{path}.functionDeclarations[{i}]");
        let d = as_obj(d, &dp)?;
        let parameters = match field(d, "parametersJsonSchema", "parameters_json_schema")
            .or_else(|| field(d, "parameters", "parameters"))
        {
            Some(Value::Object(o)) => Value::Object(o.clone()),
            Some(other) => return Err(wrong_type(&join(&dp, "parameters"), "an object", other)),
            None => json!({"type": "object", "properties": {}}),
        };
        req.tools.push(Tool::Function {
            name: req_str(d, "name", &dp)?,
            description: opt_str(d, "description", &dp)?,
            parameters,
            strict: None,
            cache: None,
        });
    }
    Ok(())
}

fn decode_generation_config(g: &Map<String, Value>, req: &mut ChatRequest) -> Result<(), ApiError> {
    let p = "generationConfig";
    let s = &mut req.sampling;
    let f64_of = |camel: &str, snake: &str| field(g, camel, snake).and_then(Value::as_f64);
    let u64_of = |camel: &str, snake: &str| field(g, camel, snake).and_then(Value::as_u64);
    s.max_tokens = u64_of("maxOutputTokens", "max_output_tokens");
    s.temperature = f64_of("temperature", "temperature");
    s.top_p = f64_of("topP", "top_p");
    s.top_k = u64_of("topK", "top_k");
    s.seed = field(g, "seed", "seed").and_then(Value::as_i64);
    s.presence_penalty = f64_of("presencePenalty", "presence_penalty");
    s.frequency_penalty = f64_of("frequencyPenalty", "frequency_penalty");
    if let Some(stop) = field(g, "stopSequences", "stop_sequences") {
        s.stop = stop
            .as_array()
            .ok_or_else(|| wrong_type(&join(p, "stopSequences"), "an array", stop))?
            .iter()
            .filter_map(Value::as_str)
            .map(str::to_owned)
            .collect();
    }
    if u64_of("candidateCount", "candidate_count").is_some_and(|n| n > 1) {
        return Err(ApiError::invalid(
            "`generationConfig.candidateCount` > 1 is not supported by the gateway",
        )
        .with_param("generationConfig.candidateCount"));
    }
    let mime = field(g, "responseMimeType", "response_mime_type").and_then(Value::as_str);
    let schema = field(g, "responseJsonSchema", "response_json_schema")
        .or_else(|| field(g, "responseSchema", "response_schema"));
    req.response_format = match (mime, schema) {
        (_, Some(schema)) => Some(ResponseFormat::JsonSchema {
            name: "response".into(),
            schema: schema.clone(),
            strict: None,
        }),
        (Some("application/json"), None) => Some(ResponseFormat::JsonObject),
        _ => None,
    };
    if let Some(tc) = field(g, "thinkingConfig", "thinking_config") {
        let tc = as_obj(tc, &join(p, "thinkingConfig"))?;
        let budget = field(tc, "thinkingBudget", "thinking_budget").and_then(Value::as_i64);
        let level = field(tc, "thinkingLevel", "thinking_level")
            .and_then(Value::as_str)
            .map(str::to_ascii_lowercase);
        req.reasoning = Some(Reasoning {
            effort: match budget {
                Some(0) => Some("none".into()),
                _ => level,
            },
            budget_tokens: budget
                .and_then(|b| u64::try_from(b).ok())
                .filter(|b| *b > 0),
        });
    }
    Ok(())
}

/// Encodes a canonical request as a Gemini `generateContent` body.
pub fn encode_request(req: &ChatRequest, o: &EncodeOpts<'_>) -> Result<Vec<u8>, ApiError> {
    let mut body = Map::new();
    let names = call_names(req);
    let mut contents: Vec<Value> = Vec::new();
    for m in req.messages.iter().filter(|m| m.role != Role::System) {
        let role = if m.role == Role::User {
            "user"
        } else {
            "model"
        };
        let mut parts = Vec::new();
        for p in &m.content {
            if let Some(v) = encode_part(p, &names, o)? {
                parts.push(v);
            }
        }
        if parts.is_empty() {
            continue;
        }
        // Consecutive turns of one role are merged (tool results after a user text, ...).
        match contents.last_mut() {
            Some(last) if last["role"] == role => {
                if let Some(a) = last["parts"].as_array_mut() {
                    a.extend(parts);
                }
            }
            _ => contents.push(json!({"role": role, "parts": parts})),
        }
    }
    body.insert("contents".into(), Value::Array(contents));
    // Gemini has one place for instructions: mid-conversation ones are folded into it.
    let system: Vec<&Part> = req.system.iter().chain(req.mid_system()).collect();
    if !system.is_empty() {
        let mut parts = Vec::new();
        for p in system {
            match p {
                Part::Text { text, .. } => parts.push(json!({"text": text})),
                _ => return Err(unsupported(Format::Gemini, o, "non-text system content")),
            }
        }
        body.insert("systemInstruction".into(), json!({"parts": parts}));
    }
    if !req.tools.is_empty() {
        let mut decls = Vec::new();
        let mut tools = Vec::new();
        for t in &req.tools {
            match t {
                Tool::Function {
                    name,
                    description,
                    parameters,
                    ..
                } => {
                    let mut d = Map::new();
                    d.insert("name".into(), json!(name));
                    if let Some(desc) = description {
                        d.insert("description".into(), json!(desc));
                    }
                    let params = schema::sanitize(parameters);
                    // An empty object schema is refused: no parameters at all is the same tool.
                    if params
                        .get("properties")
                        .and_then(Value::as_object)
                        .is_some_and(|p| !p.is_empty())
                        || params.get("type").is_some_and(|t| t != "object")
                    {
                        d.insert("parameters".into(), params);
                    }
                    decls.push(Value::Object(d));
                }
                Tool::Native {
                    format: Format::Gemini,
                    def,
                } => tools.push(def.clone()),
                Tool::Native { def, .. } => {
                    return Err(server_tool(Format::Gemini, o, def));
                }
            }
        }
        if !decls.is_empty() {
            tools.insert(0, json!({"functionDeclarations": decls}));
        }
        body.insert("tools".into(), Value::Array(tools));
        if let Some(tc) = &req.tool_choice {
            let fc = match tc {
                ToolChoice::Auto => json!({"mode": "AUTO"}),
                ToolChoice::None => json!({"mode": "NONE"}),
                ToolChoice::Required => json!({"mode": "ANY"}),
                ToolChoice::Named(n) => json!({"mode": "ANY", "allowedFunctionNames": [n]}),
            };
            body.insert("toolConfig".into(), json!({"functionCallingConfig": fc}));
        }
    }
    let gc = generation_config(req, o)?;
    if !gc.is_empty() {
        body.insert("generationConfig".into(), Value::Object(gc));
    }
    keep_own_fields(&mut body, req, Format::Gemini);
    body_bytes(body)
}

fn generation_config(
    req: &ChatRequest,
    o: &EncodeOpts<'_>,
) -> Result<Map<String, Value>, ApiError> {
    let s = &req.sampling;
    let mut gc = Map::new();
    if let Some(mt) = s.max_tokens {
        gc.insert("maxOutputTokens".into(), json!(mt));
    }
    for (k, v) in [
        ("temperature", s.temperature),
        ("topP", s.top_p),
        ("presencePenalty", s.presence_penalty),
        ("frequencyPenalty", s.frequency_penalty),
    ] {
        if let Some(v) = v {
            gc.insert(k.into(), num(v));
        }
    }
    if let Some(k) = s.top_k {
        gc.insert("topK".into(), json!(k));
    }
    if let Some(seed) = s.seed {
        gc.insert("seed".into(), json!(seed));
    }
    if !s.stop.is_empty() {
        if s.stop.len() > 5 {
            return Err(
                unsupported(Format::Gemini, o, "more than 5 stop sequences").with_param("stop")
            );
        }
        gc.insert("stopSequences".into(), json!(s.stop));
    }
    match &req.response_format {
        None | Some(ResponseFormat::Text) => {}
        Some(ResponseFormat::JsonObject) => {
            gc.insert("responseMimeType".into(), json!("application/json"));
        }
        Some(ResponseFormat::JsonSchema { schema, .. }) => {
            gc.insert("responseMimeType".into(), json!("application/json"));
            gc.insert("responseSchema".into(), schema::sanitize(schema));
        }
    }
    if let Some(r) = &req.reasoning {
        let budget = match r.effort.as_deref() {
            Some("none") => Some(0),
            effort => r.budget_tokens.or_else(|| effort.map(thinking_budget)),
        };
        if let Some(b) = budget {
            gc.insert(
                "thinkingConfig".into(),
                json!({"thinkingBudget": b, "includeThoughts": b > 0}),
            );
        }
    }
    Ok(gc)
}

/// Tool names by call id, for function responses (which Gemini matches by name).
fn call_names(req: &ChatRequest) -> Vec<(&str, &str)> {
    req.messages
        .iter()
        .flat_map(|m| m.content.iter())
        .filter_map(|p| match p {
            Part::ToolUse { id, name, .. } => Some((id.as_str(), name.as_str())),
            _ => None,
        })
        .collect()
}

fn encode_part(
    p: &Part,
    names: &[(&str, &str)],
    o: &EncodeOpts<'_>,
) -> Result<Option<Value>, ApiError> {
    Ok(Some(match p {
        Part::Text { text, .. } => json!({"text": text}),
        Part::Image { source, .. } => match source {
            ImageSource::Base64 { media_type, data } => {
                json!({"inlineData": {"mimeType": media_type, "data": data}})
            }
            ImageSource::Url { .. } => {
                return Err(unsupported(
                    Format::Gemini,
                    o,
                    "images by URL (send them inline, as base64 data)",
                ));
            }
        },
        Part::ToolUse {
            id,
            name,
            arguments,
            ..
        } => {
            let args: Value = serde_json::from_str(arguments)
                .ok()
                .filter(Value::is_object)
                .unwrap_or_else(|| json!({}));
            // A call Gemini made carries its signature back; a call another model made gets
            // the stand-in Google documents for such history.
            let sig = ids::signature_of(id).unwrap_or_else(|| ids::SKIP_SIGNATURE.to_owned());
            json!({"functionCall": {"name": name, "args": args}, "thoughtSignature": sig})
        }
        Part::ToolResult {
            tool_use_id,
            content,
            is_error,
            ..
        } => {
            let name = names
                .iter()
                .find(|(id, _)| *id == tool_use_id)
                .map(|(_, n)| *n)
                .ok_or_else(|| {
                    ApiError::invalid(format!(
                        "tool result `{tool_use_id}` answers no tool call in this conversation (Gemini matches results to calls by name)"
                    ))
                })?;
            let text: String = content
                .iter()
                .filter_map(|c| match c {
                    Part::Text { text, .. } => Some(text.as_str()),
                    _ => None,
                })
                .collect::<Vec<_>>()
                .join("\n");
            let response = match serde_json::from_str::<Value>(&text) {
                Ok(v @ Value::Object(_)) => v,
                _ if *is_error => json!({"error": text}),
                _ => json!({"result": text}),
            };
            json!({"functionResponse": {"name": name, "response": response}})
        }
        Part::Thinking { text, signature } => match signature {
            // Thoughts go back only with their signature (which is what Gemini checks).
            Some(sig) => json!({"text": text, "thought": true, "thoughtSignature": sig}),
            None => return Ok(None),
        },
        Part::RedactedThinking { .. } => return Ok(None),
        Part::Opaque {
            format: Format::Gemini,
            block,
        } => block.clone(),
        Part::Opaque { block, .. } => {
            return Err(unsupported(
                Format::Gemini,
                o,
                &format!(
                    "the content block {}",
                    block.get("type").unwrap_or(&Value::Null)
                ),
            ));
        }
    }))
}
