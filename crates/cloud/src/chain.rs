//! The operator's own identity, in the order of Alibaba Cloud's default credential chain:
//! the `ALIBABA_CLOUD_ACCESS_KEY_*` variables, then the RRSA variables of its pod, then the
//! node's ECS RAM role (metadata service, hardened mode). The shared config file
//! (`~/.aliyun/config.json`) is not read: an operator image has none.
//!
//! The source is chosen once, from the environment, when the chain is built; temporary
//! credentials are cached and fetched again when little validity remains.

use std::time::Duration;

use jiff::Timestamp;
use tokio::sync::Mutex;

use super::credentials::{Credentials, env};
use super::error::{CloudError, ErrorKind};
use super::http::ClientConfig;
use super::imds::{self, ImdsClient, ImdsConfig};
use super::sts::{OidcConfig, OidcProvider, fresh};
// Defined in `sts` (it reads only STS variables, and `sts` needs it without depending back on
// the chain); kept reachable here, where callers have always found it.
pub use super::sts::sts_endpoint_from_env;

/// Where the operator's identity comes from, decided from the environment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ChainConfig {
    /// `ALIBABA_CLOUD_ACCESS_KEY_ID`/`_SECRET` (and `_SECURITY_TOKEN`).
    AccessKey(Credentials),
    /// `ALIBABA_CLOUD_ROLE_ARN`, `_OIDC_PROVIDER_ARN`, `_OIDC_TOKEN_FILE`.
    Rrsa(OidcConfig),
    /// The node's ECS RAM role.
    Ecs(ImdsConfig),
    /// Nothing configured and the metadata service switched off; the message says what was seen.
    None(String),
}

impl ChainConfig {
    /// From environment-like lookups. `sts_endpoint` (the operator's `--sts-endpoint`) wins over
    /// the RRSA variables' own; `metadata_endpoint` is the metadata service's base URL.
    pub fn from_env_with(
        var: impl Fn(&str) -> Option<String>,
        sts_endpoint: Option<&str>,
        metadata_endpoint: &str,
    ) -> ChainConfig {
        let get = |k: &str| var(k).map(|v| v.trim().to_string()).filter(|v| !v.is_empty());
        if get(env::ACCESS_KEY_ID).is_some() || get(env::ACCESS_KEY_SECRET).is_some() {
            return match Credentials::from_env_with(super::model::Provider::Edas, &var) {
                Ok(c) => ChainConfig::AccessKey(c),
                Err(e) => ChainConfig::None(e.to_string()),
            };
        }
        match OidcConfig::from_env_with(&var) {
            Some(Ok(mut cfg)) => {
                if let Some(e) = sts_endpoint {
                    cfg.sts_endpoint = e.to_string();
                }
                return ChainConfig::Rrsa(cfg);
            }
            Some(Err(e)) => return ChainConfig::None(e.to_string()),
            None => {}
        }
        if get(imds::ENV_ECS_METADATA_DISABLED).is_some_and(|v| v.eq_ignore_ascii_case("true")) {
            return ChainConfig::None(format!(
                "no AccessKey or RRSA variables are set and {} is true",
                imds::ENV_ECS_METADATA_DISABLED
            ));
        }
        ChainConfig::Ecs(ImdsConfig {
            endpoint: metadata_endpoint.to_string(),
            role_name: get(imds::ENV_ECS_METADATA),
        })
    }

    /// A short name of the source, for messages and logs (never a value).
    pub fn describe(&self) -> String {
        match self {
            ChainConfig::AccessKey(_) => "the operator's AccessKey variables".into(),
            ChainConfig::Rrsa(c) => format!("the operator's RRSA role {}", c.role_arn),
            ChainConfig::Ecs(c) => match &c.role_name {
                Some(r) => format!("the node's ECS RAM role {r}"),
                None => "the node's ECS RAM role".into(),
            },
            ChainConfig::None(_) => "no operator identity".into(),
        }
    }

    /// The URL the source calls, for the endpoint policy (`None`: no call is made).
    pub fn endpoint(&self) -> Option<&str> {
        match self {
            ChainConfig::Rrsa(c) => Some(&c.sts_endpoint),
            ChainConfig::Ecs(c) => Some(&c.endpoint),
            ChainConfig::AccessKey(_) | ChainConfig::None(_) => None,
        }
    }
}

enum Source {
    Static(Credentials),
    Rrsa(OidcProvider),
    Ecs(ImdsClient, Mutex<Option<(Credentials, Timestamp)>>),
    None(String),
}

/// The operator's identity, ready to hand out credentials. Share one per process.
pub struct OperatorChain {
    config: ChainConfig,
    source: Source,
}

impl std::fmt::Debug for OperatorChain {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OperatorChain")
            .field("source", &self.config.describe())
            .finish_non_exhaustive()
    }
}

impl OperatorChain {
    pub fn new(config: ChainConfig, client: &ClientConfig) -> Result<Self, CloudError> {
        let source = match &config {
            ChainConfig::AccessKey(c) => Source::Static(c.clone()),
            ChainConfig::Rrsa(c) => Source::Rrsa(OidcProvider::new(c.clone(), client)?),
            ChainConfig::Ecs(c) => Source::Ecs(ImdsClient::new(c, client)?, Mutex::new(None)),
            ChainConfig::None(m) => Source::None(m.clone()),
        };
        Ok(OperatorChain { config, source })
    }

    pub fn config(&self) -> &ChainConfig {
        &self.config
    }

    /// Credentials, fetched again when `margin` or less of their validity remains.
    pub async fn credentials(&self, margin: Duration) -> Result<Credentials, CloudError> {
        match &self.source {
            Source::Static(c) => Ok(c.clone()),
            Source::Rrsa(p) => Ok(p.credentials_with_expiry(margin).await?.0),
            Source::Ecs(client, cache) => {
                let mut cache = cache.lock().await;
                let now = Timestamp::now();
                if let Some((c, exp)) = cache.as_ref()
                    && fresh(*exp, now, margin)
                {
                    return Ok(c.clone());
                }
                match client.credentials().await {
                    Ok((c, exp)) => {
                        *cache = Some((c.clone(), exp));
                        Ok(c)
                    }
                    // A metadata hiccup while the cached keys still work must not fail a poll.
                    Err(e) if e.kind().is_retryable() => match cache.as_ref() {
                        Some((c, exp)) if *exp > now => {
                            tracing::warn!(error = %e, "ECS RAM role refresh failed; using the cached credentials until they expire");
                            Ok(c.clone())
                        }
                        _ => Err(e),
                    },
                    Err(e) => Err(e),
                }
            }
            Source::None(m) => Err(CloudError::new(
                ErrorKind::InvalidCredentials,
                format!("the operator has no identity of its own: {m}"),
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn chain(p: &[(&str, &str)]) -> ChainConfig {
        let m: BTreeMap<String, String> = p.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        ChainConfig::from_env_with(|k| m.get(k).cloned(), None, imds::DEFAULT_METADATA_ENDPOINT)
    }

    #[test]
    fn official_order() {
        let ak = [
            ("ALIBABA_CLOUD_ACCESS_KEY_ID", "id"),
            ("ALIBABA_CLOUD_ACCESS_KEY_SECRET", "s"),
        ];
        let rrsa = [
            ("ALIBABA_CLOUD_ROLE_ARN", "acs:ram::1:role/r"),
            ("ALIBABA_CLOUD_OIDC_PROVIDER_ARN", "acs:ram::1:oidc-provider/p"),
            ("ALIBABA_CLOUD_OIDC_TOKEN_FILE", "/t"),
        ];
        let both: Vec<_> = ak.iter().chain(rrsa.iter()).copied().collect();
        assert!(matches!(chain(&both), ChainConfig::AccessKey(_)));
        assert!(matches!(chain(&rrsa), ChainConfig::Rrsa(_)));
        match chain(&[("ALIBABA_CLOUD_ECS_METADATA", "node-role")]) {
            ChainConfig::Ecs(c) => {
                assert_eq!(c.role_name.as_deref(), Some("node-role"));
                assert_eq!(c.endpoint, "http://100.100.100.200");
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            chain(&[("ALIBABA_CLOUD_ECS_METADATA_DISABLED", "true")]),
            ChainConfig::None(_)
        ));
        // A half-set AccessKey is an error, not a silent fall-through to the node's role.
        match chain(&[("ALIBABA_CLOUD_ACCESS_KEY_ID", "id")]) {
            ChainConfig::None(m) => assert!(m.contains("ALIBABA_CLOUD_ACCESS_KEY_SECRET"), "{m}"),
            other => panic!("{other:?}"),
        }
    }
}
