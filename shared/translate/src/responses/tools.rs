//! Responses tools on a translated route: a `namespace` tool flattens to `{namespace}__{name}`
//! functions (calls to them go back split again); a hosted OpenAI tool offered but not forced is
//! left out, since only OpenAI can run it; one forced is refused.

use crate::json::*;
use gw_model::*;
use serde_json::{Map, Value, json};

/// Joins a namespace and a function name; `__` is valid in every format's tool names.
pub(crate) const NS_SEP: &str = "__";

/// Tools OpenAI runs itself. Offered to another provider they are left out (the model there
/// cannot call them); client-run kinds (`custom`, `local_shell`, computer use) are refused.
const HOSTED: &[&str] = &[
    "web_search",
    "web_search_preview",
    "web_search_2025_08_26",
    "web_search_preview_2025_03_11",
    "file_search",
    "code_interpreter",
    "image_generation",
    "mcp",
];

fn function(
    to: &Map<String, Value>,
    path: &str,
    name: String,
    about: Option<&str>,
) -> Result<Tool, ApiError> {
    let own = opt_str(to, "description", path)?;
    Ok(Tool::Function {
        name,
        description: match (about, own) {
            (Some(a), Some(d)) => Some(format!("{a}\n\n{d}")),
            (Some(a), None) => Some(a.to_owned()),
            (None, d) => d,
        },
        parameters: opt_obj(to, "parameters", path)?.map_or_else(
            || json!({"type": "object", "properties": {}}),
            |o| Value::Object(o.clone()),
        ),
        strict: opt_bool(to, "strict", path)?,
        cache: None,
    })
}

/// A namespace whose members are all functions (custom tools inside one stay native).
fn all_functions(to: &Map<String, Value>) -> bool {
    to.get("tools").and_then(Value::as_array).is_some_and(|a| {
        !a.is_empty()
            && a.iter()
                .all(|t| t.get("type").and_then(Value::as_str) == Some("function"))
    })
}

/// Decodes `tools` into `req.tools` (and `req.tool_namespaces`).
pub(super) fn decode_tools(tools: &[Value], req: &mut ChatRequest) -> Result<(), ApiError> {
    for (i, t) in tools.iter().enumerate() {
        let path = format!("tools[{i}]");
        let to = as_obj(t, &path)?;
        match to.get("type").and_then(Value::as_str) {
            Some("function") => {
                let name = req_str(to, "name", &path)?;
                req.tools.push(function(to, &path, name, None)?);
            }
            Some("namespace") if all_functions(to) => {
                let ns = req_str(to, "name", &path)?;
                let about = opt_str(to, "description", &path)?;
                let inner = req_array(to.get("tools"), &join(&path, "tools"))?;
                for (j, f) in inner.iter().enumerate() {
                    let fpath = format!("{path}.tools[{j}]");
                    let fo = as_obj(f, &fpath)?;
                    let name = format!("{ns}{NS_SEP}{}", req_str(fo, "name", &fpath)?);
                    req.tools
                        .push(function(fo, &fpath, name, about.as_deref())?);
                }
                req.tool_namespaces.push(ns);
            }
            _ => req.tools.push(Tool::Native {
                format: Format::Responses,
                def: t.clone(),
            }),
        }
    }
    Ok(())
}

/// Decodes `tool_choice`. One that forces a hosted tool has no canonical form: it is kept in
/// `extra` (for a native upstream) and refused by [`check_forced_hosted`] elsewhere.
pub(super) fn decode_tool_choice(v: Option<&Value>, req: &mut ChatRequest) -> Result<(), ApiError> {
    req.tool_choice = match v {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(match s.as_str() {
            "none" => ToolChoice::None,
            "required" => ToolChoice::Required,
            _ => ToolChoice::Auto,
        }),
        Some(Value::Object(o)) => match (o.get("type").and_then(Value::as_str), o.get("name")) {
            (None | Some("function" | "custom"), Some(Value::String(n))) => Some(
                ToolChoice::Named(match o.get("namespace").and_then(Value::as_str) {
                    Some(ns) => format!("{ns}{NS_SEP}{n}"),
                    None => n.clone(),
                }),
            ),
            (None | Some("function" | "custom" | "allowed_tools"), _) => Some(ToolChoice::Auto),
            (Some(_), _) => {
                req.extra
                    .fields
                    .insert("tool_choice".into(), Value::Object(o.clone()));
                Some(ToolChoice::Required)
            }
        },
        Some(v) => return Err(wrong_type("tool_choice", "a string or an object", v)),
    };
    Ok(())
}

/// Refuses a `tool_choice` that forces a tool only OpenAI runs.
pub(super) fn check_forced_hosted(req: &ChatRequest) -> Result<(), ApiError> {
    match req.extra.fields.get("tool_choice") {
        Some(tc) => Err(ApiError::invalid(format!(
            "`tool_choice` {tc} forces a tool only OpenAI runs: this route translates the request to another provider; let the model choose (\"auto\") or use a function tool"
        ))
        .with_param("tool_choice")),
        None => Ok(()),
    }
}

fn is_hosted(t: &Tool) -> bool {
    matches!(t, Tool::Native { format: Format::Responses, def }
        if def.get("type").and_then(Value::as_str).is_some_and(|ty| HOSTED.contains(&ty)))
}

/// The request without hosted-tool offers, when it has any (for a translated route).
pub fn without_hosted_offers(req: &ChatRequest) -> Option<ChatRequest> {
    if !req.tools.iter().any(is_hosted) {
        return None;
    }
    let mut r = req.clone();
    r.tools.retain(|t| !is_hosted(t));
    if r.tools.is_empty() {
        r.tool_choice = None;
        r.parallel_tool_calls = None;
    }
    Some(r)
}

/// `(namespace, name)` of a canonical tool name: split when the client declared the namespace.
pub(crate) fn split_name<'a>(
    namespaces: &'a [String],
    name: &'a str,
) -> (Option<&'a str>, &'a str) {
    for ns in namespaces {
        if let Some(rest) = name
            .strip_prefix(ns.as_str())
            .and_then(|r| r.strip_prefix(NS_SEP))
            .filter(|r| !r.is_empty())
        {
            return (Some(ns), rest);
        }
    }
    (None, name)
}
