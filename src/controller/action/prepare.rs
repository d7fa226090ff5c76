//! The switches and references a request needs before anything is read from the cloud: the
//! operator's and the watch's opt-in, the provider's support, the order, its watch and the
//! watch's credentials.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::Secret;
use kube::ResourceExt;
use kube::api::Api;

use super::{ActionError, Ctx, Verdict, reason};
use crate::controller::identity::{IdentityError, Source};
use crate::controller::spec::WatchConfig;
use crate::crd::{ActionKind, ChangeOrder, ChangeOrderAction, ChangeOrderWatch};
use changeorder_cloud::client::Target;
use changeorder_cloud::credentials::{Credentials, check_secret_type};
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
        Err(m) => return Ok(Err(Verdict::failed(reason::INVALID_WATCH, m))),
    };
    let endpoint_ok = config
        .target
        .base_url()
        .map_err(|m| format!("spec.endpoint: {m}"))
        .and_then(|u| ctx.settings.allowed_endpoints.check_url(&u));
    if let Err(m) = endpoint_ok {
        return Ok(Err(Verdict::failed(reason::INVALID_WATCH, m)));
    }
    let credentials = match read_credentials(ctx, ns, &config).await? {
        Ok(c) => c,
        Err(m) => return Ok(Err(Verdict::failed(reason::INVALID_CREDENTIALS, m))),
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

/// What each provider can do (AppStack has no public API for these; EDAS cannot roll back).
pub fn supported(provider: Provider, kind: ActionKind) -> Result<(), Verdict> {
    match (provider, kind) {
        (Provider::Appstack, _) => Err(Verdict::failed(
            reason::UNSUPPORTED,
            "AppStack change orders cannot be acted on: Yunxiao publishes no API for it",
        )),
        (Provider::Edas, ActionKind::AbortAndRollback) => Err(Verdict::failed(
            reason::UNSUPPORTED,
            "EDAS has no abort-and-rollback API: use Abort, then roll back in the console",
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

/// The watch's credentials from its Secret. Errors name the Secret, never a value.
async fn read_credentials(
    ctx: &Ctx,
    ns: &str,
    config: &WatchConfig,
) -> Result<Result<Credentials, String>, ActionError> {
    let provider = config.target.provider;
    let name = match &config.source {
        Source::Secret(name) => name,
        Source::ServiceAccount(r) => {
            let policy = &ctx.settings.allowed_endpoints;
            return keyless(
                ctx.identities
                    .service_account(&ctx.client, ns, r, Some(policy), &ctx.metrics)
                    .await,
            );
        }
        Source::OperatorIdentity => {
            return keyless(ctx.identities.operator(ns, &ctx.settings.allowed_endpoints).await);
        }
    };
    let api: Api<Secret> = Api::namespaced(ctx.client.clone(), ns);
    let Some(secret) = api.get_opt(name).await? else {
        return Ok(Err(format!(
            "Secret {ns}/{name} (spec.credentialsSecretRef.name of the watch) not found"
        )));
    };
    if let Err(e) = check_secret_type(secret.type_.as_deref()) {
        return Ok(Err(format!("Secret {ns}/{name}: {e}")));
    }
    let map: BTreeMap<String, Vec<u8>> = secret
        .data
        .unwrap_or_default()
        .into_iter()
        .map(|(k, v)| (k, v.0))
        .collect();
    Ok(Credentials::from_bytes_map(provider, &map).map_err(|e| format!("Secret {ns}/{name}: {e}")))
}

/// A keyless source's answer: an API-server failure is the reconcile's; the rest (named
/// causes, never a token) refuse the request.
fn keyless(r: Result<Credentials, IdentityError>) -> Result<Result<Credentials, String>, ActionError> {
    match r {
        Ok(c) => Ok(Ok(c)),
        Err(IdentityError::Kube(e)) => Err(ActionError::Kube(e)),
        Err(e) => Ok(Err(e.to_string())),
    }
}

/// Like [`prepare`] without the switches: only what reading the order needs.
pub(super) async fn prepare_for_reading(
    action: &ChangeOrderAction,
    ctx: &Ctx,
    ns: &str,
) -> Result<Result<Prepared, String>, ActionError> {
    let orders: Api<ChangeOrder> = Api::namespaced(ctx.client.clone(), ns);
    let Some(order) = orders.get_opt(&action.spec.change_order).await? else {
        return Ok(Err(format!("ChangeOrder {} not found", action.spec.change_order)));
    };
    let Some(watch_name) = owning_watch(&order) else {
        return Ok(Err("the ChangeOrder has no owning watch".into()));
    };
    let watches: Api<ChangeOrderWatch> = Api::namespaced(ctx.client.clone(), ns);
    let Some(watch) = watches.get_opt(&watch_name).await? else {
        return Ok(Err(format!("ChangeOrderWatch {watch_name} not found")));
    };
    let config = match WatchConfig::from_spec(&watch.spec, &ctx.settings) {
        Ok(c) => c,
        Err(m) => return Ok(Err(m)),
    };
    let credentials = match read_credentials(ctx, ns, &config).await? {
        Ok(c) => c,
        Err(m) => return Ok(Err(m)),
    };
    Ok(Ok(Prepared {
        order,
        watch_name,
        target: config.target,
        credentials,
    }))
}
