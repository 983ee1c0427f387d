//! Config loading and model resolution against the shipped `config/gateway.yaml`.

use super::*;
use std::collections::HashMap;

pub(crate) const SHIPPED: &str = include_str!("../../../config/gateway.yaml");

pub(crate) fn load(yaml: &str, vars: &[(&str, &str)]) -> Result<Config, ConfigError> {
    let env: HashMap<String, String> = vars
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    Config::load(yaml, "test.yaml", &|k| env.get(k).cloned())
}

pub(crate) fn plan(c: &Config, model: &str, forced: Option<&str>) -> Vec<(String, String)> {
    c.resolve(model, forced)
        .unwrap()
        .into_iter()
        .map(|t| (c.providers[t.provider].id.clone(), t.model))
        .collect()
}

pub(crate) fn pm(p: &str, m: &str) -> (String, String) {
    (p.to_owned(), m.to_owned())
}

#[test]
fn shipped_config_loads_with_no_environment() {
    let c = load(SHIPPED, &[]).unwrap();
    assert!(c.keys.is_empty());
    let openai = &c.providers[c.provider_index("openai").unwrap()];
    assert_eq!(openai.base_url, "https://api.openai.com/v1");
    assert_eq!(openai.missing().as_deref(), Some("OPENAI_API_KEY"));
    let ag = &c.providers[c.provider_index("antigravity").unwrap()];
    assert_eq!(ag.missing().as_deref(), Some("ANTIGRAVITY_BASE_URL"));
}

#[test]
fn env_supplies_keys_and_base_url_overrides() {
    let c = load(
        SHIPPED,
        &[
            ("OPENAI_API_KEY", "sk-1"),
            ("GROQ_BASE_URL", "http://127.0.0.1:9/v1/"),
            ("GATEWAY_PROXY_KEY", "pk"),
            ("HF_TOKEN", "hf"),
        ],
    )
    .unwrap();
    let p = |id: &str| c.providers[c.provider_index(id).unwrap()].clone();
    assert_eq!(p("openai").signer.identity(), Some("sk-1"));
    assert!(p("openai").missing().is_none());
    assert_eq!(p("groq").base_url, "http://127.0.0.1:9/v1");
    assert_eq!(
        p("huggingface").signer.identity(),
        Some("hf"),
        "second env name is a fallback"
    );
    assert_eq!(c.keys[0].name, "default");
    assert_eq!(
        c.secrets(),
        vec!["sk-1".to_owned(), "hf".to_owned(), "pk".to_owned()]
    );
}

#[test]
fn resolution_order() {
    let c = load(SHIPPED, &[]).unwrap();
    assert_eq!(
        plan(&c, "gpt-4", None),
        vec![pm("openai", "gpt-4o")],
        "alias"
    );
    assert_eq!(
        plan(&c, "claude-3", None),
        vec![pm("anthropic", "claude-3-opus-latest")]
    );
    assert_eq!(
        plan(&c, "claude-3-haiku-20240307", None),
        vec![pm("anthropic", "claude-3-haiku-20240307")],
        "glob"
    );
    assert_eq!(
        plan(&c, "groq/llama-3.2-90b", None),
        vec![pm("groq", "llama-3.2-90b")],
        "prefix"
    );
    assert_eq!(
        plan(&c, "together/meta-llama/Llama-3-70b", None),
        vec![pm("together", "meta-llama/Llama-3-70b")]
    );
    assert_eq!(
        plan(&c, "meta-llama/Llama-3.2-3B-Instruct", None),
        vec![pm("huggingface", "meta-llama/Llama-3.2-3B-Instruct")],
        "listed"
    );
    assert_eq!(
        plan(&c, "deepseek-chat", None),
        vec![pm("deepseek", "deepseek-chat")]
    );
    assert_eq!(
        plan(&c, "gpt-4", Some("openrouter")),
        vec![pm("openrouter", "gpt-4")],
        "header forces provider"
    );
    assert_eq!(
        plan(&c, "gpt-4", Some("openai")),
        vec![pm("openai", "gpt-4o")],
        "header keeps the route's model for that provider"
    );
    assert_eq!(plan(&c, "groq/x", Some("groq")), vec![pm("groq", "x")]);
    let e = c.resolve("no-such-model", None).unwrap_err();
    assert_eq!(e.status, 404);
    assert!(e.message.contains("no-such-model"));
    assert_eq!(c.resolve("x", Some("nope")).unwrap_err().status, 400);
}

#[test]
fn fallback_chains_keep_order() {
    let c = load("providers:\n  a: {format: openai, base_url: 'http://a', auth: {type: none}}\n  b: {format: anthropic, base_url: 'http://b', auth: {type: none}}\nroutes:\n  smart: [b/m1, a/m2, a]\n", &[]).unwrap();
    assert_eq!(
        plan(&c, "smart", None),
        vec![pm("b", "m1"), pm("a", "m2"), pm("a", "smart")]
    );
}

#[test]
fn errors_name_file_path_and_reason() {
    let e = load(
        "providers:\n  x: {format: vertex, auth: {type: none}}\n",
        &[],
    )
    .unwrap_err()
    .to_string();
    assert!(
        e.starts_with("test.yaml: providers.x.format: unknown variant `vertex`"),
        "{e}"
    );
    let e = load("routes:\n  a: [nope/m]\n", &[])
        .unwrap_err()
        .to_string();
    assert_eq!(e, "test.yaml: routes.a[0]: unknown provider `nope`");
    let e = load(
        "providers:\n  x: {format: openai, base_url: '${X_URL}', auth: {type: none}}\n",
        &[],
    )
    .unwrap_err()
    .to_string();
    assert!(
        e.starts_with("test.yaml: providers.x.base_url: environment variable X_URL is not set"),
        "{e}"
    );
    let e = load("server: {max_body_bytes: -1}\n", &[])
        .unwrap_err()
        .to_string();
    assert!(e.starts_with("test.yaml: server.max_body_bytes: "), "{e}");
    let e = load("serverr: {}\n", &[]).unwrap_err().to_string();
    assert!(e.contains("unknown field `serverr`"), "{e}");
    let e = load("a: [", &[]).unwrap_err().to_string();
    assert!(e.starts_with("test.yaml: .: invalid YAML"), "{e}");
}

#[test]
fn interpolation_with_defaults() {
    let y = "keys:\n  - {name: alice, key: '${ALICE:-}'}\n  - {name: bob, key: 'k-${BOB}-x'}\n";
    let c = load(y, &[("BOB", "b")]).unwrap();
    assert_eq!(c.keys.len(), 1, "empty keys are ignored");
    assert_eq!(c.keys[0].key, "k-b-x");
}

#[test]
fn providers_take_url_templates_params_and_any_auth_scheme() {
    let yaml = "
providers:
  azure:
    format: openai
    base_url: https://res.openai.azure.com/
    auth: {type: header, name: api-key, env: [AZ_KEY]}
    paths: {chat: '/openai/deployments/{model}/chat/completions?api-version={api_version}'}
    params: {api_version: '2024-10-21'}
  gem:
    format: openai
    base_url: https://g.example/v1beta
    auth: {type: query, name: key, env: [G_KEY]}
    paths:
      chat: '/models/{model}:generateContent'
      chat_stream: '/models/{model}:streamGenerateContent?alt=sse'
  aws:
    format: anthropic
    base_url: https://bedrock-runtime.us-east-1.amazonaws.com
    auth: {type: aws_sigv4, service: bedrock, region: us-east-1}
";
    let c = load(
        yaml,
        &[
            ("AZ_KEY", "az-1"),
            ("G_KEY", "g-1"),
            ("AWS_ACCESS_KEY_ID", "AKID"),
            ("AWS_SECRET_ACCESS_KEY", "sek"),
        ],
    )
    .unwrap();
    let p = |id: &str| c.providers[c.provider_index(id).unwrap()].clone();
    use gw_model::Operation::{Chat, CountTokens};
    assert_eq!(
        p("azure").url_for(Chat, true, "my-gpt").unwrap(),
        "https://res.openai.azure.com/openai/deployments/my-gpt/chat/completions?api-version=2024-10-21",
        "a configured chat path serves streams too"
    );
    assert!(!p("azure").supports(CountTokens));
    assert_eq!(
        p("gem").url_for(Chat, true, "gemini-2.5-pro").unwrap(),
        "https://g.example/v1beta/models/gemini-2.5-pro:streamGenerateContent?alt=sse"
    );
    assert_eq!(
        p("aws").url_for(CountTokens, false, "x").unwrap(),
        "https://bedrock-runtime.us-east-1.amazonaws.com/v1/messages/count_tokens",
        "the format's default"
    );
    assert_eq!(p("aws").signer.identity(), Some("AKID"));
    assert!(c.secrets().contains(&"sek".to_owned()));
    let none = load(yaml, &[]).unwrap();
    let aws = &none.providers[none.provider_index("aws").unwrap()];
    assert_eq!(
        aws.missing().as_deref(),
        Some("AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY")
    );

    for (bad, path, why) in [
        (
            "paths: {chats: /x}",
            "providers.p.paths.chats",
            "unknown operation",
        ),
        (
            "paths: {chat: '/x/{deployment}'}",
            "providers.p.paths.chat",
            "unknown variable",
        ),
        (
            "paths: {chat: 'x'}",
            "providers.p.paths.chat",
            "must start with",
        ),
    ] {
        let y = format!(
            "providers:\n  p: {{format: openai, base_url: 'http://x', auth: {{type: none}}, {bad}}}\n"
        );
        let e = load(&y, &[]).unwrap_err();
        assert_eq!(e.path, path, "{bad}");
        assert!(e.reason.contains(why), "{bad}: {}", e.reason);
    }
    let y = "providers:\n  p: {format: openai, base_url: 'http://x', auth: {type: header, name: 'bad name', env: [K]}}\n";
    assert_eq!(load(y, &[]).unwrap_err().path, "providers.p.auth.name");
}

#[test]
fn bedrock_takes_an_api_key_or_sigv4_and_the_aws_endpoint_override() {
    let c = load(
        SHIPPED,
        &[
            ("AWS_ACCESS_KEY_ID", "AKID"),
            ("AWS_SECRET_ACCESS_KEY", "sek"),
            ("AWS_REGION", "eu-west-3"),
        ],
    )
    .unwrap();
    let b = &c.providers[c.provider_index("bedrock").unwrap()];
    assert_eq!(
        b.base_url,
        "https://bedrock-runtime.eu-west-3.amazonaws.com"
    );
    assert!(matches!(b.signer, gw_auth::Signer::SigV4 { ref region, .. } if region == "eu-west-3"));
    assert_eq!(
        b.url_for(
            gw_model::Operation::Chat,
            true,
            "us.anthropic.claude-3-7-sonnet-20250219-v1:0"
        )
        .unwrap(),
        "https://bedrock-runtime.eu-west-3.amazonaws.com/model/us.anthropic.claude-3-7-sonnet-20250219-v1%3A0/converse-stream"
    );
    let c = load(
        SHIPPED,
        &[
            ("AWS_BEARER_TOKEN_BEDROCK", "bedrock-key-1"),
            ("AWS_ACCESS_KEY_ID", "AKID"),
            ("AWS_SECRET_ACCESS_KEY", "sek"),
            ("AWS_ENDPOINT_URL_BEDROCK_RUNTIME", "http://127.0.0.1:9/"),
        ],
    )
    .unwrap();
    let b = &c.providers[c.provider_index("bedrock").unwrap()];
    assert_eq!(
        b.signer.identity(),
        Some("bedrock-key-1"),
        "the API key comes first"
    );
    assert_eq!(b.base_url, "http://127.0.0.1:9");
    let c = load(SHIPPED, &[]).unwrap();
    let b = &c.providers[c.provider_index("bedrock").unwrap()];
    assert_eq!(
        b.missing().as_deref(),
        Some("AWS_BEARER_TOKEN_BEDROCK, or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY")
    );
    assert_eq!(
        plan(&c, "us.anthropic.claude-sonnet-4-20250514-v1:0", None)[0].0,
        "bedrock"
    );
}

#[test]
fn routes_with_a_strategy_and_weights() {
    let yaml = "
providers:
  a: {format: openai, base_url: 'http://a', auth: {type: none}}
  b: {format: openai, base_url: 'http://b', auth: {type: none}}
routes:
  split:
    strategy: weighted
    targets: [{provider: a, model: x, weight: 3}, b/y]
  plain: [a/x, b/y]
";
    let c = load(yaml, &[]).unwrap();
    let p = c.resolve_plan("split", None).unwrap();
    assert_eq!(
        (p.strategy, p.weights.clone(), p.route),
        (Strategy::Weighted, vec![3, 1], Some(0))
    );
    assert_eq!(plan(&c, "split", None), vec![pm("a", "x"), pm("b", "y")]);
    assert_eq!(
        c.resolve_plan("plain", None).unwrap().strategy,
        Strategy::Priority
    );
    for (bad, path) in [
        ("strategy: fastest", "routes.split.strategy"),
        ("strategy: priority", "routes.split.targets[0].weight"),
        ("strategy: weighted\n    colour: red", "routes.split.colour"),
    ] {
        let e = load(&yaml.replace("strategy: weighted", bad), &[]).unwrap_err();
        assert_eq!(e.path, path, "{e}");
    }
    let e = load(&yaml.replace("weight: 3", "weight: 0"), &[]).unwrap_err();
    assert_eq!(e.path, "routes.split.targets[0].weight");
}
