//! URL path templates: `/openai/deployments/{model}/chat/completions?api-version={api_version}`.
//! Parsed and checked at config load; rendering percent-encodes every value, so a model id with
//! `:` or `/` stays one path segment (Bedrock inference profiles, Azure deployments).

use std::collections::BTreeMap;

#[derive(Debug, Clone, PartialEq, Eq)]
enum Piece {
    Lit(String),
    Model,
    /// The model as a path: each `/`-separated segment encoded, the slashes kept
    /// (Replicate's `owner/name`).
    ModelPath,
    Param(String),
}

/// A parsed template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UrlTemplate(Vec<Piece>);

impl UrlTemplate {
    /// Parses `text`; every `{name}` must be `model` or a key of `params`.
    pub fn parse(text: &str, params: &BTreeMap<String, String>) -> Result<Self, String> {
        if !text.starts_with('/') {
            return Err(format!(
                "`{text}` must start with `/` (it follows base_url)"
            ));
        }
        let mut pieces = Vec::new();
        let mut rest = text;
        while let Some(open) = rest.find('{') {
            if open > 0 {
                pieces.push(Piece::Lit(rest[..open].to_owned()));
            }
            let after = &rest[open + 1..];
            let close = after
                .find('}')
                .ok_or_else(|| format!("`{text}`: `{{` without a closing `}}`"))?;
            let name = &after[..close];
            pieces.push(match name {
                "model" => Piece::Model,
                "model_path" => Piece::ModelPath,
                p if params.contains_key(p) => Piece::Param(p.to_owned()),
                other => {
                    return Err(format!(
                        "`{text}`: unknown variable `{{{other}}}` (use {{model}}, {{model_path}} or a key of `params`)"
                    ));
                }
            });
            rest = &after[close + 1..];
        }
        if rest.contains('}') {
            return Err(format!("`{text}`: `}}` without an opening `{{`"));
        }
        if !rest.is_empty() {
            pieces.push(Piece::Lit(rest.to_owned()));
        }
        Ok(Self(pieces))
    }

    /// The path (and query) for `model`.
    pub fn render(&self, model: &str, params: &BTreeMap<String, String>) -> String {
        let mut out = String::new();
        for p in &self.0 {
            match p {
                Piece::Lit(s) => out.push_str(s),
                Piece::Model => out.push_str(&gw_codec::percent_encode(model)),
                Piece::ModelPath => {
                    let segs: Vec<String> =
                        model.split('/').map(gw_codec::percent_encode).collect();
                    out.push_str(&segs.join("/"));
                }
                Piece::Param(k) => {
                    out.push_str(&gw_codec::percent_encode(
                        params.get(k).map_or("", String::as_str),
                    ));
                }
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_encoded_values_and_refuses_unknown_variables() {
        let params: BTreeMap<String, String> =
            [("api_version".to_owned(), "2024-10-21".to_owned())].into();
        let t = UrlTemplate::parse(
            "/openai/deployments/{model}/chat/completions?api-version={api_version}",
            &params,
        )
        .unwrap();
        assert_eq!(
            t.render("my gpt/4o", &params),
            "/openai/deployments/my%20gpt%2F4o/chat/completions?api-version=2024-10-21"
        );
        let t = UrlTemplate::parse("/model/{model}/converse-stream", &params).unwrap();
        assert_eq!(
            t.render("us.anthropic.claude-3-7-sonnet-20250219-v1:0", &params),
            "/model/us.anthropic.claude-3-7-sonnet-20250219-v1%3A0/converse-stream"
        );
        let t = UrlTemplate::parse("/models/{model_path}/predictions", &params).unwrap();
        assert_eq!(
            t.render("meta/llama 3", &params),
            "/models/meta/llama%203/predictions"
        );
        assert!(
            UrlTemplate::parse("/x/{deployment}", &params)
                .unwrap_err()
                .contains("unknown variable")
        );
        assert!(UrlTemplate::parse("/x/{model", &params).is_err());
        assert!(UrlTemplate::parse("/x/model}", &params).is_err());
        assert!(UrlTemplate::parse("chat", &params).is_err());
    }
}
