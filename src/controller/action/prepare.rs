//! The switches and references a request needs before anything is read from the cloud: the
//! operator's and the watch's opt-in, the provider's support, the order, its watch and the
//! watch's credentials.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::Secret;
use kube::ResourceExt;
use kube::api::Api;

use super::{ActionError, Ctx, Verdict, reason};
use crate::controller::identity::{IdentityError, Source};
use crate::controller::spec::{SpecError, WatchConfig};
use crate::crd::{ActionKind, ChangeOrder, ChangeOrderAction, ChangeOrderWatch};
use changeorder_cloud::client::Target;
use changeorder_cloud::credentials::{Credentials, CredentialsError, check_secret_type};
use changeorder_cloud::model::Provider;

/// What a request acts on, once every switch and reference checked out.
pub(super) struct Prepared {
    pub(super) order: ChangeOrder,
    pub(super) watch_name: String,
    pub(super) target: Target,
    pub(super) credentials: Credentials,
}

/// Check the switches and references (no cloud call yet).
pub(super) async fn prepare(
    action: &ChangeOrderAction,
    ctx: &Ctx,
    ns: &str,
) -> Result<Result<Prepared, Verdict>, ActionError> {
    let kind = action.spec.action;
    if !ctx.settings.actions.enabled {
        return Ok(Err(Verdict::failed(
            reason::ACTIONS_DISABLED,
            "actions are disabled in the operator: it must run with --enable-actions \
             (Helm value actions.enabled=true); nothing was sent",
        )));
    }
    let orders: Api<ChangeOrder> = Api::namespaced(ctx.client.clone(), ns);
    let Some(order) = orders.get_opt(&action.spec.change_order).await? else {
        return Ok(Err(Verdict::failed(
            reason::ORDER_NOT_FOUND,
            format!("ChangeOrder {ns}/{} not found", action.spec.change_order),
        )));
    };
    let Some(watch_name) = owning_watch(&order) else {
        return Ok(Err(Verdict::failed(
            reason::WATCH_NOT_FOUND,
            format!("ChangeOrder {} has no owning ChangeOrderWatch", order.name_any()),
        )));
    };
    let watches: Api<ChangeOrderWatch> = Api::namespaced(ctx.client.clone(), ns);
    let Some(watch) = watches.get_opt(&watch_name).await? else {
        return Ok(Err(Verdict::failed(
            reason::WATCH_NOT_FOUND,
            format!("ChangeOrderWatch {ns}/{watch_name} not found"),
        )));
    };
    if let Err(v) = allowed_by_watch(&watch, kind) {
        return Ok(Err(v));
    }
    if let Err(v) = supported(order.spec.provider, kind) {
        return Ok(Err(v));
    }
    let config = match WatchConfig::from_spec(&watch.spec, &ctx.settings) {
        Ok(c) => c,
        Err(e) => return Ok(Err(Verdict::failed(reason::INVALID_WATCH, e.to_string()))),
    };
    if let Err(e) = config.check_endpoint(&ctx.settings.allowed_endpoints) {
        return Ok(Err(Verdict::failed(reason::INVALID_WATCH, e.to_string())));
    }
    let credentials = match read_credentials(ctx, ns, &config).await? {
        Ok(c) => c,
        Err(e) => return Ok(Err(Verdict::failed(reason::INVALID_CREDENTIALS, e.to_string()))),
    };
    Ok(Ok(Prepared {
        order,
        watch_name,
        target: config.target,
        credentials,
    }))
}

/// The per-watch opt-in.
pub fn allowed_by_watch(watch: &ChangeOrderWatch, kind: ActionKind) -> Result<(), Verdict> {
    let allowed = watch
        .spec
        .actions
        .as_ref()
        .is_some_and(|a| a.allowed.contains(&kind));
    if allowed {
        return Ok(());
    }
    Err(Verdict::failed(
        reason::ACTION_NOT_ALLOWED,
        format!(
            "ChangeOrderWatch {} does not allow {kind}: list it in spec.actions.allowed; nothing was sent",
            watch.name_any()
        ),
    ))
}

/// What each provider can do (AppStack has no public API for these).
pub fn supported(provider: Provider, kind: ActionKind) -> Result<(), Verdict> {
    match (provider, kind) {
        (Provider::Appstack, _) => Err(Verdict::failed(
            reason::UNSUPPORTED,
            "AppStack change orders cannot be acted on: Yunxiao publishes no API for it",
        )),
        _ => Ok(()),
    }
}

fn owning_watch(order: &ChangeOrder) -> Option<String> {
    order
        .owner_references()
        .iter()
        .find(|r| r.kind == "ChangeOrderWatch" && r.controller == Some(true))
        .map(|r| r.name.clone())
}

/// Why the watch's credentials cannot be had for a request. Messages name the Secret, never a
/// value.
#[derive(Debug, thiserror::Error)]
pub(super) enum CredentialsUnavailable {
    #[error("Secret {namespace}/{name} (spec.credentialsSecretRef.name of the watch) not found")]
    SecretNotFound { namespace: String, name: String },
    #[error("Secret {namespace}/{name}: {source}")]
    SecretType {
        namespace: String,
        name: String,
        source: changeorder_cloud::credentials::SecretTypeError,
    },
    #[error("Secret {namespace}/{name}: {source}")]
    SecretKeys {
        namespace: String,
        name: String,
        source: CredentialsError,
    },
    /// A keyless source refused; its API-server failures are the reconcile's, not this.
    #[error(transparent)]
    Keyless(IdentityError),
}

/// The watch's credentials from its Secret. Errors name the Secret, never a value.
async fn read_credentials(
    ctx: &Ctx,
    ns: &str,
    config: &WatchConfig,
) -> Result<Result<Credentials, CredentialsUnavailable>, ActionError> {
    let provider = config.target.provider;
    let name = match &config.source {
        Source::Secret(name) => name,
        Source::ServiceAccount(r) => {
            return keyless(
                ctx.identities
                    .service_account(&ctx.client, ns, r, &ctx.metrics)
                    .await,
            );
        }
        Source::OperatorIdentity => return keyless(ctx.identities.operator(ns).await),
    };
    let api: Api<Secret> = Api::namespaced(ctx.client.clone(), ns);
    let Some(secret) = api.get_opt(name).await? else {
        return Ok(Err(CredentialsUnavailable::SecretNotFound {
            namespace: ns.to_string(),
            name: name.clone(),
        }));
    };
    if let Err(source) = check_secret_type(secret.type_.as_deref()) {
        return Ok(Err(CredentialsUnavailable::SecretType {
            namespace: ns.to_string(),
            name: name.clone(),
            source,
        }));
    }
    let map: BTreeMap<String, Vec<u8>> = secret
        .data
        .unwrap_or_default()
        .into_iter()
        .map(|(k, v)| (k, v.0))
        .collect();
    Ok(
        Credentials::from_bytes_map(provider, &map).map_err(|source| CredentialsUnavailable::SecretKeys {
            namespace: ns.to_string(),
            name: name.clone(),
            source,
        }),
    )
}

/// A keyless source's answer: an API-server failure is the reconcile's; the rest (named
/// causes, never a token) refuse the request.
fn keyless(
    r: Result<Credentials, IdentityError>,
) -> Result<Result<Credentials, CredentialsUnavailable>, ActionError> {
    match r {
        Ok(c) => Ok(Ok(c)),
        Err(IdentityError::Kube(e)) => Err(ActionError::Kube(e)),
        Err(e) => Ok(Err(CredentialsUnavailable::Keyless(e))),
    }
}

/// Why an interrupted request's order cannot be read again.
#[derive(Debug, thiserror::Error)]
pub(super) enum OrderUnreadable {
    #[error("ChangeOrder {name} not found")]
    OrderNotFound { name: String },
    #[error("the ChangeOrder has no owning watch")]
    NoOwningWatch { order: String },
    #[error("ChangeOrderWatch {name} not found")]
    WatchNotFound { name: String },
    #[error(transparent)]
    InvalidWatch(#[from] SpecError),
    #[error(transparent)]
    Credentials(#[from] CredentialsUnavailable),
}

/// Like [`prepare`] without the switches: only what reading the order needs.
pub(super) async fn prepare_for_reading(
    action: &ChangeOrderAction,
    ctx: &Ctx,
    ns: &str,
) -> Result<Result<Prepared, OrderUnreadable>, ActionError> {
    let orders: Api<ChangeOrder> = Api::namespaced(ctx.client.clone(), ns);
    let Some(order) = orders.get_opt(&action.spec.change_order).await? else {
        return Ok(Err(OrderUnreadable::OrderNotFound {
            name: action.spec.change_order.clone(),
        }));
    };
    let Some(watch_name) = owning_watch(&order) else {
        return Ok(Err(OrderUnreadable::NoOwningWatch {
            order: order.name_any(),
        }));
    };
    let watches: Api<ChangeOrderWatch> = Api::namespaced(ctx.client.clone(), ns);
    let Some(watch) = watches.get_opt(&watch_name).await? else {
        return Ok(Err(OrderUnreadable::WatchNotFound { name: watch_name }));
    };
    let config = match WatchConfig::from_spec(&watch.spec, &ctx.settings) {
        Ok(c) => c,
        Err(e) => return Ok(Err(e.into())),
    };
    let credentials = match read_credentials(ctx, ns, &config).await? {
        Ok(c) => c,
        Err(e) => return Ok(Err(e.into())),
    };
    Ok(Ok(Prepared {
        order,
        watch_name,
        target: config.target,
        credentials,
    }))
}
