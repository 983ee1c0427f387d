//! Google service accounts: the key file, and the RS256 JWT it signs to get an OAuth access token
//! (RFC 7523 `jwt-bearer` grant), exactly as google-auth builds it.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rsa::RsaPrivateKey;
use rsa::pkcs1::DecodeRsaPrivateKey;
use rsa::pkcs1v15::SigningKey;
use rsa::pkcs8::DecodePrivateKey;
use rsa::signature::{SignatureEncoding, Signer as _};
use sha2::Sha256;

/// Google's token endpoint, when the key file names none.
pub const TOKEN_URI: &str = "https://oauth2.googleapis.com/token";

/// A parsed service-account key file.
#[derive(Clone)]
pub struct ServiceAccount {
    /// The account (the JWT's issuer).
    pub client_email: String,
    /// Its project, the default for Vertex AI.
    pub project_id: String,
    /// Where the JWT is exchanged.
    pub token_uri: String,
    key_id: String,
    key: SigningKey<Sha256>,
    /// The PEM as given, for scrubbing.
    pem: String,
}

impl std::fmt::Debug for ServiceAccount {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ServiceAccount({})", self.client_email)
    }
}

impl ServiceAccount {
    /// Parses the key file's JSON. The error says what is wrong, never the key.
    pub fn from_json(json: &str) -> Result<Self, String> {
        #[derive(serde::Deserialize)]
        struct File {
            #[serde(rename = "type")]
            kind: Option<String>,
            client_email: Option<String>,
            private_key: Option<String>,
            #[serde(default)]
            private_key_id: String,
            #[serde(default)]
            project_id: String,
            token_uri: Option<String>,
        }
        let f: File = serde_json::from_str(json)
            .map_err(|e| format!("not a service-account key file (JSON: {e})"))?;
        if let Some(k) = f.kind.as_deref()
            && k != "service_account"
        {
            return Err(format!(
                "a key file of type `{k}`; a `service_account` key is needed"
            ));
        }
        let client_email = f
            .client_email
            .filter(|e| !e.is_empty())
            .ok_or("the key file has no `client_email`")?;
        let pem = f
            .private_key
            .filter(|k| !k.is_empty())
            .ok_or("the key file has no `private_key`")?;
        let key = RsaPrivateKey::from_pkcs8_pem(&pem)
            .or_else(|_| RsaPrivateKey::from_pkcs1_pem(&pem))
            .map_err(|_| {
                "the key file's `private_key` is not an RSA private key in PEM".to_owned()
            })?;
        Ok(Self {
            client_email,
            project_id: f.project_id,
            token_uri: f
                .token_uri
                .filter(|u| !u.is_empty())
                .unwrap_or_else(|| TOKEN_URI.to_owned()),
            key_id: f.private_key_id,
            key: SigningKey::new(key),
            pem,
        })
    }

    /// The private key as given (scrubbed from everything that leaves the gateway).
    pub fn secret(&self) -> &str {
        &self.pem
    }

    /// The signed assertion for `scope`, valid for an hour from `now` (unix seconds). The JSON is
    /// laid out as google-auth lays it out, so the bytes match its test vector.
    pub fn assertion(&self, scope: &str, now: u64) -> String {
        let header = format!(
            r#"{{"typ": "JWT", "alg": "RS256", "kid": {}}}"#,
            json_str(&self.key_id)
        );
        let claims = format!(
            r#"{{"iat": {now}, "exp": {}, "iss": {}, "aud": {}, "scope": {}}}"#,
            now + 3600,
            json_str(&self.client_email),
            json_str(&self.token_uri),
            json_str(scope)
        );
        let mut jwt = URL_SAFE_NO_PAD.encode(header);
        jwt.push('.');
        jwt.push_str(&URL_SAFE_NO_PAD.encode(claims));
        let sig = self.key.sign(jwt.as_bytes());
        jwt.push('.');
        jwt.push_str(&URL_SAFE_NO_PAD.encode(sig.to_bytes()));
        jwt
    }

    /// The token request's form body.
    pub fn token_form(&self, scope: &str, now: u64) -> String {
        format!(
            "grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Ajwt-bearer&assertion={}",
            self.assertion(scope, now)
        )
    }
}

fn json_str(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY_FILE: &str = include_str!("../testdata/google-service-account/service_account.json");
    const VECTOR: &str =
        include_str!("../testdata/google-service-account/google-sa-jwt-vector.json");

    #[test]
    fn the_assertion_matches_google_auths_bytes() {
        let v: serde_json::Value = serde_json::from_str(VECTOR).unwrap();
        let mut sa = ServiceAccount::from_json(KEY_FILE).unwrap();
        // The vector was built against the default audience.
        sa.token_uri = v["claims"]["aud"].as_str().unwrap().to_owned();
        let now = v["now_unix"].as_u64().unwrap();
        let scope = v["scope"].as_str().unwrap();
        assert_eq!(sa.assertion(scope, now), v["assertion"].as_str().unwrap());
        assert_eq!(
            sa.token_form(scope, now),
            v["token_request_body"].as_str().unwrap()
        );
        assert_eq!(sa.project_id, "example-project");
        assert!(!format!("{sa:?}").contains("PRIVATE"));
    }

    #[test]
    fn bad_key_files_say_what_is_wrong_without_the_key() {
        let e = ServiceAccount::from_json("{not json").unwrap_err();
        assert!(e.contains("not a service-account key file"), "{e}");
        let e = ServiceAccount::from_json(r#"{"type":"authorized_user"}"#).unwrap_err();
        assert!(e.contains("authorized_user"), "{e}");
        let e = ServiceAccount::from_json(r#"{"client_email":"a@b"}"#).unwrap_err();
        assert!(e.contains("private_key"), "{e}");
        let e = ServiceAccount::from_json(
            r#"{"client_email":"a@b","private_key":"-----BEGIN PRIVATE KEY-----\nc2VjcmV0\n-----END PRIVATE KEY-----\n"}"#,
        )
        .unwrap_err();
        assert!(
            e.contains("not an RSA private key") && !e.contains("c2VjcmV0"),
            "{e}"
        );
    }
}
