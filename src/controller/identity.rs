//! Keyless credentials for watches: a ServiceAccount of the watch's own namespace (RRSA through
//! the TokenRequest API and STS `AssumeRoleWithOIDC`), or the operator's own identity where the
//! cluster admin allows it.
//!
//! Cost per keyless identity (ServiceAccount + role): one TokenRequest and one STS call each
//! time the cached credentials come within the refresh margin (180 s) of their expiry, i.e.
//! about once per `DurationSeconds - 180 s` (3420 s with the default 3600 s), shared by every
//! watch using that identity; plus one ServiceAccount GET per poll (API server only), which
//! notices a deleted or replaced ServiceAccount at once and reads its annotations.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use jiff::Timestamp;
use k8s_openapi::api::authentication::v1::{TokenRequest, TokenRequestSpec};
use k8s_openapi::api::core::v1::ServiceAccount;
use kube::api::{Api, PostParams};

use crate::controller::metrics::Metrics;
use crate::crd::{ChangeOrderWatchSpec, CredentialSourceKind, ServiceAccountRef};
use changeorder_cloud::chain::{ChainConfig, OperatorChain};
use changeorder_cloud::credentials::Credentials;
use changeorder_cloud::error::CloudError;
use changeorder_cloud::http::ClientConfig;
use changeorder_cloud::model::Provider;
use changeorder_cloud::sts::{AssumeRequest, REFRESH_MARGIN, StsClient, fresh};

/// ServiceAccount annotations read when the watch does not name the role / provider itself.
pub const ROLE_ARN_ANNOTATION: &str = "changeorder.io/role-arn";
pub const OIDC_PROVIDER_ARN_ANNOTATION: &str = "changeorder.io/oidc-provider-arn";
/// The only audience the operator asks tokens for: a token for STS is useless elsewhere.
pub const TOKEN_AUDIENCE: &str = "sts.aliyuncs.com";
/// Lifetime asked of a TokenRequest: the API server's minimum. The token is used once, at once.
pub const TOKEN_EXPIRATION_SECONDS: i64 = 600;

/// Operator-wide keyless settings, from the `run` flags.
#[derive(Clone, Debug)]
pub struct KeylessSettings {
    /// STS base URL (`--sts-endpoint`, else the official `ALIBABA_CLOUD_STS_*` variables).
    pub sts_endpoint: String,
    /// Namespaces whose watches may use the operator's own identity; empty: none.
    pub operator_identity_namespaces: Vec<String>,
    /// The operator's own identity, as found in its environment.
    pub operator_identity: ChainConfig,
    /// Refresh temporary credentials when this little validity remains.
    pub refresh_margin: Duration,
    /// `DurationSeconds` asked of STS.
    pub duration_seconds: u32,
}

impl KeylessSettings {
    /// From the `run` flags and, for the operator's own identity, its environment.
    pub fn from_args(args: &crate::controller::RunArgs) -> Self {
        Self::from_args_with(args, |k| std::env::var(k).ok())
    }

    /// Like [`from_args`](Self::from_args), with environment-like lookups.
    pub fn from_args_with(args: &crate::controller::RunArgs, var: impl Fn(&str) -> Option<String>) -> Self {
        let var = &var;
        let sts_endpoint = args
            .sts_endpoint
            .clone()
            .filter(|e| !e.trim().is_empty())
            .map(|e| {
                if e.contains("://") {
                    e
                } else {
                    format!("https://{e}")
                }
            })
            .unwrap_or_else(|| changeorder_cloud::chain::sts_endpoint_from_env(var));
        KeylessSettings {
            operator_identity: ChainConfig::from_env_with(
                var,
                args.sts_endpoint.as_deref().map(|_| sts_endpoint.as_str()),
                &args.ecs_metadata_endpoint,
            ),
            sts_endpoint,
            operator_identity_namespaces: args
                .operator_identity_namespaces
                .iter()
                .map(|n| n.trim().to_string())
                .filter(|n| !n.is_empty())
                .collect(),
            ..KeylessSettings::default()
        }
    }
}

impl Default for KeylessSettings {
    fn default() -> Self {
        KeylessSettings {
            sts_endpoint: "https://sts.aliyuncs.com".into(),
            operator_identity_namespaces: Vec::new(),
            operator_identity: ChainConfig::None("not configured".into()),
            refresh_margin: REFRESH_MARGIN,
            duration_seconds: 3600,
        }
    }
}

/// Where a watch's credentials come from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Source {
    Secret(String),
    ServiceAccount(ServiceAccountRef),
    OperatorIdentity,
}

/// Why a watch's spec names no usable credential source.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SourceError {
    #[error(
        "exactly one credential source: set one of spec.credentialsSecretRef, spec.serviceAccountRef and spec.credentials"
    )]
    NotExactlyOne,
    #[error(
        "provider {provider} authenticates with a personal access token: use spec.credentialsSecretRef (spec.serviceAccountRef and spec.credentials apply to edas and sae)"
    )]
    KeylessUnsupported { provider: Provider },
    #[error("spec.serviceAccountRef.name: must not be empty")]
    EmptyServiceAccountName,
    #[error("spec.credentials.source is required")]
    NoCredentialsSource,
}

/// The watch's one credential source. The CRD enforces the same (CEL); this catches what an
/// older CRD or a file read by `probe` let through.
pub fn source_of(spec: &ChangeOrderWatchSpec) -> Result<Source, SourceError> {
    let set = [
        spec.credentials_secret_ref.is_some(),
        spec.service_account_ref.is_some(),
        spec.credentials.is_some(),
    ];
    if set.iter().filter(|s| **s).count() != 1 {
        return Err(SourceError::NotExactlyOne);
    }
    let supports_keyless = matches!(spec.provider, Provider::Edas | Provider::Sae);
    if let Some(r) = &spec.credentials_secret_ref {
        return Ok(Source::Secret(r.name.clone()));
    }
    if !supports_keyless {
        return Err(SourceError::KeylessUnsupported {
            provider: spec.provider,
        });
    }
    if let Some(r) = &spec.service_account_ref {
        if r.name.trim().is_empty() {
            return Err(SourceError::EmptyServiceAccountName);
        }
        return Ok(Source::ServiceAccount(r.clone()));
    }
    match spec.credentials.as_ref().map(|c| c.source) {
        Some(CredentialSourceKind::OperatorIdentity) => Ok(Source::OperatorIdentity),
        None => Err(SourceError::NoCredentialsSource),
    }
}

/// Why keyless credentials could not be had. Messages name objects, fields and roles; never a
/// token or key.
#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    #[error("{0}")]
    ServiceAccountNotFound(String),
    /// A source this watch may not use (another namespace's ServiceAccount, the operator's
    /// identity outside the allowed namespaces, minting refused by RBAC).
    #[error("{0}")]
    NotAllowed(String),
    /// Something a person must fix in the spec or on the ServiceAccount.
    #[error("{0}")]
    Invalid(String),
    #[error(transparent)]
    Cloud(#[from] CloudError),
    #[error(transparent)]
    Kube(#[from] kube::Error),
}

type Slot = Arc<tokio::sync::Mutex<Option<(Credentials, Timestamp)>>>;

/// Cache key: the ServiceAccount (by uid, so a re-created one starts over) and the role.
#[derive(Clone, Debug, Hash, PartialEq, Eq)]
struct Key {
    namespace: String,
    name: String,
    uid: String,
    role_arn: String,
    oidc_provider_arn: String,
}

/// Keyless credentials for every watch and action of the process: one instance, built once in
/// [`run_controllers`](crate::controller::run_controllers) and shared, so one exchange serves a
/// ServiceAccount's watches and actions alike.
pub struct Identities {
    settings: KeylessSettings,
    /// Told the account of each key exchanged (from the role's ARN), for the call budget.
    cloud: Option<changeorder_cloud::client::CloudClient>,
    /// Built once; a bad endpoint fails each keyless poll with this error.
    sts: Result<StsClient, CloudError>,
    operator: Result<OperatorChain, CloudError>,
    slots: std::sync::Mutex<HashMap<Key, Slot>>,
}

impl std::fmt::Debug for Identities {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Identities")
            .field("sts", &self.settings.sts_endpoint)
            .field("operator", &self.settings.operator_identity.describe())
            .finish_non_exhaustive()
    }
}

impl Identities {
    /// With the default timeouts and no call budget to tell (`probe`).
    pub fn new(settings: KeylessSettings) -> Self {
        Self::build(settings, &ClientConfig::default(), None)
    }

    /// For the controllers: STS and metadata calls bounded by `cloud`'s timeouts
    /// (`--cloud-timeout`), and `cloud`'s call budget told the account of each exchanged key.
    pub fn for_cloud(settings: KeylessSettings, cloud: &changeorder_cloud::client::CloudClient) -> Self {
        let own = cloud.config();
        let client = ClientConfig {
            connect_timeout: own.connect_timeout,
            read_timeout: own.read_timeout,
            request_timeout: own.request_timeout,
            user_agent: own.user_agent.clone(),
            ..ClientConfig::default()
        };
        Self::build(settings, &client, Some(cloud.clone()))
    }

    fn build(
        settings: KeylessSettings,
        client: &ClientConfig,
        cloud: Option<changeorder_cloud::client::CloudClient>,
    ) -> Self {
        let sts = StsClient::new(&settings.sts_endpoint, client);
        let operator = OperatorChain::new(settings.operator_identity.clone(), client);
        Identities {
            settings,
            cloud,
            sts,
            operator,
            slots: std::sync::Mutex::default(),
        }
    }

    /// The cloud refused `creds` as a key (unknown, revoked or expired key, a security token it
    /// does not accept, a signature that does not match): drop the cached ServiceAccount keys
    /// that are exactly these, so the next poll or action exchanges the token again. Keys
    /// exchanged meanwhile by another watch are kept; a slot busy exchanging is left alone (it
    /// is getting new keys). The caller's error backoff paces the next exchange, so keys the
    /// cloud keeps refusing cost one exchange per backoff, never a loop.
    pub fn refused(&self, creds: &Credentials) {
        let Some(id) = creds.access_key_id() else { return };
        let slots: Vec<(Key, Slot)> = {
            let slots = self.slots.lock().unwrap_or_else(|p| p.into_inner());
            slots.iter().map(|(k, s)| (k.clone(), s.clone())).collect()
        };
        for (key, slot) in slots {
            if let Ok(mut cached) = slot.try_lock()
                && cached
                    .as_ref()
                    .is_some_and(|(c, _)| c.access_key_id() == Some(id) && c == creds)
            {
                *cached = None;
                tracing::info!(namespace = %key.namespace, service_account = %key.name, role = %key.role_arn,
                    "the cloud refused the exchanged keys; the ServiceAccount token is exchanged again at the next attempt");
            }
        }
    }

    fn slot(&self, key: &Key) -> Slot {
        let now = Timestamp::now();
        let mut slots = self.slots.lock().unwrap_or_else(|p| p.into_inner());
        // Expired credentials of identities no longer used (a deleted watch, a changed role)
        // are not kept; a slot in use (locked) stays.
        slots.retain(|k, s| {
            k == key
                || s.try_lock()
                    .map_or(true, |c| c.as_ref().is_some_and(|(_, exp)| *exp > now))
        });
        slots.entry(key.clone()).or_default().clone()
    }

    /// Drop cached credentials of a ServiceAccount that is gone.
    fn forget(&self, namespace: &str, name: &str) {
        let mut slots = self.slots.lock().unwrap_or_else(|p| p.into_inner());
        slots.retain(|k, _| !(k.namespace == namespace && k.name == name));
    }

    /// Credentials of the watch's ServiceAccount: cached, or minted and exchanged now. The STS
    /// endpoint is the administrator's setting (`--sts-endpoint`), never a watch's: it is not
    /// checked against the watches' endpoint policy, which therefore need not be widened for it.
    pub async fn service_account(
        &self,
        client: &kube::Client,
        ns: &str,
        r: &ServiceAccountRef,
        metrics: &Metrics,
    ) -> Result<Credentials, IdentityError> {
        if let Some(other) = r.namespace.as_deref().filter(|n| *n != ns) {
            return Err(IdentityError::NotAllowed(format!(
                "spec.serviceAccountRef names ServiceAccount {other}/{}: a watch may use only a ServiceAccount in its own namespace ({ns})",
                r.name
            )));
        }
        let sts = self
            .sts
            .as_ref()
            .map_err(|m| IdentityError::Invalid(format!("the operator's STS endpoint: {m}")))?;
        let api: Api<ServiceAccount> = Api::namespaced(client.clone(), ns);
        let sa = api.get_metadata_opt(&r.name).await.map_err(|e| {
            if is_status(&e, 403) {
                IdentityError::NotAllowed(format!(
                    "the operator may not read ServiceAccount {ns}/{} (RBAC: get serviceaccounts, create serviceaccounts/token; the chart grants them with keyless.enabled=true)",
                    r.name
                ))
            } else {
                IdentityError::Kube(e)
            }
        })?;
        let Some(sa) = sa else {
            self.forget(ns, &r.name);
            return Err(not_found(ns, &r.name));
        };
        let annotation = |k: &str| {
            sa.metadata
                .annotations
                .as_ref()
                .and_then(|a| a.get(k))
                .map(|v| v.trim().to_string())
                .filter(|v| !v.is_empty())
        };
        let role_arn = r.role_arn.clone().or_else(|| annotation(ROLE_ARN_ANNOTATION)).ok_or_else(|| {
            IdentityError::Invalid(format!(
                "no RAM role for ServiceAccount {ns}/{}: set spec.serviceAccountRef.roleArn or annotate the ServiceAccount with {ROLE_ARN_ANNOTATION}",
                r.name
            ))
        })?;
        let oidc_provider_arn = r
            .oidc_provider_arn
            .clone()
            .or_else(|| annotation(OIDC_PROVIDER_ARN_ANNOTATION))
            .ok_or_else(|| {
                IdentityError::Invalid(format!(
                    "no OIDC provider for ServiceAccount {ns}/{}: set spec.serviceAccountRef.oidcProviderArn or annotate the ServiceAccount with {OIDC_PROVIDER_ARN_ANNOTATION}",
                    r.name
                ))
            })?;
        let key = Key {
            namespace: ns.to_string(),
            name: r.name.clone(),
            uid: sa.metadata.uid.clone().unwrap_or_default(),
            role_arn,
            oidc_provider_arn,
        };
        let slot = self.slot(&key);
        // One exchange at a time per identity: watches sharing it wait and reuse the result.
        let mut cached = slot.lock().await;
        let now = Timestamp::now();
        if let Some((c, exp)) = cached.as_ref()
            && fresh(*exp, now, self.settings.refresh_margin)
        {
            return Ok(c.clone());
        }
        match self.exchange(&api, &key, sts, metrics).await {
            Ok((c, exp)) => {
                *cached = Some((c.clone(), exp));
                Ok(c)
            }
            // A transient failure while the cached keys still work must not fail the poll.
            Err(IdentityError::Cloud(e)) if e.kind().is_retryable() => match cached.as_ref() {
                Some((c, exp)) if *exp > now => {
                    tracing::warn!(namespace = %ns, service_account = %r.name, error = %e,
                        "STS refresh failed; using the cached credentials until they expire");
                    Ok(c.clone())
                }
                _ => Err(IdentityError::Cloud(e)),
            },
            // So is an API-server hiccup (a 404 or 403 is not: those are their own variants).
            Err(IdentityError::Kube(e)) => match cached.as_ref() {
                Some((c, exp)) if *exp > now => {
                    tracing::warn!(namespace = %ns, service_account = %r.name, error = %e,
                        "TokenRequest failed; using the cached credentials until they expire");
                    Ok(c.clone())
                }
                _ => Err(IdentityError::Kube(e)),
            },
            Err(e) => {
                *cached = None;
                Err(e)
            }
        }
    }

    async fn exchange(
        &self,
        api: &Api<ServiceAccount>,
        key: &Key,
        sts: &StsClient,
        metrics: &Metrics,
    ) -> Result<(Credentials, Timestamp), IdentityError> {
        let request = TokenRequest {
            spec: TokenRequestSpec {
                audiences: vec![TOKEN_AUDIENCE.to_string()],
                expiration_seconds: Some(TOKEN_EXPIRATION_SECONDS),
                bound_object_ref: None,
            },
            ..TokenRequest::default()
        };
        let minted = api
            .create_token_request(&key.name, &PostParams::default(), &request)
            .await;
        metrics.identity_call("token_request", if minted.is_ok() { "ok" } else { "error" });
        let minted = minted.map_err(|e| {
            if is_status(&e, 404) {
                self.forget(&key.namespace, &key.name);
                not_found(&key.namespace, &key.name)
            } else if is_status(&e, 403) {
                IdentityError::NotAllowed(format!(
                    "the operator may not request tokens for ServiceAccount {}/{} (RBAC: create serviceaccounts/token; the chart grants it with keyless.enabled=true)",
                    key.namespace, key.name
                ))
            } else {
                IdentityError::Kube(e)
            }
        })?;
        let token = minted
            .status
            .map(|s| s.token)
            .filter(|t| !t.is_empty())
            .ok_or_else(|| IdentityError::Invalid("the API server returned an empty token".into()))?;
        let session = session_name(&key.namespace, &key.name);
        let assumed = sts
            .assume_role_with_oidc(
                AssumeRequest {
                    role_arn: &key.role_arn,
                    oidc_provider_arn: &key.oidc_provider_arn,
                    role_session_name: &session,
                    duration_seconds: self.settings.duration_seconds,
                },
                &token,
            )
            .await;
        metrics.identity_call("sts", if assumed.is_ok() { "ok" } else { "error" });
        let assumed = assumed?;
        if let (Some(cloud), Some(account)) = (
            &self.cloud,
            changeorder_cloud::account::account_of_arn(&key.role_arn),
        ) {
            let left = Timestamp::now().duration_until(assumed.1);
            cloud.learn_account(&assumed.0, account, Duration::try_from(left).ok());
        }
        tracing::info!(namespace = %key.namespace, service_account = %key.name, role = %key.role_arn,
            expires = %assumed.1, "exchanged a ServiceAccount token for STS credentials");
        Ok(assumed)
    }

    /// The operator's own identity, for watches in the namespaces the admin allows.
    /// Its STS and metadata endpoints are the administrator's settings, like `--sts-endpoint`,
    /// and not subject to the watches' endpoint policy.
    pub async fn operator(&self, ns: &str) -> Result<Credentials, IdentityError> {
        let allowed = &self.settings.operator_identity_namespaces;
        if !allowed.iter().any(|n| n == ns) {
            return Err(IdentityError::NotAllowed(format!(
                "namespace {ns} may not use the operator's own identity (spec.credentials.source OperatorIdentity); the cluster admin allows it per namespace with --operator-identity-namespaces (chart: keyless.operatorIdentityNamespaces){}",
                if allowed.is_empty() {
                    ", which lists none".to_string()
                } else {
                    String::new()
                }
            )));
        }
        let chain = self
            .operator
            .as_ref()
            .map_err(|m| IdentityError::Invalid(format!("the operator's identity: {m}")))?;
        let got = chain.credentials(self.settings.refresh_margin).await;
        got.map_err(|mut e| {
            e.message = format!("{}: {}", chain.config().describe(), e.message);
            IdentityError::Cloud(e)
        })
    }
}

fn not_found(ns: &str, name: &str) -> IdentityError {
    IdentityError::ServiceAccountNotFound(format!(
        "ServiceAccount {ns}/{name} (spec.serviceAccountRef.name) not found; it must be in the watch's namespace"
    ))
}

fn is_status(e: &kube::Error, code: u16) -> bool {
    matches!(e, kube::Error::Api(s) if s.code == code)
}

/// `changeorder.NS.NAME`, cut to STS's 64 characters of `[A-Za-z0-9.@_-]`, so the cloud's
/// audit log (ActionTrail) shows which namespace's watch made each call.
pub fn session_name(ns: &str, name: &str) -> String {
    let raw = format!("changeorder.{ns}.{name}");
    raw.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "._@-".contains(c) {
                c
            } else {
                '-'
            }
        })
        .take(64)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(extra: serde_json::Value) -> ChangeOrderWatchSpec {
        let mut v = serde_json::json!({"provider": "sae", "region": "cn-hangzhou", "appId": "a"});
        if let (Some(b), Some(e)) = (v.as_object_mut(), extra.as_object()) {
            b.extend(e.clone());
        }
        serde_json::from_value(v).expect("spec")
    }

    #[test]
    fn exactly_one_source() {
        let secret = serde_json::json!({"credentialsSecretRef": {"name": "s"}});
        let sa = serde_json::json!({"serviceAccountRef": {"name": "sa"}});
        let op = serde_json::json!({"credentials": {"source": "OperatorIdentity"}});
        assert_eq!(source_of(&spec(secret.clone())), Ok(Source::Secret("s".into())));
        assert!(matches!(source_of(&spec(sa.clone())), Ok(Source::ServiceAccount(r)) if r.name == "sa"));
        assert_eq!(source_of(&spec(op)), Ok(Source::OperatorIdentity));
        let none = source_of(&spec(serde_json::json!({}))).unwrap_err().to_string();
        assert!(
            none.contains("spec.credentialsSecretRef") && none.contains("spec.serviceAccountRef"),
            "{none}"
        );
        let mut both = secret.as_object().unwrap().clone();
        both.extend(sa.as_object().unwrap().clone());
        assert!(source_of(&spec(serde_json::Value::Object(both))).is_err());
        let mut appstack = spec(sa);
        appstack.provider = changeorder_cloud::model::Provider::Appstack;
        assert_eq!(
            source_of(&appstack).unwrap_err().to_string(),
            "provider appstack authenticates with a personal access token: use spec.credentialsSecretRef (spec.serviceAccountRef and spec.credentials apply to edas and sae)"
        );
    }

    #[test]
    fn settings_from_flags_and_the_official_variables() {
        use clap::Parser;
        let run = |argv: &[&str]| match crate::cli::Cli::try_parse_from(argv).expect("flags").command {
            crate::cli::Command::Run(args) => args,
            _ => panic!("not run"),
        };
        let args = run(&[
            "x",
            "run",
            "--sts-endpoint",
            "sts-vpc.cn-hangzhou.aliyuncs.com",
            "--operator-identity-namespaces",
            "a, b,",
        ]);
        let s = KeylessSettings::from_args_with(&args, |_| None);
        assert_eq!(s.sts_endpoint, "https://sts-vpc.cn-hangzhou.aliyuncs.com");
        assert_eq!(s.operator_identity_namespaces, ["a", "b"]);
        assert!(
            matches!(&s.operator_identity, ChainConfig::Ecs(c) if c.endpoint == "http://100.100.100.200")
        );
        let args = run(&["x", "run"]);
        let env = |k: &str| (k == "ALIBABA_CLOUD_STS_ENDPOINT").then(|| "http://127.0.0.1:9".to_string());
        let s = KeylessSettings::from_args_with(&args, env);
        assert_eq!(s.sts_endpoint, "http://127.0.0.1:9");
        assert!(
            s.operator_identity_namespaces.is_empty(),
            "no namespace may use the operator identity by default"
        );
        assert_eq!(s.refresh_margin, Duration::from_secs(180));
    }

    #[test]
    fn session_names_fit_sts() {
        assert_eq!(session_name("team-a", "poller"), "changeorder.team-a.poller");
        let long = session_name(&"n".repeat(63), &"s".repeat(63));
        assert_eq!(long.len(), 64);
        assert_eq!(session_name("a", "b:c"), "changeorder.a.b-c");
    }
}
