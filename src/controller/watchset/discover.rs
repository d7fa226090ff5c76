//! One discovery: validate the set's cloud fields as a watch's (same rules, same endpoint
//! policy), get credentials from the same sources, and list the apps.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::Secret;
use kube::api::Api;

use super::names::AppKey;
use super::render::watch_spec;
use crate::controller::context::Context;
use crate::controller::identity::{IdentityError, Source};
use crate::controller::spec::{EndpointError, WatchConfig};
use crate::controller::watch_status::{failure_reason, reason};
use crate::crd::ChangeOrderWatchSetSpec;
use changeorder_cloud::credentials::{Credentials, check_secret_type};
use changeorder_cloud::discover::AppQuery;
use changeorder_cloud::model::Provider;

/// Why a discovery found nothing to go on: a Ready reason and a message for a person.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Failure {
    pub reason: &'static str,
    pub message: String,
    /// Advised wait before the next try (rate limits).
    pub retry_after: Option<std::time::Duration>,
}

fn fail(reason: &'static str, message: impl Into<String>) -> Failure {
    Failure {
        reason,
        message: message.into(),
        retry_after: None,
    }
}

/// The set's fields as one generated watch would have them, validated (the errors name the
/// watch's fields, which are the set's too).
pub fn config(spec: &ChangeOrderWatchSetSpec, ctx: &Context) -> Result<WatchConfig, Failure> {
    // Any app will do: only provider, endpoint, credentials and template are checked here.
    let probe = AppKey {
        id: "discovery".into(),
        name: None,
    };
    let config = WatchConfig::from_spec(&watch_spec(spec, &probe), &ctx.settings)
        .map_err(|e| fail(reason::INVALID_SPEC, e.to_string()))?;
    if spec.provider != Provider::Appstack {
        config
            .check_endpoint(&ctx.settings.allowed_endpoints)
            .map_err(|e| match e {
                EndpointError::Invalid(_) => fail(reason::INVALID_SPEC, e.to_string()),
                EndpointError::NotAllowed(_) => fail(reason::ENDPOINT_NOT_ALLOWED, e.to_string()),
            })?;
    }
    Ok(config)
}

/// The apps the generator selects now.
pub async fn discover(
    spec: &ChangeOrderWatchSetSpec,
    config: &WatchConfig,
    ns: &str,
    ctx: &Context,
) -> Result<Vec<AppKey>, Failure> {
    let query = match (
        &spec.generator.sae,
        &spec.generator.edas,
        &spec.generator.appstack,
    ) {
        (_, _, Some(g)) if spec.provider == Provider::Appstack => {
            // An explicit list: no call.
            let mut apps: Vec<AppKey> = g
                .apps
                .iter()
                .map(|a| AppKey {
                    id: a.0.clone(),
                    name: Some(a.0.clone()),
                })
                .collect();
            apps.sort();
            apps.dedup();
            return Ok(apps);
        }
        (Some(g), _, _) if spec.provider == Provider::Sae => AppQuery::Sae {
            namespace_id: g.namespace_id.clone(),
            name_pattern: g.app_name_pattern.clone(),
            tags: g.tags.clone(),
        },
        (_, Some(g), _) if spec.provider == Provider::Edas => AppQuery::Edas {
            logical_region_id: g.logical_region_id.clone(),
            name_pattern: g.app_name_pattern.clone(),
            cluster_id: g.cluster_id.clone(),
        },
        _ => {
            return Err(fail(
                reason::INVALID_SPEC,
                format!(
                    "spec.generator must set exactly the provider's generator ({})",
                    spec.provider
                ),
            ));
        }
    };
    let creds = credentials(ctx, ns, config).await?;
    ctx.cloud.identify(&creds).await;
    match ctx.cloud.list_apps(&config.target, &creds, &query).await {
        Ok(found) => Ok(found
            .into_iter()
            .map(|a| AppKey {
                id: a.app_id,
                name: a.app_name,
            })
            .collect()),
        Err(e) => {
            if matches!(
                e.kind(),
                changeorder_cloud::ErrorKind::InvalidCredentials
                    | changeorder_cloud::ErrorKind::SignatureMismatch
            ) {
                ctx.identities.refused(&creds);
            }
            Err(Failure {
                reason: failure_reason(e.kind()),
                message: e.to_string(),
                retry_after: e.retry_after(),
            })
        }
    }
}

/// Credentials from the set's one source, exactly as a watch gets them. Messages name the
/// Secret or key, never a value.
async fn credentials(ctx: &Context, ns: &str, config: &WatchConfig) -> Result<Credentials, Failure> {
    let keyless = match &config.source {
        Source::Secret(name) => {
            let api: Api<Secret> = Api::namespaced(ctx.client.clone(), ns);
            let secret = api
                .get_opt(name)
                .await
                .map_err(|e| fail(reason::PROVIDER_ERROR, format!("reading Secret {ns}/{name}: {e}")))?
                .ok_or_else(|| {
                    fail(
                        reason::INVALID_CREDENTIALS,
                        format!("Secret {ns}/{name} (spec.credentialsSecretRef.name) not found"),
                    )
                })?;
            check_secret_type(secret.type_.as_deref())
                .map_err(|e| fail(reason::INVALID_CREDENTIALS, format!("Secret {ns}/{name}: {e}")))?;
            let map: BTreeMap<String, Vec<u8>> = secret
                .data
                .unwrap_or_default()
                .into_iter()
                .map(|(k, v)| (k, v.0))
                .collect();
            return Credentials::from_bytes_map(config.target.provider, &map)
                .map_err(|e| fail(reason::INVALID_CREDENTIALS, format!("Secret {ns}/{name}: {e}")));
        }
        Source::ServiceAccount(r) => {
            ctx.identities
                .service_account(&ctx.client, ns, r, &ctx.metrics)
                .await
        }
        Source::OperatorIdentity => ctx.identities.operator(ns).await,
    };
    keyless.map_err(|e| match e {
        IdentityError::Cloud(e) => fail(failure_reason(e.kind()), e.to_string()),
        IdentityError::Kube(e) => fail(reason::PROVIDER_ERROR, e.to_string()),
        IdentityError::ServiceAccountNotFound(m) => fail(reason::SERVICE_ACCOUNT_NOT_FOUND, m),
        IdentityError::NotAllowed(m) => fail(reason::IDENTITY_NOT_ALLOWED, m),
        IdentityError::Invalid(m) => fail(reason::INVALID_CREDENTIALS, m),
    })
}
