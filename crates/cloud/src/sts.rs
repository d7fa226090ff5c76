//! Keyless credentials on Alibaba's managed Kubernetes (RRSA): the pod's projected OIDC token
//! is exchanged at STS (`AssumeRoleWithOIDC`, an unsigned RPC call) for temporary AccessKey
//! credentials, cached and refreshed when 180 s or less remain.
//!
//! ```text
//! if let Some(cfg) = OidcConfig::from_env() { let provider = OidcProvider::new(cfg?, &client_config)?;
//!     let creds = provider.credentials().await?; /* Credentials::AccessKey with a token */ }
//! ```

use std::path::PathBuf;
use std::time::Duration;

use jiff::Timestamp;
use reqwest::Url;
use tokio::sync::Mutex;

use super::credentials::Credentials;
use super::error::{CloudError, ErrorKind};
use super::http::{ClientConfig, classify_reply};
use super::json;
use super::model::Provider;
use super::sign::{encode_query, percent_encode};

pub const ENV_ROLE_ARN: &str = "ALIBABA_CLOUD_ROLE_ARN";
pub const ENV_OIDC_PROVIDER_ARN: &str = "ALIBABA_CLOUD_OIDC_PROVIDER_ARN";
pub const ENV_OIDC_TOKEN_FILE: &str = "ALIBABA_CLOUD_OIDC_TOKEN_FILE";
pub const ENV_STS_ENDPOINT: &str = "ALIBABA_CLOUD_STS_ENDPOINT";
pub const ENV_STS_REGION: &str = "ALIBABA_CLOUD_STS_REGION";
pub const ENV_VPC_ENDPOINT_ENABLED: &str = "ALIBABA_CLOUD_VPC_ENDPOINT_ENABLED";
pub const ENV_ROLE_SESSION_NAME: &str = "ALIBABA_CLOUD_ROLE_SESSION_NAME";

/// Refresh when this little validity remains.
pub const REFRESH_MARGIN: Duration = Duration::from_secs(180);

/// The STS API version (`AssumeRoleWithOIDC`, `GetCallerIdentity`).
pub const STS_VERSION: &str = "2015-04-01";

/// The RRSA variables are half set: the role is named but a variable the exchange needs is not.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{} is set but {missing} is not", ENV_ROLE_ARN)]
pub struct OidcConfigError {
    /// The variable that is missing (or empty).
    pub missing: &'static str,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OidcConfig {
    pub role_arn: String,
    pub oidc_provider_arn: String,
    /// Re-read on every exchange: the kubelet rotates it.
    pub token_file: PathBuf,
    /// Base URL of STS (`https://sts.aliyuncs.com` unless configured).
    pub sts_endpoint: String,
    pub role_session_name: String,
    /// Default 3600, minimum 900.
    pub duration_seconds: u32,
}

impl OidcConfig {
    /// From the RRSA environment; `None` when `ALIBABA_CLOUD_ROLE_ARN` is not set (not keyless).
    pub fn from_env() -> Option<Result<OidcConfig, OidcConfigError>> {
        Self::from_env_with(|k| std::env::var(k).ok())
    }

    pub fn from_env_with(
        var: impl Fn(&str) -> Option<String>,
    ) -> Option<Result<OidcConfig, OidcConfigError>> {
        let get = |k: &str| var(k).map(|v| v.trim().to_string()).filter(|v| !v.is_empty());
        let role_arn = get(ENV_ROLE_ARN)?;
        let required = |k: &'static str| get(k).ok_or(OidcConfigError { missing: k });
        let build = || -> Result<OidcConfig, OidcConfigError> {
            let oidc_provider_arn = required(ENV_OIDC_PROVIDER_ARN)?;
            let token_file = PathBuf::from(required(ENV_OIDC_TOKEN_FILE)?);
            let sts_endpoint = sts_endpoint_from_env(&var);
            Ok(OidcConfig {
                role_arn,
                oidc_provider_arn,
                token_file,
                sts_endpoint,
                role_session_name: get(ENV_ROLE_SESSION_NAME)
                    .unwrap_or_else(|| "changeorder-operator".into()),
                duration_seconds: 3600,
            })
        };
        Some(build())
    }
}

/// The default STS endpoint from the official variables: `ALIBABA_CLOUD_STS_ENDPOINT`, else the
/// region's (VPC when `ALIBABA_CLOUD_VPC_ENDPOINT_ENABLED=true`), else `sts.aliyuncs.com`.
pub fn sts_endpoint_from_env(var: impl Fn(&str) -> Option<String>) -> String {
    let get = |k: &str| var(k).map(|v| v.trim().to_string()).filter(|v| !v.is_empty());
    let vpc = get(ENV_VPC_ENDPOINT_ENABLED).is_some_and(|v| v.eq_ignore_ascii_case("true"));
    let host = match (get(ENV_STS_ENDPOINT), get(ENV_STS_REGION)) {
        (Some(e), _) => e,
        (None, Some(r)) if vpc => format!("sts-vpc.{r}.aliyuncs.com"),
        (None, Some(r)) => format!("sts.{r}.aliyuncs.com"),
        (None, None) => "sts.aliyuncs.com".to_string(),
    };
    if host.starts_with("http://") || host.starts_with("https://") {
        host
    } else {
        format!("https://{host}")
    }
}

/// The STS `AssumeRoleWithOIDC` call itself, without a cache: the caller decides what to
/// cache and for whom (one provider per process for the pod's own RRSA variables, one entry per
/// ServiceAccount and role in the controller).
#[derive(Clone)]
pub struct StsClient {
    url: Url,
    http: reqwest::Client,
    max_reply_bytes: usize,
}

impl std::fmt::Debug for StsClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StsClient")
            .field("url", &self.url.as_str())
            .finish_non_exhaustive()
    }
}

/// What one exchange asks for.
#[derive(Clone, Copy, Debug)]
pub struct AssumeRequest<'a> {
    pub role_arn: &'a str,
    pub oidc_provider_arn: &'a str,
    pub role_session_name: &'a str,
    /// Sent at least 900 (the STS minimum).
    pub duration_seconds: u32,
}

impl StsClient {
    pub fn new(endpoint: &str, client: &ClientConfig) -> Result<Self, CloudError> {
        let url = super::target::parse_endpoint(endpoint)
            .map_err(|m| CloudError::new(ErrorKind::BadRequest, format!("STS endpoint: {m}")))?;
        let http = reqwest::Client::builder()
            .connect_timeout(client.connect_timeout)
            .timeout(client.request_timeout)
            .user_agent(client.user_agent.clone())
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| CloudError::transport(format!("cannot build HTTP client: {e}")))?;
        Ok(StsClient {
            url,
            http,
            max_reply_bytes: client.max_reply_bytes,
        })
    }

    /// The endpoint, for the endpoint policy.
    pub fn url(&self) -> &Url {
        &self.url
    }

    pub(crate) fn http(&self) -> &reqwest::Client {
        &self.http
    }

    pub(crate) fn max_reply_bytes(&self) -> usize {
        self.max_reply_bytes
    }

    /// Exchange an OIDC token for temporary credentials and their expiry. Errors never carry
    /// the token (it is redacted should the server echo it).
    pub async fn assume_role_with_oidc(
        &self,
        req: AssumeRequest<'_>,
        token: &str,
    ) -> Result<(Credentials, Timestamp), CloudError> {
        let token = token.trim();
        let query = vec![
            ("Version".to_string(), STS_VERSION.to_string()),
            ("Action".to_string(), "AssumeRoleWithOIDC".to_string()),
            ("Format".to_string(), "JSON".to_string()),
            ("Timestamp".to_string(), super::sign::v3_date(Timestamp::now())),
        ];
        let form = [
            ("RoleArn", req.role_arn),
            ("OIDCProviderArn", req.oidc_provider_arn),
            ("OIDCToken", token),
            ("RoleSessionName", req.role_session_name),
            ("DurationSeconds", &req.duration_seconds.max(900).to_string()),
        ]
        .iter()
        .map(|(k, v)| format!("{}={}", percent_encode(k), percent_encode(v)))
        .collect::<Vec<_>>()
        .join("&");
        let mut url = self.url.clone();
        url.set_query(Some(&encode_query(&query)));
        let resp = self
            .http
            .post(url)
            .header("content-type", "application/x-www-form-urlencoded")
            .header("accept", "application/json")
            .body(form)
            .send()
            .await
            .map_err(|e| CloudError::transport(format!("STS AssumeRoleWithOIDC: {}", e.without_url())))?;
        let status = resp.status().as_u16();
        let body = super::http::read_capped(resp, self.max_reply_bytes).await?;
        // STS speaks the same RPC error envelope as EDAS: {RequestId, Code, Message}.
        let v = classify_reply(Provider::Edas, status, &body, ErrorKind::InvalidCredentials).map_err(
            |mut e| {
                if !token.is_empty() {
                    e.message = e.message.replace(token, "<redacted>");
                }
                e.message = format!("STS AssumeRoleWithOIDC for role {}: {}", req.role_arn, e.message);
                e.raw = None;
                e
            },
        )?;
        parse_assumed(&v)
    }
}

/// Exchanges the pod's own projected token and caches. Share one per process (it is `Send + Sync`).
pub struct OidcProvider {
    cfg: OidcConfig,
    sts: StsClient,
    cache: Mutex<Option<(Credentials, Timestamp)>>,
}

impl std::fmt::Debug for OidcProvider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OidcProvider")
            .field("cfg", &self.cfg)
            .finish_non_exhaustive()
    }
}

/// Whether credentials expiring at `expires` are still good for use at `now`, leaving `margin`.
pub fn fresh(expires: Timestamp, now: Timestamp, margin: Duration) -> bool {
    let margin = jiff::SignedDuration::try_from(margin).unwrap_or_default();
    now.saturating_add(margin).is_ok_and(|t| t < expires)
}

impl OidcProvider {
    pub fn new(cfg: OidcConfig, client: &ClientConfig) -> Result<Self, CloudError> {
        let sts = StsClient::new(&cfg.sts_endpoint, client)?;
        Ok(OidcProvider {
            cfg,
            sts,
            cache: Mutex::new(None),
        })
    }

    pub fn config(&self) -> &OidcConfig {
        &self.cfg
    }

    /// Cached temporary credentials, exchanged anew when 180 s or less remain.
    pub async fn credentials(&self) -> Result<Credentials, CloudError> {
        Ok(self.credentials_with_expiry(REFRESH_MARGIN).await?.0)
    }

    /// Like [`credentials`](Self::credentials), with the expiry and a chosen refresh margin.
    pub async fn credentials_with_expiry(
        &self,
        margin: Duration,
    ) -> Result<(Credentials, Timestamp), CloudError> {
        let mut cache = self.cache.lock().await;
        if let Some((creds, expires)) = cache.as_ref()
            && fresh(*expires, Timestamp::now(), margin)
        {
            return Ok((creds.clone(), *expires));
        }
        let fetched = self.exchange().await?;
        *cache = Some(fetched.clone());
        Ok(fetched)
    }

    async fn exchange(&self) -> Result<(Credentials, Timestamp), CloudError> {
        let token = tokio::fs::read_to_string(&self.cfg.token_file)
            .await
            .map_err(|e| {
                CloudError::new(
                    ErrorKind::InvalidCredentials,
                    format!(
                        "cannot read the OIDC token file {}: {e}",
                        self.cfg.token_file.display()
                    ),
                )
            })?;
        self.sts
            .assume_role_with_oidc(
                AssumeRequest {
                    role_arn: &self.cfg.role_arn,
                    oidc_provider_arn: &self.cfg.oidc_provider_arn,
                    role_session_name: &self.cfg.role_session_name,
                    duration_seconds: self.cfg.duration_seconds,
                },
                &token,
            )
            .await
    }
}

/// `Credentials{AccessKeyId, AccessKeySecret, SecurityToken, Expiration}` of an STS reply.
pub fn parse_assumed(v: &serde_json::Value) -> Result<(Credentials, Timestamp), CloudError> {
    let c = json::field(v, &["Credentials"])
        .ok_or_else(|| CloudError::bad_reply("STS reply has no Credentials"))?;
    let get = |k: &str| {
        json::string(c, &[k])
            .ok_or_else(|| CloudError::bad_reply(format!("STS reply has no Credentials.{k}")))
    };
    let expires: Timestamp = get("Expiration")?
        .parse()
        .map_err(|_| CloudError::bad_reply("STS reply has an unreadable Credentials.Expiration"))?;
    Ok((
        Credentials::AccessKey {
            access_key_id: get("AccessKeyId")?,
            access_key_secret: get("AccessKeySecret")?,
            security_token: Some(get("SecurityToken")?),
        },
        expires,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::collections::BTreeMap;

    fn env(p: &[(&str, &str)]) -> BTreeMap<String, String> {
        p.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn config_from_env() {
        assert!(OidcConfig::from_env_with(|_| None).is_none());
        let base = [
            (ENV_ROLE_ARN, "acs:ram::1:role/r"),
            (ENV_OIDC_PROVIDER_ARN, "acs:ram::1:oidc-provider/p"),
            (ENV_OIDC_TOKEN_FILE, "/var/run/secrets/tokens/oidc-token"),
        ];
        let e = env(&base);
        let c = OidcConfig::from_env_with(|k| e.get(k).cloned()).unwrap().unwrap();
        assert_eq!(c.sts_endpoint, "https://sts.aliyuncs.com");
        assert_eq!(c.duration_seconds, 3600);
        let mut vpc = base.to_vec();
        vpc.extend([
            (ENV_STS_REGION, "cn-hangzhou"),
            (ENV_VPC_ENDPOINT_ENABLED, "true"),
        ]);
        let e = env(&vpc);
        let c = OidcConfig::from_env_with(|k| e.get(k).cloned()).unwrap().unwrap();
        assert_eq!(c.sts_endpoint, "https://sts-vpc.cn-hangzhou.aliyuncs.com");
        let e = env(&[(ENV_ROLE_ARN, "r")]);
        let err = OidcConfig::from_env_with(|k| e.get(k).cloned())
            .unwrap()
            .unwrap_err();
        assert_eq!(
            err,
            OidcConfigError {
                missing: ENV_OIDC_PROVIDER_ARN
            }
        );
        assert_eq!(
            err.to_string(),
            "ALIBABA_CLOUD_ROLE_ARN is set but ALIBABA_CLOUD_OIDC_PROVIDER_ARN is not"
        );
    }

    #[test]
    fn assumed_credentials() {
        let v = json!({"RequestId": "r", "Credentials": {"AccessKeyId": "STS.id", "AccessKeySecret": "s", "SecurityToken": "t", "Expiration": "2021-10-20T04:27:09Z"}});
        let (c, exp) = parse_assumed(&v).unwrap();
        assert_eq!(c.access_key_id(), Some("STS.id"));
        assert_eq!(exp, "2021-10-20T04:27:09Z".parse().unwrap());
        assert_eq!(parse_assumed(&json!({})).unwrap_err().kind, ErrorKind::BadReply);
        let v = json!({"Credentials": {"AccessKeyId": "a", "AccessKeySecret": "s", "SecurityToken": "t", "Expiration": "soon"}});
        assert_eq!(parse_assumed(&v).unwrap_err().kind, ErrorKind::BadReply);
    }

    #[test]
    fn sts_endpoint_resolution() {
        let m = |p: &[(&str, &str)]| {
            let m: BTreeMap<String, String> = p.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
            sts_endpoint_from_env(|k| m.get(k).cloned())
        };
        assert_eq!(m(&[]), "https://sts.aliyuncs.com");
        assert_eq!(
            m(&[("ALIBABA_CLOUD_STS_ENDPOINT", "sts-vpc.cn-beijing.aliyuncs.com")]),
            "https://sts-vpc.cn-beijing.aliyuncs.com"
        );
        assert_eq!(
            m(&[("ALIBABA_CLOUD_STS_ENDPOINT", "http://127.0.0.1:9")]),
            "http://127.0.0.1:9"
        );
        assert_eq!(
            m(&[("ALIBABA_CLOUD_STS_REGION", "cn-hangzhou")]),
            "https://sts.cn-hangzhou.aliyuncs.com"
        );
    }
}
