//! Retention of finished requests: owned by their ChangeOrder (deleted with it) and deleted
//! `--action-ttl` after they finished.

use std::time::Duration;

use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::api::{Api, DeleteParams, Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::{Resource, ResourceExt};

use super::{ActionError, Ctx};
use crate::crd::{ChangeOrder, ChangeOrderAction, ChangeOrderActionStatus};

/// Tie the request's lifetime to its order (garbage-collected with it).
pub(super) async fn own(ctx: &Ctx, ns: &str, action: &ChangeOrderAction, order: &ChangeOrder) {
    let Some(uid) = order.uid() else { return };
    if action.owner_references().iter().any(|r| r.uid == uid) {
        return;
    }
    let owner = OwnerReference {
        api_version: ChangeOrder::api_version(&()).into_owned(),
        kind: ChangeOrder::kind(&()).into_owned(),
        name: order.name_any(),
        uid,
        controller: None,
        block_owner_deletion: None,
    };
    let mut refs = action.owner_references().to_vec();
    refs.push(owner);
    let api: Api<ChangeOrderAction> = Api::namespaced(ctx.client.clone(), ns);
    let patch = serde_json::json!({"metadata": {"ownerReferences": refs}});
    if let Err(e) = api
        .patch(&action.name_any(), &PatchParams::default(), &Patch::Merge(&patch))
        .await
    {
        tracing::warn!(error = %e, "cannot set the owner of a ChangeOrderAction");
    }
}

/// Finished requests live `--action-ttl` after completion.
pub(super) async fn retain(
    action: &ChangeOrderAction,
    status: &ChangeOrderActionStatus,
    ctx: &Ctx,
    ns: &str,
) -> Result<Action, ActionError> {
    let ttl = ctx.settings.actions.ttl;
    let age = status
        .completion_time
        .as_ref()
        .map(|t| Timestamp::now().duration_since(t.0).unsigned_abs())
        .unwrap_or_default();
    if age < ttl {
        return Ok(Action::requeue(ttl - age + Duration::from_secs(1)));
    }
    let api: Api<ChangeOrderAction> = Api::namespaced(ctx.client.clone(), ns);
    match api.delete(&action.name_any(), &DeleteParams::default()).await {
        Ok(_) => {}
        Err(kube::Error::Api(s)) if s.code == 404 => {}
        Err(e) => return Err(e.into()),
    }
    Ok(Action::await_change())
}
