//! `gateway auth copilot`: GitHub's device flow for a GitHub token that Copilot accepts. Prints
//! the token on stdout (to store as `GITHUB_TOKEN`), the instructions on stderr.

use gw_native::NativeHttp;
use std::time::Duration;

/// The OAuth app GitHub's own Copilot editors use for the device flow.
const CLIENT_ID: &str = "Iv1.b507a08c87ecfe98";

/// Runs the flow against `${GITHUB_URL:-https://github.com}`; the token, or why not.
pub(crate) async fn copilot() -> Result<String, String> {
    let base = std::env::var("GITHUB_URL")
        .ok()
        .filter(|u| !u.is_empty())
        .unwrap_or_else(|| "https://github.com".into());
    let base = base.trim_end_matches('/');
    let http = NativeHttp::new(10_000)?;
    let start = post(
        &http,
        &format!("{base}/login/device/code"),
        &format!("client_id={CLIENT_ID}&scope=read:user"),
    )
    .await?;
    let field =
        |v: &serde_json::Value, k: &str| v.get(k).and_then(|x| x.as_str()).map(str::to_owned);
    let (Some(device), Some(user_code), Some(uri)) = (
        field(&start, "device_code"),
        field(&start, "user_code"),
        field(&start, "verification_uri"),
    ) else {
        return Err(format!("GitHub did not start the device flow: {start}"));
    };
    let mut interval = start
        .get("interval")
        .and_then(|i| i.as_u64())
        .unwrap_or(5)
        .max(1);
    eprintln!("gateway: open {uri} and enter the code {user_code}");
    loop {
        tokio::time::sleep(Duration::from_secs(interval)).await;
        let r = post(
            &http,
            &format!("{base}/login/oauth/access_token"),
            &format!(
                "client_id={CLIENT_ID}&device_code={device}&grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Adevice_code"
            ),
        )
        .await?;
        if let Some(token) = field(&r, "access_token") {
            return Ok(token);
        }
        match field(&r, "error").as_deref() {
            Some("authorization_pending") => {}
            Some("slow_down") => interval += 5,
            Some(e) => {
                let why = field(&r, "error_description").unwrap_or_default();
                return Err(format!("GitHub refused the device flow: {e} {why}"));
            }
            None => return Err(format!("GitHub answered without a token: {r}")),
        }
    }
}

async fn post(http: &NativeHttp, url: &str, form: &str) -> Result<serde_json::Value, String> {
    use futures_util::StreamExt;
    use gw_ports::HttpClient;
    let req = http::Request::post(url)
        .header("content-type", "application/x-www-form-urlencoded")
        .header("accept", "application/json")
        .body(bytes::Bytes::from(form.to_owned()))
        .map_err(|e| format!("{url}: {e}"))?;
    let resp = http.send(req).await.map_err(|e| format!("{url}: {e}"))?;
    let status = resp.status();
    let mut body = resp.into_body();
    let mut buf = Vec::new();
    while let Some(chunk) = body.next().await {
        buf.extend_from_slice(&chunk.map_err(|e| format!("{url}: {e}"))?);
    }
    serde_json::from_slice(&buf)
        .map_err(|_| format!("{url} answered {status} with a body that is not JSON"))
}
