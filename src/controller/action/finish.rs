//! Recording an outcome and telling about it: the status, an Event, and a poll of the watch.

use std::time::Duration;

use jiff::Timestamp;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::runtime::events::{Event, EventType};
use kube::{Resource, ResourceExt};

use super::claim::{Expect, Wrote, write_status};
use super::prepare::Prepared;
use super::retention::own;
use super::{ActionError, Ctx, FIELD_MANAGER, Verdict};
use crate::crd::{ActionPhase, ChangeOrderAction, ChangeOrderWatch, RECONCILE_REQUEST_ANNOTATION};
use crate::mapping;

/// Record the outcome, then tell people (an Event on the ChangeOrder) and ask the watch to poll
/// at once so the order's new state shows without waiting an interval.
#[allow(clippy::too_many_arguments)]
pub(super) async fn finish(
    action: &ChangeOrderAction,
    expect: &Expect,
    ctx: &Ctx,
    ns: &str,
    v: Verdict,
    prepared: Option<&Prepared>,
    request_id: Option<String>,
    rollback: Option<String>,
) -> Result<Action, ActionError> {
    let order_id = prepared.map(|p| p.order.spec.change_order_id.clone());
    let wrote = write_status(ctx, ns, action, expect, &v, order_id, request_id, rollback).await?;
    if wrote == Wrote::Superseded {
        // Decided on a state that is no longer current: look at the request again.
        return Ok(Action::requeue(Duration::from_secs(1)));
    }
    if v.phase.is_finished() {
        ctx.metrics.action_finished(action.spec.action.as_str(), v.reason);
    }
    tracing::info!(
        namespace = ns,
        action = %action.name_any(),
        phase = ?v.phase,
        reason = v.reason,
        "change-order action finished"
    );
    match prepared {
        Some(p) => publish(ctx, action, &p.order.object_ref(&()), &v).await,
        // Refused before the order was found: the Event goes on the request itself.
        None => publish(ctx, action, &action.object_ref(&()), &v).await,
    }
    if let Some(p) = prepared {
        own(ctx, ns, action, &p.order).await;
        if v.phase == ActionPhase::Succeeded {
            request_poll(ctx, ns, &p.watch_name, action).await;
        }
    }
    Ok(Action::requeue(ctx.settings.actions.ttl))
}

async fn publish(
    ctx: &Ctx,
    action: &ChangeOrderAction,
    regarding: &k8s_openapi::api::core::v1::ObjectReference,
    v: &Verdict,
) {
    let event = Event {
        type_: if v.phase == ActionPhase::Succeeded {
            EventType::Normal
        } else {
            EventType::Warning
        },
        reason: format!(
            "{}{}",
            action.spec.action,
            if v.phase == ActionPhase::Succeeded {
                "Succeeded"
            } else {
                "Failed"
            }
        ),
        note: Some(mapping::cut(
            &format!(
                "ChangeOrderAction {}: {}: {}",
                action.name_any(),
                v.reason,
                v.message
            ),
            1024,
        )),
        action: action.spec.action.to_string(),
        secondary: Some(action.object_ref(&())),
    };
    if let Err(e) = ctx.recorder.publish(&event, regarding).await {
        tracing::warn!(error = %e, "cannot publish event");
    }
}

/// The watch's reconcile-request annotation, set to a new value, makes it poll at once.
async fn request_poll(ctx: &Ctx, ns: &str, watch: &str, action: &ChangeOrderAction) {
    let value = format!("{}/{}", Timestamp::now(), action.name_any());
    let api: Api<ChangeOrderWatch> = Api::namespaced(ctx.client.clone(), ns);
    let patch = serde_json::json!({"metadata": {"annotations": {RECONCILE_REQUEST_ANNOTATION: value}}});
    if let Err(e) = api
        .patch(watch, &PatchParams::apply(FIELD_MANAGER), &Patch::Merge(&patch))
        .await
    {
        tracing::warn!(error = %e, "cannot request a poll after an action");
    }
}
