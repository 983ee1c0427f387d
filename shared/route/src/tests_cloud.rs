//! Cloud providers in the shipped config: Azure's URL shape and both of its auth schemes, Vertex's
//! service account, project and publisher delegation, and the `${VAR:+word}` expansion they use.

use crate::tests::{SHIPPED, load, plan, pm};
use gw_model::Operation;

const SA: &str = include_str!("../../auth/testdata/google-service-account/service_account.json");

fn provider<'a>(c: &'a crate::Config, id: &str) -> &'a crate::Provider {
    &c.providers[c.provider_index(id).unwrap()]
}

#[test]
fn alternative_values_expand_only_when_set_and_nest() {
    let yaml = "providers:\n  p:\n    format: openai\n    base_url: \"${RES:+https://${RES}.example.com}\"\n    auth: {type: none}\n";
    let c = load(yaml, &[]).unwrap();
    assert_eq!(c.providers[0].base_url, "");
    let c = load(yaml, &[("RES", "acme")]).unwrap();
    assert_eq!(c.providers[0].base_url, "https://acme.example.com");
    let yaml = yaml.replace("${RES:+https://${RES}.example.com}", "${A:-${B:-http://b}}");
    assert_eq!(load(&yaml, &[]).unwrap().providers[0].base_url, "http://b");
    let e = load(&yaml.replace("${B:-http://b}", "${B"), &[]).unwrap_err();
    assert!(e.reason.contains("unterminated"), "{e}");
}

#[test]
fn azure_openai_by_resource_and_key_or_azure_ad() {
    let c = load(SHIPPED, &[]).unwrap();
    let az = provider(&c, "azure-openai");
    assert_eq!(az.missing().as_deref(), Some("AZURE_OPENAI_BASE_URL"));

    let c = load(
        SHIPPED,
        &[
            ("AZURE_OPENAI_RESOURCE", "acme"),
            ("AZURE_OPENAI_API_KEY", "az-key-1"),
        ],
    )
    .unwrap();
    let az = provider(&c, "azure-openai");
    assert!(az.missing().is_none());
    assert_eq!(
        az.url_for(Operation::Chat, true, "my-gpt4o").unwrap(),
        "https://acme.openai.azure.com/openai/deployments/my-gpt4o/chat/completions?api-version=2024-10-21"
    );
    assert!(matches!(&az.signer, gw_auth::Signer::Header { name, .. } if name == "api-key"));

    // No key: Azure AD client credentials, the token from the tenant's endpoint.
    let c = load(
        SHIPPED,
        &[
            ("AZURE_OPENAI_BASE_URL", "https://acme.openai.azure.com/"),
            ("AZURE_OPENAI_API_VERSION", "2025-04-01-preview"),
            ("AZURE_TENANT_ID", "t1"),
            ("AZURE_CLIENT_ID", "c1"),
            ("AZURE_CLIENT_SECRET", "s3cret-value"),
        ],
    )
    .unwrap();
    let az = provider(&c, "azure-openai");
    assert!(az.missing().is_none());
    assert!(
        az.url_for(Operation::Chat, false, "d")
            .unwrap()
            .ends_with("api-version=2025-04-01-preview")
    );
    let src = az
        .signer
        .token_source()
        .expect("Azure AD signs with a token");
    assert_eq!(src.identity(), "t1/c1");
    assert!(c.secrets().contains(&"s3cret-value".to_owned()));
    assert!(!format!("{:?}", az.signer).contains("s3cret"));
    // The Foundry entry uses the same app: one token source serves both.
    let fd = provider(&c, "azure-ai-foundry");
    assert!(std::ptr::eq(
        fd.signer.token_source().unwrap(),
        az.signer.token_source().unwrap()
    ));
    // Partial Azure AD settings are not a credential.
    let c = load(
        SHIPPED,
        &[("AZURE_OPENAI_RESOURCE", "acme"), ("AZURE_TENANT_ID", "t1")],
    )
    .unwrap();
    let why = provider(&c, "azure-openai").missing().unwrap();
    assert!(
        why.contains("AZURE_OPENAI_API_KEY") && why.contains("AZURE_CLIENT_SECRET"),
        "{why}"
    );
}

#[test]
fn vertex_takes_a_service_account_and_sends_claude_to_its_publisher() {
    let c = load(SHIPPED, &[("GOOGLE_APPLICATION_CREDENTIALS", SA)]).unwrap();
    let vx = provider(&c, "vertex");
    assert!(vx.missing().is_none());
    assert_eq!(
        vx.url_for(Operation::Chat, true, "gemini-2.5-flash")
            .unwrap(),
        "https://us-central1-aiplatform.googleapis.com/v1/projects/example-project/locations/us-central1/publishers/google/models/gemini-2.5-flash:streamGenerateContent?alt=sse"
    );
    assert_eq!(
        plan(&c, "vertex/claude-sonnet-4-5@20250929", None),
        [pm("vertex-claude", "claude-sonnet-4-5@20250929")]
    );
    assert_eq!(
        plan(&c, "vertex/gemini-2.5-pro", None),
        [pm("vertex", "gemini-2.5-pro")]
    );
    let vc = provider(&c, "vertex-claude");
    assert_eq!(
        vc.url_for(Operation::Chat, false, "claude-sonnet-4-5@20250929")
            .unwrap(),
        "https://us-central1-aiplatform.googleapis.com/v1/projects/example-project/locations/us-central1/publishers/anthropic/models/claude-sonnet-4-5%4020250929:rawPredict"
    );
    assert!(!vc.supports(Operation::CountTokens));
    assert_eq!(
        vc.body_patches,
        [
            (
                "anthropic_version".to_owned(),
                Some("\"vertex-2023-10-16\"".to_owned())
            ),
            ("model".to_owned(), None)
        ]
    );
    assert!(std::ptr::eq(
        vx.signer.token_source().unwrap(),
        vc.signer.token_source().unwrap()
    ));
    assert!(
        c.secrets()
            .iter()
            .any(|s| s.contains("BEGIN RSA PRIVATE KEY"))
    );

    // A project and the global location given; a path read through the runtime's `file:`.
    let c = load(
        SHIPPED,
        &[
            ("GOOGLE_APPLICATION_CREDENTIALS", "/keys/sa.json"),
            ("file:/keys/sa.json", SA),
            ("VERTEX_PROJECT", "p2"),
            ("VERTEX_LOCATION", "global"),
        ],
    )
    .unwrap();
    assert_eq!(
        provider(&c, "vertex")
            .url_for(Operation::Chat, false, "gemini-2.5-pro")
            .unwrap(),
        "https://aiplatform.googleapis.com/v1/projects/p2/locations/global/publishers/google/models/gemini-2.5-pro:generateContent"
    );
}

#[test]
fn an_unusable_key_leaves_the_provider_unconfigured_with_the_reason() {
    let c = load(SHIPPED, &[("GOOGLE_APPLICATION_CREDENTIALS", "/nope.json")]).unwrap();
    let why = provider(&c, "vertex").missing().unwrap();
    assert!(
        why.starts_with("GOOGLE_APPLICATION_CREDENTIALS to a service-account key"),
        "{why}"
    );
    assert!(why.contains("/nope.json"), "{why}");
    let c = load(
        SHIPPED,
        &[(
            "GOOGLE_APPLICATION_CREDENTIALS",
            r#"{"type":"authorized_user","refresh_token":"rt-secret"}"#,
        )],
    )
    .unwrap();
    let why = provider(&c, "vertex").missing().unwrap();
    assert!(
        why.contains("authorized_user") && !why.contains("rt-secret"),
        "{why}"
    );
}

#[test]
fn a_delegate_must_name_another_provider() {
    let yaml = "providers:\n  p:\n    format: openai\n    base_url: http://x\n    auth: {type: none}\n    delegate: {\"c-*\": q}\n";
    let e = load(yaml, &[]).unwrap_err();
    assert_eq!(e.path, "providers.p.delegate.c-*");
    assert!(e.reason.contains("`q` is not another provider"), "{e}");
}
