//! Credentials exchanged for tokens (Azure AD, Google service accounts, GitHub Copilot), built
//! from the variables their own SDKs and tools read.

use gw_auth::Signer;
use gw_auth::google::ServiceAccount;
use gw_auth::token::{Exchange, TokenSource};
use std::sync::Arc;

/// Where a key-file variable that holds a path is read: the runtime's `env` answers
/// `file:<path>` with the file's contents where it can read files (locally, on Lambda).
pub const FILE_PREFIX: &str = "file:";

/// Azure AD client credentials, when all three variables are set.
pub(crate) fn azure_ad(scope: &str, env: &dyn Fn(&str) -> Option<String>) -> Option<Signer> {
    let get = |k: &str| env(k).filter(|v| !v.is_empty());
    let tenant = get("AZURE_TENANT_ID")?;
    let client_id = get("AZURE_CLIENT_ID")?;
    let client_secret = get("AZURE_CLIENT_SECRET")?;
    let authority =
        get("AZURE_AUTHORITY_HOST").unwrap_or_else(|| "https://login.microsoftonline.com".into());
    let token_url = format!(
        "{}/{}/oauth2/v2.0/token",
        authority.trim_end_matches('/'),
        gw_codec::percent_encode(&tenant)
    );
    let identity = format!("{tenant}/{client_id}");
    Some(Signer::Token(Arc::new(TokenSource::new(
        Exchange::ClientCredentials {
            token_url,
            client_id,
            client_secret,
            scope: scope.to_owned(),
        },
        identity,
    ))))
}

/// A Google service account from the first of `vars` that is set: the key file's JSON, or a
/// path to it. A set but unusable key is an error: what to set, and why (never the key). The
/// provider is then not configured (other tools' credentials in the same variable, such as a
/// gcloud user login, must not stop the gateway).
pub(crate) fn google(
    vars: &[String],
    scope: &str,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Option<Signer>, String> {
    let Some((var, value)) = vars
        .iter()
        .find_map(|v| env(v).filter(|s| !s.trim().is_empty()).map(|s| (v, s)))
    else {
        return Ok(None);
    };
    let json = if value.trim_start().starts_with('{') {
        value
    } else {
        env(&format!("{FILE_PREFIX}{}", value.trim())).ok_or_else(|| {
            format!(
                "{var} to a service-account key file's JSON or a readable path (`{}` cannot be read here; on Workers the secret must hold the JSON itself)",
                value.trim()
            )
        })?
    };
    let account = ServiceAccount::from_json(&json)
        .map_err(|e| format!("{var} to a service-account key ({e})"))?;
    let identity = account.client_email.clone();
    Ok(Some(Signer::Token(Arc::new(TokenSource::new(
        Exchange::GoogleServiceAccount {
            account: Box::new(account),
            scope: scope.to_owned(),
        },
        identity,
    )))))
}

/// GitHub Copilot: the first of `vars` holds a GitHub OAuth token, exchanged at
/// `${GITHUB_API_URL:-https://api.github.com}/copilot_internal/v2/token`.
pub(crate) fn github_copilot(
    vars: &[String],
    env: &dyn Fn(&str) -> Option<String>,
) -> Option<Signer> {
    let github_token = vars
        .iter()
        .find_map(|v| env(v).filter(|s| !s.trim().is_empty()))?;
    let api = env("GITHUB_API_URL")
        .filter(|u| !u.is_empty())
        .unwrap_or_else(|| "https://api.github.com".into());
    let identity = format!("github:{}", gw_auth::fingerprint(&github_token));
    Some(Signer::Token(Arc::new(TokenSource::new(
        Exchange::GithubCopilot {
            token_url: format!("{}/copilot_internal/v2/token", api.trim_end_matches('/')),
            github_token: github_token.trim().to_owned(),
        },
        identity,
    ))))
}
