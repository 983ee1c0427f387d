//! Upstream request signing: how the gateway proves itself to a provider. One interface for
//! every scheme (a static header, a bearer token, a query key, AWS SigV4, a token fetched and
//! cached from an OAuth-style exchange), async so that token sources fit the same call.

use crate::sigv4::{self, Credentials};
use crate::token::TokenSource;
use bytes::Bytes;
use gw_ports::HttpClient;
use http::{HeaderName, HeaderValue, Request, Uri};
use std::sync::Arc;

/// A provider's signer, built from its `auth` config and the environment.
#[derive(Clone)]
pub enum Signer {
    /// No credentials (local servers).
    None,
    /// `Authorization: Bearer <token>`.
    Bearer(String),
    /// `<name>: <value>`.
    Header {
        /// Header name (validated at config load).
        name: String,
        /// The key.
        value: String,
    },
    /// `?<name>=<value>` appended to the URL.
    Query {
        /// Query parameter name.
        name: String,
        /// The key.
        value: String,
    },
    /// AWS Signature Version 4.
    SigV4 {
        /// Access key, secret and session token.
        creds: Credentials,
        /// Region, e.g. `us-east-1`.
        region: String,
        /// Service name in the credential scope, e.g. `bedrock`.
        service: String,
    },
    /// `Authorization: Bearer <token>` with a token from an exchange (Azure AD, Google).
    Token(Arc<TokenSource>),
}

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the secret.
        f.write_str(match self {
            Self::None => "Signer::None",
            Self::Bearer(_) => "Signer::Bearer",
            Self::Header { .. } => "Signer::Header",
            Self::Query { .. } => "Signer::Query",
            Self::SigV4 { .. } => "Signer::SigV4",
            Self::Token(_) => "Signer::Token",
        })
    }
}

/// Signing failed (a credential that cannot be put in a header, a token source that failed).
#[derive(Debug, Clone, thiserror::Error)]
#[error("{0}")]
pub struct SignError(pub String);

impl Signer {
    /// Signs `req` in place. `unix_secs` is the time for schemes that sign it; `http` fetches
    /// tokens for token sources.
    pub async fn sign<H: HttpClient>(
        &self,
        req: &mut Request<Bytes>,
        unix_secs: u64,
        http: &H,
    ) -> Result<(), SignError> {
        match self {
            Self::None => Ok(()),
            Self::Bearer(t) => insert(req, "authorization", &format!("Bearer {t}")),
            Self::Header { name, value } => insert(req, name, value),
            Self::Query { name, value } => {
                let uri = req.uri().to_string();
                let sep = if uri.contains('?') { '&' } else { '?' };
                let with = format!(
                    "{uri}{sep}{}={}",
                    gw_codec::percent_encode(name),
                    gw_codec::percent_encode(value)
                );
                *req.uri_mut() = with
                    .parse::<Uri>()
                    .map_err(|_| SignError("the signed URL is not valid".into()))?;
                Ok(())
            }
            Self::SigV4 {
                creds,
                region,
                service,
            } => {
                sigv4::sign(
                    req,
                    creds,
                    region,
                    service,
                    unix_secs,
                    sigv4::Settings::default(),
                );
                Ok(())
            }
            Self::Token(source) => {
                let t = source.token(http, unix_secs).await?;
                if let Some(api) = &t.api {
                    // The host the token is for (Copilot's per-plan API), the path as built.
                    let pq = req.uri().path_and_query().map_or("/", |p| p.as_str());
                    *req.uri_mut() = format!("{}{pq}", api.trim_end_matches('/'))
                        .parse::<Uri>()
                        .map_err(|_| {
                            SignError(format!("the token names an invalid API URL `{api}`"))
                        })?;
                }
                insert(req, "authorization", &format!("Bearer {}", t.value))
            }
        }
    }

    /// The token source, for signers that have one.
    pub fn token_source(&self) -> Option<&TokenSource> {
        match self {
            Self::Token(s) => Some(s),
            _ => None,
        }
    }

    /// Which credential this is, for keying state by credential (never stored itself).
    pub fn identity(&self) -> Option<&str> {
        match self {
            Self::None => None,
            Self::Bearer(v) | Self::Header { value: v, .. } | Self::Query { value: v, .. } => {
                Some(v)
            }
            Self::SigV4 { creds, .. } => Some(&creds.access_key_id),
            Self::Token(s) => Some(s.identity()),
        }
    }

    /// Every secret it holds, for scrubbing.
    pub fn secrets(&self) -> Vec<String> {
        match self {
            Self::None => Vec::new(),
            Self::Bearer(v) | Self::Header { value: v, .. } | Self::Query { value: v, .. } => {
                vec![v.clone()]
            }
            Self::SigV4 { creds, .. } => std::iter::once(creds.secret_access_key.clone())
                .chain(creds.session_token.clone())
                .collect(),
            Self::Token(s) => vec![s.secret().to_owned()],
        }
    }
}

fn insert(req: &mut Request<Bytes>, name: &str, value: &str) -> Result<(), SignError> {
    let n = HeaderName::from_bytes(name.as_bytes())
        .map_err(|_| SignError(format!("`{name}` is not a valid header name")))?;
    let mut v = HeaderValue::from_str(value)
        .map_err(|_| SignError("the credential holds characters a header cannot carry".into()))?;
    v.set_sensitive(true);
    req.headers_mut().insert(n, v);
    Ok(())
}

#[cfg(test)]
pub(crate) mod gw_testkit_free {
    //! An HTTP port for signers that must not use it.
    use gw_ports::{ByteStream, HttpClient, TransportError};

    pub(crate) struct NoHttp;

    impl HttpClient for NoHttp {
        async fn send(
            &self,
            _req: http::Request<bytes::Bytes>,
        ) -> Result<http::Response<ByteStream>, TransportError> {
            panic!("static signers make no calls")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(uri: &str) -> Request<Bytes> {
        Request::builder()
            .method("POST")
            .uri(uri)
            .header("host", "h.example")
            .body(Bytes::from_static(b"{}"))
            .unwrap()
    }

    fn run(s: &Signer, r: &mut Request<Bytes>) -> Result<(), SignError> {
        let mut fut = std::pin::pin!(s.sign(r, 1_440_938_160, &gw_testkit_free::NoHttp));
        let waker = std::task::Waker::noop();
        match fut
            .as_mut()
            .poll(&mut std::task::Context::from_waker(waker))
        {
            std::task::Poll::Ready(r) => r,
            std::task::Poll::Pending => panic!("static signers finish at once"),
        }
    }
    use std::future::Future;

    #[test]
    fn each_scheme_puts_the_credential_where_the_provider_reads_it() {
        let mut r = req("https://h.example/v1/x");
        run(&Signer::Bearer("tok".into()), &mut r).unwrap();
        assert_eq!(r.headers()["authorization"], "Bearer tok");
        assert!(r.headers()["authorization"].is_sensitive());
        let mut r = req("https://h.example/v1/x");
        run(
            &Signer::Header {
                name: "x-api-key".into(),
                value: "k1".into(),
            },
            &mut r,
        )
        .unwrap();
        assert_eq!(r.headers()["x-api-key"], "k1");
        let mut r = req("https://h.example/v1/m:gen?alt=sse");
        run(
            &Signer::Query {
                name: "key".into(),
                value: "a b&c".into(),
            },
            &mut r,
        )
        .unwrap();
        assert_eq!(
            r.uri().to_string(),
            "https://h.example/v1/m:gen?alt=sse&key=a%20b%26c"
        );
        let creds = Credentials {
            access_key_id: "AKIDEXAMPLE".into(),
            secret_access_key: "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY".into(),
            session_token: Some("tok-session".into()),
        };
        let s = Signer::SigV4 {
            creds,
            region: "us-east-1".into(),
            service: "bedrock".into(),
        };
        let mut r = req("https://h.example/model/us.anthropic.claude%3A0/converse");
        run(&s, &mut r).unwrap();
        let auth = r.headers()["authorization"].to_str().unwrap();
        assert!(
            auth.starts_with(
                "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/bedrock/aws4_request"
            ),
            "{auth}"
        );
        assert_eq!(r.headers()["x-amz-security-token"], "tok-session");
        assert_eq!(s.identity(), Some("AKIDEXAMPLE"));
        assert_eq!(s.secrets().len(), 2);
        assert!(!format!("{s:?}").contains("wJalr"));
    }

    #[test]
    fn bedrock_inference_profile_ids_sign_as_botocore_signs_them() {
        // tests/vectors/botocore_bedrock_sigv4.py prints botocore's header for this request.
        let mut r = Request::builder()
            .method("POST")
            .uri("https://bedrock-runtime.us-east-1.amazonaws.com/model/us.anthropic.claude-3-7-sonnet-20250219-v1%3A0/converse-stream")
            .header("content-type", "application/json")
            .header("accept", "application/vnd.amazon.eventstream")
            .body(Bytes::from_static(br#"{"messages":[{"role":"user","content":[{"text":"Hi"}]}],"inferenceConfig":{"maxTokens":100}}"#))
            .unwrap();
        let s = Signer::SigV4 {
            creds: Credentials {
                access_key_id: "AKIDEXAMPLE".into(),
                secret_access_key: "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY".into(),
                session_token: Some("session-token-example".into()),
            },
            region: "us-east-1".into(),
            service: "bedrock".into(),
        };
        {
            let mut fut = std::pin::pin!(s.sign(&mut r, 1_796_205_600, &gw_testkit_free::NoHttp));
            let waker = std::task::Waker::noop();
            assert!(
                fut.as_mut()
                    .poll(&mut std::task::Context::from_waker(waker))
                    .is_ready()
            );
        }
        assert_eq!(
            r.headers()["authorization"],
            "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20261202/us-east-1/bedrock/aws4_request, SignedHeaders=accept;content-type;host;x-amz-date;x-amz-security-token, Signature=0cfaf20798c831dbd5992dc7c69ef0b0f12f19074dbde0f8e9f84dfd2cb9949a"
        );
    }
}
