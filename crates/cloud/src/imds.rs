//! The node's ECS RAM role through the instance metadata service, hardened mode only: a session
//! token first (`PUT /latest/api/token`), then the role name and the role's temporary
//! credentials with that token. There is no fallback to the token-less (IMDSv1) mode: an
//! instance that allows it also allows any process that can make one GET to read the role.

use std::time::Duration;

use jiff::Timestamp;
use reqwest::Url;

use super::credentials::Credentials;
use super::error::{CloudError, ErrorKind};
use super::http::ClientConfig;
use super::sts::parse_assumed;

pub const DEFAULT_METADATA_ENDPOINT: &str = "http://100.100.100.200";
/// The role name, when the chain should not ask the metadata service for it.
pub const ENV_ECS_METADATA: &str = "ALIBABA_CLOUD_ECS_METADATA";
/// `true` switches the ECS RAM role off in the chain.
pub const ENV_ECS_METADATA_DISABLED: &str = "ALIBABA_CLOUD_ECS_METADATA_DISABLED";

const TOKEN_TTL_SECONDS: u32 = 21600;
const TOKEN_TTL_HEADER: &str = "X-aliyun-ecs-metadata-token-ttl-seconds";
const TOKEN_HEADER: &str = "X-aliyun-ecs-metadata-token";
const CREDENTIALS_PATH: &str = "latest/meta-data/ram/security-credentials/";

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ImdsConfig {
    /// Base URL of the metadata service.
    pub endpoint: String,
    /// The RAM role; asked of the metadata service when unset.
    pub role_name: Option<String>,
}

#[derive(Clone, Debug)]
pub struct ImdsClient {
    base: Url,
    role_name: Option<String>,
    http: reqwest::Client,
    max_reply_bytes: usize,
}

impl ImdsClient {
    pub fn new(cfg: &ImdsConfig, client: &ClientConfig) -> Result<Self, CloudError> {
        let mut base = super::target::parse_endpoint(&cfg.endpoint)
            .map_err(|m| CloudError::new(ErrorKind::BadRequest, format!("metadata endpoint: {m}")))?;
        if !base.path().ends_with('/') {
            let p = format!("{}/", base.path());
            base.set_path(&p);
        }
        // The metadata service is link-local: a slow answer means there is none.
        let http = reqwest::Client::builder()
            .connect_timeout(client.connect_timeout.min(Duration::from_secs(2)))
            .timeout(client.request_timeout.min(Duration::from_secs(5)))
            .user_agent(client.user_agent.clone())
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .build()
            .map_err(|e| CloudError::transport(format!("cannot build HTTP client: {e}")))?;
        Ok(ImdsClient {
            base,
            role_name: cfg.role_name.clone().filter(|r| !r.trim().is_empty()),
            http,
            max_reply_bytes: client.max_reply_bytes.min(64 * 1024),
        })
    }

    pub fn url(&self) -> &Url {
        &self.base
    }

    fn join(&self, path: &str) -> Result<Url, CloudError> {
        self.base
            .join(path)
            .map_err(|e| CloudError::new(ErrorKind::BadRequest, format!("metadata URL: {e}")))
    }

    async fn text(&self, req: reqwest::RequestBuilder, what: &str) -> Result<String, CloudError> {
        let resp = req
            .send()
            .await
            .map_err(|e| CloudError::transport(format!("ECS metadata {what}: {}", e.without_url())))?;
        let status = resp.status();
        let body = super::http::read_capped(resp, self.max_reply_bytes).await?;
        if !status.is_success() {
            let kind = match status.as_u16() {
                401 | 403 | 404 => ErrorKind::InvalidCredentials,
                s if s >= 500 => ErrorKind::ServerError,
                _ => ErrorKind::BadRequest,
            };
            // The body of a failure is the service's short text; never a credential.
            let detail: String = String::from_utf8_lossy(&body).chars().take(200).collect();
            return Err(CloudError::new(
                kind,
                format!("ECS metadata {what}: HTTP {status}: {}", detail.trim()),
            ));
        }
        String::from_utf8(body)
            .map_err(|_| CloudError::bad_reply(format!("ECS metadata {what}: reply is not UTF-8")))
    }

    /// The role's temporary credentials and their expiry.
    pub async fn credentials(&self) -> Result<(Credentials, Timestamp), CloudError> {
        let token = self
            .text(
                self.http
                    .put(self.join("latest/api/token")?)
                    .header(TOKEN_TTL_HEADER, TOKEN_TTL_SECONDS.to_string()),
                "session token",
            )
            .await?;
        let token = token.trim();
        let role = match &self.role_name {
            Some(r) => r.clone(),
            None => {
                let r = self
                    .text(
                        self.http
                            .get(self.join(CREDENTIALS_PATH)?)
                            .header(TOKEN_HEADER, token),
                        "role name",
                    )
                    .await?;
                let r = r.lines().next().unwrap_or_default().trim().to_string();
                if r.is_empty() {
                    return Err(CloudError::new(
                        ErrorKind::InvalidCredentials,
                        "ECS metadata: no RAM role is attached to this instance",
                    ));
                }
                r
            }
        };
        let path = format!("{CREDENTIALS_PATH}{}", super::sign::percent_encode(&role));
        let body = self
            .text(
                self.http.get(self.join(&path)?).header(TOKEN_HEADER, token),
                "role credentials",
            )
            .await?;
        let v: serde_json::Value = serde_json::from_str(&body)
            .map_err(|_| CloudError::bad_reply("ECS metadata role credentials are not JSON"))?;
        if let Some(code) = v.get("Code").and_then(|c| c.as_str())
            && code != "Success"
        {
            return Err(CloudError::new(
                ErrorKind::InvalidCredentials,
                format!("ECS metadata role credentials for {role}: Code {code}"),
            ));
        }
        // The same fields as an STS reply's Credentials object.
        parse_assumed(&serde_json::json!({ "Credentials": v }))
    }
}
