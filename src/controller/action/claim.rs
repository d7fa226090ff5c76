//! Status writes that may replace only the state they were decided on: the claim recorded before
//! a call, and every outcome after it.

use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::ResourceExt;
use kube::api::{Api, Patch, PatchParams, PostParams};

use super::{ActionError, Ctx, Verdict, reason};
use crate::crd::{ActionPhase, ChangeOrderAction, ChangeOrderActionStatus, ObservedOrder};
use crate::mapping;
use crate::time::whole_seconds;

/// Which state a status write may replace: a request nobody claimed yet, or one claimed by this
/// attempt. Every write carries the resourceVersion it was decided on, so a decision made on a
/// stale cache can never overwrite a newer outcome.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) enum Expect {
    Unclaimed,
    Attempt(Option<String>),
}

impl Expect {
    pub(super) fn allows(&self, status: Option<&ChangeOrderActionStatus>) -> bool {
        let phase = status.and_then(|s| s.phase);
        match self {
            Expect::Unclaimed => matches!(phase, None | Some(ActionPhase::Pending)),
            Expect::Attempt(id) => {
                phase == Some(ActionPhase::Executing)
                    && status.and_then(|s| s.attempt_id.as_ref()) == id.as_ref()
            }
        }
    }
}

/// Whether a status write happened or lost to a newer state of the request.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Wrote {
    Done,
    Superseded,
}

/// Write a status (merge patch with a resourceVersion precondition). On a conflict (a user
/// changed labels, say) the request is read again and the write retried while it is still in
/// the expected state.
#[allow(clippy::too_many_arguments)]
pub(super) async fn write_status(
    ctx: &Ctx,
    ns: &str,
    action: &ChangeOrderAction,
    expect: &Expect,
    v: &Verdict,
    order_id: Option<String>,
    request_id: Option<String>,
    rollback: Option<String>,
) -> Result<Wrote, ActionError> {
    let api: Api<ChangeOrderAction> = Api::namespaced(ctx.client.clone(), ns);
    let mut current = action.clone();
    for _ in 0..3 {
        if !expect.allows(current.status.as_ref()) {
            return Ok(Wrote::Superseded);
        }
        let previous = current.status.clone().unwrap_or_default();
        let now = whole_seconds(Timestamp::now());
        let status = ChangeOrderActionStatus {
            phase: Some(v.phase),
            reason: Some(v.reason.to_string()),
            message: Some(mapping::cut(&v.message, 2048)),
            change_order_id: order_id.clone().or(previous.change_order_id),
            attempt_id: previous.attempt_id,
            observed_before: previous.observed_before,
            request_id: request_id.clone().or(previous.request_id),
            rollback_change_order_id: rollback.clone().or(previous.rollback_change_order_id),
            start_time: previous.start_time,
            completion_time: v.phase.is_finished().then_some(now.clone()),
            conditions: vec![succeeded_condition(v, current.metadata.generation, now)],
        };
        let patch = serde_json::json!({
            "metadata": {"resourceVersion": current.resource_version()},
            "status": status,
        });
        match api
            .patch_status(
                &current.name_any(),
                &PatchParams::default(),
                &Patch::Merge(&patch),
            )
            .await
        {
            Ok(_) => return Ok(Wrote::Done),
            Err(kube::Error::Api(s)) if s.code == 409 => match api.get_opt(&current.name_any()).await? {
                Some(fresh) => current = fresh,
                None => return Ok(Wrote::Superseded),
            },
            Err(kube::Error::Api(s)) if s.code == 404 => return Ok(Wrote::Superseded),
            Err(e) => return Err(e.into()),
        }
    }
    Ok(Wrote::Superseded)
}

/// The `Succeeded` condition for a verdict.
fn succeeded_condition(v: &Verdict, generation: Option<i64>, now: Time) -> Condition {
    Condition {
        type_: "Succeeded".into(),
        status: match v.phase {
            ActionPhase::Succeeded => "True",
            ActionPhase::Failed => "False",
            _ => "Unknown",
        }
        .into(),
        reason: v.reason.into(),
        message: mapping::cut(&v.message, 1024),
        last_transition_time: now,
        observed_generation: generation,
    }
}

/// Move the request to `Executing` (a new attempt id, the order as read just before) ahead of
/// the call. `replace` carries the cached resourceVersion: if anything changed the request since
/// it was read (another replica claimed it, the cache was stale), the claim fails (`None`) and
/// nothing is sent.
///
/// When the API server's reply to the claim is lost (a timeout, a dropped connection, a 5xx),
/// the claim may or may not have been stored, but nothing was sent: the attempt is remembered
/// in [`Unsent`](super::unsent::Unsent), so that a request found `Executing` with it is recorded
/// as `NotSent` instead of being settled as a write of unknown outcome, and the error is
/// returned (the request is looked at again after the error backoff).
pub(super) async fn claim(
    action: &ChangeOrderAction,
    ctx: &Ctx,
    ns: &str,
    id: &str,
    before: &ObservedOrder,
) -> Result<Option<(ChangeOrderAction, Expect)>, ActionError> {
    let kind = action.spec.action;
    let mut claimed = action.clone();
    claimed.metadata.managed_fields = None;
    claimed.status = Some(ChangeOrderActionStatus {
        phase: Some(ActionPhase::Executing),
        reason: Some(reason::EXECUTING.into()),
        message: Some(format!("sending {kind} for order {id}")),
        change_order_id: Some(id.to_string()),
        attempt_id: Some(format!("{:016x}", rand::random::<u64>())),
        observed_before: Some(before.clone()),
        start_time: Some(whole_seconds(Timestamp::now())),
        ..Default::default()
    });
    let attempt = Expect::Attempt(claimed.status.as_ref().and_then(|s| s.attempt_id.clone()));
    let api: Api<ChangeOrderAction> = Api::namespaced(ctx.client.clone(), ns);
    match api
        .replace_status(&action.name_any(), &PostParams::default(), &claimed)
        .await
    {
        Ok(c) => Ok(Some((c, attempt))),
        Err(kube::Error::Api(s)) if s.code == 409 => Ok(None),
        Err(e) => {
            if let Expect::Attempt(Some(id)) = &attempt {
                ctx.unsent.remember(id);
            }
            Err(e.into())
        }
    }
}
