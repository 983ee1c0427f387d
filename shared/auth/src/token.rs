//! Token sources: credentials the gateway exchanges for short-lived bearer tokens (Azure AD client
//! credentials, Google service accounts). A token is cached until shortly before it expires; when
//! it must be renewed, one request fetches it and every concurrent request waits for that one.

use crate::SignError;
use crate::google::ServiceAccount;
use bytes::Bytes;
use futures_util::StreamExt;
use gw_ports::HttpClient;
use http::{Method, Request};
use std::sync::{Arc, RwLock};

/// The largest token response read.
const MAX_BODY: usize = 64 * 1024;
/// After a failed exchange, requests fail at once for this long rather than each retrying it.
const FAILURE_HOLD_SECS: u64 = 5;

/// How a credential becomes a token.
pub enum Exchange {
    /// OAuth 2.0 client credentials (Azure AD / Entra ID).
    ClientCredentials {
        /// `{authority}/{tenant}/oauth2/v2.0/token`.
        token_url: String,
        /// The app's client id.
        client_id: String,
        /// The app's secret.
        client_secret: String,
        /// e.g. `https://cognitiveservices.azure.com/.default`.
        scope: String,
    },
    /// A service-account JWT (RS256) for a Google access token.
    GoogleServiceAccount {
        /// The key file.
        account: Box<ServiceAccount>,
        /// e.g. `https://www.googleapis.com/auth/cloud-platform`.
        scope: String,
    },
    /// A GitHub token for a GitHub Copilot token (`GET copilot_internal/v2/token`), which also
    /// names the API host the account must use.
    GithubCopilot {
        /// `{GITHUB_API_URL}/copilot_internal/v2/token`.
        token_url: String,
        /// The GitHub OAuth token.
        github_token: String,
    },
}

/// What Copilot's token endpoint and API expect to hear from an editor.
pub const COPILOT_EDITOR_HEADERS: [(&str, &str); 3] = [
    ("editor-version", "vscode/1.104.0"),
    ("editor-plugin-version", "copilot-chat/0.31.0"),
    ("user-agent", "GitHubCopilotChat/0.31.0"),
];

impl std::fmt::Debug for Exchange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the secret.
        write!(f, "Exchange({})", self.endpoint())
    }
}

impl Exchange {
    /// The token request at `now` (unix seconds).
    fn request(&self, now: u64) -> Result<Request<Bytes>, SignError> {
        let (url, form) = match self {
            Self::ClientCredentials {
                token_url,
                client_id,
                client_secret,
                scope,
            } => (
                token_url.as_str(),
                format!(
                    "grant_type=client_credentials&client_id={}&client_secret={}&scope={}",
                    gw_codec::percent_encode(client_id),
                    gw_codec::percent_encode(client_secret),
                    gw_codec::percent_encode(scope)
                ),
            ),
            Self::GoogleServiceAccount { account, scope } => {
                (account.token_uri.as_str(), account.token_form(scope, now))
            }
            Self::GithubCopilot {
                token_url,
                github_token,
            } => {
                let mut b = Request::builder()
                    .method(Method::GET)
                    .uri(token_url.as_str())
                    .header("accept", "application/json");
                for (k, v) in COPILOT_EDITOR_HEADERS {
                    b = b.header(k, v);
                }
                let mut auth = http::HeaderValue::from_str(&format!("token {github_token}"))
                    .map_err(|_| {
                        SignError("the GitHub token holds characters a header cannot carry".into())
                    })?;
                auth.set_sensitive(true);
                return b
                    .header("authorization", auth)
                    .body(Bytes::new())
                    .map_err(|_| {
                        SignError(format!(
                            "the token endpoint `{token_url}` is not a valid URL"
                        ))
                    });
            }
        };
        Request::builder()
            .method(Method::POST)
            .uri(url)
            .header("content-type", "application/x-www-form-urlencoded")
            .header("accept", "application/json")
            .body(Bytes::from(form))
            .map_err(|_| SignError(format!("the token endpoint `{url}` is not a valid URL")))
    }

    /// Where tokens come from, for messages (no secret in it).
    fn endpoint(&self) -> &str {
        match self {
            Self::ClientCredentials { token_url, .. } | Self::GithubCopilot { token_url, .. } => {
                token_url
            }
            Self::GoogleServiceAccount { account, .. } => &account.token_uri,
        }
    }

    fn scope(&self) -> &str {
        match self {
            Self::ClientCredentials { scope, .. } | Self::GoogleServiceAccount { scope, .. } => {
                scope
            }
            Self::GithubCopilot { .. } => "",
        }
    }

    fn secret(&self) -> &str {
        match self {
            Self::ClientCredentials { client_secret, .. } => client_secret,
            Self::GoogleServiceAccount { account, .. } => account.secret(),
            Self::GithubCopilot { github_token, .. } => github_token,
        }
    }

    fn parse(&self, status: u16, body: &[u8], now: u64) -> Result<Token, String> {
        match self {
            Self::GithubCopilot { .. } => parse_copilot(status, body, now),
            _ => parse(status, body, now),
        }
    }
}

/// A token and when to renew it (unix seconds).
pub struct Token {
    /// The bearer token.
    pub value: String,
    /// Renewed from then on.
    pub refresh_at: u64,
    /// The API host the token is for, when the exchange names one (Copilot's `endpoints.api`).
    pub api: Option<String>,
}

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Token(refresh_at: {}, api: {:?})",
            self.refresh_at, self.api
        )
    }
}

/// Parses Copilot's token answer (`token`, `expires_at`, `refresh_in`, `endpoints.api`) or its
/// error (`message`).
fn parse_copilot(status: u16, body: &[u8], now: u64) -> Result<Token, String> {
    #[derive(serde::Deserialize)]
    struct Endpoints {
        api: Option<String>,
    }
    #[derive(serde::Deserialize)]
    struct Answer {
        token: Option<String>,
        expires_at: Option<u64>,
        refresh_in: Option<u64>,
        endpoints: Option<Endpoints>,
        message: Option<String>,
    }
    let a: Answer = serde_json::from_slice(body)
        .map_err(|_| format!("answered {status} with a body that is not a Copilot token"))?;
    match a.token.filter(|t| !t.is_empty()) {
        Some(value) if (200..300).contains(&status) => {
            let expires = a.expires_at.unwrap_or(now + 1500);
            // GitHub says when to renew (`refresh_in`, ~25 of the token's 30 minutes).
            let refresh_at = a
                .refresh_in
                .map_or(expires.saturating_sub(300), |r| now + r)
                .min(expires.saturating_sub(60))
                .max(now);
            let api = a
                .endpoints
                .and_then(|e| e.api)
                .filter(|u| u.starts_with("https://") || u.starts_with("http://"));
            Ok(Token {
                value,
                refresh_at,
                api,
            })
        }
        _ => Err(match (status, a.message) {
            (401, _) => "answered 401: the GitHub token is not valid (expired or revoked)".into(),
            (403 | 404, Some(m)) => {
                format!(
                    "answered {status}: {} (does the account have Copilot?)",
                    truncate(&m, 300)
                )
            }
            (_, Some(m)) => format!("answered {status}: {}", truncate(&m, 300)),
            (_, None) => format!("answered {status} without a token"),
        }),
    }
}

/// Parses an OAuth token response (`access_token`, `expires_in`) or its error
/// (`error`, `error_description`).
fn parse(status: u16, body: &[u8], now: u64) -> Result<Token, String> {
    #[derive(serde::Deserialize)]
    struct Answer {
        access_token: Option<String>,
        expires_in: Option<serde_json::Value>,
        error: Option<String>,
        error_description: Option<String>,
    }
    let a: Answer = serde_json::from_slice(body).map_err(|_| {
        format!("answered {status} with a body that is not an OAuth token response")
    })?;
    match a.access_token.filter(|t| !t.is_empty()) {
        Some(value) if (200..300).contains(&status) => {
            // Azure sends `expires_in` as a number; some servers send a string.
            let ttl = match a.expires_in {
                Some(serde_json::Value::Number(n)) => n.as_u64(),
                Some(serde_json::Value::String(s)) => s.parse().ok(),
                _ => None,
            }
            .unwrap_or(3600);
            // Renewed a little before the end: five minutes, or a fifth of a short lifetime.
            let margin = (ttl / 5).min(300);
            Ok(Token {
                value,
                refresh_at: now + ttl - margin,
                api: None,
            })
        }
        _ => {
            let what = [a.error, a.error_description]
                .into_iter()
                .flatten()
                .collect::<Vec<_>>()
                .join(": ");
            Err(if what.is_empty() {
                format!("answered {status} without a token")
            } else {
                format!("answered {status}: {}", truncate(&what, 300))
            })
        }
    }
}

fn truncate(s: &str, max: usize) -> &str {
    match s.char_indices().nth(max) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}

/// A cached, self-renewing token for one credential.
pub struct TokenSource {
    exchange: Exchange,
    /// What identifies the credential (for state keys); never a secret.
    identity: String,
    current: RwLock<Option<Arc<Token>>>,
    /// The last failure, and until when it is repeated instead of retried.
    failed: RwLock<Option<(u64, String)>>,
    /// Held by the one request renewing the token.
    renewing: futures_util::lock::Mutex<()>,
}

impl std::fmt::Debug for TokenSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "TokenSource({})", self.identity)
    }
}

impl TokenSource {
    /// A source for `exchange`; `identity` names the credential in state keys.
    pub fn new(exchange: Exchange, identity: String) -> Self {
        Self {
            exchange,
            identity,
            current: RwLock::new(None),
            failed: RwLock::new(None),
            renewing: futures_util::lock::Mutex::new(()),
        }
    }

    /// The credential's identity.
    pub fn identity(&self) -> &str {
        &self.identity
    }

    /// Whether `other` exchanges the same credential for the same scope at the same endpoint.
    pub fn same_exchange(&self, other: &Self) -> bool {
        self.identity == other.identity
            && self.exchange.endpoint() == other.exchange.endpoint()
            && self.exchange.scope() == other.exchange.scope()
    }

    /// The Google project of a service account.
    pub fn project(&self) -> Option<&str> {
        match &self.exchange {
            Exchange::GoogleServiceAccount { account, .. } => {
                Some(account.project_id.as_str()).filter(|p| !p.is_empty())
            }
            Exchange::ClientCredentials { .. } | Exchange::GithubCopilot { .. } => None,
        }
    }

    /// The long-lived secret behind it.
    pub fn secret(&self) -> &str {
        self.exchange.secret()
    }

    /// The token in use, if any (for scrubbing).
    pub fn current_value(&self) -> Option<String> {
        read(&self.current).map(|t| t.value.clone())
    }

    /// A valid token: the cached one, or a new one fetched once for every waiting request.
    pub async fn token<H: HttpClient>(&self, http: &H, now: u64) -> Result<Arc<Token>, SignError> {
        if let Some(t) = self.fresh(now) {
            return Ok(t);
        }
        let _renewing = self.renewing.lock().await;
        // Another request may have renewed it (or failed to) while this one waited.
        if let Some(t) = self.fresh(now) {
            return Ok(t);
        }
        if let Some((until, why)) = read_failed(&self.failed)
            && now < until
        {
            return Err(SignError(why));
        }
        match self.fetch(http, now).await {
            Ok(t) => {
                let t = Arc::new(t);
                write(&self.current, Some(Arc::clone(&t)));
                write(&self.failed, None);
                Ok(t)
            }
            Err(why) => {
                write(&self.failed, Some((now + FAILURE_HOLD_SECS, why.clone())));
                Err(SignError(why))
            }
        }
    }

    /// Forgets `value` if it is still the cached token (the upstream refused it): the next
    /// request fetches a new one.
    pub fn invalidate(&self, value: &str) {
        let mut g = self.current.write().unwrap_or_else(|p| p.into_inner());
        if g.as_ref().is_some_and(|t| t.value == value) {
            *g = None;
        }
    }

    fn fresh(&self, now: u64) -> Option<Arc<Token>> {
        read(&self.current).filter(|t| now < t.refresh_at)
    }

    async fn fetch<H: HttpClient>(&self, http: &H, now: u64) -> Result<Token, String> {
        let req = self.exchange.request(now).map_err(|e| e.0)?;
        let at = self.exchange.endpoint();
        let resp = http
            .send(req)
            .await
            .map_err(|e| format!("the token endpoint {at} is unreachable: {}", e.message))?;
        let status = resp.status().as_u16();
        let mut body = resp.into_body();
        let mut buf = Vec::new();
        while let Some(chunk) = body.next().await {
            let chunk =
                chunk.map_err(|e| format!("the token endpoint {at} broke off: {}", e.message))?;
            if buf.len() + chunk.len() > MAX_BODY {
                return Err(format!("the token endpoint {at} answered more than 64 KiB"));
            }
            buf.extend_from_slice(&chunk);
        }
        self.exchange
            .parse(status, &buf, now)
            .map_err(|e| format!("the token endpoint {at} {e}"))
    }
}

fn read(l: &RwLock<Option<Arc<Token>>>) -> Option<Arc<Token>> {
    l.read().unwrap_or_else(|p| p.into_inner()).clone()
}

fn read_failed(l: &RwLock<Option<(u64, String)>>) -> Option<(u64, String)> {
    l.read().unwrap_or_else(|p| p.into_inner()).clone()
}

fn write<T>(l: &RwLock<T>, v: T) {
    *l.write().unwrap_or_else(|p| p.into_inner()) = v;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_answers_and_errors_parse() {
        let t = parse(
            200,
            br#"{"token_type":"Bearer","expires_in":3599,"access_token":"tok"}"#,
            1000,
        )
        .unwrap();
        assert_eq!((t.value.as_str(), t.refresh_at), ("tok", 1000 + 3599 - 300));
        let t = parse(200, br#"{"expires_in":"10","access_token":"t"}"#, 0).unwrap();
        assert_eq!(t.refresh_at, 8);
        let e = parse(
            401,
            br#"{"error":"invalid_client","error_description":"AADSTS7000215: Invalid client secret provided."}"#,
            0,
        )
        .unwrap_err();
        assert_eq!(
            e,
            "answered 401: invalid_client: AADSTS7000215: Invalid client secret provided."
        );
        assert!(
            parse(200, b"<html>", 0)
                .unwrap_err()
                .contains("not an OAuth token response")
        );
        assert!(
            parse(200, b"{}", 0)
                .unwrap_err()
                .contains("without a token")
        );
        // A token in an error status is not trusted.
        assert!(parse(500, br#"{"access_token":"x"}"#, 0).is_err());
    }
}

#[cfg(test)]
mod source_tests {
    use super::*;
    use gw_ports::{ByteStream, TransportError};
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// A token endpoint that answers after yielding once (so concurrent callers overlap), with
    /// `tok-N` or, when `fail` is set, a 401.
    struct Endpoint {
        calls: AtomicUsize,
        fail: bool,
    }

    impl HttpClient for Endpoint {
        async fn send(
            &self,
            req: Request<Bytes>,
        ) -> Result<http::Response<ByteStream>, TransportError> {
            let form = String::from_utf8(req.body().to_vec()).unwrap();
            assert!(form.contains("client_secret=s%2Fecret"), "{form}");
            let n = self.calls.fetch_add(1, Ordering::SeqCst) + 1;
            let mut yielded = false;
            std::future::poll_fn(|cx| {
                if yielded {
                    std::task::Poll::Ready(())
                } else {
                    yielded = true;
                    cx.waker().wake_by_ref();
                    std::task::Poll::Pending
                }
            })
            .await;
            let (status, body) = if self.fail {
                (401, r#"{"error":"invalid_client"}"#.to_owned())
            } else {
                (
                    200,
                    format!(r#"{{"access_token":"tok-{n}","expires_in":3600}}"#),
                )
            };
            let chunks: Vec<Result<Bytes, TransportError>> = vec![Ok(Bytes::from(body))];
            let stream: ByteStream = Box::pin(futures_util::stream::iter(chunks));
            Ok(http::Response::builder()
                .status(status)
                .body(stream)
                .unwrap())
        }
    }

    fn source() -> TokenSource {
        TokenSource::new(
            Exchange::ClientCredentials {
                token_url: "https://login.example/t/oauth2/v2.0/token".into(),
                client_id: "c".into(),
                client_secret: "s/ecret".into(),
                scope: "https://cognitiveservices.azure.com/.default".into(),
            },
            "t/c".into(),
        )
    }

    #[test]
    fn one_exchange_serves_concurrent_requests_until_renewal() {
        let http = Endpoint {
            calls: AtomicUsize::new(0),
            fail: false,
        };
        let src = source();
        let got = futures::executor::block_on(futures_util::future::join_all(
            (0..50).map(|_| src.token(&http, 1000)),
        ));
        assert!(got.iter().all(|t| t.as_ref().unwrap().value == "tok-1"));
        assert_eq!(http.calls.load(Ordering::SeqCst), 1);
        // Still fresh five minutes before the end; renewed from then on.
        let t = futures::executor::block_on(src.token(&http, 1000 + 3299)).unwrap();
        assert_eq!(
            (t.value.as_str(), http.calls.load(Ordering::SeqCst)),
            ("tok-1", 1)
        );
        let t = futures::executor::block_on(src.token(&http, 1000 + 3300)).unwrap();
        assert_eq!(t.value, "tok-2");
        // A refused token is dropped only if it is still the current one.
        src.invalidate("tok-1");
        assert_eq!(src.current_value().as_deref(), Some("tok-2"));
        src.invalidate("tok-2");
        let t = futures::executor::block_on(src.token(&http, 5000)).unwrap();
        assert_eq!(t.value, "tok-3");
        assert!(!format!("{src:?}").contains("ecret"));
    }

    #[test]
    fn a_failed_exchange_is_repeated_briefly_not_retried_by_every_request() {
        let http = Endpoint {
            calls: AtomicUsize::new(0),
            fail: true,
        };
        let src = source();
        let got = futures::executor::block_on(futures_util::future::join_all(
            (0..20).map(|_| src.token(&http, 1000)),
        ));
        for r in &got {
            let e = r.as_ref().unwrap_err();
            assert_eq!(
                e.0,
                "the token endpoint https://login.example/t/oauth2/v2.0/token answered 401: invalid_client"
            );
        }
        assert_eq!(http.calls.load(Ordering::SeqCst), 1);
        futures::executor::block_on(src.token(&http, 1000 + FAILURE_HOLD_SECS)).unwrap_err();
        assert_eq!(http.calls.load(Ordering::SeqCst), 2);
    }
}
