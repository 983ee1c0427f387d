//! JSON Schema -> the OpenAPI subset Gemini accepts for function parameters and response
//! schemas. Gemini rejects unknown keys (`$schema`, `additionalProperties`, ...) with a 400, so
//! only the keys it knows are kept; `$ref`s are inlined from `$defs` / `definitions`, a type
//! list with `"null"` becomes `nullable`, `const` an `enum`, `oneOf` an `anyOf`.

use serde_json::{Map, Value, json};

/// Keys of Gemini's `Schema` object.
const KEPT: &[&str] = &[
    "type",
    "format",
    "title",
    "description",
    "nullable",
    "enum",
    "maxItems",
    "minItems",
    "properties",
    "required",
    "minProperties",
    "maxProperties",
    "minLength",
    "maxLength",
    "pattern",
    "example",
    "anyOf",
    "propertyOrdering",
    "default",
    "items",
    "minimum",
    "maximum",
];

/// Deepest `$ref` chain followed (recursive schemas cannot be inlined; past this they become
/// an untyped object).
const MAX_REF_DEPTH: usize = 8;

/// Most schema nodes inlining may produce: a few hundred bytes of `$ref`s, each to a definition
/// holding several more, would otherwise expand exponentially.
const MAX_NODES: usize = 50_000;

/// The Gemini form of `schema`.
pub(crate) fn sanitize(schema: &Value) -> Value {
    let defs = schema
        .get("$defs")
        .or_else(|| schema.get("definitions"))
        .cloned()
        .unwrap_or(Value::Null);
    let mut budget = MAX_NODES;
    clean(schema, &defs, 0, &mut budget)
}

/// Nodes in `v` (what cloning it costs).
fn nodes(v: &Value) -> usize {
    match v {
        Value::Array(a) => a.iter().map(nodes).sum::<usize>() + 1,
        Value::Object(m) => m.values().map(nodes).sum::<usize>() + 1,
        _ => 1,
    }
}

/// `budget` is charged for every node produced; once spent, `$ref`s are no longer inlined (the
/// rest of the schema is the client's own bytes, bounded by the body limit).
fn clean(v: &Value, defs: &Value, depth: usize, budget: &mut usize) -> Value {
    *budget = budget.saturating_sub(1);
    let Value::Object(m) = v else {
        *budget = budget.saturating_sub(nodes(v));
        return v.clone();
    };
    if let Some(r) = m.get("$ref").and_then(Value::as_str) {
        let name = r.rsplit('/').next().unwrap_or_default();
        return match defs.get(name) {
            Some(target) if depth < MAX_REF_DEPTH && *budget > 0 => {
                clean(target, defs, depth + 1, budget)
            }
            _ => json!({"type": "object"}),
        };
    }
    let mut out = Map::new();
    for (k, val) in m {
        match k.as_str() {
            "type" => match val {
                Value::Array(types) => {
                    let real: Vec<&Value> = types.iter().filter(|t| *t != "null").collect();
                    if real.len() < types.len() {
                        out.insert("nullable".into(), json!(true));
                    }
                    if let Some(t) = real.first() {
                        out.insert("type".into(), (*t).clone());
                    }
                }
                other => {
                    out.insert("type".into(), other.clone());
                }
            },
            "const" => {
                out.insert("enum".into(), json!([val]));
            }
            "oneOf" | "anyOf" => {
                let items: Vec<Value> = val
                    .as_array()
                    .map(|a| a.iter().map(|s| clean(s, defs, depth, budget)).collect())
                    .unwrap_or_default();
                out.insert("anyOf".into(), Value::Array(items));
            }
            "properties" => {
                let props: Map<String, Value> = val
                    .as_object()
                    .map(|p| {
                        p.iter()
                            .map(|(name, s)| (name.clone(), clean(s, defs, depth, budget)))
                            .collect()
                    })
                    .unwrap_or_default();
                out.insert("properties".into(), Value::Object(props));
            }
            "items" => {
                out.insert("items".into(), clean(val, defs, depth, budget));
            }
            k if KEPT.contains(&k) => {
                *budget = budget.saturating_sub(nodes(val));
                out.insert(k.into(), val.clone());
            }
            _ => {}
        }
    }
    // Gemini wants enum values as strings.
    if let Some(Value::Array(e)) = out.get_mut("enum") {
        for x in e.iter_mut() {
            if !x.is_string() {
                *x = Value::String(x.to_string());
            }
        }
    }
    Value::Object(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inlining_is_bounded_when_refs_fan_out() {
        // 16 references to itself per level: 16^8 nodes if every level were inlined.
        let props: serde_json::Map<String, Value> = (0..16)
            .map(|i| (format!("p{i}"), json!({"$ref": "#/$defs/N"})))
            .collect();
        let s =
            json!({"$defs": {"N": {"type": "object", "properties": props}}, "$ref": "#/$defs/N"});
        let out = sanitize(&s);
        assert!(nodes(&out) < 4 * MAX_NODES, "{} nodes", nodes(&out));
        assert_eq!(out["properties"]["p0"]["type"], "object");
    }

    #[test]
    fn strips_unknown_keys_inlines_refs_and_maps_nullable_types() {
        let s = json!({
            "$schema": "http://json-schema.org/draft-07/schema#",
            "type": "object",
            "additionalProperties": false,
            "properties": {
                "city": {"type": ["string", "null"], "description": "City", "examples": ["Paris"]},
                "unit": {"$ref": "#/$defs/Unit"},
                "tags": {"type": "array", "items": {"type": "string", "const": "x"}},
                "kind": {"oneOf": [{"type": "integer"}, {"type": "string"}]}
            },
            "required": ["city"],
            "$defs": {"Unit": {"type": "string", "enum": ["c", "f"], "additionalProperties": false}}
        });
        assert_eq!(
            sanitize(&s),
            json!({
                "type": "object",
                "properties": {
                    "city": {"type": "string", "nullable": true, "description": "City"},
                    "unit": {"type": "string", "enum": ["c", "f"]},
                    "tags": {"type": "array", "items": {"type": "string", "enum": ["x"]}},
                    "kind": {"anyOf": [{"type": "integer"}, {"type": "string"}]}
                },
                "required": ["city"]
            })
        );
    }

    #[test]
    fn recursive_refs_stop() {
        let s = json!({"$defs": {"N": {"type": "object", "properties": {"next": {"$ref": "#/$defs/N"}}}}, "$ref": "#/$defs/N"});
        let out = sanitize(&s).to_string();
        assert!(out.len() < 4000 && !out.contains("$ref"), "{out}");
    }
}
